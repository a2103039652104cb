//! Upstream pools, `tcp` listeners and the admin API, validated.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use mtgate_client::pool::{
    Backoff, EjectionPolicy, HealthCheck, Probe, RetryBudget, RetryPolicy, Strategy, Upstream,
};
use mtgate_client::{Address, Chain};

use super::pool_tls::{PoolTls, ServerTls};
use super::raw_pool::{RawAdmin, RawHealth, RawPool, RawPoolServer, RawTcp};
use super::validate::{ConfigError, check_name, parse_addr, positive};

/// A named pool of upstream servers.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Its name.
    pub name: String,
    /// How a server is picked.
    pub strategy: Strategy,
    /// The servers, in configuration order.
    pub servers: Vec<PoolServer>,
    /// Budget for one attempt.
    pub connect_timeout: Duration,
    /// Weight ramp-up after a recovery.
    pub slow_start: Duration,
    /// Active health checks.
    pub health: Option<HealthCheck>,
    /// Passive ejection.
    pub ejection: EjectionPolicy,
    /// Retries.
    pub retry: RetryPolicy,
    /// The retry budget (none when retries are off).
    pub budget: Option<RetryBudget>,
    /// `[pool.tls]`: for `wss://` servers and `https://` proxies (`None`: not given).
    pub tls: Option<PoolTls>,
}

/// The server URL of a member that connects straight to the target (e.g. a backup behind
/// proxies).
pub const DIRECT: &str = "direct";

/// One server of a pool, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolServer {
    /// Its name in stats and the admin API.
    pub name: String,
    /// The URL as written (`tcp://host:port` or a proxy URL).
    pub url: String,
    /// Proxies on the way, as written.
    pub via: Vec<String>,
    /// The backend it always connects to (`tcp://`), or none for a proxy member.
    pub destination: Option<Address>,
    /// Weight.
    pub weight: u32,
    /// Used only when nothing else is available.
    pub backup: bool,
    /// Connection cap.
    pub max_connections: Option<u32>,
    /// TLS to the backend (`wss://` servers).
    pub tls: Option<ServerTls>,
}

/// A backend URL: `tcp://` and `ws://` are plain, `wss://` is TLS; `ws` and `wss` have default
/// ports.
fn backend_url(url: &str) -> Option<(&str, bool, Option<u16>)> {
    if let Some(rest) = url.strip_prefix("tcp://") {
        Some((rest, false, None))
    } else if let Some(rest) = url.strip_prefix("ws://") {
        Some((rest, false, Some(80)))
    } else {
        url.strip_prefix("wss://")
            .map(|rest| (rest, true, Some(443)))
    }
}

fn backend_address(
    at: &str,
    url: &str,
    hostport: &str,
    port: Option<u16>,
) -> Result<Address, ConfigError> {
    let at = format!("{at}.url");
    if hostport.contains(['/', '?', '#']) {
        return Err(ConfigError::new(
            at,
            format!("{url:?}: give host and port only; the client's path is passed on as it is"),
        ));
    }
    // A missing port takes the scheme's default; a bare IPv6 literal is refused by the parser.
    let has_port = match hostport.strip_prefix('[') {
        Some(bracketed) => bracketed.contains("]:"),
        None => hostport.contains(':'),
    };
    let full = match port {
        Some(port) if !has_port => format!("{hostport}:{port}"),
        _ => hostport.to_owned(),
    };
    full.parse::<Address>()
        .map_err(|e| ConfigError::new(at, format!("{url:?}: {e}")))
}

impl PoolServer {
    /// Parses one server of a pool whose TLS settings are `tls`; `at` names it in errors.
    pub fn parse(
        at: &str,
        raw: &RawPoolServer,
        tls: Option<&PoolTls>,
    ) -> Result<Self, ConfigError> {
        let mut server_tls = None;
        let (destination, chain_urls) = match backend_url(&raw.url) {
            Some((hostport, is_tls, port)) => {
                let address = backend_address(at, &raw.url, hostport, port)?;
                if is_tls {
                    let public;
                    let pool_tls = match tls {
                        Some(tls) => tls,
                        None => {
                            public = PoolTls::public_roots();
                            &public
                        }
                    };
                    server_tls = Some(pool_tls.for_server(at, &address)?);
                }
                (Some(address), raw.via.clone())
            }
            None if raw.url == DIRECT => {
                if !raw.via.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.via"),
                        "a direct server goes through no proxy; use tcp:// with via, or a proxy URL",
                    ));
                }
                (None, Vec::new())
            }
            None => {
                if !raw.via.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.via"),
                        "only tcp://, ws:// and wss:// servers go through `via`; put the proxies in the url's chain instead",
                    ));
                }
                (None, vec![raw.url.clone()])
            }
        };
        let chain = Chain::from_urls(&chain_urls).map_err(|e| {
            ConfigError::new(
                at,
                format!("{e}; servers are tcp://host:port, ws://, wss://, socks4://, socks4a://, socks5://, socks5h://, http://, https:// proxy URLs, or \"direct\""),
            )
        })?;
        let name = match &raw.name {
            Some(name) => name.clone(),
            None => match &destination {
                Some(address) if chain.is_direct() => address.to_string(),
                Some(address) => format!("{chain} -> {address}"),
                None if chain.is_direct() => DIRECT.to_owned(),
                None => chain.to_string(),
            },
        };
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                "names are 1..=200 printable characters",
            ));
        }
        if raw.weight == 0 {
            return Err(ConfigError::new(
                format!("{at}.weight"),
                "must be at least 1",
            ));
        }
        if raw.max_connections == Some(0) {
            return Err(ConfigError::new(
                format!("{at}.max_connections"),
                "must be at least 1 (leave it out for no cap)",
            ));
        }
        Ok(Self {
            name,
            url: raw.url.clone(),
            via: raw.via.clone(),
            destination,
            weight: raw.weight,
            backup: raw.backup,
            max_connections: raw.max_connections,
            tls: server_tls,
        })
    }

    /// The pool member this server becomes.
    pub fn upstream(&self) -> Upstream {
        let urls = match self.destination {
            Some(_) => self.via.clone(),
            None if self.url == DIRECT => Vec::new(),
            None => vec![self.url.clone()],
        };
        // Validated in `parse`.
        let chain = Chain::from_urls(&urls).unwrap_or_else(|_| Chain::direct());
        let mut upstream = match &self.destination {
            Some(address) => Upstream::backend(chain, address.clone()),
            None => Upstream::new(chain),
        };
        upstream = upstream.name(self.name.clone()).weight(self.weight);
        if self.backup {
            upstream = upstream.backup();
        }
        if let Some(max) = self.max_connections {
            upstream = upstream.max_connections(max);
        }
        if let Some(tls) = &self.tls {
            upstream = upstream.tls(tls.backend());
        }
        upstream
    }
}

/// A `[[tcp]]` listener: a port forwarded to a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListenerConfig {
    /// Name in logs and metrics.
    pub name: String,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// The pool it forwards to.
    pub pool: String,
    /// PROXY protocol header towards backends.
    pub proxy_protocol: Option<ProxyHeader>,
    /// Connection cap of the listener.
    pub max_connections: Option<usize>,
    /// Idle timeout.
    pub idle_timeout: Duration,
}

/// Which PROXY protocol header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

/// The admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The bearer token.
    pub token: String,
}

/// Validates the `[[pool]]` sections.
pub fn pools(raw: Vec<RawPool>) -> Result<Vec<PoolConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut pools = Vec::with_capacity(raw.len());
    for (i, pool) in raw.into_iter().enumerate() {
        let at = format!("pool[{i}]");
        check_name(&format!("{at}.name"), &pool.name)?;
        if !names.insert(pool.name.clone()) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{:?} is used twice", pool.name),
            ));
        }
        pools.push(one_pool(&at, pool)?);
    }
    Ok(pools)
}

fn one_pool(at: &str, raw: RawPool) -> Result<PoolConfig, ConfigError> {
    let strategy = raw
        .strategy
        .parse::<Strategy>()
        .map_err(|e| ConfigError::new(format!("{at}.strategy"), e))?;
    if raw.servers.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.servers"),
            "needs at least one server",
        ));
    }
    let tls = raw
        .tls
        .as_ref()
        .map(|t| PoolTls::load(&format!("{at}.tls"), t))
        .transpose()?;
    let mut servers = Vec::with_capacity(raw.servers.len());
    let mut server_names = HashSet::new();
    for (j, server) in raw.servers.iter().enumerate() {
        let server = PoolServer::parse(&format!("{at}.servers[{j}]"), server, tls.as_ref())?;
        if !server_names.insert(server.name.clone()) {
            return Err(ConfigError::new(
                format!("{at}.servers[{j}]"),
                format!("two servers are named {:?}; give one a `name`", server.name),
            ));
        }
        servers.push(server);
    }
    let https = |url: &String| url.starts_with("https://");
    let uses_tls = |s: &PoolServer| s.tls.is_some() || https(&s.url) || s.via.iter().any(https);
    if tls.is_some() && !servers.iter().any(uses_tls) {
        return Err(ConfigError::new(
            format!("{at}.tls"),
            "applies to wss:// servers and https:// proxies, and the pool has neither",
        ));
    }
    let connect_timeout = positive(&format!("{at}.connect_timeout"), raw.connect_timeout.0)?;
    let health = raw
        .health
        .map(|h| health(&format!("{at}.health"), h, &servers))
        .transpose()?;

    let e = &raw.ejection;
    if e.consecutive_failures == 0 {
        return Err(ConfigError::new(
            format!("{at}.ejection.consecutive_failures"),
            "must be at least 1",
        ));
    }
    if e.max_ejected_percent > 100 {
        return Err(ConfigError::new(
            format!("{at}.ejection.max_ejected_percent"),
            "is a percentage, 0..=100",
        ));
    }
    let ejection = EjectionPolicy {
        consecutive_failures: e.consecutive_failures,
        base_time: positive(&format!("{at}.ejection.base_time"), e.base_time.0)?,
        max_time: e.max_time.0.max(e.base_time.0),
        max_ejected_fraction: f64::from(e.max_ejected_percent) / 100.0,
    };

    let r = &raw.retry;
    if r.attempts == 0 {
        return Err(ConfigError::new(
            format!("{at}.retry.attempts"),
            "must be at least 1 (1 means no retries)",
        ));
    }
    let retry = RetryPolicy {
        max_attempts: r.attempts,
        backoff: Backoff {
            base: r.backoff_base.0,
            cap: r.backoff_cap.0.max(r.backoff_base.0),
        },
        deadline: Some(positive(&format!("{at}.retry.deadline"), r.deadline.0)?),
    };
    let budget = (r.attempts > 1).then(|| RetryBudget {
        ratio: f64::from(r.budget_percent) / 100.0,
        min_per_second: r.budget_min_per_second,
        window: Duration::from_secs(10),
    });
    Ok(PoolConfig {
        name: raw.name,
        strategy,
        servers,
        connect_timeout,
        slow_start: raw.slow_start.0,
        health,
        ejection,
        retry,
        budget,
        tls,
    })
}

fn health(at: &str, raw: RawHealth, servers: &[PoolServer]) -> Result<HealthCheck, ConfigError> {
    let target = raw
        .target
        .as_deref()
        .map(|t| {
            t.parse::<Address>()
                .map_err(|e| ConfigError::new(format!("{at}.target"), format!("{t:?}: {e}")))
        })
        .transpose()?;
    if target.is_none() && servers.iter().any(|s| s.destination.is_none()) {
        return Err(ConfigError::new(
            format!("{at}.target"),
            "proxy servers need a target to check through them (e.g. \"example.net:80\")",
        ));
    }
    let probe = match raw.check.as_str() {
        "tcp" => Probe::Connect,
        "http" => {
            let expect = parse_status_range(&raw.expect).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.expect"),
                    format!(
                        "{:?}: write a status or a range like \"200-399\"",
                        raw.expect
                    ),
                )
            })?;
            if !raw.path.starts_with('/') {
                return Err(ConfigError::new(
                    format!("{at}.path"),
                    "must start with '/'",
                ));
            }
            let host = raw.host.clone().unwrap_or_else(|| {
                target
                    .as_ref()
                    .map(Address::host_for_authority)
                    .unwrap_or_else(|| "localhost".into())
            });
            Probe::Http {
                host,
                path: raw.path.clone(),
                expect,
            }
        }
        "websocket" => {
            if !raw.path.starts_with('/') {
                return Err(ConfigError::new(
                    format!("{at}.path"),
                    "must start with '/'",
                ));
            }
            let host = raw.host.clone().unwrap_or_else(|| {
                target
                    .as_ref()
                    .map(Address::host_for_authority)
                    .unwrap_or_else(|| "localhost".into())
            });
            Probe::WebSocket {
                host,
                path: raw.path.clone(),
            }
        }
        other => {
            return Err(ConfigError::new(
                format!("{at}.check"),
                format!("unknown check {other:?}; use \"tcp\", \"http\" or \"websocket\""),
            ));
        }
    };
    if raw.rise == 0 || raw.fall == 0 {
        return Err(ConfigError::new(at, "rise and fall must be at least 1"));
    }
    let interval = positive(&format!("{at}.interval"), raw.interval.0)?;
    let timeout = positive(&format!("{at}.timeout"), raw.timeout.0)?;
    Ok(HealthCheck {
        target,
        probe,
        interval,
        timeout: timeout.min(interval),
        rise: raw.rise,
        fall: raw.fall,
        jitter: raw.jitter.map_or(interval / 10, |j| j.0),
    })
}

/// `"204"` or `"200-399"`.
fn parse_status_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let status = text.trim().parse().ok()?;
            (status, status)
        }
    };
    ((100..=599).contains(&low) && (low..=599).contains(&high)).then_some(low..=high)
}

/// The pool named `name`, or an error at `at` saying there is none.
pub fn find_pool<'a>(
    at: &str,
    name: &str,
    pools: &'a [PoolConfig],
) -> Result<&'a PoolConfig, ConfigError> {
    pools
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ConfigError::new(at, format!("no [[pool]] is named {name:?}")))
}

/// Checks that pool `name` can carry DC connections: it exists, and every server is a plain
/// proxy (or `direct`) that hands over the socket itself, which the MTProto relay needs.
pub fn check_telegram_pool(name: &str, pools: &[PoolConfig]) -> Result<(), ConfigError> {
    const AT: &str = "telegram.upstream_pool";
    let pool = find_pool(AT, name, pools)?;
    for server in &pool.servers {
        if server.destination.is_some() {
            return Err(ConfigError::new(
                AT,
                format!(
                    "pool {name:?} has a backend server ({}); DC connections need proxy servers or \"direct\"",
                    server.name
                ),
            ));
        }
        let tls = server
            .url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        if tls {
            return Err(ConfigError::new(
                AT,
                format!(
                    "pool {name:?} has an https:// proxy ({}); MTProto already encrypts, and its relay needs a plain socket: use socks5:// or http://",
                    server.name
                ),
            ));
        }
    }
    Ok(())
}

/// Validates the `[[tcp]]` listeners against the pools.
pub fn tcp_listeners(
    raw: Vec<RawTcp>,
    pools: &[PoolConfig],
) -> Result<Vec<TcpListenerConfig>, ConfigError> {
    let mut listeners = Vec::with_capacity(raw.len());
    for (i, l) in raw.into_iter().enumerate() {
        let at = format!("tcp[{i}]");
        let name = l.name.clone().unwrap_or_else(|| match i {
            0 => "tcp".to_owned(),
            _ => format!("tcp-{}", i + 1),
        });
        check_name(&format!("{at}.name"), &name)?;
        let listen = super::validate::listen_addrs(&at, &l.listen)?;
        let pool = find_pool(&format!("{at}.pool"), &l.pool, pools)?;
        if let Some(server) = pool.servers.iter().find(|s| s.destination.is_none()) {
            return Err(ConfigError::new(
                format!("{at}.pool"),
                format!(
                    "pool {:?} has a proxy server ({}) without a backend; a tcp listener needs tcp:// servers",
                    pool.name, server.name
                ),
            ));
        }
        if let Some(server) = pool.servers.iter().find(|s| s.tls.is_some()) {
            return Err(ConfigError::new(
                format!("{at}.pool"),
                format!(
                    "pool {:?} has a wss:// server ({}); a tcp listener passes bytes as they are and needs tcp:// servers",
                    pool.name, server.name
                ),
            ));
        }
        let proxy_protocol = match l.proxy_protocol.as_deref() {
            None | Some("none") => None,
            Some("v1") => Some(ProxyHeader::V1),
            Some("v2") => Some(ProxyHeader::V2),
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{at}.proxy_protocol"),
                    format!("{other:?}: use \"v1\", \"v2\" or \"none\""),
                ));
            }
        };
        if l.max_connections == Some(0) {
            return Err(ConfigError::new(
                format!("{at}.max_connections"),
                "must be at least 1",
            ));
        }
        listeners.push(TcpListenerConfig {
            name,
            listen,
            pool: l.pool,
            proxy_protocol,
            max_connections: l.max_connections,
            idle_timeout: positive(&format!("{at}.idle_timeout"), l.idle_timeout.0)?,
        });
    }
    Ok(listeners)
}

/// Validates `[admin]`.
pub fn admin(raw: Option<RawAdmin>) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let listen = parse_addr("admin.listen", &raw.listen)?;
    let token = match (raw.token, raw.token_file) {
        (Some(token), None) => token,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new("admin.token_file", format!("{}: {e}", path.display())))?
            .trim()
            .to_owned(),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "admin",
                "give either token or token_file, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "admin.token",
                "the admin API needs a bearer token (token or token_file)",
            ));
        }
    };
    if token.len() < 16 {
        return Err(ConfigError::new(
            "admin.token",
            "use at least 16 characters (e.g. `mtgate secret` prints 32 random hex digits)",
        ));
    }
    Ok(Some(AdminConfig { listen, token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("204"), Some(204..=204));
        assert_eq!(parse_status_range("200-399"), Some(200..=399));
        assert_eq!(parse_status_range("399-200"), None);
        assert_eq!(parse_status_range("2xx"), None);
        assert_eq!(parse_status_range("99"), None);
    }

    fn server(url: &str, via: &[&str]) -> Result<PoolServer, ConfigError> {
        PoolServer::parse(
            "s",
            &RawPoolServer {
                url: url.into(),
                name: None,
                via: via.iter().map(|s| s.to_string()).collect(),
                weight: 1,
                backup: false,
                max_connections: None,
            },
            None,
        )
    }

    #[test]
    fn server_urls() {
        let backend = server("tcp://127.0.0.1:8080", &[]).unwrap();
        assert_eq!(backend.name, "127.0.0.1:8080");
        assert!(backend.destination.is_some());
        let via = server("tcp://[::1]:80", &["socks5://u:secret@127.0.0.1:1080"]).unwrap();
        assert!(!via.name.contains("secret"), "{}", via.name);
        let proxy = server("socks5h://127.0.0.1:1080", &[]).unwrap();
        assert!(proxy.destination.is_none());
        assert!(server("ftp://x:1", &[]).is_err());
        assert!(server("tcp://nohostport", &[]).is_err());
        assert!(server("http://127.0.0.1:3128", &["socks5://127.0.0.1:1"]).is_err());
        let direct = server("direct", &[]).unwrap();
        assert_eq!(direct.name, "direct");
        assert!(direct.destination.is_none());
        assert!(server("direct", &["socks5://127.0.0.1:1"]).is_err());
        let ws = server("ws://backend.example", &[]).unwrap();
        assert_eq!(ws.destination.unwrap().to_string(), "backend.example:80");
        assert!(ws.tls.is_none());
        let wss = server("wss://[::1]", &[]).unwrap();
        assert_eq!(wss.destination.unwrap().port(), 443);
        let name = &wss.tls.unwrap().server_name;
        assert_eq!(name.to_str(), "::1");
        assert!(server("wss://backend.example:8443/chat", &[]).is_err());
        assert!(server("wss://::1", &[]).is_err());
    }
}
