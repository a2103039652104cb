//! `[[websocket]]` exactly as written; [`super::websocket`] validates it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::units::Dur;

/// One `[[websocket]]` listener: terminates ws/wss and forwards to pools of ws backends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebsocket {
    /// Name in logs, metrics and the admin API (default "websocket", "websocket-2", …).
    pub name: Option<String>,
    /// Addresses to listen on.
    pub listen: Vec<String>,
    /// TLS (wss); plain ws when absent.
    pub tls: Option<RawWsTls>,
    /// Where each request path goes, longest match first.
    pub routes: Vec<RawWsRoute>,
    /// Allowed `Origin` values (exact, case-insensitive); any origin when empty.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Basic and Bearer credentials; no authentication when absent.
    pub auth: Option<RawWsAuth>,
    /// Largest message in bytes, all fragments together.
    #[serde(default = "defaults::max_payload")]
    pub max_payload: usize,
    /// Most frames in one message.
    #[serde(default = "defaults::max_fragments")]
    pub max_fragments: usize,
    /// Connections open at once on this listener.
    pub max_connections: Option<usize>,
    /// Budget for TLS, the upgrade request, the backend connection and its 101.
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Dur,
    /// A connection with no message either way for this long is closed (1001).
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    /// Time between pings to each side ("0s": no pings).
    #[serde(default = "defaults::ping_interval")]
    pub ping_interval: Dur,
    /// A side that has not answered a ping within this time is closed.
    #[serde(default = "defaults::pong_timeout")]
    pub pong_timeout: Dur,
    /// Time for the other side to answer a close frame.
    #[serde(default = "defaults::close_timeout")]
    pub close_timeout: Dur,
    /// Accept queue length of the listening socket.
    pub backlog: Option<u32>,
}

/// `[websocket.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    pub client_ca: Option<PathBuf>,
}

/// `[[websocket.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsRoute {
    /// Path prefix ("/chat" matches "/chat", "/chat/x" and "/chat?x", not "/chatter").
    pub path: String,
    /// Only requests with this Host (port ignored, case-insensitive); any host when absent.
    pub host: Option<String>,
    /// The pool of ws backends (`tcp://` servers).
    pub pool: String,
}

/// `[websocket.auth]`: a request passes with any one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsAuth {
    /// Basic users and their passwords.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Bearer tokens.
    #[serde(default)]
    pub tokens: Vec<String>,
}

mod defaults {
    use std::time::Duration;

    use super::Dur;

    pub(super) fn max_payload() -> usize {
        1024 * 1024
    }
    pub(super) fn max_fragments() -> usize {
        1024
    }
    pub(super) fn handshake_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub(super) fn ping_interval() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub(super) fn pong_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn close_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
}
