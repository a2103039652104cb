//! The `gateway` URL: `wss://host[:port][/path]` or `ws://…`, split into what the dial and
//! the upgrade request need.

use std::net::IpAddr;

/// Where the gateway is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUrl {
    /// `wss` (true) or `ws`.
    pub tls: bool,
    /// The host: a name or an IP literal (no brackets).
    pub host: String,
    /// The port (default 443 for wss, 80 for ws).
    pub port: u16,
    /// The request target: path and query, starting with `/`.
    pub path: String,
}

impl GatewayUrl {
    /// Parses `wss://host[:port][/path]` or `ws://…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(format!("{text:?}: the URL must start with wss:// or ws://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(format!(
                "{text:?}: put credentials in username/password or token, not in the URL"
            ));
        }
        if path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#') {
            return Err(format!("{text:?}: invalid characters in the path"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("{text:?}: invalid host or port"))?;
        Ok(Self {
            tls,
            host,
            port,
            path,
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Whether the host is loopback (`localhost` or a loopback literal).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port,
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let v6 = host.parse::<std::net::Ipv6Addr>().is_ok();
    (valid || v6).then(|| (host.to_owned(), port))
}
