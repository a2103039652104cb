//! The three measurements, run briefly against a fake DC, so that the load tool's plumbing is
//! proven before anyone trusts its figures.

mod support;

use std::time::Duration;

use mtgate_bench::client::{ClientConfig, Target};
use mtgate_bench::fake_dc::{EchoMode, FakeDc, FakeDcConfig};
use mtgate_bench::load::LoadTarget;
use mtgate_bench::load::handshakes::{self, HandshakeOptions};
use mtgate_bench::load::idle::{self, IdleOptions};
use mtgate_bench::load::throughput::{self, ThroughputOptions};
use mtgate_proto::mtproto::secret::{ClientSecret, Secret};

async fn raw_dc() -> mtgate_bench::fake_dc::FakeDcHandle {
    let config = FakeDcConfig {
        mode: EchoMode::Raw,
        ..FakeDcConfig::default()
    };
    FakeDc::bind_with(&["127.0.0.1:0".parse().unwrap()], config)
        .await
        .unwrap()
        .spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_verified_echo_bytes() {
    let dc = raw_dc().await;
    let target = LoadTarget {
        addr: dc.local_addrs()[0],
        client: ClientConfig::new(Target::Direct),
    };
    let options = ThroughputOptions {
        connections: 2,
        duration: Duration::from_millis(150),
        warmup: Duration::from_millis(50),
        frame_payload: 4096,
        window: 64 * 1024,
    };
    let result = throughput::run(&target, &options).await.unwrap();
    assert_eq!(result.failed_connections, 0, "{:?}", result.first_error);
    assert!(result.echoed_bytes > 0);
    assert!(result.mb_per_s() > 0.0);
    // Nothing lingers: every connection drained and closed (the DC notices within moments).
    let mut open = u64::MAX;
    for _ in 0..100 {
        open = dc.stats().snapshot().connections_open;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open, 0);
    dc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_through_a_fake_tls_proxy() {
    let dc = raw_dc().await;
    let key = Secret::from_bytes([7; 16]);
    let proxy = support::start_proxy(
        "127.0.0.1:0".parse().unwrap(),
        key.clone(),
        dc.local_addrs()[0],
    )
    .await;
    let secret = ClientSecret::FakeTls {
        secret: key,
        domain: "example.com".into(),
    };
    let target = LoadTarget {
        addr: proxy.addr,
        client: ClientConfig::new(Target::Proxy(secret)),
    };
    let options = ThroughputOptions {
        connections: 1,
        duration: Duration::from_millis(150),
        warmup: Duration::from_millis(50),
        frame_payload: 16 * 1024,
        window: 256 * 1024,
    };
    let result = throughput::run(&target, &options).await.unwrap();
    assert_eq!(result.failed_connections, 0, "{:?}", result.first_error);
    assert!(result.echoed_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_and_idle_connections_are_counted() {
    let dc = raw_dc().await;
    let target = LoadTarget {
        addr: dc.local_addrs()[0],
        client: ClientConfig::new(Target::Direct),
    };
    let options = HandshakeOptions {
        clients: 4,
        duration: Duration::from_millis(150),
        max_attempts: 10_000,
    };
    let result = handshakes::run(&target, &options).await;
    assert_eq!(result.failed, 0, "{:?}", result.first_error);
    assert!(result.completed > 0);
    assert_eq!(dc.stats().snapshot().connections_accepted, result.completed);

    let options = IdleOptions {
        connections: 50,
        concurrency: 8,
        settle: Duration::from_millis(10),
        ..IdleOptions::new(std::process::id())
    };
    let result = idle::run(&target, &options).await.unwrap();
    assert_eq!((result.opened, result.failed), (50, 0));
    assert!(result.rss_before_kib > 0 && result.rss_after_kib > 0);
    dc.stop().await;
}

#[tokio::test]
async fn a_closed_port_fails_fast_and_is_reported() {
    // Bind then drop to find a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = LoadTarget {
        addr,
        client: ClientConfig::new(Target::Direct),
    };
    let options = HandshakeOptions {
        clients: 1,
        duration: Duration::from_millis(50),
        max_attempts: 3,
    };
    let result = handshakes::run(&target, &options).await;
    assert_eq!(result.completed, 0);
    assert!(result.failed >= 1);
    assert!(result.first_error.unwrap().contains("connect"));
}
