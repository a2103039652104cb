//! Memory pressure closes the idlest connections, and shutdown drains within its grace period.

mod common;

use std::time::Duration;

use common::*;
use mtgate_proto::mtproto::secret::ClientSecret;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_closes_the_idlest_connections_first() {
    let options = Options {
        extra: "[limits]\nbuffer_size = \"32KiB\"\nbuffered_bytes = \"128KiB\"",
        ..Options::default()
    };
    let fixture = Fixture::start(options).await;
    // Readers that never read: the DC's echo fills their sockets and the relay's buffers.
    // Each one ends up holding a buffer in both directions: the proxy cannot write the echo to
    // the client, so the DC stops reading, so the proxy cannot write to the DC either.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let mut conn = connect(
            fixture.proxy,
            &client_config(ClientSecret::Padded(key(ALICE))),
        )
        .await;
        let big = vec![1u8; 60_000];
        for _ in 0..1000 {
            if tokio::time::timeout(Duration::from_millis(300), conn.send_frame(&big))
                .await
                .is_err()
            {
                break;
            }
        }
        stuck.push(conn);
    }
    let shared = fixture.server.shared().clone();
    eventually("evictions to bring buffered bytes under the cap", || {
        shared.metrics.evictions.get() > 0 && shared.pool.held() <= shared.pool.cap()
    })
    .await;
    // A fresh, active client still gets through.
    let mut fresh = connect(fixture.proxy, &client_config(ee(ALICE))).await;
    fresh.echo(&[3; 32]).await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_then_closes_within_the_grace_period() {
    let fixture = Fixture::start(Options::default()).await;
    let mut conn = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(ALICE))),
    )
    .await;
    conn.echo(&[1; 16]).await.unwrap();
    let Fixture {
        server,
        dc: _dc,
        website: _website,
        proxy,
        ..
    } = fixture;
    let started = Instant::now();
    let shutdown = tokio::spawn(server.shutdown(Duration::from_millis(700)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are no longer accepted…
    let refused = TcpStream::connect(proxy).await;
    assert!(refused.is_err() || read_until_close(&mut refused.unwrap()).await.is_empty());
    // …while the open session still works during the grace period.
    conn.echo(&[2; 16]).await.unwrap();
    shutdown.await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        conn.echo(&[3; 16]).await.is_err(),
        "closed after the grace period"
    );
}
