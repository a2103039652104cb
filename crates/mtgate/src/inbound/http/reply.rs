//! Responses the proxy writes itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// The body type of every response: the proxy's own, or an origin's streamed through.
pub type Body =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A short text response; `close` asks hyper to close the connection after it.
pub fn status(code: u16, close: bool) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// 407 with `Proxy-Authenticate: Basic realm="…", charset="UTF-8"`.
pub fn auth_required(realm: &str) -> Response<Body> {
    let mut response = status(407, false);
    let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
    if let Ok(value) =
        HeaderValue::from_str(&format!("Basic realm=\"{escaped}\", charset=\"UTF-8\""))
    {
        response
            .headers_mut()
            .insert(header::PROXY_AUTHENTICATE, value);
    }
    response
}

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}
