//! Users and policy on the proxy listeners: per-user rules (host exact and `*.suffix`, CIDR,
//! port range, command), per-user connection caps and bandwidth, a users file with argon2
//! hashes, PROXY protocol v1/v2 from trusted peers (and the lockout keyed by the real client),
//! and the refusal of accidental open proxies.

mod proxy_common;

use std::net::SocketAddr;
use std::time::Duration;

use mtgate::config::{Config, Origin, SecretSource};
use mtgate_client::{ConnectOptions, Proxy};
use mtgate_proto::mtproto::secret::Secret;
use mtgate_proto::proxy_protocol::Header;
use proxy_common::{Echo, addr, closed_within, connect, read_exact, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(users_file: &str) -> String {
    format!(
        r#"
    [[socks5]]
    name = "policy"
    listen = ["127.0.0.1:0"]
    users_file = "{users_file}"
    rules = [
        {{ action = "deny", ports = ["1-1023"] }},
        {{ action = "allow", cidrs = ["127.0.0.0/8"] }},
    ]
    [socks5.users.bob]
    password = "builder"
    max_connections = 1
    rules = [
        {{ action = "deny", hosts = ["localhost"] }},
        {{ action = "deny", hosts = ["*.localhost"] }},
        {{ action = "deny", commands = ["bind"] }},
    ]
    [socks5.users.slow]
    password = "snail"
    bandwidth = "128KiB"

    [[socks5]]
    name = "balanced"
    listen = ["127.0.0.1:0"]
    proxy_protocol = ["127.0.0.1/32"]
    auth_lockout = {{ failures = 1, window = "1m", duration = "1m" }}
    [socks5.users]
    bob = "builder"
    "#
    )
}

async fn with_users_file() -> (mtgate::server::Server, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("users");
    let hash = mtgate::auth::password::hash(b"s3cret pass");
    std::fs::write(&path, format!("# comment\ncarol:{hash}\n")).unwrap();
    let server = server(&config(path.to_str().unwrap())).await;
    (server, dir)
}

mod tempdir {
    /// A directory removed on drop.
    pub(super) struct Dir {
        pub(super) path: std::path::PathBuf,
    }
    impl Dir {
        pub(super) fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "mtgate-proxy-policy-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0u8)
    }
}

fn proxy(server: &mtgate::server::Server, user: &str, pass: &str) -> Proxy {
    format!("socks5h://{user}:{pass}@{}", addr(server, "policy", false))
        .parse()
        .unwrap()
}

/// The SOCKS5 reply code a CONNECT through `p` to `target` gets (0 = success).
async fn outcome(p: &Proxy, target: &str) -> u8 {
    match tokio::time::timeout(Duration::from_secs(10), p.connect(target)).await {
        Ok(Ok(_)) => 0,
        Ok(Err(e)) => e.socks5_reply().map_or(0xee, |r| r.as_u8()),
        Err(_) => panic!("no answer in time"),
    }
}

#[tokio::test]
async fn per_user_rules_caps_and_the_users_file() {
    let echo = Echo::start().await;
    let (server, _dir) = with_users_file().await;
    let port = echo.v4.port();
    let bob = proxy(&server, "bob", "builder");
    let carol = proxy(&server, "carol", "s3cret pass");

    // bob: exact and suffix host rules, but the address itself is allowed.
    assert_eq!(outcome(&bob, &format!("localhost:{port}")).await, 0x02);
    assert_eq!(outcome(&bob, &format!("api.localhost:{port}")).await, 0x02);
    // carol (from the users file, argon2): the name is fine for her.
    assert_eq!(outcome(&carol, &format!("localhost:{port}")).await, 0);
    // Port range rule of the listener for everyone.
    assert_eq!(outcome(&carol, "127.0.0.1:80").await, 0x02);
    // Command rule: bob may not BIND.
    let bind = bob.clone();
    let chain = mtgate_client::Chain::from(bind);
    let refused = chain
        .bind("0.0.0.0:0", &ConnectOptions::default())
        .await
        .err()
        .and_then(|e| e.socks5_reply());
    assert_eq!(refused.map(|r| r.as_u8()), Some(0x02));

    // bob may hold one connection at a time.
    let mut first = bob.connect(echo.v4).await.unwrap();
    assert_eq!(outcome(&bob, &echo.v4.to_string()).await, 0x02);
    first.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    first.read_exact(&mut one).await.unwrap();
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        if outcome(&bob, &echo.v4.to_string()).await == 0 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the slot comes back when the first tunnel ends");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bandwidth_is_shaped_per_user() {
    let echo = Echo::start().await;
    let (server, _dir) = with_users_file().await;
    let slow = proxy(&server, "slow", "snail");
    let mut stream = slow.connect(echo.v4).await.unwrap();
    let payload = vec![7u8; 384 * 1024];
    let started = tokio::time::Instant::now();
    let (mut r, mut w) = tokio::io::split(&mut stream);
    let writer = async {
        w.write_all(&payload).await.unwrap();
    };
    let reader = async {
        let mut got = vec![0u8; payload.len()];
        r.read_exact(&mut got).await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(writer, reader)
    })
    .await
    .expect("transfer in time");
    let took = started.elapsed();
    // 384 KiB at 128 KiB/s with a 32 KiB burst: about 2.75 s.
    assert!(took >= Duration::from_millis(2000), "took {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    server.shutdown(Duration::from_secs(1)).await;
}

async fn socks5_login(s: &mut TcpStream, user: &[u8], pass: &[u8]) -> Vec<u8> {
    s.write_all(&[0x05, 0x01, 0x02]).await.unwrap();
    assert_eq!(read_exact(s, 2).await, [0x05, 0x02]);
    let mut c = vec![0x01, user.len() as u8];
    c.extend_from_slice(user);
    c.push(pass.len() as u8);
    c.extend_from_slice(pass);
    s.write_all(&c).await.unwrap();
    read_exact(s, 2).await
}

fn proxy_header(source: &str, v2: bool) -> Vec<u8> {
    let header = Header::Proxied {
        source: source.parse().unwrap(),
        destination: "127.0.0.1:1080".parse().unwrap(),
    };
    let mut out = Vec::new();
    if v2 {
        header.write_v2(&mut out);
    } else {
        header.write_v1(&mut out);
    }
    out
}

#[tokio::test]
async fn proxy_protocol_gives_the_real_client_to_the_lockout() {
    let (server, _dir) = with_users_file().await;
    let policy: SocketAddr = addr(&server, "balanced", false);

    // 203.0.113.7 fails once (failures = 1) and is locked out, over v1 and v2 alike.
    let mut s = connect(policy).await;
    s.write_all(&proxy_header("203.0.113.7:4000", false))
        .await
        .unwrap();
    assert_eq!(socks5_login(&mut s, b"bob", b"wrong").await, [0x01, 0x01]);
    let mut s = connect(policy).await;
    s.write_all(&proxy_header("203.0.113.7:4001", true))
        .await
        .unwrap();
    assert_eq!(
        socks5_login(&mut s, b"bob", b"builder").await,
        [0x01, 0x01],
        "locked out"
    );
    // Another client behind the same balancer is not.
    let mut s = connect(policy).await;
    s.write_all(&proxy_header("[2001:db8::9]:4000", true))
        .await
        .unwrap();
    assert_eq!(socks5_login(&mut s, b"bob", b"builder").await, [0x01, 0x00]);

    // A trusted peer without a header, or with a broken one, is dropped.
    for junk in [&b"\x05\x01\x00"[..], b"PROXY TCP4 nonsense\r\n"] {
        let mut s = connect(policy).await;
        s.write_all(junk).await.unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    }
    server.shutdown(Duration::from_secs(1)).await;
}

struct NoAuto;
impl SecretSource for NoAuto {
    fn auto_secret(&mut self, _: &str, _: &str) -> Result<Secret, String> {
        Err("none".into())
    }
}

#[test]
fn an_open_proxy_beyond_loopback_must_say_so() {
    let parse = |text: &str| Config::parse(text, Origin::Embedded, &mut NoAuto);
    let open = "[[http]]\nlisten = [\"0.0.0.0:3128\"]\n";
    let err = parse(open).unwrap_err();
    assert!(err.to_string().contains("open"), "{err}");
    assert!(parse(&format!("{open}open = true\n")).is_ok());
    // Loopback without users is fine; so is any address with users.
    assert!(parse("[[socks5]]\nlisten = [\"127.0.0.1:1080\", \"[::1]:1080\"]\n").is_ok());
    assert!(parse("[[mixed]]\nlisten = [\"[::]:1080\"]\n[mixed.users]\na = \"b\"\n").is_ok());
    // Settings of one kind are refused on another.
    assert!(parse("[[socks5]]\nlisten = [\"127.0.0.1:1\"]\nconnect_ports = [443]\n").is_err());
    assert!(parse("[[http]]\nlisten = [\"127.0.0.1:1\"]\nudp = true\n").is_err());
    assert!(parse("[[http]]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n").is_err());
}

#[test]
fn the_example_validates_and_hash_password_makes_a_usable_hash() {
    let text = include_str!("../../../examples/socks-http.toml");
    let config = Config::parse(text, Origin::Embedded, &mut NoAuto).expect("example is valid");
    assert_eq!(config.proxies.len(), 3);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mtgate"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"s3cret pass\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let text = format!(
        "[[socks5]]\nlisten = [\"127.0.0.1:1\"]\n[socks5.users]\nalice = \"{}\"\n",
        hash.trim()
    );
    assert!(Config::parse(&text, Origin::Embedded, &mut NoAuto).is_ok());
}

fn reload_config(password: &str) -> String {
    format!(
        r#"
        [[socks5]]
        name = "r"
        listen = ["127.0.0.1:0"]
        rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
        [socks5.users]
        dave = "{password}"
        "#
    )
}

#[tokio::test]
async fn reload_swaps_users_for_new_connections_and_metrics_show_no_secret() {
    let echo = Echo::start().await;
    let server = server(&reload_config("first-pass")).await;
    let at = addr(&server, "r", false);
    let first: Proxy = format!("socks5h://dave:first-pass@{at}").parse().unwrap();
    let mut open = first.connect(echo.v4).await.unwrap();

    let text = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
        reload_config("second-pass")
    );
    let new = Config::parse(&text, Origin::Embedded, &mut NoAuto).unwrap();
    server.reload(new);
    assert!(
        first.connect(echo.v4).await.is_err(),
        "old password refused"
    );
    let second: Proxy = format!("socks5h://dave:second-pass@{at}").parse().unwrap();
    drop(second.connect(echo.v4).await.unwrap());
    // The tunnel opened before the reload lives on.
    open.write_all(b"still").await.unwrap();
    let mut got = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), open.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"still");
    drop(open);

    let metrics = server.metrics_addr().unwrap();
    let mut s = connect(metrics).await;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = String::from_utf8(proxy_common::read_to_end(&mut s).await).unwrap();
    assert!(text.contains("mtgate_proxy_requests_total{"), "{text}");
    assert!(text.contains("user=\"dave\""));
    assert!(text.contains("mtgate_proxy_bytes_total{"));
    assert!(!text.contains("first-pass") && !text.contains("second-pass"));
    assert!(!text.contains("127.0.0.1"), "no client address in labels");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn listener_cap_and_idle_timeout() {
    let echo = Echo::start().await;
    let server = server(
        r#"
        [[socks5]]
        name = "capped"
        listen = ["127.0.0.1:0"]
        max_connections = 1
        idle_timeout = "1s"
        rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
        "#,
    )
    .await;
    let proxy: Proxy = format!("socks5://{}", addr(&server, "capped", false))
        .parse()
        .unwrap();
    let mut first = proxy.connect(echo.v4).await.unwrap();
    // The second connection is over the listener's cap: closed without an answer.
    let mut second = connect(addr(&server, "capped", false)).await;
    let _ = second.write_all(&[0x05, 0x01, 0x00]).await;
    assert!(closed_within(&mut second, Duration::from_secs(3)).await);
    // The first tunnel works, then idles out after a second of silence.
    first.write_all(b"ok").await.unwrap();
    let mut got = [0u8; 2];
    first.read_exact(&mut got).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest))
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(800));
    // Its place is free again.
    let mut again = proxy.connect(echo.v4).await.unwrap();
    again.write_all(b"re").await.unwrap();
    again.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"re");
    server.shutdown(Duration::from_secs(1)).await;
}
