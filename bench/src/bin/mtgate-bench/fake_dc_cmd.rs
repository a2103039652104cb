//! `mtgate-bench fake-dc`: run a fake DC until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use mtgate_bench::fake_dc::{EchoMode, FakeDc, FakeDcConfig};
use mtgate_bench::limits::raise_nofile_limit;
use tokio::signal::unix::{SignalKind, signal};

/// Options of `fake-dc`.
#[derive(Debug, Args)]
pub(crate) struct FakeDcArgs {
    /// Address to listen on (repeatable); port 0 picks a free port. Each bound address is
    /// printed on stdout as `listening ADDR`.
    #[arg(long = "listen", required = true, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Echo decrypted bytes without parsing frames (for throughput runs).
    #[arg(long)]
    raw_echo: bool,
    /// Close a connection silent for this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = mtgate_proto::mtproto::transport::DEFAULT_MAX_FRAME)]
    max_frame: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = 30_000)]
    max_connections: usize,
}

pub(crate) async fn run(args: FakeDcArgs) -> anyhow::Result<()> {
    if let Err(error) = raise_nofile_limit() {
        tracing::warn!(%error, "cannot raise the open-files limit");
    }
    let config = FakeDcConfig {
        mode: if args.raw_echo {
            EchoMode::Raw
        } else {
            EchoMode::Frames
        },
        idle_timeout: args.idle_timeout,
        max_frame: args.max_frame,
        max_connections: args.max_connections,
        ..FakeDcConfig::default()
    };
    let dc = FakeDc::bind_with(&args.listen, config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        for addr in dc.local_addrs() {
            writeln!(stdout, "listening {addr}")?;
        }
        stdout.flush()?;
    }
    let dc = dc.spawn();
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("SIGINT handler")?,
        _ = terminate.recv() => {}
    }
    let stats = dc.stats().snapshot();
    dc.stop().await;
    eprintln!(
        "fake DC: {} connections, {} frames and {} bytes echoed, {} bad headers, {} failed sessions",
        stats.connections_accepted,
        stats.frames_echoed,
        stats.bytes_echoed,
        stats.headers_rejected,
        stats.sessions_failed
    );
    Ok(())
}
