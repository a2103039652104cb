//! The agent's own config file (`mtgate agent --config agent.toml`): [`RawAgentConfig`] as
//! written, validated by [`AgentConfig::parse`] into types that cannot be invalid. Every
//! error names the key at fault. `docs/tunnel-agent.md` documents every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{Network, SUBPROTOCOL_ANYPROXY_JSON, SUBPROTOCOL_V1};
use serde::Deserialize;

pub use super::gateway_url::GatewayUrl;
use super::policy::Policy;
use crate::config::ConfigError;
use crate::config::units::Dur;
use crate::tunnel::mux::Codec;

/// Most parallel WebSocket connections one agent keeps.
pub const MAX_REPLICAS: usize = 64;

/// The file exactly as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentConfig {
    /// `wss://host:port/path` (or `ws://` to loopback, or anywhere with `insecure_plain`).
    pub gateway: String,
    /// Allow `ws://` to a non-loopback gateway (behind a trusted network only).
    #[serde(default)]
    pub insecure_plain: bool,
    /// Basic user name.
    pub username: Option<String>,
    /// Basic password.
    pub password: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// PEM client certificate chain (mTLS).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key: Option<PathBuf>,
    /// PEM CA certificates the gateway's certificate must chain to (default: the webpki roots).
    pub ca_file: Option<PathBuf>,
    /// This agent's id (default: the host name).
    pub client_id: Option<String>,
    /// The agent group to join.
    pub group: Option<String>,
    /// Parallel WebSocket connections.
    #[serde(default = "defaults::replicas")]
    pub replicas: usize,
    /// Streams served at once, over all replicas.
    #[serde(default = "defaults::max_concurrent_conns")]
    pub max_concurrent_conns: usize,
    /// `mtgate-tunnel-v1` or `anyproxy-json`.
    #[serde(default = "defaults::protocol")]
    pub protocol: String,
    /// Targets allowed (when non-empty, only these).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Targets refused.
    #[serde(default)]
    pub forbidden_hosts: Vec<String>,
    /// Allow loopback, private, link-local and other special addresses by default.
    #[serde(default)]
    pub allow_private: bool,
    /// Ports the gateway should listen on, forwarded to this side.
    #[serde(default)]
    pub open_ports: Vec<RawOpenPort>,
    /// Budget for reaching the gateway (TCP, TLS, upgrade, auth) and for each target dial.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    /// Time between pings to the gateway.
    #[serde(default = "defaults::ping_interval")]
    pub ping_interval: Dur,
    /// A ping unanswered this long ends the connection.
    #[serde(default = "defaults::pong_timeout")]
    pub pong_timeout: Dur,
    /// On SIGTERM/SIGINT, how long open streams may take to finish.
    #[serde(default = "defaults::drain_timeout")]
    pub drain_timeout: Dur,
    /// A stream with no bytes either way for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    /// A UDP stream with no datagram either way for this long is closed.
    #[serde(default = "defaults::udp_idle_timeout")]
    pub udp_idle_timeout: Dur,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    /// Where to serve `/metrics` (unauthenticated: keep it on loopback or a private
    /// network); none when unset.
    pub metrics_listen: Option<String>,
}

/// One `[[open_ports]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenPort {
    /// The port the gateway listens on.
    pub remote_port: u16,
    /// Where this agent forwards what the gateway accepts there.
    pub local_host: String,
    /// The local port.
    pub local_port: u16,
    /// `tcp` or `udp`.
    #[serde(default = "defaults::tcp")]
    pub protocol: String,
}

mod defaults {
    use std::time::Duration;

    use super::Dur;

    pub(super) fn replicas() -> usize {
        1
    }
    pub(super) fn max_concurrent_conns() -> usize {
        1024
    }
    pub(super) fn protocol() -> String {
        super::SUBPROTOCOL_V1.to_owned()
    }
    pub(super) fn tcp() -> String {
        "tcp".to_owned()
    }
    pub(super) fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn ping_interval() -> Dur {
        Dur(Duration::from_secs(25))
    }
    pub(super) fn pong_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn drain_timeout() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub(super) fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(600))
    }
    pub(super) fn udp_idle_timeout() -> Dur {
        Dur(Duration::from_secs(60))
    }
    pub(super) fn log_level() -> String {
        "info".to_owned()
    }
}

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the agent proves who it is (besides an optional client certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic` (or the JSON `auth` message).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `Authorization: Bearer`.
    Bearer(Secret),
    /// No header: the client certificate authenticates.
    None,
}

/// A remote port the agent asks the gateway for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPort {
    /// TCP or UDP.
    pub network: Network,
    /// The port on the gateway.
    pub remote_port: u16,
    /// Where connections to it go on this side.
    pub local: Address,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The gateway.
    pub gateway: GatewayUrl,
    /// The credentials.
    pub credentials: Credentials,
    /// TLS towards the gateway (`None` for ws://).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent as `X-Client-ID`.
    pub client_id: String,
    /// Sent as `X-Group-ID` when set.
    pub group: Option<String>,
    /// Parallel WebSocket connections.
    pub replicas: usize,
    /// Streams served at once, over all replicas.
    pub max_concurrent_conns: usize,
    /// The wire format (and subprotocol).
    pub codec: Codec,
    /// Which targets this agent reaches.
    pub policy: Arc<Policy>,
    /// Remote ports to ask the gateway for.
    pub open_ports: Vec<OpenPort>,
    /// Budget for reaching the gateway, and for each target dial.
    pub connect_timeout: Duration,
    /// Time between pings.
    pub ping_interval: Duration,
    /// Pong deadline.
    pub pong_timeout: Duration,
    /// Drain budget on shutdown.
    pub drain_timeout: Duration,
    /// Idle timeout of a stream.
    pub idle_timeout: Duration,
    /// Idle timeout of a UDP stream.
    pub udp_idle_timeout: Duration,
    /// Log filter.
    pub log_level: String,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// The subprotocol of a codec.
pub fn subprotocol(codec: Codec) -> &'static str {
    match codec {
        Codec::Binary => SUBPROTOCOL_V1,
        Codec::AnyProxyJson => SUBPROTOCOL_ANYPROXY_JSON,
    }
}

impl AgentConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawAgentConfig = toml::from_str(text)
            .map_err(|e| ConfigError::new("", e.message().to_owned()).at_toml(&e, text))?;
        Self::validate(raw)
    }

    /// Checks every field of `raw`.
    pub fn validate(raw: RawAgentConfig) -> Result<Self, ConfigError> {
        let gateway =
            GatewayUrl::parse(&raw.gateway).map_err(|e| ConfigError::new("gateway", e))?;
        if !gateway.tls && !gateway.is_loopback() && !raw.insecure_plain {
            return Err(ConfigError::new(
                "gateway",
                "plain ws:// sends credentials and traffic unencrypted; use wss://, or set \
                 insecure_plain = true (only behind a trusted network or a TLS terminator)",
            ));
        }
        let codec = match raw.protocol.as_str() {
            SUBPROTOCOL_V1 => Codec::Binary,
            SUBPROTOCOL_ANYPROXY_JSON => Codec::AnyProxyJson,
            other => {
                return Err(ConfigError::new(
                    "protocol",
                    format!(
                        "{other:?}: expected \"{SUBPROTOCOL_V1}\" or \"{SUBPROTOCOL_ANYPROXY_JSON}\""
                    ),
                ));
            }
        };
        let has_cert = raw.client_cert.is_some() || raw.client_key.is_some();
        let credentials = credentials(&raw, has_cert, codec)?;
        let tls = match (gateway.tls, has_cert || raw.ca_file.is_some()) {
            (true, _) => Some(super::tls::client_config(
                raw.ca_file.as_deref(),
                raw.client_cert.as_deref(),
                raw.client_key.as_deref(),
            )?),
            (false, true) => {
                return Err(ConfigError::new(
                    "gateway",
                    "ca_file, client_cert and client_key need a wss:// gateway",
                ));
            }
            (false, false) => None,
        };
        let client_id = match raw.client_id {
            Some(id) => id,
            None => default_client_id(),
        };
        header_token("client_id", &client_id)?;
        if let Some(group) = &raw.group {
            header_token("group", group)?;
        }
        if raw.replicas == 0 || raw.replicas > MAX_REPLICAS {
            return Err(ConfigError::new(
                "replicas",
                format!("must be 1 to {MAX_REPLICAS}"),
            ));
        }
        if raw.max_concurrent_conns == 0 {
            return Err(ConfigError::new(
                "max_concurrent_conns",
                "must be at least 1",
            ));
        }
        let open_ports = open_ports(&raw.open_ports)?;
        if codec == Codec::AnyProxyJson && !open_ports.is_empty() {
            return Err(ConfigError::new(
                "open_ports",
                "the anyproxy-json protocol cannot carry remote port requests; use mtgate-tunnel-v1",
            ));
        }
        let own: Vec<Address> = open_ports.iter().map(|p| p.local.clone()).collect();
        let policy = Policy::new(
            &raw.forbidden_hosts,
            &raw.allowed_hosts,
            raw.allow_private,
            own,
        )
        .map_err(|(key, index, message)| ConfigError::new(format!("{key}[{index}]"), message))?;
        for (key, value) in [
            ("connect_timeout", raw.connect_timeout),
            ("ping_interval", raw.ping_interval),
            ("pong_timeout", raw.pong_timeout),
            ("idle_timeout", raw.idle_timeout),
            ("udp_idle_timeout", raw.udp_idle_timeout),
        ] {
            if value.0.is_zero() {
                return Err(ConfigError::new(key, "must be longer than 0s"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&raw.log_level).is_err() {
            return Err(ConfigError::new(
                "log_level",
                format!(
                    "{:?}: expected error, warn, info, debug, trace or a tracing directive",
                    raw.log_level
                ),
            ));
        }
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "metrics_listen",
                    format!("{text:?}: expected an address and port, such as \"127.0.0.1:9465\""),
                )
            })?),
        };
        Ok(Self {
            gateway,
            credentials,
            tls,
            client_id,
            group: raw.group,
            replicas: raw.replicas,
            max_concurrent_conns: raw.max_concurrent_conns,
            codec,
            policy: Arc::new(policy),
            open_ports,
            connect_timeout: raw.connect_timeout.0,
            ping_interval: raw.ping_interval.0,
            pong_timeout: raw.pong_timeout.0,
            drain_timeout: raw.drain_timeout.0,
            idle_timeout: raw.idle_timeout.0,
            udp_idle_timeout: raw.udp_idle_timeout.0,
            log_level: raw.log_level,
            metrics_listen,
        })
    }
}

fn credentials(
    raw: &RawAgentConfig,
    has_cert: bool,
    codec: Codec,
) -> Result<Credentials, ConfigError> {
    if raw.token.is_some() && (raw.username.is_some() || raw.password.is_some()) {
        return Err(ConfigError::new(
            "token",
            "set either username and password, or token, not both",
        ));
    }
    let credentials = match (&raw.username, &raw.password, &raw.token) {
        (Some(user), Some(password), None) => {
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "username",
                    "must be non-empty, without ':' or control characters",
                ));
            }
            if password.is_empty() {
                return Err(ConfigError::new("password", "must not be empty"));
            }
            Credentials::Basic {
                username: user.clone(),
                password: Secret(password.clone()),
            }
        }
        (Some(_), None, None) => {
            return Err(ConfigError::new(
                "password",
                "username is set without a password",
            ));
        }
        (None, Some(_), None) => {
            return Err(ConfigError::new(
                "username",
                "password is set without a username",
            ));
        }
        (None, None, Some(token)) => {
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    "token",
                    "must be non-empty, without spaces or control characters",
                ));
            }
            Credentials::Bearer(Secret(token.clone()))
        }
        (_, _, _) if has_cert => Credentials::None,
        (_, _, _) => {
            return Err(ConfigError::new(
                "username",
                "the gateway needs credentials: set username and password, token, or \
                 client_cert and client_key",
            ));
        }
    };
    if codec == Codec::AnyProxyJson && !matches!(credentials, Credentials::Basic { .. }) {
        return Err(ConfigError::new(
            "protocol",
            "anyproxy-json authenticates with an auth message: set username and password",
        ));
    }
    Ok(credentials)
}

fn open_ports(raw: &[RawOpenPort]) -> Result<Vec<OpenPort>, ConfigError> {
    let mut out: Vec<OpenPort> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let at = |key: &str| format!("open_ports[{i}].{key}");
        let network = match p.protocol.as_str() {
            "tcp" => Network::Tcp,
            "udp" => Network::Udp,
            other => {
                return Err(ConfigError::new(
                    at("protocol"),
                    format!("{other:?}: expected \"tcp\" or \"udp\""),
                ));
            }
        };
        if p.remote_port == 0 {
            return Err(ConfigError::new(at("remote_port"), "must be 1 to 65535"));
        }
        if p.local_port == 0 {
            return Err(ConfigError::new(at("local_port"), "must be 1 to 65535"));
        }
        let local = Address::from_host(&p.local_host, p.local_port)
            .map_err(|e| ConfigError::new(at("local_host"), format!("{:?}: {e}", p.local_host)))?;
        if out
            .iter()
            .any(|o| o.remote_port == p.remote_port && o.network == network)
        {
            return Err(ConfigError::new(
                at("remote_port"),
                format!("port {} is requested twice", p.remote_port),
            ));
        }
        out.push(OpenPort {
            network,
            remote_port: p.remote_port,
            local,
        });
    }
    Ok(out)
}

/// Client ids and groups travel in header fields: visible ASCII, no spaces, bounded.
fn header_token(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            key,
            format!("{value:?}: 1 to 128 visible ASCII characters, no spaces"),
        ));
    }
    Ok(())
}

/// The host name, or `mtgate-agent` when it cannot be read.
fn default_client_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 128 && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "mtgate-agent".to_owned())
}
