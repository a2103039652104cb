//! `[[gateway]]` listeners, validated: TLS files loaded, credentials parsed, limits checked.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;

use super::proxy::Password;
use super::raw_gateway::{RawCredential, RawCredentialsFile, RawGateway};
use super::validate::{ConfigError, check_name, positive};
use super::websocket::read_certs;
use crate::auth::lockout::LockoutPolicy;

/// Largest credentials file read.
pub const MAX_CREDENTIALS_FILE: u64 = 4 << 20;

/// Shortest Bearer token accepted.
const MIN_TOKEN_LEN: usize = 16;

/// A `[[gateway]]` listener.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Name in logs, metrics, the admin API and the proxies' `gateway` option.
    pub name: String,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// The upgrade path (exact; a query is ignored).
    pub path: String,
    /// TLS for wss; `None` serves plain ws (`plain = true`).
    pub tls: Option<Arc<ServerConfig>>,
    /// Whether agents may identify with a client certificate.
    pub mtls: bool,
    /// Budget for TLS, the upgrade, authentication and the 101.
    pub handshake_timeout: Duration,
    /// Agent connections at once.
    pub max_agents: Option<usize>,
    /// Streams per agent connection at once.
    pub max_streams_per_agent: usize,
    /// Ping interval of agent connections.
    pub ping_interval: Duration,
    /// Pong deadline.
    pub pong_timeout: Duration,
    /// How long an agent has to answer an open.
    pub open_timeout: Duration,
    /// Authentication-failure lockout.
    pub lockout: LockoutPolicy,
    /// Inline credentials.
    pub credentials: Vec<GatewayCredential>,
    /// The credentials file, re-read when its modification time changes.
    pub credentials_file: Option<PathBuf>,
    /// The external check.
    pub auth_url: Option<AuthUrl>,
    /// Ports agents may have forwarded.
    pub forward_ports: Vec<RangeInclusive<u16>>,
    /// Address forwarded ports are bound on.
    pub forward_bind: IpAddr,
}

impl GatewayConfig {
    /// Whether an address is bound beyond loopback.
    pub fn exposed(&self) -> bool {
        self.listen.iter().any(|a| !a.ip().is_loopback())
    }
}

/// What proves a credential.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSecret {
    /// A Basic password (or the JSON `auth` message's).
    Password(Password),
    /// A Bearer token.
    Token(String),
    /// A client certificate whose identity is the credential's username.
    Certificate,
}

impl std::fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password(p) => write!(f, "Password({p:?})"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Certificate => f.write_str("Certificate"),
        }
    }
}

/// One credential and the group it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCredential {
    /// Basic user name or certificate identity; `None` for a token.
    pub username: Option<String>,
    /// The secret.
    pub secret: CredentialSecret,
    /// Agent group.
    pub group: String,
    /// Only this client id may use it.
    pub client_id: Option<String>,
}

/// The external authentication check.
#[derive(Debug, Clone)]
pub struct AuthUrl {
    /// The `http://` URL.
    pub uri: hyper::Uri,
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Budget of one request.
    pub timeout: Duration,
}

/// Validates the `[[gateway]]` listeners.
pub fn gateway_listeners(raw: Vec<RawGateway>) -> Result<Vec<GatewayConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| one(i, g))
        .collect()
}

fn one(i: usize, g: RawGateway) -> Result<GatewayConfig, ConfigError> {
    let at = format!("gateway[{i}]");
    let name = g.name.clone().unwrap_or_else(|| match i {
        0 => "gateway".to_owned(),
        _ => format!("gateway-{}", i + 1),
    });
    check_name(&format!("{at}.name"), &name)?;
    let listen = super::validate::listen_addrs(&at, &g.listen)?;
    if !g.path.starts_with('/') || g.path.contains(['?', '#', ' ']) {
        return Err(ConfigError::new(
            format!("{at}.path"),
            "must start with '/' and hold no query",
        ));
    }
    let tls = match (&g.cert, &g.key, g.plain) {
        (Some(cert), Some(key), false) => Some(tls(&at, cert, key, g.client_ca.as_deref())?),
        (None, None, true) => None,
        (Some(_), Some(_), true) => {
            return Err(ConfigError::new(
                format!("{at}.plain"),
                "give cert and key (wss) or plain = true (ws), not both",
            ));
        }
        (None, None, false) => {
            return Err(ConfigError::new(
                &at,
                "give cert and key for wss (`mtgate cert` makes a pair), or plain = true for ws behind a TLS terminator",
            ));
        }
        _ => {
            return Err(ConfigError::new(&at, "cert and key go together"));
        }
    };
    if g.client_ca.is_some() && tls.is_none() {
        return Err(ConfigError::new(
            format!("{at}.client_ca"),
            "client certificates need wss (cert and key)",
        ));
    }
    let mtls = g.client_ca.is_some();
    if g.max_agents == Some(0) || g.max_streams_per_agent == 0 {
        return Err(ConfigError::new(
            &at,
            "max_agents and max_streams_per_agent must be at least 1",
        ));
    }
    let credentials = credentials(&format!("{at}.credential"), g.credential, mtls)?;
    if let Some(file) = &g.credentials_file {
        // Read once now so a broken file fails the start, not the first agent.
        load_credentials_file(&format!("{at}.credentials_file"), file, mtls)?;
    }
    let auth_url = g
        .auth_url
        .as_deref()
        .map(|u| auth_url(&format!("{at}.auth_url"), u, g.auth_timeout.0))
        .transpose()?;
    if credentials.is_empty() && g.credentials_file.is_none() && auth_url.is_none() {
        return Err(ConfigError::new(
            &at,
            "no agent could authenticate: add [[gateway.credential]] entries, credentials_file or auth_url",
        ));
    }
    let forward_ports =
        super::validate_proxy::ports(&format!("{at}.forward_ports"), &g.forward_ports)?;
    let forward_bind: IpAddr = g.forward_bind.parse().map_err(|_| {
        ConfigError::new(
            format!("{at}.forward_bind"),
            format!("{:?} is not an IP address", g.forward_bind),
        )
    })?;
    let lockout = LockoutPolicy {
        failures: g.auth_lockout.failures,
        window: positive(
            &format!("{at}.auth_lockout.window"),
            g.auth_lockout.window.0,
        )?,
        duration: positive(
            &format!("{at}.auth_lockout.duration"),
            g.auth_lockout.duration.0,
        )?,
    };
    let config = GatewayConfig {
        name,
        listen,
        path: g.path,
        tls,
        mtls,
        handshake_timeout: positive(&format!("{at}.handshake_timeout"), g.handshake_timeout.0)?,
        max_agents: g.max_agents,
        max_streams_per_agent: g.max_streams_per_agent,
        ping_interval: positive(&format!("{at}.ping_interval"), g.ping_interval.0)?,
        pong_timeout: positive(&format!("{at}.pong_timeout"), g.pong_timeout.0)?,
        open_timeout: positive(&format!("{at}.open_timeout"), g.open_timeout.0)?,
        lockout,
        credentials,
        credentials_file: g.credentials_file,
        auth_url,
        forward_ports,
        forward_bind,
    };
    Ok(config)
}

/// Validates credential entries (inline, or from a credentials file).
pub fn credentials(
    at: &str,
    raw: Vec<RawCredential>,
    mtls: bool,
) -> Result<Vec<GatewayCredential>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| credential(&format!("{at}[{i}]"), c, mtls))
        .collect()
}

fn credential(at: &str, c: RawCredential, mtls: bool) -> Result<GatewayCredential, ConfigError> {
    check_group(&format!("{at}.group"), &c.group)?;
    if let Some(name) = &c.username
        && (name.is_empty() || name.len() > 255 || name.contains(':'))
    {
        return Err(ConfigError::new(
            format!("{at}.username"),
            "1 to 255 bytes, without ':'",
        ));
    }
    if let Some(id) = &c.client_id
        && (id.is_empty() || id.len() > 255 || id.chars().any(char::is_control))
    {
        return Err(ConfigError::new(
            format!("{at}.client_id"),
            "1 to 255 printable characters",
        ));
    }
    let secret = match (c.password, c.token) {
        (Some(password), None) => {
            if c.username.is_none() {
                return Err(ConfigError::new(
                    format!("{at}.username"),
                    "a password needs a username",
                ));
            }
            let password = Password::parse(&password)
                .map_err(|e| ConfigError::new(format!("{at}.password"), e.to_string()))?;
            CredentialSecret::Password(password)
        }
        (None, Some(token)) => {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::new(
                    format!("{at}.token"),
                    format!("tokens need at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            CredentialSecret::Token(token)
        }
        (None, None) => {
            if c.username.is_none() || !mtls {
                return Err(ConfigError::new(
                    at,
                    "give a password or a token (an entry with only a username names a client certificate, and needs client_ca)",
                ));
            }
            CredentialSecret::Certificate
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(at, "give a password or a token, not both"));
        }
    };
    Ok(GatewayCredential {
        username: c.username,
        secret,
        group: c.group,
        client_id: c.client_id,
    })
}

/// Group names become proxy user names and metric labels: keep them tame.
fn check_group(at: &str, group: &str) -> Result<(), ConfigError> {
    if super::validate_proxy::is_tame_name(group) {
        Ok(())
    } else {
        Err(ConfigError::new(
            at,
            format!("{group:?}: group names use 1..=64 of A-Z a-z 0-9 - _ . @"),
        ))
    }
}

/// Reads and validates a credentials file.
pub fn load_credentials_file(
    at: &str,
    file: &Path,
    mtls: bool,
) -> Result<Vec<GatewayCredential>, ConfigError> {
    let cannot =
        |e: std::io::Error| ConfigError::new(at, format!("cannot read {}: {e}", file.display()));
    let meta = std::fs::metadata(file).map_err(cannot)?;
    if meta.len() > MAX_CREDENTIALS_FILE {
        return Err(ConfigError::new(
            at,
            "the credentials file is larger than 4MiB",
        ));
    }
    let text = std::fs::read_to_string(file).map_err(cannot)?;
    let raw: RawCredentialsFile = toml::from_str(&text)
        .map_err(|e| ConfigError::new(at, format!("{}: {}", file.display(), e.message())))?;
    credentials(&format!("{at}.credential"), raw.credential, mtls)
}

fn auth_url(at: &str, text: &str, timeout: Duration) -> Result<AuthUrl, ConfigError> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| ConfigError::new(at, format!("{text:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(ConfigError::new(
            at,
            "an http:// URL of a local service (no TLS)",
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| ConfigError::new(at, "the URL needs a host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(AuthUrl {
        port: uri.port_u16().unwrap_or(80),
        host,
        uri,
        timeout: positive(&format!("{at}.auth_timeout"), timeout)?,
    })
}

fn tls(
    at: &str,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = read_certs(&format!("{at}.cert"), cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError::new(format!("{at}.key"), format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(at, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let at = format!("{at}.client_ca");
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(&at, path)? {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::new(&at, format!("{}: {e}", path.display())))?;
            }
            // Optional: agents without a certificate may still use credentials.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
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

/// Checks the proxy listeners' `gateway` and `agent_group` options against the gateways.
pub fn check_proxy_routes(
    proxies: &[super::proxy::ProxyListener],
    gateways: &[GatewayConfig],
) -> Result<(), ConfigError> {
    for l in proxies {
        let at = &l.name;
        let Some(gateway) = &l.gateway else {
            if l.agent_group.is_some() || l.users.iter().any(|u| u.agent_group.is_some()) {
                return Err(ConfigError::new(
                    format!("{at}.agent_group"),
                    "agent_group needs gateway = \"<gateway name>\"",
                ));
            }
            continue;
        };
        if !gateways.iter().any(|g| &g.name == gateway) {
            return Err(ConfigError::new(
                format!("{at}.gateway"),
                format!("no [[gateway]] is named {gateway:?}"),
            ));
        }
        if l.upstream.is_some() || l.users.iter().any(|u| u.upstream.is_some()) {
            return Err(ConfigError::new(
                format!("{at}.gateway"),
                "give gateway or an upstream, not both",
            ));
        }
        if let Some(group) = &l.agent_group {
            check_group(&format!("{at}.agent_group"), group)?;
        }
        for u in &l.users {
            if let Some(group) = &u.agent_group {
                check_group(&format!("{at}.users.{}.agent_group", u.name), group)?;
            }
        }
        if l.users.is_empty() && l.agent_group.is_none() {
            return Err(ConfigError::new(
                format!("{at}.agent_group"),
                "a listener without users needs agent_group to pick the agents",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_gateway::RawCredential;

    fn raw(username: Option<&str>, password: Option<&str>, token: Option<&str>) -> RawCredential {
        RawCredential {
            username: username.map(Into::into),
            password: password.map(Into::into),
            token: token.map(Into::into),
            group: "team".into(),
            client_id: None,
        }
    }

    #[test]
    fn credential_shapes() {
        let ok = |c| credential("c", c, true);
        assert!(matches!(
            ok(raw(Some("a"), Some("pw"), None)).unwrap().secret,
            CredentialSecret::Password(_)
        ));
        assert!(matches!(
            ok(raw(None, None, Some("0123456789abcdef")))
                .unwrap()
                .secret,
            CredentialSecret::Token(_)
        ));
        assert_eq!(
            ok(raw(Some("agent.example"), None, None)).unwrap().secret,
            CredentialSecret::Certificate
        );
        assert!(credential("c", raw(Some("agent.example"), None, None), false).is_err());
        assert!(
            ok(raw(None, Some("pw"), None)).is_err(),
            "password without user"
        );
        assert!(ok(raw(None, None, Some("short"))).is_err(), "short token");
        assert!(ok(raw(Some("a"), Some("pw"), Some("0123456789abcdef"))).is_err());
        let mut bad_group = raw(Some("a"), Some("pw"), None);
        bad_group.group = "a b".into();
        assert!(ok(bad_group).is_err());
    }

    #[test]
    fn auth_urls_are_plain_http() {
        let t = Duration::from_secs(1);
        let u = auth_url("u", "http://127.0.0.1:9000/check", t).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9000));
        let u = auth_url("u", "http://[::1]/check", t).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert!(auth_url("u", "https://127.0.0.1/check", t).is_err());
        assert!(auth_url("u", "not a url", t).is_err());
    }
}
