//! `mtgate-bench load`: the three measurements against one proxy (or a fake DC directly).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use mtgate_bench::client::{ClientConfig, Target};
use mtgate_bench::limits::raise_nofile_limit;
use mtgate_bench::link::{ensure_loopback, parse_secret};
use mtgate_bench::load::LoadTarget;
use mtgate_bench::load::handshakes::{self, HandshakeOptions};
use mtgate_bench::load::idle::{self, IdleOptions};
use mtgate_bench::load::report::Report;
use mtgate_bench::load::throughput::{self, ThroughputOptions};
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::ProtoTag;

/// Options of `load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The proxy (or, with --direct, the fake DC); 127.0.0.0/8 or ::1 only.
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,
    /// The proxy secret, bare (hex or base64url; plain, dd or ee) or as a tg:// or t.me link.
    #[arg(
        long,
        env = "MTGATE_BENCH_SECRET",
        hide_env_values = true,
        required_unless_present = "direct",
        conflicts_with = "direct"
    )]
    secret: Option<String>,
    /// Connect straight to a fake DC without a secret (the ceiling of every figure).
    #[arg(long)]
    direct: bool,
    /// DC index put into the obfuscated2 header.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true)]
    dc: i16,
    /// Transport for plain secrets and --direct (dd and ee always use padded).
    #[arg(long, value_enum, default_value_t = Transport::Intermediate)]
    transport: Transport,
    /// With ee, send no ChangeCipherSpec before the first data record (as TelethonFakeTLS).
    #[arg(long)]
    no_ccs: bool,
    /// Deadline of each connect, handshake, read and write.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Throughput: connection counts to measure (repeatable).
    #[arg(long = "connections", default_values_t = [1usize, 8])]
    connections: Vec<usize>,
    /// Throughput: measured time per connection count.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Throughput: streaming time before measuring.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Throughput: payload bytes per frame (a multiple of 4).
    #[arg(long, default_value_t = 16 * 1024)]
    frame_size: usize,
    /// Handshakes: concurrent clients.
    #[arg(long, default_value_t = 8)]
    handshake_clients: usize,
    /// Handshakes: how long to run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    handshake_duration: Duration,
    /// Idle memory: the process to measure (the proxy); without it that figure is skipped.
    #[arg(long, value_name = "PID")]
    measure_pid: Option<u32>,
    /// Idle memory: connections to open.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Idle memory: connections opened at once.
    #[arg(long, default_value_t = 64)]
    idle_concurrency: usize,
    /// Idle memory: wait this long with every connection open before reading the RSS (so the
    /// target's memory can be inspected by hand meanwhile).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    idle_settle: Duration,
    /// Idle memory: pause after closing the idle connections, so that the target has torn
    /// them down before the next measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    idle_cooldown: Duration,
    /// Measurements to leave out (repeatable).
    #[arg(long, value_enum)]
    skip: Vec<Measurement>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Abridged,
    Intermediate,
    Padded,
}

impl From<Transport> for ProtoTag {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Abridged => Self::Abridged,
            Transport::Intermediate => Self::Intermediate,
            Transport::Padded => Self::Padded,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Measurement {
    Throughput,
    Handshakes,
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned lines for people.
    Text,
    /// `key=value` lines for scripts.
    Kv,
}

pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let target = load_target(&args)?;
    if args.frame_size == 0 || !args.frame_size.is_multiple_of(4) {
        bail!("--frame-size must be a positive multiple of 4");
    }
    if args.connections.iter().any(|&c| c == 0 || c > 1024) {
        bail!("--connections must be between 1 and 1024");
    }
    if args.handshake_clients == 0 || args.handshake_clients > 1024 {
        bail!("--handshake-clients must be between 1 and 1024");
    }
    if let Err(error) = raise_nofile_limit() {
        tracing::warn!(%error, "cannot raise the open-files limit");
    }
    let mut report = Report {
        target: Some(target.addr),
        mode: target.client.target.mode_name().to_owned(),
        ..Report::default()
    };
    let wants = |m: Measurement| !args.skip.contains(&m);

    // Memory first, while the measured process is fresh from its start.
    if wants(Measurement::Idle) {
        match args.measure_pid {
            Some(pid) => {
                let options = IdleOptions {
                    connections: args.idle_connections,
                    concurrency: args.idle_concurrency.max(1),
                    settle: args.idle_settle,
                    ..IdleOptions::new(pid)
                };
                match idle::run(&target, &options).await {
                    Ok(result) => report.idle = Some(result),
                    Err(error) => report.failures.push(("idle".into(), error.to_string())),
                }
                if wants(Measurement::Throughput) || wants(Measurement::Handshakes) {
                    tokio::time::sleep(args.idle_cooldown).await;
                }
            }
            None => report
                .failures
                .push(("idle".into(), "no --measure-pid given".into())),
        }
    }
    if wants(Measurement::Throughput) {
        for &connections in &args.connections {
            let options = ThroughputOptions {
                connections,
                duration: args.duration,
                warmup: args.warmup,
                frame_payload: args.frame_size,
                ..ThroughputOptions::default()
            };
            match throughput::run(&target, &options).await {
                Ok(mut result) => {
                    result.first_error = result.first_error.map(|e| with_hint(&e));
                    report.throughput.push(result);
                }
                Err(error) => report.failures.push((
                    format!("throughput_c{connections}"),
                    with_hint(&error.to_string()),
                )),
            }
        }
    }
    if wants(Measurement::Handshakes) {
        let options = HandshakeOptions {
            clients: args.handshake_clients,
            duration: args.handshake_duration,
            ..HandshakeOptions::default()
        };
        report.handshakes = Some(handshakes::run(&target, &options).await);
    }

    match args.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Kv => print!("{}", report.to_kv()),
    }
    Ok(())
}

fn load_target(args: &LoadArgs) -> anyhow::Result<LoadTarget> {
    let addr = ensure_loopback(args.target)?;
    let target = match (&args.secret, args.direct) {
        (_, true) => Target::Direct,
        (Some(secret), false) => Target::Proxy(parse_secret(secret).context("--secret")?),
        (None, false) => bail!("give --secret or --direct"),
    };
    let client = ClientConfig {
        dc: DcId(args.dc),
        transport: args.transport.into(),
        change_cipher_spec: !args.no_ccs,
        timeout: args.timeout,
        ..ClientConfig::new(target)
    };
    Ok(LoadTarget { addr, client })
}

/// Echo mismatches during throughput runs usually mean a fake DC in frame mode.
fn with_hint(error: &str) -> String {
    if error.contains("echo differs") {
        format!("{error} (throughput needs the fake DC in --raw-echo mode)")
    } else {
        error.to_owned()
    }
}
