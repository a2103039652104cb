//! Shared test fixtures: an mtgate server in-process, a fake DC, and a fake cover website
//! that records what it receives. Everything binds 127.0.0.1:0 or [::1]:0.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtgate::config::{Config, Origin, SecretSource};
use mtgate::server::Server;
use mtgate_bench::client::{ClientConfig, MtprotoConnection, Target};
use mtgate_bench::fake_dc::{FakeDc, FakeDcHandle};
use mtgate_proto::mtproto::secret::{ClientSecret, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const ALICE: &str = "0123456789abcdef0123456789abcdef";
pub const BOB: &str = "fedcba9876543210fedcba9876543210";
pub const DOMAIN: &str = "cover.example";

/// What the fake website answers to anything.
pub const WEBSITE_BANNER: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct NoAuto;
impl SecretSource for NoAuto {
    fn auto_secret(&mut self, _: &str, _: &str) -> Result<Secret, String> {
        Err("tests use explicit secrets".into())
    }
}

/// Parses a test configuration.
pub fn config(text: &str) -> Config {
    Config::parse(text, Origin::Embedded, &mut NoAuto).expect("valid test config")
}

/// Parses a test configuration that must be refused, and says why.
pub fn config_error(text: &str) -> mtgate::config::ConfigError {
    Config::parse(text, Origin::Embedded, &mut NoAuto).expect_err("an invalid test config")
}

/// A TCP server that records every byte it receives per connection and answers with
/// [`WEBSITE_BANNER`] once the peer stops sending (or right away for an HTTP request).
pub struct Website {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Website {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match tokio::time::timeout(
                            Duration::from_millis(300),
                            stream.read(&mut buf),
                        )
                        .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                        }
                        if got.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    sink.lock().unwrap().push(got);
                    let _ = stream.write_all(WEBSITE_BANNER).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, received }
    }

    /// What the `i`-th connection delivered, waiting up to 3 s for it.
    pub async fn connection(&self, i: usize) -> Vec<u8> {
        for _ in 0..300 {
            if let Some(got) = self.received.lock().unwrap().get(i) {
                return got.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the website saw no connection #{i}");
    }

    pub fn connections(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// A server, a fake DC and a website wired together.
pub struct Fixture {
    pub server: Server,
    pub dc: FakeDcHandle,
    pub website: Website,
    pub proxy: SocketAddr,
    pub proxy_v6: SocketAddr,
}

/// Options for [`Fixture::start`].
pub struct Options {
    pub modes: &'static str,
    pub masking: bool,
    pub fast_mode: bool,
    pub handshake_timeout: &'static str,
    pub extra: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            modes: r#"["classic", "padded", "fake-tls"]"#,
            masking: true,
            fast_mode: true,
            handshake_timeout: "2s",
            extra: "",
        }
    }
}

impl Fixture {
    pub async fn start(options: Options) -> Self {
        let dc = FakeDc::bind(&["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()])
            .await
            .unwrap()
            .spawn();
        let website = Website::start().await;
        let text = config_text(&options, dc.local_addrs()[0], website.addr);
        let server = Server::start(config(&text)).await.unwrap();
        let addrs = server.local_addrs("test");
        let proxy = *addrs.iter().find(|a| a.is_ipv4()).unwrap();
        let proxy_v6 = *addrs.iter().find(|a| a.is_ipv6()).unwrap();
        Self {
            server,
            dc,
            website,
            proxy,
            proxy_v6,
        }
    }

    pub fn config_text(&self, options: &Options) -> String {
        config_text(options, self.dc.local_addrs()[0], self.website.addr)
    }
}

fn config_text(options: &Options, dc: SocketAddr, website: SocketAddr) -> String {
    format!(
        r#"
        {extra}
        [metrics]
        listen = "127.0.0.1:0"
        [telegram]
        dc_overrides = {{ "2" = ["{dc}"], "4" = ["{dc}"], "10002" = ["{dc}"] }}
        [[mtproto]]
        name = "test"
        listen = ["127.0.0.1:0", "[::1]:0"]
        modes = {modes}
        fast_mode = {fast}
        handshake_timeout = "{hs}"
        idle_timeout = "10s"
        max_frame = "64KiB"
        [mtproto.fake_tls]
        domains = ["{DOMAIN}"]
        [mtproto.masking]
        enabled = {masking}
        host = "{host}"
        port = {port}
        [mtproto.users]
        alice = "{ALICE}"
        bob = {{ secret = "{BOB}", max_connections = 2 }}
        "#,
        extra = options.extra,
        modes = options.modes,
        fast = options.fast_mode,
        hs = options.handshake_timeout,
        masking = options.masking,
        host = website.ip(),
        port = website.port(),
    )
}

pub fn key(hex: &str) -> Secret {
    Secret::from_hex(hex).unwrap()
}

pub fn ee(hex: &str) -> ClientSecret {
    ClientSecret::FakeTls {
        secret: key(hex),
        domain: DOMAIN.into(),
    }
}

pub fn client_config(secret: ClientSecret) -> ClientConfig {
    let mut config = ClientConfig::new(Target::Proxy(secret));
    config.timeout = Duration::from_secs(5);
    config
}

pub async fn connect(addr: SocketAddr, config: &ClientConfig) -> MtprotoConnection {
    MtprotoConnection::connect(addr, config)
        .await
        .expect("connect through the proxy")
}

/// Reads until the peer closes (or 5 s pass) and returns the bytes.
pub async fn read_until_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

/// Waits until `cond` holds (up to 5 s).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A GET request on the metrics endpoint.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    String::from_utf8(read_until_close(&mut stream).await).unwrap()
}
