//! The `/stats` page: one `key<TAB>value` line per figure, in the spirit of the official
//! proxy's stats page, readable by people and by `grep`/`awk`.

use std::fmt::Write;
use std::sync::Arc;

use crate::inbound::mtproto::MtprotoService;
use crate::server::Shared;
use crate::telemetry::metrics::{BytesLabels, ListenerLabels, SessionLabels};
use crate::telemetry::process::ProcessStats;

/// Renders the stats page from the live server state.
#[derive(Debug, Clone)]
pub struct StatsPage {
    shared: Arc<Shared>,
    services: Vec<Arc<MtprotoService>>,
}

impl StatsPage {
    /// A page over `shared` and the MTProto listeners.
    pub fn new(shared: Arc<Shared>, services: Vec<Arc<MtprotoService>>) -> Self {
        Self { shared, services }
    }

    /// The page's text.
    pub fn render(&self) -> String {
        let shared = &self.shared;
        let metrics = &shared.metrics;
        let process = ProcessStats::read();
        let mut out = String::with_capacity(2048);
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(out, "{key}\t{value}");
        };
        line("version", &env!("CARGO_PKG_VERSION"));
        line("uptime", &shared.started.elapsed().as_secs());
        line("connections_open", &shared.gate.open());
        line("max_connections", &shared.max_connections());
        line("buffered_bytes", &shared.pool.held());
        line("buffered_bytes_cap", &shared.pool.cap());
        line("memory_evictions", &metrics.evictions.get());
        line("resident_memory_bytes", &process.resident_bytes);
        line("cpu_seconds", &format!("{:.2}", process.cpu_seconds));
        line("open_fds", &process.open_fds);
        if let Some(middle) = &shared.middle {
            // The official proxy's names, so scripts written for its stats page keep working.
            use crate::telegram::middle::counters::Counters;
            let c = &middle.counters;
            let (connections, clients) = middle.load();
            line("ready_outbound_connections", &connections);
            line("ext_connections", &clients);
            line(
                "ext_connections_created",
                &Counters::get(&c.clients_created),
            );
            line(
                "tot_forwarded_queries",
                &Counters::get(&c.forwarded_queries),
            );
            line(
                "tot_forwarded_responses",
                &Counters::get(&c.forwarded_responses),
            );
            line("dropped_responses", &Counters::get(&c.dropped_responses));
            line(
                "tot_forwarded_simple_acks",
                &Counters::get(&c.forwarded_simple_acks),
            );
            line(
                "outbound_connections_created",
                &Counters::get(&c.connections_created),
            );
            line(
                "outbound_connection_failures",
                &Counters::get(&c.connection_failures),
            );
            line("http_queries", &Counters::get(&c.http_queries));
            line("http_bad_headers", &Counters::get(&c.http_bad_headers));
            line("pending_http_queries", &Counters::get(&c.http_pending));
        }
        for service in &self.services {
            let state = service.state();
            let name = service.name();
            let labels = ListenerLabels {
                listener: name.to_owned(),
            };
            line(
                &format!("listener.{name}.connections_open"),
                &service.open_connections(),
            );
            line(
                &format!("listener.{name}.connections_accepted"),
                &metrics.connections_accepted.get_or_create(&labels).get(),
            );
            line(
                &format!("listener.{name}.replays_refused"),
                &metrics.replays.get_or_create(&labels).get(),
            );
            for user in &state.config.users {
                let u = &user.name;
                let sessions: u64 = ["classic", "padded", "fake-tls"]
                    .iter()
                    .map(|mode| {
                        let l = SessionLabels {
                            listener: name.to_owned(),
                            user: u.clone(),
                            mode: (*mode).into(),
                        };
                        metrics.sessions.get_or_create(&l).get()
                    })
                    .sum();
                let bytes = |direction| {
                    metrics
                        .bytes
                        .get_or_create(&BytesLabels {
                            listener: name.to_owned(),
                            user: u.clone(),
                            direction,
                        })
                        .get()
                };
                line(
                    &format!("user.{name}.{u}.sessions_open"),
                    &service.user_sessions(u),
                );
                line(&format!("user.{name}.{u}.sessions_total"), &sessions);
                line(
                    &format!("user.{name}.{u}.bytes_client_to_dc"),
                    &bytes("client_to_dc"),
                );
                line(
                    &format!("user.{name}.{u}.bytes_dc_to_client"),
                    &bytes("dc_to_client"),
                );
            }
        }
        out
    }
}
