//! UDP through the reverse tunnel, end to end in one process: a SOCKS5 UDP ASSOCIATE client
//! (written here from RFC 1928) → the gateway's SOCKS5 listener → the real `mtgate agent` →
//! UDP echo servers on 127.0.0.1 and ::1. Also: the SOCKS UDP header rules on that path,
//! datagrams too big for a tunnel frame, the association's streams closing with it, and an
//! agent whose policy forbids loopback letting nothing through, and a JSON agent written in
//! Python from AnyProxy's document serving `connect` with `protocol: "udp"`; and a UDP port
//! the agent asks the gateway to forward (`open_ports` with `protocol = "udp"`).

#![allow(missing_docs)]

mod proxy_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mtgate::server::Server;
use mtgate::tunnel::agent::{self, AgentConfig};
use proxy_common::addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn gateway_server() -> Server {
    gateway_server_with("").await
}

/// The gateway with `extra` in its `[[gateway]]` section.
async fn gateway_server_with(extra: &str) -> Server {
    let text = format!(
        r#"
[server]
log_level = "warn"

[[gateway]]
listen = ["127.0.0.1:0"]
plain = true
open_timeout = "3s"
{extra}

[[gateway.credential]]
username = "agent"
password = "agent-password"
group = "team"

[[gateway.credential]]
username = "json-agent"
password = "json-password"
group = "json"

[[gateway.credential]]
username = "strict-agent"
password = "strict-password"
group = "strict"

[[socks5]]
name = "socks"
listen = ["127.0.0.1:0"]
gateway = "gateway"
udp_idle_timeout = "30s"
users = {{ team = "team-password", strict = "strict-password", json = "json-password" }}
rules = [{{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }}]
"#
    );
    proxy_common::server(&text).await
}

/// The agent running in this process; stopped on drop.
struct RunningAgent(CancellationToken);

impl RunningAgent {
    fn start(gateway: SocketAddr, username: &str, password: &str, extra: &str) -> Self {
        let text = format!(
            "gateway = \"ws://{gateway}/ws\"\nusername = \"{username}\"\npassword = \"{password}\"\n\
             client_id = \"{username}-1\"\ndrain_timeout = \"1s\"\n{extra}"
        );
        let config = AgentConfig::parse(&text).expect("valid agent config");
        let stop = CancellationToken::new();
        tokio::spawn(agent::run(
            Arc::new(config),
            Default::default(),
            stop.clone(),
        ));
        Self(stop)
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A UDP echo server on `bind`; counts the datagrams it received.
async fn udp_echo(bind: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok((n, from))) =
            timeout(Duration::from_secs(60), socket.recv_from(&mut buf)).await
        {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, seen)
}

async fn wait_for_connections(server: &Server, group: &str) {
    let registry = server.shared().gateways.get("gateway").unwrap().clone();
    for _ in 0..1000 {
        if registry.connections(group) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no agent connection in {group}");
}

/// Streams open through the gateway's agents.
fn tunnel_streams(server: &Server) -> usize {
    let registry = server.shared().gateways.get("gateway").unwrap();
    registry.stats().groups.iter().map(|g| g.streams).sum()
}

/// `mtgate_proxy_udp_datagrams_total` of the SOCKS5 listener for `reason`.
fn datagrams(server: &Server, reason: &'static str) -> u64 {
    let labels = mtgate::telemetry::proxy_metrics::ProxyReasonLabels {
        listener: "socks".into(),
        reason,
    };
    server
        .shared()
        .metrics
        .proxy
        .udp_datagrams
        .get_or_create(&labels)
        .get()
}

/// Greets with a password and asks for UDP ASSOCIATE from `me`; returns the control
/// connection and the relay address.
async fn associate(
    proxy: SocketAddr,
    user: &str,
    password: &str,
    me: SocketAddr,
) -> (TcpStream, SocketAddr) {
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
        assert_eq!(two, [1, 0], "authenticated");
        let mut request = vec![5, 3, 0];
        put_address(&mut request, me);
        s.write_all(&request).await.unwrap();
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(head[..2], [5, 0], "UDP ASSOCIATE accepted");
        match head[3] {
            1 => {
                let mut b = [0u8; 6];
                s.read_exact(&mut b).await.unwrap();
                SocketAddr::from(([b[0], b[1], b[2], b[3]], u16::from_be_bytes([b[4], b[5]])))
            }
            4 => {
                let mut b = [0u8; 18];
                s.read_exact(&mut b).await.unwrap();
                let ip: [u8; 16] = b[..16].try_into().unwrap();
                SocketAddr::from((ip, u16::from_be_bytes([b[16], b[17]])))
            }
            other => panic!("address type {other}"),
        }
    };
    let relay = timeout(WAIT, go).await.expect("SOCKS5 negotiation in time");
    (s, relay)
}

fn put_address(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// A SOCKS5 UDP datagram (RFC 1928 §7).
fn datagram(frag: u8, target: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, frag];
    put_address(&mut out, target);
    out.extend_from_slice(data);
    out
}

/// The next datagram on `socket` within `wait`.
async fn receive(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    match timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn socks5_udp_through_an_agent_to_ipv4_and_ipv6_echoes() {
    let (echo4, seen4) = udp_echo("127.0.0.1:0").await;
    let (echo6, _) = udp_echo("[::1]:0").await;
    let server = gateway_server().await;
    let _agent = RunningAgent::start(
        addr(&server, "gateway", false),
        "agent",
        "agent-password",
        "allow_private = true",
    );
    wait_for_connections(&server, "team").await;

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (control, relay) = associate(
        addr(&server, "socks", false),
        "team",
        "team-password",
        client.local_addr().unwrap(),
    )
    .await;

    // Each datagram comes back whole, with the destination named in the header.
    for (target, text) in [
        (echo4, &b"over v4"[..]),
        (echo6, b"over v6"),
        (echo4, b"again"),
    ] {
        client
            .send_to(&datagram(0, target, text), relay)
            .await
            .unwrap();
        let answer = receive(&client, WAIT)
            .await
            .expect("an answer through the agent");
        assert_eq!(answer, datagram(0, target, text));
    }
    // Datagrams stay datagrams: a large one is neither split nor merged.
    let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    client
        .send_to(&datagram(0, echo4, &big), relay)
        .await
        .unwrap();
    assert_eq!(
        receive(&client, WAIT).await.unwrap(),
        datagram(0, echo4, &big)
    );
    let before = seen4.load(Ordering::SeqCst);
    // Over the tunnel's frame size: dropped, never split.
    let huge = vec![7u8; 40_000];
    client
        .send_to(&datagram(0, echo4, &huge), relay)
        .await
        .unwrap();
    // A fragment (FRAG ≠ 0) is dropped; so is a datagram from another address.
    client
        .send_to(&datagram(1, echo4, b"frag"), relay)
        .await
        .unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger
        .send_to(&datagram(0, echo4, b"who"), relay)
        .await
        .unwrap();
    assert_eq!(receive(&client, Duration::from_millis(500)).await, None);
    assert_eq!(receive(&stranger, Duration::from_millis(100)).await, None);
    assert_eq!(
        seen4.load(Ordering::SeqCst),
        before,
        "a dropped datagram reached the echo"
    );
    // The association still works afterwards.
    client
        .send_to(&datagram(0, echo4, b"still"), relay)
        .await
        .unwrap();
    assert_eq!(
        receive(&client, WAIT).await.unwrap(),
        datagram(0, echo4, b"still")
    );
    assert_eq!(tunnel_streams(&server), 2, "one stream per destination");
    let stats = server.shared().gateways.get("gateway").unwrap().stats();
    assert!(
        stats.traffic.datagrams_out >= 5 && stats.traffic.datagrams_in >= 5,
        "{stats:?}"
    );
    assert_eq!(
        datagrams(&server, "too_big"),
        1,
        "the oversize datagram is counted"
    );
    assert_eq!(datagrams(&server, "fragment_dropped"), 1);
    assert_eq!(datagrams(&server, "foreign_source"), 1);

    // Closing the control connection ends the association and its tunnel streams.
    drop(control);
    for _ in 0..300 {
        if tunnel_streams(&server) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        tunnel_streams(&server),
        0,
        "streams outlived the association"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_agent_that_forbids_loopback_lets_no_datagram_through() {
    let (echo, seen) = udp_echo("127.0.0.1:0").await;
    let server = gateway_server().await;
    // Default policy: loopback and private addresses are refused.
    let _agent = RunningAgent::start(
        addr(&server, "gateway", false),
        "strict-agent",
        "strict-password",
        "",
    );
    wait_for_connections(&server, "strict").await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_control, relay) = associate(
        addr(&server, "socks", false),
        "strict",
        "strict-password",
        client.local_addr().unwrap(),
    )
    .await;
    for text in [&b"one"[..], b"two", b"three"] {
        client
            .send_to(&datagram(0, echo, text), relay)
            .await
            .unwrap();
    }
    assert_eq!(receive(&client, Duration::from_millis(800)).await, None);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a forbidden datagram reached the echo"
    );
    let stats = server.shared().gateways.get("gateway").unwrap().stats();
    assert!(
        stats
            .failures
            .iter()
            .any(|(code, n)| code.contains("forbidden") && *n >= 1),
        "the agent's refusal is counted: {stats:?}"
    );
    assert_eq!(tunnel_streams(&server), 0);
    server.shutdown(Duration::from_secs(1)).await;
}

/// Kills the child process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn udp_through_a_python_agent_speaking_anyproxy_json() {
    use std::io::BufRead;
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("python3 is not installed: skipping the JSON UDP test");
        return;
    }
    let (echo, _) = udp_echo("127.0.0.1:0").await;
    let server = gateway_server().await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/anyproxy/json_agent.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(addr(&server, "gateway", false).to_string())
        .args(["json-agent", "json-password", "py-agent-1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = timeout(WAIT, ready).await.unwrap().unwrap();
    assert_eq!(line.trim(), "READY");
    wait_for_connections(&server, "json").await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (control, relay) = associate(
        addr(&server, "socks", false),
        "json",
        "json-password",
        client.local_addr().unwrap(),
    )
    .await;
    // connect {protocol: "udp"} → connect_response → one data message per datagram.
    for text in [&b"first"[..], b"second", &[9u8; 3000]] {
        client
            .send_to(&datagram(0, echo, text), relay)
            .await
            .unwrap();
        let answer = receive(&client, WAIT)
            .await
            .expect("an answer through the JSON agent");
        assert_eq!(answer, datagram(0, echo, text));
    }
    assert_eq!(tunnel_streams(&server), 1);
    drop(control);
    for _ in 0..300 {
        if tunnel_streams(&server) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        tunnel_streams(&server),
        0,
        "the stream outlived the association"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_association_keeps_at_most_64_destinations() {
    let server = gateway_server().await;
    let _agent = RunningAgent::start(
        addr(&server, "gateway", false),
        "agent",
        "agent-password",
        "allow_private = true",
    );
    wait_for_connections(&server, "team").await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_control, relay) = associate(
        addr(&server, "socks", false),
        "team",
        "team-password",
        client.local_addr().unwrap(),
    )
    .await;
    // 70 destinations (closed ports: the agent's sockets connect all the same).
    let base = 40_000u16;
    for port in base..base + 70 {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        client
            .send_to(&datagram(0, target, b"x"), relay)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut streams = 0;
    for _ in 0..500 {
        streams = tunnel_streams(&server);
        if streams == 64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        streams, 64,
        "the least recently used destinations make room"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_forwarded_udp_port_reaches_the_agents_side() {
    let (echo, _) = udp_echo("127.0.0.1:0").await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = gateway_server_with(&format!("forward_ports = [{port}]")).await;
    // The default policy forbids loopback, but the agent's own open_ports targets pass.
    let open_ports = format!(
        "[[open_ports]]\nremote_port = {port}\nlocal_host = \"127.0.0.1\"\nlocal_port = {}\nprotocol = \"udp\"",
        echo.port()
    );
    let _agent = RunningAgent::start(
        addr(&server, "gateway", false),
        "agent",
        "agent-password",
        &open_ports,
    );
    wait_for_connections(&server, "team").await;
    let forwarded = SocketAddr::from(([127, 0, 0, 1], port));
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The LISTEN is answered shortly after the connection: retry until the port answers.
    let mut answered = false;
    for _ in 0..50 {
        a.send_to(b"hello", forwarded).await.unwrap();
        if let Some(answer) = receive(&a, Duration::from_millis(200)).await {
            assert_eq!(answer, b"hello");
            answered = true;
            break;
        }
    }
    assert!(answered, "the forwarded UDP port never answered");
    // Each client address is its own flow; answers come from the forwarded port.
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (socket, text) in [(&a, &b"from a"[..]), (&b, b"from b"), (&a, b"a again")] {
        socket.send_to(text, forwarded).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(&buf[..n], text);
        assert_eq!(from, forwarded);
    }
    assert_eq!(tunnel_streams(&server), 2, "one stream per client address");
    server.shutdown(Duration::from_secs(1)).await;
}
