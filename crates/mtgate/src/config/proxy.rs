//! Validated settings of the SOCKS5, HTTP and mixed proxy listeners.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::IpNet;
use mtgate_client::Chain;

use crate::acl::Rule;
use crate::auth::lockout::LockoutPolicy;
pub use crate::auth::password::Password;

/// The protocols a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// SOCKS5, and SOCKS4/4a on the same port.
    Socks5,
    /// HTTP forward proxy and CONNECT.
    Http,
    /// All of them, told apart by the first byte.
    Mixed,
}

impl ProxyKind {
    /// The config section name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Socks5 => "socks5",
            Self::Http => "http",
            Self::Mixed => "mixed",
        }
    }

    /// Whether it serves SOCKS.
    pub const fn socks(self) -> bool {
        matches!(self, Self::Socks5 | Self::Mixed)
    }

    /// Whether it serves HTTP.
    pub const fn http(self) -> bool {
        matches!(self, Self::Http | Self::Mixed)
    }
}
/// Where a listener's or user's connections go out.
#[derive(Debug, Clone)]
pub enum UpstreamConfig {
    /// Through a pool of these proxies (chains), round-robin with the defaults.
    Members(Vec<Chain>),
    /// Through the named `[[pool]]`.
    Pool(String),
}

/// One proxy user.
#[derive(Debug, Clone)]
pub struct ProxyUser {
    /// Name (logs, metrics).
    pub name: String,
    /// How the password is stored.
    pub password: Password,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// Bytes per second per direction, over all the user's tunnels.
    pub bandwidth: Option<u64>,
    /// Rules checked before the listener's.
    pub rules: Vec<Rule>,
    /// This user's upstream, replacing the listener's.
    pub upstream: Option<UpstreamConfig>,
    /// This user's agent group when the listener goes through a gateway.
    pub agent_group: Option<String>,
}

/// HTTP-specific settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Ports CONNECT may reach.
    pub connect_ports: Vec<RangeInclusive<u16>>,
    /// Add `Via`.
    pub via: bool,
    /// Realm of the 407 challenge.
    pub realm: String,
    /// Largest request head.
    pub max_header_size: usize,
    /// Most header fields.
    pub max_headers: usize,
}

/// One `[[socks5]]`, `[[http]]` or `[[mixed]]` listener.
#[derive(Debug, Clone)]
pub struct ProxyListener {
    /// The protocols.
    pub kind: ProxyKind,
    /// Name.
    pub name: String,
    /// Addresses to bind.
    pub listen: Vec<SocketAddr>,
    /// Unauthenticated beyond loopback, on purpose.
    pub open: bool,
    /// Users, sorted by name (none: no authentication).
    pub users: Vec<ProxyUser>,
    /// Rules for everyone, after each user's own.
    pub rules: Vec<Rule>,
    /// Serve UDP ASSOCIATE.
    pub udp: bool,
    /// Serve BIND.
    pub bind: bool,
    /// Connection cap.
    pub max_connections: Option<usize>,
    /// Relay plain TCP tunnels with splice(2).
    pub splice: bool,
    /// Deadline for the client's side of the handshake.
    pub handshake_timeout: Duration,
    /// Idle timeout of tunnels (and of HTTP keep-alive connections).
    pub idle_timeout: Duration,
    /// Budget for reaching a destination.
    pub connect_timeout: Duration,
    /// Idle timeout of UDP associations.
    pub udp_idle_timeout: Duration,
    /// Authentication-failure lockout.
    pub lockout: LockoutPolicy,
    /// Peers that send a PROXY protocol header.
    pub proxy_protocol: Vec<IpNet>,
    /// The listener's upstream.
    pub upstream: Option<UpstreamConfig>,
    /// TLS client settings for `https://` upstream proxies; `None`: the public roots.
    pub upstream_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The `[[gateway]]` whose agents carry the traffic, if any.
    pub gateway: Option<String>,
    /// The agent group of connections without a user, or of users without their own.
    pub agent_group: Option<String>,
    /// HTTP settings (used by http and mixed listeners).
    pub http: HttpSettings,
}

impl ProxyListener {
    /// Whether an address is bound beyond loopback.
    pub fn exposed(&self) -> bool {
        self.listen.iter().any(|a| !a.ip().is_loopback())
    }
}
