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
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::tunnel::gateway::GatewaySet;
use crate::tunnel::gateway::registry::{GroupStats, RegistryStats};
use crate::tunnel::mux::Traffic;

use super::families::{count, counters, gauges};

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
            let rows = groups
                .iter()
                .map(|(labels, g)| (labels.clone(), count(value(g))));
            gauges(&mut encoder, name, help, rows)?;
        }
        let per_gateway = |gateway: &String| GatewayLabels {
            gateway: gateway.clone(),
        };
        counters(
            &mut encoder,
            "mtgate_tunnel_stream_opens",
            "Streams opened through agents",
            snapshots
                .iter()
                .map(|(g, stats)| (per_gateway(g), stats.opens)),
        )?;
        let failures = snapshots.iter().flat_map(|(gateway, stats)| {
            stats.failures.iter().map(move |(code, n)| {
                let labels = CodeLabels {
                    gateway: gateway.clone(),
                    code,
                };
                (labels, *n)
            })
        });
        counters(
            &mut encoder,
            "mtgate_tunnel_stream_open_failures",
            "Stream opens through agents that failed, by code",
            failures,
        )?;
        let by_direction = |rows: fn(&Traffic) -> Vec<(&'static str, u64)>| {
            snapshots.iter().flat_map(move |(gateway, stats)| {
                rows(&stats.traffic).into_iter().map(move |(direction, n)| {
                    let labels = DirectionLabels {
                        gateway: gateway.clone(),
                        direction,
                    };
                    (labels, n)
                })
            })
        };
        counters(
            &mut encoder,
            "mtgate_tunnel_bytes",
            "Stream bytes through agents (in: from agents, out: to agents)",
            by_direction(|t| t.bytes_by_direction().to_vec()),
        )?;
        counters(
            &mut encoder,
            "mtgate_tunnel_datagrams",
            "Datagrams of UDP streams through agents (in, out, dropped)",
            by_direction(|t| t.datagrams_by_direction().to_vec()),
        )?;
        Ok(())
    }
}
