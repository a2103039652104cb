//! A proxy: its kind, where it listens, and the credentials it wants.
//!
//! | scheme | protocol | who resolves the target's name | default port |
//! |---|---|---|---|
//! | `socks4://` | SOCKS4 | this library (IPv4 only) | 1080 |
//! | `socks4a://` | SOCKS4a | the proxy | 1080 |
//! | `socks5://` | SOCKS5 | this library | 1080 |
//! | `socks5h://` | SOCKS5 | the proxy | 1080 |
//! | `http://` | HTTP CONNECT | the proxy | 80 |
//! | `https://` | HTTP CONNECT inside TLS to the proxy | the proxy | 443 |
//!
//! Credentials come from the URL's user-info, percent-decoded:
//! `socks5h://user:p%40ss@[::1]:1080`. SOCKS4 has no password; its user name goes in USERID.

mod url;

use std::fmt;

pub use url::ProxyUrlError;

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// SOCKS4: IPv4 targets, resolved locally.
    Socks4,
    /// SOCKS4a: the proxy resolves names.
    Socks4a,
    /// SOCKS5, names resolved locally.
    Socks5,
    /// SOCKS5, names sent to the proxy.
    Socks5h,
    /// HTTP CONNECT over plain TCP.
    Http,
    /// HTTP CONNECT over TLS to the proxy.
    Https,
}

impl Kind {
    /// The URL scheme.
    pub const fn scheme(self) -> &'static str {
        match self {
            Self::Socks4 => "socks4",
            Self::Socks4a => "socks4a",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The kind for a URL scheme (case-insensitive). `socks` means `socks5h`.
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        Some(match scheme.to_ascii_lowercase().as_str() {
            "socks4" => Self::Socks4,
            "socks4a" => Self::Socks4a,
            "socks5" => Self::Socks5,
            "socks5h" | "socks" => Self::Socks5h,
            "http" => Self::Http,
            "https" => Self::Https,
            _ => return None,
        })
    }

    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
            _ => 1080,
        }
    }

    /// Whether target names are resolved by this library rather than by the proxy.
    pub const fn resolves_locally(self) -> bool {
        matches!(self, Self::Socks4 | Self::Socks5)
    }

    /// Whether this is a SOCKS5 proxy (which alone supports UDP ASSOCIATE and BIND here).
    pub const fn is_socks5(self) -> bool {
        matches!(self, Self::Socks5 | Self::Socks5h)
    }
}

/// A user name and password. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (empty for SOCKS4).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One proxy. Build it from a URL (`"socks5h://u:p@host:1080".parse()`) or with [`Proxy::new`].
///
/// `Display` prints the URL with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    kind: Kind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl Proxy {
    /// A proxy of `kind` at `host:port` (an IPv6 literal may be given with or without brackets).
    pub fn new(kind: Kind, host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.to_owned(),
            None => host,
        };
        Self {
            kind,
            host,
            port,
            credentials: None,
        }
    }

    /// The same proxy with credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// The protocol.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The host: a name or an IP literal, IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credentials, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The proxy's own address, as a destination for the previous hop of a chain.
    pub fn address(
        &self,
    ) -> Result<mtgate_proto::address::Address, mtgate_proto::address::AddressError> {
        mtgate_proto::address::Address::from_host(&self.host, self.port)
    }

    /// The full URL including the password, percent-encoded. Handle it like a secret.
    pub fn to_url_with_password(&self) -> String {
        url::format(self, true)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&url::format(self, false))
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

impl std::str::FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        url::parse(s)
    }
}
