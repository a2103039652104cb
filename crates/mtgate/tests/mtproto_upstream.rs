//! DC connections through an upstream pool (`telegram.upstream_pool`): a SOCKS5 exit, and a
//! `direct` backup the pool fails over to when the exit dies.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use mtgate::server::Server;
use mtgate_bench::client::{MtprotoConnection, is_echo_of};
use mtgate_bench::fake_dc::FakeDc;
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::secret::ClientSecret;

/// A second mtgate with an open SOCKS5 listener on loopback: the exit the DC traffic takes.
async fn socks_exit() -> (Server, SocketAddr) {
    let exit = Server::start(config(
        r#"
        [metrics]
        listen = "127.0.0.1:0"
        [[socks5]]
        name = "exit"
        listen = ["127.0.0.1:0"]
        rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
        "#,
    ))
    .await
    .unwrap();
    let addr = exit.local_addrs("exit")[0];
    (exit, addr)
}

fn proxy_config(dc: SocketAddr, servers: &str) -> String {
    format!(
        r#"
        [metrics]
        listen = "127.0.0.1:0"
        [telegram]
        dc_overrides = {{ "2" = ["{dc}"] }}
        upstream_pool = "exits"
        connect_timeout = "3s"
        [[pool]]
        name = "exits"
        strategy = "first-available"
        servers = [{servers}]
        retry = {{ attempts = 2, backoff_base = "10ms", backoff_cap = "20ms" }}
        [[mtproto]]
        name = "tg"
        listen = ["127.0.0.1:0"]
        modes = ["classic"]
        [mtproto.masking]
        enabled = false
        [mtproto.users]
        alice = "{ALICE}"
        "#
    )
}

/// One client: a frame out, its echo back.
async fn echo_once(proxy: SocketAddr) -> bool {
    let mut config = client_config(ClientSecret::Plain(key(ALICE)));
    config.dc = DcId(2);
    let Ok(mut conn) = MtprotoConnection::connect(proxy, &config).await else {
        return false;
    };
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 13) as u8).collect();
    if conn.send_frame(&payload).await.is_err() {
        return false;
    }
    match tokio::time::timeout(Duration::from_secs(5), conn.recv_frame()).await {
        Ok(Ok(echoed)) => is_echo_of(conn.transport(), &payload, &echoed),
        _ => false,
    }
}

/// The exit's request counter lines (counted when a tunnel ends; waits up to 5 s for one).
async fn exit_requests(exit: &Server) -> String {
    for _ in 0..50 {
        let text = http_get(exit.metrics_addr().unwrap(), "/metrics").await;
        let lines = text
            .lines()
            .filter(|l| l.starts_with("mtgate_proxy_requests_total{") && l.contains("\"exit\""))
            .collect::<Vec<_>>()
            .join("\n");
        if !lines.is_empty() {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    String::new()
}

#[tokio::test]
async fn dc_connections_go_out_through_the_pool() {
    let dc = FakeDc::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .spawn();
    let (exit, exit_addr) = socks_exit().await;
    let proxy = Server::start(config(&proxy_config(
        dc.local_addrs()[0],
        &format!(r#"{{ url = "socks5://{exit_addr}", name = "exit" }}"#),
    )))
    .await
    .unwrap();
    let listen = proxy.local_addrs("tg")[0];

    assert!(echo_once(listen).await, "echo through the SOCKS5 exit");
    // A live session counts against its pool member until it ends.
    let in_flight = || proxy.shared().pools.get("exits").unwrap().pool.stats()[0].in_flight;
    let mut config = client_config(ClientSecret::Plain(key(ALICE)));
    config.dc = DcId(2);
    let mut open = MtprotoConnection::connect(listen, &config).await.unwrap();
    open.send_frame(b"0123456789abcdef").await.unwrap();
    open.recv_frame().await.unwrap();
    assert_eq!(in_flight(), 1);
    drop(open);
    eventually("the session's count released", || in_flight() == 0).await;
    let counted = exit_requests(&exit).await;
    assert!(
        counted.contains("command=\"connect\""),
        "the exit saw the DC connection: {counted:?}"
    );

    // Without the exit there is no way out: the pool never falls back to a direct connection.
    exit.shutdown(Duration::from_millis(200)).await;
    let accepted = dc.stats().snapshot().connections_accepted;
    assert!(!echo_once(listen).await, "no echo once the exit is gone");
    assert_eq!(
        dc.stats().snapshot().connections_accepted,
        accepted,
        "nothing reached the DC directly"
    );
    proxy.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_direct_backup_takes_over_when_the_exit_dies() {
    let dc = FakeDc::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .spawn();
    let (exit, exit_addr) = socks_exit().await;
    let servers = format!(
        r#"{{ url = "socks5://{exit_addr}", name = "exit" }}, {{ url = "direct", backup = true }}"#
    );
    let proxy = Server::start(config(&proxy_config(dc.local_addrs()[0], &servers)))
        .await
        .unwrap();
    let listen = proxy.local_addrs("tg")[0];
    assert!(echo_once(listen).await);
    assert!(!exit_requests(&exit).await.is_empty());

    exit.shutdown(Duration::from_millis(200)).await;
    for i in 0..5 {
        assert!(echo_once(listen).await, "client {i} after the exit died");
    }
    proxy.shutdown(Duration::from_millis(200)).await;
}

#[test]
fn pools_that_cannot_carry_dc_connections_are_config_errors() {
    let parse = |servers: &str, mode: &str| {
        let text = format!(
            r#"
            [telegram]
            upstream_pool = "exits"
            mode = "{mode}"
            [[pool]]
            name = "exits"
            servers = [{servers}]
            [[mtproto]]
            listen = ["127.0.0.1:0"]
            modes = ["classic"]
            [mtproto.masking]
            enabled = false
            [mtproto.users]
            alice = "{ALICE}"
            "#
        );
        mtgate::config::Config::parse(&text, mtgate::config::Origin::Embedded, &mut NoSecrets)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    parse(r#"{ url = "socks5://127.0.0.1:1080" }"#, "direct").unwrap();
    let backend = parse(r#"{ url = "tcp://127.0.0.1:80" }"#, "direct").unwrap_err();
    assert!(backend.contains("backend server"), "{backend}");
    let tls = parse(r#"{ url = "https://127.0.0.1:8443" }"#, "direct").unwrap_err();
    assert!(tls.contains("https://"), "{tls}");
    let middle = parse(r#"{ url = "direct" }"#, "middle").unwrap_err();
    assert!(middle.contains("middle"), "{middle}");
}

struct NoSecrets;
impl mtgate::config::SecretSource for NoSecrets {
    fn auto_secret(
        &mut self,
        _: &str,
        _: &str,
    ) -> Result<mtgate_proto::mtproto::secret::Secret, String> {
        Err("explicit secrets only".into())
    }
}
