//! A SOCKS5 listener whose connections go out through an `https://` upstream proxy: TLS to
//! the proxy (verified against `upstream_tls.ca`), then HTTP CONNECT. The proxy is mtgate's own
//! HTTP listener behind a TLS terminator made here (the interop script does the same with
//! HAProxy).

mod proxy_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgate_client::Proxy;
use proxy_common::{Echo, addr, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Terminates TLS with a certificate for `names` and passes the bytes to `to`.
async fn tls_terminator(names: &[&str], to: SocketAddr) -> (SocketAddr, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let (cert_pem, key_pem) = mtgate::commands::cert::generate(&names).unwrap();
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await
                else {
                    return;
                };
                let Ok(mut inner) = TcpStream::connect(to).await else {
                    return;
                };
                let copying = tokio::io::copy_bidirectional(&mut tls, &mut inner);
                let _ = tokio::time::timeout(Duration::from_secs(30), copying).await;
            });
        }
    });
    (addr, cert_pem)
}

async fn echo_through(proxy: &Proxy, target: SocketAddr) -> Result<Vec<u8>, String> {
    let connecting = tokio::time::timeout(Duration::from_secs(10), proxy.connect(target));
    let mut stream = connecting
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Ok(buf.to_vec())
}

#[tokio::test]
async fn socks5_out_through_an_https_proxy_verified_with_a_ca_file() {
    let echo = Echo::start().await;
    let inner = server(
        r#"
        [[http]]
        name = "inner"
        listen = ["127.0.0.1:0"]
        connect_ports = ["1024-65535"]
        rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]
        [http.users]
        up = "stream-pass"
        "#,
    )
    .await;
    let (tls_addr, cert_pem) = tls_terminator(&["127.0.0.1"], addr(&inner, "inner", false)).await;
    let dir = std::env::temp_dir().join(format!("mtgate-https-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("proxy.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let outer_config = |tls: &str| {
        format!(
            r#"
        [[socks5]]
        name = "outer"
        listen = ["127.0.0.1:0"]
        rules = [{{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }}]
        upstream = ["https://up:stream-pass@{tls_addr}"]
        {tls}
        "#
        )
    };
    let outer = server(&outer_config(&format!(
        "upstream_tls = {{ ca = \"{}\" }}",
        ca.display()
    )))
    .await;
    let socks: Proxy = format!("socks5://{}", addr(&outer, "outer", false))
        .parse()
        .unwrap();
    assert_eq!(echo_through(&socks, echo.v4).await.unwrap(), b"ping");
    assert_eq!(echo_through(&socks, echo.v6).await.unwrap(), b"ping");

    // Without the CA the proxy's self-signed certificate does not verify against the public
    // roots: the SOCKS5 client gets a failure reply, nothing reaches the target.
    let untrusting = server(&outer_config("")).await;
    let socks: Proxy = format!("socks5://{}", addr(&untrusting, "outer", false))
        .parse()
        .unwrap();
    let err = echo_through(&socks, echo.v4).await.unwrap_err();
    assert!(err.contains("SOCKS5 proxy replied"), "{err}");

    for s in [outer, untrusting, inner] {
        s.shutdown(Duration::from_secs(1)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn upstream_tls_needs_an_https_upstream() {
    struct NoAuto;
    impl mtgate::config::SecretSource for NoAuto {
        fn auto_secret(
            &mut self,
            _: &str,
            _: &str,
        ) -> Result<mtgate_proto::mtproto::secret::Secret, String> {
            Err("none".into())
        }
    }
    for (upstream, tls, path) in [
        (
            "socks5h://127.0.0.1:1",
            "upstream_tls = { ca = \"/nonexistent.pem\" }",
            "socks5[0].upstream_tls",
        ),
        (
            "https://127.0.0.1:1",
            "upstream_tls = { ca = \"/nonexistent.pem\" }",
            "socks5[0].upstream_tls.ca",
        ),
        (
            "https://127.0.0.1:1",
            "upstream_tls = { server_name = \"x\" }",
            "socks5[0].upstream_tls.server_name",
        ),
    ] {
        let text = format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n[[socks5]]\nlisten = [\"127.0.0.1:0\"]\nupstream = [\"{upstream}\"]\n{tls}\n"
        );
        let err =
            mtgate::config::Config::parse(&text, mtgate::config::Origin::Embedded, &mut NoAuto)
                .unwrap_err();
        assert_eq!(err.path, path, "{err}");
    }
}
