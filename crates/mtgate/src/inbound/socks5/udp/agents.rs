//! Egress of a UDP association through a gateway's agents: one tunnel UDP stream per
//! destination (as the client named it; the agent resolves and applies its policy), at most
//! [`MAX_DESTINATIONS`] per association. A stream opens on the first datagram to its
//! destination; a few datagrams wait for the answer, the rest are dropped. Streams idle for
//! the association's idle timeout are closed, the least recently used one makes room for a
//! new destination, and all close with the association.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{MAX_DATA_LEN, Network, OpenTarget};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::{Received, Tally};
use crate::acl::Command;
use crate::outbound::Route;
use crate::outbound::route::{AgentRoute, check_unresolved};
use crate::tunnel::gateway::AgentError;
use crate::tunnel::mux::{DatagramDrop, MuxStream, OpenError};

/// Destinations (tunnel streams) one association may have at once.
pub const MAX_DESTINATIONS: usize = 64;

/// Datagrams that may wait for a stream's OPEN answer.
const MAX_WAITING: usize = 8;

/// Bytes that may wait for OPEN answers, over all of an association's destinations.
const MAX_WAITING_BYTES: usize = 256 * 1024;

/// A destination the agent refused is not asked again for this long (its datagrams are
/// dropped meanwhile).
const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// How often idle streams are looked for, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum State {
    Opening(VecDeque<Bytes>),
    Open(MuxStream),
    Refused(&'static str),
}

#[derive(Debug)]
struct Destination {
    state: State,
    last_active: Instant,
}

impl Destination {
    /// Payload bytes waiting for the OPEN answer.
    fn waiting_bytes(&self) -> usize {
        match &self.state {
            State::Opening(waiting) => waiting.iter().map(Bytes::len).sum(),
            _ => 0,
        }
    }
}

/// The tunnel streams of one association.
#[derive(Debug)]
pub(super) struct Agents {
    route: AgentRoute,
    open_timeout: Duration,
    idle_timeout: Duration,
    destinations: HashMap<Address, Destination>,
    opening: JoinSet<(Address, Result<MuxStream, AgentError>)>,
    /// Payload bytes waiting for OPEN answers.
    waiting_bytes: usize,
    /// Where the next scan for answers starts (fairness between destinations).
    turn: usize,
    next_sweep: Instant,
}

impl Agents {
    /// No streams yet; they open through `route`'s group within `open_timeout`.
    pub(super) fn new(route: AgentRoute, open_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            route,
            open_timeout,
            idle_timeout,
            destinations: HashMap::new(),
            opening: JoinSet::new(),
            waiting_bytes: 0,
            turn: 0,
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    /// Sends `payload` to `target` through its stream, opening it on first use; the
    /// outcome's metric reason (`None` while it waits for the stream).
    pub(super) fn send(
        &mut self,
        route: &Route<'_>,
        target: &Address,
        payload: &[u8],
    ) -> Option<&'static str> {
        let now = Instant::now();
        if payload.is_empty() || payload.len() > MAX_DATA_LEN {
            // Cannot be one tunnel frame: not worth a stream.
            return Some(DatagramDrop::Size.reason());
        }
        if !self.destinations.contains_key(target) {
            if check_unresolved(target, Command::Udp, route).is_err() {
                self.destinations.insert(
                    target.clone(),
                    Destination {
                        state: State::Refused("denied"),
                        last_active: now,
                    },
                );
                return Some("denied");
            }
            self.make_room();
            self.open(target.clone());
            self.destinations.insert(
                target.clone(),
                Destination {
                    state: State::Opening(VecDeque::new()),
                    last_active: now,
                },
            );
        }
        let destination = self.destinations.get_mut(target)?;
        let outcome = match &mut destination.state {
            State::Refused(reason) => return Some(reason),
            State::Opening(waiting)
                if waiting.len() < MAX_WAITING
                    && self.waiting_bytes + payload.len() <= MAX_WAITING_BYTES =>
            {
                self.waiting_bytes += payload.len();
                waiting.push_back(Bytes::copy_from_slice(payload));
                None
            }
            State::Opening(_) => Some("tunnel_full"),
            State::Open(stream) => match stream.send_datagram(payload) {
                Ok(Ok(())) => Some("relayed_out"),
                Ok(Err(dropped)) => Some(dropped.reason()),
                Err(_) => {
                    // The stream ended (agent gone, reset): the next datagram opens another.
                    self.destinations.remove(target);
                    return Some("send_failed");
                }
            },
        };
        destination.last_active = now;
        outcome
    }

    /// The next answer from any destination, written to `buf`; meanwhile finishes opens
    /// and closes idle streams. Cancel-safe.
    pub(super) async fn recv(&mut self, buf: &mut [u8], tally: &Tally) -> Received {
        let next_sweep = self.next_sweep;
        let Self {
            opening,
            destinations,
            turn,
            ..
        } = &mut *self;
        tokio::select! {
            Some(joined) = opening.join_next(), if !opening.is_empty() => {
                if let Ok((target, result)) = joined {
                    self.opened(target, result, tally);
                }
                Received::Skipped(None)
            }
            (target, datagram) = poll_fn(|cx| poll_answer(destinations, turn, cx)) => match datagram {
                Some(datagram) => {
                    let n = datagram.len().min(buf.len());
                    buf[..n].copy_from_slice(&datagram[..n]);
                    Received::Datagram(target, n)
                }
                None => {
                    self.destinations.remove(&target);
                    Received::Skipped(None)
                }
            },
            () = sleep_until(next_sweep), if !destinations.is_empty() => {
                self.sweep();
                Received::Skipped(None)
            }
        }
    }

    fn open(&mut self, target: Address) {
        let (registry, group) = (self.route.registry.clone(), self.route.group.clone());
        let timeout = self.open_timeout;
        self.opening.spawn(async move {
            let open = registry.open(
                &group,
                OpenTarget {
                    network: Network::Udp,
                    address: target.clone(),
                },
            );
            let result = match tokio::time::timeout(timeout, open).await {
                Ok(result) => result,
                Err(_) => Err(AgentError::Open(OpenError::Timeout)),
            };
            (target, result)
        });
    }

    fn opened(&mut self, target: Address, result: Result<MuxStream, AgentError>, tally: &Tally) {
        let Some(destination) = self.destinations.get_mut(&target) else {
            // Evicted while opening: dropping the stream resets it.
            return;
        };
        let State::Opening(waiting) = &mut destination.state else {
            return;
        };
        let waiting = std::mem::take(waiting);
        let held: usize = waiting.iter().map(Bytes::len).sum();
        self.waiting_bytes -= held;
        match result {
            Ok(stream) => {
                for datagram in &waiting {
                    let reason = match stream.send_datagram(datagram) {
                        Ok(Ok(())) => {
                            tally.bytes("upload", datagram.len());
                            "relayed_out"
                        }
                        Ok(Err(dropped)) => dropped.reason(),
                        Err(_) => "send_failed",
                    };
                    tally.datagram(reason);
                }
                destination.state = State::Open(stream);
            }
            Err(e) => {
                tracing::debug!(target = ?target, error = %e, "no UDP stream through the agents");
                let reason = e.reason();
                for _ in &waiting {
                    tally.datagram(reason);
                }
                destination.state = State::Refused(reason);
                destination.last_active = Instant::now();
            }
        }
    }

    /// Closes streams idle for the idle timeout and forgets old refusals.
    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.idle_timeout;
        let mut freed = 0;
        self.destinations.retain(|_, d| {
            let keep = match d.state {
                State::Refused(_) => now < d.last_active + REFUSAL_TTL,
                _ => now < d.last_active + idle,
            };
            if !keep {
                freed += d.waiting_bytes();
            }
            keep
        });
        self.waiting_bytes -= freed;
        self.next_sweep = now + SWEEP_EVERY;
    }

    /// Evicts the least recently used destination when the table is full.
    fn make_room(&mut self) {
        if self.destinations.len() < MAX_DESTINATIONS {
            return;
        }
        let oldest = self
            .destinations
            .iter()
            .min_by_key(|(_, d)| d.last_active)
            .map(|(target, _)| target.clone());
        if let Some(gone) = oldest.and_then(|target| self.destinations.remove(&target)) {
            self.waiting_bytes -= gone.waiting_bytes();
        }
    }
}

/// Polls the open streams in turn for a datagram; `None` for a stream that ended.
fn poll_answer(
    destinations: &mut HashMap<Address, Destination>,
    turn: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<(Address, Option<Bytes>)> {
    let count = destinations.len();
    if count == 0 {
        return Poll::Pending;
    }
    let start = *turn % count;
    let found = scan(destinations.iter_mut().skip(start), cx)
        .or_else(|| scan(destinations.iter_mut().take(start), cx));
    match found {
        Some(answer) => {
            *turn = turn.wrapping_add(1);
            Poll::Ready(answer)
        }
        None => Poll::Pending,
    }
}

fn scan<'a>(
    destinations: impl Iterator<Item = (&'a Address, &'a mut Destination)>,
    cx: &mut Context<'_>,
) -> Option<(Address, Option<Bytes>)> {
    for (target, destination) in destinations {
        let State::Open(stream) = &destination.state else {
            continue;
        };
        match stream.poll_recv_datagram(cx) {
            Poll::Ready(Ok(Some(datagram))) => {
                destination.last_active = Instant::now();
                return Some((target.clone(), Some(datagram)));
            }
            Poll::Ready(Ok(None) | Err(_)) => return Some((target.clone(), None)),
            Poll::Pending => {}
        }
    }
    None
}
