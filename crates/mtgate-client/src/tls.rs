//! TLS to `https://` proxies (rustls with the aws-lc-rs provider and the Mozilla root set), and
//! TLS to a pool member's backend itself, end to end through the member's chain ([`BackendTls`]).

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::error::{ConnectError, Stage};
use crate::handshake::Deadline;
use crate::stream::ProxyStream;
use crate::transport::Transport;

/// TLS from here to a backend (e.g. a `wss://` server), run over the tunnel once it is open:
/// the client configuration (roots, client certificate, ALPN) and the name to send as SNI and
/// to verify the certificate against.
#[derive(Debug, Clone)]
pub struct BackendTls {
    /// Roots, protocol versions, an optional client certificate.
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate must hold (a DNS name or an IP address).
    pub server_name: ServerName<'static>,
}

/// The configuration used when [`crate::ConnectOptions::tls`] is `None`: webpki roots, TLS 1.2
/// and 1.3, aws-lc-rs.
pub fn default_tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Runs the TLS handshake with the proxy at `host` over `transport`.
pub(crate) async fn wrap(
    transport: Transport,
    host: &str,
    config: Option<&Arc<ClientConfig>>,
    deadline: &Deadline,
) -> Result<Transport, ConnectError> {
    let config = config.cloned().unwrap_or_else(default_tls_config);
    let name = ServerName::try_from(host.to_owned()).map_err(|_| ConnectError::Protocol {
        stage: Stage::Tls,
        detail: "proxy host is not a valid TLS server name".into(),
    })?;
    handshake(config, name, transport, deadline).await
}

/// The client side of a TLS handshake over `transport`, verified against `name`, within
/// `deadline`.
async fn handshake(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    transport: Transport,
    deadline: &Deadline,
) -> Result<Transport, ConnectError> {
    let connector = TlsConnector::from(config);
    let stream = deadline
        .run(Stage::Tls, async {
            connector
                .connect(name, transport)
                .await
                .map_err(|e| ConnectError::io(Stage::Tls, e))
        })
        .await?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Runs the TLS handshake with the backend over an open tunnel, under `deadline`. Bytes the
/// last hop sent after its reply are fed to TLS first.
pub(crate) async fn wrap_backend(
    stream: ProxyStream,
    tls: &BackendTls,
    deadline: &Deadline,
) -> Result<ProxyStream, ConnectError> {
    let (config, name) = (tls.config.clone(), tls.server_name.clone());
    stream
        .map_transport(|transport| handshake(config, name, transport, deadline))
        .await
}
