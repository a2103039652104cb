//! The tunnel gateway: configuration, agent authentication (inline, file, HTTP check), and the
//! refusals before the 101 (path, credentials, lockout, max_agents, handshake timeout). The
//! end-to-end tests with an in-test agent are in `tunnel_gateway_e2e.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::config;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use mtgate::inbound::websocket::head_io::read_response;
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::server::Server;
use mtgate::tunnel::gateway::auth::{self, AgentAuthenticator, AuthRequest, Presented};
use mtgate_proto::http1::Limits;
use mtgate_proto::tunnel::anyproxy::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

/// A gateway (plain ws on loopback) with one password agent and `extra` settings.
fn gateway_config(extra: &str) -> String {
    format!(
        r#"
[server]
log_level = "warn"

[metrics]
listen = "127.0.0.1:0"

[[gateway]]
listen = ["127.0.0.1:0"]
plain = true
{extra}

[[gateway.credential]]
username = "agent"
password = "agent-password"
group = "team"
"#
    )
}

async fn start(extra: &str) -> (Server, SocketAddr) {
    let server = Server::start(config(&gateway_config(extra))).await.unwrap();
    let addr = server.local_addrs("gateway")[0];
    (server, addr)
}

/// Sends an upgrade request with `extra` header lines; returns the status, the raw headers
/// and, on a 101, the WebSocket.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    extra: &str,
) -> (u16, String, Option<WebSocket<Prefixed<S>>>) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
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
    let ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Client);
    (101, headers, Some(ws))
}

async fn status(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (code, headers, _) = upgrade(stream, path, extra).await;
    (code, headers)
}

/// `Authorization: Basic` for `user:password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

const V1: &str = "Sec-WebSocket-Protocol: mtgate-tunnel-v1\r\n";

#[test]
fn invalid_configurations_say_where() {
    let bad = |text: &str, needle: &str| {
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
        let e = mtgate::config::Config::parse(text, mtgate::config::Origin::Embedded, &mut NoAuto)
            .expect_err(text)
            .to_string();
        assert!(e.contains(needle), "{e:?} should mention {needle:?}");
    };
    let gateway = |body: &str| format!("[[gateway]]\nlisten = [\"127.0.0.1:0\"]\n{body}\n");
    let cred = "[[gateway.credential]]\nusername = \"a\"\npassword = \"pw\"\ngroup = \"g\"\n";
    bad(&gateway(cred), "plain = true");
    bad(
        &gateway(&format!("plain = true\npath = \"ws\"\n{cred}")),
        "gateway[0].path",
    );
    bad(&gateway("plain = true"), "no agent could authenticate");
    bad(
        &gateway("plain = true\n[[gateway.credential]]\npassword = \"pw\"\ngroup = \"g\""),
        "gateway[0].credential[0].username",
    );
    bad(
        &gateway("plain = true\n[[gateway.credential]]\ntoken = \"short\"\ngroup = \"g\""),
        "gateway[0].credential[0].token",
    );
    bad(
        &gateway("plain = true\n[[gateway.credential]]\nusername = \"cn\"\ngroup = \"g\""),
        "client_ca",
    );
    bad(
        &gateway(&format!("plain = true\nforward_ports = [\"9-1\"]\n{cred}")),
        "gateway[0].forward_ports",
    );
    let socks = |extra: &str| {
        format!(
            "[[socks5]]\nlisten = [\"127.0.0.1:0\"]\n{extra}\n{}",
            gateway(&format!("plain = true\n{cred}"))
        )
    };
    bad(
        &socks("gateway = \"nope\""),
        "no [[gateway]] is named \"nope\"",
    );
    bad(&socks("agent_group = \"g\""), "agent_group needs gateway");
    bad(&socks("gateway = \"gateway\""), "needs agent_group");
    bad(
        &socks("gateway = \"gateway\"\nagent_group = \"g\"\nupstream = [\"socks5://127.0.0.1:1\"]"),
        "not both",
    );
    // A good one parses.
    config(&socks("gateway = \"gateway\"\nagent_group = \"g\""));
}

fn request(presented: Presented, client_id: Option<&str>) -> AuthRequest {
    AuthRequest {
        presented,
        client_id: client_id.map(Into::into),
        peer: "127.0.0.1:1".parse().unwrap(),
    }
}

fn basic_creds(user: &str, password: &str) -> Presented {
    Presented::Basic {
        username: user.into(),
        password: password.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn inline_credentials_passwords_tokens_and_client_ids() {
    let hash = mtgate::auth::password::hash(b"hashed-password");
    let text = gateway_config(&format!(
        r#"
[[gateway.credential]]
username = "hashed"
password = "{hash}"
group = "hashed-group"

[[gateway.credential]]
token = "0123456789abcdef0123"
group = "token-group"

[[gateway.credential]]
username = "pinned"
password = "pinned-password"
group = "pinned-group"
client_id = "host-7"
"#
    ));
    let config = config(&text);
    let chain = auth::chain(&config.gateway[0]);
    let group = |r: AuthRequest| {
        let chain = &chain;
        async move { chain.check(&r).await.map(|g| g.group) }
    };
    assert_eq!(
        group(request(basic_creds("agent", "agent-password"), None)).await,
        Some("team".into())
    );
    assert_eq!(
        group(request(basic_creds("agent", "wrong"), None)).await,
        None
    );
    assert_eq!(
        group(request(basic_creds("nobody", "agent-password"), None)).await,
        None
    );
    assert_eq!(
        group(request(basic_creds("hashed", "hashed-password"), None)).await,
        Some("hashed-group".into())
    );
    assert_eq!(
        group(request(basic_creds("hashed", "hashed-passwor"), None)).await,
        None
    );
    assert_eq!(
        group(request(
            Presented::Bearer("0123456789abcdef0123".into()),
            None
        ))
        .await,
        Some("token-group".into())
    );
    assert_eq!(
        group(request(
            Presented::Bearer("0123456789abcdef012".into()),
            None
        ))
        .await,
        None
    );
    assert_eq!(
        group(request(
            basic_creds("pinned", "pinned-password"),
            Some("host-7")
        ))
        .await,
        Some("pinned-group".into())
    );
    assert_eq!(
        group(request(
            basic_creds("pinned", "pinned-password"),
            Some("host-8")
        ))
        .await,
        None,
        "the credential is pinned to one client id"
    );
    // A certificate identity does not match a password entry of the same name.
    assert_eq!(
        group(request(Presented::Certificate("agent".into()), None)).await,
        None
    );
}

#[tokio::test]
async fn credentials_file_is_reread_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("mtgate-gw-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agents.toml");
    std::fs::write(
        &file,
        "[[credential]]\nusername = \"filed\"\npassword = \"first\"\ngroup = \"one\"\n",
    )
    .unwrap();
    let text = format!(
        "[[gateway]]\nlisten = [\"127.0.0.1:0\"]\nplain = true\ncredentials_file = \"{}\"\n",
        file.display()
    );
    let config = config(&text);
    let chain = auth::chain(&config.gateway[0]);
    let check = |user: &'static str, password: &'static str| {
        let chain = &chain;
        async move {
            chain
                .check(&request(basic_creds(user, password), None))
                .await
                .map(|g| g.group)
        }
    };
    assert_eq!(check("filed", "first").await, Some("one".into()));
    // A new version (mtime moves on) replaces the entries.
    let rewrite = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
    };
    rewrite("[[credential]]\nusername = \"filed\"\npassword = \"second\"\ngroup = \"two\"\n");
    assert_eq!(check("filed", "first").await, None);
    assert_eq!(check("filed", "second").await, Some("two".into()));
    // A broken file keeps the last good entries.
    std::fs::write(&file, "[[credential]]\nusername = ").unwrap();
    let much_later = std::time::SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(much_later)
        .unwrap();
    assert_eq!(check("filed", "second").await, Some("two".into()));
    let _ = std::fs::remove_dir_all(dir);
}

/// A tiny HTTP service: 200 `{"group": "checked"}` for user "remote" with password
/// "remote-password", 403 otherwise; it records the bodies it got.
async fn auth_service() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            record.lock().unwrap().push(json.clone());
                            let ok = path == "/check"
                                && json["username"] == "remote"
                                && json["password"] == "remote-password";
                            let (status, body) = if ok {
                                (200, r#"{"group": "checked"}"#)
                            } else {
                                (403, "{}")
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn external_http_check_grants_and_refuses() {
    let (service, seen) = auth_service().await;
    let text = gateway_config(&format!(
        "auth_url = \"http://{service}/check\"\nauth_timeout = \"2s\""
    ));
    let parsed = config(&text);
    let chain = auth::chain(&parsed.gateway[0]);
    // Inline credentials answer first, without asking the service.
    let granted = chain
        .check(&request(basic_creds("agent", "agent-password"), None))
        .await;
    assert_eq!(granted.unwrap().group, "team");
    assert!(seen.lock().unwrap().is_empty());
    let granted = chain
        .check(&request(
            basic_creds("remote", "remote-password"),
            Some("box-1"),
        ))
        .await;
    assert_eq!(granted.unwrap().group, "checked");
    let refused = chain
        .check(&request(basic_creds("remote", "nope"), None))
        .await;
    assert!(refused.is_none());
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["client_id"], "box-1");
    assert_eq!(bodies[0]["peer"], "127.0.0.1:1");
    // A service that does not answer refuses within the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = gateway_config(&format!(
        "auth_url = \"http://{}/check\"\nauth_timeout = \"200ms\"",
        silent.local_addr().unwrap()
    ));
    let config = config(&text);
    let chain = auth::chain(&config.gateway[0]);
    let started = tokio::time::Instant::now();
    let refused = chain
        .check(&request(basic_creds("remote", "remote-password"), None))
        .await;
    assert!(refused.is_none());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn refusals_before_the_upgrade() {
    let (server, addr) =
        start("auth_lockout = { failures = 3, window = \"1m\", duration = \"5m\" }").await;
    let (code, _) = status(addr, "/elsewhere", V1).await;
    assert_eq!(code, 404);
    let (code, headers) = status(addr, "/ws", V1).await;
    assert_eq!(code, 401, "binary protocol without credentials");
    assert!(
        headers.to_ascii_lowercase().contains("www-authenticate"),
        "{headers}"
    );
    let (code, _) = status(addr, "/ws", "Sec-WebSocket-Protocol: chat\r\n").await;
    assert_eq!(code, 400, "no supported subprotocol");
    let page = common::http_get(addr, "/ws").await;
    assert!(page.starts_with("HTTP/1.1 400 "), "not an upgrade: {page}");
    // Wrong credentials, three times: the address is then locked out.
    for _ in 0..3 {
        let (code, _) = status(addr, "/ws", &format!("{V1}{}", basic("agent", "wrong"))).await;
        assert_eq!(code, 401);
    }
    let (code, _) = status(
        addr,
        "/ws",
        &format!("{V1}{}", basic("agent", "agent-password")),
    )
    .await;
    assert_eq!(code, 403, "locked out, even with the right password");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn json_auth_message_refused_with_auth_response_and_1008() {
    let (server, addr) = start("").await;
    // No subprotocol and no Authorization header: AnyProxy's documented flow, where the first
    // message authenticates.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (code, headers, ws) = upgrade(stream, "/ws", "").await;
    assert_eq!(code, 101);
    assert!(
        !headers
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol")
    );
    let mut ws = ws.unwrap();
    ws.set_auto_close(false);
    let auth = Message::Auth {
        username: "agent".into(),
        password: "wrong".into(),
        client_id: "py-1".into(),
    };
    ws.write_frame(Frame::text(Payload::Owned(auth.to_json().into_bytes())))
        .await
        .unwrap();
    let frame = tokio::time::timeout(T, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.opcode, OpCode::Text);
    match Message::decode(&frame.payload).unwrap() {
        Message::AuthResponse { success, .. } => assert!(!success),
        other => panic!("expected auth_response, got {other:?}"),
    }
    let frame = tokio::time::timeout(T, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.opcode, OpCode::Close);
    assert_eq!(
        u16::from_be_bytes([frame.payload[0], frame.payload[1]]),
        1008
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn max_agents_and_handshake_timeout() {
    let (server, addr) = start("max_agents = 1\nhandshake_timeout = \"400ms\"").await;
    // A slowloris holds the only slot with half a request...
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: g\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...so the next agent is told the gateway is full...
    let (code, _) = status(addr, "/ws", V1).await;
    assert_eq!(code, 503);
    // ...until the handshake timeout drops the slowloris without an answer.
    let started = tokio::time::Instant::now();
    let answered = tokio::time::timeout(T, common::read_until_close(&mut slow))
        .await
        .unwrap();
    assert!(
        answered.is_empty(),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut freed = 0;
    for _ in 0..50 {
        freed = status(addr, "/ws", V1).await.0;
        if freed != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(freed, 401, "the slot is free again");
    server.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn the_example_is_valid_with_a_generated_certificate() {
    let dir = std::env::temp_dir().join(format!("mtgate-gw-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) =
        mtgate::commands::cert::generate(&["gateway.example".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("gateway-cert.pem"), cert).unwrap();
    std::fs::write(dir.join("gateway-key.pem"), key).unwrap();
    let text = include_str!("../../../examples/gateway.toml")
        .replace(
            "\"gateway-cert.pem\"",
            &format!("{:?}", dir.join("gateway-cert.pem")),
        )
        .replace(
            "\"gateway-key.pem\"",
            &format!("{:?}", dir.join("gateway-key.pem")),
        );
    let parsed = config(&text);
    let gateway = &parsed.gateway[0];
    assert!(gateway.tls.is_some());
    assert_eq!(gateway.credentials.len(), 2);
    assert_eq!(gateway.forward_ports, vec![10000..=10100]);
    let socks = parsed.proxies.iter().find(|p| p.name == "socks5").unwrap();
    assert_eq!(socks.gateway.as_deref(), Some("tunnel"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn reload_applies_new_credentials_to_new_agents() {
    let (server, addr) = start("").await;
    let old = format!("{V1}{}", basic("agent", "agent-password"));
    let new = format!("{V1}{}", basic("agent", "rotated-password"));
    assert_eq!(status(addr, "/ws", &new).await.0, 401);
    let text = gateway_config("").replace("agent-password", "rotated-password");
    server.reload(config(&text));
    assert_eq!(status(addr, "/ws", &old).await.0, 401);
    assert_eq!(status(addr, "/ws", &new).await.0, 101);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_agent_asking_for_another_group_is_refused() {
    let (server, addr) = start("").await;
    let creds = format!("{V1}{}", basic("agent", "agent-password"));
    let (code, _) = status(addr, "/ws", &format!("{creds}X-Group-ID: other\r\n")).await;
    assert_eq!(code, 403);
    let (code, _) = status(addr, "/ws", &format!("{creds}X-Group-ID: team\r\n")).await;
    assert_eq!(code, 101);
    // With JSON the answer is a failed auth_response.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (code, _, ws) = upgrade(stream, "/ws", "X-Group-ID: other\r\n").await;
    assert_eq!(code, 101);
    let mut ws = ws.unwrap();
    let auth = Message::Auth {
        username: "agent".into(),
        password: "agent-password".into(),
        client_id: "py-1".into(),
    };
    ws.write_frame(Frame::text(Payload::Owned(auth.to_json().into_bytes())))
        .await
        .unwrap();
    let frame = tokio::time::timeout(T, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    match Message::decode(&frame.payload).unwrap() {
        Message::AuthResponse { success, message } => {
            assert!(!success);
            assert!(message.contains("group"), "{message}");
        }
        other => panic!("expected auth_response, got {other:?}"),
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn mtgate_cert_writes_a_pair_with_a_private_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mtgate-gw-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mtgate"))
        .args(["cert", "--name", "gw.test", "--name", "::1", "--out-cert"])
        .arg(&cert)
        .arg("--out-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The pair serves a wss gateway.
    let text = format!(
        "[[gateway]]\nlisten = [\"127.0.0.1:0\"]\ncert = {cert:?}\nkey = {key:?}\n[[gateway.credential]]\ntoken = \"0123456789abcdef\"\ngroup = \"g\"\n"
    );
    assert!(config(&text).gateway[0].tls.is_some());
    let _ = std::fs::remove_dir_all(dir);
}
