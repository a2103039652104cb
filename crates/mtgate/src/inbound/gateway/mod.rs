//! The `gateway` listener: agents dial in over wss (or ws behind a TLS terminator), prove who
//! they are before the 101 (Basic, Bearer, a client certificate, or for AnyProxy JSON the
//! first `auth` message), and their connection joins the gateway's [`Registry`] until it
//! ends. The proxy listeners then open streams through them.
//!
//! - [`upgrade`]: TLS, the upgrade request, the lockout and the credentials, up to a
//!   WebSocket positioned after the 101;
//! - [`forward`]: remote port forwarding (AnyProxy's `open_ports`) for an agent's LISTEN;
//!   [`forward_udp`] serves the UDP ones.

pub mod forward;
pub mod forward_udp;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mtgate_proto::tunnel::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Lockout;
use crate::config::gateway::GatewayConfig;
use crate::gate::{Gate, Pass};
use crate::inbound::full::FullAnswers;
use crate::server::Shared;
use crate::telemetry::metrics::ListenerLabels;
use crate::tunnel::gateway::auth::{self, Chain};
use crate::tunnel::gateway::handshake::Refusal;
use crate::tunnel::gateway::registry::{Registry, ReplicaInfo};
use crate::tunnel::mux::{Inbound, Incoming, Mux, MuxConfig};

/// Time to write a refusal.
const REFUSAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One `[[gateway]]` listener at run time.
#[derive(Debug)]
pub struct GatewayService {
    name: String,
    config: ArcSwap<GatewayConfig>,
    auth: ArcSwap<Chain>,
    gate: Arc<Gate>,
    tls: Option<Arc<rustls::ServerConfig>>,
    lockout: Lockout,
    registry: Arc<Registry>,
    forwards: Arc<forward::ForwardTable>,
}

impl GatewayService {
    /// A service for `config` whose agents join `registry`.
    pub fn new(config: GatewayConfig, registry: Arc<Registry>) -> Self {
        warn_about(&config);
        Self {
            name: config.name.clone(),
            tls: config.tls.clone(),
            auth: ArcSwap::from_pointee(auth::chain(&config)),
            config: ArcSwap::from_pointee(config),
            gate: Arc::default(),
            lockout: Lockout::default(),
            registry,
            forwards: Arc::default(),
        }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings now.
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.config.load_full()
    }

    /// The agents.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Applies reloaded settings (credentials, limits, timeouts) to new connections; TLS files
    /// and listen addresses need a restart.
    pub fn apply(&self, config: GatewayConfig) {
        warn_about(&config);
        self.auth.store(Arc::new(auth::chain(&config)));
        self.config.store(Arc::new(config));
    }

    fn count(&self, shared: &Shared, reason: &'static str) {
        shared.metrics.refused(&self.name, reason);
    }
}

/// Says loudly what is risky in `config` (logging is up by the time services start).
fn warn_about(config: &GatewayConfig) {
    if config.tls.is_none() && config.exposed() {
        tracing::warn!(
            gateway = config.name,
            addrs = ?config.listen,
            "plain ws beyond loopback: agents' credentials cross the network in clear unless a TLS terminator is in front"
        );
    }
    let plain = config.credentials.iter().filter(|c| {
        matches!(&c.secret, crate::config::gateway::CredentialSecret::Password(p) if !p.is_hash())
    });
    for credential in plain {
        tracing::warn!(
            gateway = config.name,
            user = ?credential.username.as_deref().unwrap_or(""),
            "plain-text agent password in the config: store an argon2 hash instead (mtgate hash-password)"
        );
    }
}

/// Accepts until `stop` fires; agent connections get GOAWAY when it does.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<GatewayService>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let labels = ListenerLabels {
        listener: service.name.clone(),
    };
    let full = FullAnswers::default();
    loop {
        let Some((stream, peer)) =
            crate::listener::accept_until(&listener, &stop, &service.name).await
        else {
            return;
        };
        let limit = service.config().max_agents.unwrap_or(usize::MAX);
        let passes = shared.admit(&labels, &service.gate, limit);
        let Some(passes) = passes else {
            service.count(&shared, Refusal::Busy.label());
            tracing::debug!(gateway = service.name, %peer, "agent refused: max_agents");
            let answer = Refusal::Busy.response();
            full.send(stream, service.tls.clone(), answer, &tracker);
            continue;
        };
        tracker.spawn(serve(
            stream,
            peer,
            service.clone(),
            shared.clone(),
            passes,
            stop.clone(),
        ));
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    service: Arc<GatewayService>,
    shared: Arc<Shared>,
    _passes: (Pass, Pass),
    stop: CancellationToken,
) {
    let registration = shared.conns.register();
    let entry = registration.entry();
    let config = service.config();
    let auth = service.auth.load_full();
    let opening = upgrade::accept(tcp, peer, &service, &shared, &config, &auth);
    let accepted = tokio::select! {
        r = tokio::time::timeout(config.handshake_timeout, opening) => r,
        () = entry.killed().cancelled() => return,
        () = stop.cancelled() => return,
    };
    let accepted = match accepted {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return,
        Err(_) => {
            service.count(&shared, "handshake_timeout");
            tracing::debug!(gateway = service.name, %peer, "agent handshake timed out");
            return;
        }
    };
    let mux_config = MuxConfig {
        // Agents may not open streams into the gateway's network: keep the queue short.
        max_inbound_streams: 16,
        ping_interval: config.ping_interval,
        pong_timeout: config.pong_timeout,
        open_timeout: config.open_timeout,
        ..MuxConfig::default()
    };
    let (mux, incoming) = Mux::start(
        accepted.ws,
        crate::tunnel::mux::Role::Gateway,
        accepted.codec,
        mux_config,
    );
    let info = ReplicaInfo {
        client_id: accepted.client_id,
        group: accepted.group,
        identity: accepted.identity,
        peer,
        protocol: accepted.protocol_name,
    };
    tracing::info!(
        gateway = service.name,
        %peer,
        group = info.group,
        client_id = ?info.client_id,
        protocol = info.protocol,
        "agent connected"
    );
    let id = service
        .registry
        .add(info.clone(), mux.clone(), config.max_streams_per_agent);
    let requests = tokio::spawn(serve_requests(
        incoming,
        info.clone(),
        service.clone(),
        config.clone(),
        stop.clone(),
    ));
    tokio::select! {
        () = mux.closed() => {}
        () = entry.killed().cancelled() => mux.close(),
        () = stop.cancelled() => {
            // Drain: no new streams; the agent reconnects elsewhere or after the restart.
            mux.go_away();
            tokio::select! {
                () = mux.closed() => {}
                () = entry.killed().cancelled() => mux.close(),
            }
        }
    }
    service.registry.remove(id);
    requests.abort();
    tracing::info!(gateway = service.name, %peer, group = info.group, client_id = ?info.client_id, "agent disconnected");
}

/// Serves the agent's requests: LISTENs become forwarded ports; OPENs are refused (agents do
/// not reach into the gateway's network).
async fn serve_requests(
    mut incoming: Incoming,
    agent: ReplicaInfo,
    service: Arc<GatewayService>,
    config: Arc<GatewayConfig>,
    stop: CancellationToken,
) {
    while let Some(request) = incoming.next().await {
        match request {
            Inbound::Open(open) => {
                tracing::debug!(target = ?open.target(), "agent tried to open a stream: refused");
                open.reject(
                    ErrorCode::ForbiddenHost,
                    "agents cannot open streams through the gateway",
                );
            }
            Inbound::Listen(listen) => {
                forward::listen(
                    listen,
                    &agent,
                    &service.forwards,
                    &service.registry,
                    &config,
                    &stop,
                )
                .await;
            }
        }
    }
}
