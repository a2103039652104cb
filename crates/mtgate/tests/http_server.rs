//! The HTTP listener on the wire: absolute-form forwarding in origin-form with the authority
//! winning over Host, the hop-by-hop scrub, keep-alive rules, CONNECT and its port allow-list,
//! 407 challenges, smuggling patterns and oversized heads (400/431), 101 upgrades, the default
//! policy, and the handshake timeout.

mod proxy_common;

use std::net::SocketAddr;
use std::time::Duration;

use proxy_common::{Echo, HttpOrigin, addr, closed_within, connect, read_exact, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> &'static str {
    r#"
    [[http]]
    name = "open"
    listen = ["127.0.0.1:0"]
    handshake_timeout = "1s"
    connect_ports = ["1024-65535"]
    max_header_size = "8KiB"
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]

    [[http]]
    name = "strict"
    listen = ["127.0.0.1:0"]
    handshake_timeout = "1s"

    [[http]]
    name = "auth"
    listen = ["127.0.0.1:0"]
    realm = "mtgate test"
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
    [http.users]
    alice = "wonderland"
    "#
}

/// One response: status, head, body (by Content-Length; none for 1xx/204/304 or CONNECT 2xx).
async fn response(s: &mut TcpStream, connect: bool) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("response");
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head[9..12].parse().unwrap();
    let length = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let length = if (connect && status / 100 == 2) || status < 200 {
        0
    } else {
        length
    };
    let mut body = buf[end..].to_vec();
    if body.len() < length {
        body.extend(read_exact(s, length - body.len()).await);
    }
    (status, head, body)
}

async fn ask(proxy: SocketAddr, raw: &str) -> (TcpStream, u16, String, Vec<u8>) {
    let mut s = connect(proxy).await;
    s.write_all(raw.as_bytes()).await.unwrap();
    let (status, head, body) = response(&mut s, raw.starts_with("CONNECT")).await;
    (s, status, head, body)
}

#[tokio::test]
async fn forwards_in_origin_form_with_a_scrubbed_head_and_keeps_alive() {
    let origin = HttpOrigin::start().await;
    let server = server(config()).await;
    let proxy = addr(&server, "open", false);
    let port = origin.v4.port();
    let raw = format!(
        "GET http://127.0.0.1:{port}/x?q=1 HTTP/1.1\r\nHost: wrong.example\r\n\
         Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n\
         X-Kept: 1\r\n\r\n"
    );
    let (mut s, status, head, body) = ask(proxy, &raw).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, b"origin saw: GET /x?q=1 HTTP/1.1 body=0");
    let seen = origin.heads()[0].to_ascii_lowercase();
    assert!(
        seen.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
        "{seen}"
    );
    for gone in [
        "x-drop",
        "keep-alive:",
        "proxy-connection",
        "\r\nte:",
        "proxy-authorization",
        "wrong.example",
    ] {
        assert!(!seen.contains(gone), "{gone} in {seen}");
    }
    assert!(seen.contains("x-kept: 1"));

    // The same connection serves the next request (HTTP/1.1 persists), with a body.
    let raw = format!(
        "POST http://127.0.0.1:{port}/post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nbody"
    );
    s.write_all(raw.as_bytes()).await.unwrap();
    let (status, _, body) = response(&mut s, false).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"origin saw: POST /post HTTP/1.1 body=4");

    // Chunked request bodies are re-framed.
    let raw = format!(
        "PUT http://127.0.0.1:{port}/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    s.write_all(raw.as_bytes()).await.unwrap();
    let (status, _, body) = response(&mut s, false).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"origin saw: PUT /c HTTP/1.1 body=3");

    // HTTP/1.0 without keep-alive: the proxy closes after the response.
    let raw = format!("GET http://127.0.0.1:{port}/old HTTP/1.0\r\n\r\n");
    let (mut s, status, _, body) = ask(proxy, &raw).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"origin saw: GET /old"));
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn smuggling_patterns_and_oversized_heads_are_refused() {
    let origin = HttpOrigin::start().await;
    let server = server(config()).await;
    let proxy = addr(&server, "open", false);
    let target = format!("http://127.0.0.1:{}/", origin.v4.port());
    let big = "a".repeat(16 * 1024);
    let cases = [
        (
            "CL and TE",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "TE then CL",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "TE on HTTP/1.0",
            format!("POST {target} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "unknown coding",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "two codings headers",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "conflicting lengths",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            ),
            400,
        ),
        (
            "oversized header",
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
            431,
        ),
    ];
    for (what, raw, expected) in cases {
        let mut s = connect(proxy).await;
        let _ = s.write_all(raw.as_bytes()).await;
        let (status, head, _) = response(&mut s, false).await;
        assert_eq!(status, expected, "{what}: {head}");
        assert!(
            closed_within(&mut s, Duration::from_secs(3)).await,
            "{what}: closed"
        );
    }
    assert!(origin.heads().is_empty(), "nothing reached the origin");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn connect_tunnels_within_the_port_allow_list() {
    let echo = Echo::start().await;
    let server = server(&format!(
        "{}\n{}",
        config(),
        r#"
        [[http]]
        name = "tls-only"
        listen = ["127.0.0.1:0"]
        rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
        "#
    ))
    .await;
    let raw = format!(
        "CONNECT 127.0.0.1:{p} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\nearly",
        p = echo.v4.port()
    );
    let (mut s, status, head, _) = ask(addr(&server, "open", false), &raw).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(read_exact(&mut s, 5).await, b"early");
    s.write_all(b"tunnel").await.unwrap();
    assert_eq!(read_exact(&mut s, 6).await, b"tunnel");

    // Port outside the allow-list (default 443 only).
    let (mut s, status, _, _) = ask(addr(&server, "tls-only", false), &raw).await;
    assert_eq!(status, 403);
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);

    // The safe default: loopback is refused without a rule, also for forwarded requests.
    let (_, status, _, _) = ask(addr(&server, "strict", false), &raw).await;
    assert_eq!(status, 403);
    let raw = format!(
        "GET http://localhost:{}/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
        echo.v4.port()
    );
    let (_, status, _, _) = ask(addr(&server, "strict", false), &raw).await;
    assert_eq!(status, 403);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn proxy_authentication_challenges_and_accepts_any_case_of_basic() {
    let origin = HttpOrigin::start().await;
    let server = server(config()).await;
    let proxy = addr(&server, "auth", false);
    let url = format!("http://127.0.0.1:{}/a", origin.v4.port());
    let (_, status, head, _) = ask(proxy, &format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    assert_eq!(status, 407);
    assert!(
        head.to_ascii_lowercase()
            .contains("proxy-authenticate: basic realm=\"mtgate test\""),
        "{head}"
    );
    // base64("alice:wonderland") and a wrong one.
    for (scheme, token, expected) in [
        ("Basic", "YWxpY2U6d29uZGVybGFuZA==", 200),
        ("basic", "YWxpY2U6d29uZGVybGFuZA==", 200),
        ("BASIC", "YWxpY2U6d29uZGVybGFuZA==", 200),
        ("Basic", "YWxpY2U6d3Jvbmc=", 407),
    ] {
        let raw = format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {scheme} {token}\r\n\r\n"
        );
        let (_, status, _, _) = ask(proxy, &raw).await;
        assert_eq!(status, expected, "{scheme} {token}");
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn upgrades_pass_only_after_the_origins_101() {
    let origin = HttpOrigin::start().await;
    let server = server(config()).await;
    let proxy = addr(&server, "open", false);
    let raw = format!(
        "GET http://127.0.0.1:{}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        origin.v4.port()
    );
    let (mut s, status, head, _) = ask(proxy, &raw).await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    let seen = origin.heads()[0].to_ascii_lowercase();
    assert!(
        seen.contains("upgrade: websocket") && seen.contains("connection: upgrade"),
        "{seen}"
    );
    s.write_all(b"frames").await.unwrap();
    assert_eq!(read_exact(&mut s, 6).await, b"frames");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_slow_head_meets_the_handshake_timeout() {
    let server = server(config()).await;
    let proxy = addr(&server, "open", false);
    let mut s = connect(proxy).await;
    s.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut rest))
        .await
        .expect("closed after the handshake timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.shutdown(Duration::from_secs(1)).await;
}
