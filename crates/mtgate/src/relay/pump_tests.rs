use super::*;
use crate::relay::filter::Passthrough;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn relays_both_ways_with_half_close_and_counts_bytes() {
    let (mut left, left_inner) = pair().await;
    let (right_inner, mut right) = pair().await;
    let pool = BufferPool::new(16 * 1024 + 64, 1 << 20, Gauge::default());
    let entry = ConnEntry::new_detached();
    let up = Counter::default();
    let down = Counter::default();
    let relay_task = async {
        let ctx = RelayContext {
            pool: &pool,
            entry: &entry,
            idle_timeout: Duration::from_secs(5),
            closes_after: false,
        };
        relay(
            &left_inner,
            &right_inner,
            (Passthrough::unlimited(), Some(&up)),
            (Passthrough::unlimited(), Some(&down)),
            ctx,
        )
        .await
    };
    let peers = async {
        let request = vec![7u8; 100_000];
        left.write_all(&request).await.unwrap();
        left.shutdown().await.unwrap();
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, request);
        // The other direction still works after the half-close.
        right.write_all(b"reply after half-close").await.unwrap();
        right.shutdown().await.unwrap();
        let mut reply = Vec::new();
        left.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply after half-close");
    };
    let (end, ()) = tokio::join!(relay_task, peers);
    assert!(matches!(end, RelayEnd::Finished), "{end:?}");
    assert_eq!((up.get(), down.get()), (100_000, 22));
    assert_eq!(pool.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed() {
    let (_left, left_inner) = pair().await;
    let (right_inner, _right) = pair().await;
    let pool = BufferPool::new(16 * 1024 + 64, 1 << 20, Gauge::default());
    let entry = ConnEntry::new_detached();
    entry.touch();
    let ctx = RelayContext {
        pool: &pool,
        entry: &entry,
        idle_timeout: Duration::from_secs(30),
        closes_after: false,
    };
    let started = Instant::now();
    let end = relay(
        &left_inner,
        &right_inner,
        (Passthrough::unlimited(), None),
        (Passthrough::unlimited(), None),
        ctx,
    )
    .await;
    assert!(matches!(end, RelayEnd::Idle));
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn a_byte_budget_ends_the_direction() {
    let (mut left, left_inner) = pair().await;
    let (right_inner, mut right) = pair().await;
    let pool = BufferPool::new(16 * 1024 + 64, 1 << 20, Gauge::default());
    let entry = ConnEntry::new_detached();
    let relay_task = async {
        let ctx = RelayContext {
            pool: &pool,
            entry: &entry,
            idle_timeout: Duration::from_secs(5),
            closes_after: false,
        };
        relay(
            &left_inner,
            &right_inner,
            (Passthrough::limited(10), None),
            (Passthrough::limited(0), None),
            ctx,
        )
        .await
    };
    let peers = async {
        left.write_all(&[1u8; 64]).await.unwrap();
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 10);
        let mut nothing = Vec::new();
        left.read_to_end(&mut nothing).await.unwrap();
        assert!(nothing.is_empty());
    };
    let (end, ()) = tokio::join!(relay_task, peers);
    assert!(matches!(end, RelayEnd::Finished));
}

#[tokio::test]
async fn a_relay_is_small() {
    // Every idle connection holds one: keep it to the filters plus a few hundred bytes.
    let (a, b) = pair().await;
    let pool = BufferPool::new(16 * 1024 + 64, 1 << 20, Gauge::default());
    let entry = ConnEntry::new_detached();
    let ctx = RelayContext {
        pool: &pool,
        entry: &entry,
        idle_timeout: Duration::from_secs(5),
        closes_after: false,
    };
    let relay = relay(
        &a,
        &b,
        (Passthrough::unlimited(), None),
        (Passthrough::unlimited(), None),
        ctx,
    );
    assert!(
        std::mem::size_of_val(&relay) < 1024,
        "{}",
        std::mem::size_of_val(&relay)
    );
}

#[tokio::test]
async fn the_last_fin_may_go_with_the_callers_close() {
    let (mut left, left_inner) = pair().await;
    let (right_inner, mut right) = pair().await;
    let relay_task = tokio::spawn(async move {
        let pool = BufferPool::new(16 * 1024 + 64, 1 << 20, Gauge::default());
        let entry = ConnEntry::new_detached();
        let ctx = RelayContext {
            pool: &pool,
            entry: &entry,
            idle_timeout: Duration::from_secs(5),
            closes_after: true,
        };
        let end = relay(
            &left_inner,
            &right_inner,
            (Passthrough::unlimited(), None),
            (Passthrough::unlimited(), None),
            ctx,
        )
        .await;
        // The sockets close here, as every caller that sets `closes_after` does.
        drop((left_inner, right_inner));
        end
    });
    left.write_all(b"request").await.unwrap();
    left.shutdown().await.unwrap();
    let mut got = Vec::new();
    right.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"request");
    right.write_all(b"reply after half-close").await.unwrap();
    right.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), left.read_to_end(&mut reply))
        .await
        .expect("the FIN arrives with the close")
        .unwrap();
    assert_eq!(reply, b"reply after half-close");
    assert!(matches!(relay_task.await.unwrap(), RelayEnd::Finished));
}
