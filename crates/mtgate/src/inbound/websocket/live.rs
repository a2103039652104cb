//! Live WebSocket sessions (what the admin API lists) and the WebSocket metric families.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

pub use crate::telemetry::metrics::DirectionLabels;
use tokio::time::Instant;

use crate::telemetry::metrics::ListenerLabels;

/// Labels of a close counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// Listener name.
    pub listener: String,
    /// Why the session ended: "client", "backend", "too_big", "protocol", "idle",
    /// "ping_timeout", "shutdown", "backend_lost", "client_lost".
    pub reason: &'static str,
}

/// WebSocket metric families.
#[derive(Debug, Clone, Default)]
pub struct WsMetrics {
    /// Sessions open (after the 101).
    pub sessions_open: Family<ListenerLabels, Gauge>,
    /// Sessions established.
    pub sessions: Family<ListenerLabels, Counter>,
    /// Messages relayed.
    pub messages: Family<DirectionLabels, Counter>,
    /// Payload bytes relayed.
    pub bytes: Family<DirectionLabels, Counter>,
    /// Sessions ended, by reason.
    pub closes: Family<CloseLabels, Counter>,
}

/// Sessions and metrics shared by every `[[websocket]]` listener.
#[derive(Debug, Default)]
pub struct WebsocketState {
    /// Metric families.
    pub metrics: WsMetrics,
    sessions: Mutex<BTreeMap<u64, Arc<LiveSession>>>,
    next_id: AtomicU64,
}

impl WebsocketState {
    /// Creates the state and registers its metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let state = Self::default();
        let m = &state.metrics;
        registry.register(
            "mtgate_websocket_sessions_open",
            "WebSocket sessions open",
            m.sessions_open.clone(),
        );
        registry.register(
            "mtgate_websocket_sessions",
            "WebSocket sessions established",
            m.sessions.clone(),
        );
        registry.register(
            "mtgate_websocket_messages",
            "WebSocket messages relayed",
            m.messages.clone(),
        );
        registry.register(
            "mtgate_websocket_payload_bytes",
            "WebSocket payload bytes relayed",
            m.bytes.clone(),
        );
        registry.register(
            "mtgate_websocket_closes",
            "WebSocket sessions ended, by reason",
            m.closes.clone(),
        );
        state
    }

    /// Adds a session; it is listed until the returned guard drops.
    pub fn track(self: &Arc<Self>, session: LiveSession) -> Tracked {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(session);
        self.lock().insert(id, session.clone());
        Tracked {
            state: self.clone(),
            id,
            session,
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session as JSON, oldest first.
    pub fn to_json(&self) -> Value {
        let sessions: Vec<Value> = self.lock().values().map(|s| s.to_json()).collect();
        json!({ "count": sessions.len(), "sessions": sessions })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<LiveSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One live session's facts and counters.
#[derive(Debug)]
pub struct LiveSession {
    /// Listener name.
    pub listener: String,
    /// The request path (query left out: it may carry secrets).
    pub path: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The backend's name in its pool.
    pub backend: String,
    /// The pool.
    pub pool: String,
    /// The subprotocol agreed.
    pub protocol: Option<String>,
    /// The Basic user, if one authenticated.
    pub user: Option<String>,
    /// When the 101 went out.
    pub started: Instant,
    /// Counters, client to backend.
    pub up: Counters,
    /// Counters, backend to client.
    pub down: Counters,
}

/// Messages and payload bytes one way: the session's own counts (for the admin listing) and
/// the listener's totals in `/metrics`, both updated as frames pass.
#[derive(Debug)]
pub struct Counters {
    /// Whole messages.
    pub messages: AtomicU64,
    /// Payload bytes.
    pub bytes: AtomicU64,
    listener_messages: Counter,
    listener_bytes: Counter,
}

impl Counters {
    /// Zero counts, adding to `listener`'s totals for `direction` ("client_to_backend" or
    /// "backend_to_client").
    pub fn new(metrics: &WsMetrics, listener: &str, direction: &'static str) -> Self {
        let labels = DirectionLabels {
            listener: listener.to_owned(),
            direction,
        };
        Self {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            listener_messages: metrics.messages.get_or_create(&labels).clone(),
            listener_bytes: metrics.bytes.get_or_create(&labels).clone(),
        }
    }

    /// Counts a data frame of `len` payload bytes; `ends_message` when it was a message's last.
    pub fn record(&self, len: usize, ends_message: bool) {
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.listener_bytes.inc_by(len as u64);
        if ends_message {
            self.messages.fetch_add(1, Ordering::Relaxed);
            self.listener_messages.inc();
        }
    }
}

impl LiveSession {
    fn to_json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "listener": self.listener,
            "path": self.path,
            "peer": self.peer.to_string(),
            "pool": self.pool,
            "backend": self.backend,
            "protocol": self.protocol,
            "user": self.user,
            "age_ms": self.started.elapsed().as_millis() as u64,
            "messages": { "client_to_backend": get(&self.up.messages), "backend_to_client": get(&self.down.messages) },
            "bytes": { "client_to_backend": get(&self.up.bytes), "backend_to_client": get(&self.down.bytes) },
        })
    }
}

/// Removes its session from the list when dropped.
#[derive(Debug)]
pub struct Tracked {
    state: Arc<WebsocketState>,
    id: u64,
    session: Arc<LiveSession>,
}

impl Tracked {
    /// The session.
    pub fn session(&self) -> &Arc<LiveSession> {
        &self.session
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.state.lock().remove(&self.id);
    }
}
