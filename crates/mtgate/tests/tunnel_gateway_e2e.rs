//! The tunnel gateway end to end: a minimal agent written here (a WebSocket client running
//! `Mux::start(.., Role::Agent, ..)` that serves OPENs by dialling 127.0.0.1), curl through the
//! gateway's SOCKS5 and HTTP listeners to a local origin, refusals when no agent can help,
//! half-close, an agent leaving mid-stream, spreading over agents, remote port forwarding,
//! AnyProxy JSON, client certificates, and the admin API and metrics.

mod proxy_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use mtgate::inbound::websocket::head_io::read_response;
use mtgate::inbound::websocket::prefixed::Prefixed;
use mtgate::server::Server;
use mtgate::tunnel::mux::{Codec, Inbound, IncomingOpen, ListenError, Mux, MuxConfig};
use mtgate_proto::address::Address;
use mtgate_proto::http1::Limits;
use mtgate_proto::tunnel::anyproxy::Message;
use mtgate_proto::tunnel::{ErrorCode, Network};
use proxy_common::{Echo, HttpOrigin, WAIT, addr, curl, run};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TOKEN: &str = "admin-token-0123456789abcdef";
const V1: &str = "Sec-WebSocket-Protocol: mtgate-tunnel-v1\r\n";

/// A host the test agent's policy forbids.
const FORBIDDEN: &str = "forbidden.test";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

/// A gateway with SOCKS5 and HTTP listeners routed through it; `extra` goes into the gateway
/// section.
async fn start(gateway_extra: &str, connect_port: u16) -> Server {
    let text = format!(
        r#"
[server]
log_level = "warn"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[gateway]]
listen = ["127.0.0.1:0"]
plain = true
ping_interval = "1s"
pong_timeout = "1s"
open_timeout = "3s"
{gateway_extra}

[[gateway.credential]]
username = "agent"
password = "agent-password"
group = "team"

[[gateway.credential]]
username = "json-agent"
password = "json-password"
group = "json"

[[socks5]]
name = "socks"
listen = ["127.0.0.1:0"]
gateway = "gateway"
users = {{ team = "team-password", lonely = "lonely-password", json = "json-password", ops = {{ password = "ops-password", agent_group = "team" }} }}
rules = [{{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }}]

[[http]]
name = "http"
listen = ["127.0.0.1:0"]
gateway = "gateway"
agent_group = "team"
connect_ports = [{connect_port}]
rules = [{{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }}]

[[http]]
name = "http-nobody"
listen = ["127.0.0.1:0"]
gateway = "gateway"
agent_group = "nobody"
rules = [{{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }}]
"#
    );
    proxy_common::server(&text).await
}

/// Sends an upgrade request; returns the status and, on a 101, the WebSocket.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    extra: &str,
) -> (u16, Option<WebSocket<Prefixed<S>>>) {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (response, rest) =
        tokio::time::timeout(WAIT, read_response(&mut stream, &Limits::default()))
            .await
            .unwrap()
            .unwrap();
    if response.status != 101 {
        return (response.status, None);
    }
    let ws = WebSocket::after_handshake(Prefixed::new(rest, stream), Role::Client);
    (101, Some(ws))
}

/// The minimal agent: serves OPENs by dialling the target (refusing [`FORBIDDEN`]) and counts
/// them.
struct TestAgent {
    mux: Mux,
    opens: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestAgent {
    async fn over<S>(ws: WebSocket<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mux, mut incoming) = Mux::start(
            ws,
            mtgate::tunnel::mux::Role::Agent,
            Codec::Binary,
            MuxConfig::default(),
        );
        let opens = Arc::new(AtomicUsize::new(0));
        let counter = opens.clone();
        let task = tokio::spawn(async move {
            while let Some(request) = incoming.next().await {
                match request {
                    Inbound::Open(open) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(serve_open(open));
                    }
                    Inbound::Listen(listen) => {
                        listen.answer(Err((ErrorCode::InvalidMessage, "not a gateway".into())));
                    }
                }
            }
        });
        Self { mux, opens, task }
    }

    async fn connect(gateway: SocketAddr, client_id: &str) -> Self {
        let stream = TcpStream::connect(gateway).await.unwrap();
        let extra = format!(
            "{V1}{}X-Client-ID: {client_id}\r\n",
            basic("agent", "agent-password")
        );
        let (code, ws) = upgrade(stream, &extra).await;
        assert_eq!(code, 101);
        Self::over(ws.unwrap()).await
    }

    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
}

async fn serve_open(open: IncomingOpen) {
    let target = open.target().address.clone();
    if target.host() == FORBIDDEN {
        open.reject(ErrorCode::ForbiddenHost, "forbidden by the test agent");
        return;
    }
    let dialed = match &target {
        Address::Socket(a) => TcpStream::connect(*a).await,
        Address::Domain(name, port) => TcpStream::connect((name.as_str(), *port)).await,
    };
    match dialed {
        Ok(mut tcp) => {
            let mut stream = open.accept();
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
        }
        Err(e) => open.reject(ErrorCode::ConnectionRefused, &e.to_string()),
    }
}

/// Waits until the gateway lists `n` agent connections in `group`.
async fn wait_for_connections(server: &Server, group: &str, n: usize) {
    let registry = server.shared().gateways.get("gateway").unwrap().clone();
    for _ in 0..500 {
        if registry.connections(group) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway never had {n} connection(s) in {group}");
}

/// A SOCKS5 CONNECT with a password; `Err(reply)` when refused.
async fn socks_connect(
    proxy: SocketAddr,
    user: &str,
    password: &str,
    host: &str,
    port: u16,
) -> Result<TcpStream, u8> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let go = async {
        s.write_all(&[5, 1, 2]).await.unwrap();
        let mut two = [0u8; 2];
        s.read_exact(&mut two).await.unwrap();
        assert_eq!(two, [5, 2]);
        let mut auth = vec![1, user.len() as u8];
        auth.extend_from_slice(user.as_bytes());
        auth.push(password.len() as u8);
        auth.extend_from_slice(password.as_bytes());
        s.write_all(&auth).await.unwrap();
        s.read_exact(&mut two).await.unwrap();
        assert_eq!(two, [1, 0], "SOCKS5 authentication");
        let mut request = vec![5, 1, 0, 3, host.len() as u8];
        request.extend_from_slice(host.as_bytes());
        request.extend_from_slice(&port.to_be_bytes());
        s.write_all(&request).await.unwrap();
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await.unwrap();
        let rest = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            _ => {
                let mut len = [0u8; 1];
                s.read_exact(&mut len).await.unwrap();
                usize::from(len[0]) + 2
            }
        };
        let mut bound = vec![0u8; rest];
        s.read_exact(&mut bound).await.unwrap();
        (head[1], bound)
    };
    let (reply, bound) = tokio::time::timeout(WAIT, go).await.expect("SOCKS5 answer");
    if reply != 0 {
        return Err(reply);
    }
    assert_eq!(
        bound,
        vec![0, 0, 0, 0, 0, 0],
        "BND 0.0.0.0:0 through an agent"
    );
    Ok(s)
}

async fn echo_round_trip(stream: &mut TcpStream, text: &[u8]) {
    stream.write_all(text).await.unwrap();
    let mut got = vec![0u8; text.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, text);
}

async fn admin_get(server: &Server, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(server.admin_addr().unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn metrics(server: &Server) -> String {
    let mut s = TcpStream::connect(server.metrics_addr().unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8(proxy_common::read_to_end(&mut s).await).unwrap()
}

#[tokio::test]
async fn curl_through_socks5_and_http_via_an_agent() {
    let origin = HttpOrigin::start().await;
    let server = start("", origin.v4.port()).await;
    let gateway = addr(&server, "gateway", false);
    let agent = TestAgent::connect(gateway, "box-1").await;
    wait_for_connections(&server, "team", 1).await;
    let Some(_) = curl() else { return };
    let socks = addr(&server, "socks", false);
    let http = addr(&server, "http", false);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--socks5-hostname".into(),
                socks.to_string(),
                "--proxy-user".into(),
                "team:team-password".into(),
                format!("http://localhost:{}/socks", origin.v4.port()),
            ],
            "GET /socks",
        ),
        (
            vec![
                "--socks5-hostname".into(),
                socks.to_string(),
                "--proxy-user".into(),
                "ops:ops-password".into(),
                format!("http://127.0.0.1:{}/ops", origin.v4.port()),
            ],
            "GET /ops",
        ),
        (
            vec![
                "-x".into(),
                format!("http://{http}"),
                format!("http://127.0.0.1:{}/forward", origin.v4.port()),
            ],
            "GET /forward",
        ),
        (
            vec![
                "-x".into(),
                format!("http://{http}"),
                "--proxytunnel".into(),
                format!("http://127.0.0.1:{}/connect", origin.v4.port()),
            ],
            "GET /connect",
        ),
    ];
    for (args, want) in cases {
        let mut c = curl().unwrap();
        c.args(&args);
        let (code, out, err) = run(c).await;
        assert_eq!(code, 0, "curl {args:?}: {err}");
        assert!(out.contains(want), "curl {args:?}: {out}");
    }
    assert_eq!(agent.opens(), 4);

    let json = admin_get(&server, "/gateways/gateway").await;
    let agents = json["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{json}");
    assert_eq!(agents[0]["client_id"], "box-1");
    assert_eq!(agents[0]["group"], "team");
    assert_eq!(agents[0]["replicas"], 1);
    assert!(agents[0]["streams_total"].as_u64().unwrap() >= 4, "{json}");
    assert!(agents[0]["bytes_in"].as_u64().unwrap() > 0, "{json}");
    let all = admin_get(&server, "/gateways").await;
    assert_eq!(all["gateways"].as_array().unwrap().len(), 1);
    let page = metrics(&server).await;
    assert!(
        page.contains("mtgate_tunnel_agents{gateway=\"gateway\",group=\"team\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("mtgate_tunnel_stream_opens_total{gateway=\"gateway\"} 4"),
        "{page}"
    );
    assert!(page.contains("mtgate_tunnel_bytes_total{gateway=\"gateway\",direction=\"in\"}"));
    agent.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn no_agent_forbidden_and_refused_have_clean_answers() {
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    let agent = TestAgent::connect(gateway, "box-1").await;
    wait_for_connections(&server, "team", 1).await;
    let socks = addr(&server, "socks", false);
    // The group "lonely" has no agent: host unreachable.
    let refused = socks_connect(
        socks,
        "lonely",
        "lonely-password",
        "127.0.0.1",
        echo.v4.port(),
    )
    .await;
    assert_eq!(refused.err(), Some(4));
    // The agent's policy forbids the host: not allowed.
    let refused = socks_connect(socks, "team", "team-password", FORBIDDEN, 80).await;
    assert_eq!(refused.err(), Some(2));
    // The target refuses: connection refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = socks_connect(socks, "team", "team-password", "127.0.0.1", closed_port).await;
    assert_eq!(refused.err(), Some(5));
    // The listener's own rules apply before any agent is asked.
    let refused = socks_connect(socks, "team", "team-password", "10.1.2.3", 80).await;
    assert_eq!(refused.err(), Some(2));
    // And a good one works.
    let mut ok = socks_connect(socks, "team", "team-password", "127.0.0.1", echo.v4.port())
        .await
        .unwrap();
    echo_round_trip(&mut ok, b"through the agent").await;
    // HTTP: no agent for the listener's group is a 502.
    let nobody = addr(&server, "http-nobody", false);
    let mut s = TcpStream::connect(nobody).await.unwrap();
    s.write_all(
        format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            echo.v4.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let page = metrics(&server).await;
    assert!(
        page.contains(
            "mtgate_tunnel_stream_open_failures_total{gateway=\"gateway\",code=\"no_agent\"}"
        ),
        "{page}"
    );
    assert!(page.contains("code=\"forbidden_host\""), "{page}");
    agent.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
}

/// A server that reads until EOF, then answers with the byte count and closes.
async fn reply_after_eof() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await;
                let answer = format!("got {} bytes", got.len()).repeat(1000);
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn half_close_request_shut_wr_then_the_whole_reply() {
    let target = reply_after_eof().await;
    let server = start("", 443).await;
    let agent = TestAgent::connect(addr(&server, "gateway", false), "box-1").await;
    wait_for_connections(&server, "team", 1).await;
    let socks = addr(&server, "socks", false);
    let mut s = socks_connect(socks, "team", "team-password", "127.0.0.1", target.port())
        .await
        .unwrap();
    s.write_all(&[7u8; 100_000]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, "got 100000 bytes".repeat(1000).into_bytes());
    // The listener's traffic counters see the bytes that went through the agent.
    let mut page = String::new();
    for _ in 0..100 {
        page = metrics(&server).await;
        if page.contains("direction=\"upload\"} 100000") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        page.contains(
            "mtgate_proxy_bytes_total{listener=\"socks\",user=\"team\",direction=\"upload\"} 100000"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "mtgate_proxy_bytes_total{listener=\"socks\",user=\"team\",direction=\"download\"} 16000"
        ),
        "{page}"
    );
    agent.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn streams_spread_and_an_agent_leaving_resets_its_streams() {
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    let a = TestAgent::connect(gateway, "box-a").await;
    let b = TestAgent::connect(gateway, "box-b").await;
    wait_for_connections(&server, "team", 2).await;
    let socks = addr(&server, "socks", false);
    // Four long-lived streams: least open streams first puts two on each agent.
    let mut streams = Vec::new();
    for i in 0..4u8 {
        let mut s = socks_connect(socks, "team", "team-password", "127.0.0.1", echo.v4.port())
            .await
            .unwrap();
        echo_round_trip(&mut s, &[i; 10]).await;
        streams.push(s);
    }
    assert_eq!((a.opens(), b.opens()), (2, 2));
    // Agent a goes away: the streams it carried end (the clients see EOF or a reset) ...
    a.mux.close();
    let mut ended = 0;
    for s in &mut streams {
        let mut buf = [0u8; 16];
        s.write_all(b"ping").await.ok();
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => ended += 1,
            Ok(Ok(_)) => {}
            Err(_) => panic!("a stream neither echoed nor ended"),
        }
    }
    assert_eq!(ended, 2, "the two streams of the agent that left");
    // ... and new connections go to the agent that stayed.
    wait_for_connections(&server, "team", 1).await;
    for i in 0..3u8 {
        let mut s = socks_connect(socks, "team", "team-password", "127.0.0.1", echo.v4.port())
            .await
            .unwrap();
        echo_round_trip(&mut s, &[i; 5]).await;
    }
    assert_eq!((a.opens(), b.opens()), (2, 5));
    let json = admin_get(&server, "/gateways/gateway").await;
    assert_eq!(json["agents"].as_array().unwrap().len(), 1, "{json}");
    a.task.abort();
    b.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn remote_port_forward_round_trip() {
    let echo = Echo::start().await;
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let server = start(&format!("forward_ports = [{port}]"), 443).await;
    let gateway = addr(&server, "gateway", false);
    // Two replicas of one agent, and another agent.
    let r1 = TestAgent::connect(gateway, "box-1").await;
    let r2 = TestAgent::connect(gateway, "box-1").await;
    let other = TestAgent::connect(gateway, "box-2").await;
    wait_for_connections(&server, "team", 3).await;
    let target = Address::Socket(echo.v4);
    // A port outside forward_ports is refused.
    let not_allowed = if port == 65535 { port - 1 } else { port + 1 };
    let refused = r1
        .mux
        .listen(Network::Tcp, not_allowed, target.clone())
        .await;
    assert!(
        matches!(
            refused,
            Err(ListenError::Refused {
                code: ErrorCode::ForbiddenHost,
                ..
            })
        ),
        "{refused:?}"
    );
    // Every replica asks for the port: the first binds it, the second is told yes.
    r1.mux
        .listen(Network::Tcp, port, target.clone())
        .await
        .unwrap();
    r2.mux
        .listen(Network::Tcp, port, target.clone())
        .await
        .unwrap();
    // Another agent cannot take it.
    let taken = other.mux.listen(Network::Tcp, port, target.clone()).await;
    assert!(
        matches!(taken, Err(ListenError::Refused { .. })),
        "{taken:?}"
    );
    let round_trip = |i: u8| async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        echo_round_trip(&mut s, &[i; 1000]).await;
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
    };
    for i in 0..4u8 {
        round_trip(i).await;
    }
    assert_eq!(r1.opens() + r2.opens(), 4);
    assert_eq!(other.opens(), 0);
    // One replica leaves: the port stays, served by the other.
    r1.mux.close();
    wait_for_connections(&server, "team", 2).await;
    let before = r2.opens();
    round_trip(9).await;
    assert_eq!(r2.opens(), before + 1);
    // The last one leaves: the port closes.
    r2.mux.close();
    let mut closed = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the forwarded port is released");
    for agent in [r1, r2, other] {
        agent.task.abort();
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn anyproxy_json_agent_from_the_document() {
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    // As the document says: no subprotocol, and `auth` as the first message.
    let stream = TcpStream::connect(gateway).await.unwrap();
    let (code, ws) = upgrade(stream, "").await;
    assert_eq!(code, 101);
    let mut ws = ws.unwrap();
    ws.set_auto_close(true);
    let send = |m: Message| Frame::text(Payload::Owned(m.to_json().into_bytes()));
    ws.write_frame(send(Message::Auth {
        username: "json-agent".into(),
        password: "json-password".into(),
        client_id: "py-agent".into(),
    }))
    .await
    .unwrap();
    async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Message {
        loop {
            let frame = tokio::time::timeout(WAIT, ws.read_frame())
                .await
                .unwrap()
                .unwrap();
            match frame.opcode {
                OpCode::Text | OpCode::Binary => {
                    let m = Message::decode(&frame.payload).unwrap();
                    if !matches!(m, Message::Ping { .. } | Message::Pong { .. }) {
                        return m;
                    }
                }
                OpCode::Close => panic!("closed"),
                _ => {}
            }
        }
    }
    match recv(&mut ws).await {
        Message::AuthResponse { success, .. } => assert!(success),
        other => panic!("{other:?}"),
    }
    wait_for_connections(&server, "json", 1).await;
    // A SOCKS client of the group "json" makes the gateway send `connect`.
    let socks = addr(&server, "socks", false);
    let client = tokio::spawn(async move {
        let mut s = socks_connect(socks, "json", "json-password", "127.0.0.1", echo.v4.port())
            .await
            .unwrap();
        s.write_all(b"hello json").await.unwrap();
        let mut got = [0u8; 10];
        tokio::time::timeout(WAIT, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    });
    let id = match recv(&mut ws).await {
        Message::Connect {
            connection_id,
            target_host,
            target_port,
            protocol,
        } => {
            assert_eq!(target_host, "127.0.0.1");
            assert_eq!(target_port, echo.v4.port());
            assert_eq!(protocol, "tcp");
            connection_id
        }
        other => panic!("{other:?}"),
    };
    ws.write_frame(send(Message::ConnectResponse {
        connection_id: id.clone(),
        success: true,
        message: String::new(),
    }))
    .await
    .unwrap();
    let payload = match recv(&mut ws).await {
        Message::Data {
            connection_id,
            payload,
        } => {
            assert_eq!(connection_id, id);
            payload
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(payload, b"hello json");
    // The agent plays the echo itself.
    ws.write_frame(send(Message::Data {
        connection_id: id.clone(),
        payload,
    }))
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, client).await.unwrap().unwrap();
    assert_eq!(&got, b"hello json");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn client_certificate_identity_joins_its_group() {
    let echo = Echo::start().await;
    let dir = std::env::temp_dir().join(format!("mtgate-gw-mtls-{}", std::process::id()));
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
    let mut client_params = rcgen::CertificateParams::new(vec!["cert-agent.test".into()]).unwrap();
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cert-agent.test");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).unwrap();
    let text = format!(
        r#"
[server]
log_level = "warn"

[[gateway]]
listen = ["127.0.0.1:0"]
cert = "{0}/cert.pem"
key = "{0}/key.pem"
client_ca = "{0}/ca.pem"

[[gateway.credential]]
username = "cert-agent.test"
group = "certified"

[[socks5]]
name = "socks"
listen = ["127.0.0.1:0"]
gateway = "gateway"
users = {{ certified = "pw" }}
rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
"#,
        dir.display()
    );
    let server = proxy_common::server(&text).await;
    let gateway = addr(&server, "gateway", false);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // Without a certificate or credentials: 401.
    let plain = tokio_rustls::TlsConnector::from(Arc::new(builder().with_no_client_auth()));
    let tls = plain
        .connect(name.clone(), TcpStream::connect(gateway).await.unwrap())
        .await
        .unwrap();
    assert_eq!(upgrade(tls, V1).await.0, 401);
    // With the certificate: in, as the group the credential names.
    let with_cert = builder()
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(with_cert))
        .connect(name, TcpStream::connect(gateway).await.unwrap())
        .await
        .unwrap();
    let (code, ws) = upgrade(tls, V1).await;
    assert_eq!(code, 101);
    let agent = TestAgent::over(ws.unwrap()).await;
    wait_for_connections(&server, "certified", 1).await;
    let socks = addr(&server, "socks", false);
    let mut s = socks_connect(socks, "certified", "pw", "127.0.0.1", echo.v4.port())
        .await
        .unwrap();
    echo_round_trip(&mut s, b"over wss with a client certificate").await;
    agent.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Kills the child process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn python_agent_written_from_the_anyproxy_document() {
    use std::io::BufRead;
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("python3 is not installed: skipping the JSON compatibility test");
        return;
    }
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/anyproxy/json_agent.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(gateway.to_string())
        .args(["json-agent", "json-password", "py-agent-1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = tokio::time::timeout(WAIT, ready).await.unwrap().unwrap();
    assert_eq!(line.trim(), "READY", "auth → auth_response, ping → pong");
    wait_for_connections(&server, "json", 1).await;
    let socks = addr(&server, "socks", false);
    // connect → connect_response → data both ways → close, with a payload of many messages.
    let mut s = socks_connect(socks, "json", "json-password", "127.0.0.1", echo.v4.port())
        .await
        .unwrap();
    echo_round_trip(&mut s, b"hello from curl's side").await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    echo_round_trip(&mut s, &big).await;
    drop(s);
    // A target that answers and closes: its close reaches the client as EOF. (JSON has no
    // half-close: `close` ends both directions, so only full closes are carried.)
    let banner = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner_port = banner.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut t, _)) = banner.accept().await {
            let _ = t.write_all(b"bye").await;
        }
    });
    let mut s = socks_connect(socks, "json", "json-password", "127.0.0.1", banner_port)
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, b"bye");
    // The document's error message with FORBIDDEN_HOST: SOCKS "not allowed".
    let refused = socks_connect(socks, "json", "json-password", FORBIDDEN, 80).await;
    assert_eq!(refused.err(), Some(2));
    let json = admin_get(&server, "/gateways/gateway").await;
    let agent = json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["group"] == "json")
        .cloned()
        .unwrap();
    assert_eq!(agent["client_id"], "py-agent-1");
    assert_eq!(agent["connections"][0]["protocol"], "anyproxy-json");
    drop(child);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_streams_over_two_replicas() {
    const STREAMS: usize = 500;
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    // Two connections of one agent (same client id): two replicas.
    let r1 = TestAgent::connect(gateway, "box-1").await;
    let r2 = TestAgent::connect(gateway, "box-1").await;
    wait_for_connections(&server, "team", 2).await;
    let socks = addr(&server, "socks", false);
    let barrier = Arc::new(tokio::sync::Barrier::new(STREAMS + 1));
    let looked = Arc::new(tokio::sync::Barrier::new(STREAMS + 1));
    let mut clients = Vec::new();
    for i in 0..STREAMS {
        let barrier = barrier.clone();
        let looked = looked.clone();
        clients.push(tokio::spawn(async move {
            let mut s = socks_connect(socks, "team", "team-password", "127.0.0.1", echo.v4.port())
                .await
                .unwrap();
            let text = format!("stream {i} ").repeat(100).into_bytes();
            echo_round_trip(&mut s, &text).await;
            // Every stream is open at once before any closes.
            barrier.wait().await;
            looked.wait().await;
            echo_round_trip(&mut s, b"again").await;
        }));
    }
    tokio::time::timeout(Duration::from_secs(30), barrier.wait())
        .await
        .expect("all streams open together");
    let json = admin_get(&server, "/gateways/gateway").await;
    let agents = json["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{json}");
    assert_eq!(agents[0]["replicas"], 2);
    assert_eq!(agents[0]["open_streams"], STREAMS, "{json}");
    looked.wait().await;
    for client in clients {
        tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .unwrap()
            .unwrap();
    }
    let (a, b) = (r1.opens(), r2.opens());
    assert_eq!(a + b, STREAMS);
    assert!(a.abs_diff(b) <= STREAMS / 10, "spread {a} / {b}");
    r1.task.abort();
    r2.task.abort();
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_silent_agent_misses_its_pong_deadline_and_leaves() {
    let echo = Echo::start().await;
    let server = start("", 443).await;
    let gateway = addr(&server, "gateway", false);
    // Upgrades and authenticates, then never reads again: no pong ever comes back.
    let stream = TcpStream::connect(gateway).await.unwrap();
    let extra = format!("{V1}{}", basic("agent", "agent-password"));
    let (code, silent) = upgrade(stream, &extra).await;
    assert_eq!(code, 101);
    wait_for_connections(&server, "team", 1).await;
    // ping_interval = 1s, pong_timeout = 1s in this gateway.
    let registry = server.shared().gateways.get("gateway").unwrap().clone();
    let mut gone = false;
    for _ in 0..80 {
        if registry.connections("team") == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the silent agent is still registered");
    let socks = addr(&server, "socks", false);
    let refused = socks_connect(socks, "team", "team-password", "127.0.0.1", echo.v4.port()).await;
    assert_eq!(refused.err(), Some(4), "no agent left for the group");
    drop(silent);
    server.shutdown(Duration::from_secs(1)).await;
}
