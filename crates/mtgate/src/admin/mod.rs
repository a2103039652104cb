//! The admin HTTP API: pools and their servers, live, with changes that apply at once.
//!
//! Every request needs `Authorization: Bearer <token>`; a wrong or missing token gets 401
//! (compared in constant time). The API listens on loopback unless configured otherwise.
//! Routes are listed in [`routes`]. Changes made here last until the next reload, when the
//! config file is the source of truth again.

pub mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::server::Shared;

/// Clients served at once.
const MAX_CLIENTS: usize = 16;
/// Largest request body.
const MAX_BODY: usize = 64 * 1024;
/// Time to read a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    token: Arc<str>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some((stream, _)) = crate::listener::accept_until(&listener, &stop, "admin").await
        else {
            return;
        };
        let token = token.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let token = token.clone();
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(request, &token, &shared).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(120), connection).await;
        });
    }
}

async fn handle(request: Request<Incoming>, token: &str, shared: &Shared) -> Response<Full<Bytes>> {
    if !authorized(&request, token) {
        let mut response = routes::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"mtgate admin\""),
        );
        return response;
    }
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let body = match collected.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return routes::error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        Err(_) => return routes::error(StatusCode::REQUEST_TIMEOUT, "body too slow"),
    };
    routes::route(&parts.method, parts.uri.path(), &body, shared)
}

/// Whether the request carries the token, compared in constant time.
fn authorized<B>(request: &Request<B>, token: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value
        .as_bytes()
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| value.as_bytes()[7..].trim_ascii())
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// Compares without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> Request<()> {
        Request::builder()
            .header(header::AUTHORIZATION, value)
            .body(())
            .unwrap()
    }

    #[test]
    fn bearer_tokens() {
        let token = "0123456789abcdef";
        assert!(authorized(&with_auth("Bearer 0123456789abcdef"), token));
        assert!(authorized(&with_auth("bearer 0123456789abcdef"), token));
        assert!(!authorized(&with_auth("Bearer 0123456789abcdeX"), token));
        assert!(!authorized(&with_auth("Bearer 0123456789abcde"), token));
        assert!(!authorized(&with_auth("Basic 0123456789abcdef"), token));
        assert!(!authorized(&with_auth("Bearer"), token));
        assert!(!authorized(&Request::new(()), token));
    }
}
