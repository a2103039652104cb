//! `wss://` pool servers behind the `websocket` listener: TLS from mtgate to an in-process
//! TLS WebSocket echo backend (certificates made here with rcgen), verified against a
//! configured CA, with a client certificate (mTLS), and health-checked over TLS.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{config, http_get};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use mtgate::inbound::websocket::handshake::accept_key;
use mtgate::inbound::websocket::head_io::{read_request, read_response};
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::server::Server;
use mtgate_proto::http1::Limits;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

/// A CA and what it signed, written as PEM files under a directory of their own.
struct Pki {
    dir: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mtgate-wssb-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self {
            dir,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Issues a certificate for `names`; returns it and its key, and writes `{file}.pem` and
    /// `{file}.key`.
    fn issue(
        &self,
        file: &str,
        names: &[&str],
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(self.dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_file(self.dir.join("ca.pem")).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS WebSocket echo backend; "whoami" answers its name. With `client_ca`, it requires a
/// client certificate signed by that CA.
struct TlsBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsBackend {
    async fn start(
        name: &'static str,
        cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
        client_ca: Option<CertificateDer<'static>>,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let tls = builder.with_single_cert(vec![cert.0], cert.1).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                sessions.spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(T, acceptor.accept(stream)).await {
                        echo(tls, name).await;
                    }
                });
            }
        });
        Self { addr, task }
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, name: &'static str) {
    let Ok((request, rest)) = read_request(&mut stream, &Limits::default()).await else {
        return;
    };
    let key = request
        .headers
        .get_str("sec-websocket-key")
        .unwrap_or("")
        .to_owned();
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    if stream.write_all(answer.as_bytes()).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let mut ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Server);
    loop {
        let Ok(frame) = ws.read_frame().await else {
            return;
        };
        match frame.opcode {
            OpCode::Close => return,
            OpCode::Text if &frame.payload[..] == b"whoami" => {
                let _ = ws
                    .write_frame(Frame::text(Payload::Borrowed(name.as_bytes())))
                    .await;
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let echoed = Frame::new(frame.fin, frame.opcode, None, frame.payload);
                if ws.write_frame(echoed).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Upgrades `/echo` on mtgate's plain ws listener; the status, and the WebSocket on a 101.
async fn upgrade(addr: SocketAddr) -> (u16, Option<WebSocket<Prefixed<TcpStream>>>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let (response, rest) = tokio::time::timeout(T, read_response(&mut stream, &Limits::default()))
        .await
        .unwrap()
        .unwrap();
    if response.status != 101 {
        return (response.status, None);
    }
    let mut ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Client);
    ws.set_auto_close(true);
    (101, Some(ws))
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> (OpCode, Vec<u8>) {
    let frame = tokio::time::timeout(T, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    (frame.opcode, frame.payload.to_vec())
}

fn server_config(servers: &[String], pool_extra: &str) -> String {
    let servers: Vec<String> = servers
        .iter()
        .map(|url| format!("{{ url = \"{url}\" }}"))
        .collect();
    format!(
        r#"
[server]
log_level = "warn"

[metrics]
listen = "127.0.0.1:0"

[[pool]]
name = "echo"
servers = [{}]
{pool_extra}

[[websocket]]
listen = ["127.0.0.1:0"]
routes = [{{ path = "/echo", pool = "echo" }}]
handshake_timeout = "5s"
"#,
        servers.join(", ")
    )
}

fn tls_section(pki: &Pki, extra: &str) -> String {
    format!("[pool.tls]\nca = \"{}\"\n{extra}", pki.path("ca.pem"))
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn text_and_binary_round_trip_over_a_wss_backend_with_mtls() {
    let pki = Pki::new("mtls");
    let server_cert = pki.issue("server", &["backend.test", "127.0.0.1"]);
    pki.issue("client", &["mtgate.test"]);
    let backend = TlsBackend::start("tls", server_cert, Some(pki.ca_der())).await;
    let port = backend.addr.port();

    // By IP (the certificate holds it), and by a configured server name.
    for (url, extra) in [
        (format!("wss://127.0.0.1:{port}"), String::new()),
        (
            format!("wss://127.0.0.1:{port}"),
            "server_name = \"backend.test\"\n".to_owned(),
        ),
    ] {
        let extra = format!(
            "{extra}cert = \"{}\"\nkey = \"{}\"\n",
            pki.path("client.pem"),
            pki.path("client.key")
        );
        let text = server_config(&[url], &tls_section(&pki, &extra));
        let server = Server::start(config(&text)).await.unwrap();
        let addr = server.local_addrs("websocket")[0];
        let (status, ws) = upgrade(addr).await;
        assert_eq!(status, 101);
        let mut ws = ws.unwrap();
        ws.write_frame(Frame::text(Payload::Borrowed(b"whoami")))
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await, (OpCode::Text, b"tls".to_vec()));
        let header_and_json = b"MSG 1\n{\"a\":[1,2,3]}";
        ws.write_frame(Frame::text(Payload::Borrowed(header_and_json)))
            .await
            .unwrap();
        assert_eq!(
            next(&mut ws).await,
            (OpCode::Text, header_and_json.to_vec())
        );
        let binary: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        ws.write_frame(Frame::binary(Payload::Borrowed(&binary)))
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await, (OpCode::Binary, binary));
        ws.write_frame(Frame::close(1000, b"done")).await.unwrap();
        server.shutdown(Duration::from_secs(1)).await;
    }

    // Without the client certificate the backend refuses the TLS handshake: a 502.
    let text = server_config(&[format!("wss://127.0.0.1:{port}")], &tls_section(&pki, ""));
    let server = Server::start(config(&text)).await.unwrap();
    let (status, _) = upgrade(server.local_addrs("websocket")[0]).await;
    assert_eq!(status, 502);
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

#[tokio::test]
async fn a_backend_certificate_from_another_ca_is_a_502_and_a_counted_failure() {
    let trusted = Pki::new("trusted");
    let other = Pki::new("other");
    let backend = TlsBackend::start("tls", other.issue("server", &["127.0.0.1"]), None).await;
    let url = format!("wss://127.0.0.1:{}", backend.addr.port());
    let text = server_config(
        std::slice::from_ref(&url),
        &format!("{}[pool.retry]\nattempts = 1\n", tls_section(&trusted, "")),
    );
    let server = Server::start(config(&text)).await.unwrap();
    let addr = server.local_addrs("websocket")[0];
    let (status, ws) = upgrade(addr).await;
    assert_eq!(status, 502);
    assert!(ws.is_none());

    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    let member = backend.addr.to_string();
    let failures =
        format!("mtgate_pool_server_failures_total{{pool=\"echo\",server=\"{member}\"}} 1");
    assert!(metrics.contains(&failures), "{metrics}");
    let refused =
        r#"mtgate_connections_refused_total{listener="websocket",reason="upstream_unavailable"} 1"#;
    assert!(metrics.contains(refused), "{metrics}");

    // A certificate for another name is refused the same way, even from the right CA.
    let wrong_name =
        TlsBackend::start("tls", trusted.issue("elsewhere", &["elsewhere.test"]), None).await;
    let text = server_config(
        &[format!("wss://127.0.0.1:{}", wrong_name.addr.port())],
        &tls_section(&trusted, ""),
    );
    let server2 = Server::start(config(&text)).await.unwrap();
    assert_eq!(upgrade(server2.local_addrs("websocket")[0]).await.0, 502);
    server2.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
    wrong_name.task.abort();
}

#[tokio::test]
async fn websocket_health_check_runs_over_tls() {
    let pki = Pki::new("health");
    let stranger = Pki::new("stranger");
    let good = TlsBackend::start("good", pki.issue("good", &["127.0.0.1"]), None).await;
    // Upgrades fine, but with a certificate mtgate does not trust: down for a TLS check.
    let bad = TlsBackend::start("bad", stranger.issue("bad", &["127.0.0.1"]), None).await;
    let servers = [
        format!("wss://127.0.0.1:{}", good.addr.port()),
        format!("wss://127.0.0.1:{}", bad.addr.port()),
    ];
    let health = "[pool.health]\ncheck = \"websocket\"\npath = \"/echo\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n";
    let text = server_config(&servers, &format!("{}{health}", tls_section(&pki, "")));
    let server = Server::start(config(&text)).await.unwrap();
    let metrics_addr = server.metrics_addr().unwrap();
    let up = |addr: SocketAddr, value: u8| {
        format!("mtgate_pool_server_up{{pool=\"echo\",server=\"{addr}\"}} {value}")
    };
    wait_for("the health checks to settle", async || {
        let metrics = http_get(metrics_addr, "/metrics").await;
        metrics.contains(&up(good.addr, 1)) && metrics.contains(&up(bad.addr, 0))
    })
    .await;
    let addr = server.local_addrs("websocket")[0];
    for _ in 0..4 {
        let (status, ws) = upgrade(addr).await;
        assert_eq!(status, 101);
        let mut ws = ws.unwrap();
        ws.write_frame(Frame::text(Payload::Borrowed(b"whoami")))
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await.1, b"good");
    }
    server.shutdown(Duration::from_secs(1)).await;
    good.task.abort();
    bad.task.abort();
}

#[test]
fn pool_tls_settings_are_checked_at_load() {
    let pki = Pki::new("load");
    pki.issue("client", &["c"]);
    let cases = [
        (
            vec!["tcp://127.0.0.1:1".to_owned()],
            tls_section(&pki, ""),
            "pool[0].tls",
        ),
        (
            vec!["wss://127.0.0.1:1".to_owned()],
            "[pool.tls]\nca = \"/nonexistent/ca.pem\"\n".to_owned(),
            "pool[0].tls.ca",
        ),
        (
            vec!["wss://127.0.0.1:1".to_owned()],
            tls_section(&pki, &format!("cert = \"{}\"\n", pki.path("client.pem"))),
            "pool[0].tls",
        ),
        (
            vec!["wss://127.0.0.1:1".to_owned()],
            tls_section(&pki, "server_name = \"not a name\"\n"),
            "pool[0].tls.server_name",
        ),
        (
            vec!["wss://127.0.0.1:1/path".to_owned()],
            String::new(),
            "pool[0].servers[0].url",
        ),
    ];
    for (servers, extra, path) in cases {
        let text = server_config(&servers, &extra);
        let err = common::config_error(&text);
        assert!(err.path.starts_with(path), "{extra}: {err}");
    }
    let tcp = format!(
        "{}\n[[tcp]]\nlisten = [\"127.0.0.1:0\"]\npool = \"echo\"\n",
        server_config(&["wss://127.0.0.1:1".to_owned()], "")
    );
    let err = common::config_error(&tcp);
    assert!(err.path.starts_with("tcp[0].pool"), "{err}");
}

#[tokio::test]
async fn a_backend_silent_in_the_tls_handshake_is_a_502_within_the_connect_timeout() {
    let pki = Pki::new("silent");
    // Accepts TCP connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let text = server_config(
        &[format!("wss://{silent}")],
        &format!(
            "connect_timeout = \"300ms\"\n{}[pool.retry]\nattempts = 1\n",
            tls_section(&pki, "")
        ),
    );
    let server = Server::start(config(&text)).await.unwrap();
    let started = tokio::time::Instant::now();
    let (status, _) = upgrade(server.local_addrs("websocket")[0]).await;
    assert_eq!(status, 502);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the TLS handshake kept the pool's 300ms budget: {took:?}"
    );
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    let failures =
        format!("mtgate_pool_server_failures_total{{pool=\"echo\",server=\"{silent}\"}} 1");
    assert!(metrics.contains(&failures), "{metrics}");
    server.shutdown(Duration::from_secs(1)).await;
    holder.abort();
}
