//! HTTP/1.1 requests over an established tunnel, with hyper's client.
//!
//! The tunnel is any stream (a [`crate::ProxyStream`], a TLS stream over it, …); the request
//! target is in origin-form (`/path`) with a `Host` header, as for a direct connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest body [`get`] collects by default: 10 MiB.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// Why a request over a tunnel failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// HTTP-level failure (connection closed, malformed response, …).
    #[error("HTTP request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The response body was larger than allowed.
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The request could not be built (bad path or header).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A response with its whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Sends `request` over `stream` with HTTP/1.1 and returns the response with its body still
/// streaming. The connection task ends when the response and the stream are done.
pub async fn send_request<S, B>(
    stream: S,
    request: Request<B>,
) -> Result<Response<Incoming>, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Errors surface through the response future; nothing more to report here.
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}

/// `GET path` with `Host: host` (and `Connection: close`), collecting a body of at most
/// `max_body` bytes.
pub async fn get<S>(
    stream: S,
    host: &str,
    path: &str,
    max_body: usize,
) -> Result<HttpResponse, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONNECTION, "close")
        .header(
            hyper::header::USER_AGENT,
            concat!("mtgate-client/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))
        .map_err(|e| RequestError::Invalid(e.to_string()))?;
    let response = send_request(stream, request).await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => RequestError::Http(*e),
            Err(_) => RequestError::BodyTooLarge(max_body),
        })?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}
