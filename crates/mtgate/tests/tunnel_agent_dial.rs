//! The agent's handshake with the gateway, against scripted gateways on 127.0.0.1: what the
//! upgrade request carries, which 101s are refused, 401 handling, and the `anyproxy-json`
//! login (`auth` → `auth_response`).

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use mtgate::inbound::websocket::handshake::{accept_key, switching_protocols};
use mtgate::inbound::websocket::head_io::read_request;
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::tunnel::agent::AgentConfig;
use mtgate::tunnel::agent::dial::{self, DialError};
use mtgate_proto::http1::{Limits, RequestHead};
use mtgate_proto::tunnel::anyproxy::Message;
use mtgate_proto::tunnel::{SUBPROTOCOL_ANYPROXY_JSON, SUBPROTOCOL_V1};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// A gateway that serves one connection with `script` and reports the request head.
async fn scripted<F, Fut>(script: F) -> (SocketAddr, oneshot::Receiver<RequestHead>)
where
    F: FnOnce(TcpStream, RequestHead, bytes::Bytes) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (head, rest) = timeout(WAIT, read_request(&mut tcp, &Limits::default()))
            .await
            .unwrap()
            .unwrap();
        let _ = tx.send(head.clone());
        script(tcp, head, rest).await;
    });
    (addr, rx)
}

fn config(addr: SocketAddr, extra: &str) -> AgentConfig {
    AgentConfig::parse(&format!(
        "gateway = \"ws://{addr}/ws\"\nclient_id = \"edge-7\"\nconnect_timeout = \"2s\"\n{extra}"
    ))
    .unwrap()
}

/// The error of a dial that must fail.
async fn failure(config: &AgentConfig) -> DialError {
    match dial::connect(config).await {
        Ok(_) => panic!("the dial should fail"),
        Err(e) => e,
    }
}

const BASIC: &str = "username = \"group-a\"\npassword = \"s3cret\"";

fn key_of(head: &RequestHead) -> String {
    head.headers
        .get_str("sec-websocket-key")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn bearer_token_and_headers_reach_the_gateway() {
    let (addr, head) = scripted(|mut tcp, head, _| async move {
        let answer = switching_protocols(&key_of(&head), Some(SUBPROTOCOL_V1));
        tcp.write_all(&answer).await.unwrap();
        tokio::time::sleep(WAIT).await;
    })
    .await;
    let config = config(addr, "token = \"tok-0123456789abcdef\"");
    dial::connect(&config).await.unwrap();
    let head = head.await.unwrap();
    let h = &head.headers;
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/ws");
    assert_eq!(
        h.get_str("authorization"),
        Some("Bearer tok-0123456789abcdef")
    );
    assert_eq!(h.get_str("x-client-id"), Some("edge-7"));
    assert_eq!(h.get_str("sec-websocket-protocol"), Some(SUBPROTOCOL_V1));
    assert_eq!(h.get_str("sec-websocket-version"), Some("13"));
    assert_eq!(h.get_str("host"), Some(addr.to_string().as_str()));
}

#[tokio::test]
async fn unauthorized_is_reported_with_its_status_and_without_the_secret() {
    let (addr, _) = scripted(|mut tcp, _, _| async move {
        let _ = tcp
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let err = failure(&config(addr, BASIC)).await;
    assert!(err.is_auth_failure(), "{err}");
    let text = err.to_string();
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn a_bad_101_is_refused() {
    type Answer = fn(&str) -> Vec<u8>;
    let cases: [(Answer, &str); 4] = [
        (
            |_| {
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\nSec-WebSocket-Protocol: mtgate-tunnel-v1\r\n\r\n".to_vec()
            },
            "Sec-WebSocket-Accept",
        ),
        (|key| switching_protocols(key, None), "subprotocol"),
        (
            |key| switching_protocols(key, Some("something-else")),
            "subprotocol",
        ),
        (
            |_| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "404",
        ),
    ];
    for (answer, words) in cases {
        let (addr, _) = scripted(move |mut tcp, head, _| async move {
            let _ = tcp.write_all(&answer(&key_of(&head))).await;
            tokio::time::sleep(WAIT).await;
        })
        .await;
        let err = failure(&config(addr, BASIC)).await;
        assert!(!err.is_auth_failure());
        assert!(err.to_string().contains(words), "{err} / {words}");
    }
    // Sanity: the accept key the helper computes is what a good gateway sends.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[tokio::test]
async fn a_silent_gateway_times_out() {
    let (addr, _) = scripted(|tcp, _, _| async move {
        // Holds the connection open and never answers.
        let _tcp = tcp;
        tokio::time::sleep(WAIT).await;
    })
    .await;
    let started = tokio::time::Instant::now();
    let err = failure(&config(addr, BASIC)).await;
    assert!(matches!(err, DialError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A JSON gateway: 101 with `anyproxy-json` (or, like AnyProxy's own gateway, with no
/// subprotocol), then reads `auth` and answers `success`.
async fn json_gateway(
    success: bool,
    subprotocol: Option<&'static str>,
) -> (SocketAddr, oneshot::Receiver<Message>) {
    let (auth_tx, auth_rx) = oneshot::channel();
    let (addr, _) = scripted(move |mut tcp, head, rest| async move {
        assert!(head.headers.get_str("authorization").is_none());
        let answer = switching_protocols(&key_of(&head), subprotocol);
        tcp.write_all(&answer).await.unwrap();
        let mut ws =
            WebSocket::after_handshake(Prefixed::new(rest, tcp), fastwebsockets::Role::Server);
        let frame = timeout(WAIT, ws.read_frame()).await.unwrap().unwrap();
        assert_eq!(frame.opcode, OpCode::Text);
        let _ = auth_tx.send(Message::decode(&frame.payload).unwrap());
        let reply = Message::AuthResponse {
            success,
            message: if success { "welcome" } else { "bad password" }.into(),
        };
        ws.write_frame(Frame::text(Payload::Owned(reply.to_json().into_bytes())))
            .await
            .unwrap();
        tokio::time::sleep(WAIT).await;
    })
    .await;
    (addr, auth_rx)
}

#[tokio::test]
async fn anyproxy_json_logs_in_with_an_auth_message() {
    for subprotocol in [Some(SUBPROTOCOL_ANYPROXY_JSON), None] {
        let (addr, auth) = json_gateway(true, subprotocol).await;
        let config = config(addr, &format!("{BASIC}\nprotocol = \"anyproxy-json\""));
        dial::connect(&config).await.unwrap();
        assert_eq!(
            auth.await.unwrap(),
            Message::Auth {
                username: "group-a".into(),
                password: "s3cret".into(),
                client_id: "edge-7".into(),
            }
        );
    }
}

#[tokio::test]
async fn anyproxy_json_refusal_is_an_auth_failure() {
    let (addr, _) = json_gateway(false, Some(SUBPROTOCOL_ANYPROXY_JSON)).await;
    let config = config(addr, &format!("{BASIC}\nprotocol = \"anyproxy-json\""));
    let err = failure(&config).await;
    assert!(err.is_auth_failure(), "{err}");
    assert!(err.to_string().contains("bad password"), "{err}");
}

/// `mtgate agent` as a process: a config mistake exits 1 naming the key; against a gateway
/// that answers 401 it logs the refusal (never the password), keeps retrying, and exits 0 on
/// SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_config_errors_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    const BIN: &str = env!("CARGO_BIN_EXE_mtgate");
    let dir = std::env::temp_dir().join(format!("mtgate-agent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "gateway = \"ws://127.0.0.1:1/\"\ntoken = \"t\"\nreplicas = 0\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replicas: must be 1 to 64"), "{stderr}");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_request(&mut tcp, &Limits::default()).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let good = dir.join("agent.toml");
    std::fs::write(
        &good,
        format!("gateway = \"ws://{addr}/ws\"\n{BASIC}\nlog_level = \"info\"\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&good)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    // Up to 10 s for the refusal to be logged.
    let refused = (0..100).any(|_| match rx.recv_timeout(Duration::from_millis(100)) {
        Ok(line) => {
            seen.push(line);
            seen.last()
                .unwrap()
                .contains("refused the agent's credentials: 401")
        }
        Err(_) => false,
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // Up to 10 s to exit.
    let mut status = None;
    for _ in 0..100 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the agent did not stop on SIGTERM");
    };
    seen.extend(rx.try_iter());
    assert!(refused, "{seen:?}");
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(seen.iter().all(|l| !l.contains("s3cret")), "{seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client certificate, as PEM
/// files in `dir`.
struct Pki {
    ca: rcgen::Certificate,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki(dir: &std::path::Path, name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["edge-7".into()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-client.pem")), client.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}-client.key")),
        client_key.serialize_pem(),
    )
    .unwrap();
    Pki {
        server_chain: vec![server.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        ca,
    }
}

/// A wss gateway serving one connection; with `client_ca`, a client certificate is required.
/// Reports whether the upgrade request arrived.
async fn tls_gateway(pki: &Pki, require_client_cert: bool) -> (SocketAddr, oneshot::Receiver<()>) {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let server = builder
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(Ok(mut tls)) = timeout(WAIT, acceptor.accept(tcp)).await else {
            return;
        };
        let Ok(Ok((head, _))) = timeout(WAIT, read_request(&mut tls, &Limits::default())).await
        else {
            return;
        };
        let _ = tx.send(());
        let answer = switching_protocols(&key_of(&head), Some(SUBPROTOCOL_V1));
        tls.write_all(&answer).await.unwrap();
        tokio::time::sleep(WAIT).await;
    });
    (addr, rx)
}

#[tokio::test]
async fn wss_verifies_the_gateway_against_the_pinned_ca_and_presents_a_client_cert() {
    let dir = std::env::temp_dir().join(format!("mtgate-agent-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = pki(&dir, "good");
    let _other = pki(&dir, "other");
    let wss = |addr: SocketAddr, ca: &str, extra: &str| {
        AgentConfig::parse(&format!(
            "gateway = \"wss://localhost:{}/ws\"\n{BASIC}\nconnect_timeout = \"3s\"\n\
             ca_file = \"{}\"\n{extra}",
            addr.port(),
            dir.join(format!("{ca}-ca.pem")).display()
        ))
        .unwrap()
    };

    // The pinned CA signed the gateway's certificate: the upgrade goes through.
    let (addr, upgraded) = tls_gateway(&good, false).await;
    dial::connect(&wss(addr, "good", "")).await.unwrap();
    upgraded.await.unwrap();

    // Another CA: the TLS handshake fails and no request is sent.
    let (addr, upgraded) = tls_gateway(&good, false).await;
    let err = failure(&wss(addr, "other", "")).await;
    assert!(matches!(err, DialError::Tls(_)), "{err}");
    assert!(upgraded.await.is_err());

    // A gateway that requires a client certificate: refused without one, accepted with it.
    let (addr, upgraded) = tls_gateway(&good, true).await;
    let err = failure(&wss(addr, "good", "")).await;
    assert!(
        matches!(err, DialError::Tls(_) | DialError::Head(_)),
        "{err}"
    );
    assert!(
        upgraded.await.is_err(),
        "no upgrade without a client certificate"
    );
    let (addr, upgraded) = tls_gateway(&good, true).await;
    let cert = format!(
        "client_cert = \"{}\"\nclient_key = \"{}\"",
        dir.join("good-client.pem").display(),
        dir.join("good-client.key").display()
    );
    dial::connect(&wss(addr, "good", &cert)).await.unwrap();
    upgraded.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `mtgate cert` makes: a self-signed certificate for the gateway's name, used as the
/// agent's `ca_file` as it is.
#[tokio::test]
async fn a_self_signed_gateway_certificate_works_as_ca_file() {
    let dir = std::env::temp_dir().join(format!("mtgate-agent-selfsigned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    let pki = Pki {
        ca: cert.clone(),
        server_chain: vec![cert.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der())
            .unwrap(),
    };
    for host in ["localhost", "127.0.0.1"] {
        let (addr, upgraded) = tls_gateway(&pki, false).await;
        let config = AgentConfig::parse(&format!(
            "gateway = \"wss://{host}:{}/ws\"\n{BASIC}\nca_file = \"{}\"\nconnect_timeout = \"3s\"",
            addr.port(),
            dir.join("cert.pem").display()
        ))
        .unwrap();
        dial::connect(&config).await.unwrap();
        upgraded.await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
