//! `mtgate-bench fake-middle`: run a fake Telegram middle proxy until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mtgate_bench::fake_middle::{FakeMiddle, FakeMiddleConfig};
use mtgate_bench::limits::raise_nofile_limit;
use mtgate_proto::mtproto::middle::secret::ProxySecret;
use tokio::signal::unix::{SignalKind, signal};

/// Options of `fake-middle`.
#[derive(Debug, Args)]
pub(crate) struct FakeMiddleArgs {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on
    /// stdout as `listening ADDR`.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The proxy secret shared with the proxy (the file given to it as proxy-secret).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// Print every ad tag seen, once, on stdout as `ad_tag HEX`.
    #[arg(long)]
    print_ad_tags: bool,
}

pub(crate) async fn run(args: FakeMiddleArgs) -> anyhow::Result<()> {
    if let Err(error) = raise_nofile_limit() {
        tracing::warn!(%error, "cannot raise the open-files limit");
    }
    let bytes = std::fs::read(&args.secret_file)
        .with_context(|| format!("reading {}", args.secret_file.display()))?;
    let secret = ProxySecret::new(bytes)?;
    let me = FakeMiddle::start(args.listen, FakeMiddleConfig::new(secret)).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening {}", me.addr())?;
        stdout.flush()?;
    }
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("SIGINT handler")?,
        _ = terminate.recv() => {}
    }
    let seen = me.stats().snapshot();
    me.stop().await;
    if args.print_ad_tags {
        let mut tags: Vec<String> = seen
            .requests
            .iter()
            .map(|r| {
                r.ad_tag
                    .map_or("none".into(), |t| mtgate_proto::hex::encode(&t))
            })
            .collect();
        tags.sort();
        tags.dedup();
        let mut stdout = std::io::stdout().lock();
        for tag in tags {
            writeln!(stdout, "ad_tag {tag}")?;
        }
        stdout.flush()?;
    }
    eprintln!(
        "fake middle proxy: {} connections, {} handshakes ({} refused), {} requests, {} closes, {} pings",
        seen.connections,
        seen.handshakes,
        seen.refused,
        seen.requests.len(),
        seen.closed.len(),
        seen.pings
    );
    Ok(())
}
