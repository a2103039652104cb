//! Configuration: one strict TOML file, validated into types that cannot be invalid before
//! anything listens.
//!
//! - [`raw`]: the file as written (serde, `deny_unknown_fields`, defaults);
//! - [`validate`]: checks and conversion into [`Config`];
//! - [`units`]: durations and sizes;
//! - [`pool`] and [`raw_pool`]: upstream pools, `tcp` listeners and the admin API;
//!   [`pool_tls`]: TLS to `wss://` pool servers;
//! - [`proxy`] and [`raw_proxy`]: the SOCKS5, HTTP and mixed proxy listeners;
//! - [`gateway`] and [`raw_gateway`]: the tunnel gateway listeners agents dial in to;
//! - [`EMBEDDED_DEFAULT`]: what `mtgate run` uses without a file.

pub mod gateway;
pub mod middle;
pub mod pool;
pub mod pool_tls;
pub mod proxy;
pub mod raw;
pub mod raw_gateway;
pub mod raw_pool;
pub mod raw_proxy;
pub mod raw_websocket;
pub mod units;
pub mod validate;
mod validate_proxy;
pub mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::faketls::client_hello::SkewPolicy;
use mtgate_proto::mtproto::secret::Secret;

pub use middle::{AdTag, MiddleConfig, TelegramMode};
pub use validate::{ConfigError, SecretSource};

/// The configuration used when `mtgate run` is given no file: an MTProto proxy on port 8443
/// (IPv4 and IPv6) for padded and fake-TLS clients, with one generated secret, and metrics on
/// loopback.
pub const EMBEDDED_DEFAULT: &str = include_str!("embedded-default.toml");

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk (reloaded from there on SIGHUP).
    File(PathBuf),
    /// [`EMBEDDED_DEFAULT`].
    Embedded,
    /// Text generated from another form (the official command line); reloads re-read the
    /// files it names.
    Generated(String),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: Origin,
    /// Process-wide settings.
    pub server: ServerConfig,
    /// Metrics endpoint, if enabled.
    pub metrics: Option<SocketAddr>,
    /// Global limits.
    pub limits: Limits,
    /// How to reach Telegram.
    pub telegram: TelegramConfig,
    /// MTProto listeners.
    pub mtproto: Vec<MtprotoListener>,
    /// Upstream pools.
    pub pools: Vec<pool::PoolConfig>,
    /// Layer-4 listeners forwarding to pools.
    pub tcp: Vec<pool::TcpListenerConfig>,
    /// The admin API, if enabled.
    pub admin: Option<pool::AdminConfig>,
    /// SOCKS5, HTTP and mixed proxy listeners.
    pub proxies: Vec<proxy::ProxyListener>,
    /// WebSocket listeners forwarding to pools.
    pub websocket: Vec<websocket::WebsocketListenerConfig>,
    /// Tunnel gateways agents dial in to.
    pub gateway: Vec<gateway::GatewayConfig>,
}

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// User to drop privileges to after binding.
    pub user: Option<String>,
    /// Group to drop privileges to.
    pub group: Option<String>,
    /// Directory of the state file (generated secrets).
    pub state_dir: PathBuf,
    /// Log file, or stderr.
    pub log_file: Option<PathBuf>,
    /// Log filter.
    pub log_level: String,
    /// Drain deadline on SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Runtime worker threads.
    pub workers: Option<usize>,
}

/// Limits shared by all listeners.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Bytes per relay buffer.
    pub buffer_size: usize,
    /// Cap on bytes held in relay buffers.
    pub buffered_bytes: usize,
}

/// How to reach Telegram's DCs.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// Try IPv6 first.
    pub prefer_ipv6: bool,
    /// Budget for one DC connection.
    pub connect_timeout: Duration,
    /// DC for unknown indexes.
    pub default_dc: DcId,
    /// Replaced addresses per DC index.
    pub dc_overrides: HashMap<i16, Vec<SocketAddr>>,
    /// Default mode of listeners.
    pub mode: TelegramMode,
    /// The ad tag sent in middle mode (users may have their own).
    pub ad_tag: Option<AdTag>,
    /// Middle-proxy settings and files; present when a listener uses middle mode.
    pub middle: Option<Arc<MiddleConfig>>,
    /// The `[[pool]]` DC connections go out through; `None` dials the DCs directly.
    pub upstream_pool: Option<String>,
}

/// Client modes a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modes {
    /// Plain secrets: abridged and intermediate transports.
    pub classic: bool,
    /// `dd` secrets: padded intermediate without TLS.
    pub padded: bool,
    /// `ee` secrets: fake TLS.
    pub fake_tls: bool,
}

/// What to do with a valid hello whose SNI is not a configured domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSni {
    /// Treat it as a failure (relay to the cover site).
    Mask,
    /// Accept it.
    Accept,
}

/// Fake-TLS settings of a listener.
#[derive(Debug, Clone)]
pub struct FakeTls {
    /// Cover domains; the first goes into links.
    pub domains: Vec<String>,
    /// Accepted clock skew.
    pub skew: SkewPolicy,
    /// Policy for SNIs not in `domains`.
    pub unknown_sni: UnknownSni,
    /// Sizes of the fake certificate record.
    pub answer_size: RangeInclusive<usize>,
}

/// Where failed handshakes are relayed.
#[derive(Debug, Clone)]
pub struct Masking {
    /// Cover host.
    pub host: String,
    /// Cover port.
    pub port: u16,
    /// Connect budget.
    pub connect_timeout: Duration,
    /// Lifetime of a masked connection.
    pub max_duration: Duration,
    /// Bytes relayed each way at most.
    pub max_bytes: u64,
}

/// Anti-replay settings.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Fingerprints remembered (0: off).
    pub capacity: usize,
    /// Seconds a fake-TLS fingerprint is remembered.
    pub tls_window: u64,
}

/// One proxy user.
#[derive(Debug, Clone)]
pub struct User {
    /// Name (logs, metrics, links).
    pub name: String,
    /// The 16-byte key.
    pub secret: Secret,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// This user's ad tag (middle mode), instead of the global one.
    pub ad_tag: Option<AdTag>,
}

/// One `[[mtproto]]` listener.
#[derive(Debug, Clone)]
pub struct MtprotoListener {
    /// Name.
    pub name: String,
    /// Addresses to bind.
    pub listen: Vec<SocketAddr>,
    /// Accepted modes.
    pub modes: Modes,
    /// How clients reach Telegram.
    pub mode: TelegramMode,
    /// Host for links.
    pub public_host: Option<String>,
    /// Port for links.
    pub public_port: Option<u16>,
    /// Fast mode towards DCs.
    pub fast_mode: bool,
    /// Serve MTProto over HTTP (`POST /api`) too; only in middle mode.
    pub http_transport: bool,
    /// Connection cap for this listener.
    pub max_connections: Option<usize>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Largest client frame.
    pub max_frame: usize,
    /// Fake-TLS settings.
    pub fake_tls: FakeTls,
    /// Masking target; `None` means read and discard.
    pub masking: Option<Masking>,
    /// Anti-replay.
    pub replay: Replay,
    /// Users, in file order (sorted by name).
    pub users: Vec<User>,
}

impl Config {
    /// Reads and validates a file. `secrets` supplies "auto" secrets.
    pub fn load(path: &Path, secrets: &mut dyn SecretSource) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, Origin::File(path.to_owned()), secrets)
    }

    /// Validates TOML text.
    pub fn parse(
        text: &str,
        origin: Origin,
        secrets: &mut dyn SecretSource,
    ) -> Result<Self, ConfigError> {
        validate::validate(parse_raw(text)?, origin, secrets)
    }

    /// Loads the configuration from `origin` together with its state file (which holds the
    /// secrets of "auto" users). With `save`, secrets generated now are written to the state
    /// file; without, they are throw-away (for `check-config`).
    pub fn load_with_state(origin: Origin, save: bool) -> Result<Self, LoadError> {
        let text = match &origin {
            Origin::Embedded => EMBEDDED_DEFAULT.to_owned(),
            Origin::Generated(text) => text.clone(),
            Origin::File(path) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("", format!("cannot read {}: {e}", path.display()))
            })?,
        };
        let raw = parse_raw(&text)?;
        let dir = raw
            .server
            .state_dir
            .clone()
            .unwrap_or_else(crate::state::default_dir);
        let mut state = crate::state::StateFile::open(&dir, save)?;
        let config = validate::validate(raw, origin, &mut state)?;
        state.save()?;
        Ok(config)
    }
}

/// Parses TOML text into the raw (unvalidated) form.
pub fn parse_raw(text: &str) -> Result<raw::RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::new("", e.message().to_owned()).at_toml(&e, text))
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}
