//! Interop against real servers nobody here wrote: Debian's dante (danted), microsocks and
//! tinyproxy. Started by `tests/interop/client/run.sh`, which passes their addresses in
//! environment variables; ignored by a plain `cargo test`.
//!
//! | variable | value |
//! |---|---|
//! | `MTGATE_INTEROP_DANTE` | `host:port` of danted, SOCKS5 with username/password |
//! | `MTGATE_INTEROP_DANTE_CREDS` | `user:password` for dante |
//! | `MTGATE_INTEROP_MICROSOCKS` | `host:port` of microsocks without auth |
//! | `MTGATE_INTEROP_MICROSOCKS_AUTH` | `user:password@host:port` of microsocks with auth |
//! | `MTGATE_INTEROP_TINYPROXY` | `user:password@host:port` of tinyproxy with BasicAuth |
//! | `MTGATE_INTEROP_POOL` | `host:port/pid,host:port/pid,host:port/pid`: three microsocks to kill, freeze, keep |

mod support;

use std::time::Duration;

use mtgate_client::pool::{
    EjectionPolicy, HealthCheck, MemberState, RetryPolicy, Strategy, Upstream,
};
use mtgate_client::{Address, Chain, ConnectError, ConnectOptions, Pool, Proxy};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, sleep};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run tests/interop/client/run.sh"))
}

fn url(scheme: &str, var: &str) -> String {
    format!("{scheme}://{}", env(var))
}

fn dante(scheme: &str) -> Proxy {
    let (user, pass) = env("MTGATE_INTEROP_DANTE_CREDS")
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .unwrap();
    format!("{scheme}://{}", env("MTGATE_INTEROP_DANTE"))
        .parse::<Proxy>()
        .unwrap()
        .with_credentials(user, pass)
}

fn options() -> ConnectOptions {
    ConnectOptions::with_timeout(Duration::from_secs(5))
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn dante_connect_with_username_password() {
    let echo = echo_server().await;
    for scheme in ["socks5", "socks5h"] {
        let mut s = dante(scheme)
            .connect_with(("localhost", echo.port()), &options())
            .await
            .unwrap();
        assert_eq!(round_trip(&mut s, b"dante").await, b"dante");
    }
    let wrong = dante("socks5").with_credentials("mtgate-interop", "wrong-password");
    let err = wrong.connect_with(echo, &options()).await.unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
    let anonymous: Proxy = format!("socks5://{}", env("MTGATE_INTEROP_DANTE"))
        .parse()
        .unwrap();
    let err = anonymous.connect_with(echo, &options()).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoAcceptableMethod), "{err}");
    let err = dante("socks5")
        .connect_with(closed_port().await, &options())
        .await
        .unwrap_err();
    assert!(err.socks5_reply().is_some(), "{err}");
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn dante_udp_associate() {
    let echo = udp_echo().await;
    let udp = Chain::from(dante("socks5"))
        .udp_associate(&options())
        .await
        .unwrap();
    for payload in [&b"one"[..], b"two"] {
        udp.send_to(payload, echo).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (payload, Address::Socket(echo)));
    }
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn dante_bind() {
    use tokio::io::AsyncWriteExt;
    let listener = Chain::from(dante("socks5"))
        .bind(Address::unspecified(), &options())
        .await
        .unwrap();
    let Address::Socket(bound) = listener.bound_addr().clone() else {
        panic!("bound to a name")
    };
    let peer = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(bound).await.unwrap();
        s.write_all(b"bind peer").await.unwrap();
        s
    });
    let (mut stream, _from) = listener.accept(Duration::from_secs(5)).await.unwrap();
    let mut got = [0u8; 9];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"bind peer");
    drop(peer.await.unwrap());
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn microsocks_with_and_without_auth() {
    let echo = echo_server().await;
    let open: Proxy = url("socks5h", "MTGATE_INTEROP_MICROSOCKS").parse().unwrap();
    let mut s = open
        .connect_with(("localhost", echo.port()), &options())
        .await
        .unwrap();
    assert_eq!(round_trip(&mut s, b"micro").await, b"micro");
    let authed: Proxy = url("socks5", "MTGATE_INTEROP_MICROSOCKS_AUTH")
        .parse()
        .unwrap();
    let mut s = authed.connect_with(echo, &options()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"micro auth").await, b"micro auth");
    let wrong = authed
        .clone()
        .with_credentials(authed.credentials().unwrap().username.clone(), "nope");
    let err = wrong.connect_with(echo, &options()).await.unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn tinyproxy_connect_with_basic_auth_and_early_bytes() {
    const BANNER: &[u8] = b"220 banner sent before any request\r\n";
    let banner = banner_server(BANNER).await;
    let proxy: Proxy = url("http", "MTGATE_INTEROP_TINYPROXY").parse().unwrap();
    let mut s = proxy.connect_with(banner, &options()).await.unwrap();
    let mut got = vec![0u8; BANNER.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, BANNER);
    assert_eq!(round_trip(&mut s, b"tiny").await, b"tiny");
    let anonymous = Proxy::new(proxy.kind(), proxy.host(), proxy.port());
    let err = anonymous
        .connect_with(banner, &options())
        .await
        .unwrap_err();
    match err {
        ConnectError::Http {
            status: 407,
            challenge,
            ..
        } => {
            assert!(
                challenge
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .starts_with("basic")
            );
        }
        other => panic!("expected 407, got {other}"),
    }
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn two_hop_chains_through_different_implementations() {
    let echo = echo_server().await;
    let chains = [
        Chain::new([
            url("http", "MTGATE_INTEROP_TINYPROXY")
                .parse::<Proxy>()
                .unwrap(),
            dante("socks5"),
        ]),
        Chain::new([
            dante("socks5h"),
            url("socks5", "MTGATE_INTEROP_MICROSOCKS").parse().unwrap(),
        ]),
        Chain::new([
            url("socks5h", "MTGATE_INTEROP_MICROSOCKS")
                .parse::<Proxy>()
                .unwrap(),
            url("http", "MTGATE_INTEROP_TINYPROXY").parse().unwrap(),
        ]),
    ];
    for chain in chains {
        let mut s = chain
            .connect_with(echo, &options())
            .await
            .unwrap_or_else(|e| panic!("{chain}: {e}"));
        assert_eq!(
            round_trip(&mut s, b"two hops").await,
            b"two hops",
            "{chain}"
        );
        assert_eq!(s.info().hops.len(), 2);
    }
}

fn signal(pid: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test]
#[ignore = "needs tests/interop/client/run.sh"]
async fn pool_failover_when_one_proxy_is_killed_and_one_frozen() {
    let echo = echo_server().await;
    let members: Vec<(String, String)> = env("MTGATE_INTEROP_POOL")
        .split(',')
        .map(|m| {
            m.split_once('/')
                .map(|(a, p)| (a.to_owned(), p.to_owned()))
                .unwrap()
        })
        .collect();
    assert_eq!(members.len(), 3);
    let ejection = EjectionPolicy {
        consecutive_failures: 2,
        base_time: Duration::from_secs(3),
        ..Default::default()
    };
    let mut builder = Pool::builder()
        .strategy(Strategy::RoundRobin)
        .connect_options(ConnectOptions::with_timeout(Duration::from_millis(500)))
        .retry(RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        })
        .ejection(ejection);
    for (i, (addr, _)) in members.iter().enumerate() {
        builder = builder.upstream(
            Upstream::new(format!("socks5://{addr}").parse::<Proxy>().unwrap())
                .name(format!("m{i}")),
        );
    }
    let pool = builder.build();
    let check = HealthCheck {
        interval: Duration::from_millis(500),
        timeout: Duration::from_millis(400),
        rise: 2,
        fall: 2,
        jitter: Duration::ZERO,
        ..HealthCheck::connect_to(Address::Socket(echo))
    };
    let _task = pool.spawn_health_checks(check);

    let mut errors = 0;
    let run = |pool: Pool, n: usize| async move {
        let mut failed = 0;
        for _ in 0..n {
            match pool.connect(echo).await {
                Ok(mut s) => assert_eq!(round_trip(&mut s, b"p").await, b"p"),
                Err(_) => failed += 1,
            }
        }
        failed
    };
    errors += run(pool.clone(), 30).await;
    assert_eq!(errors, 0, "all members up");

    signal(&members[0].1, "-KILL");
    signal(&members[1].1, "-STOP");
    let frozen_at = Instant::now();
    // Watch for the frozen member leaving the rotation while traffic runs.
    let watched = pool.clone();
    let watcher = tokio::spawn(async move {
        while frozen_at.elapsed() < Duration::from_secs(5) {
            let state = watched.stats()[1].state;
            if matches!(state, MemberState::Ejected { .. } | MemberState::Down) {
                return Some(frozen_at.elapsed());
            }
            sleep(Duration::from_millis(10)).await;
        }
        None
    });
    errors += run(pool.clone(), 60).await;
    // Retries go to the live member within one connect: no caller-visible error.
    assert_eq!(errors, 0, "failover hides the dead and the frozen member");
    // Out within the ejection threshold (2 failures × 500 ms attempt timeout) or the health
    // checks' fall (2 × 500 ms interval, 400 ms timeout), whichever comes first.
    let ejected_after = watcher
        .await
        .unwrap()
        .expect("frozen member never left the rotation");
    eprintln!("frozen member out of rotation after {ejected_after:?}");
    assert!(
        ejected_after <= Duration::from_millis(2000),
        "{ejected_after:?}"
    );
    let stats = pool.stats();
    assert!(
        matches!(
            stats[0].state,
            MemberState::Ejected { .. } | MemberState::Down
        ),
        "{stats:?}"
    );
    assert!(
        stats[1].failures <= 4,
        "the frozen member cost at most a few attempts: {stats:?}"
    );

    signal(&members[1].1, "-CONT");
    let resumed_at = Instant::now();
    loop {
        if pool.stats()[1].state == MemberState::Healthy {
            break;
        }
        assert!(
            resumed_at.elapsed() < Duration::from_secs(5),
            "not revived: {:?}",
            pool.stats()[1]
        );
        sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "resumed member healthy again after {:?}",
        resumed_at.elapsed()
    );
    let before = pool.stats()[1].successes;
    errors += run(pool.clone(), 30).await;
    assert_eq!(errors, 0);
    assert!(
        pool.stats()[1].successes > before,
        "the revived member carries traffic again"
    );
    for member in pool.stats() {
        eprintln!("{member:?}");
    }
}
