//! mtgate's SOCKS5, HTTP and mixed listeners driven by clients: curl (when installed) and the
//! `mtgate-client` crate, including UDP ASSOCIATE to a UDP echo server and BIND.

mod proxy_common;

use std::time::Duration;

use mtgate_client::{Chain, ConnectOptions, Proxy};
use proxy_common::{Echo, HttpOrigin, addr, curl, run, server, udp_echo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config() -> &'static str {
    r#"
    [[socks5]]
    name = "socks"
    listen = ["127.0.0.1:0", "[::1]:0"]
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]
    [socks5.users]
    alice = "wonderland"

    [[socks5]]
    name = "socks-open"
    listen = ["127.0.0.1:0"]
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]

    [[http]]
    name = "http"
    listen = ["127.0.0.1:0", "[::1]:0"]
    connect_ports = ["1024-65535"]
    via = true
    realm = "test realm"
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]
    [http.users]
    alice = "wonderland"

    [[mixed]]
    name = "mixed"
    listen = ["127.0.0.1:0"]
    connect_ports = ["1024-65535"]
    rules = [{ action = "allow", cidrs = ["127.0.0.0/8", "::1/128"] }]
    "#
}

#[tokio::test]
async fn curl_through_every_listener_kind() {
    let origin = HttpOrigin::start().await;
    let server = server(config()).await;
    let Some(_) = curl() else { return };
    let socks = addr(&server, "socks", false);
    let socks_v6 = addr(&server, "socks", true);
    let socks_open = addr(&server, "socks-open", false);
    let http = addr(&server, "http", false);
    let http_v6 = addr(&server, "http", true);
    let mixed = addr(&server, "mixed", false);
    let url4 = format!("http://127.0.0.1:{}/four", origin.v4.port());
    let url6 = format!("http://[::1]:{}/six", origin.v6.port());
    let url_name = format!("http://localhost:{}/name", origin.v4.port());

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "socks5 with a password",
            vec![
                "--socks5".into(),
                socks.to_string(),
                "--proxy-user".into(),
                "alice:wonderland".into(),
                url4.clone(),
            ],
            "GET /four",
        ),
        (
            "socks5h, IPv6 proxy",
            vec![
                "--socks5-hostname".into(),
                format!("[::1]:{}", socks_v6.port()),
                "--proxy-user".into(),
                "alice:wonderland".into(),
                url_name.clone(),
            ],
            "GET /name",
        ),
        (
            "socks5 to an IPv6 literal",
            vec![
                "--socks5".into(),
                socks.to_string(),
                "--proxy-user".into(),
                "alice:wonderland".into(),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "socks5 without auth",
            vec!["--socks5".into(), socks_open.to_string(), url4.clone()],
            "GET /four",
        ),
        (
            "socks4a",
            vec!["--socks4a".into(), socks_open.to_string(), url_name.clone()],
            "GET /name",
        ),
        (
            "socks4",
            vec!["--socks4".into(), socks_open.to_string(), url4.clone()],
            "GET /four",
        ),
        (
            "http forward with a password",
            vec![
                "-x".into(),
                format!("http://alice:wonderland@{http}"),
                url4.clone(),
            ],
            "GET /four",
        ),
        (
            "http forward, IPv6 proxy and target",
            vec![
                "-x".into(),
                format!("http://alice:wonderland@[::1]:{}", http_v6.port()),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "http CONNECT",
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://alice:wonderland@{http}"),
                url4.clone(),
            ],
            "GET /four",
        ),
        (
            // CONNECT [::1]:port HTTP/1.1, the authority bracketed (RFC 9110 §9.3.6).
            "http CONNECT to an IPv6 literal",
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://alice:wonderland@{http}"),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "http CONNECT over IPv6 to an IPv6 literal",
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://alice:wonderland@[::1]:{}", http_v6.port()),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "socks5h to an IPv6 literal",
            vec![
                "--socks5-hostname".into(),
                socks.to_string(),
                "--proxy-user".into(),
                "alice:wonderland".into(),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "mixed as http CONNECT to an IPv6 literal",
            vec![
                "-p".into(),
                "-x".into(),
                format!("http://{mixed}"),
                "-g".into(),
                url6.clone(),
            ],
            "GET /six",
        ),
        (
            "mixed as http",
            vec!["-x".into(), format!("http://{mixed}"), url4.clone()],
            "GET /four",
        ),
        (
            "mixed as socks5h",
            vec![
                "--socks5-hostname".into(),
                mixed.to_string(),
                url_name.clone(),
            ],
            "GET /name",
        ),
        (
            "mixed as socks4",
            vec!["--socks4".into(), mixed.to_string(), url4.clone()],
            "GET /four",
        ),
    ];
    for (what, args, expected) in cases {
        let mut c = curl().unwrap();
        c.args(&args);
        let (code, out, err) = run(c).await;
        assert_eq!(code, 0, "{what}: curl failed: {err}");
        assert!(
            out.starts_with(&format!("origin saw: {expected} HTTP/1.1")),
            "{what}: {out}"
        );
    }
    // The origin saw origin-form requests without proxy credentials, with Via from the
    // http listener.
    for head in origin.heads() {
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("GET /"), "{head}");
        assert!(!lower.contains("proxy-authorization"), "{head}");
        assert!(!lower.contains("proxy-connection"), "{head}");
    }
    assert!(
        origin
            .heads()
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("\nvia: 1.1 ")),
        "Via added by the http listener"
    );

    // Without credentials: 407 with a Basic challenge naming the realm.
    let mut c = curl().unwrap();
    c.args([
        "-x",
        &format!("http://{http}"),
        "-o",
        "/dev/null",
        "-D",
        "-",
        &url4,
    ]);
    let (_, out, _) = run(c).await;
    assert!(out.starts_with("HTTP/1.1 407"), "{out}");
    assert!(
        out.contains("Proxy-Authenticate: Basic realm=\"test realm\"")
            || out.contains("proxy-authenticate: Basic realm=\"test realm\""),
        "{out}"
    );
    // Wrong SOCKS5 password: curl fails.
    let mut c = curl().unwrap();
    c.args([
        "--socks5",
        &socks.to_string(),
        "--proxy-user",
        "alice:nope",
        &url4,
    ]);
    assert_ne!(run(c).await.0, 0);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn mtgate_client_through_mtgate_listeners() {
    let echo = Echo::start().await;
    let server = server(config()).await;
    let socks = addr(&server, "socks", false);
    let http = addr(&server, "http", false);
    let mixed = addr(&server, "mixed", false);
    let urls = [
        format!("socks5h://alice:wonderland@{socks}"),
        format!(
            "socks5://alice:wonderland@[::1]:{}",
            addr(&server, "socks", true).port()
        ),
        format!("socks4a://{}", addr(&server, "socks-open", false)),
        format!("http://alice:wonderland@{http}"),
        format!("socks5h://{mixed}"),
        format!("http://{mixed}"),
    ];
    for url in urls {
        let proxy: Proxy = url.parse().unwrap();
        for target in [format!("localhost:{}", echo.v4.port()), echo.v6.to_string()] {
            if url.starts_with("socks4a") && target.starts_with('[') {
                continue; // SOCKS4 has no IPv6.
            }
            let mut stream =
                tokio::time::timeout(Duration::from_secs(5), proxy.connect(target.as_str()))
                    .await
                    .expect("in time")
                    .unwrap_or_else(|e| panic!("{url} to {target}: {e}"));
            stream.write_all(b"client crate").await.unwrap();
            let mut got = [0u8; 12];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&got, b"client crate", "{url} to {target}");
        }
    }
    // Typed refusals: wrong password, forbidden port on CONNECT.
    let wrong: Proxy = format!("socks5h://alice:nope@{socks}").parse().unwrap();
    assert!(wrong.connect(echo.v4).await.is_err());
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn udp_associate_relays_datagrams_to_an_echo_server() {
    let echo = udp_echo().await;
    let server = server(config()).await;
    for url in [
        format!(
            "socks5://alice:wonderland@{}",
            addr(&server, "socks", false)
        ),
        format!("socks5://{}", addr(&server, "mixed", false)),
    ] {
        let chain = Chain::from(url.parse::<Proxy>().unwrap());
        let udp = tokio::time::timeout(
            Duration::from_secs(5),
            chain.udp_associate(&ConnectOptions::default()),
        )
        .await
        .unwrap()
        .unwrap();
        for i in 0..3u8 {
            let payload = [b'u', b'd', b'p', i];
            udp.send_to(&payload, echo).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
                .await
                .expect("echo in time")
                .unwrap();
            assert_eq!(&buf[..n], &payload);
            assert_eq!(from, mtgate_client::Address::Socket(echo));
        }
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bind_accepts_one_connection_for_the_client() {
    let server = server(config()).await;
    let chain = Chain::from(
        format!("socks5://{}", addr(&server, "socks-open", false))
            .parse::<Proxy>()
            .unwrap(),
    );
    let listener = chain
        .bind("0.0.0.0:0", &ConnectOptions::default())
        .await
        .unwrap();
    let mtgate_client::Address::Socket(at) = listener.bound_addr().clone() else {
        panic!("BIND answers an address");
    };
    assert_ne!(at.port(), 0);
    let peer = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
        s.write_all(b"from the peer").await.unwrap();
        let mut back = [0u8; 9];
        s.read_exact(&mut back).await.unwrap();
        back
    });
    let (mut stream, _who) = listener.accept(Duration::from_secs(5)).await.unwrap();
    let mut got = [0u8; 13];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"from the peer");
    stream.write_all(b"to client").await.unwrap();
    assert_eq!(
        &tokio::time::timeout(Duration::from_secs(5), peer)
            .await
            .unwrap()
            .unwrap(),
        b"to client"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_listener_can_send_everything_through_an_upstream_proxy() {
    let echo = Echo::start().await;
    let first = server(config()).await;
    let upstream = addr(&first, "socks-open", false);
    let second = server(&format!(
        r#"
        [[socks5]]
        name = "chained"
        listen = ["127.0.0.1:0"]
        upstream = ["socks5h://{upstream}", "http://{http}"]
        rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
        "#,
        http = addr(&first, "mixed", false),
    ))
    .await;
    let proxy: Proxy = format!("socks5h://{}", addr(&second, "chained", false))
        .parse()
        .unwrap();
    for i in 0..4u8 {
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            proxy.connect(format!("localhost:{}", echo.v4.port()).as_str()),
        )
        .await
        .expect("in time")
        .unwrap();
        stream.write_all(&[i; 3]).await.unwrap();
        let mut got = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, [i; 3]);
    }
    second.shutdown(Duration::from_secs(1)).await;
    first.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn listeners_and_users_can_go_out_through_a_named_pool() {
    let echo = Echo::start().await;
    let first = server(config()).await;
    let upstream = addr(&first, "socks-open", false);
    let second = server(&format!(
        r#"
        [[pool]]
        name = "exits"
        strategy = "least-connections"
        servers = [{{ url = "socks5h://{upstream}", name = "exit-1" }}]
        [[pool]]
        name = "vip"
        servers = [{{ url = "http://{http}", name = "exit-vip" }}]
        [[socks5]]
        name = "front"
        listen = ["127.0.0.1:0"]
        upstream_pool = "exits"
        rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
        users = {{ alice = "alice-password", bob = {{ password = "bob-password", upstream_pool = "vip" }} }}
        "#,
        http = addr(&first, "mixed", false),
    ))
    .await;
    let front = addr(&second, "front", false);
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        let proxy: Proxy = format!("socks5h://{user}:{password}@{front}")
            .parse()
            .unwrap();
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            proxy.connect(format!("localhost:{}", echo.v4.port()).as_str()),
        )
        .await
        .expect("in time")
        .unwrap();
        stream.write_all(b"abc").await.unwrap();
        let mut got = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"abc");
    }
    let pools = &second.shared().pools;
    let served = |pool: &str| pools.get(pool).unwrap().pool.stats()[0].successes;
    assert_eq!((served("exits"), served("vip")), (1, 1));
    second.shutdown(Duration::from_secs(1)).await;
    first.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn an_unknown_upstream_pool_is_a_config_error() {
    let text = r#"
        [[socks5]]
        listen = ["127.0.0.1:0"]
        upstream_pool = "nowhere"
        "#;
    let raw = mtgate::config::parse_raw(text).unwrap();
    let error =
        mtgate::config::validate::validate(raw, mtgate::config::Origin::Embedded, &mut NoSecrets)
            .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no [[pool]] is named \"nowhere\""),
        "{error}"
    );
}

struct NoSecrets;
impl mtgate::config::SecretSource for NoSecrets {
    fn auto_secret(
        &mut self,
        _: &str,
        _: &str,
    ) -> Result<mtgate_proto::mtproto::secret::Secret, String> {
        Err("none".into())
    }
}
