//! Fixtures for the proxy listener tests: an mtgate server with `[[socks5]]`/`[[http]]`/
//! `[[mixed]]` listeners in-process, local origins (TCP echo, HTTP, UDP echo) on 127.0.0.1 and
//! ::1, raw-socket helpers with timeouts, and `curl` when the machine has it.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtgate::config::{Config, Origin, SecretSource};
use mtgate::server::Server;
use mtgate_proto::mtproto::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Every test-side wait is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

struct NoAuto;
impl SecretSource for NoAuto {
    fn auto_secret(&mut self, _: &str, _: &str) -> Result<Secret, String> {
        Err("tests use explicit secrets".into())
    }
}

/// Starts a server from config text (metrics on a free port).
pub async fn server(text: &str) -> Server {
    let text = format!("[metrics]\nlisten = \"127.0.0.1:0\"\n{text}");
    let config = Config::parse(&text, Origin::Embedded, &mut NoAuto).expect("valid test config");
    Server::start(config).await.expect("server starts")
}

/// The IPv4 (or, with `v6`, IPv6) address of a listener.
pub fn addr(server: &Server, name: &str, v6: bool) -> SocketAddr {
    *server
        .local_addrs(name)
        .iter()
        .find(|a| a.is_ipv6() == v6)
        .expect("listener address")
}

/// A TCP echo server on 127.0.0.1 and ::1.
pub struct Echo {
    pub v4: SocketAddr,
    pub v6: SocketAddr,
}

impl Echo {
    pub async fn start() -> Self {
        let mut addrs = Vec::new();
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let listener = TcpListener::bind(bind).await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = stream.split();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(30),
                            tokio::io::copy(&mut r, &mut w),
                        )
                        .await;
                        let _ = w.shutdown().await;
                    });
                }
            });
        }
        Self {
            v4: addrs[0],
            v6: addrs[1],
        }
    }
}

/// A UDP echo server on 127.0.0.1.
pub async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_secs(60), socket.recv_from(&mut buf)).await
        {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// An HTTP/1.1 origin on 127.0.0.1 and ::1 that records each request head and answers
/// `200` with a body naming the request line; keeps connections alive; answers a WebSocket
/// upgrade with `101` and then echoes.
pub struct HttpOrigin {
    pub v4: SocketAddr,
    pub v6: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl HttpOrigin {
    pub async fn start() -> Self {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let mut addrs = Vec::new();
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let listener = TcpListener::bind(bind).await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            let heads = heads.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(origin_connection(stream, heads.clone()));
                }
            });
        }
        Self {
            v4: addrs[0],
            v6: addrs[1],
            heads,
        }
    }

    /// Request heads seen so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn origin_connection(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    for _ in 0..100 {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_in = if lower.contains("transfer-encoding: chunked") {
            match read_chunked(&mut stream, &mut buf).await {
                Some(body) => body,
                None => return,
            }
        } else {
            while buf.len() < length {
                let mut chunk = [0u8; 4096];
                match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            buf.drain(..length).collect()
        };
        heads.lock().unwrap().push(head.clone());
        let line = head.lines().next().unwrap_or_default().to_owned();
        if lower.contains("upgrade: websocket") {
            let _ = stream
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .await;
            let (mut r, mut w) = stream.split();
            let _ = w.write_all(&buf).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), tokio::io::copy(&mut r, &mut w))
                .await;
            return;
        }
        let body = format!("origin saw: {line} body={}", body_in.len());
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Origin: yes\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if lower.contains("connection: close") {
            return;
        }
    }
}

/// Decodes a chunked body (no trailers) from `buf` and the stream.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    for _ in 0..10_000 {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?.trim(), 16).ok()?;
        while buf.len() < line_end + 2 + size + 2 {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
    None
}

/// Connects to `addr` within [`WAIT`].
pub async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads exactly `n` bytes within [`WAIT`].
pub async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("reply in time")
        .expect("reply");
    buf
}

/// Reads until EOF (or an error) within [`WAIT`]; what came before.
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("EOF in time")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the peer closed the connection (EOF or reset) within `wait`, with nothing sent.
pub async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut chunk = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut chunk)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// `curl` with a few safe defaults, or `None` (and a message) if it is not installed.
pub fn curl() -> Option<Command> {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("curl is not installed: skipping the curl part of this test");
        return None;
    }
    let mut c = Command::new("curl");
    c.args([
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--noproxy",
        "",
    ])
    .env_remove("http_proxy")
    .env_remove("https_proxy")
    .env_remove("HTTP_PROXY")
    .env_remove("HTTPS_PROXY")
    .env_remove("ALL_PROXY")
    .env_remove("all_proxy");
    Some(c)
}

/// Runs a prepared `curl` off the runtime; (exit code, stdout, stderr).
pub async fn run(mut command: Command) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("curl runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
