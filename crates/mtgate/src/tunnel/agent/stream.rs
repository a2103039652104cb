//! One stream's life on the agent: the concurrency permit, the policy and the dial
//! ([`super::target`]), OPEN_OK or OPEN_ERR, then bytes both ways with half-close until both
//! sides finished, the stream idles out, or the agent stops. UDP streams go to
//! [`super::udp`] after the same permit.

use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::tunnel::{ErrorCode, Network};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::Policy;
use super::target::{self, DialFailure};
use super::telemetry::AgentStats;
use super::udp;
use crate::inbound::proxy::touching::Touching;
use crate::relay::ConnEntry;
use crate::tunnel::mux::{IncomingOpen, MuxStream};

/// Relay buffer size per direction.
const RELAY_BUFFER: usize = 32 << 10;

/// What every stream of the agent shares.
#[derive(Debug)]
pub struct StreamContext {
    /// Which targets may be reached.
    pub policy: Arc<Policy>,
    /// `max_concurrent_conns` permits, over all replicas.
    pub permits: Arc<Semaphore>,
    /// Budget for each target dial.
    pub connect_timeout: Duration,
    /// A stream without bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// A UDP stream without datagrams either way for this long is closed.
    pub udp_idle_timeout: Duration,
    /// Fires when the drain is over: streams still open are reset.
    pub hard_stop: CancellationToken,
    /// Where refusals and UDP drops are counted.
    pub stats: Arc<AgentStats>,
}

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides finished sending.
    Finished {
        /// Bytes from the target to the gateway.
        to_gateway: u64,
        /// Bytes from the gateway to the target.
        to_target: u64,
    },
    /// No bytes for the idle timeout.
    Idle,
    /// The agent stopped (drain over).
    Stopped,
    /// A side failed.
    Failed(std::io::Error),
}

impl StreamContext {
    /// Takes a permit for `open`, or refuses it with RATE_LIMITED when none is left.
    pub fn admit(&self, open: IncomingOpen) -> Option<(IncomingOpen, OwnedSemaphorePermit)> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some((open, permit)),
            Err(_) => {
                tracing::debug!(target = %open.target().address, "refused: max_concurrent_conns reached");
                self.stats.refused(ErrorCode::RateLimited);
                open.reject(ErrorCode::RateLimited, "max_concurrent_conns reached");
                None
            }
        }
    }

    /// Dials the target of `open`, answers, and relays until the stream ends.
    pub async fn serve(&self, open: IncomingOpen, _permit: OwnedSemaphorePermit) {
        let target = open.target().clone();
        if target.network == Network::Udp {
            return self.serve_udp(open).await;
        }
        let started = Instant::now();
        let dialing = target::dial(&target.address, &self.policy, self.connect_timeout);
        let Some((open, tcp)) = self.dial_or_refuse(open, dialing).await else {
            return;
        };
        let stream = open.accept();
        let id = stream.id();
        let end = relay(tcp, stream, self.idle_timeout, &self.hard_stop).await;
        tracing::debug!(
            stream = id,
            target = %target.address,
            duration = ?started.elapsed(),
            end = ?end,
            "stream closed"
        );
    }

    /// A UDP stream: a connected socket to the target (same policy as TCP), then datagrams
    /// both ways until the stream ends or idles.
    async fn serve_udp(&self, open: IncomingOpen) {
        let target = open.target().address.clone();
        let started = Instant::now();
        let connecting = udp::connect(&target, &self.policy, self.connect_timeout);
        let Some((open, socket)) = self.dial_or_refuse(open, connecting).await else {
            return;
        };
        let stream = open.accept();
        let id = stream.id();
        let drops = self.stats.udp_dropped();
        let end = udp::relay(
            socket,
            stream,
            self.udp_idle_timeout,
            &self.hard_stop,
            drops,
        )
        .await;
        tracing::debug!(
            stream = id,
            target = %target,
            duration = ?started.elapsed(),
            end = end.reason,
            to_target = end.to_target,
            to_gateway = end.to_gateway,
            dropped = end.dropped,
            "UDP stream closed"
        );
    }

    /// Runs `dialing` (TCP or UDP, policy included) unless the agent stops first; answers
    /// OPEN_ERR when it fails or is cut short, and gives `open` back with the socket otherwise.
    async fn dial_or_refuse<T>(
        &self,
        open: IncomingOpen,
        dialing: impl Future<Output = Result<T, DialFailure>>,
    ) -> Option<(IncomingOpen, T)> {
        let dialed = tokio::select! {
            dialed = dialing => dialed,
            () = self.hard_stop.cancelled() => {
                self.stats.refused(ErrorCode::Cancelled);
                open.reject(ErrorCode::Cancelled, "agent shutting down");
                return None;
            }
        };
        match dialed {
            Ok(socket) => Some((open, socket)),
            Err(failure) => {
                tracing::debug!(
                    target = %open.target().address,
                    network = ?open.target().network,
                    code = ?failure.code,
                    reason = %failure.reason,
                    "OPEN refused"
                );
                self.stats.refused(failure.code);
                open.reject(failure.code, &failure.reason);
                None
            }
        }
    }
}

/// Relays between the target and the stream, carrying half-close both ways. Dropping the
/// stream unfinished (idle, stop, failure) resets it.
pub async fn relay(
    tcp: TcpStream,
    mut stream: MuxStream,
    idle_timeout: Duration,
    stop: &CancellationToken,
) -> RelayEnd {
    let entry = ConnEntry::new_detached();
    entry.touch();
    let mut tcp = Touching::new(tcp, &entry);
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut tcp, &mut stream, RELAY_BUFFER, RELAY_BUFFER);
    let idle_out = async {
        // Each round sleeps until the last activity plus the timeout, so this ends.
        loop {
            let deadline = entry.last_active() + idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        result = copy => match result {
            Ok((to_gateway, to_target)) => RelayEnd::Finished { to_gateway, to_target },
            Err(e) => RelayEnd::Failed(e),
        },
        () = idle_out => RelayEnd::Idle,
        () = stop.cancelled() => RelayEnd::Stopped,
    }
}
