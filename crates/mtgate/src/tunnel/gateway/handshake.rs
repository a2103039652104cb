//! An agent's upgrade request: the checks before the 101 (path, RFC 6455, subprotocol) and
//! the credentials it carries. No I/O here; the listener reads the head, asks the
//! authenticators, and writes the answers built here.

use mtgate_proto::http1::{Headers, RequestHead, parse_basic};
use mtgate_proto::tunnel::{SUBPROTOCOL_ANYPROXY_JSON, SUBPROTOCOL_V1};

use super::auth::Presented;
use crate::inbound::websocket::handshake::{
    BadUpgrade, offered_protocols, refusal_response, upgrade_key,
};
use crate::tunnel::mux::Codec;

/// Longest client id accepted from `X-Client-ID` or the `auth` message.
pub const MAX_CLIENT_ID: usize = 255;

/// An upgrade request that passed the shape checks (credentials not yet checked).
#[derive(Debug, Clone)]
pub struct AgentUpgrade {
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// The wire protocol.
    pub codec: Codec,
    /// The subprotocol to name in the 101 (`None` when the agent offered none).
    pub protocol: Option<&'static str>,
    /// Credentials from `Authorization`, if any.
    pub presented: Option<Presented>,
    /// `X-Client-ID`, if any.
    pub client_id: Option<String>,
    /// `X-Group-ID`, if any: the group the agent expects to join.
    pub group: Option<String>,
}

/// Why an upgrade is refused, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a valid WebSocket upgrade.
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// Not the gateway's path.
    #[error("not found")]
    NotFound,
    /// Missing or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The address is locked out after repeated failures.
    #[error("too many failed authentications; try later")]
    Banned,
    /// `max_agents` reached.
    #[error("too many agents")]
    Busy,
    /// `X-Group-ID` names another group than the credentials grant.
    #[error("these credentials do not join the group the agent asked for")]
    WrongGroup,
}

impl Refusal {
    /// Status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "Bad Request"),
            Self::NotFound => (404, "Not Found"),
            Self::Unauthorized => (401, "Unauthorized"),
            Self::Banned | Self::WrongGroup => (403, "Forbidden"),
            Self::Busy => (503, "Service Unavailable"),
        }
    }

    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Banned => "locked_out",
            Self::Busy => "max_agents",
            Self::WrongGroup => "wrong_group",
        }
    }

    /// The whole HTTP response, closing the connection.
    pub fn response(self) -> Vec<u8> {
        let extra = match self {
            Self::Unauthorized => concat!(
                "WWW-Authenticate: Basic realm=\"mtgate-gateway\"\r\n",
                "WWW-Authenticate: Bearer realm=\"mtgate-gateway\"\r\n"
            ),
            Self::BadRequest(_) => "Sec-WebSocket-Version: 13\r\n",
            _ => "",
        };
        refusal_response(self.status(), &self.to_string(), extra)
    }
}

/// Checks the request's shape, path and subprotocols, and reads its credentials.
pub fn check(request: &RequestHead, path: &str) -> Result<AgentUpgrade, Refusal> {
    let h = &request.headers;
    let request_path = request.target.split(['?', '#']).next().unwrap_or("");
    if request_path != path {
        return Err(Refusal::NotFound);
    }
    let key = upgrade_key(request).map_err(|e| match e {
        BadUpgrade::Version => Refusal::BadRequest("Sec-WebSocket-Version must be 13"),
        BadUpgrade::Shape(why) => Refusal::BadRequest(why),
    })?;
    let (codec, protocol) = choose_protocol(h)?;
    let client_id = match h.get_str("x-client-id").map(str::trim) {
        None | Some("") => None,
        Some(id) if id.len() <= MAX_CLIENT_ID && !id.chars().any(char::is_control) => {
            Some(id.to_owned())
        }
        Some(_) => return Err(Refusal::BadRequest("X-Client-ID is too long or malformed")),
    };
    let group = match h.get_str("x-group-id").map(str::trim) {
        None | Some("") => None,
        Some(g) if g.len() <= 64 && !g.chars().any(char::is_control) => Some(g.to_owned()),
        Some(_) => return Err(Refusal::BadRequest("X-Group-ID is too long or malformed")),
    };
    let presented = match h.get("authorization") {
        None => None,
        Some(value) => Some(credentials(value).ok_or(Refusal::Unauthorized)?),
    };
    Ok(AgentUpgrade {
        key,
        codec,
        protocol,
        presented,
        client_id,
        group,
    })
}

/// `mtgate-tunnel-v1` if offered, else `anyproxy-json`; no offer at all means AnyProxy JSON
/// (a client written from AnyProxy's document sends none). An offer of only unknown
/// subprotocols is refused.
fn choose_protocol(h: &Headers) -> Result<(Codec, Option<&'static str>), Refusal> {
    let offered: Vec<&str> = offered_protocols(h).collect();
    if offered.is_empty() {
        return Ok((Codec::AnyProxyJson, None));
    }
    if offered.contains(&SUBPROTOCOL_V1) {
        return Ok((Codec::Binary, Some(SUBPROTOCOL_V1)));
    }
    if offered.contains(&SUBPROTOCOL_ANYPROXY_JSON) {
        return Ok((Codec::AnyProxyJson, Some(SUBPROTOCOL_ANYPROXY_JSON)));
    }
    Err(Refusal::BadRequest("no supported subprotocol offered"))
}

/// `Basic` or `Bearer` (scheme case-insensitive).
fn credentials(value: &[u8]) -> Option<Presented> {
    if let Some(basic) = parse_basic(value) {
        return Some(Presented::Basic {
            username: String::from_utf8(basic.username.to_vec()).ok()?,
            password: basic.password.to_vec(),
        });
    }
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, token) = text.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| Presented::Bearer(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> RequestHead {
        let text = format!(
            "GET /ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        RequestHead::parse(text.as_bytes(), &Default::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn subprotocol_choice() {
        let up = check(&head(""), "/ws").unwrap();
        assert_eq!((up.codec, up.protocol), (Codec::AnyProxyJson, None));
        let up = check(
            &head("Sec-WebSocket-Protocol: anyproxy-json, mtgate-tunnel-v1\r\n"),
            "/ws",
        )
        .unwrap();
        assert_eq!(up.codec, Codec::Binary);
        assert_eq!(up.protocol, Some(SUBPROTOCOL_V1));
        let up = check(&head("Sec-WebSocket-Protocol: anyproxy-json\r\n"), "/ws").unwrap();
        assert_eq!(up.protocol, Some(SUBPROTOCOL_ANYPROXY_JSON));
        assert!(matches!(
            check(&head("Sec-WebSocket-Protocol: chat\r\n"), "/ws"),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn path_and_credentials() {
        assert_eq!(check(&head(""), "/tunnel").unwrap_err(), Refusal::NotFound);
        // "agent:pw"
        let up = check(
            &head("Authorization: basic YWdlbnQ6cHc=\r\nX-Client-ID: host-1\r\n"),
            "/ws",
        )
        .unwrap();
        assert_eq!(
            up.presented,
            Some(Presented::Basic {
                username: "agent".into(),
                password: b"pw".to_vec()
            })
        );
        assert_eq!(up.client_id.as_deref(), Some("host-1"));
        let up = check(&head("Authorization: BEARER abc\r\n"), "/ws").unwrap();
        assert_eq!(up.presented, Some(Presented::Bearer("abc".into())));
        assert_eq!(
            check(&head("Authorization: Digest x\r\n"), "/ws").unwrap_err(),
            Refusal::Unauthorized
        );
    }

    #[test]
    fn refusals_have_their_statuses() {
        let text = String::from_utf8(Refusal::Unauthorized.response()).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 "));
        assert!(text.contains("WWW-Authenticate: Basic"));
        assert!(
            String::from_utf8(Refusal::Banned.response())
                .unwrap()
                .starts_with("HTTP/1.1 403 ")
        );
        assert!(
            String::from_utf8(Refusal::Busy.response())
                .unwrap()
                .starts_with("HTTP/1.1 503 ")
        );
    }
}
