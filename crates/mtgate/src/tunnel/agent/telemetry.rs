//! The agent's metrics (`metrics_listen` in its config), read at each scrape from its live
//! gateway connections plus the totals of those that closed:
//!
//! - `mtgate_agent_gateway_connections`: connections to the gateway up now (replicas);
//! - `mtgate_agent_gateway_connects_total`, `mtgate_agent_gateway_connect_failures_total`
//!   by reason (`auth`: credentials refused, `other`);
//! - `mtgate_agent_gateway_rtt_seconds{replica}`: the last ping's round trip;
//! - `mtgate_agent_streams_open`, `mtgate_agent_stream_opens_total`;
//! - `mtgate_agent_stream_refusals_total{code}`: OPENs this agent answered with an error
//!   (policy, dial failure, `max_concurrent_conns`);
//! - `mtgate_agent_bytes_total{direction}`: stream bytes (`in`: from the gateway, `out`: to it);
//! - `mtgate_agent_datagrams_total{direction}`: UDP datagrams `in`, `out`, and `dropped`
//!   (too big for a frame, no window, the target's socket full).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mtgate_proto::tunnel::ErrorCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::telemetry::families::{count, counters, gauges};
use crate::tunnel::mux::{Mux, MuxStats, Traffic};

/// Why dialing the gateway failed, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The gateway refused the credentials.
    Auth,
    /// Anything else (TCP, TLS, the upgrade, a timeout).
    Other,
}

impl ConnectFailure {
    fn label(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Other => "other",
        }
    }
}

/// Counters of connections, summed.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    opens: u64,
    traffic: Traffic,
}

impl Totals {
    fn add(&mut self, s: &MuxStats) {
        self.opens += s.streams_total;
        self.traffic.add(s);
    }
}

/// What the agent's metrics are read from; shared by every replica.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Live connections by serial number, with their replica index.
    live: Mutex<BTreeMap<u64, (usize, Mux)>>,
    next_serial: AtomicU64,
    closed: Mutex<Totals>,
    connects: AtomicU64,
    connect_failures: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Datagrams the agent's UDP sockets dropped (the multiplexer counts its own).
    udp_dropped: AtomicU64,
}

/// Keeps a connection among the live ones until dropped; its counters then join the totals.
#[derive(Debug)]
pub struct LiveConnection<'a> {
    stats: &'a AgentStats,
    serial: u64,
}

impl Drop for LiveConnection<'_> {
    fn drop(&mut self) {
        let removed = lock(&self.stats.live).remove(&self.serial);
        if let Some((_, mux)) = removed {
            lock(&self.stats.closed).add(&mux.stats());
        }
    }
}

impl AgentStats {
    /// Counts a connection to the gateway, live until the guard is dropped.
    pub fn connected(&self, replica: usize, mux: &Mux) -> LiveConnection<'_> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        lock(&self.live).insert(serial, (replica, mux.clone()));
        LiveConnection {
            stats: self,
            serial,
        }
    }

    /// Counts a failed dial of the gateway.
    pub fn connect_failed(&self, why: ConnectFailure) {
        *lock(&self.connect_failures).entry(why.label()).or_default() += 1;
    }

    /// Counts an OPEN this agent refused with `code`.
    pub fn refused(&self, code: ErrorCode) {
        *lock(&self.refusals).entry(code.label()).or_default() += 1;
    }

    /// The counter of datagrams dropped at the agent's UDP sockets.
    pub fn udp_dropped(&self) -> &AtomicU64 {
        &self.udp_dropped
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: u64,
}

/// Exports [`AgentStats`].
#[derive(Debug)]
pub struct AgentCollector(pub std::sync::Arc<AgentStats>);

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let live: Vec<(usize, MuxStats)> = lock(&stats.live)
            .values()
            .map(|(replica, mux)| (*replica, mux.stats()))
            .collect();
        let mut totals = *lock(&stats.closed);
        for (_, s) in &live {
            totals.add(s);
        }
        let open: usize = live.iter().map(|(_, s)| s.open_streams).sum();
        let e = &mut encoder;

        ConstGauge::new(count(live.len())).encode(e.encode_descriptor(
            "mtgate_agent_gateway_connections",
            "Connections to the gateway up now (replicas)",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(stats.connects.load(Ordering::Relaxed)).encode(e.encode_descriptor(
            "mtgate_agent_gateway_connects",
            "Connections to the gateway established",
            None,
            MetricType::Counter,
        )?)?;
        let failures = lock(&stats.connect_failures).clone();
        counters(
            e,
            "mtgate_agent_gateway_connect_failures",
            "Failed dials of the gateway, by reason (auth, other)",
            failures
                .into_iter()
                .map(|(reason, n)| (ReasonLabels { reason }, n)),
        )?;
        let rtts = live.iter().filter_map(|(replica, s)| {
            let labels = ReplicaLabels {
                replica: *replica as u64,
            };
            s.rtt.map(|rtt| (labels, rtt.as_secs_f64()))
        });
        gauges(
            e,
            "mtgate_agent_gateway_rtt_seconds",
            "The last ping's round trip, by replica",
            rtts,
        )?;
        ConstGauge::new(count(open)).encode(e.encode_descriptor(
            "mtgate_agent_streams_open",
            "Streams open now",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(totals.opens).encode(e.encode_descriptor(
            "mtgate_agent_stream_opens",
            "Streams the gateway opened through this agent",
            None,
            MetricType::Counter,
        )?)?;
        let refusals = lock(&stats.refusals).clone();
        counters(
            e,
            "mtgate_agent_stream_refusals",
            "OPENs this agent answered with an error, by code",
            refusals
                .into_iter()
                .map(|(code, n)| (CodeLabels { code }, n)),
        )?;
        let mut t = totals.traffic;
        t.datagrams_dropped += stats.udp_dropped.load(Ordering::Relaxed);
        counters(
            e,
            "mtgate_agent_bytes",
            "Stream bytes (in: from the gateway, out: to the gateway)",
            by_direction(t.bytes_by_direction()),
        )?;
        counters(
            e,
            "mtgate_agent_datagrams",
            "UDP datagrams (in: from the gateway, out: to it, dropped: either way)",
            by_direction(t.datagrams_by_direction()),
        )
    }
}

/// Rows of a per-direction family.
fn by_direction<const N: usize>(
    rows: [(&'static str, u64); N],
) -> impl Iterator<Item = (DirectionLabels, u64)> {
    rows.into_iter()
        .map(|(direction, n)| (DirectionLabels { direction }, n))
}
