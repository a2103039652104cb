//! The examples, compiled and run against in-process proxies and servers.

#![allow(unreachable_pub)]

mod support;

#[path = "../examples/chain.rs"]
mod chain;
#[path = "../examples/framing.rs"]
mod framing;
#[path = "../examples/pool_failover.rs"]
mod pool_failover;
#[path = "../examples/single_proxy.rs"]
mod single_proxy;
#[path = "../examples/udp.rs"]
mod udp;

use mtgate_client::Address;
use mtgate_client::pool::MemberState;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_origin() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn single_proxy_example() {
    let origin = http_origin().await;
    let proxy = spawn_proxy(Mode::Http {
        auth: None,
        early: Vec::new(),
    })
    .await;
    let out = single_proxy::run(&proxy.url("http"), &origin.to_string())
        .await
        .unwrap();
    assert!(out.starts_with("HTTP 200 (5 body bytes)"), "{out}");
}

#[tokio::test]
async fn chain_example() {
    let echo = echo_server().await;
    let a = spawn_proxy(Mode::Http {
        auth: None,
        early: Vec::new(),
    })
    .await;
    let b = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let urls = [a.url("http"), b.url("socks5h")];
    let (line, hops) = chain::run(&urls, &echo.to_string()).await.unwrap();
    assert_eq!(line, "hello through the chain\n");
    assert_eq!(hops, urls);
}

#[tokio::test]
async fn pool_failover_example() {
    let echo = echo_server().await;
    let good = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let dead = closed_port().await;
    let urls = [format!("socks5://{dead}"), good.url("socks5")];
    let (failed, stats) = pool_failover::run(&urls, &echo.to_string(), 10)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    assert!(
        matches!(
            stats[0].state,
            MemberState::Ejected { .. } | MemberState::Down
        ),
        "{stats:?}"
    );
    assert_eq!(stats[1].successes, 10);
}

#[tokio::test]
async fn udp_example() {
    let echo = udp_echo().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let (answer, from) = udp::run(&proxy.url("socks5"), &echo.to_string(), b"dgram")
        .await
        .unwrap();
    assert_eq!(
        (answer.as_slice(), from),
        (&b"dgram"[..], Address::Socket(echo))
    );
}

#[tokio::test]
async fn framing_example() {
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let big = vec![1u8; 300_000];
    let packets: [&[u8]; 3] = [b"a", b"", &big];
    let back = framing::run(&proxy.url("socks5"), &echo.to_string(), &packets)
        .await
        .unwrap();
    assert_eq!(back, packets.map(<[u8]>::to_vec));
}
