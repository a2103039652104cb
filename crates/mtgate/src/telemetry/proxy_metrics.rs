//! Metrics of the SOCKS5, HTTP and mixed listeners. Labels: listener, user (a configured name,
//! or "anonymous"), command, outcome (a reason code), direction. Never a client address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Listener name.
    pub listener: String,
    /// User name, or "anonymous".
    pub user: String,
    /// "connect", "bind", "udp", "http" (forwarded request), "socks4".
    pub command: &'static str,
    /// "ok" or a reason code.
    pub outcome: &'static str,
}

/// Labels of a per-user byte counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficLabels {
    /// Listener name.
    pub listener: String,
    /// User name, or "anonymous".
    pub user: String,
    /// "upload" (client to destination) or "download".
    pub direction: &'static str,
}

/// Labels of a listener-wide outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyReasonLabels {
    /// Listener name.
    pub listener: String,
    /// Reason code.
    pub reason: &'static str,
}

/// Labels of a per-listener gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyListenerLabels {
    /// Listener name.
    pub listener: String,
}

/// The proxy listeners' metric families.
#[derive(Debug, Clone, Default)]
pub struct ProxyMetrics {
    /// Requests by outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Bytes relayed.
    pub bytes: Family<TrafficLabels, Counter>,
    /// Tunnels and UDP associations open.
    pub tunnels_open: Family<ProxyListenerLabels, Gauge>,
    /// Handshakes that failed before a request (malformed, timeout, authentication, lockout).
    pub handshake_failures: Family<ProxyReasonLabels, Counter>,
    /// UDP datagrams relayed or dropped, by outcome.
    pub udp_datagrams: Family<ProxyReasonLabels, Counter>,
}

impl ProxyMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "mtgate_proxy_requests",
            "SOCKS and HTTP proxy requests, by listener, user, command and outcome",
            m.requests.clone(),
        );
        registry.register(
            "mtgate_proxy_bytes",
            "Bytes relayed by the proxy listeners, by user and direction",
            m.bytes.clone(),
        );
        registry.register(
            "mtgate_proxy_tunnels_open",
            "Proxy tunnels and UDP associations open",
            m.tunnels_open.clone(),
        );
        registry.register(
            "mtgate_proxy_handshake_failures",
            "Proxy handshakes that failed before a request, by reason",
            m.handshake_failures.clone(),
        );
        registry.register(
            "mtgate_proxy_udp_datagrams",
            "UDP datagrams through SOCKS5 associations, by outcome",
            m.udp_datagrams.clone(),
        );
        m
    }
}
