//! UDP flows through agents: one tunnel UDP stream per flow key (a SOCKS5 association's
//! destination, or a forwarded port's client address), at most a fixed number per table. A
//! stream opens on the flow's first datagram; a few datagrams wait for the agent's answer, the
//! rest are dropped. Streams idle for the idle timeout are closed, the least recently used one
//! makes room for a new flow, and all close with the table. A flow the agent refused is not
//! asked again for a while; its datagrams are dropped meanwhile.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{MAX_DATA_LEN, Network, OpenTarget};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::{AgentError, Registry};
use crate::tunnel::mux::{DatagramDrop, MuxStream, OpenError};

/// Datagrams that may wait for a stream's OPEN answer.
const MAX_WAITING: usize = 8;

/// Bytes that may wait for OPEN answers, over all of a table's flows.
const MAX_WAITING_BYTES: usize = 256 * 1024;

/// A flow the agent refused is not asked again for this long.
const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// How often idle streams are looked for, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which agents carry a table's streams.
#[derive(Debug, Clone)]
pub struct FlowRoute {
    /// The gateway's agents.
    pub registry: Arc<Registry>,
    /// The group.
    pub group: String,
    /// Only this agent (client id) of the group, when set (forwarded ports).
    pub client_id: Option<String>,
    /// How long an OPEN may take.
    pub open_timeout: Duration,
    /// A flow without datagrams either way for this long is closed.
    pub idle_timeout: Duration,
    /// Flows at once; a new one closes the least recently used.
    pub max_flows: usize,
}

/// What [`Flows::recv`] produced.
#[derive(Debug)]
pub enum FlowEvent<K> {
    /// A datagram of the flow `K`, its `usize` bytes in the buffer.
    Datagram(K, usize),
    /// Nothing to deliver (an open finished, a stream ended, idle streams were closed).
    Nothing,
}

/// Counts what becomes of datagrams that were waiting for their stream: a metric reason and
/// the payload length.
pub type Count<'a> = &'a (dyn Fn(&'static str, usize) + Sync);

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

/// The UDP flows of one association or forwarded port, keyed by `K`.
#[derive(Debug)]
pub struct Flows<K> {
    route: FlowRoute,
    destinations: HashMap<K, Destination>,
    opening: JoinSet<(K, Result<MuxStream, AgentError>)>,
    /// Payload bytes waiting for OPEN answers.
    waiting_bytes: usize,
    /// Where the next scan for answers starts (fairness between destinations).
    turn: usize,
    next_sweep: Instant,
}

impl<K: Hash + Eq + Clone + Send + std::fmt::Debug + 'static> Flows<K> {
    /// No flows yet; their streams open through `route`.
    pub fn new(route: FlowRoute) -> Self {
        Self {
            route,
            destinations: HashMap::new(),
            opening: JoinSet::new(),
            waiting_bytes: 0,
            turn: 0,
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    /// True if `key` has a flow (open, opening or refused).
    pub fn contains(&self, key: &K) -> bool {
        self.destinations.contains_key(key)
    }

    /// Remembers `key` as refused here (by the caller's rules) for a while: its datagrams are
    /// dropped with `reason` without asking an agent.
    pub fn refuse(&mut self, key: K, reason: &'static str) {
        self.make_room();
        self.destinations.insert(
            key,
            Destination {
                state: State::Refused(reason),
                last_active: Instant::now(),
            },
        );
    }

    /// Sends `payload` on `key`'s flow, opening a stream to `target` on first use; the
    /// outcome's metric reason (`None` while it waits for the stream).
    pub fn send(&mut self, key: &K, target: &Address, payload: &[u8]) -> Option<&'static str> {
        let now = Instant::now();
        if payload.is_empty() || payload.len() > MAX_DATA_LEN {
            // Cannot be one tunnel frame: not worth a stream.
            return Some(DatagramDrop::Size.reason());
        }
        if !self.destinations.contains_key(key) {
            self.make_room();
            self.open(key.clone(), target.clone());
            self.destinations.insert(
                key.clone(),
                Destination {
                    state: State::Opening(VecDeque::new()),
                    last_active: now,
                },
            );
        }
        let destination = self.destinations.get_mut(key)?;
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
                    self.destinations.remove(key);
                    return Some("send_failed");
                }
            },
        };
        destination.last_active = now;
        outcome
    }

    /// The next datagram from any flow, written to `buf`; meanwhile finishes opens (sending
    /// or dropping what waited, reported to `count`) and closes idle streams. Cancel-safe.
    pub async fn recv(&mut self, buf: &mut [u8], count: Count<'_>) -> FlowEvent<K> {
        let next_sweep = self.next_sweep;
        let Self {
            opening,
            destinations,
            turn,
            ..
        } = &mut *self;
        tokio::select! {
            Some(joined) = opening.join_next(), if !opening.is_empty() => {
                if let Ok((key, result)) = joined {
                    self.opened(key, result, count);
                }
                FlowEvent::Nothing
            }
            (key, datagram) = poll_fn(|cx| poll_answer(destinations, turn, cx)) => match datagram {
                Some(datagram) => {
                    let n = datagram.len().min(buf.len());
                    buf[..n].copy_from_slice(&datagram[..n]);
                    FlowEvent::Datagram(key, n)
                }
                None => {
                    self.destinations.remove(&key);
                    FlowEvent::Nothing
                }
            },
            () = sleep_until(next_sweep), if !destinations.is_empty() => {
                self.sweep();
                FlowEvent::Nothing
            }
        }
    }

    /// Flows now (open, opening or refused).
    pub fn len(&self) -> usize {
        self.destinations.len()
    }

    /// True without flows.
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    fn open(&mut self, key: K, target: Address) {
        let route = self.route.clone();
        self.opening.spawn(async move {
            let target = OpenTarget {
                network: Network::Udp,
                address: target,
            };
            let open = async {
                match &route.client_id {
                    Some(agent) => {
                        route
                            .registry
                            .open_on_agent(&route.group, agent, target)
                            .await
                    }
                    None => route.registry.open(&route.group, target).await,
                }
            };
            let result = match tokio::time::timeout(route.open_timeout, open).await {
                Ok(result) => result,
                Err(_) => Err(AgentError::Open(OpenError::Timeout)),
            };
            (key, result)
        });
    }

    fn opened(&mut self, key: K, result: Result<MuxStream, AgentError>, count: Count<'_>) {
        let Some(destination) = self.destinations.get_mut(&key) else {
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
                        Ok(Ok(())) => "relayed_out",
                        Ok(Err(dropped)) => dropped.reason(),
                        Err(_) => "send_failed",
                    };
                    count(reason, datagram.len());
                }
                destination.state = State::Open(stream);
            }
            Err(e) => {
                tracing::debug!(flow = ?key, error = %e, "no UDP stream through the agents");
                let reason = e.reason();
                for datagram in &waiting {
                    count(reason, datagram.len());
                }
                destination.state = State::Refused(reason);
                destination.last_active = Instant::now();
            }
        }
    }

    /// Closes streams idle for the idle timeout and forgets old refusals.
    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.route.idle_timeout;
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
        if self.destinations.len() < self.route.max_flows.max(1) {
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
fn poll_answer<K: Clone>(
    destinations: &mut HashMap<K, Destination>,
    turn: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<(K, Option<Bytes>)> {
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

fn scan<'a, K: Clone + 'a>(
    destinations: impl Iterator<Item = (&'a K, &'a mut Destination)>,
    cx: &mut Context<'_>,
) -> Option<(K, Option<Bytes>)> {
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
