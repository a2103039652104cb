//! `[[gateway]]` exactly as written; [`super::gateway`] validates it.

use std::path::PathBuf;

use serde::Deserialize;

use super::raw_proxy::{RawLockout, RawPorts};
use super::units::Dur;

/// One `[[gateway]]` listener: agents dial in over ws/wss and the proxy listeners reach
/// targets through them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Name in logs, metrics, the admin API and the proxy listeners' `gateway` option
    /// (default "gateway", "gateway-2", …).
    pub name: Option<String>,
    /// Addresses to listen on.
    pub listen: Vec<String>,
    /// The upgrade path agents use.
    #[serde(default = "defaults::path")]
    pub path: String,
    /// PEM certificate chain for wss, leaf first (`mtgate cert` makes one).
    pub cert: Option<PathBuf>,
    /// PEM private key for wss.
    pub key: Option<PathBuf>,
    /// Serve plain ws (behind a TLS terminator) instead of wss.
    #[serde(default)]
    pub plain: bool,
    /// PEM CA certificates: an agent with a client certificate signed by one is identified by
    /// its CN (or first DNS SAN).
    pub client_ca: Option<PathBuf>,
    /// Budget for TLS, the upgrade request, authentication and the 101.
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Dur,
    /// WebSocket connections from agents at once (each replica counts).
    pub max_agents: Option<usize>,
    /// Streams one agent connection may carry at once.
    #[serde(default = "defaults::max_streams_per_agent")]
    pub max_streams_per_agent: usize,
    /// Time between pings to each agent connection.
    #[serde(default = "defaults::ping_interval")]
    pub ping_interval: Dur,
    /// An agent connection that has not answered a ping within this time is closed.
    #[serde(default = "defaults::pong_timeout")]
    pub pong_timeout: Dur,
    /// How long an agent has to answer a stream open.
    #[serde(default = "defaults::open_timeout")]
    pub open_timeout: Dur,
    /// Lockout of addresses after failed authentications.
    #[serde(default)]
    pub auth_lockout: RawLockout,
    /// Inline credentials.
    #[serde(default)]
    pub credential: Vec<RawCredential>,
    /// A TOML file of `[[credential]]` entries, re-read when it changes.
    pub credentials_file: Option<PathBuf>,
    /// An external check: `http://` URL that gets a JSON POST per authentication.
    pub auth_url: Option<String>,
    /// Budget of one `auth_url` request.
    #[serde(default = "defaults::auth_timeout")]
    pub auth_timeout: Dur,
    /// Ports agents may ask the gateway to listen on (remote port forwarding).
    #[serde(default)]
    pub forward_ports: Vec<RawPorts>,
    /// Address the forwarded ports are bound on.
    #[serde(default = "defaults::forward_bind")]
    pub forward_bind: String,
}

/// One `[[gateway.credential]]` (or `[[credential]]` in a credentials file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    /// Basic user name, or the certificate identity (CN or DNS SAN) with neither password
    /// nor token.
    pub username: Option<String>,
    /// argon2 PHC string or plain text (Basic, or the JSON `auth` message).
    pub password: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// The agent group the credential joins.
    pub group: String,
    /// Only this client id may use the credential.
    pub client_id: Option<String>,
}

/// A credentials file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialsFile {
    /// The entries.
    #[serde(default)]
    pub credential: Vec<RawCredential>,
}

mod defaults {
    use std::time::Duration;

    use super::Dur;

    pub(super) fn path() -> String {
        "/ws".to_owned()
    }
    pub(super) fn handshake_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn max_streams_per_agent() -> usize {
        4096
    }
    pub(super) fn ping_interval() -> Dur {
        Dur(Duration::from_secs(25))
    }
    pub(super) fn pong_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn open_timeout() -> Dur {
        Dur(Duration::from_secs(15))
    }
    pub(super) fn auth_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub(super) fn forward_bind() -> String {
        "127.0.0.1".to_owned()
    }
}
