//! `mtgate agent` against a minimal in-test gateway: a TCP (or TLS) listener that reads the
//! upgrade request with mtgate's head reader, answers 101 with the subprotocol (or 401), and
//! runs the real multiplexer as the gateway. The agent runs in-process through its library
//! entry point. Everything talks to 127.0.0.1 only.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mtgate::inbound::websocket::handshake::switching_protocols;
use mtgate::inbound::websocket::head_io::read_request;
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::tunnel::agent::{self, AgentConfig};
use mtgate::tunnel::mux::{Codec, Inbound, Incoming, Mux, MuxConfig, OpenError, Role};
use mtgate_proto::address::Address;
use mtgate_proto::http1::{Limits, RequestHead};
use mtgate_proto::tunnel::anyproxy::Message;
use mtgate_proto::tunnel::{
    ErrorCode, Network, OpenTarget, SUBPROTOCOL_ANYPROXY_JSON, SUBPROTOCOL_V1,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
const AUTH: &str = "Basic Z3JvdXAtYTpzM2NyZXQ="; // group-a:s3cret

/// One agent connection as the gateway sees it.
struct GatewayConn {
    mux: Mux,
    incoming: Incoming,
    head: RequestHead,
}

/// The in-test gateway.
struct Gateway {
    addr: SocketAddr,
    conns: mpsc::Receiver<GatewayConn>,
    attempts: Arc<AtomicUsize>,
}

impl Gateway {
    /// Listens on 127.0.0.1:0; answers 401 when `accept_auth` is false. With `tls`, wraps
    /// every connection in TLS first.
    async fn start(accept_auth: bool, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        Self::start_with(accept_auth, tls, Codec::Binary).await
    }

    /// Like [`Gateway::start`]; with [`Codec::AnyProxyJson`], the agent logs in with the
    /// `auth` message after the 101 instead of a header.
    async fn start_with(
        accept_auth: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
        codec: Codec,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::channel(16);
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (tx, tls) = (tx.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => upgrade(tcp, accept_auth, codec, tx).await,
                        Some(acceptor) => {
                            if let Ok(Ok(stream)) = timeout(WAIT, acceptor.accept(tcp)).await {
                                upgrade(stream, accept_auth, codec, tx).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            conns,
            attempts,
        }
    }

    async fn next(&mut self) -> GatewayConn {
        timeout(WAIT, self.conns.recv())
            .await
            .expect("an agent connection in time")
            .unwrap()
    }
}

async fn upgrade<S>(mut stream: S, accept_auth: bool, codec: Codec, tx: mpsc::Sender<GatewayConn>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(Ok((head, rest))) = timeout(WAIT, read_request(&mut stream, &Limits::default())).await
    else {
        return;
    };
    let auth_ok =
        codec == Codec::AnyProxyJson || head.headers.get_str("authorization") == Some(AUTH);
    if !accept_auth || !auth_ok {
        let _ = stream
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let key = head
        .headers
        .get_str("sec-websocket-key")
        .unwrap()
        .to_owned();
    let protocol = match codec {
        Codec::Binary => SUBPROTOCOL_V1,
        Codec::AnyProxyJson => SUBPROTOCOL_ANYPROXY_JSON,
    };
    let answer = switching_protocols(&key, Some(protocol));
    stream.write_all(&answer).await.unwrap();
    let mut ws = fastwebsockets::WebSocket::after_handshake(
        Prefixed::new(rest, stream),
        fastwebsockets::Role::Server,
    );
    if codec == Codec::AnyProxyJson {
        let Ok(Ok(frame)) = timeout(WAIT, ws.read_frame()).await else {
            return;
        };
        let success = matches!(
            Message::decode(&frame.payload),
            Ok(Message::Auth { username, password, client_id })
                if username == "group-a" && password == "s3cret" && client_id == "edge-1"
        );
        let reply = Message::AuthResponse {
            success,
            message: String::new(),
        };
        let text = reply.to_json().into_bytes();
        let sent = ws.write_frame(fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(
            text,
        )));
        if sent.await.is_err() || !success {
            return;
        }
    }
    let (mux, incoming) = Mux::start(ws, Role::Gateway, codec, MuxConfig::default());
    let _ = tx
        .send(GatewayConn {
            mux,
            incoming,
            head,
        })
        .await;
}

/// The agent running in this process; stopped (drained) on drop.
struct RunningAgent {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAgent {
    fn start(config_text: &str) -> Self {
        // Agent logs show with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "mtgate=debug".into()))
            .try_init();
        let config = AgentConfig::parse(config_text).expect("valid agent config");
        let stop = CancellationToken::new();
        let task = tokio::spawn(agent::run(
            Arc::new(config),
            Default::default(),
            stop.clone(),
        ));
        Self { stop, task }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn config_for(gateway: SocketAddr, extra: &str) -> String {
    format!(
        "gateway = \"ws://{gateway}/tunnel\"\nusername = \"group-a\"\npassword = \"s3cret\"\n\
         client_id = \"edge-1\"\ndrain_timeout = \"2s\"\n{extra}"
    )
}

/// Echoes everything back, and half-closes after the peer does.
async fn echo_origin() -> SocketAddr {
    echo_origin_on("127.0.0.1:0").await
}

async fn echo_origin_on(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Reads the whole request up to EOF, then answers how many bytes it got and closes.
async fn counting_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                if tcp.read_to_end(&mut request).await.is_ok() {
                    let reply = format!("got {} bytes", request.len());
                    let _ = tcp.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    addr
}

fn tcp_target(address: Address) -> OpenTarget {
    OpenTarget {
        network: Network::Tcp,
        address,
    }
}

async fn open(
    conn: &GatewayConn,
    address: Address,
) -> Result<mtgate::tunnel::mux::MuxStream, OpenError> {
    timeout(WAIT, conn.mux.open(tcp_target(address)))
        .await
        .expect("an answer to OPEN in time")
}

fn refused_code(result: Result<mtgate::tunnel::mux::MuxStream, OpenError>) -> ErrorCode {
    match result {
        Err(OpenError::Refused { code, .. }) => code,
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got a stream"),
    }
}

#[tokio::test]
async fn upgrade_carries_credentials_client_id_and_subprotocol() {
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "group = \"group-a\""));
    let conn = gateway.next().await;
    let h = &conn.head.headers;
    assert_eq!(conn.head.target, "/tunnel");
    assert_eq!(h.get_str("authorization"), Some(AUTH));
    assert_eq!(h.get_str("x-client-id"), Some("edge-1"));
    assert_eq!(h.get_str("x-group-id"), Some("group-a"));
    assert_eq!(h.get_str("sec-websocket-protocol"), Some(SUBPROTOCOL_V1));
}

#[tokio::test]
async fn bytes_round_trip_to_a_local_origin() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allow_private = true"));
    let conn = gateway.next().await;
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(&mut stream);
    let send = async {
        w.write_all(&message).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let receive = r.read_to_end(&mut echoed);
    let (_, read) = timeout(WAIT, async { tokio::join!(send, receive) })
        .await
        .expect("the echo in time");
    read.unwrap();
    assert_eq!(echoed, message);
}

#[tokio::test]
async fn ipv6_targets_are_reached() {
    let origin = echo_origin_on("[::1]:0").await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allowed_hosts = [\"::1\"]"));
    let conn = gateway.next().await;
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"six").await.unwrap();
    let mut buf = [0u8; 3];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"six");
}

#[tokio::test]
async fn half_close_keeps_the_reply_coming() {
    let origin = counting_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allowed_hosts = [\"127.0.0.1\"]"));
    let conn = gateway.next().await;
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    timeout(WAIT, stream.read_to_string(&mut reply))
        .await
        .expect("the reply in time")
        .unwrap();
    assert_eq!(reply, "got 18 bytes");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_forbidden_by_default() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, ""));
    let conn = gateway.next().await;
    let by_name = open(&conn, Address::Domain("localhost".into(), origin.port())).await;
    assert_eq!(refused_code(by_name), ErrorCode::ForbiddenHost);
    let by_address = open(&conn, Address::Socket(origin)).await;
    assert_eq!(refused_code(by_address), ErrorCode::ForbiddenHost);
    let denied = "forbidden_hosts = [\"*.blocked.test\"]\nallow_private = true";
    drop(_agent);
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, denied));
    let conn = gateway.next().await;
    let blocked = open(&conn, Address::Domain("x.blocked.test".into(), 80)).await;
    assert_eq!(refused_code(blocked), ErrorCode::ForbiddenHost);
}

#[tokio::test]
async fn refused_targets_get_their_code() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allow_private = true"));
    let conn = gateway.next().await;
    let refused = open(&conn, Address::Socket(closed)).await;
    assert_eq!(refused_code(refused), ErrorCode::ConnectionRefused);
}

#[tokio::test]
async fn max_concurrent_conns_is_enforced() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let extra = "allow_private = true\nmax_concurrent_conns = 2";
    let _agent = RunningAgent::start(&config_for(gateway.addr, extra));
    let conn = gateway.next().await;
    let first = open(&conn, Address::Socket(origin)).await.unwrap();
    let _second = open(&conn, Address::Socket(origin)).await.unwrap();
    let third = open(&conn, Address::Socket(origin)).await;
    assert_eq!(refused_code(third), ErrorCode::RateLimited);
    // A finished stream gives its permit back.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(stream) = open(&conn, Address::Socket(origin)).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a permit came back");
}

#[tokio::test]
async fn wrong_credentials_are_retried_with_backoff_without_spinning() {
    let gateway = Gateway::start(false, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, ""));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = gateway.attempts.load(Ordering::SeqCst);
    // The first retry comes within 0.5 s; full-jitter pauses with ceilings 0.5, 1, 2, 4 s…
    // leave room for a handful of attempts in 3 s, never hundreds.
    assert!((2..=12).contains(&attempts), "{attempts} attempts in 3 s");
}

#[tokio::test]
async fn the_agent_reconnects_after_the_gateway_drops_it() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allow_private = true"));
    let first = gateway.next().await;
    first.mux.close();
    drop(first);
    let second = gateway.next().await;
    let mut stream = open(&second, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"again").await.unwrap();
    let mut buf = [0u8; 5];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"again");
}

#[tokio::test]
async fn a_gateway_goaway_makes_the_agent_dial_again() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "allow_private = true"));
    let first = gateway.next().await;
    first.mux.go_away();
    let second = gateway.next().await;
    timeout(WAIT, first.mux.closed())
        .await
        .expect("the agent closes the old connection");
    let mut stream = open(&second, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"new").await.unwrap();
    let mut buf = [0u8; 3];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"new");
}

#[tokio::test]
async fn replicas_open_parallel_connections() {
    let mut gateway = Gateway::start(true, None).await;
    let _agent = RunningAgent::start(&config_for(gateway.addr, "replicas = 2"));
    let a = gateway.next().await;
    let b = gateway.next().await;
    assert_eq!(a.head.headers.get_str("x-client-id"), Some("edge-1"));
    assert_eq!(b.head.headers.get_str("x-client-id"), Some("edge-1"));
    assert!(!a.mux.is_closing() && !b.mux.is_closing());
}

#[tokio::test]
async fn open_ports_send_a_listen_and_their_target_is_reachable() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let extra = format!(
        "[[open_ports]]\nremote_port = 18080\nlocal_host = \"127.0.0.1\"\nlocal_port = {}\n",
        origin.port()
    );
    let _agent = RunningAgent::start(&config_for(gateway.addr, &extra));
    let mut conn = gateway.next().await;
    let request = match timeout(WAIT, conn.incoming.next()).await.unwrap() {
        Some(Inbound::Listen(request)) => request,
        other => panic!("expected LISTEN, got {other:?}"),
    };
    assert_eq!(request.network(), Network::Tcp);
    assert_eq!(request.port(), 18080);
    assert_eq!(request.target(), &Address::Socket(origin));
    request.answer(Ok(()));
    // The default policy refuses loopback, but not the agent's own open_ports target.
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn drain_lets_open_streams_finish_then_stops() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, None).await;
    let mut agent = RunningAgent::start(&config_for(gateway.addr, "allow_private = true"));
    let conn = gateway.next().await;
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    agent.stop.cancel();
    // Draining: the open stream still works.
    stream.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"still here");
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    drop(stream);
    // With its streams done, the agent stops well before drain_timeout (2 s) ends.
    timeout(Duration::from_secs(5), &mut agent.task)
        .await
        .expect("the agent stops")
        .unwrap();
}

#[tokio::test]
async fn wss_with_a_pinned_ca() {
    let dir = std::env::temp_dir().join(format!("mtgate-agent-tls-{}", std::process::id()));
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
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let origin = echo_origin().await;
    let mut gateway = Gateway::start(true, Some(acceptor)).await;
    let text = format!(
        "gateway = \"wss://localhost:{}/tunnel\"\nusername = \"group-a\"\npassword = \"s3cret\"\n\
         ca_file = \"{}\"\nallow_private = true\n",
        gateway.addr.port(),
        dir.join("ca.pem").display()
    );
    let _agent = RunningAgent::start(&text);
    let conn = gateway.next().await;
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"over tls").await.unwrap();
    let mut buf = [0u8; 8];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"over tls");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn anyproxy_json_login_then_streams_and_refusals() {
    let origin = echo_origin().await;
    let mut gateway = Gateway::start_with(true, None, Codec::AnyProxyJson).await;
    let extra = "protocol = \"anyproxy-json\"\nallowed_hosts = [\"127.0.0.1\"]";
    let _agent = RunningAgent::start(&config_for(gateway.addr, extra));
    let conn = gateway.next().await;
    assert!(conn.head.headers.get_str("authorization").is_none());
    let mut stream = open(&conn, Address::Socket(origin)).await.unwrap();
    stream.write_all(b"json mode").await.unwrap();
    let mut buf = [0u8; 9];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"json mode");
    // Not in allowed_hosts: refused with FORBIDDEN_HOST, carried by the JSON `error`.
    let elsewhere = SocketAddr::from(([127, 0, 0, 2], origin.port()));
    let forbidden = open(&conn, Address::Socket(elsewhere)).await;
    assert_eq!(refused_code(forbidden), ErrorCode::ForbiddenHost);
}

/// A UDP echo server on `bind`.
async fn udp_echo_on(bind: &str) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok((n, from))) = timeout(WAIT, socket.recv_from(&mut buf)).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn open_udp(
    conn: &GatewayConn,
    address: Address,
) -> Result<mtgate::tunnel::mux::MuxStream, OpenError> {
    let target = OpenTarget {
        network: Network::Udp,
        address,
    };
    timeout(WAIT, conn.mux.open(target))
        .await
        .expect("an answer to OPEN in time")
}

#[tokio::test]
async fn udp_streams_carry_datagrams_in_both_protocols() {
    let echo4 = udp_echo_on("127.0.0.1:0").await;
    let echo6 = udp_echo_on("[::1]:0").await;
    let allowed = "allowed_hosts = [\"127.0.0.1\", \"::1\"]";
    for codec in [Codec::Binary, Codec::AnyProxyJson] {
        let mut gateway = Gateway::start_with(true, None, codec).await;
        let extra = match codec {
            Codec::Binary => allowed.to_owned(),
            Codec::AnyProxyJson => format!("protocol = \"anyproxy-json\"\n{allowed}"),
        };
        let _agent = RunningAgent::start(&config_for(gateway.addr, &extra));
        let conn = gateway.next().await;
        for echo in [echo4, echo6] {
            let stream = open_udp(&conn, Address::Socket(echo)).await.unwrap();
            for size in [1usize, 500, 20_000] {
                let datagram: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                stream.send_datagram(&datagram).unwrap().unwrap();
                let back = timeout(WAIT, stream.recv_datagram())
                    .await
                    .expect("the echo in time")
                    .unwrap()
                    .expect("a datagram");
                assert_eq!(back.len(), size, "{codec:?} {echo}");
                assert!(back[..] == datagram[..], "{codec:?} {echo}");
            }
        }
        // The same policy as TCP: not in allowed_hosts, refused before any datagram.
        let elsewhere = SocketAddr::from(([127, 0, 0, 2], echo4.port()));
        let forbidden = open_udp(&conn, Address::Socket(elsewhere)).await;
        assert_eq!(
            refused_code(forbidden),
            ErrorCode::ForbiddenHost,
            "{codec:?}"
        );
    }
}

#[tokio::test]
async fn udp_streams_close_on_fin_and_idle_out() {
    let echo = udp_echo_on("127.0.0.1:0").await;
    let mut gateway = Gateway::start(true, None).await;
    let extra = "allowed_hosts = [\"127.0.0.1\"]\nudp_idle_timeout = \"1s\"";
    let _agent = RunningAgent::start(&config_for(gateway.addr, extra));
    let conn = gateway.next().await;
    // FIN from the gateway: the agent finishes too (no reset).
    let mut stream = open_udp(&conn, Address::Socket(echo)).await.unwrap();
    stream.send_datagram(b"one").unwrap().unwrap();
    assert_eq!(&stream.recv_datagram().await.unwrap().unwrap()[..], b"one");
    stream.shutdown().await.unwrap();
    let end = timeout(WAIT, stream.recv_datagram())
        .await
        .expect("the agent's FIN");
    assert!(matches!(end, Ok(None)), "{end:?}");
    // Silence for the idle timeout: the agent closes the stream.
    let stream = open_udp(&conn, Address::Socket(echo)).await.unwrap();
    let started = tokio::time::Instant::now();
    let end = timeout(WAIT, stream.recv_datagram())
        .await
        .expect("idled out");
    assert!(end.is_err(), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}
