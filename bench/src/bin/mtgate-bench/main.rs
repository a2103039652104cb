//! `mtgate-bench`: a fake Telegram DC and a load tool for MTProto proxies.
//!
//! ```text
//! mtgate-bench fake-dc --listen 127.0.0.1:0 --listen [::1]:0 [--raw-echo]
//! mtgate-bench fake-middle --listen 127.0.0.1:0 --secret-file proxy-secret
//! mtgate-bench load --target 127.0.0.1:4433 --secret 'tg://proxy?…&secret=ee…' --measure-pid 1234
//! mtgate-bench load --target 127.0.0.1:40000 --direct
//! mtgate-bench echo-server --listen 127.0.0.1:0
//! mtgate-bench tcp-load --target 127.0.0.1:8080 --mode connections --kill-pid 4321
//! mtgate-bench socks-connect --proxy 127.0.0.1:1080 --clients 16 --duration 5s
//! mtgate-bench rr-latency --target 127.0.0.1:7000 --proxy 127.0.0.1:1080 --count 1000 --size 64
//! ```

mod fake_dc_cmd;
mod fake_middle_cmd;
mod load_cmd;
mod rr_latency_cmd;
mod socks_connect_cmd;
mod tcp_cmd;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Benchmark MTProto proxies against a fake Telegram DC.
#[derive(Debug, Parser)]
#[command(name = "mtgate-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a fake DC that echoes what proxies relay to it.
    FakeDc(fake_dc_cmd::FakeDcArgs),
    /// Run a fake Telegram middle proxy that echoes RPC_PROXY_REQ payloads.
    FakeMiddle(fake_middle_cmd::FakeMiddleArgs),
    /// Measure throughput, handshakes per second and memory per idle connection.
    Load(Box<load_cmd::LoadArgs>),
    /// Run a plain TCP echo server (a backend for load-balancer runs).
    EchoServer(tcp_cmd::EchoArgs),
    /// Load a TCP balancer or backend: connections per second or throughput.
    TcpLoad(tcp_cmd::LoadArgs),
    /// Measure new SOCKS5 connections per second through a proxy.
    SocksConnect(socks_connect_cmd::SocksConnectArgs),
    /// Measure request/response latency (p50/p99) on one connection, direct or via SOCKS5.
    RrLatency(rr_latency_cmd::RrLatencyArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::FakeDc(args) => fake_dc_cmd::run(args).await,
            Command::FakeMiddle(args) => fake_middle_cmd::run(args).await,
            Command::Load(args) => load_cmd::run(*args).await,
            Command::EchoServer(args) => tcp_cmd::echo(args).await,
            Command::TcpLoad(args) => tcp_cmd::load(args).await,
            Command::SocksConnect(args) => socks_connect_cmd::run(args).await,
            Command::RrLatency(args) => rr_latency_cmd::run(args).await,
        }
    })
}
