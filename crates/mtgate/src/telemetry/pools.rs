//! Pool metrics, read from the live pools at each scrape (so servers added, drained or removed
//! at run time show up, and disappear, without bookkeeping).

use std::sync::Arc;

use mtgate_client::pool::{MemberState, MemberStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::outbound::PoolSet;

/// Labels of a pool server's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    pool: String,
    server: String,
}

/// Labels of a pool-wide metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

/// Exports every pool's live state.
#[derive(Debug)]
pub struct PoolCollector {
    pools: Arc<PoolSet>,
}

impl PoolCollector {
    /// A collector over `pools`.
    pub fn new(pools: Arc<PoolSet>) -> Self {
        Self { pools }
    }
}

type Row = (ServerLabels, MemberStats);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let entries = self.pools.all();
        let rows: Vec<Row> = entries
            .iter()
            .flat_map(|entry| {
                entry.pool.stats().into_iter().map(|stats| {
                    let labels = ServerLabels {
                        pool: entry.config.name.clone(),
                        server: stats.name.clone(),
                    };
                    (labels, stats)
                })
            })
            .collect();
        gauge(
            &mut encoder,
            &rows,
            "mtgate_pool_server_up",
            "1 if the server takes new connections (healthy), else 0",
            |s| i64::from(s.state == MemberState::Healthy),
        )?;
        gauge(
            &mut encoder,
            &rows,
            "mtgate_pool_server_ejected",
            "1 while passive health checks keep the server out",
            |s| i64::from(matches!(s.state, MemberState::Ejected { .. })),
        )?;
        gauge(
            &mut encoder,
            &rows,
            "mtgate_pool_server_draining",
            "1 while the server drains",
            |s| i64::from(s.state == MemberState::Draining),
        )?;
        gauge(
            &mut encoder,
            &rows,
            "mtgate_pool_server_in_flight",
            "Connections open through the server",
            |s| i64::from(s.in_flight),
        )?;
        gauge(
            &mut encoder,
            &rows,
            "mtgate_pool_server_weight",
            "The server's configured weight",
            |s| i64::from(s.weight),
        )?;
        counter(
            &mut encoder,
            &rows,
            "mtgate_pool_server_connects",
            "Successful connects through the server",
            |s| s.successes,
        )?;
        counter(
            &mut encoder,
            &rows,
            "mtgate_pool_server_failures",
            "Failed connects counted against the server",
            |s| s.failures,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "mtgate_pool_server_connect_latency_seconds",
                "EWMA of the server's connect latency",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (labels, stats) in &rows {
                if let Some(latency) = stats.ewma_latency {
                    ConstGauge::new(latency.as_secs_f64()).encode(family.encode_family(labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "mtgate_pool_failures",
            "Failed attempts and health checks recorded by the pool",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for entry in &entries {
            let labels = PoolLabels {
                pool: entry.config.name.clone(),
            };
            let (_, total) = entry.pool.recent_failures();
            ConstCounter::new(total).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    rows: &[Row],
    name: &str,
    help: &str,
    value: impl Fn(&MemberStats) -> i64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, stats) in rows {
        ConstGauge::new(value(stats)).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    rows: &[Row],
    name: &str,
    help: &str,
    value: impl Fn(&MemberStats) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, stats) in rows {
        ConstCounter::new(value(stats)).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}
