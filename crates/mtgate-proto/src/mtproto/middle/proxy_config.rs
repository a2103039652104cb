//! `proxy-multi.conf`: which middle proxies serve which DC.
//!
//! The file Telegram publishes (and the official proxy reads) is a list of `;`-terminated
//! directives; `#` starts a comment that runs to the end of the line:
//!
//! | directive | meaning |
//! |---|---|
//! | `proxy_for <dc> <ip>:<port>;` | a middle proxy for DC index `dc` (−32768..=32767; negative: media) |
//! | `proxy <ip>:<port>;` | a middle proxy for DC index 0 |
//! | `default <dc>;` | the cluster used for DC indexes nobody serves |
//! | `timeout <ms>;` | 10..=30000 |
//! | `min_connections <n>;` / `max_connections <n>;` | connections per middle proxy listed after it (1 ≤ min ≤ max ≤ 1000) |
//!
//! IPv6 addresses are bracketed (`[2001:db8::d]:80`). The entries of one DC must be contiguous
//! (the official parser says "proxies for dc N intermixed" otherwise). Host names are not
//! resolved: Telegram's files carry addresses only.

use std::net::SocketAddr;
use std::time::Duration;

/// Largest file accepted.
pub const MAX_FILE_LEN: usize = 1 << 20;

/// Most middle proxies in one file.
pub const MAX_ENDPOINTS: usize = 4096;

/// Most clusters (distinct DC indexes) in one file.
pub const MAX_CLUSTERS: usize = 1024;

/// Connections per middle proxy when the file does not say (the official defaults).
pub const DEFAULT_MIN_CONNECTIONS: u32 = 4;

/// See [`DEFAULT_MIN_CONNECTIONS`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The official default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);

/// One middle proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its address.
    pub addr: SocketAddr,
    /// Connections to keep open to it at least.
    pub min_connections: u32,
    /// Connections to open to it at most.
    pub max_connections: u32,
}

/// The middle proxies of one DC index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The DC index as clients send it.
    pub dc: i16,
    /// Its middle proxies, in file order.
    pub endpoints: Vec<Endpoint>,
}

/// A parsed `proxy-multi.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Clusters in file order.
    pub clusters: Vec<Cluster>,
    /// The `default` directive (0 when absent, as in the official proxy).
    pub default_dc: i16,
    /// The `timeout` directive.
    pub timeout: Duration,
}

/// What is wrong with a file, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ConfigError {
    /// 1-based line of the offending directive (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

impl ProxyConfig {
    /// Parses the text of a file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_FILE_LEN {
            return Err(ConfigError::new(
                0,
                format!("file larger than {MAX_FILE_LEN} bytes"),
            ));
        }
        let mut parser = Parser {
            config: ProxyConfig {
                clusters: Vec::new(),
                default_dc: 0,
                timeout: DEFAULT_TIMEOUT,
            },
            min: DEFAULT_MIN_CONNECTIONS,
            max: DEFAULT_MAX_CONNECTIONS,
            endpoints: 0,
        };
        for statement in statements(text)? {
            parser.directive(&statement)?;
        }
        if parser.config.clusters.is_empty() {
            return Err(ConfigError::new(
                0,
                "no middle proxy is defined: expected `proxy_for <dc> <ip>:<port>;` directives",
            ));
        }
        Ok(parser.config)
    }

    /// The cluster serving DC index `dc`: its own, else the `default` one.
    pub fn cluster(&self, dc: i16) -> Option<&Cluster> {
        self.find(dc).or_else(|| self.find(self.default_dc))
    }

    fn find(&self, dc: i16) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.dc == dc)
    }
}

/// One directive: its words and the line it starts on.
struct Statement<'a> {
    line: usize,
    words: Vec<&'a str>,
}

/// Splits the text into `;`-terminated directives, dropping comments.
fn statements(text: &str) -> Result<Vec<Statement<'_>>, ConfigError> {
    let mut out = Vec::new();
    let mut current: Option<Statement<'_>> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let code = raw_line.split('#').next().unwrap_or("");
        let mut rest = code;
        loop {
            let (piece, terminated) = match rest.find(';') {
                Some(at) => (&rest[..at], Some(at)),
                None => (rest, None),
            };
            for word in piece.split_whitespace() {
                current
                    .get_or_insert_with(|| Statement {
                        line,
                        words: Vec::new(),
                    })
                    .words
                    .push(word);
            }
            let Some(at) = terminated else { break };
            match current.take() {
                Some(statement) => out.push(statement),
                None => return Err(ConfigError::new(line, "empty directive before `;`")),
            }
            rest = &rest[at + 1..];
        }
    }
    if let Some(statement) = current {
        return Err(ConfigError::new(
            statement.line,
            format!("`;` expected after `{}`", statement.words.join(" ")),
        ));
    }
    Ok(out)
}

struct Parser {
    config: ProxyConfig,
    min: u32,
    max: u32,
    endpoints: usize,
}

impl Parser {
    fn directive(&mut self, s: &Statement<'_>) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::new(s.line, message);
        let args = &s.words[1..];
        match s.words[0] {
            "proxy_for" => {
                let [dc, addr @ ..] = args else {
                    return Err(err("`proxy_for <dc> <ip>:<port>;` expected".into()));
                };
                let dc = dc_index(dc).map_err(err)?;
                self.proxy(s.line, dc, &addr.concat())
            }
            "proxy" => self.proxy(s.line, 0, &args.concat()),
            "default" => {
                let [dc] = args else {
                    return Err(err("`default <dc>;` expected".into()));
                };
                self.config.default_dc = dc_index(dc).map_err(err)?;
                Ok(())
            }
            "timeout" => {
                let ms = single_number(args).map_err(err)?;
                if !(10..=30_000).contains(&ms) {
                    return Err(err(format!("invalid timeout {ms}: 10..=30000 ms")));
                }
                self.config.timeout = Duration::from_millis(ms);
                Ok(())
            }
            "min_connections" => {
                let n = single_number(args).map_err(err)?;
                if n < 1 || n > u64::from(self.max) {
                    return Err(err(format!(
                        "invalid min_connections {n}: 1..={} (max_connections)",
                        self.max
                    )));
                }
                self.min = n as u32;
                Ok(())
            }
            "max_connections" => {
                let n = single_number(args).map_err(err)?;
                if n < u64::from(self.min) || n > 1000 {
                    return Err(err(format!(
                        "invalid max_connections {n}: {}..=1000",
                        self.min
                    )));
                }
                self.max = n as u32;
                Ok(())
            }
            other => Err(err(format!(
                "unknown directive {other:?}: `proxy_for <dc> <ip>:<port>;` expected"
            ))),
        }
    }

    fn proxy(&mut self, line: usize, dc: i16, addr: &str) -> Result<(), ConfigError> {
        let addr = endpoint_addr(addr).map_err(|m| ConfigError::new(line, m))?;
        if self.endpoints >= MAX_ENDPOINTS {
            return Err(ConfigError::new(
                line,
                format!("more than {MAX_ENDPOINTS} middle proxies"),
            ));
        }
        self.endpoints += 1;
        let endpoint = Endpoint {
            addr,
            min_connections: self.min,
            max_connections: self.max,
        };
        let clusters = &mut self.config.clusters;
        match clusters.iter().position(|c| c.dc == dc) {
            Some(i) if i + 1 == clusters.len() => clusters[i].endpoints.push(endpoint),
            Some(_) => {
                return Err(ConfigError::new(
                    line,
                    format!("proxies for dc {dc} intermixed: list each DC's proxies together"),
                ));
            }
            None if clusters.len() >= MAX_CLUSTERS => {
                return Err(ConfigError::new(
                    line,
                    format!("more than {MAX_CLUSTERS} clusters"),
                ));
            }
            None => clusters.push(Cluster {
                dc,
                endpoints: vec![endpoint],
            }),
        }
        Ok(())
    }
}

fn dc_index(word: &str) -> Result<i16, String> {
    word.parse::<i16>()
        .map_err(|_| format!("invalid DC index {word:?}: an integer in -32768..=32767 expected"))
}

fn single_number(args: &[&str]) -> Result<u64, String> {
    match args {
        [n] => n
            .parse::<u64>()
            .map_err(|_| format!("invalid number {n:?}")),
        _ => Err("exactly one number expected".into()),
    }
}

fn endpoint_addr(text: &str) -> Result<SocketAddr, String> {
    if text.is_empty() {
        return Err("`<ip>:<port>` expected".into());
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: `<ip>:<port>` expected"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{text:?}: port number in 1..=65535 expected"))?;
    let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().map(std::net::IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().map(std::net::IpAddr::V4),
    }
    .map_err(|_| {
        format!(
            "{host:?} is not an IPv4 address or a bracketed IPv6 address (names are not resolved)"
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
#[path = "proxy_config_tests.rs"]
mod tests;
