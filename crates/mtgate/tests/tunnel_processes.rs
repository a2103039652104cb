//! The gateway (`mtgate run`) and the agent (`mtgate agent`) as real processes on loopback:
//! a download through the gateway's SOCKS5 listener with the agent killed (SIGKILL) in the
//! middle, a second agent taking over, and 1,000 streams at once, counted in the agent's
//! metrics.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_mtgate");

/// Bytes the origin sends for a download: far more than can pass before the agent dies.
const DOWNLOAD: usize = 1 << 30;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts `mtgate` with its log in `log` (kept for a failing test's reader).
fn spawn(args: &[&str], log: &std::path::Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    Process(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("mtgate starts"),
    )
}

/// The origin: the first byte asks for `D` (a download of [`DOWNLOAD`] bytes) or `E` (echo).
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut mode = [0u8; 1];
                if tcp.read_exact(&mut mode).await.is_err() {
                    return;
                }
                if mode[0] == b'D' {
                    let chunk = vec![0x5a; 64 * 1024];
                    for _ in 0..DOWNLOAD / chunk.len() {
                        if tcp.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                } else {
                    let (mut rd, mut wr) = tcp.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                }
            });
        }
    });
    addr
}

struct Setup {
    dir: std::path::PathBuf,
    gateway_port: u16,
    socks: SocketAddr,
    _gateway: Process,
}

impl Setup {
    async fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mtgate-tunnel-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gateway_port = free_port();
        let socks_port = free_port();
        let config = format!(
            r#"
[metrics]
listen = "127.0.0.1:0"

[[gateway]]
name = "tunnel"
listen = ["127.0.0.1:{gateway_port}"]
plain = true
ping_interval = "2s"
pong_timeout = "2s"

[[gateway.credential]]
username = "agent"
password = "agent-password"
group = "office"

[[socks5]]
listen = ["127.0.0.1:{socks_port}"]
gateway = "tunnel"
agent_group = "office"
rules = [{{ action = "allow", hosts = ["*"] }}]
"#
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let gateway = spawn(
            &["run", "--config", path.to_str().unwrap()],
            &dir.join("gateway.log"),
        );
        let socks = SocketAddr::from(([127, 0, 0, 1], socks_port));
        Self {
            dir,
            gateway_port,
            socks,
            _gateway: gateway,
        }
    }

    fn agent(&self, name: &str) -> Process {
        self.agent_with(name, "")
    }

    /// An agent with `extra` lines in its config.
    fn agent_with(&self, name: &str, extra: &str) -> Process {
        let config = format!(
            r#"
gateway = "ws://127.0.0.1:{}/ws"
username = "agent"
password = "agent-password"
client_id = "{name}"
allow_private = true
max_concurrent_conns = 4096
ping_interval = "2s"
pong_timeout = "2s"
{extra}
"#,
            self.gateway_port
        );
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        spawn(
            &["agent", "--config", path.to_str().unwrap()],
            &self.dir.join(format!("{name}.log")),
        )
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// SOCKS5 CONNECT without authentication; returns the reply code and the stream.
async fn socks_connect(proxy: SocketAddr, target: SocketAddr) -> std::io::Result<(u8, TcpStream)> {
    let mut tcp = TcpStream::connect(proxy).await?;
    tcp.write_all(&[5, 1, 0]).await?;
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice).await?;
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 target expected");
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    tcp.write_all(&request).await?;
    let mut reply = [0u8; 10];
    tcp.read_exact(&mut reply).await?;
    Ok((reply[1], tcp))
}

/// One echo round trip through the tunnel; true when it worked.
async fn echo_works(proxy: SocketAddr, origin: SocketAddr) -> bool {
    let attempt = async {
        let (reply, mut tcp) = socks_connect(proxy, origin).await?;
        if reply != 0 {
            return Ok(false);
        }
        tcp.write_all(b"Eping").await?;
        let mut back = [0u8; 4];
        tcp.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(&back == b"ping")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Ok(true))
    )
}

/// Waits (at most 20 s) until traffic passes through an agent.
async fn until_served(proxy: SocketAddr, origin: SocketAddr) {
    for _ in 0..200 {
        if echo_works(proxy, origin).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no agent served the gateway within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_transfer_resets_cleanly_and_a_new_agent_takes_over() {
    let origin = origin().await;
    let setup = Setup::start("kill").await;
    let mut first = setup.agent("first");
    until_served(setup.socks, origin).await;

    let (reply, mut download) = socks_connect(setup.socks, origin).await.unwrap();
    assert_eq!(reply, 0);
    download.write_all(b"D").await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0usize;
    while received < 4 << 20 {
        let n = download.read(&mut buf).await.unwrap();
        assert!(n > 0, "download ended early");
        received += n;
    }

    first.0.start_kill().unwrap();
    first.0.wait().await.unwrap();
    // The download ends (EOF or a reset) promptly instead of hanging, short of its length.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match download.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the client's stream hung after the agent died"
    );
    assert!(received < DOWNLOAD, "the download cannot have finished");

    // With no agent left, new connections get a SOCKS failure reply, quickly.
    let refused = tokio::time::timeout(Duration::from_secs(10), socks_connect(setup.socks, origin))
        .await
        .expect("answered in time")
        .map(|(reply, _)| reply)
        .unwrap_or(0xff);
    assert_ne!(refused, 0, "no agent, yet the connection was accepted");

    let _second = setup.agent("second");
    until_served(setup.socks, origin).await;
    assert!(echo_works(setup.socks, origin).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_through_gateway_and_agent() {
    let origin = origin().await;
    let setup = Setup::start("thousand").await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // 127.0.0.2 is refused by the agent's policy before anything is sent to it.
    let extra = format!("metrics_listen = \"{metrics}\"\nforbidden_hosts = [\"127.0.0.2\"]");
    let _agent = setup.agent_with("only", &extra);
    until_served(setup.socks, origin).await;

    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let proxy = setup.socks;
        tasks.push(tokio::spawn(async move {
            let (reply, mut tcp) = socks_connect(proxy, origin).await?;
            assert_eq!(reply, 0, "stream {i} refused");
            let message = format!("E{i:08}");
            tcp.write_all(message.as_bytes()).await?;
            let mut back = [0u8; 8];
            tcp.read_exact(&mut back).await?;
            assert_eq!(&back, &message.as_bytes()[1..]);
            // Hold every stream open until all are up.
            Ok::<_, std::io::Error>(tcp)
        }));
    }
    let mut open = Vec::new();
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            open.push(task.await.unwrap().unwrap());
        }
    })
    .await;
    assert!(all.is_ok(), "1,000 streams did not all finish in time");
    assert_eq!(open.len(), 1000);

    let forbidden = SocketAddr::from(([127, 0, 0, 2], 80));
    let (reply, _) = socks_connect(setup.socks, forbidden).await.unwrap();
    assert_ne!(reply, 0, "the agent's policy forbids 127.0.0.2");
    let text = get_metrics(metrics).await;
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("mtgate_agent_gateway_connections"), 1);
    assert_eq!(value("mtgate_agent_streams_open"), 1000, "{text}");
    assert!(value("mtgate_agent_stream_opens_total") >= 1001, "{text}");
    assert_eq!(
        value(r#"mtgate_agent_stream_refusals_total{code="forbidden_host"}"#),
        1
    );
    // Each stream: 9 bytes in ("E" and 8 digits), 8 bytes echoed back out.
    assert!(value(r#"mtgate_agent_bytes_total{direction="in"}"#) >= 9000);
    assert!(value(r#"mtgate_agent_bytes_total{direction="out"}"#) >= 8000);
}

/// The agent's `/metrics` page.
async fn get_metrics(addr: SocketAddr) -> String {
    let fetch = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("metrics in time")
        .expect("metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}
