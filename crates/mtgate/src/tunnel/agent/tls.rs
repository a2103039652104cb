//! TLS towards the gateway: rustls (aws-lc-rs) verifying the gateway's certificate against a
//! pinned CA file or the webpki roots, with an optional client certificate (mTLS).

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::config::ConfigError;
use crate::config::websocket::read_certs;

/// Builds the client configuration; errors name the key of the file at fault.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let roots = match ca_file {
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("ca_file", path)? {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::new("ca_file", format!("{}: {e}", path.display())))?;
            }
            roots
        }
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // AES-128-GCM first, as browsers order it (rustls puts AES-256-GCM first): the tunnel
    // encrypts every byte it carries, and the shorter key schedule is about a tenth faster
    // here (`openssl speed -evp`). The gateway takes the agent's order.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("gateway", e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (client_cert, client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("client_cert", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ConfigError::new("client_key", format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConfigError::new("client_key", format!("certificate and key: {e}")))?
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                "client_key",
                "client_cert is set without client_key",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "client_cert",
                "client_key is set without client_cert",
            ));
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_aes_128_gcm_first_and_keeps_every_default_suite() {
        let config = client_config(None, None, None).unwrap();
        let offered: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(offered[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut defaults: Vec<_> = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let mut sorted = offered.clone();
        sorted.sort_by_key(|s| u16::from(*s));
        defaults.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, defaults);
    }
}
