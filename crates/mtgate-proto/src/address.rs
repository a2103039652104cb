//! A destination as proxies name it: a socket address, or a domain name and a port that the
//! proxy resolves.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Longest domain name the SOCKS wire formats can carry (one length byte).
pub const MAX_DOMAIN_LEN: usize = 255;

/// A destination: an IP socket address or a domain name with a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Socket(SocketAddr),
    /// A domain name (never empty, at most 255 bytes, no brackets) and a port.
    Domain(String, u16),
}

/// Why a string is not a `host:port` destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `:port` suffix, or a port that is not a number in 0..=65535.
    #[error("missing or invalid port")]
    Port,
    /// An empty host.
    #[error("empty host")]
    EmptyHost,
    /// A host longer than 255 bytes.
    #[error("host longer than {MAX_DOMAIN_LEN} bytes")]
    HostTooLong,
    /// A bracketed host that is not an IPv6 literal, or a host with characters that cannot
    /// appear in a name (whitespace, `/`, `@`, brackets, control characters).
    #[error("invalid host")]
    InvalidHost,
}

impl Address {
    /// A domain destination, checked for length and forbidden characters. IP literals become
    /// [`Address::Socket`].
    pub fn from_host(host: &str, port: u16) -> Result<Self, AddressError> {
        let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Some(inner) = unbracketed {
            let ip: Ipv6Addr = inner.parse().map_err(|_| AddressError::InvalidHost)?;
            return Ok(Self::Socket(SocketAddr::new(IpAddr::V6(ip), port)));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Self::Socket(SocketAddr::new(ip, port)));
        }
        if host.is_empty() {
            return Err(AddressError::EmptyHost);
        }
        if host.len() > MAX_DOMAIN_LEN {
            return Err(AddressError::HostTooLong);
        }
        let bad = |c: char| c.is_whitespace() || c.is_control() || "/@[]\\".contains(c);
        if host.contains(bad) {
            return Err(AddressError::InvalidHost);
        }
        Ok(Self::Domain(host.to_owned(), port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Socket(addr) => addr.port(),
            Self::Domain(_, port) => *port,
        }
    }

    /// The host as it appears in `host:port` (IPv6 without brackets).
    pub fn host(&self) -> String {
        match self {
            Self::Socket(addr) => addr.ip().to_string(),
            Self::Domain(name, _) => name.clone(),
        }
    }

    /// The host in URI/authority form: IPv6 literals bracketed.
    pub fn host_for_authority(&self) -> String {
        match self {
            Self::Socket(SocketAddr::V6(addr)) => format!("[{}]", addr.ip()),
            other => other.host(),
        }
    }

    /// The unspecified IPv4 address with port 0, which SOCKS uses for "any".
    pub const fn unspecified() -> Self {
        Self::Socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(addr) => addr.fmt(f),
            Self::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s.rsplit_once(':').ok_or(AddressError::Port)?;
        if host.contains(':') && !host.starts_with('[') {
            // A bare IPv6 address has colons of its own; it must be bracketed.
            return Err(AddressError::InvalidHost);
        }
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::Port);
        }
        let port: u16 = port.parse().map_err(|_| AddressError::Port)?;
        Self::from_host(host, port)
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Self::Socket(addr)
    }
}

impl From<(IpAddr, u16)> for Address {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        Self::Socket(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "example.com:443".parse::<Address>().unwrap(),
            Address::Domain("example.com".into(), 443)
        );
        assert_eq!(
            "[::1]:80".parse::<Address>().unwrap(),
            Address::Socket("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            "10.0.0.1:1".parse::<Address>().unwrap(),
            Address::Socket("10.0.0.1:1".parse().unwrap())
        );
    }

    #[test]
    fn rejects_bad_destinations() {
        assert_eq!("example.com".parse::<Address>(), Err(AddressError::Port));
        assert_eq!("example.com:x".parse::<Address>(), Err(AddressError::Port));
        assert_eq!(
            "example.com:65536".parse::<Address>(),
            Err(AddressError::Port)
        );
        assert_eq!(":80".parse::<Address>(), Err(AddressError::EmptyHost));
        assert_eq!("::1:80".parse::<Address>(), Err(AddressError::InvalidHost));
        assert_eq!(
            "[nope]:80".parse::<Address>(),
            Err(AddressError::InvalidHost)
        );
        assert_eq!("a b:80".parse::<Address>(), Err(AddressError::InvalidHost));
        let long = format!("{}:1", "a".repeat(256));
        assert_eq!(long.parse::<Address>(), Err(AddressError::HostTooLong));
    }

    #[test]
    fn displays_as_authority() {
        let v6 = Address::Socket("[2001:db8::1]:443".parse().unwrap());
        assert_eq!(v6.to_string(), "[2001:db8::1]:443");
        assert_eq!(v6.host_for_authority(), "[2001:db8::1]");
        assert_eq!(v6.host(), "2001:db8::1");
    }
}
