//! The handshake with a ws backend: mtgate's own upgrade request carrying the client's
//! subprotocols and end-to-end headers, and the checks on the backend's 101.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use mtgate_proto::http1::{Headers, Limits, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::handshake::{Upgrade, accept_key, has_token};
use super::head_io::{HeadError, read_response};

/// How a backend handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Reading or writing failed.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The backend answered with another status; it is passed on to the client.
    #[error("backend answered {0}")]
    Status(u16, String),
    /// The 101 broke the protocol.
    #[error("backend handshake invalid: {0}")]
    Invalid(&'static str),
}

/// What the backend agreed to.
#[derive(Debug)]
pub struct Accepted {
    /// The subprotocol it chose.
    pub protocol: Option<String>,
    /// Bytes it sent after the 101 (the start of its first frames).
    pub rest: Bytes,
}

/// Sends the upgrade request to `stream` and checks the answer.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    upgrade: &Upgrade,
    peer: SocketAddr,
    backend_authority: &str,
) -> Result<Accepted, BackendError> {
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    let key = STANDARD.encode(nonce);
    let mut headers = Headers::default();
    headers.push(
        "Host",
        upgrade
            .host
            .clone()
            .unwrap_or_else(|| backend_authority.to_owned()),
    );
    headers.push("Upgrade", "websocket");
    headers.push("Connection", "Upgrade");
    headers.push("Sec-WebSocket-Key", key.clone());
    headers.push("Sec-WebSocket-Version", "13");
    if !upgrade.protocols.is_empty() {
        headers.push("Sec-WebSocket-Protocol", upgrade.protocols.join(", "));
    }
    headers.0.extend(upgrade.forward.0.iter().cloned());
    headers.push("X-Forwarded-For", peer.ip().to_canonical().to_string());
    let request = RequestHead {
        method: "GET".into(),
        target: upgrade.target.clone(),
        version: 1,
        headers,
    };
    let mut out = Vec::with_capacity(request.serialized_len());
    request.write_to_buf(&mut out);
    stream.write_all(&out).await.map_err(HeadError::Io)?;
    stream.flush().await.map_err(HeadError::Io)?;

    let (response, rest) = read_response(stream, &Limits::default()).await?;
    if response.status != 101 {
        return Err(BackendError::Status(response.status, response.reason));
    }
    let h = &response.headers;
    if !has_token(h, "upgrade", "websocket") || !has_token(h, "connection", "upgrade") {
        return Err(BackendError::Invalid("Upgrade/Connection headers missing"));
    }
    if h.get_str("sec-websocket-accept").map(str::trim) != Some(accept_key(&key).as_str()) {
        return Err(BackendError::Invalid("wrong Sec-WebSocket-Accept"));
    }
    if h.get("sec-websocket-extensions").is_some() {
        return Err(BackendError::Invalid("extension not offered"));
    }
    let protocol = h
        .get_str("sec-websocket-protocol")
        .map(|p| p.trim().to_owned());
    if let Some(p) = &protocol
        && !upgrade.protocols.contains(p)
    {
        return Err(BackendError::Invalid("subprotocol not offered"));
    }
    Ok(Accepted { protocol, rest })
}
