//! Pools changed while they serve: drain, weights, connection caps, slow start, the retry
//! budget, keyed stickiness and the failure records operators read.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_client::pool::{
    EjectionPolicy, MemberState, RetryBudget, RetryPolicy, Strategy, Upstream,
};
use mtgate_client::{Address, Chain, ConnectError, ConnectOptions, Pool};
use support::*;

fn backend(name: &str, addr: SocketAddr) -> Upstream {
    Upstream::backend(Chain::direct(), Address::Socket(addr)).name(name)
}

fn member_of(stream: &mtgate_client::ProxyStream) -> String {
    stream.info().pool_member.clone().unwrap_or_default()
}

#[tokio::test]
async fn draining_member_gets_no_new_connections_and_is_removed_when_its_last_closes() {
    let one = echo_server().await;
    let two = echo_server().await;
    let pool = Pool::builder()
        .upstream(backend("a", one))
        .upstream(backend("b", two))
        .build();
    let held = loop {
        let s = pool.connect_any().await.unwrap();
        if member_of(&s) == "a" {
            break s;
        }
    };
    assert!(pool.remove_after_drain("a"));
    assert_eq!(pool.stats()[0].state, MemberState::Draining);
    for _ in 0..6 {
        let mut s = pool.connect_any().await.unwrap();
        assert_eq!(member_of(&s), "b");
        assert_eq!(round_trip(&mut s, b"z").await, b"z");
    }
    // The open connection still works while its member drains.
    let mut held = held;
    assert_eq!(round_trip(&mut held, b"still").await, b"still");
    assert_eq!(pool.member_names(), ["a", "b"]);
    drop(held);
    assert_eq!(pool.member_names(), ["b"], "gone once drained");
}

#[tokio::test]
async fn undrained_member_takes_traffic_again() {
    let one = echo_server().await;
    let pool = Pool::builder().upstream(backend("a", one)).build();
    assert!(pool.set_draining("a", true));
    assert!(matches!(
        pool.connect_any().await.unwrap_err(),
        ConnectError::EmptyPool
    ));
    assert!(pool.set_draining("a", false));
    assert!(pool.connect_any().await.is_ok());
    assert!(!pool.set_draining("nobody", true));
}

#[tokio::test]
async fn connection_caps_are_never_exceeded() {
    let one = echo_server().await;
    let two = echo_server().await;
    let pool = Pool::builder()
        .upstream(backend("a", one).max_connections(2))
        .upstream(backend("b", two).max_connections(1))
        .build();
    let open: Vec<_> = futures_join(&pool, 3).await;
    let mut names: Vec<_> = open.iter().map(member_of).collect();
    names.sort();
    assert_eq!(names, ["a", "a", "b"]);
    assert!(matches!(
        pool.connect_any().await.unwrap_err(),
        ConnectError::Saturated
    ));
    drop(open);
    assert!(pool.connect_any().await.is_ok());
}

async fn futures_join(pool: &Pool, n: usize) -> Vec<mtgate_client::ProxyStream> {
    let mut open = Vec::new();
    for _ in 0..n {
        open.push(pool.connect_any().await.unwrap());
    }
    open
}

#[tokio::test]
async fn weight_changes_apply_to_the_next_picks() {
    let one = echo_server().await;
    let two = echo_server().await;
    let pool = Pool::builder()
        .upstream(backend("a", one))
        .upstream(backend("b", two))
        .strategy(Strategy::Weighted)
        .build();
    assert!(pool.set_weight("a", 3));
    let mut a = 0;
    for _ in 0..40 {
        if member_of(&pool.connect_any().await.unwrap()) == "a" {
            a += 1;
        }
    }
    assert_eq!(a, 30, "smooth weighted round-robin is exact");
    assert_eq!(pool.stats()[0].weight, 3);
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_recovered_member_up() {
    let steady = echo_server().await;
    let dead = closed_port().await;
    let pool = Pool::builder()
        .upstream(backend("steady", steady))
        .upstream(backend("comeback", dead))
        .strategy(Strategy::Weighted)
        .slow_start(Duration::from_secs(100))
        .ejection(EjectionPolicy {
            consecutive_failures: 1,
            base_time: Duration::from_secs(10),
            ..Default::default()
        })
        .build();
    // Never ejected yet: full weight.
    assert_eq!(pool.stats()[1].effective_weight, 1.0);
    for _ in 0..4 {
        let _ = pool.connect_any().await;
    }
    assert!(matches!(pool.stats()[1].state, MemberState::Ejected { .. }));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(pool.stats()[1].state, MemberState::Healthy);
    // Just back: a small share of its weight, growing linearly.
    let w0 = pool.stats()[1].effective_weight;
    assert!(w0 < 0.1, "{w0}");
    tokio::time::advance(Duration::from_secs(50)).await;
    let w50 = pool.stats()[1].effective_weight;
    assert!((0.45..0.55).contains(&w50), "{w50}");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(pool.stats()[1].effective_weight, 1.0);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_limits_extra_attempts_against_a_sick_pool() {
    let dead: Vec<_> = [
        closed_port().await,
        closed_port().await,
        closed_port().await,
    ]
    .into();
    let mut builder = Pool::builder()
        .retry(RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        })
        .ejection(EjectionPolicy {
            consecutive_failures: u32::MAX,
            ..Default::default()
        })
        .retry_budget(RetryBudget {
            ratio: 0.1,
            min_per_second: 0,
            window: Duration::from_secs(10),
        });
    for (i, addr) in dead.iter().enumerate() {
        builder = builder.upstream(backend(&format!("d{i}"), *addr));
    }
    let pool = builder.build();
    for _ in 0..50 {
        assert!(pool.connect_any().await.is_err());
    }
    let (_, failures) = pool.recent_failures();
    // 50 first attempts plus at most 10 % of 50 retries.
    assert!((50..=55).contains(&failures), "{failures}");
}

#[tokio::test]
async fn failures_are_recorded_with_member_stage_kind_and_attempt() {
    let dead = closed_port().await;
    let live = echo_server().await;
    let pool = Pool::builder()
        .upstream(backend("dead", dead))
        .upstream(backend("live", live))
        .strategy(Strategy::FirstAvailable)
        .connect_options(ConnectOptions::with_timeout(Duration::from_secs(2)))
        .build();
    let s = pool.connect_any().await.unwrap();
    assert_eq!(member_of(&s), "live");
    let (records, total) = pool.recent_failures();
    assert_eq!(total, 1);
    let record = &records[0];
    assert_eq!(
        (
            record.member.as_str(),
            record.stage,
            record.kind.as_str(),
            record.attempt
        ),
        ("dead", "connect", "refused", 1)
    );
    assert!(record.at.elapsed().unwrap() < Duration::from_secs(60));
}

#[tokio::test]
async fn hash_keys_stick_to_their_member_and_fail_over_when_it_is_out() {
    let addrs = [
        echo_server().await,
        echo_server().await,
        echo_server().await,
    ];
    for strategy in [Strategy::Hash, Strategy::ConsistentHash] {
        let mut builder = Pool::builder().strategy(strategy);
        for (i, addr) in addrs.iter().enumerate() {
            builder = builder.upstream(backend(&format!("m{i}"), *addr));
        }
        let pool = builder.build();
        let mut owners = Vec::new();
        for client in 0..30u8 {
            let key = [10, 0, 0, client];
            let first = member_of(&pool.connect_any_keyed(&key).await.unwrap());
            let again = member_of(&pool.connect_any_keyed(&key).await.unwrap());
            assert_eq!(first, again, "{strategy:?}: sticky");
            owners.push(first);
        }
        let distinct: std::collections::HashSet<_> = owners.iter().collect();
        assert_eq!(distinct.len(), 3, "{strategy:?}: 30 keys reach all members");
        // Take m1 out: its keys move, the others stay.
        pool.set_enabled("m1", false);
        for (client, owner) in owners.iter().enumerate() {
            let now = member_of(
                &pool
                    .connect_any_keyed(&[10, 0, 0, client as u8])
                    .await
                    .unwrap(),
            );
            if owner == "m1" {
                assert_ne!(now, "m1");
            } else {
                assert_eq!(&now, owner, "{strategy:?}");
            }
        }
    }
}
