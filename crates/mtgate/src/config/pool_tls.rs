//! `[pool.tls]`: TLS from mtgate to a pool's `wss://` servers, loaded and checked.
//!
//! Certificates are verified against the public (webpki) roots, or only against `ca` when it
//! is given; the name checked (and sent as SNI) is each server's host unless `server_name`
//! says otherwise. There is deliberately no switch to skip verification: a self-signed
//! backend is trusted by giving its certificate (or its CA) as `ca`.

use std::path::Path;
use std::sync::Arc;

use mtgate_client::{Address, BackendTls};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};

use super::raw_pool::RawPoolTls;
use super::validate::ConfigError;
use super::websocket::read_certs;

/// A pool's TLS client settings, loaded.
#[derive(Debug, Clone)]
pub struct PoolTls {
    /// Roots (or `ca`), client certificate, ALPN `http/1.1`.
    pub config: Arc<ClientConfig>,
    /// The name every server's certificate must hold; `None`: each server's own host.
    pub server_name: Option<ServerName<'static>>,
    /// Digest of the settings and the files' contents, so that a reload notices new files.
    fingerprint: [u8; 32],
}

impl PartialEq for PoolTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.server_name == other.server_name
    }
}

impl Eq for PoolTls {}

/// TLS towards one server: the pool's settings and the name to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The pool's settings.
    pub pool: PoolTls,
    /// SNI and the name the certificate must hold.
    pub server_name: ServerName<'static>,
}

impl ServerTls {
    /// The form the pool member takes.
    pub fn backend(&self) -> BackendTls {
        BackendTls {
            config: self.pool.config.clone(),
            server_name: self.server_name.clone(),
        }
    }
}

impl PoolTls {
    /// Public roots, no client certificate: what `wss://` servers get without `[pool.tls]`.
    pub fn public_roots() -> Self {
        static PUBLIC: std::sync::OnceLock<PoolTls> = std::sync::OnceLock::new();
        PUBLIC
            .get_or_init(|| {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let builder = builder().with_root_certificates(roots);
                Self {
                    config: finish(builder.with_no_client_auth()),
                    server_name: None,
                    fingerprint: Sha256::digest(b"webpki").into(),
                }
            })
            .clone()
    }

    /// Loads `[pool.tls]`; `at` names it in errors.
    pub fn load(at: &str, raw: &RawPoolTls) -> Result<Self, ConfigError> {
        let mut digest = Sha256::new();
        let roots = match &raw.ca {
            None => {
                digest.update(b"webpki");
                rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                }
            }
            Some(path) => {
                let at = format!("{at}.ca");
                digest.update(contents(&at, path)?);
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(&at, path)? {
                    roots
                        .add(cert)
                        .map_err(|e| ConfigError::new(&at, format!("{}: {e}", path.display())))?;
                }
                roots
            }
        };
        let server_name = raw
            .server_name
            .as_deref()
            .map(|name| {
                digest.update(name.as_bytes());
                server_name(&format!("{at}.server_name"), name)
            })
            .transpose()?;
        let builder = builder().with_root_certificates(roots);
        let config = match (&raw.cert, &raw.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                digest.update(contents(&format!("{at}.cert"), cert)?);
                digest.update(contents(&format!("{at}.key"), key)?);
                let chain = read_certs(&format!("{at}.cert"), cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    ConfigError::new(format!("{at}.key"), format!("{}: {e}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| ConfigError::new(at, format!("client certificate and key: {e}")))?
            }
            _ => {
                return Err(ConfigError::new(
                    at,
                    "cert and key go together (the client certificate for mTLS to the servers)",
                ));
            }
        };
        Ok(Self {
            config: finish(config),
            server_name,
            fingerprint: digest.finalize().into(),
        })
    }

    /// TLS towards the server at `destination`; `at` names the server in errors.
    pub fn for_server(&self, at: &str, destination: &Address) -> Result<ServerTls, ConfigError> {
        let server_name = match &self.server_name {
            Some(name) => name.clone(),
            None => server_name(&format!("{at}.url"), &destination.host()).map_err(|e| {
                ConfigError::new(
                    e.path,
                    format!("{}; or set [pool.tls] server_name", e.message),
                )
            })?,
        };
        Ok(ServerTls {
            pool: self.clone(),
            server_name,
        })
    }
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
}

fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    // A WebSocket upgrade is HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn contents(at: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::new(at, format!("{}: {e}", path.display())))
}

fn server_name(at: &str, name: &str) -> Result<ServerName<'static>, ConfigError> {
    ServerName::try_from(name.to_owned()).map_err(|_| {
        ConfigError::new(
            at,
            format!("{name:?} is not a DNS name or IP address a certificate can hold"),
        )
    })
}
