//! The SOCKS5 listener on the wire: method choice, RFC 1929, exact reply codes, real BND,
//! refusals and their close, handshake timeout, SOCKS4/4a on the same port, the safe default
//! policy after DNS resolution, and a relay that carries bytes and half-close.

mod proxy_common;

use std::net::SocketAddr;
use std::time::Duration;

use proxy_common::{Echo, closed_within, connect, read_exact, read_to_end, server};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// An open listener allowed to reach loopback, one with the default policy, one with users.
fn config() -> &'static str {
    r#"
    [[socks5]]
    name = "open"
    listen = ["127.0.0.1:0", "[::1]:0"]
    handshake_timeout = "1s"
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]

    [[socks5]]
    name = "spliced"
    listen = ["127.0.0.1:0"]
    splice = true
    idle_timeout = "1s"
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]

    [[socks5]]
    name = "strict"
    listen = ["127.0.0.1:0"]
    handshake_timeout = "1s"

    [[socks5]]
    name = "auth"
    listen = ["127.0.0.1:0"]
    handshake_timeout = "1s"
    auth_lockout = { failures = 3, window = "1m", duration = "1m" }
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
    [socks5.users]
    alice = "wonderland"
    "#
}

fn request(cmd: u8, target: SocketAddr) -> Vec<u8> {
    let mut out = vec![0x05, cmd, 0x00];
    match target {
        SocketAddr::V4(a) => {
            out.push(0x01);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(0x04);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
    out
}

fn domain_request(name: &[u8], port: u16) -> Vec<u8> {
    let mut out = vec![0x05, 0x01, 0x00, 0x03, name.len() as u8];
    out.extend_from_slice(name);
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// Greets with no-auth and returns the stream after the method selection.
async fn greeted(proxy: SocketAddr) -> TcpStream {
    let mut s = connect(proxy).await;
    s.write_all(&[0x05, 0x01, 0x00]).await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, [0x05, 0x00]);
    s
}

/// Reads a reply head (VER REP RSV ATYP) and its address; returns (REP, BND).
async fn reply(s: &mut TcpStream) -> (u8, SocketAddr) {
    let head = read_exact(s, 4).await;
    assert_eq!(head[0], 0x05);
    assert_eq!(head[2], 0x00);
    let bnd = match head[3] {
        0x01 => {
            let b = read_exact(s, 6).await;
            SocketAddr::from(([b[0], b[1], b[2], b[3]], u16::from_be_bytes([b[4], b[5]])))
        }
        0x04 => {
            let b = read_exact(s, 18).await;
            let ip: [u8; 16] = b[..16].try_into().unwrap();
            SocketAddr::from((ip, u16::from_be_bytes([b[16], b[17]])))
        }
        other => panic!("unexpected ATYP {other}"),
    };
    (head[1], bnd)
}

#[tokio::test]
async fn connect_relays_and_reports_the_real_bound_address() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    for (proxy, target) in [
        (proxy_common::addr(&server, "open", false), echo.v4),
        (proxy_common::addr(&server, "open", true), echo.v6),
        (proxy_common::addr(&server, "open", false), echo.v6),
    ] {
        let mut s = greeted(proxy).await;
        s.write_all(&request(0x01, target)).await.unwrap();
        let (rep, bnd) = reply(&mut s).await;
        assert_eq!(rep, 0x00);
        assert_ne!(bnd.port(), 0, "BND.PORT is the real outbound port");
        assert!(
            bnd.ip().is_loopback(),
            "BND.ADDR is the real local address: {bnd}"
        );
        assert_eq!(bnd.is_ipv6(), target.is_ipv6());
        s.write_all(b"hello through socks").await.unwrap();
        assert_eq!(read_exact(&mut s, 19).await, b"hello through socks");
        // Half-close travels to the echo server, whose EOF comes back.
        s.shutdown().await.unwrap();
        assert!(read_to_end(&mut s).await.is_empty());
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn greeting_in_pieces_and_early_data_after_the_request() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    let mut s = connect(proxy_common::addr(&server, "open", false)).await;
    s.write_all(&[0x05]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.write_all(&[0x02, 0x02, 0x00]).await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, [0x05, 0x00]);
    let mut req = request(0x01, echo.v4);
    req.extend_from_slice(b"early");
    s.write_all(&req).await.unwrap();
    assert_eq!(reply(&mut s).await.0, 0x00);
    assert_eq!(read_exact(&mut s, 5).await, b"early");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reply_codes_are_exact_and_the_connection_closes_after_a_failure() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    let strict = proxy_common::addr(&server, "strict", false);
    // A port nobody listens on: refused.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut unsupported_command = request(0x01, echo.v4);
    unsupported_command[1] = 0x09;
    let mut unsupported_atyp = request(0x01, echo.v4);
    unsupported_atyp[3] = 0x05;
    let cases: Vec<(&str, SocketAddr, Vec<u8>, u8)> = vec![
        ("refused", open, request(0x01, closed_port), 0x05),
        ("loopback by default", strict, request(0x01, echo.v4), 0x02),
        (
            "name resolving to loopback",
            strict,
            domain_request(b"localhost", echo.v4.port()),
            0x02,
        ),
        (
            "metadata address",
            strict,
            request(0x01, "169.254.169.254:80".parse().unwrap()),
            0x02,
        ),
        ("unknown command", open, unsupported_command, 0x07),
        ("unknown address type", open, unsupported_atyp, 0x08),
        ("zero-length domain", open, domain_request(b"", 80), 0x01),
        (
            "name that does not resolve",
            open,
            domain_request(b"no-such-host.invalid", 80),
            0x04,
        ),
    ];
    for (what, proxy, req, expected) in cases {
        let mut s = greeted(proxy).await;
        s.write_all(&req).await.unwrap();
        let (rep, _) = reply(&mut s).await;
        assert_eq!(rep, expected, "{what}");
        assert!(
            closed_within(&mut s, Duration::from_secs(4)).await,
            "{what}: closed after the failure reply"
        );
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn method_negotiation_follows_the_offer() {
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    let auth = proxy_common::addr(&server, "auth", false);
    for (proxy, offer, chosen) in [
        (open, vec![0x05, 0x01, 0x00], 0x00),
        (open, vec![0x05, 0x01, 0x02], 0x02),
        (open, vec![0x05, 0x01, 0x01], 0xff),
        (auth, vec![0x05, 0x01, 0x00], 0xff),
        (auth, vec![0x05, 0x02, 0x00, 0x02], 0x02),
        (auth, vec![0x05, 0x03, 0x80, 0x01, 0x00], 0xff),
    ] {
        let mut s = connect(proxy).await;
        s.write_all(&offer).await.unwrap();
        assert_eq!(read_exact(&mut s, 2).await, [0x05, chosen], "{offer:?}");
        if chosen == 0xff {
            assert!(closed_within(&mut s, Duration::from_secs(3)).await);
        }
    }
    server.shutdown(Duration::from_secs(1)).await;
}

fn credentials(user: &[u8], pass: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01, user.len() as u8];
    out.extend_from_slice(user);
    out.push(pass.len() as u8);
    out.extend_from_slice(pass);
    out
}

async fn login(proxy: SocketAddr, creds: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut s = connect(proxy).await;
    s.write_all(&[0x05, 0x01, 0x02]).await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, [0x05, 0x02]);
    s.write_all(creds).await.unwrap();
    let status = read_exact(&mut s, 2).await;
    (s, status)
}

#[tokio::test]
async fn username_password_then_lockout() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    let auth = proxy_common::addr(&server, "auth", false);

    let (mut s, status) = login(auth, &credentials(b"alice", b"wonderland")).await;
    assert_eq!(status, [0x01, 0x00]);
    s.write_all(&request(0x01, echo.v4)).await.unwrap();
    assert_eq!(reply(&mut s).await.0, 0x00);
    s.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact(&mut s, 4).await, b"ping");
    drop(s);

    // Malformed sub-negotiations: wrong version, zero-length name, zero-length password.
    for bad in [
        {
            let mut c = credentials(b"alice", b"wonderland");
            c[0] = 0x05;
            c
        },
        vec![0x01, 0x00, 0x01, b'x'],
    ] {
        let (mut s, status) = login(auth, &bad).await;
        assert_eq!(status[0], 0x01);
        assert_ne!(status[1], 0x00);
        assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    }

    // Wrong passwords: refused, and after three failures even the right one is.
    for _ in 0..3 {
        let (mut s, status) = login(auth, &credentials(b"alice", b"wrong")).await;
        assert_eq!(status, [0x01, 0x01]);
        assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    }
    let (_, status) = login(auth, &credentials(b"alice", b"wonderland")).await;
    assert_eq!(status, [0x01, 0x01], "locked out");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn malformed_greetings_close_without_panic() {
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    // NMETHODS = 0 gets the "no acceptable method" answer; garbage is dropped.
    let mut s = connect(open).await;
    s.write_all(&[0x05, 0x00]).await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, [0x05, 0xff]);
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    for garbage in [
        &b"\x06\x01\x00"[..],
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
    ] {
        let mut s = connect(open).await;
        s.write_all(garbage).await.unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(3)).await,
            "{garbage:?}"
        );
    }
    // A request with a bad RSV byte.
    let mut s = greeted(open).await;
    s.write_all(&[0x05, 0x01, 0x07, 0x01, 127, 0, 0, 1, 0, 80])
        .await
        .unwrap();
    let got = read_to_end(&mut s).await;
    assert!(got.is_empty() || got[1] != 0x00, "{got:?}");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn slow_clients_meet_the_handshake_timeout() {
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    for partial in [&b""[..], b"\x05", b"\x05\x01\x00\x05\x01"] {
        let mut s = connect(open).await;
        s.write_all(partial).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut got = Vec::new();
        let mut chunk = [0u8; 16];
        loop {
            use tokio::io::AsyncReadExt;
            match tokio::time::timeout(Duration::from_secs(4), s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("not closed after the handshake timeout"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(got.len() <= 2, "{got:?}");
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn socks4_and_socks4a_on_the_same_port() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    let port = echo.v4.port().to_be_bytes();

    let mut s = connect(open).await;
    let mut req = vec![0x04, 0x01, port[0], port[1], 127, 0, 0, 1];
    req.extend_from_slice(b"user\0");
    s.write_all(&req).await.unwrap();
    let answer = read_exact(&mut s, 8).await;
    assert_eq!(answer[..2], [0x00, 0x5a]);
    s.write_all(b"v4").await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, b"v4");

    let mut s = connect(open).await;
    let mut req = vec![0x04, 0x01, port[0], port[1], 0, 0, 0, 1];
    req.extend_from_slice(b"\0localhost\0");
    s.write_all(&req).await.unwrap();
    assert_eq!(read_exact(&mut s, 8).await[..2], [0x00, 0x5a]);
    s.write_all(b"4a").await.unwrap();
    assert_eq!(read_exact(&mut s, 2).await, b"4a");

    // Default policy: rejected (0x5b), then closed.
    let strict = proxy_common::addr(&server, "strict", false);
    let mut s = connect(strict).await;
    let mut req = vec![0x04, 0x01, port[0], port[1], 127, 0, 0, 1];
    req.push(0);
    s.write_all(&req).await.unwrap();
    assert_eq!(read_exact(&mut s, 8).await[..2], [0x00, 0x5b]);
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    server.shutdown(Duration::from_secs(1)).await;
}

/// Whether nothing arrives on `socket` for 300 ms.
async fn quiet(socket: &tokio::net::UdpSocket) -> bool {
    let mut scratch = [0u8; 256];
    tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut scratch))
        .await
        .is_err()
}

fn udp_datagram(frag: u8, target: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, 0x00, frag];
    match target {
        SocketAddr::V4(a) => {
            out.push(0x01);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(0x04);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
    out.extend_from_slice(data);
    out
}

#[tokio::test]
async fn udp_drops_fragments_and_strangers_and_ends_with_its_control_connection() {
    let echo = proxy_common::udp_echo().await;
    let server = server(config()).await;
    let open = proxy_common::addr(&server, "open", false);
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut control = greeted(open).await;
    let me = client.local_addr().unwrap();
    control.write_all(&request(0x03, me)).await.unwrap();
    let (rep, relay) = reply(&mut control).await;
    assert_eq!(rep, 0x00);
    assert!(relay.ip().is_loopback() && relay.port() != 0, "{relay}");

    let mut buf = [0u8; 256];
    // A fragment (FRAG = 1) is dropped.
    client
        .send_to(&udp_datagram(1, echo, b"frag"), relay)
        .await
        .unwrap();
    assert!(quiet(&client).await, "fragment relayed");
    // A stranger (another port than announced) is ignored.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger
        .send_to(&udp_datagram(0, echo, b"who"), relay)
        .await
        .unwrap();
    assert!(quiet(&stranger).await, "stranger relayed");
    // The client's whole datagram comes back with the echo's address in the header.
    client
        .send_to(&udp_datagram(0, echo, b"hello udp"), relay)
        .await
        .unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    assert_eq!(from, relay);
    assert_eq!(&buf[..n], &udp_datagram(0, echo, b"hello udp")[..]);

    // Closing the control connection ends the association: nothing is relayed any more.
    drop(control);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.send_to(&udp_datagram(0, echo, b"late"), relay).await;
    assert!(
        quiet(&client).await,
        "association outlived its control connection"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn splice_relays_bulk_bytes_half_close_and_idles_out() {
    use tokio::io::AsyncReadExt;
    let echo = Echo::start().await;
    let server = server(config()).await;
    let proxy = proxy_common::addr(&server, "spliced", false);
    let mut s = greeted(proxy).await;
    s.write_all(&request(0x01, echo.v4)).await.unwrap();
    assert_eq!(reply(&mut s).await.0, 0x00);
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut back))
        .await
        .expect("echo and EOF in time")
        .unwrap();
    assert!(back == payload, "every byte back, in order");
    drop(writer.await.unwrap());

    // A silent spliced tunnel meets the idle timeout.
    let mut s = greeted(proxy).await;
    s.write_all(&request(0x01, echo.v4)).await.unwrap();
    assert_eq!(reply(&mut s).await.0, 0x00);
    assert!(closed_within(&mut s, Duration::from_secs(4)).await);
    server.shutdown(Duration::from_secs(1)).await;
}
