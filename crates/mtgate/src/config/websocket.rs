//! `[[websocket]]` listeners, validated: routes checked against the pools, TLS files loaded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::pool::PoolConfig;
use super::raw_websocket::{RawWebsocket, RawWsAuth, RawWsRoute, RawWsTls};
use super::validate::{ConfigError, check_name, positive};

/// Smallest `max_payload` accepted: a close reason and a useful message must fit.
const MIN_PAYLOAD: usize = 126;

/// A `[[websocket]]` listener.
#[derive(Debug, Clone)]
pub struct WebsocketListenerConfig {
    /// Name in logs, metrics and the admin API.
    pub name: String,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// TLS settings for wss; `None` serves plain ws.
    pub tls: Option<Arc<ServerConfig>>,
    /// Routes, longest path first.
    pub routes: Vec<WsRoute>,
    /// Allowed origins, lowercase; empty allows any.
    pub allowed_origins: Vec<String>,
    /// Credentials; `None` lets everyone in.
    pub auth: Option<WsAuth>,
    /// Largest message in bytes.
    pub max_payload: usize,
    /// Most frames per message.
    pub max_fragments: usize,
    /// Connection cap of the listener.
    pub max_connections: Option<usize>,
    /// Budget for everything before the 101.
    pub handshake_timeout: Duration,
    /// Close after this long without a message.
    pub idle_timeout: Duration,
    /// Ping interval; `None` sends no pings.
    pub ping_interval: Option<Duration>,
    /// Deadline for the answer to a ping.
    pub pong_timeout: Duration,
    /// Deadline for the answer to a close frame.
    pub close_timeout: Duration,
    /// Accept queue length.
    pub backlog: Option<u32>,
}

/// Where requests for a path (and host) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    /// Path prefix.
    pub path: String,
    /// Host, lowercase, without port.
    pub host: Option<String>,
    /// Pool name.
    pub pool: String,
}

impl WsRoute {
    /// Whether a request for `path` on `host` (lowercase, no port) matches.
    pub fn matches(&self, path: &str, host: Option<&str>) -> bool {
        if let Some(want) = &self.host
            && host != Some(want.as_str())
        {
            return false;
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        match path.strip_prefix(self.path.as_str()) {
            Some(rest) => self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Credentials accepted before the upgrade.
#[derive(Clone, Default)]
pub struct WsAuth {
    /// Basic `user`, `password` pairs.
    pub users: Vec<(String, String)>,
    /// Bearer tokens.
    pub tokens: Vec<String>,
}

impl std::fmt::Debug for WsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("WsAuth")
            .field("users", &users)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// Validates the `[[websocket]]` listeners against the pools.
pub fn websocket_listeners(
    raw: Vec<RawWebsocket>,
    pools: &[PoolConfig],
) -> Result<Vec<WebsocketListenerConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, l)| one(i, l, pools))
        .collect()
}

fn one(
    i: usize,
    l: RawWebsocket,
    pools: &[PoolConfig],
) -> Result<WebsocketListenerConfig, ConfigError> {
    let at = format!("websocket[{i}]");
    let name = l.name.clone().unwrap_or_else(|| match i {
        0 => "websocket".to_owned(),
        _ => format!("websocket-{}", i + 1),
    });
    check_name(&format!("{at}.name"), &name)?;
    let listen = super::validate::listen_addrs(&at, &l.listen)?;
    if l.routes.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.routes"),
            "needs at least one route (e.g. { path = \"/\", pool = \"backends\" })",
        ));
    }
    let mut routes = l
        .routes
        .into_iter()
        .enumerate()
        .map(|(j, r)| route(&format!("{at}.routes[{j}]"), r, pools))
        .collect::<Result<Vec<_>, _>>()?;
    // Longest path first, host-specific before any-host: the first match wins.
    routes.sort_by_key(|r| std::cmp::Reverse((r.path.len(), r.host.is_some())));
    if l.max_payload < MIN_PAYLOAD {
        return Err(ConfigError::new(
            format!("{at}.max_payload"),
            format!("must be at least {MIN_PAYLOAD} bytes"),
        ));
    }
    if l.max_fragments == 0 {
        return Err(ConfigError::new(
            format!("{at}.max_fragments"),
            "must be at least 1",
        ));
    }
    if l.max_connections == Some(0) {
        return Err(ConfigError::new(
            format!("{at}.max_connections"),
            "must be at least 1",
        ));
    }
    if l.backlog == Some(0) {
        return Err(ConfigError::new(
            format!("{at}.backlog"),
            "must be at least 1",
        ));
    }
    let tls = l.tls.map(|t| tls(&format!("{at}.tls"), &t)).transpose()?;
    Ok(WebsocketListenerConfig {
        name,
        listen,
        tls,
        routes,
        allowed_origins: l
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect(),
        auth: l.auth.map(|a| auth(&format!("{at}.auth"), a)).transpose()?,
        max_payload: l.max_payload,
        max_fragments: l.max_fragments,
        max_connections: l.max_connections,
        handshake_timeout: positive(&format!("{at}.handshake_timeout"), l.handshake_timeout.0)?,
        idle_timeout: positive(&format!("{at}.idle_timeout"), l.idle_timeout.0)?,
        ping_interval: (!l.ping_interval.0.is_zero()).then_some(l.ping_interval.0),
        pong_timeout: positive(&format!("{at}.pong_timeout"), l.pong_timeout.0)?,
        close_timeout: positive(&format!("{at}.close_timeout"), l.close_timeout.0)?,
        backlog: l.backlog,
    })
}

fn route(at: &str, r: RawWsRoute, pools: &[PoolConfig]) -> Result<WsRoute, ConfigError> {
    if !r.path.starts_with('/') || r.path.contains(['?', '#']) {
        return Err(ConfigError::new(
            format!("{at}.path"),
            "must start with '/' and hold no query",
        ));
    }
    let pool = super::pool::find_pool(&format!("{at}.pool"), &r.pool, pools)?;
    if let Some(server) = pool.servers.iter().find(|s| s.destination.is_none()) {
        return Err(ConfigError::new(
            format!("{at}.pool"),
            format!(
                "pool {:?} has a proxy server ({}) without a backend; websocket routes need ws:// or wss:// (or tcp://) servers",
                pool.name, server.name
            ),
        ));
    }
    Ok(WsRoute {
        path: r.path,
        host: r.host.map(|h| h.to_ascii_lowercase()),
        pool: r.pool,
    })
}

fn auth(at: &str, a: RawWsAuth) -> Result<WsAuth, ConfigError> {
    if a.users.is_empty() && a.tokens.is_empty() {
        return Err(ConfigError::new(
            at,
            "give users or tokens, or leave [auth] out",
        ));
    }
    if let Some(user) = a.users.keys().find(|u| u.is_empty() || u.contains(':')) {
        return Err(ConfigError::new(
            format!("{at}.users"),
            format!("{user:?}: user names are non-empty and hold no ':'"),
        ));
    }
    if a.users.values().any(String::is_empty) || a.tokens.iter().any(|t| t.len() < 16) {
        return Err(ConfigError::new(
            at,
            "passwords must not be empty and tokens need at least 16 characters",
        ));
    }
    Ok(WsAuth {
        users: a.users.into_iter().collect(),
        tokens: a.tokens,
    })
}

fn tls(at: &str, t: &RawWsTls) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = read_certs(&format!("{at}.cert"), &t.cert)?;
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| ConfigError::new(format!("{at}.key"), format!("{}: {e}", t.key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(at, e.to_string()))?;
    let builder = match &t.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let at = format!("{at}.client_ca");
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(&at, path)? {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::new(&at, format!("{}: {e}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ConfigError::new(&at, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::new(at, format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a PEM certificate chain; an empty file is an error at `at`.
pub(crate) fn read_certs(
    at: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError::new(at, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            at,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, host: Option<&str>) -> WsRoute {
        WsRoute {
            path: path.into(),
            host: host.map(Into::into),
            pool: "p".into(),
        }
    }

    #[test]
    fn path_prefixes_stop_at_segments() {
        let chat = route("/chat", None);
        assert!(chat.matches("/chat", None));
        assert!(chat.matches("/chat/room", None));
        assert!(chat.matches("/chat?x=1", None));
        assert!(!chat.matches("/chatter", None));
        assert!(!chat.matches("/", None));
        assert!(route("/", None).matches("/anything", None));
        let hosted = route("/", Some("a.example"));
        assert!(hosted.matches("/", Some("a.example")));
        assert!(!hosted.matches("/", Some("b.example")));
        assert!(!hosted.matches("/", None));
    }
}
