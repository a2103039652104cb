//! Pool members that speak TLS to their backend (`Upstream::tls`): the handshake is part of
//! the attempt, so a backend whose certificate does not verify is a counted failure and the
//! pool moves on to the next member.

use std::sync::Arc;
use std::time::Duration;

use mtgate_client::pool::{Strategy, Upstream};
use mtgate_client::{BackendTls, Chain, ConnectOptions, Pool};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS echo server with a fresh self-signed certificate for `localhost`; its certificate.
async fn tls_echo() -> (
    std::net::SocketAddr,
    rustls::pki_types::CertificateDer<'static>,
) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (mut r, mut w) = tokio::io::split(tls);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, der)
}

fn trusting(cert: rustls::pki_types::CertificateDer<'static>) -> BackendTls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    BackendTls {
        config: Arc::new(config),
        server_name: ServerName::try_from("localhost").unwrap(),
    }
}

#[tokio::test]
async fn a_backend_with_an_untrusted_certificate_fails_over_to_the_next() {
    let (good, good_cert) = tls_echo().await;
    let (stranger, _) = tls_echo().await;
    let tls = trusting(good_cert);
    let pool = Pool::builder()
        .upstream(
            Upstream::backend(Chain::direct(), stranger.into())
                .name("stranger")
                .tls(tls.clone()),
        )
        .upstream(
            Upstream::backend(Chain::direct(), good.into())
                .name("good")
                .tls(tls),
        )
        .strategy(Strategy::FirstAvailable)
        .connect_options(ConnectOptions::with_timeout(Duration::from_secs(5)))
        .build();
    let mut stream = pool.connect_any().await.unwrap();
    assert_eq!(stream.info().pool_member.as_deref(), Some("good"));
    stream.write_all(b"over tls").await.unwrap();
    let mut buf = [0u8; 8];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"over tls");

    let stats = pool.stats();
    let stranger = stats.iter().find(|s| s.name == "stranger").unwrap();
    assert_eq!(stranger.failures, 1);
    assert!(
        stranger
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("tls/"),
        "{:?}",
        stranger.last_error
    );
    let (failures, _) = pool.recent_failures();
    assert_eq!(failures[0].stage, "tls");
}
