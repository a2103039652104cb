//! `[[socks5]]`, `[[http]]` and `[[mixed]]` as written. The three kinds share one shape;
//! fields that make sense for one kind only are refused on the others by validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::units::{Dur, Size};

/// One proxy listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyListener {
    /// Name used in logs and metrics (default: the kind, then "-2", "-3"…).
    pub name: Option<String>,
    /// Addresses to listen on; `[::]:PORT` serves IPv4 and IPv6.
    pub listen: Vec<String>,
    /// Serve without authentication on a non-loopback address. Required (and loudly logged)
    /// when there are no users and an address is not loopback.
    #[serde(default)]
    pub open: bool,
    /// Users: name → password (argon2 PHC string, or plain text), or a table with limits.
    #[serde(default)]
    pub users: BTreeMap<String, RawProxyUser>,
    /// A file of `name:password` lines (argon2 PHC strings or plain text; `#` comments).
    pub users_file: Option<PathBuf>,
    /// Allow/deny rules for every user of the listener, checked after the user's own.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// HTTP and mixed: ports CONNECT may reach (default: 443 only).
    pub connect_ports: Option<Vec<RawPorts>>,
    /// SOCKS5 and mixed: serve UDP ASSOCIATE (default true).
    pub udp: Option<bool>,
    /// SOCKS5 and mixed: serve BIND (default true).
    pub bind: Option<bool>,
    /// Connections open at once on this listener.
    pub max_connections: Option<usize>,
    /// Relay plain TCP tunnels with splice(2) (Linux; not with a user bandwidth limit): no
    /// copy through user space, at the cost of two pipes (four descriptors) per tunnel.
    #[serde(default)]
    pub splice: bool,
    /// Time a client has for its greeting, authentication and request (or HTTP head).
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Dur,
    /// A tunnel with no traffic either way for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    /// Budget for resolving and connecting to a destination (or through the upstream).
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    /// A UDP association with no datagram either way for this long ends.
    pub udp_idle_timeout: Option<Dur>,
    /// Lockout of client addresses after failed authentications.
    #[serde(default)]
    pub auth_lockout: RawLockout,
    /// Peers (addresses or CIDRs) that must start connections with a PROXY protocol v1/v2
    /// header, e.g. a load balancer; the client address is taken from the header.
    #[serde(default)]
    pub proxy_protocol: Vec<String>,
    /// Send every connection through an upstream: proxy URLs (`socks5h://…`, `http://…`),
    /// each a pool member; a member may be a chain `"url -> url"`.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Send every connection through this `[[pool]]` instead (its health checks, strategy and
    /// retries apply); not together with `upstream`.
    pub upstream_pool: Option<String>,
    /// TLS to `https://` upstream proxies (of the listener and its users): `ca` to verify
    /// them against instead of the public roots, `cert` and `key` for mTLS.
    pub upstream_tls: Option<super::raw_pool::RawPoolTls>,
    /// Send every connection through the agents of this `[[gateway]]` (the reverse tunnel);
    /// the agent group is the user's `agent_group`, else the user name, else `agent_group`.
    pub gateway: Option<String>,
    /// The agent group for connections without a user (or users without their own).
    pub agent_group: Option<String>,
    /// HTTP and mixed: add a `Via` header to forwarded requests and responses.
    pub via: Option<bool>,
    /// HTTP and mixed: the realm of the 407 challenge (default "mtgate").
    pub realm: Option<String>,
    /// HTTP and mixed: largest request head (request line and headers).
    pub max_header_size: Option<Size>,
    /// HTTP and mixed: most header fields in a request.
    pub max_headers: Option<usize>,
}

/// A user entry: a password, or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawProxyUser {
    /// `alice = "$argon2id$…"` or `alice = "plain password"`.
    Password(String),
    /// `alice = { password = "…", max_connections = 10, … }`.
    Table(RawProxyUserTable),
}

/// The table form of a user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyUserTable {
    /// argon2 PHC string (`mtgate hash-password`), or plain text.
    pub password: String,
    /// Connections this user may have open at once.
    pub max_connections: Option<usize>,
    /// Bytes per second in each direction, over all the user's tunnels.
    pub bandwidth: Option<Size>,
    /// Rules checked before the listener's.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Upstream for this user only (same form as the listener's).
    #[serde(default)]
    pub upstream: Vec<String>,
    /// A `[[pool]]` for this user only, instead of `upstream`.
    pub upstream_pool: Option<String>,
    /// With the listener's `gateway`: this user's agent group (default: the user name).
    pub agent_group: Option<String>,
}

/// One allow/deny rule. Empty lists match anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// "allow" or "deny".
    pub action: String,
    /// Host names: "example.com", "*.example.com" (and the name itself), or "*".
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Networks of the (resolved) destination address: "10.0.0.0/8", "::1/128", "127.0.0.1".
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Ports: 443 or "8000-8999".
    #[serde(default)]
    pub ports: Vec<RawPorts>,
    /// "connect", "bind", "udp".
    #[serde(default)]
    pub commands: Vec<String>,
}

/// A port or an inclusive range.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPorts {
    /// `443`.
    Port(u16),
    /// `"8000-8999"` (or `"443"`).
    Range(String),
}

/// `auth_lockout = { failures = 5, window = "1m", duration = "5m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    /// Failures from one address within `window` that lock it out (0: never).
    #[serde(default = "defaults::lockout_failures")]
    pub failures: u32,
    /// The counting window.
    #[serde(default = "defaults::lockout_window")]
    pub window: Dur,
    /// How long a locked-out address is refused.
    #[serde(default = "defaults::lockout_duration")]
    pub duration: Dur,
}

impl Default for RawLockout {
    fn default() -> Self {
        Self {
            failures: defaults::lockout_failures(),
            window: defaults::lockout_window(),
            duration: defaults::lockout_duration(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    use super::Dur;

    pub(super) fn handshake_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub(super) fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub(super) fn lockout_failures() -> u32 {
        5
    }
    pub(super) fn lockout_window() -> Dur {
        Dur(Duration::from_secs(60))
    }
    pub(super) fn lockout_duration() -> Dur {
        Dur(Duration::from_secs(300))
    }
}
