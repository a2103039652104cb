//! Middle-proxy mode on `/metrics`: the [`super::counters::Counters`] and the live load,
//! read when scraped (no label per client or connection).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::MiddleProxies;
use super::counters::Counters;

/// Exposes a server's middle-proxy figures.
#[derive(Debug)]
pub struct MiddleCollector(pub Arc<MiddleProxies>);

impl Collector for MiddleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (connections, clients) = self.0.load();
        for (name, help, value) in [
            (
                "mtgate_middle_connections",
                "Live connections to Telegram's middle proxies",
                connections,
            ),
            (
                "mtgate_middle_clients",
                "Clients multiplexed over middle-proxy connections",
                clients,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let c = &self.0.counters;
        for (name, help, counter) in [
            (
                "mtgate_middle_forwarded_queries",
                "Client packets sent to middle proxies",
                &c.forwarded_queries,
            ),
            (
                "mtgate_middle_forwarded_responses",
                "Packets from middle proxies queued for clients",
                &c.forwarded_responses,
            ),
            (
                "mtgate_middle_dropped_responses",
                "Packets from middle proxies for clients that were gone or too slow",
                &c.dropped_responses,
            ),
            (
                "mtgate_middle_forwarded_simple_acks",
                "Quick acknowledgements passed to clients",
                &c.forwarded_simple_acks,
            ),
            (
                "mtgate_middle_connections_created",
                "Connections opened to middle proxies",
                &c.connections_created,
            ),
            (
                "mtgate_middle_connection_failures",
                "Middle-proxy connections that failed or could not be opened",
                &c.connection_failures,
            ),
            (
                "mtgate_middle_http_queries",
                "MTProto-over-HTTP queries received",
                &c.http_queries,
            ),
            (
                "mtgate_middle_http_refused",
                "MTProto-over-HTTP requests refused (malformed, not served or not forwardable)",
                &c.http_bad_headers,
            ),
        ] {
            let counter = ConstCounter::new(Counters::get(counter));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
