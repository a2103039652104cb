//! The agents connected to one gateway: groups → agents (by client id) → replicas (one
//! WebSocket connection and its [`Mux`] each).
//!
//! New streams go to the group's live replica with the fewest open (and opening) streams,
//! ties broken round-robin. A replica whose connection is closing is never picked and leaves
//! at once; an open that meets a closed connection is retried on another replica (the target
//! has not seen a byte yet), at most once per replica.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mtgate_proto::tunnel::OpenTarget;
use serde_json::{Value, json};

pub use super::error::AgentError;
use crate::tunnel::mux::{Mux, MuxStats, MuxStream, OpenError, Traffic};

/// Who a replica is, for the admin API.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    /// The agent's client id.
    pub client_id: String,
    /// Its group.
    pub group: String,
    /// Who authenticated (user name or certificate identity; never a secret).
    pub identity: String,
    /// The agent's address.
    pub peer: SocketAddr,
    /// The wire protocol (`mtgate-tunnel-v1` or `anyproxy-json`).
    pub protocol: &'static str,
}

/// One agent connection.
#[derive(Debug)]
struct Replica {
    id: u64,
    info: ReplicaInfo,
    mux: Mux,
    since: SystemTime,
    max_streams: usize,
    /// Opens in flight, counted as load before the stream exists.
    opening: AtomicUsize,
}

impl Replica {
    fn load(&self) -> usize {
        self.mux.stats().open_streams + self.opening.load(Ordering::Relaxed)
    }
}

/// An open in flight on a replica; dropping it takes it off the replica's load.
struct Opening<'a>(&'a Replica);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registered connection; dropping it does not unregister (call
/// [`Registry::remove`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaId(u64);

/// Counters that outlive connections.
#[derive(Debug, Default)]
struct Totals {
    opens: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Bytes and datagrams of connections that left.
    gone: Mutex<Traffic>,
}

/// group → client id → replicas.
type Groups = HashMap<String, BTreeMap<String, Vec<Arc<Replica>>>>;

/// The agents of one gateway.
#[derive(Debug)]
pub struct Registry {
    gateway: String,
    /// group → client id → replicas.
    groups: Mutex<Groups>,
    next_id: AtomicU64,
    turn: AtomicUsize,
    totals: Totals,
}

/// A gauge or counter row for metrics.
#[derive(Debug, Clone)]
pub struct GroupStats {
    /// The group.
    pub group: String,
    /// Agents (client ids) connected.
    pub agents: usize,
    /// Connections (replicas).
    pub connections: usize,
    /// Streams open now.
    pub streams: usize,
}

/// A snapshot for metrics.
#[derive(Debug, Clone, Default)]
pub struct RegistryStats {
    /// Per group.
    pub groups: Vec<GroupStats>,
    /// Streams opened through agents.
    pub opens: u64,
    /// Failed opens by code.
    pub failures: Vec<(&'static str, u64)>,
    /// Bytes and datagrams (UDP streams) from agents (`in`) and to them (`out`); datagrams
    /// dropped here: too big, no window, or a full buffer.
    pub traffic: Traffic,
}

impl Registry {
    /// An empty registry for the gateway `name`.
    pub fn new(name: &str) -> Self {
        Self {
            gateway: name.to_owned(),
            groups: Mutex::default(),
            next_id: AtomicU64::new(1),
            turn: AtomicUsize::new(0),
            totals: Totals::default(),
        }
    }

    /// The gateway's name.
    pub fn name(&self) -> &str {
        &self.gateway
    }

    /// Adds a connection that carries at most `max_streams` streams at once.
    pub fn add(&self, info: ReplicaInfo, mux: Mux, max_streams: usize) -> ReplicaId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let replica = Arc::new(Replica {
            id,
            mux,
            since: SystemTime::now(),
            max_streams,
            opening: AtomicUsize::new(0),
            info: info.clone(),
        });
        let mut groups = self.lock();
        groups
            .entry(info.group)
            .or_default()
            .entry(info.client_id)
            .or_default()
            .push(replica);
        ReplicaId(id)
    }

    /// Removes a connection (idempotent), keeping its byte counts in the totals.
    pub fn remove(&self, id: ReplicaId) {
        let mut groups = self.lock();
        let mut gone = None;
        groups.retain(|_, agents| {
            agents.retain(|_, replicas| {
                replicas.retain(|r| {
                    if r.id == id.0 {
                        gone = Some(r.mux.stats());
                        false
                    } else {
                        true
                    }
                });
                !replicas.is_empty()
            });
            !agents.is_empty()
        });
        drop(groups);
        if let Some(stats) = gone {
            self.retire(&stats);
        }
    }

    fn retire(&self, stats: &MuxStats) {
        self.gone().add(stats);
    }

    fn gone(&self) -> std::sync::MutexGuard<'_, Traffic> {
        self.totals.gone.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The least-loaded live replica of `group` (of the agent `only`, if given) not in
    /// `tried` and under its stream limit, with the number of live candidates; closing ones
    /// leave.
    fn pick(
        &self,
        group: &str,
        only: Option<&str>,
        tried: &[u64],
    ) -> (Option<Arc<Replica>>, usize, bool) {
        let mut groups = self.lock();
        let Some(agents) = groups.get_mut(group) else {
            return (None, 0, false);
        };
        let mut closed = Vec::new();
        for replicas in agents.values_mut() {
            replicas.retain(|r| {
                let closing = r.mux.is_closing();
                if closing {
                    closed.push(r.mux.stats());
                }
                !closing
            });
        }
        agents.retain(|_, replicas| !replicas.is_empty());
        let live: Vec<&Arc<Replica>> = agents
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
            .flat_map(|(_, replicas)| replicas)
            .collect();
        let total = live.len();
        let untried: Vec<(&Arc<Replica>, usize)> = live
            .into_iter()
            .filter(|r| !tried.contains(&r.id))
            .map(|r| (r, r.load()))
            .collect();
        let full = !untried.is_empty() && untried.iter().all(|(r, l)| *l >= r.max_streams);
        let candidates: Vec<(&Arc<Replica>, usize)> = untried
            .into_iter()
            .filter(|(r, l)| *l < r.max_streams)
            .collect();
        let chosen = candidates.iter().map(|(_, l)| *l).min().and_then(|least| {
            let best: Vec<&Arc<Replica>> = candidates
                .iter()
                .filter(|(_, l)| *l == least)
                .map(|(r, _)| *r)
                .collect();
            let turn = self.turn.fetch_add(1, Ordering::Relaxed);
            best.get(turn % best.len()).map(|r| (*r).clone())
        });
        if let Some(r) = &chosen {
            r.opening.fetch_add(1, Ordering::Relaxed);
        }
        if agents.is_empty() {
            groups.remove(group);
        }
        drop(groups);
        for stats in &closed {
            self.retire(stats);
        }
        (chosen, total, full)
    }

    /// Opens a stream to `target` through an agent of `group`.
    pub async fn open(&self, group: &str, target: OpenTarget) -> Result<MuxStream, AgentError> {
        self.open_counted(group, None, target).await
    }

    /// Opens a stream to `target` through one of the connections of the agent `client_id`
    /// (remote port forwarding: the agent that asked for the port).
    pub async fn open_on_agent(
        &self,
        group: &str,
        client_id: &str,
        target: OpenTarget,
    ) -> Result<MuxStream, AgentError> {
        self.open_counted(group, Some(client_id), target).await
    }

    async fn open_counted(
        &self,
        group: &str,
        only: Option<&str>,
        target: OpenTarget,
    ) -> Result<MuxStream, AgentError> {
        let result = self.try_open(group, only, target).await;
        match &result {
            Ok(_) => {
                self.totals.opens.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let mut failures = self
                    .totals
                    .failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *failures.entry(e.code_label()).or_default() += 1;
            }
        }
        result
    }

    async fn try_open(
        &self,
        group: &str,
        only: Option<&str>,
        target: OpenTarget,
    ) -> Result<MuxStream, AgentError> {
        let mut tried = Vec::new();
        let mut last = None;
        // Bounded by the replicas seen at the first pick: each round excludes one more.
        let mut budget = usize::MAX;
        while tried.len() < budget {
            let (replica, total, full) = self.pick(group, only, &tried);
            budget = budget.min(total.max(1));
            let Some(replica) = replica else {
                if full {
                    last = Some(AgentError::Busy {
                        group: group.to_owned(),
                    });
                }
                break;
            };
            tried.push(replica.id);
            let opened = {
                // Counted as load until answered, also when the caller gives up first.
                let _opening = Opening(&replica);
                replica.mux.open(target.clone()).await
            };
            match opened {
                Ok(stream) => return Ok(stream),
                // The connection went away before the agent took the stream: try another.
                Err(OpenError::Closed) => last = Some(AgentError::Open(OpenError::Closed)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.unwrap_or_else(|| AgentError::NoAgent {
            group: group.to_owned(),
        }))
    }

    /// Live connections of `group`.
    pub fn connections(&self, group: &str) -> usize {
        self.lock().get(group).map_or(0, |a| {
            a.values().flatten().filter(|r| !r.mux.is_closing()).count()
        })
    }

    /// Live connections of the agent `client_id` in `group`.
    pub fn agent_connections(&self, group: &str, client_id: &str) -> usize {
        self.lock()
            .get(group)
            .and_then(|a| a.get(client_id))
            .map_or(0, |r| r.iter().filter(|r| !r.mux.is_closing()).count())
    }

    /// A snapshot for metrics.
    pub fn stats(&self) -> RegistryStats {
        let groups = self.lock();
        let mut out = RegistryStats {
            opens: self.totals.opens.load(Ordering::Relaxed),
            traffic: *self.gone(),
            ..RegistryStats::default()
        };
        for (group, agents) in groups.iter() {
            let mut row = GroupStats {
                group: group.clone(),
                agents: agents.len(),
                connections: 0,
                streams: 0,
            };
            for replica in agents.values().flatten() {
                let stats = replica.mux.stats();
                row.connections += 1;
                row.streams += stats.open_streams;
                out.traffic.add(&stats);
            }
            out.groups.push(row);
        }
        drop(groups);
        out.groups.sort_by(|a, b| a.group.cmp(&b.group));
        out.failures = self
            .totals
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        out
    }

    /// The admin API's view: every agent with its replicas' counters.
    pub fn to_json(&self) -> Value {
        let groups = self.lock();
        let mut agents = Vec::new();
        for (group, by_id) in groups.iter() {
            for (client_id, replicas) in by_id {
                let stats: Vec<MuxStats> = replicas.iter().map(|r| r.mux.stats()).collect();
                let sum = |f: fn(&MuxStats) -> u64| stats.iter().map(f).sum::<u64>();
                let rtt = stats
                    .iter()
                    .filter_map(|s| s.rtt)
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .fold(None, |acc: Option<f64>, v| {
                        Some(acc.map_or(v, |a| a.max(v)))
                    });
                let since = replicas
                    .iter()
                    .map(|r| r.since)
                    .min()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let connections: Vec<Value> = replicas
                    .iter()
                    .zip(&stats)
                    .map(|(r, s)| {
                        json!({
                            "peer": r.info.peer.to_string(),
                            "identity": r.info.identity,
                            "protocol": r.info.protocol,
                            "open_streams": s.open_streams,
                            "streams_total": s.streams_total,
                            "open_failures": s.open_failures,
                            "bytes_in": s.bytes_in,
                            "bytes_out": s.bytes_out,
                            "rtt_ms": s.rtt.map(|d| d.as_secs_f64() * 1000.0),
                            "connected_since": r.since.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs()),
                            "closing": r.mux.is_closing(),
                        })
                    })
                    .collect();
                agents.push(json!({
                    "client_id": client_id,
                    "group": group,
                    "peer": replicas.first().map(|r| r.info.peer.to_string()),
                    "replicas": replicas.len(),
                    "open_streams": stats.iter().map(|s| s.open_streams).sum::<usize>(),
                    "streams_total": sum(|s| s.streams_total),
                    "open_failures": sum(|s| s.open_failures),
                    "bytes_in": sum(|s| s.bytes_in),
                    "bytes_out": sum(|s| s.bytes_out),
                    "datagrams_in": sum(|s| s.datagrams_in),
                    "datagrams_out": sum(|s| s.datagrams_out),
                    "datagrams_dropped": sum(|s| s.datagrams_dropped),
                    "rtt_ms": rtt,
                    "connected_since": since,
                    "connections": connections,
                }));
            }
        }
        drop(groups);
        let stats = self.stats();
        json!({
            "name": self.gateway,
            "agents": agents,
            "groups": stats.groups.iter().map(|g| json!({
                "group": g.group,
                "agents": g.agents,
                "connections": g.connections,
                "open_streams": g.streams,
            })).collect::<Vec<_>>(),
            "stream_opens_total": stats.opens,
            "stream_open_failures_total": stats.failures.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "bytes_in": stats.traffic.bytes_in,
            "bytes_out": stats.traffic.bytes_out,
        })
    }
}

/// Every gateway's registry, by name.
#[derive(Debug, Default)]
pub struct GatewaySet {
    registries: BTreeMap<String, Arc<Registry>>,
}

impl GatewaySet {
    /// Registries for these gateway names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            registries: names
                .into_iter()
                .map(|n| (n.to_owned(), Arc::new(Registry::new(n))))
                .collect(),
        }
    }

    /// A gateway's registry.
    pub fn get(&self, name: &str) -> Option<&Arc<Registry>> {
        self.registries.get(name)
    }

    /// Every registry, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Registry>> {
        self.registries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_group_has_no_agent() {
        let registry = Registry::new("g");
        let target = OpenTarget {
            network: mtgate_proto::tunnel::Network::Tcp,
            address: mtgate_proto::address::Address::Socket("127.0.0.1:1".parse().unwrap()),
        };
        let e = registry.open("nobody", target).await.err().unwrap();
        assert_eq!(
            e,
            AgentError::NoAgent {
                group: "nobody".into()
            }
        );
        assert_eq!(registry.stats().failures, vec![("no_agent", 1)]);
    }
}
