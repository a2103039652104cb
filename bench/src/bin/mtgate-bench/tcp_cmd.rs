//! `mtgate-bench echo-server` and `mtgate-bench tcp-load`: plain TCP backends and a load
//! generator for load balancers (new connections per second, throughput, and the time from a
//! backend's death to the last client-visible error).

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use mtgate_bench::limits::raise_nofile_limit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Options of `echo-server`.
#[derive(Debug, Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on; printed on stdout as `listening ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Echoes every connection until killed.
pub(crate) async fn echo(args: EchoArgs) -> anyhow::Result<()> {
    let _ = raise_nofile_limit();
    let listener = TcpListener::bind(args.listen).await.context("bind")?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (mut reader, mut writer) = stream.split();
            let copying = tokio::io::copy(&mut reader, &mut writer);
            let _ = tokio::time::timeout(Duration::from_secs(600), copying).await;
        });
    }
}

/// What `tcp-load` measures.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LoadMode {
    /// Connect, send a byte, read it back, close; as fast as possible.
    Connections,
    /// Long connections streaming data through the echo and back.
    Throughput,
}

/// Options of `tcp-load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Where to connect (a balancer, or a backend directly).
    #[arg(long)]
    target: SocketAddr,
    /// What to measure.
    #[arg(long, value_enum, default_value = "connections")]
    mode: LoadMode,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// SIGKILL this process part-way through (a backend), and report the time from its
    /// death to the last failed connection.
    #[arg(long)]
    kill_pid: Option<i32>,
    /// When to kill it, from the start.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    kill_after: Duration,
}

/// Runs the load and prints one `result …` line.
pub(crate) async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let _ = raise_nofile_limit();
    let started = Instant::now();
    let deadline = started + args.duration;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // Time of the last failure, in microseconds since the start (0: none).
    let last_failure = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (done, failed, last_failure) = (done.clone(), failed.clone(), last_failure.clone());
        let (target, mode) = (args.target, args.mode);
        workers.spawn(async move {
            match mode {
                LoadMode::Connections => {
                    while Instant::now() < deadline {
                        let ok = tokio::time::timeout(Duration::from_secs(2), one_exchange(target))
                            .await
                            .is_ok_and(|r| r.is_ok());
                        if ok {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let at = started.elapsed().as_micros() as u64;
                            last_failure.fetch_max(at, Ordering::Relaxed);
                        }
                    }
                }
                LoadMode::Throughput => {
                    if stream(target, deadline, &done).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut killed_at = None;
    if let Some(pid) = args.kill_pid {
        tokio::time::sleep(args.kill_after).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .context("kill")?;
        killed_at = Some(started.elapsed());
    }
    while workers.join_next().await.is_some() {}
    let seconds = args.duration.as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    match args.mode {
        LoadMode::Connections => {
            let rate = done.load(Ordering::Relaxed) as f64 / seconds;
            let mut line = format!("result connections_per_second={rate:.0} failed={failed}");
            if let Some(killed) = killed_at {
                let last = Duration::from_micros(last_failure.load(Ordering::Relaxed));
                let to_zero = last.saturating_sub(killed);
                line.push_str(&format!(" errors_after_kill_ms={}", to_zero.as_millis()));
            }
            println!("{line}");
        }
        LoadMode::Throughput => {
            let mb = done.load(Ordering::Relaxed) as f64 / seconds / 1e6;
            println!("result megabytes_per_second={mb:.1} failed={failed}");
        }
    }
    Ok(())
}

async fn one_exchange(target: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    stream.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    Ok(())
}

/// Writes 64 KiB chunks and reads the echo until the deadline, counting echoed bytes.
async fn stream(target: SocketAddr, deadline: Instant, done: &AtomicU64) -> std::io::Result<()> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let chunk = vec![0x5au8; 64 * 1024];
    let writing = async move {
        while Instant::now() < deadline {
            writer.write_all(&chunk).await?;
        }
        writer.shutdown().await
    };
    let reading = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 || Instant::now() >= deadline {
                return Ok::<_, std::io::Error>(());
            }
            done.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let limit = deadline + Duration::from_secs(5);
    let both = async { tokio::try_join!(writing, reading) };
    match tokio::time::timeout_at(limit, both).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Ok(()),
    }
}
