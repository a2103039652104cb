//! Metric families, registered explicitly (no global registry). Labels are listener names,
//! user names from the config, modes, reasons and directions: all bounded by the config or by
//! the code. Client addresses are never labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a listener-wide metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Listener name.
    pub listener: String,
}

/// Labels of a per-user MTProto session metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// Listener name.
    pub listener: String,
    /// User name.
    pub user: String,
    /// "classic", "padded" or "fake-tls".
    pub mode: String,
}

/// Labels of a per-user byte counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// Listener name.
    pub listener: String,
    /// User name.
    pub user: String,
    /// "client_to_dc" or "dc_to_client".
    pub direction: &'static str,
}

/// Labels of a per-listener, per-direction counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// Listener name.
    pub listener: String,
    /// "client_to_upstream", "client_to_backend" and their reverses.
    pub direction: &'static str,
}

/// Labels of a failure or outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Listener name.
    pub listener: String,
    /// Machine-readable reason.
    pub reason: &'static str,
}

/// Labels of a DC metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DcLabels {
    /// DC index as the client sent it.
    pub dc: i16,
}

/// Labels of a DC failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DcFailureLabels {
    /// DC index as the client sent it.
    pub dc: i16,
    /// Machine-readable reason.
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn dc_latency_histogram() -> Histogram {
    // 1 ms … ~4 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

/// Every metric mtgate exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// TCP connections accepted.
    pub connections_accepted: Family<ListenerLabels, Counter>,
    /// TCP connections open.
    pub connections_open: Family<ListenerLabels, Gauge>,
    /// Connections refused before their handshake (limits).
    pub connections_refused: Family<ReasonLabels, Counter>,
    /// Successful MTProto handshakes.
    pub sessions: Family<SessionLabels, Counter>,
    /// MTProto sessions open.
    pub sessions_open: Family<SessionLabels, Gauge>,
    /// Failed MTProto handshakes by reason.
    pub handshake_failures: Family<ReasonLabels, Counter>,
    /// Sessions ended abnormally after the handshake, by reason.
    pub session_errors: Family<ReasonLabels, Counter>,
    /// MTProto bytes relayed per user and direction.
    pub bytes: Family<BytesLabels, Counter>,
    /// Bytes relayed by `tcp` listeners, per direction.
    pub tcp_bytes: Family<DirectionLabels, Counter>,
    /// Replayed handshakes refused.
    pub replays: Family<ListenerLabels, Counter>,
    /// Failed handshakes sent to the cover site or discarded, by outcome.
    pub masking: Family<ReasonLabels, Counter>,
    /// Time to connect to a DC.
    pub dc_connect_seconds: HistogramFamily<DcLabels>,
    /// Failed DC connections.
    pub dc_connect_failures: Family<DcFailureLabels, Counter>,
    /// Bytes held in relay buffers.
    pub buffered_bytes: Gauge,
    /// Connections closed to relieve memory pressure.
    pub evictions: Counter,
    /// Configuration reloads by outcome.
    pub reloads: Family<ReasonLabels, Counter>,
    /// SOCKS5, HTTP and mixed listeners.
    pub proxy: super::proxy_metrics::ProxyMetrics,
}

impl Metrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            connections_accepted: Family::default(),
            connections_open: Family::default(),
            connections_refused: Family::default(),
            sessions: Family::default(),
            sessions_open: Family::default(),
            handshake_failures: Family::default(),
            session_errors: Family::default(),
            bytes: Family::default(),
            tcp_bytes: Family::default(),
            replays: Family::default(),
            masking: Family::default(),
            dc_connect_seconds: Family::new_with_constructor(dc_latency_histogram),
            dc_connect_failures: Family::default(),
            buffered_bytes: Gauge::default(),
            evictions: Counter::default(),
            reloads: Family::default(),
            proxy: super::proxy_metrics::ProxyMetrics::register(registry),
        };
        let r = registry;
        r.register(
            "mtgate_connections_accepted",
            "TCP connections accepted",
            m.connections_accepted.clone(),
        );
        r.register(
            "mtgate_connections_open",
            "TCP connections open",
            m.connections_open.clone(),
        );
        r.register(
            "mtgate_connections_refused",
            "Connections refused before their handshake, by reason",
            m.connections_refused.clone(),
        );
        r.register(
            "mtgate_mtproto_sessions",
            "Successful MTProto handshakes",
            m.sessions.clone(),
        );
        r.register(
            "mtgate_mtproto_sessions_open",
            "MTProto sessions open",
            m.sessions_open.clone(),
        );
        r.register(
            "mtgate_mtproto_handshake_failures",
            "Failed MTProto handshakes, by reason",
            m.handshake_failures.clone(),
        );
        r.register(
            "mtgate_mtproto_session_errors",
            "MTProto sessions ended by an error after the handshake, by reason",
            m.session_errors.clone(),
        );
        r.register(
            "mtgate_mtproto_bytes",
            "Bytes relayed by MTProto listeners, by user and direction",
            m.bytes.clone(),
        );
        r.register(
            "mtgate_tcp_bytes",
            "Bytes relayed by tcp listeners, by direction",
            m.tcp_bytes.clone(),
        );
        r.register(
            "mtgate_mtproto_replays",
            "Replayed handshakes refused",
            m.replays.clone(),
        );
        r.register(
            "mtgate_mtproto_masking",
            "Failed handshakes relayed to the cover site or discarded, by outcome",
            m.masking.clone(),
        );
        r.register(
            "mtgate_telegram_dc_connect_seconds",
            "Time to connect to a Telegram DC",
            m.dc_connect_seconds.clone(),
        );
        r.register(
            "mtgate_telegram_dc_connect_failures",
            "Failed connections to Telegram DCs, by reason",
            m.dc_connect_failures.clone(),
        );
        r.register(
            "mtgate_buffered_bytes",
            "Bytes held in relay buffers",
            m.buffered_bytes.clone(),
        );
        r.register(
            "mtgate_memory_evictions",
            "Connections closed because buffered bytes reached their cap",
            m.evictions.clone(),
        );
        r.register(
            "mtgate_config_reloads",
            "Configuration reloads, by outcome",
            m.reloads.clone(),
        );
        m
    }

    /// Counts a connection that `listener` turned away, and why.
    pub fn refused(&self, listener: &str, reason: &'static str) {
        let labels = ReasonLabels {
            listener: listener.to_owned(),
            reason,
        };
        self.connections_refused.get_or_create(&labels).inc();
    }
}
