//! `[[pool]]`, `[[tcp]]` and `[admin]` exactly as written; [`super::pool`] validates them.

use serde::Deserialize;

use super::units::Dur;

/// One `[[pool]]`: named upstream servers and how to pick among them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// The name listeners and the admin API use.
    pub name: String,
    /// "round-robin", "weighted", "random", "least-connections", "hash", "consistent-hash",
    /// "p2c", "fastest" or "first-available".
    #[serde(default = "defaults::strategy")]
    pub strategy: String,
    /// The servers.
    pub servers: Vec<RawPoolServer>,
    /// Budget for one attempt: dial and every proxy handshake on the way.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    /// After a server comes back, its weight ramps up over this time ("0s": at once).
    #[serde(default = "defaults::zero")]
    pub slow_start: Dur,
    /// Active health checks (none when absent).
    pub health: Option<RawHealth>,
    /// Passive ejection of failing servers.
    #[serde(default)]
    pub ejection: RawEjection,
    /// Retries and their budget.
    #[serde(default)]
    pub retry: RawRetry,
    /// TLS to the `wss://` servers (public roots and each server's host name when absent).
    pub tls: Option<RawPoolTls>,
}

/// `[pool.tls]`: how mtgate speaks TLS to the pool's `wss://` servers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolTls {
    /// PEM CA certificates (or the servers' own self-signed certificates) to verify the
    /// servers against, instead of the public roots.
    pub ca: Option<std::path::PathBuf>,
    /// The name the servers' certificates must hold, sent as SNI (default: each server's host).
    pub server_name: Option<String>,
    /// PEM client certificate chain, for servers that require mTLS (with `key`).
    pub cert: Option<std::path::PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<std::path::PathBuf>,
}

/// One server of a pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolServer {
    /// `tcp://host:port` (or `ws://host[:port]`) for a backend, `wss://host[:port]` for a
    /// backend reached over TLS, or a proxy URL (`socks5://…`, `http://…`) for a member that
    /// carries each connection to the client's own destination.
    pub url: String,
    /// Its name in stats and the admin API (default: the URL without credentials).
    pub name: Option<String>,
    /// Proxies to pass through on the way to a `tcp://` backend, first hop first.
    #[serde(default)]
    pub via: Vec<String>,
    /// Share for the weighted strategies (at least 1).
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Used only when no other server is available.
    #[serde(default)]
    pub backup: bool,
    /// Connections open through it at once (none: no cap).
    pub max_connections: Option<u32>,
}

/// `[pool.health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// "tcp": the connection opens; "http": a GET answers with an expected status;
    /// "websocket": an upgrade of `path` gets a valid 101.
    #[serde(default = "defaults::check")]
    pub check: String,
    /// Where to connect through each server (default: the server's own address).
    pub target: Option<String>,
    /// HTTP check: the path.
    #[serde(default = "defaults::path")]
    pub path: String,
    /// HTTP check: the Host header (default: the target's host).
    pub host: Option<String>,
    /// HTTP check: accepted statuses, "200-399" or "204".
    #[serde(default = "defaults::expect")]
    pub expect: String,
    /// Time between checks of a server.
    #[serde(default = "defaults::interval")]
    pub interval: Dur,
    /// Budget for one check.
    #[serde(default = "defaults::check_timeout")]
    pub timeout: Dur,
    /// Random extra delay before each round, up to this (spreads checks of many pools).
    pub jitter: Option<Dur>,
    /// Successes in a row that bring a server back.
    #[serde(default = "defaults::rise")]
    pub rise: u32,
    /// Failures in a row that take it out.
    #[serde(default = "defaults::fall")]
    pub fall: u32,
}

/// `[pool.ejection]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEjection {
    /// Connect failures (timeouts included) in a row that eject a server.
    #[serde(default = "defaults::consecutive_failures")]
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one doubles it.
    #[serde(default = "defaults::base_time")]
    pub base_time: Dur,
    /// The longest ejection.
    #[serde(default = "defaults::max_time")]
    pub max_time: Dur,
    /// Most servers ejected at once, in percent of the pool (one may always be).
    #[serde(default = "defaults::max_ejected_percent")]
    pub max_ejected_percent: u32,
}

impl Default for RawEjection {
    fn default() -> Self {
        Self {
            consecutive_failures: defaults::consecutive_failures(),
            base_time: defaults::base_time(),
            max_time: defaults::max_time(),
            max_ejected_percent: defaults::max_ejected_percent(),
        }
    }
}

/// `[pool.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts in all for one connection, the first included.
    #[serde(default = "defaults::attempts")]
    pub attempts: u32,
    /// Budget for all attempts and pauses of one connection.
    #[serde(default = "defaults::deadline")]
    pub deadline: Dur,
    /// The first backoff ceiling between rounds (full jitter below it).
    #[serde(default = "defaults::backoff_base")]
    pub backoff_base: Dur,
    /// The largest backoff ceiling.
    #[serde(default = "defaults::backoff_cap")]
    pub backoff_cap: Dur,
    /// Retries allowed, in percent of connections over the last 10 s (0 turns retries off).
    #[serde(default = "defaults::budget_percent")]
    pub budget_percent: u32,
    /// Retries per second always allowed, whatever the traffic.
    #[serde(default = "defaults::budget_min_per_second")]
    pub budget_min_per_second: u32,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self {
            attempts: defaults::attempts(),
            deadline: defaults::deadline(),
            backoff_base: defaults::backoff_base(),
            backoff_cap: defaults::backoff_cap(),
            budget_percent: defaults::budget_percent(),
            budget_min_per_second: defaults::budget_min_per_second(),
        }
    }
}

/// One `[[tcp]]` listener: a port forwarded to a pool (a layer-4 load balancer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// Name in logs and metrics (default "tcp", "tcp-2", …).
    pub name: Option<String>,
    /// Addresses to listen on.
    pub listen: Vec<String>,
    /// The pool to forward to.
    pub pool: String,
    /// Send a PROXY protocol header to the backend: "v1" or "v2" (default: none).
    pub proxy_protocol: Option<String>,
    /// Connections open at once on this listener.
    pub max_connections: Option<usize>,
    /// A connection with no traffic either way for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
}

/// `[admin]`: the HTTP admin API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address to serve on (loopback unless you mean it).
    #[serde(default = "defaults::admin_listen")]
    pub listen: String,
    /// Bearer token every request must carry.
    pub token: Option<String>,
    /// A file holding the token (instead of `token`).
    pub token_file: Option<std::path::PathBuf>,
}

mod defaults {
    use std::time::Duration;

    use super::Dur;

    pub(super) fn strategy() -> String {
        "round-robin".into()
    }
    pub(super) fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(3))
    }
    pub(super) fn zero() -> Dur {
        Dur(Duration::ZERO)
    }
    pub(super) fn weight() -> u32 {
        1
    }
    pub(super) fn check() -> String {
        "tcp".into()
    }
    pub(super) fn path() -> String {
        "/".into()
    }
    pub(super) fn expect() -> String {
        "200-399".into()
    }
    pub(super) fn interval() -> Dur {
        Dur(Duration::from_secs(2))
    }
    pub(super) fn check_timeout() -> Dur {
        Dur(Duration::from_secs(1))
    }
    pub(super) fn rise() -> u32 {
        2
    }
    pub(super) fn fall() -> u32 {
        3
    }
    pub(super) fn consecutive_failures() -> u32 {
        3
    }
    pub(super) fn base_time() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn max_time() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub(super) fn max_ejected_percent() -> u32 {
        50
    }
    pub(super) fn attempts() -> u32 {
        3
    }
    pub(super) fn deadline() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn backoff_base() -> Dur {
        Dur(Duration::from_millis(50))
    }
    pub(super) fn backoff_cap() -> Dur {
        Dur(Duration::from_secs(2))
    }
    pub(super) fn budget_percent() -> u32 {
        20
    }
    pub(super) fn budget_min_per_second() -> u32 {
        10
    }
    pub(super) fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub(super) fn admin_listen() -> String {
        "127.0.0.1:9465".into()
    }
}
