//! A pool with health checks and failover: many connects, then the per-member statistics.
//!
//! ```sh
//! cargo run -p mtgate-client --example pool_failover -- 20 127.0.0.1:7 socks5://127.0.0.1:1080 socks5://127.0.0.1:1081
//! ```

use std::error::Error;
use std::time::Duration;

use mtgate_client::pool::{EjectionPolicy, HealthCheck, MemberStats, RetryPolicy, Strategy};
use mtgate_client::{Address, ConnectOptions, Pool, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Makes `count` echo round trips to `target` through a pool of `urls`; returns the number
/// of failed round trips and the final statistics.
pub async fn run(
    urls: &[String],
    target: &str,
    count: usize,
) -> Result<(usize, Vec<MemberStats>), Box<dyn Error>> {
    let mut builder = Pool::builder()
        .strategy(Strategy::RoundRobin)
        .connect_options(ConnectOptions::with_timeout(Duration::from_secs(2)))
        .retry(RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        })
        .ejection(EjectionPolicy {
            consecutive_failures: 2,
            base_time: Duration::from_secs(5),
            ..Default::default()
        });
    for url in urls {
        builder = builder.proxy(url.parse::<Proxy>()?);
    }
    let pool = builder.build();
    let check = HealthCheck {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        ..HealthCheck::connect_to(target.parse::<Address>()?)
    };
    let _checks = pool.spawn_health_checks(check);
    let mut failed = 0;
    for i in 0..count {
        let attempt = async {
            let mut stream = pool.connect(target).await?;
            let line = format!("ping {i}\n");
            stream.write_all(line.as_bytes()).await?;
            let mut echo = vec![0u8; line.len()];
            stream.read_exact(&mut echo).await?;
            Ok::<_, Box<dyn Error>>(echo == line.as_bytes())
        };
        if !matches!(attempt.await, Ok(true)) {
            failed += 1;
        }
    }
    Ok((failed, pool.stats()))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, target, urls @ ..] = args.as_slice() else {
        eprintln!("usage: pool_failover COUNT HOST:PORT PROXY_URL [PROXY_URL ...]");
        std::process::exit(64);
    };
    let (failed, stats) = run(urls, target, count.parse()?).await?;
    println!("{failed} of {count} round trips failed");
    for member in stats {
        println!(
            "{:<40} {:?} ok={} failed={} in_flight={} ewma={:?} last_error={:?}",
            member.name,
            member.state,
            member.successes,
            member.failures,
            member.in_flight,
            member.ewma_latency,
            member.last_error
        );
    }
    Ok(())
}
