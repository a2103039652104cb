//! `mtgate-bench rr-latency`: small request/response round trips on one connection, straight
//! to an echo server or through a SOCKS5 proxy, and their latency percentiles.
//!
//! Sends `--size` bytes, waits for the same bytes back, `--count` times in a row on one
//! connection (after `--warmup` uncounted rounds), and prints
//! `rounds=N p50_us=… p90_us=… p99_us=… max_us=… errors=0`. Every read and write has a
//! timeout; the first failure ends the run with an error.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::socks_connect_cmd::socks5_connect;

/// Options of `rr-latency`.
#[derive(Debug, Args)]
pub(crate) struct RrLatencyArgs {
    /// An echo server (what the proxy CONNECTs to, or what is dialled directly).
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,
    /// A SOCKS5 proxy without authentication to go through; direct when absent.
    #[arg(long, value_name = "ADDR")]
    proxy: Option<SocketAddr>,
    /// Counted round trips (at most 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Uncounted round trips first.
    #[arg(long, default_value_t = 20)]
    warmup: u32,
    /// Bytes per request (and per response), 1 to 65,536.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    size: u32,
    /// Longest wait for one response before the run fails.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    round_timeout: Duration,
}

async fn round(
    stream: &mut TcpStream,
    request: &[u8],
    response: &mut [u8],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    timeout(limit, stream.write_all(request))
        .await
        .context("write timed out")??;
    timeout(limit, stream.read_exact(response))
        .await
        .context("response timed out")??;
    anyhow::ensure!(response == request, "the echo returned different bytes");
    Ok(started.elapsed())
}

/// The value below which `fraction` of the sorted samples fall (nearest rank).
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) async fn run(args: RrLatencyArgs) -> anyhow::Result<()> {
    let mut stream = match args.proxy {
        Some(proxy) => socks5_connect(proxy, args.target)
            .await
            .with_context(|| format!("SOCKS5 CONNECT to {} via {proxy}", args.target))?,
        None => timeout(Duration::from_secs(5), TcpStream::connect(args.target))
            .await
            .context("connect timed out")??,
    };
    stream.set_nodelay(true)?;
    let size = args.size as usize;
    let request: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut response = vec![0u8; size];
    for _ in 0..args.warmup {
        round(&mut stream, &request, &mut response, args.round_timeout).await?;
    }
    let mut samples = Vec::with_capacity(args.count as usize);
    for _ in 0..args.count {
        samples.push(round(&mut stream, &request, &mut response, args.round_timeout).await?);
    }
    samples.sort_unstable();
    let us = |d: Duration| d.as_micros();
    println!(
        "rounds={} p50_us={} p90_us={} p99_us={} max_us={} errors=0",
        samples.len(),
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.90)),
        us(percentile(&samples, 0.99)),
        us(*samples.last().expect("count is at least 1")),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_millis(1));
    }
}
