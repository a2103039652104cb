//! Validation of the proxy listeners: `[[socks5]]`, `[[http]]`, `[[mixed]]`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use ipnet::IpNet;
use mtgate_client::{Chain, Kind};

use super::ConfigError;
use super::pool_tls::PoolTls;
use super::proxy::{HttpSettings, Password, ProxyKind, ProxyListener, ProxyUser, UpstreamConfig};
use super::raw_proxy::{RawPorts, RawProxyListener, RawProxyUser, RawRule};
use super::validate::{check_name, positive};
use crate::acl::{Action, Command, HostPattern, Rule};
use crate::auth::lockout::LockoutPolicy;

/// Largest users file read.
const MAX_USERS_FILE: u64 = 16 << 20;

/// Validates the listeners of one kind; `names` and `bound` are shared with every other
/// listener so names and addresses stay unique.
pub(super) fn listeners(
    kind: ProxyKind,
    raw: Vec<RawProxyListener>,
    names: &mut HashSet<String>,
    bound: &mut HashSet<SocketAddr>,
) -> Result<Vec<ProxyListener>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, listener) in raw.into_iter().enumerate() {
        let at = format!("{}[{i}]", kind.as_str());
        let name = listener.name.clone().unwrap_or_else(|| {
            if i == 0 {
                kind.as_str().to_owned()
            } else {
                format!("{}-{}", kind.as_str(), i + 1)
            }
        });
        check_name(&format!("{at}.name"), &name)?;
        if !names.insert(name.clone()) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{name:?} is used twice"),
            ));
        }
        let l = listener_config(kind, &at, name, listener)?;
        for addr in &l.listen {
            // Port 0 (any free port, as tests use) cannot collide.
            if addr.port() != 0 && !bound.insert(*addr) {
                return Err(ConfigError::new(
                    format!("{at}.listen"),
                    format!("{addr} is used twice"),
                ));
            }
        }
        out.push(l);
    }
    Ok(out)
}

fn listener_config(
    kind: ProxyKind,
    at: &str,
    name: String,
    raw: RawProxyListener,
) -> Result<ProxyListener, ConfigError> {
    let only = |field: &str, present: bool, ok: bool, kinds: &str| {
        if present && !ok {
            Err(ConfigError::new(
                format!("{at}.{field}"),
                format!("only {kinds} listeners have this setting"),
            ))
        } else {
            Ok(())
        }
    };
    let http_kinds = "http and mixed";
    only(
        "connect_ports",
        raw.connect_ports.is_some(),
        kind.http(),
        http_kinds,
    )?;
    only("via", raw.via.is_some(), kind.http(), http_kinds)?;
    only("realm", raw.realm.is_some(), kind.http(), http_kinds)?;
    only(
        "max_header_size",
        raw.max_header_size.is_some(),
        kind.http(),
        http_kinds,
    )?;
    only(
        "max_headers",
        raw.max_headers.is_some(),
        kind.http(),
        http_kinds,
    )?;
    let socks_kinds = "socks5 and mixed";
    only("udp", raw.udp.is_some(), kind.socks(), socks_kinds)?;
    only("bind", raw.bind.is_some(), kind.socks(), socks_kinds)?;
    only(
        "udp_idle_timeout",
        raw.udp_idle_timeout.is_some(),
        kind.socks(),
        socks_kinds,
    )?;

    let listen = super::validate::listen_addrs(at, &raw.listen)?;

    let mut users = Vec::new();
    for (user_name, entry) in raw.users {
        users.push(user(&format!("{at}.users.{user_name}"), user_name, entry)?);
    }
    if let Some(file) = &raw.users_file {
        for user in users_file(&format!("{at}.users_file"), file)? {
            if users.iter().any(|u| u.name == user.name) {
                return Err(ConfigError::new(
                    format!("{at}.users_file"),
                    format!("user {:?} is also defined inline", user.name),
                ));
            }
            users.push(user);
        }
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));

    let exposed = listen.iter().any(|a| !a.ip().is_loopback());
    if users.is_empty() && exposed && !raw.open {
        return Err(ConfigError::new(
            format!("{at}.open"),
            "a listener without users on a non-loopback address is an open proxy: add users, \
             listen on loopback, or set open = true if that is really what you want",
        ));
    }

    let rules = rules(&format!("{at}.rules"), &raw.rules)?;
    let connect_ports = match &raw.connect_ports {
        Some(list) => {
            let ports = ports(&format!("{at}.connect_ports"), list)?;
            if ports.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.connect_ports"),
                    "list at least one port (to refuse CONNECT, deny the command with a rule)",
                ));
            }
            ports
        }
        None => vec![443..=443],
    };
    let max_header_size = raw.max_header_size.map_or(16 * 1024, |s| s.bytes());
    if !(8 * 1024..=1 << 20).contains(&max_header_size) {
        return Err(ConfigError::new(
            format!("{at}.max_header_size"),
            "must be between 8KiB and 1MiB",
        ));
    }
    let max_headers = raw.max_headers.unwrap_or(64);
    if !(8..=1024).contains(&max_headers) {
        return Err(ConfigError::new(
            format!("{at}.max_headers"),
            "must be between 8 and 1024",
        ));
    }
    let proxy_protocol = raw
        .proxy_protocol
        .iter()
        .map(|text| cidr(&format!("{at}.proxy_protocol"), text))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.max_connections == Some(0) {
        return Err(ConfigError::new(
            format!("{at}.max_connections"),
            "must be at least 1",
        ));
    }
    let realm = raw.realm.unwrap_or_else(|| "mtgate".to_owned());
    if realm.is_empty() || realm.len() > 128 || realm.chars().any(|c| c.is_control()) {
        return Err(ConfigError::new(
            format!("{at}.realm"),
            "1 to 128 printable characters",
        ));
    }
    let lockout = LockoutPolicy {
        failures: raw.auth_lockout.failures,
        window: positive(
            &format!("{at}.auth_lockout.window"),
            raw.auth_lockout.window.0,
        )?,
        duration: positive(
            &format!("{at}.auth_lockout.duration"),
            raw.auth_lockout.duration.0,
        )?,
    };
    let idle_timeout = positive(&format!("{at}.idle_timeout"), raw.idle_timeout.0)?;
    let upstream = upstream(
        &format!("{at}.upstream"),
        &raw.upstream,
        raw.upstream_pool.as_deref(),
    )?;
    let upstream_tls = match &raw.upstream_tls {
        None => None,
        Some(tls) => {
            let at = format!("{at}.upstream_tls");
            if tls.server_name.is_some() {
                return Err(ConfigError::new(
                    format!("{at}.server_name"),
                    "each https:// proxy is verified against its own host name; server_name is for wss:// pool servers",
                ));
            }
            let members = std::iter::once(&upstream).chain(users.iter().map(|u| &u.upstream));
            let any_https = members.flatten().any(|u| match u {
                UpstreamConfig::Members(chains) => chains
                    .iter()
                    .any(|c| c.hops().iter().any(|p| p.kind() == Kind::Https)),
                UpstreamConfig::Pool(_) => false,
            });
            if !any_https {
                return Err(ConfigError::new(
                    at,
                    "applies to https:// proxies in upstream, and there is none (a [[pool]] has its own [pool.tls])",
                ));
            }
            Some(PoolTls::load(&at, tls)?.config)
        }
    };
    Ok(ProxyListener {
        kind,
        name,
        listen,
        open: raw.open,
        users,
        rules,
        udp: raw.udp.unwrap_or(true),
        bind: raw.bind.unwrap_or(true),
        max_connections: raw.max_connections,
        splice: raw.splice,
        handshake_timeout: positive(&format!("{at}.handshake_timeout"), raw.handshake_timeout.0)?,
        idle_timeout,
        connect_timeout: positive(&format!("{at}.connect_timeout"), raw.connect_timeout.0)?,
        udp_idle_timeout: match raw.udp_idle_timeout {
            Some(d) => positive(&format!("{at}.udp_idle_timeout"), d.0)?,
            None => idle_timeout.min(std::time::Duration::from_secs(120)),
        },
        lockout,
        proxy_protocol,
        upstream,
        upstream_tls,
        gateway: raw.gateway,
        agent_group: raw.agent_group,
        http: HttpSettings {
            connect_ports,
            via: raw.via.unwrap_or(false),
            realm,
            max_header_size,
            max_headers,
        },
    })
}

fn user(path: &str, name: String, raw: RawProxyUser) -> Result<ProxyUser, ConfigError> {
    check_user_name(path, &name)?;
    let table = match raw {
        RawProxyUser::Password(password) => super::raw_proxy::RawProxyUserTable {
            password,
            max_connections: None,
            bandwidth: None,
            rules: Vec::new(),
            upstream: Vec::new(),
            upstream_pool: None,
            agent_group: None,
        },
        RawProxyUser::Table(table) => table,
    };
    let password = Password::parse(&table.password)
        .map_err(|e| ConfigError::new(format!("{path}.password"), e.to_string()))?;
    if table.max_connections == Some(0) {
        return Err(ConfigError::new(
            format!("{path}.max_connections"),
            "must be at least 1",
        ));
    }
    let bandwidth = match table.bandwidth {
        Some(b) if b.0 < 1024 => {
            return Err(ConfigError::new(
                format!("{path}.bandwidth"),
                "must be at least 1KiB (bytes per second)",
            ));
        }
        other => other.map(|b| b.0),
    };
    Ok(ProxyUser {
        name,
        password,
        max_connections: table.max_connections,
        bandwidth,
        rules: rules(&format!("{path}.rules"), &table.rules)?,
        upstream: upstream(
            &format!("{path}.upstream"),
            &table.upstream,
            table.upstream_pool.as_deref(),
        )?,
        agent_group: table.agent_group,
    })
}

/// 1..=64 of A-Z a-z 0-9 - _ . @: what a name needs to be a proxy user name and a metric label.
pub(super) fn is_tame_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// User names travel in RFC 1929 (1..=255 bytes) and HTTP Basic (no colon); they also label
/// metrics, so keep them tame.
fn check_user_name(path: &str, name: &str) -> Result<(), ConfigError> {
    if is_tame_name(name) {
        Ok(())
    } else {
        Err(ConfigError::new(
            path,
            format!("{name:?}: user names use 1..=64 of A-Z a-z 0-9 - _ . @"),
        ))
    }
}

fn users_file(path: &str, file: &Path) -> Result<Vec<ProxyUser>, ConfigError> {
    let cannot =
        |e: std::io::Error| ConfigError::new(path, format!("cannot read {}: {e}", file.display()));
    let meta = std::fs::metadata(file).map_err(cannot)?;
    if meta.len() > MAX_USERS_FILE {
        return Err(ConfigError::new(
            path,
            "the users file is larger than 16MiB",
        ));
    }
    let text = std::fs::read_to_string(file).map_err(cannot)?;
    let mut seen = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{path} ({}:{})", file.display(), n + 1);
        let Some((name, password)) = line.split_once(':') else {
            return Err(ConfigError::new(at, "write name:password"));
        };
        if seen.contains_key(name) {
            return Err(ConfigError::new(
                at,
                format!("user {name:?} is listed twice"),
            ));
        }
        let user = user(
            &at,
            name.to_owned(),
            RawProxyUser::Password(password.to_owned()),
        )?;
        seen.insert(name.to_owned(), user);
    }
    Ok(seen.into_values().collect())
}

fn rules(path: &str, raw: &[RawRule]) -> Result<Vec<Rule>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("{path}[{i}]"), r))
        .collect()
}

fn rule(path: &str, raw: &RawRule) -> Result<Rule, ConfigError> {
    let action = match raw.action.as_str() {
        "allow" => Action::Allow,
        "deny" => Action::Deny,
        other => {
            return Err(ConfigError::new(
                format!("{path}.action"),
                format!("{other:?}: use \"allow\" or \"deny\""),
            ));
        }
    };
    let hosts = raw
        .hosts
        .iter()
        .map(|h| {
            HostPattern::parse(h).ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.hosts"),
                    format!("{h:?}: write a name, \"*.example.com\" or \"*\""),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let cidrs = raw
        .cidrs
        .iter()
        .map(|c| cidr(&format!("{path}.cidrs"), c))
        .collect::<Result<_, _>>()?;
    let commands = raw
        .commands
        .iter()
        .map(|c| {
            Command::from_name(c).ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.commands"),
                    format!("{c:?}: use \"connect\", \"bind\" or \"udp\""),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        action,
        hosts,
        cidrs,
        ports: ports(&format!("{path}.ports"), &raw.ports)?,
        commands,
    })
}

fn cidr(path: &str, text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            ConfigError::new(
                path,
                format!("{text:?} is not a network; write e.g. \"10.0.0.0/8\" or \"::1\""),
            )
        })
}

pub(super) fn ports(path: &str, raw: &[RawPorts]) -> Result<Vec<RangeInclusive<u16>>, ConfigError> {
    raw.iter()
        .map(|p| match p {
            RawPorts::Port(0) => Err(ConfigError::new(path, "port 0 is not a destination")),
            RawPorts::Port(p) => Ok(*p..=*p),
            RawPorts::Range(text) => {
                let bad = || {
                    ConfigError::new(
                        path,
                        format!("{text:?}: write a port or a range such as \"8000-8999\""),
                    )
                };
                let (lo, hi) = text.split_once('-').unwrap_or((text, text));
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo == 0 || lo > hi {
                    return Err(bad());
                }
                Ok(lo..=hi)
            }
        })
        .collect()
}

fn upstream(
    path: &str,
    raw: &[String],
    pool: Option<&str>,
) -> Result<Option<UpstreamConfig>, ConfigError> {
    if let Some(pool) = pool {
        if !raw.is_empty() {
            return Err(ConfigError::new(
                path,
                "give either upstream (proxy URLs) or upstream_pool (a [[pool]] name), not both",
            ));
        }
        return Ok(Some(UpstreamConfig::Pool(pool.to_owned())));
    }
    if raw.is_empty() {
        return Ok(None);
    }
    let members = raw
        .iter()
        .map(|member| {
            let hops: Vec<&str> = member.split("->").map(str::trim).collect();
            Chain::from_urls(&hops)
                .map_err(|e| ConfigError::new(path, format!("{:?}: {e}", redact(member))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(UpstreamConfig::Members(members)))
}

/// A URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
