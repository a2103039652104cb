//! Counters of middle-proxy mode, shown on `/stats` under the official proxy's key names
//! (so scripts written for `mtproto-proxy`'s stats page keep working).

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since start; every connection and session of a server adds to one set.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client packets sent to a middle proxy (`tot_forwarded_queries`).
    pub forwarded_queries: AtomicU64,
    /// Packets for clients queued (`tot_forwarded_responses`).
    pub forwarded_responses: AtomicU64,
    /// Packets for clients that were gone or too slow (`dropped_responses`).
    pub dropped_responses: AtomicU64,
    /// Quick acks passed on (`tot_forwarded_simple_acks`).
    pub forwarded_simple_acks: AtomicU64,
    /// Clients registered on a connection (`ext_connections_created`).
    pub clients_created: AtomicU64,
    /// Connections opened to middle proxies.
    pub connections_created: AtomicU64,
    /// Connections to middle proxies that failed or could not be opened.
    pub connection_failures: AtomicU64,
    /// MTProto-over-HTTP queries received (`http_queries`).
    pub http_queries: AtomicU64,
    /// MTProto-over-HTTP requests refused as malformed or not served (`http_bad_headers`).
    pub http_bad_headers: AtomicU64,
    /// MTProto-over-HTTP queries waiting for their answer (`pending_http_queries`).
    pub http_pending: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away (gauges).
    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// The value now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
