//! Active health checks: each member is probed through its own chain towards a target the
//! user chooses (never a built-in public host).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::address::Address;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};

use super::PoolInner;
use super::failures::FailureRecord;
use super::member::{Member, Transition};
use crate::connector::ConnectOptions;
use crate::handshake::Deadline;
use crate::http_request;

/// What a check does once the tunnel is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The tunnel opening (every proxy handshake succeeding) is enough.
    Connect,
    /// `GET path` with `Host: host` through the tunnel must answer a status in `expect`.
    Http {
        /// The `Host` header.
        host: String,
        /// The request path, e.g. `/health`.
        path: String,
        /// Accepted statuses, e.g. `200..=299`.
        expect: RangeInclusive<u16>,
    },
    /// A WebSocket upgrade of `path` with `Host: host` must get a valid `101`; the probe then
    /// closes with 1000.
    WebSocket {
        /// The `Host` header.
        host: String,
        /// The request path, e.g. `/ws`.
        path: String,
    },
}

/// Active health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Where to connect through each member. `None`: each member's own destination (for
    /// backend pools).
    pub target: Option<Address>,
    /// What to check once connected.
    pub probe: Probe,
    /// Time between rounds. Default 10 s.
    pub interval: Duration,
    /// Budget for one check, connect and probe together. Default 5 s.
    pub timeout: Duration,
    /// Successes in a row that bring a down member back (and end a passive ejection). Default 2.
    pub rise: u32,
    /// Failures in a row that mark a member down. Default 3.
    pub fall: u32,
    /// A random extra pause before each round, up to this, so that many pools (or many
    /// proxies) do not probe in lockstep. Default zero.
    pub jitter: Duration,
}

impl HealthCheck {
    /// Checks that a tunnel to `target` opens through each member, with the default timings.
    pub fn connect_to(target: Address) -> Self {
        Self {
            target: Some(target),
            probe: Probe::Connect,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            rise: 2,
            fall: 3,
            jitter: Duration::ZERO,
        }
    }
}

/// The background checker; dropping it (or [`HealthTask::stop`]) stops the checks.
#[derive(Debug)]
pub struct HealthTask {
    handle: JoinHandle<()>,
}

impl HealthTask {
    pub(crate) fn spawn(pool: Arc<PoolInner>, check: HealthCheck) -> Self {
        let handle = tokio::spawn(async move {
            loop {
                let round_started = Instant::now();
                run_round(&pool, &check).await;
                let jitter = if check.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    let nanos = check.jitter.as_nanos().min(u128::from(u64::MAX)) as u64;
                    Duration::from_nanos(rand::random_range(0..=nanos))
                };
                let next = round_started + check.interval + jitter;
                tokio::time::sleep_until(next).await;
            }
        });
        Self { handle }
    }

    /// Stops the checks.
    pub fn stop(self) {
        self.handle.abort();
    }
}

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Checks every enabled member once, concurrently, and applies the results.
pub(crate) async fn run_round(pool: &Arc<PoolInner>, check: &HealthCheck) {
    let members = pool.members.load_full();
    let mut checks = JoinSet::new();
    for member in members.iter().filter(|m| m.is_enabled()).cloned() {
        let check = check.clone();
        let options = pool.options.clone();
        checks.spawn(async move {
            let outcome = check_one(&member, &check, &options).await;
            (member, outcome)
        });
    }
    while let Some(joined) = checks.join_next().await {
        let Ok((member, outcome)) = joined else {
            continue;
        };
        if let Err(error) = &outcome {
            pool.failures.push(FailureRecord {
                at: std::time::SystemTime::now(),
                member: member.name().to_owned(),
                stage: "check",
                kind: error.strip_prefix("check/").unwrap_or(error).to_owned(),
                attempt: 0,
            });
        }
        let transition =
            member.record_check(outcome.is_ok(), check.rise, check.fall, outcome.err());
        match transition {
            Transition::WentDown => tracing::warn!(member = %member.name(), "health check: down"),
            Transition::CameUp => tracing::info!(member = %member.name(), "health check: up"),
            Transition::None => {}
        }
    }
}

async fn check_one(
    member: &Member,
    check: &HealthCheck,
    options: &ConnectOptions,
) -> Result<(), String> {
    let target = check
        .target
        .clone()
        .or_else(|| member.config.destination.clone())
        .ok_or_else(|| "no health check target".to_owned())?;
    let options = ConnectOptions {
        timeout: check.timeout,
        ..options.clone()
    };
    let attempt = async {
        let stream = member
            .config
            .chain
            .connect_with(target, &options)
            .await
            .map_err(|e| format!("check/{}/{}", e.stage().name(), e.reason()))?;
        // A TLS member is checked over its TLS, whatever the probe.
        let stream = match &member.config.tls {
            Some(tls) => crate::tls::wrap_backend(stream, tls, &Deadline::after(check.timeout))
                .await
                .map_err(|e| format!("check/{}/{}", e.stage().name(), e.reason()))?,
            None => stream,
        };
        match &check.probe {
            Probe::Connect => Ok(()),
            Probe::Http { host, path, expect } => {
                let response = http_request::get(stream, host, path, 64 * 1024)
                    .await
                    .map_err(|e| format!("check/http/{e}"))?;
                if expect.contains(&response.status) {
                    Ok(())
                } else {
                    Err(format!("check/http/status {}", response.status))
                }
            }
            Probe::WebSocket { host, path } => websocket_probe(stream, host, path)
                .await
                .map_err(|e| format!("check/websocket/{e}")),
        }
    };
    match timeout(check.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err("check/timeout".into()),
    }
}

/// RFC 6455's example key and its accept value: a fixed key is enough for a probe.
const PROBE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const PROBE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Upgrades `path` and checks the `101`, then sends a masked close 1000.
async fn websocket_probe<S>(mut stream: S, host: &str, path: &str) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use mtgate_proto::http1::{Limits, ResponseHead};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {PROBE_KEY}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: mtgate-health\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(1024);
    // Every round reads at least one byte and the parser caps the head, so this ends.
    let head = loop {
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed before the answer".into());
        }
        match ResponseHead::parse(&buf, &limits) {
            Ok(Some((head, _))) => break head,
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    };
    if head.status != 101 {
        return Err(format!("status {}", head.status));
    }
    if head.headers.get_str("sec-websocket-accept").map(str::trim) != Some(PROBE_ACCEPT) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    // FIN + close, masked with a zero key, code 1000.
    let _ = stream
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .await;
    Ok(())
}
