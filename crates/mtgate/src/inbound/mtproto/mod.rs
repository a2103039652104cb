//! The MTProto proxy listener.
//!
//! A connection's life: the accept loop takes places in the global and listener gates; the
//! [`handshake`] runs under the handshake deadline; a refused peer goes to [`masking`]; an
//! authenticated client gets a [`session`] to its DC, directly or through a [`middle`] proxy;
//! a request of the HTTP transport (where enabled) is served by [`http`].
//! The listener's users and settings live in an [`ArcSwap`] so a reload changes them for new
//! connections without touching open ones.

pub mod filters;
pub mod handshake;
pub mod http;
pub mod masking;
pub mod middle;
pub mod reason;
pub mod replay;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use mtgate_proto::mtproto::secret::Secret;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MtprotoListener;
use crate::gate::{Gate, Pass};
use crate::server::Shared;
use crate::telemetry::metrics::{ListenerLabels, ReasonLabels};
use handshake::HandshakeContext;
use reason::{Reason, Refusal};
use replay::Replays;

/// A listener's settings as of the last (re)load.
#[derive(Debug)]
pub struct ListenerState {
    /// Settings.
    pub config: MtprotoListener,
    /// Users' secrets, in the order of `config.users`.
    pub secrets: Vec<Secret>,
    /// Open-session counters per user, in the same order (they survive reloads).
    pub user_gates: Vec<Arc<Gate>>,
}

/// One `[[mtproto]]` listener at run time.
#[derive(Debug)]
pub struct MtprotoService {
    name: String,
    state: ArcSwap<ListenerState>,
    gate: Arc<Gate>,
    user_gates: Mutex<HashMap<String, Arc<Gate>>>,
    replays: Replays,
}

impl MtprotoService {
    /// A service for `config`.
    pub fn new(config: MtprotoListener) -> Self {
        let service = Self {
            name: config.name.clone(),
            replays: Replays::new(&config.replay),
            gate: Arc::default(),
            user_gates: Mutex::default(),
            state: ArcSwap::from_pointee(ListenerState {
                config: config.clone(),
                secrets: Vec::new(),
                user_gates: Vec::new(),
            }),
        };
        service.apply(config);
        service
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current settings.
    pub fn state(&self) -> Arc<ListenerState> {
        self.state.load_full()
    }

    /// Connections open on this listener.
    pub fn open_connections(&self) -> usize {
        self.gate.open()
    }

    /// Open sessions of a user.
    pub fn user_sessions(&self, user: &str) -> usize {
        self.user_gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .map_or(0, |g| g.open())
    }

    /// Replaces users and settings for new connections.
    pub fn apply(&self, config: MtprotoListener) {
        let mut gates = self.user_gates.lock().unwrap_or_else(|e| e.into_inner());
        let user_gates = config
            .users
            .iter()
            .map(|u| gates.entry(u.name.clone()).or_default().clone())
            .collect();
        let secrets = config.users.iter().map(|u| u.secret.clone()).collect();
        self.state.store(Arc::new(ListenerState {
            config,
            secrets,
            user_gates,
        }));
    }
}

/// Accepts connections on `listener` until `stop` fires.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<MtprotoService>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let labels = ListenerLabels {
        listener: service.name.clone(),
    };
    loop {
        let Some((stream, peer)) =
            crate::listener::accept_until(&listener, &stop, &service.name).await
        else {
            return;
        };
        let limit = service
            .state
            .load()
            .config
            .max_connections
            .unwrap_or(usize::MAX);
        let passes = shared.admit(&labels, &service.gate, limit);
        let Some(passes) = passes else {
            shared.metrics.refused(&service.name, "connection_limit");
            tracing::debug!(listener = service.name, %peer, "connection limit reached");
            continue;
        };
        tracker.spawn(serve(stream, peer, service.clone(), shared.clone(), passes));
    }
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    service: Arc<MtprotoService>,
    shared: Arc<Shared>,
    _passes: (Pass, Pass),
) {
    let registration = shared.conns.register();
    let entry = registration.entry();
    let labels = ListenerLabels {
        listener: service.name.clone(),
    };
    let open = shared
        .metrics
        .connections_open
        .get_or_create(&labels)
        .clone();
    open.inc();
    let state = service.state();
    let config = &state.config;
    let deadline = Instant::now() + config.handshake_timeout;
    let mut received = Vec::new();
    let ctx = HandshakeContext {
        config,
        secrets: &state.secrets,
        replays: &service.replays,
        now: unix_now(),
    };
    // Each phase is boxed: the task then holds only the state of the phase it is in, which
    // keeps idle sessions small (this future lives in every connection's task). The boxes are
    // made in `let` statements so that no unboxed temporary lives across the `.await`.
    let handshake = Box::pin(timeout_at(
        deadline,
        handshake::run(&mut stream, &mut received, ctx),
    ));
    let result = tokio::select! {
        r = handshake => r.unwrap_or_else(|_| Err(Reason::Timeout.into())),
        () = entry.killed().cancelled() => Err(Refusal { reason: Reason::Closed, answered: true, detail: None }),
    };
    match result {
        Ok(handshake::Accepted::Http) => {
            let serving = Box::pin(http::serve(stream, peer, received, &state, &shared, entry));
            serving.await;
        }
        Ok(handshake::Accepted::Mtproto(established)) => {
            drop(received);
            let session = Box::pin(session::run(
                stream,
                peer,
                established,
                &state,
                &shared,
                entry,
            ));
            session.await;
        }
        Err(refusal) => {
            let refusal = Box::pin(refuse(
                stream, peer, refusal, &received, deadline, &service, &shared, entry,
            ));
            refusal.await;
        }
    }
    open.dec();
}

#[allow(clippy::too_many_arguments)]
async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    received: &[u8],
    deadline: Instant,
    service: &MtprotoService,
    shared: &Shared,
    entry: &crate::relay::ConnEntry,
) {
    let reason = refusal.reason;
    let metrics = &shared.metrics;
    metrics
        .handshake_failures
        .get_or_create(&ReasonLabels {
            listener: service.name.clone(),
            reason: reason.as_str(),
        })
        .inc();
    if reason == Reason::Replay {
        metrics
            .replays
            .get_or_create(&ListenerLabels {
                listener: service.name.clone(),
            })
            .inc();
    }
    let detail = refusal.detail.as_deref().unwrap_or("");
    if reason.concerns_a_client() {
        tracing::info!(listener = service.name, %peer, reason = reason.as_str(), detail, "handshake refused");
    } else {
        tracing::debug!(listener = service.name, %peer, reason = reason.as_str(), detail, "handshake refused");
    }
    let outcome = if refusal.answered {
        masking::Outcome::Closed
    } else {
        let masking_config = service.state.load().config.masking.clone();
        tokio::select! {
            outcome = masking::handle(stream, received, masking_config.as_ref(), deadline, &shared.pool, entry) => outcome,
            () = entry.killed().cancelled() => masking::Outcome::Closed,
        }
    };
    metrics
        .masking
        .get_or_create(&ReasonLabels {
            listener: service.name.clone(),
            reason: outcome.as_str(),
        })
        .inc();
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
