//! The agent at run time: `replicas` independent connection loops (dial, multiplex, serve
//! OPENs, reconnect with full-jitter exponential backoff), sharing one policy and one
//! `max_concurrent_conns` budget, and a graceful drain when asked to stop.

use std::sync::Arc;
use std::time::Duration;

use mtgate_client::pool::Backoff;
use mtgate_proto::tunnel::ErrorCode;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::AgentConfig;
use super::dial::{self, GatewaySocket};
use super::stream::StreamContext;
use super::telemetry::{AgentStats, ConnectFailure};
use crate::tunnel::mux::{Inbound, Mux, MuxConfig, Role};

/// The reconnection schedule: a random pause in `[0, min(30 s, 0.5 s · 2ⁿ)]` after the n-th
/// consecutive failure.
pub const RECONNECT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

/// A connection that stayed up this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// After the drain, how long queued frames get to go out before the connection is closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How often a connection checks whether the gateway sent GOAWAY and its streams are done.
const GOAWAY_CHECK: Duration = Duration::from_secs(1);

/// How long replica loops may take to notice the end of the drain.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything the replicas share.
#[derive(Debug)]
struct Shared {
    config: Arc<AgentConfig>,
    mux_config: MuxConfig,
    streams: StreamContext,
    tracker: TaskTracker,
}

/// Runs the agent until `shutdown` fires, then drains: GOAWAY on every connection, open
/// streams get up to `drain_timeout` to finish, the rest are reset. What happens is counted
/// in `stats`.
pub async fn run(config: Arc<AgentConfig>, stats: Arc<AgentStats>, shutdown: CancellationToken) {
    let mux_config = MuxConfig {
        // The agent answers RATE_LIMITED itself, so the mux's own cap must be higher.
        max_inbound_streams: MuxConfig::default()
            .max_inbound_streams
            .max(config.max_concurrent_conns.saturating_mul(2)),
        ping_interval: config.ping_interval,
        pong_timeout: config.pong_timeout,
        open_timeout: config.connect_timeout,
        ..MuxConfig::default()
    };
    let shared = Arc::new(Shared {
        streams: StreamContext {
            policy: config.policy.clone(),
            permits: Arc::new(Semaphore::new(config.max_concurrent_conns)),
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            udp_idle_timeout: config.udp_idle_timeout,
            hard_stop: CancellationToken::new(),
            stats,
        },
        mux_config,
        tracker: TaskTracker::new(),
        config,
    });
    let replicas = TaskTracker::new();
    for index in 0..shared.config.replicas {
        replicas.spawn(replica(index, shared.clone(), shutdown.clone()));
    }
    replicas.close();
    shutdown.cancelled().await;
    let open = shared.config.max_concurrent_conns - shared.streams.permits.available_permits();
    tracing::info!(
        open_streams = open,
        "draining for up to {:?}",
        shared.config.drain_timeout
    );
    shared.tracker.close();
    if tokio::time::timeout(shared.config.drain_timeout, shared.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout: resetting the streams still open");
    }
    shared.streams.hard_stop.cancel();
    let _ = tokio::time::timeout(STOP_GRACE, shared.tracker.wait()).await;
    let _ = tokio::time::timeout(STOP_GRACE, replicas.wait()).await;
}

/// One connection loop: dial, serve, and after a failure or a drop wait a jittered,
/// growing pause and dial again, for ever (until `shutdown`).
async fn replica(index: usize, shared: Arc<Shared>, shutdown: CancellationToken) {
    let config = &shared.config;
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        let dialed = tokio::select! {
            dialed = dial::connect(config) => dialed,
            () = shutdown.cancelled() => return,
        };
        match dialed {
            Ok(ws) => {
                tracing::info!(replica = index, gateway = %config.gateway.authority(), "connected to the gateway");
                session(index, ws, &shared, &shutdown).await;
                if started.elapsed() >= STABLE_AFTER {
                    failures = 0;
                }
            }
            Err(e) if e.is_auth_failure() => {
                shared.streams.stats.connect_failed(ConnectFailure::Auth);
                tracing::error!(replica = index, "{e}; check username/password or token");
            }
            Err(e) => {
                shared.streams.stats.connect_failed(ConnectFailure::Other);
                tracing::warn!(replica = index, "{e}");
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        let delay = RECONNECT_BACKOFF.delay(failures, &mut rand::rng());
        failures = failures.saturating_add(1);
        tracing::info!(replica = index, "reconnecting in {delay:.1?}");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Serves one connection until it closes, or until the drain is over.
async fn session(
    index: usize,
    ws: GatewaySocket,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) {
    let config = &shared.config;
    let (mux, mut incoming) = Mux::start(ws, Role::Agent, config.codec, shared.mux_config.clone());
    let _live = shared.streams.stats.connected(index, &mux);
    for port in &config.open_ports {
        let (mux, port) = (mux.clone(), port.clone());
        // Ends with the answer or when the connection closes.
        tokio::spawn(async move {
            match mux
                .listen(port.network, port.remote_port, port.local.clone())
                .await
            {
                Ok(()) => {
                    tracing::info!(replica = index, remote_port = port.remote_port, local = %port.local, "gateway listens")
                }
                Err(e) => tracing::warn!(
                    replica = index,
                    remote_port = port.remote_port,
                    "gateway refused the port: {e}"
                ),
            }
        });
    }
    let mut draining = shutdown.is_cancelled();
    if draining {
        mux.go_away();
    }
    let mut check = tokio::time::interval(GOAWAY_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick(), if !draining => {
                // The gateway sent GOAWAY (this side did not): once its streams are done,
                // leave and dial again rather than keep a connection that takes no streams.
                if mux.is_closing() && mux.stats().open_streams == 0 {
                    tracing::info!(replica = index, "the gateway is going away; reconnecting");
                    mux.close();
                    break;
                }
            }
            next = incoming.next() => match next {
                None => break,
                Some(Inbound::Open(open)) => {
                    if let Some((open, permit)) = shared.streams.admit(open) {
                        let shared = shared.clone();
                        shared.tracker.clone().spawn(async move {
                            shared.streams.serve(open, permit).await;
                        });
                    }
                }
                Some(Inbound::Listen(request)) => {
                    request.answer(Err((ErrorCode::InvalidMessage, "agents do not listen".into())));
                }
            },
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                mux.go_away();
            }
            () = shared.streams.hard_stop.cancelled() => {
                // Write what is queued (the last streams' FINs) before closing.
                mux.shutdown(CLOSE_GRACE).await;
                break;
            }
        }
    }
    let stats = mux.stats();
    tracing::info!(replica = index, "gateway connection closed");
    tracing::debug!(
        replica = index,
        streams = stats.streams_total,
        open_failures = stats.open_failures,
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        datagrams_in = stats.datagrams_in,
        datagrams_out = stats.datagrams_out,
        datagrams_dropped = stats.datagrams_dropped,
        rtt = ?stats.rtt,
        "connection summary"
    );
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn reconnect_pauses_grow_from_half_a_second_to_thirty_seconds() {
        let ceilings: Vec<u128> = (0..9)
            .map(|n| RECONNECT_BACKOFF.ceiling(n).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(RECONNECT_BACKOFF.ceiling(u32::MAX), Duration::from_secs(30));
        let mut rng = SmallRng::seed_from_u64(1);
        for n in [0, 3, 10, 1000] {
            let samples: Vec<_> = (0..500)
                .map(|_| RECONNECT_BACKOFF.delay(n, &mut rng))
                .collect();
            assert!(samples.iter().all(|d| *d <= RECONNECT_BACKOFF.ceiling(n)));
            // Full jitter: the pauses spread over the whole range, not around the ceiling.
            let below_half = samples
                .iter()
                .filter(|d| **d < RECONNECT_BACKOFF.ceiling(n) / 2)
                .count();
            assert!((150..=350).contains(&below_half), "round {n}: {below_half}");
        }
    }
}
