//! The `websocket` listener in-process, against in-process WebSocket backends: echo of text
//! and binary, subprotocols, limits (1009), refusals before the 101, a backend dying
//! mid-session, wss, the admin listing, in-flight counts and 1001 on shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{config, http_get};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use mtgate::inbound::websocket::handshake::accept_key;
use mtgate::inbound::websocket::head_io::{read_request, read_response};
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::server::Server;
use mtgate_proto::http1::Limits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TOKEN: &str = "test-admin-token-0123456789";
const T: Duration = Duration::from_secs(10);

/// A WebSocket echo backend; answers "whoami" with its name and picks the first subprotocol.
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Backend {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                sessions.spawn(echo(stream, name));
            }
        });
        Self { addr, task }
    }
}

async fn echo(mut stream: TcpStream, name: &'static str) {
    let Ok((request, rest)) = read_request(&mut stream, &Limits::default()).await else {
        return;
    };
    let key = request
        .headers
        .get_str("sec-websocket-key")
        .unwrap_or("")
        .to_owned();
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(&key)
    );
    if let Some(p) = request.headers.get_str("sec-websocket-protocol") {
        let first = p.split(',').next().unwrap_or("").trim();
        answer.push_str(&format!("Sec-WebSocket-Protocol: {first}\r\n"));
    }
    answer.push_str("\r\n");
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Server);
    ws.set_max_message_size(64 << 20);
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
            OpCode::Text if &frame.payload[..] == b"headers" => {
                let text = format!("{:?}", request.headers);
                let _ = ws
                    .write_frame(Frame::text(Payload::Owned(text.into_bytes())))
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

/// Connects, upgrades with `extra` header lines, and returns the status line and headers of
/// the answer and, on a 101, the WebSocket.
async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    extra: &str,
) -> (u16, String, Option<WebSocket<Prefixed<S>>>) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (response, rest) = tokio::time::timeout(T, read_response(&mut stream, &Limits::default()))
        .await
        .unwrap()
        .unwrap();
    let headers = format!("{:?}", response.headers);
    if response.status != 101 {
        return (response.status, headers, None);
    }
    assert_eq!(
        response.headers.get_str("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let mut ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Client);
    ws.set_auto_close(true);
    ws.set_max_message_size(64 << 20);
    (101, headers, Some(ws))
}

async fn ws_connect(addr: SocketAddr, path: &str, extra: &str) -> WebSocket<Prefixed<TcpStream>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (status, headers, ws) = connect(stream, path, extra).await;
    assert_eq!(status, 101, "{headers}");
    ws.unwrap()
}

async fn status(addr: SocketAddr, path: &str, extra: &str) -> u16 {
    let stream = TcpStream::connect(addr).await.unwrap();
    connect(stream, path, extra).await.0
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> (OpCode, bool, Vec<u8>) {
    let frame = tokio::time::timeout(T, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    (frame.opcode, frame.fin, frame.payload.to_vec())
}

async fn expect_close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> (u16, String) {
    loop {
        let (op, _, payload) = next(ws).await;
        if op == OpCode::Close {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

fn server_config(backends: &[SocketAddr], extra: &str) -> String {
    let servers: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ url = \"tcp://{a}\" }}"))
        .collect();
    format!(
        r#"
[server]
log_level = "warn"

[metrics]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[pool]]
name = "echo"
servers = [{}]
[pool.retry]
attempts = 3
[pool.ejection]
consecutive_failures = 1

[[websocket]]
listen = ["127.0.0.1:0", "[::1]:0"]
routes = [{{ path = "/echo", pool = "echo" }}]
{extra}
"#,
        servers.join(", ")
    )
}

async fn start(backends: &[SocketAddr], extra: &str) -> (Server, SocketAddr) {
    let server = Server::start(config(&server_config(backends, extra)))
        .await
        .unwrap();
    let addr = server.local_addrs("websocket")[0];
    (server, addr)
}

#[tokio::test]
async fn text_binary_fragments_and_subprotocols() {
    let backend = Backend::start("a").await;
    let (server, addr) = start(&[backend.addr], "").await;
    let mut ws = ws_connect(
        addr,
        "/echo/room?x=1",
        "Sec-WebSocket-Protocol: mb.v1, other\r\n",
    )
    .await;

    let message = "publish:orders.created:1.0.0:4b1c\n{\"id\":7,\"items\":[1,2]}";
    ws.write_frame(Frame::text(Payload::Borrowed(message.as_bytes())))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        (OpCode::Text, true, message.as_bytes().to_vec())
    );

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.write_frame(Frame::binary(Payload::Borrowed(&binary)))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, (OpCode::Binary, true, binary.clone()));

    // A fragmented message arrives fragment by fragment.
    ws.write_frame(Frame::new(
        false,
        OpCode::Text,
        None,
        Payload::Borrowed(b"he"),
    ))
    .await
    .unwrap();
    ws.write_frame(Frame::new(
        true,
        OpCode::Continuation,
        None,
        Payload::Borrowed(b"llo"),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await, (OpCode::Text, false, b"he".to_vec()));
    assert_eq!(
        next(&mut ws).await,
        (OpCode::Continuation, true, b"llo".to_vec())
    );

    // mtgate answers pings itself.
    ws.write_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Borrowed(b"p"),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await, (OpCode::Pong, true, b"p".to_vec()));

    // The backend saw the subprotocol offer and no deflate offer.
    ws.write_frame(Frame::text(Payload::Borrowed(b"headers")))
        .await
        .unwrap();
    let (_, _, seen) = next(&mut ws).await;
    let seen = String::from_utf8(seen).unwrap();
    assert!(seen.contains("mb.v1, other"), "{seen}");
    assert!(!seen.to_ascii_lowercase().contains("deflate"), "{seen}");

    // The admin API lists the session.
    let admin = server.admin_addr().unwrap();
    let listing = admin_get(admin, "/websockets").await;
    assert!(listing.contains(r#""path": "/echo/room""#), "{listing}");
    assert!(listing.contains(r#""protocol": "mb.v1""#), "{listing}");
    // Metrics count messages as they pass, not when the session ends: the text, the binary,
    // the fragmented "hello" and "headers" so far.
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    let live =
        r#"mtgate_websocket_messages_total{listener="websocket",direction="client_to_backend"} 4"#;
    assert!(metrics.contains(live), "{metrics}");

    // A close is carried end to end and echoed.
    ws.write_frame(Frame::close(4000, b"bye")).await.unwrap();
    assert_eq!(expect_close(&mut ws).await, (4000, "bye".to_owned()));
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    let closes = r#"mtgate_websocket_closes_total{listener="websocket",reason="client"} 1"#;
    assert!(metrics.contains(closes), "{metrics}");
    let messages =
        r#"mtgate_websocket_messages_total{listener="websocket",direction="client_to_backend"} 4"#;
    assert!(metrics.contains(messages), "{metrics}");
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

async fn admin_get(admin: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(admin).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    String::from_utf8(common::read_until_close(&mut stream).await).unwrap()
}

#[tokio::test]
async fn oversized_message_is_closed_with_1009() {
    let backend = Backend::start("a").await;
    let (server, addr) = start(&[backend.addr], "").await;
    let mut ws = ws_connect(addr, "/echo", "").await;
    let exact = vec![7u8; 1024 * 1024];
    ws.write_frame(Frame::binary(Payload::Borrowed(&exact)))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.2.len(), exact.len());
    let over = vec![7u8; 1024 * 1024 + 1];
    ws.write_frame(Frame::binary(Payload::Borrowed(&over)))
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "message exceeds 1048576 bytes");
    // What the client still sends after the refusal is drained, not answered with a reset:
    // once this side finishes, the connection ends with a plain EOF.
    let mut raw = ws.into_inner();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = async {
        raw.write_all(&vec![0x5a; 256 * 1024]).await?;
        raw.shutdown().await?;
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await
    };
    let ending = tokio::time::timeout(T, late).await;
    assert!(matches!(ending, Ok(Ok(_))), "{ending:?}");

    // Over the limit in fragments too.
    let mut ws = ws_connect(addr, "/echo", "").await;
    let half = vec![1u8; 600 * 1024];
    ws.write_frame(Frame::new(
        false,
        OpCode::Binary,
        None,
        Payload::Borrowed(&half),
    ))
    .await
    .unwrap();
    ws.write_frame(Frame::new(
        true,
        OpCode::Continuation,
        None,
        Payload::Borrowed(&half),
    ))
    .await
    .unwrap();
    let mut code = 0;
    for _ in 0..3 {
        let (op, _, payload) = next(&mut ws).await;
        if op == OpCode::Close {
            code = u16::from_be_bytes([payload[0], payload[1]]);
            break;
        }
    }
    assert_eq!(code, 1009);
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

#[tokio::test]
async fn refusals_before_the_upgrade() {
    let backend = Backend::start("a").await;
    let extra = r#"allowed_origins = ["https://app.example"]
[websocket.auth]
users = { alice = "wonderland" }
tokens = ["0123456789abcdef-token"]
"#;
    let (server, addr) = start(&[backend.addr], extra).await;
    let origin = "Origin: https://app.example\r\n";
    let basic = "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n"; // alice:wonderland
    let bearer = "Authorization: Bearer 0123456789abcdef-token\r\n";
    assert_eq!(status(addr, "/echo", origin).await, 401);
    assert_eq!(
        status(
            addr,
            "/echo",
            &format!("{origin}Authorization: Basic YWxpY2U6eA==\r\n")
        )
        .await,
        401
    );
    assert_eq!(status(addr, "/echo", basic).await, 403);
    assert_eq!(
        status(
            addr,
            "/echo",
            &format!("Origin: https://evil.example\r\n{basic}")
        )
        .await,
        403
    );
    assert_eq!(
        status(addr, "/nowhere", &format!("{origin}{basic}")).await,
        404
    );
    assert_eq!(
        status(addr, "/echo", &format!("{origin}{basic}")).await,
        101
    );
    assert_eq!(
        status(addr, "/echo", &format!("{origin}{bearer}")).await,
        101
    );
    // The credentials stay at mtgate.
    let mut ws = ws_connect(addr, "/echo", &format!("{origin}{bearer}")).await;
    ws.write_frame(Frame::text(Payload::Borrowed(b"headers")))
        .await
        .unwrap();
    let seen = String::from_utf8(next(&mut ws).await.2).unwrap();
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "{seen}"
    );
    // Not an upgrade at all.
    let page = http_get(addr, "/echo").await;
    assert!(page.starts_with("HTTP/1.1 400"), "{page}");
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

#[tokio::test]
async fn backend_killed_mid_session_then_reconnect() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (server, addr) = start(&[a.addr, b.addr], "").await;
    let mut ws = ws_connect(addr, "/echo", "").await;
    ws.write_frame(Frame::text(Payload::Borrowed(b"whoami")))
        .await
        .unwrap();
    let first = next(&mut ws).await.2;
    let (dead, alive) = if first == b"a" { (a, b) } else { (b, a) };
    // Killing the task drops the listener and every session: the backend is gone.
    dead.task.abort();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1011);
    assert_eq!(reason, "backend connection lost");
    // The next connections land on the live backend.
    for _ in 0..3 {
        let mut ws = ws_connect(addr, "/echo", "").await;
        ws.write_frame(Frame::text(Payload::Borrowed(b"whoami")))
            .await
            .unwrap();
        assert_ne!(next(&mut ws).await.2, first);
    }
    server.shutdown(Duration::from_secs(1)).await;
    alive.task.abort();
}

#[tokio::test]
async fn graceful_shutdown_sends_1001() {
    let backend = Backend::start("a").await;
    let (server, addr) = start(&[backend.addr], "").await;
    let mut ws = ws_connect(addr, "/echo", "").await;
    ws.write_frame(Frame::text(Payload::Borrowed(b"x")))
        .await
        .unwrap();
    next(&mut ws).await;
    let stopping = tokio::spawn(server.shutdown(Duration::from_secs(5)));
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    tokio::time::timeout(T, stopping).await.unwrap().unwrap();
    backend.task.abort();
}

#[tokio::test]
async fn silent_peer_misses_its_pong_deadline() {
    let backend = Backend::start("a").await;
    let extra = "ping_interval = \"200ms\"\npong_timeout = \"200ms\"";
    let (server, addr) = start(&[backend.addr], extra).await;
    let mut ws = ws_connect(addr, "/echo", "").await;
    // The client never reads (so never answers pings) until the close is due.
    tokio::time::sleep(Duration::from_millis(700)).await;
    ws.set_auto_pong(false);
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (1001, "no pong within the deadline")
    );
    // A client that answers stays.
    let mut ws = ws_connect(addr, "/echo", "").await;
    for _ in 0..4 {
        ws.write_frame(Frame::text(Payload::Borrowed(b"x")))
            .await
            .unwrap();
        loop {
            let (op, _, _) = next(&mut ws).await;
            if op == OpCode::Text {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

#[tokio::test]
async fn wss_with_client_certificates() {
    let backend = Backend::start("a").await;
    let dir = std::env::temp_dir().join(format!("mtgate-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).unwrap();
    let extra = format!(
        "[websocket.tls]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\nclient_ca = \"{0}/ca.pem\"\n",
        dir.display()
    );
    let (server, addr) = start(&[backend.addr], &extra).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
    };
    let with_cert = builder()
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(with_cert));
    let tls = connector
        .connect(name.clone(), TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let (code, _, ws) = connect(tls, "/echo", "").await;
    assert_eq!(code, 101);
    let mut ws = ws.unwrap();
    ws.write_frame(Frame::text(Payload::Borrowed(b"over tls")))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.2, b"over tls");

    // Without a client certificate the TLS handshake fails.
    let without = tokio_rustls::TlsConnector::from(Arc::new(builder().with_no_client_auth()));
    let refused = async {
        let mut tls = without
            .connect(name, TcpStream::connect(addr).await.unwrap())
            .await?;
        tls.write_all(b"GET /echo HTTP/1.1\r\n\r\n").await?;
        read_response(&mut tls, &Limits::default())
            .await
            .map_err(std::io::Error::other)
    };
    assert!(tokio::time::timeout(T, refused).await.unwrap().is_err());
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
    let _ = std::fs::remove_dir_all(dir);
    let _: Option<Bytes> = None;
}

#[tokio::test]
async fn idle_timeout_connection_cap_and_handshake_timeout() {
    let backend = Backend::start("a").await;
    let extra = "idle_timeout = \"300ms\"\nmax_connections = 1\nhandshake_timeout = \"300ms\"";
    let (server, addr) = start(&[backend.addr], extra).await;
    let mut ws = ws_connect(addr, "/echo", "").await;
    // The listener is full: the next connection is told so.
    let page = http_get(addr, "/echo").await;
    assert!(page.starts_with("HTTP/1.1 503"), "{page}");
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    drop(ws);
    // A client that never sends its request is dropped after the handshake timeout (once the
    // idle session has let go of the listener's only slot).
    let mut answered = Vec::new();
    for _ in 0..50 {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let reading = common::read_until_close(&mut silent);
        answered = tokio::time::timeout(T, reading).await.unwrap();
        if answered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered.is_empty(),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    server.shutdown(Duration::from_secs(1)).await;
    backend.task.abort();
}

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

#[test]
fn invalid_configurations_say_where() {
    let route = "routes = [{ path = \"/echo\", pool = \"echo\" }]";
    let cases = [
        (
            Some("routes = [{ path = \"/x\", pool = \"nope\" }]"),
            "",
            "websocket[0].routes[0].pool",
        ),
        (
            Some("routes = [{ path = \"x\", pool = \"echo\" }]"),
            "",
            "websocket[0].routes[0].path",
        ),
        (Some("routes = []"), "", "websocket[0].routes"),
        (None, "max_payload = 10", "websocket[0].max_payload"),
        (
            None,
            "[websocket.auth]\ntokens = [\"short\"]",
            "websocket[0].auth",
        ),
        (
            None,
            "[websocket.tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"",
            "websocket[0].tls.cert",
        ),
        (None, "max_payloads = 10", "line"),
    ];
    for (routes, extra, path) in cases {
        let base = server_config(&["127.0.0.1:1".parse().unwrap()], extra);
        let text = base.replacen(route, routes.unwrap_or(route), 1);
        let parsed =
            mtgate::config::Config::parse(&text, mtgate::config::Origin::Embedded, &mut NoAuto);
        let err = parsed.expect_err(extra);
        assert!(err.path.starts_with(path), "{extra}: {err}");
    }
}

#[tokio::test]
async fn websocket_health_check_takes_out_a_backend_that_does_not_upgrade() {
    let good = Backend::start("good").await;
    // Answers every request with a 404: alive for a tcp check, dead for a websocket one.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = listener.local_addr().unwrap();
    let not_ws = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_request(&mut stream, &Limits::default()).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let text = server_config(&[good.addr, bad], "").replace(
        "[pool.retry]",
        "[pool.health]\ncheck = \"websocket\"\npath = \"/echo\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n[pool.retry]",
    );
    let server = Server::start(config(&text)).await.unwrap();
    let addr = server.local_addrs("websocket")[0];
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..6 {
        let mut ws = ws_connect(addr, "/echo", "").await;
        ws.write_frame(Frame::text(Payload::Borrowed(b"whoami")))
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await.2, b"good");
    }
    server.shutdown(Duration::from_secs(1)).await;
    good.task.abort();
    not_ws.abort();
}

#[tokio::test]
async fn open_sessions_count_as_in_flight_on_their_backends() {
    let backends = [Backend::start("a").await, Backend::start("b").await];
    let (server, addr) = start(&[backends[0].addr, backends[1].addr], "").await;
    let admin = server.admin_addr().unwrap();
    let in_flight = || async {
        let body = admin_get(admin, "/pools/echo").await;
        let json: serde_json::Value =
            serde_json::from_str(body.split_once("\r\n\r\n").unwrap().1).unwrap();
        json["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["in_flight"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    // Least-connections and per-server caps rely on open sessions being counted.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(ws_connect(addr, "/echo", "").await);
    }
    assert_eq!(in_flight().await, [1, 1]);
    for mut ws in sessions {
        ws.write_frame(Frame::close(1000, b"")).await.unwrap();
        expect_close(&mut ws).await;
    }
    let mut counts = in_flight().await;
    for _ in 0..100 {
        if counts == [0, 0] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        counts = in_flight().await;
    }
    assert_eq!(counts, [0, 0]);
    server.shutdown(Duration::from_secs(1)).await;
}
