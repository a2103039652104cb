//! Pools over in-process proxies, on tokio's paused clock: failover, ejection with backoff,
//! health transitions, retry schedules, statistics.

mod support;

use std::time::Duration;

use mtgate_client::pool::{
    Backoff, EjectionPolicy, HealthCheck, MemberState, Probe, RetryPolicy, Strategy, Upstream,
};
use mtgate_client::{Address, Chain, ConnectError, ConnectOptions, Pool, Proxy};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use support::*;
use tokio::time::{Instant, sleep};

fn chain(p: &FakeProxy) -> Chain {
    Chain::from(p.url("socks5").parse::<Proxy>().unwrap())
}

fn dead_chain(addr: std::net::SocketAddr) -> Chain {
    Chain::from(format!("socks5://{addr}").parse::<Proxy>().unwrap())
}

#[tokio::test(start_paused = true)]
async fn failover_hides_dead_and_frozen_members_then_ejects_them() {
    let echo = echo_server().await;
    let good = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let frozen = spawn_proxy(Mode::Silent).await;
    let dead = closed_port().await;
    let pool = Pool::builder()
        .upstream(Upstream::new(dead_chain(dead)).name("dead"))
        .upstream(Upstream::new(chain(&frozen)).name("frozen"))
        .upstream(Upstream::new(chain(&good)).name("good"))
        .strategy(Strategy::RoundRobin)
        .connect_options(ConnectOptions::with_timeout(Duration::from_secs(1)))
        .ejection(EjectionPolicy {
            consecutive_failures: 2,
            ..Default::default()
        })
        .build();
    for _ in 0..20 {
        let mut s = pool
            .connect(echo)
            .await
            .expect("the good member carries every connect");
        assert_eq!(s.info().pool_member.as_deref(), Some("good"));
        assert_eq!(round_trip(&mut s, b"x").await, b"x");
    }
    let stats = pool.stats();
    assert!(
        matches!(stats[0].state, MemberState::Ejected { .. }),
        "{:?}",
        stats[0]
    );
    assert!(
        matches!(stats[1].state, MemberState::Ejected { .. }),
        "{:?}",
        stats[1]
    );
    assert_eq!(stats[0].last_error.as_deref(), Some("connect/refused"));
    assert_eq!(stats[1].last_error.as_deref(), Some("negotiate/timeout"));
    // Each bad member cost at most the ejection threshold before being skipped.
    assert_eq!((stats[0].failures, stats[1].failures), (2, 2));
    assert_eq!(stats[2].successes, 20);
    assert_eq!(stats[2].in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_between_rounds_follows_full_jitter_schedule() {
    let a = closed_port().await;
    let b = closed_port().await;
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(300),
    };
    let pool = Pool::builder()
        .proxy(dead_chain(a))
        .proxy(dead_chain(b))
        .retry(RetryPolicy {
            max_attempts: 7,
            backoff,
            deadline: None,
        })
        .ejection(EjectionPolicy {
            consecutive_failures: 100,
            ..Default::default()
        })
        .seed(42)
        .build();
    let started = Instant::now();
    let err = pool.connect("127.0.0.1:9").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ConnectError::Exhausted { attempts: 7, .. }),
        "{err}"
    );
    assert_eq!(err.reason(), "refused");
    // Rounds of two attempts: 2 + 2 + 2 + 1, with a pause before rounds 1, 2 and 3 drawn from
    // the same seeded generator.
    let mut rng = SmallRng::seed_from_u64(42);
    let expected: Duration = (0..3).map(|n| backoff.delay(n, &mut rng)).sum();
    // tokio's timer has millisecond resolution: each of the three pauses may round up.
    assert!(
        took >= expected && took <= expected + Duration::from_millis(3),
        "{took:?} vs {expected:?}"
    );
    assert!(took <= Duration::from_millis(100 + 200 + 300));
    let failures: u64 = pool.stats().iter().map(|s| s.failures).sum();
    assert_eq!(failures, 7);
}

#[tokio::test(start_paused = true)]
async fn overall_retry_deadline_is_honoured() {
    let frozen = spawn_proxy(Mode::Silent).await;
    let pool = Pool::builder()
        .proxy(chain(&frozen))
        .connect_options(ConnectOptions::with_timeout(Duration::from_secs(2)))
        .retry(RetryPolicy {
            max_attempts: 100,
            deadline: Some(Duration::from_secs(5)),
            ..Default::default()
        })
        .ejection(EjectionPolicy {
            consecutive_failures: 1000,
            ..Default::default()
        })
        .build();
    let started = Instant::now();
    let err = pool.connect(echo_server().await).await.unwrap_err();
    assert!(matches!(err, ConnectError::Exhausted { .. }));
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn passive_ejection_doubles_and_ends() {
    let echo = echo_server().await;
    let flaky = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder()
        .proxy(chain(&flaky))
        .retry(RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .ejection(EjectionPolicy {
            consecutive_failures: 2,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(60),
            ..Default::default()
        })
        .build();
    let remaining = |pool: &Pool| match pool.stats()[0].state {
        MemberState::Ejected { remaining } => Some(remaining),
        _ => None,
    };
    flaky.set_healthy(false);
    for _ in 0..2 {
        pool.connect(echo).await.unwrap_err();
    }
    assert_eq!(remaining(&pool), Some(Duration::from_secs(10)));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(remaining(&pool), None, "back after the ejection time");
    for _ in 0..2 {
        pool.connect(echo).await.unwrap_err();
    }
    assert_eq!(
        remaining(&pool),
        Some(Duration::from_secs(20)),
        "second ejection is twice as long"
    );
    assert_eq!(pool.stats()[0].times_ejected, 2);
    sleep(Duration::from_secs(20)).await;
    flaky.set_healthy(true);
    pool.connect(echo).await.unwrap();
    let stats = &pool.stats()[0];
    assert_eq!(
        (stats.state, stats.times_ejected, stats.consecutive_failures),
        (MemberState::Healthy, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn active_checks_take_members_down_and_back_up() {
    let echo = echo_server().await;
    let member = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let spare = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder()
        .upstream(Upstream::new(chain(&member)).name("member"))
        .upstream(Upstream::new(chain(&spare)).name("spare").backup())
        .build();
    let check = HealthCheck {
        interval: Duration::from_secs(1),
        rise: 2,
        fall: 3,
        jitter: Duration::ZERO,
        ..HealthCheck::connect_to(Address::Socket(echo))
    };
    let task = pool.spawn_health_checks(check);
    let state = |pool: &Pool| pool.stats()[0].state;
    sleep(Duration::from_millis(3500)).await;
    assert_eq!(state(&pool), MemberState::Healthy);
    member.set_healthy(false);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        state(&pool),
        MemberState::Healthy,
        "two failures are below the fall threshold"
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state(&pool),
        MemberState::Down,
        "third failure marks it down"
    );
    // While down, the backup carries the traffic.
    let s = pool.connect(echo).await.unwrap();
    assert_eq!(s.info().pool_member.as_deref(), Some("spare"));
    drop(s);
    member.set_healthy(true);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state(&pool),
        MemberState::Down,
        "one success is below the rise threshold"
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state(&pool),
        MemberState::Healthy,
        "second success brings it back"
    );
    let s = pool.connect(echo).await.unwrap();
    assert_eq!(s.info().pool_member.as_deref(), Some("member"));
    task.stop();
}

#[tokio::test(start_paused = true)]
async fn http_probe_checks_status_through_the_tunnel() {
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut n = 0;
        while let Ok((mut s, _)) = origin.accept().await {
            n += 1;
            let status = if n == 1 { "200 OK" } else { "503 Busy" };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").as_bytes())
                .await;
        }
    });
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder().proxy(chain(&proxy)).build();
    let check = HealthCheck {
        probe: Probe::Http {
            host: "origin.test".into(),
            path: "/health".into(),
            expect: 200..=299,
        },
        rise: 1,
        fall: 1,
        jitter: Duration::ZERO,
        ..HealthCheck::connect_to(Address::Socket(origin_addr))
    };
    pool.check_now(&check).await;
    assert_eq!(pool.stats()[0].state, MemberState::Healthy);
    pool.check_now(&check).await;
    let stats = &pool.stats()[0];
    assert_eq!(stats.state, MemberState::Down);
    assert_eq!(stats.last_error.as_deref(), Some("check/http/status 503"));
}

#[tokio::test]
async fn target_failures_are_not_retried_or_counted() {
    let a = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let b = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder().proxy(chain(&a)).proxy(chain(&b)).build();
    let err = pool.connect(closed_port().await).await.unwrap_err();
    assert_eq!(
        err.socks5_reply(),
        Some(mtgate_proto::socks5::Reply::ConnectionRefused)
    );
    assert_eq!(
        a.requested().len() + b.requested().len(),
        1,
        "no retry after a target refusal"
    );
    assert!(pool.stats().iter().all(|s| s.failures == 0));
}

#[tokio::test]
async fn in_flight_counts_open_streams_and_least_in_flight_uses_it() {
    let echo = echo_server().await;
    let a = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let b = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder()
        .upstream(Upstream::new(chain(&a)).name("a"))
        .upstream(Upstream::new(chain(&b)).name("b"))
        .strategy(Strategy::LeastInFlight)
        .build();
    let first = pool.connect(echo).await.unwrap();
    let second = pool.connect(echo).await.unwrap();
    assert_ne!(first.info().pool_member, second.info().pool_member);
    let third = pool.connect(echo).await.unwrap();
    let in_flight: Vec<u32> = pool.stats().iter().map(|s| s.in_flight).collect();
    assert_eq!(in_flight.iter().sum::<u32>(), 3);
    drop((first, second, third));
    assert!(pool.stats().iter().all(|s| s.in_flight == 0));
    assert!(pool.stats().iter().all(|s| s.ewma_latency.is_some()));
}

#[tokio::test]
async fn runtime_add_disable_remove() {
    let echo = echo_server().await;
    let a = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let b = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let pool = Pool::builder()
        .upstream(Upstream::new(chain(&a)).name("a"))
        .build();
    pool.add(Upstream::new(chain(&b)).name("b"));
    assert!(pool.set_enabled("a", false));
    for _ in 0..3 {
        assert_eq!(
            pool.connect(echo)
                .await
                .unwrap()
                .info()
                .pool_member
                .as_deref(),
            Some("b")
        );
    }
    assert_eq!(pool.stats()[0].state, MemberState::Disabled);
    assert!(pool.remove("b"));
    assert!(!pool.remove("b"));
    assert!(matches!(
        pool.connect(echo).await.unwrap_err(),
        ConnectError::EmptyPool
    ));
}

#[tokio::test]
async fn backend_pools_connect_to_member_destinations() {
    let one = echo_server().await;
    let two = echo_server().await;
    let pool = Pool::builder()
        .upstream(Upstream::backend(Chain::direct(), Address::Socket(one)))
        .upstream(Upstream::backend(Chain::direct(), Address::Socket(two)))
        .build();
    let s1 = pool.connect_any().await.unwrap();
    let s2 = pool.connect_any().await.unwrap();
    let mut peers = [s1.info().peer_addr.unwrap(), s2.info().peer_addr.unwrap()];
    peers.sort();
    let mut expected = [one, two];
    expected.sort();
    assert_eq!(peers, expected);
}
