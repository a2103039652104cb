//! `mtgate-bench socks-connect`: new SOCKS5 connections per second through a proxy.
//!
//! Starts a local sink that accepts and closes, then runs `--clients` loops that each open a
//! TCP connection to the proxy, negotiate no-auth, CONNECT to the sink, wait for the reply and
//! close. Counts completed CONNECTs per second after a short warm-up. Every step has a timeout;
//! a failed attempt is counted as an error, never retried in place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use mtgate_bench::limits::raise_nofile_limit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Options of `socks-connect`.
#[derive(Debug, Args)]
pub(crate) struct SocksConnectArgs {
    /// The SOCKS5 proxy (no authentication).
    #[arg(long, value_name = "ADDR")]
    proxy: SocketAddr,
    /// Concurrent client loops.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long to count, after a 0.5 s warm-up.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

/// Budget of each step of an attempt.
const STEP: Duration = Duration::from_secs(5);

async fn one(proxy: SocketAddr, sink: SocketAddr) -> std::io::Result<()> {
    socks5_connect(proxy, sink).await.map(drop)
}

/// Opens a TCP connection to `proxy`, negotiates no authentication and CONNECTs to `target`
/// (IPv4 or IPv6), every step under a 5 s timeout. Returns the tunnel, ready for data.
pub(crate) async fn socks5_connect(
    proxy: SocketAddr,
    target: SocketAddr,
) -> std::io::Result<TcpStream> {
    let mut s = timeout(STEP, TcpStream::connect(proxy)).await??;
    let _ = s.set_nodelay(true);
    // Greeting, then the request once the method is chosen (some servers drop pipelined
    // bytes).
    timeout(STEP, s.write_all(&[0x05, 0x01, 0x00])).await??;
    let mut method = [0u8; 2];
    timeout(STEP, s.read_exact(&mut method)).await??;
    if method != [0x05, 0x00] {
        return Err(std::io::ErrorKind::ConnectionRefused.into());
    }
    let mut request = vec![0x05, 0x01, 0x00];
    match target {
        SocketAddr::V4(v4) => {
            request.push(0x01);
            request.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            request.push(0x04);
            request.extend_from_slice(&v6.ip().octets());
        }
    }
    request.extend_from_slice(&target.port().to_be_bytes());
    timeout(STEP, s.write_all(&request)).await??;
    let mut head = [0u8; 4];
    timeout(STEP, s.read_exact(&mut head)).await??;
    if head[..2] != [0x05, 0x00] {
        return Err(std::io::ErrorKind::ConnectionRefused.into());
    }
    // The rest of the reply: the bound address (IPv4, IPv6 or a name) and its port.
    let rest = match head[3] {
        0x01 => 4 + 2,
        0x04 => 16 + 2,
        0x03 => {
            let mut len = [0u8; 1];
            timeout(STEP, s.read_exact(&mut len)).await??;
            usize::from(len[0]) + 2
        }
        _ => return Err(std::io::ErrorKind::InvalidData.into()),
    };
    let mut bound = vec![0u8; rest];
    timeout(STEP, s.read_exact(&mut bound)).await??;
    Ok(s)
}

pub(crate) async fn run(args: SocksConnectArgs) -> anyhow::Result<()> {
    if let Err(error) = raise_nofile_limit() {
        tracing::warn!(%error, "cannot raise the open-files limit");
    }
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let sink_task = tokio::spawn(async move {
        while let Ok((s, _)) = sink.accept().await {
            drop(s);
        }
    });
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_millis(500) + args.duration;
    let mut loops = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (done, errors) = (done.clone(), errors.clone());
        loops.push(tokio::spawn(async move {
            while Instant::now() < end {
                match one(args.proxy, sink_addr).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start_done, start_errors) = (done.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    tokio::time::sleep(args.duration).await;
    let counted = done.load(Ordering::Relaxed) - start_done;
    let failed = errors.load(Ordering::Relaxed) - start_errors;
    for l in loops {
        let _ = timeout(STEP * 3, l).await;
    }
    sink_task.abort();
    println!(
        "connects_per_sec={:.0} errors={failed}",
        counted as f64 / args.duration.as_secs_f64()
    );
    Ok(())
}
