//! The client's upgrade request: checks before the 101 (RFC 6455 §4.2.1, origin, credentials,
//! route) and the answers mtgate writes. No I/O here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mtgate_proto::http1::{Headers, RequestHead, parse_basic};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::config::websocket::{WebsocketListenerConfig, WsAuth, WsRoute};

/// The GUID of RFC 6455 §1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Header fields mtgate sets itself towards the backend, or that end at mtgate.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "upgrade",
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "proxy-authorization",
    "proxy-connection",
    "content-length",
    "x-forwarded-for",
];

/// An upgrade request that passed every check.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The route it matched.
    pub route: WsRoute,
    /// The request target, forwarded as is.
    pub target: String,
    /// The Host header, if any.
    pub host: Option<String>,
    /// The client's `Sec-WebSocket-Key`.
    pub key: String,
    /// Subprotocols the client offered, in its order.
    pub protocols: Vec<String>,
    /// End-to-end header fields to pass to the backend.
    pub forward: Headers,
    /// The Basic user who authenticated, if any (never the password).
    pub user: Option<String>,
}

/// Why an upgrade is refused, with the HTTP status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a valid WebSocket upgrade request.
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// A WebSocket version other than 13.
    #[error("unsupported WebSocket version")]
    Version,
    /// No route for the path and host.
    #[error("no route")]
    NotFound,
    /// The origin is not allowed.
    #[error("origin not allowed")]
    Origin,
    /// Missing or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// No backend could be reached.
    #[error("no backend available")]
    BadGateway,
    /// The backend did not finish its handshake in time.
    #[error("backend handshake timed out")]
    GatewayTimeout,
    /// The listener is full.
    #[error("too many connections")]
    Busy,
}

impl Refusal {
    /// Status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "Bad Request"),
            Self::Version => (426, "Upgrade Required"),
            Self::NotFound => (404, "Not Found"),
            Self::Origin => (403, "Forbidden"),
            Self::Unauthorized => (401, "Unauthorized"),
            Self::BadGateway => (502, "Bad Gateway"),
            Self::GatewayTimeout => (504, "Gateway Timeout"),
            Self::Busy => (503, "Service Unavailable"),
        }
    }

    /// A label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Version => "bad_version",
            Self::NotFound => "no_route",
            Self::Origin => "origin",
            Self::Unauthorized => "unauthorized",
            Self::BadGateway => "upstream_unavailable",
            Self::GatewayTimeout => "upstream_timeout",
            Self::Busy => "connection_limit",
        }
    }

    /// The whole HTTP response, closing the connection.
    pub fn response(self) -> Vec<u8> {
        let extra = match self {
            Self::Version => "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n",
            Self::Unauthorized => "WWW-Authenticate: Basic realm=\"mtgate\"\r\n",
            _ => "",
        };
        refusal_response(self.status(), &self.to_string(), extra)
    }
}

/// Why a request is not a WebSocket upgrade (RFC 6455 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadUpgrade {
    /// Not a GET over HTTP/1.1 with `Upgrade`, `Connection` and a valid key.
    Shape(&'static str),
    /// A `Sec-WebSocket-Version` other than 13.
    Version,
}

/// Checks the shape every upgrade request must have and returns its `Sec-WebSocket-Key`.
pub fn upgrade_key(request: &RequestHead) -> Result<String, BadUpgrade> {
    let h = &request.headers;
    if request.method != "GET" {
        return Err(BadUpgrade::Shape("method must be GET"));
    }
    if request.version != 1 {
        return Err(BadUpgrade::Shape("HTTP/1.1 is required"));
    }
    if !has_token(h, "upgrade", "websocket") {
        return Err(BadUpgrade::Shape("Upgrade: websocket is missing"));
    }
    if !has_token(h, "connection", "upgrade") {
        return Err(BadUpgrade::Shape("Connection: Upgrade is missing"));
    }
    if h.get_str("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(BadUpgrade::Version);
    }
    h.get_str("sec-websocket-key")
        .map(str::trim)
        .filter(|k| STANDARD.decode(k).is_ok_and(|d| d.len() == 16))
        .map(str::to_owned)
        .ok_or(BadUpgrade::Shape(
            "Sec-WebSocket-Key is missing or malformed",
        ))
}

/// The subprotocols a request offers, in order (at most 32).
pub fn offered_protocols(h: &Headers) -> impl Iterator<Item = &str> {
    h.get_all("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(32)
}

/// A refusal before the 101: `status`, `extra` header lines (each ending in CRLF), and
/// `message` as a plain-text body; the connection closes after it.
pub fn refusal_response((code, reason): (u16, &str), message: &str, extra: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    format!(
        "HTTP/1.1 {code} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Checks `request` against the listener's rules, in the order that leaks least: the
/// request's shape, the route, the origin, then the credentials.
pub fn check(request: &RequestHead, config: &WebsocketListenerConfig) -> Result<Upgrade, Refusal> {
    let h = &request.headers;
    let key = upgrade_key(request).map_err(|e| match e {
        BadUpgrade::Version => Refusal::Version,
        BadUpgrade::Shape(why) => Refusal::BadRequest(why),
    })?;
    if !request.target.starts_with('/') {
        return Err(Refusal::BadRequest("the target must be a path"));
    }
    let host = h.get_str("host").map(str::trim).map(str::to_owned);
    let bare_host = host.as_deref().map(strip_port).map(str::to_ascii_lowercase);
    let route = config
        .routes
        .iter()
        .find(|r| r.matches(&request.target, bare_host.as_deref()))
        .ok_or(Refusal::NotFound)?;
    if !config.allowed_origins.is_empty() {
        let origin = h
            .get_str("origin")
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase());
        if !origin.is_some_and(|o| config.allowed_origins.contains(&o)) {
            return Err(Refusal::Origin);
        }
    }
    let user = match &config.auth {
        None => None,
        Some(auth) => authenticate(h, auth)?,
    };
    let protocols = offered_protocols(h).map(str::to_owned).collect();
    let mut forward = Headers::default();
    for field in &h.0 {
        let lower = field.name.to_ascii_lowercase();
        let own_auth = config.auth.is_some() && lower == "authorization";
        if !own_auth
            && !NOT_FORWARDED.contains(&lower.as_str())
            && lower != "sec-websocket-protocol"
        {
            forward.push(field.name.clone(), field.value.clone());
        }
    }
    Ok(Upgrade {
        route: route.clone(),
        target: request.target.clone(),
        host,
        key,
        protocols,
        forward,
        user,
    })
}

/// Basic or Bearer; `Ok(Some(user))` for Basic, `Ok(None)` for a token.
fn authenticate(h: &Headers, auth: &WsAuth) -> Result<Option<String>, Refusal> {
    let value = h.get("authorization").ok_or(Refusal::Unauthorized)?;
    if let Some(creds) = parse_basic(value) {
        // Compare with every user so the time does not say which names exist.
        let mut found = None;
        for (user, password) in &auth.users {
            let same =
                user.as_bytes().ct_eq(&creds.username) & password.as_bytes().ct_eq(&creds.password);
            if bool::from(same) {
                found = Some(user.clone());
            }
        }
        return found.map(Some).ok_or(Refusal::Unauthorized);
    }
    let text = std::str::from_utf8(value).map_err(|_| Refusal::Unauthorized)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(Refusal::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Unauthorized);
    }
    let token = token.trim().as_bytes();
    let mut ok = subtle::Choice::from(0);
    for known in &auth.tokens {
        ok |= known.as_bytes().ct_eq(token);
    }
    if bool::from(ok) {
        Ok(None)
    } else {
        Err(Refusal::Unauthorized)
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
pub fn has_token(h: &Headers, name: &str, token: &str) -> bool {
    h.get_all(name)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `Sec-WebSocket-Accept` for a key.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID);
    STANDARD.encode(sha.finalize())
}

/// The 101 answer to the client.
pub fn switching_protocols(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = protocol {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(p);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("a.example"), "a.example");
    }
}
