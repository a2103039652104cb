//! Tunnel gateway metrics, read from the live agent registries at each scrape (agents come and
//! go without bookkeeping here).
//!
//! - `mtgate_tunnel_agents{gateway,group}`: agents (client ids) connected;
//! - `mtgate_tunnel_connections{gateway,group}`: their WebSocket connections (replicas);
//! - `mtgate_tunnel_streams{gateway,group}`: streams open through them;
//! - `mtgate_tunnel_stream_opens_total{gateway}`;
//! - `mtgate_tunnel_stream_open_failures_total{gateway,code}`;
//! - `mtgate_tunnel_bytes_total{gateway,direction}` (`in`: from agents, `out`: to agents);
//! - `mtgate_tunnel_datagrams_total{gateway,direction}`: datagrams of UDP streams (`in`,
//!   `out`, and `dropped` for those the gateway dropped: too big for a frame, no window).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::tunnel::gateway::GatewaySet;
use crate::tunnel::gateway::registry::{GroupStats, RegistryStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    gateway: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    gateway: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    gateway: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    gateway: String,
    direction: &'static str,
}

/// Exports every gateway's agents and streams.
#[derive(Debug)]
pub struct TunnelCollector {
    gateways: Arc<GatewaySet>,
}

impl TunnelCollector {
    /// A collector over `gateways`.
    pub fn new(gateways: Arc<GatewaySet>) -> Self {
        Self { gateways }
    }
}

impl Collector for TunnelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshots: Vec<(String, RegistryStats)> = self
            .gateways
            .all()
            .map(|r| (r.name().to_owned(), r.stats()))
            .collect();
        let groups: Vec<(GroupLabels, &GroupStats)> = snapshots
            .iter()
            .flat_map(|(gateway, stats)| {
                stats.groups.iter().map(move |g| {
                    let labels = GroupLabels {
                        gateway: gateway.clone(),
                        group: g.group.clone(),
                    };
                    (labels, g)
                })
            })
            .collect();
        for (name, help, value) in [
            (
                "mtgate_tunnel_agents",
                "Agents (client ids) connected",
                (|g: &GroupStats| g.agents) as fn(&GroupStats) -> usize,
            ),
            (
                "mtgate_tunnel_connections",
                "Agent WebSocket connections (replicas)",
                |g| g.connections,
            ),
            (
                "mtgate_tunnel_streams",
                "Streams open through agents",
                |g| g.streams,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, g) in &groups {
                let v = i64::try_from(value(g)).unwrap_or(i64::MAX);
                ConstGauge::new(v).encode(family.encode_family(labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "mtgate_tunnel_stream_opens",
                "Streams opened through agents",
                None,
                MetricType::Counter,
            )?;
            for (gateway, stats) in &snapshots {
                let labels = GatewayLabels {
                    gateway: gateway.clone(),
                };
                ConstCounter::new(stats.opens).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "mtgate_tunnel_stream_open_failures",
                "Stream opens through agents that failed, by code",
                None,
                MetricType::Counter,
            )?;
            for (gateway, stats) in &snapshots {
                for (code, count) in &stats.failures {
                    let labels = CodeLabels {
                        gateway: gateway.clone(),
                        code,
                    };
                    ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "mtgate_tunnel_bytes",
            "Stream bytes through agents (in: from agents, out: to agents)",
            None,
            MetricType::Counter,
        )?;
        for (gateway, stats) in &snapshots {
            let t = &stats.traffic;
            for (direction, value) in [("in", t.bytes_in), ("out", t.bytes_out)] {
                let labels = DirectionLabels {
                    gateway: gateway.clone(),
                    direction,
                };
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "mtgate_tunnel_datagrams",
            "Datagrams of UDP streams through agents (in, out, dropped)",
            None,
            MetricType::Counter,
        )?;
        for (gateway, stats) in &snapshots {
            for (direction, value) in [
                ("in", stats.traffic.datagrams_in),
                ("out", stats.traffic.datagrams_out),
                ("dropped", stats.traffic.datagrams_dropped),
            ] {
                let labels = DirectionLabels {
                    gateway: gateway.clone(),
                    direction,
                };
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
