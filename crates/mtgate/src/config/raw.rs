//! The config file exactly as written: serde types with defaults. Nothing here is trusted;
//! [`super::validate`] turns it into [`super::Config`]. Every field is documented in
//! `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{Dur, Size};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Process-wide settings.
    #[serde(default)]
    pub server: RawServer,
    /// The Prometheus `/metrics` and `/stats` endpoint.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// Limits shared by every listener.
    #[serde(default)]
    pub limits: RawLimits,
    /// How to reach Telegram.
    #[serde(default)]
    pub telegram: RawTelegram,
    /// MTProto proxy listeners.
    #[serde(default)]
    pub mtproto: Vec<RawMtproto>,
    /// Upstream pools.
    #[serde(default)]
    pub pool: Vec<super::raw_pool::RawPool>,
    /// Layer-4 listeners forwarding to pools.
    #[serde(default)]
    pub tcp: Vec<super::raw_pool::RawTcp>,
    /// The admin API.
    pub admin: Option<super::raw_pool::RawAdmin>,
    /// SOCKS5 (and SOCKS4) proxy listeners.
    #[serde(default)]
    pub socks5: Vec<super::raw_proxy::RawProxyListener>,
    /// HTTP proxy listeners.
    #[serde(default)]
    pub http: Vec<super::raw_proxy::RawProxyListener>,
    /// Listeners serving SOCKS and HTTP on one port.
    #[serde(default)]
    pub mixed: Vec<super::raw_proxy::RawProxyListener>,
    /// WebSocket listeners forwarding to pools.
    #[serde(default)]
    pub websocket: Vec<super::raw_websocket::RawWebsocket>,
    /// Tunnel gateways agents dial in to.
    #[serde(default)]
    pub gateway: Vec<super::raw_gateway::RawGateway>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Drop privileges to this user after binding the listeners.
    pub user: Option<String>,
    /// Group to drop to (default: the user's primary group).
    pub group: Option<String>,
    /// Where generated secrets are kept.
    pub state_dir: Option<PathBuf>,
    /// Append logs to this file instead of stderr (reopened on SIGUSR1).
    pub log_file: Option<PathBuf>,
    /// Log filter, e.g. "info" or "mtgate=debug" (`RUST_LOG` overrides it).
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
    /// How long SIGTERM/SIGINT waits for connections to finish before closing them.
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace: Dur,
    /// Runtime worker threads (default: one per CPU).
    pub workers: Option<usize>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            user: None,
            group: None,
            state_dir: None,
            log_file: None,
            log_level: defaults::log_level(),
            shutdown_grace: defaults::shutdown_grace(),
            workers: None,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Serve metrics at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address of the endpoint (loopback by default; it is not authenticated).
    #[serde(default = "defaults::metrics_listen")]
    pub listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: defaults::metrics_listen(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Connections open at once across all listeners.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Size of each relay buffer (one per direction, taken only while data is in flight).
    #[serde(default = "defaults::buffer_size")]
    pub buffer_size: Size,
    /// Cap on bytes held in relay buffers; past it the longest-idle connections are closed.
    #[serde(default = "defaults::buffered_bytes")]
    pub buffered_bytes: Size,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_connections: defaults::max_connections(),
            buffer_size: defaults::buffer_size(),
            buffered_bytes: defaults::buffered_bytes(),
        }
    }
}

/// `[telegram]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelegram {
    /// Try a DC's IPv6 addresses before its IPv4 ones.
    #[serde(default)]
    pub prefer_ipv6: bool,
    /// Budget for connecting to a DC (all its addresses).
    #[serde(default = "defaults::dc_connect_timeout")]
    pub connect_timeout: Dur,
    /// DC used when a client asks for one the table does not know.
    #[serde(default = "defaults::default_dc")]
    pub default_dc: i16,
    /// Replace the addresses of a DC: `"2" = ["149.154.167.51:443", "[2001:67c:4e8:f002::a]:443"]`.
    /// Keys are DC indexes as clients send them: `"-2"` media, `"10002"` test, `"203"` CDN.
    #[serde(default)]
    pub dc_overrides: BTreeMap<String, Vec<String>>,
    /// "direct" (to the DCs) or "middle" (through Telegram's middle proxies, needed for the ad
    /// tag). Listeners may override it.
    pub mode: Option<String>,
    /// The 16-byte proxy tag from @MTProxybot (32 hex digits); middle mode only.
    pub ad_tag: Option<String>,
    /// Middle-proxy mode settings.
    #[serde(default)]
    pub middle: RawMiddle,
    /// A `[[pool]]` of proxy servers (or `direct`) that DC connections go through (direct mode).
    pub upstream_pool: Option<String>,
}

impl Default for RawTelegram {
    fn default() -> Self {
        Self {
            prefer_ipv6: false,
            connect_timeout: defaults::dc_connect_timeout(),
            default_dc: defaults::default_dc(),
            dc_overrides: BTreeMap::new(),
            mode: None,
            ad_tag: None,
            middle: RawMiddle::default(),
            upstream_pool: None,
        }
    }
}

/// `[telegram.middle]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMiddle {
    /// The proxy secret file (getProxySecret; the official `--aes-pwd`).
    pub proxy_secret_file: Option<PathBuf>,
    /// The middle-proxy list (getProxyConfig; the official `proxy-multi.conf`).
    pub proxy_config_file: Option<PathBuf>,
    /// NAT mappings `"local-ip:public-ip"` (the official `--nat-info`).
    #[serde(default)]
    pub nat_info: Vec<String>,
    /// Serve clients in direct mode while no middle proxy of their DC is reachable.
    #[serde(default)]
    pub fallback_to_direct: bool,
    /// Connections kept open per middle proxy (overrides the file's `min_connections`).
    pub min_connections: Option<u32>,
    /// Connections opened per middle proxy at most (overrides the file's `max_connections`).
    pub max_connections: Option<u32>,
    /// Clients multiplexed over one middle-proxy connection at most.
    #[serde(default = "defaults::clients_per_connection")]
    pub clients_per_connection: usize,
    /// Bytes queued towards one client at most; a client that falls further behind is closed.
    #[serde(default = "defaults::client_queue")]
    pub client_queue: Size,
    /// Keepalive interval; a connection silent for three intervals is replaced.
    #[serde(default = "defaults::ping_interval")]
    pub ping_interval: Dur,
    /// How often both files are read again (SIGHUP also does).
    #[serde(default = "defaults::refresh_interval")]
    pub refresh_interval: Dur,
}

impl Default for RawMiddle {
    fn default() -> Self {
        Self {
            proxy_secret_file: None,
            proxy_config_file: None,
            nat_info: Vec::new(),
            fallback_to_direct: false,
            min_connections: None,
            max_connections: None,
            clients_per_connection: defaults::clients_per_connection(),
            client_queue: defaults::client_queue(),
            ping_interval: defaults::ping_interval(),
            refresh_interval: defaults::refresh_interval(),
        }
    }
}

/// One `[[mtproto]]` listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMtproto {
    /// Name used in logs, metrics and links (default "mtproto", "mtproto-2", …).
    pub name: Option<String>,
    /// Addresses to listen on; `[::]:PORT` serves IPv4 and IPv6.
    pub listen: Vec<String>,
    /// Accepted client modes: "classic" (plain secret), "padded" (dd), "fake-tls" (ee).
    #[serde(default = "defaults::modes")]
    pub modes: Vec<String>,
    /// Host name or IP put in links (default: the listen address, else this host's address).
    pub public_host: Option<String>,
    /// Port put in links (default: the listen port).
    pub public_port: Option<u16>,
    /// "direct" or "middle" for this listener (default: `telegram.mode`).
    pub mode: Option<String>,
    /// Pass DC→client bytes through without re-encryption (see docs/fake-tls-and-masking.md).
    #[serde(default = "defaults::yes")]
    pub fast_mode: bool,
    /// Also serve MTProto over HTTP (`POST /api`), middle mode only (see
    /// docs/middle-proxy.md). Off by default: it needs no secret.
    #[serde(default)]
    pub http_transport: bool,
    /// Connections open at once on this listener.
    pub max_connections: Option<usize>,
    /// Time a client has to complete its handshake.
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Dur,
    /// A connection with no traffic either way for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    /// Largest transport frame a client may send.
    #[serde(default = "defaults::max_frame")]
    pub max_frame: Size,
    /// Fake-TLS settings.
    #[serde(default)]
    pub fake_tls: RawFakeTls,
    /// What unauthenticated peers see.
    #[serde(default)]
    pub masking: RawMasking,
    /// Anti-replay cache.
    #[serde(default)]
    pub replay: RawReplay,
    /// Users: name → secret (32 hex digits or "auto"), or a table with limits.
    #[serde(default)]
    pub users: BTreeMap<String, RawUser>,
}

/// `[mtproto.fake_tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFakeTls {
    /// Cover domains (SNI). The first is used in links and as the default masking host.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Accepted client clock skew: `{ ahead = "3s", behind = "10m" }` or "ignore".
    #[serde(default)]
    pub clock_skew: Option<RawSkew>,
    /// What to do with a valid hello for a domain not in `domains`: "mask" or "accept".
    #[serde(default)]
    pub unknown_sni: Option<String>,
    /// Range of sizes of the fake certificate record, `[min, max]` bytes.
    pub answer_size: Option<[usize; 2]>,
}

/// The clock-skew policy.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSkew {
    /// `"ignore"`.
    Keyword(String),
    /// `{ ahead = "3s", behind = "10m" }`.
    Window {
        /// How far in the future a client clock may be.
        ahead: Dur,
        /// How far in the past.
        behind: Dur,
    },
}

/// `[mtproto.masking]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMasking {
    /// Relay failed handshakes to the cover site (otherwise: read and discard, answer nothing).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Cover host (default: the first fake-TLS domain).
    pub host: Option<String>,
    /// Cover port.
    #[serde(default = "defaults::mask_port")]
    pub port: u16,
    /// Budget for connecting to the cover host.
    #[serde(default = "defaults::mask_connect_timeout")]
    pub connect_timeout: Dur,
    /// Longest a masked connection lives.
    #[serde(default = "defaults::mask_lifetime")]
    pub max_duration: Dur,
    /// Most bytes relayed each way for a masked connection.
    #[serde(default = "defaults::mask_bytes")]
    pub max_bytes: Size,
}

impl Default for RawMasking {
    fn default() -> Self {
        Self {
            enabled: true,
            host: None,
            port: defaults::mask_port(),
            connect_timeout: defaults::mask_connect_timeout(),
            max_duration: defaults::mask_lifetime(),
            max_bytes: defaults::mask_bytes(),
        }
    }
}

/// `[mtproto.replay]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    /// Client fingerprints remembered (0 disables the cache).
    #[serde(default = "defaults::replay_capacity")]
    pub capacity: usize,
    /// How long a fake-TLS fingerprint is remembered (default: the clock-skew window).
    pub window: Option<Dur>,
}

impl Default for RawReplay {
    fn default() -> Self {
        Self {
            capacity: defaults::replay_capacity(),
            window: None,
        }
    }
}

/// A user entry: a bare secret, or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUser {
    /// `alice = "0123…"` or `alice = "auto"`.
    Secret(String),
    /// `alice = { secret = "…", max_connections = 100 }`.
    Table(RawUserTable),
}

/// The table form of a user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserTable {
    /// 32 hex digits, or "auto" to generate one and keep it in the state directory.
    pub secret: String,
    /// Connections this user may have open at once.
    pub max_connections: Option<usize>,
    /// This user's ad tag (middle mode), instead of `telegram.ad_tag`.
    pub ad_tag: Option<String>,
}

mod defaults {
    use super::*;

    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn log_level() -> String {
        "info".into()
    }
    pub(super) fn shutdown_grace() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub(super) fn metrics_listen() -> String {
        "127.0.0.1:9464".into()
    }
    pub(super) fn max_connections() -> usize {
        65_536
    }
    pub(super) fn buffer_size() -> Size {
        Size(64 << 10)
    }
    pub(super) fn buffered_bytes() -> Size {
        Size(256 << 20)
    }
    pub(super) fn dc_connect_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn default_dc() -> i16 {
        2
    }
    pub(super) fn modes() -> Vec<String> {
        vec!["padded".into(), "fake-tls".into()]
    }
    pub(super) fn handshake_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub(super) fn max_frame() -> Size {
        Size(mtgate_proto::mtproto::transport::DEFAULT_MAX_FRAME as u64)
    }
    pub(super) fn mask_port() -> u16 {
        443
    }
    pub(super) fn mask_connect_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub(super) fn mask_lifetime() -> Dur {
        Dur(Duration::from_secs(60))
    }
    pub(super) fn mask_bytes() -> Size {
        Size(16 << 20)
    }
    pub(super) fn clients_per_connection() -> usize {
        1024
    }
    pub(super) fn client_queue() -> Size {
        Size(4 << 20)
    }
    pub(super) fn ping_interval() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub(super) fn refresh_interval() -> Dur {
        Dur(Duration::from_secs(24 * 3600))
    }
    pub(super) fn replay_capacity() -> usize {
        65_536
    }
}
