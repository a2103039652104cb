//! The `websocket` listener: terminates ws and wss, checks the upgrade request (route, origin,
//! credentials, client certificate), opens a WebSocket to a backend from the route's pool with
//! the client's subprotocols, answers the client's upgrade with the backend's choice, then
//! relays frames.
//!
//! - [`handshake`]: the client's request, the checks and the answers (no I/O);
//! - [`backend`]: mtgate's own upgrade towards the backend;
//! - [`session`]: the frame relay, limits ([`message`]), heartbeats and closes;
//! - [`live`]: live sessions for the admin API, and metrics.
//!
//! permessage-deflate is not negotiated: the offer is not passed to backends and an extension
//! in a backend's 101 is refused, so frames pass as they are.

pub mod backend;
pub mod deadline;
pub mod halves;
pub mod handshake;
pub mod head_io;
pub mod live;
pub mod message;
pub mod prefixed;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use mtgate_client::InFlight;
use mtgate_proto::http1::Limits;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::websocket::WebsocketListenerConfig;
use crate::gate::{Gate, Pass};
use crate::inbound::full::FullAnswers;
use crate::outbound::ClientKey;
use crate::server::Shared;
use crate::telemetry::metrics::ListenerLabels;
use backend::BackendError;
use handshake::Refusal;
use live::{Counters, LiveSession};
use message::MessageLimits;
use session::{BoxWrite, Halves, Timing};

pub use live::WebsocketState;

/// Time to write a refusal.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// One `[[websocket]]` listener at run time.
#[derive(Debug)]
pub struct WebsocketService {
    name: String,
    config: ArcSwap<WebsocketListenerConfig>,
    gate: Arc<Gate>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl WebsocketService {
    /// A service for `config`.
    pub fn new(config: WebsocketListenerConfig) -> Self {
        Self {
            name: config.name.clone(),
            tls: config.tls.clone(),
            config: ArcSwap::from_pointee(config),
            gate: Arc::default(),
        }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings now.
    pub fn config(&self) -> Arc<WebsocketListenerConfig> {
        self.config.load_full()
    }

    /// Applies reloaded settings to new connections (TLS files need a restart).
    pub fn apply(&self, config: WebsocketListenerConfig) {
        self.config.store(Arc::new(config));
    }
}

/// Accepts until `stop` fires; sessions get `stop` too, and close with 1001 when it does.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<WebsocketService>,
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
        let limit = service.config().max_connections.unwrap_or(usize::MAX);
        let passes = shared.admit(&labels, &service.gate, limit);
        let Some(passes) = passes else {
            count(&shared, &service, Refusal::Busy.label());
            // A short answer, so a full listener says why.
            full.send(
                stream,
                service.tls.clone(),
                Refusal::Busy.response(),
                &tracker,
            );
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

fn count(shared: &Shared, service: &WebsocketService, reason: &'static str) {
    shared.metrics.refused(&service.name, reason);
}

/// What the handshake phase produced.
struct Opened {
    client: Halves,
    backend: Halves,
    live: LiveSession,
    /// The backend's place in its pool's in-flight count, held for the session.
    _in_flight: Option<InFlight>,
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    service: Arc<WebsocketService>,
    shared: Arc<Shared>,
    _passes: (Pass, Pass),
    stop: CancellationToken,
) {
    let registration = shared.conns.register();
    let entry = registration.entry();
    let config = service.config();
    let opening = open(tcp, peer, &service, &shared, &config);
    let opened = tokio::select! {
        r = tokio::time::timeout(config.handshake_timeout, opening) => r,
        () = entry.killed().cancelled() => return,
        () = stop.cancelled() => return,
    };
    let opened = match opened {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(_) => {
            count(&shared, &service, "handshake_timeout");
            return;
        }
    };
    let ws = &shared.websocket;
    let labels = ListenerLabels {
        listener: service.name.clone(),
    };
    ws.metrics.sessions.get_or_create(&labels).inc();
    let open_gauge = ws.metrics.sessions_open.get_or_create(&labels).clone();
    open_gauge.inc();
    let tracked = ws.track(opened.live);
    let live = tracked.session().clone();
    let limits = MessageLimits {
        max_payload: config.max_payload,
        max_fragments: config.max_fragments,
    };
    let timing = Timing {
        idle_timeout: config.idle_timeout,
        ping_interval: config.ping_interval,
        pong_timeout: config
            .ping_interval
            .map_or(config.pong_timeout, |i| config.pong_timeout.min(i)),
        close_timeout: config.close_timeout,
    };
    let ending = session::run(
        opened.client,
        opened.backend,
        live.clone(),
        limits,
        timing,
        entry,
        stop,
    )
    .await;
    open_gauge.dec();
    let m = &ws.metrics;
    m.closes
        .get_or_create(&live::CloseLabels {
            listener: service.name.clone(),
            reason: ending.label(),
        })
        .inc();
    tracing::debug!(listener = service.name, %peer, ending = ending.label(), "websocket session ended");
}

/// TLS, the upgrade request, the checks, the backend and the two 101s. `None` when refused
/// (the refusal was answered and counted).
async fn open(
    tcp: TcpStream,
    peer: SocketAddr,
    service: &WebsocketService,
    shared: &Shared,
    config: &WebsocketListenerConfig,
) -> Option<Opened> {
    let mut client = match &service.tls {
        None => Halves::tcp(tcp),
        Some(tls) => match tokio_rustls::TlsAcceptor::from(tls.clone())
            .accept(tcp)
            .await
        {
            Ok(tls) => Halves::split(tls),
            Err(e) => {
                tracing::debug!(listener = service.name, %peer, error = %e, "TLS handshake failed");
                count(shared, service, "tls");
                return None;
            }
        },
    };
    let (request, early) = match head_io::read_request(&mut client.read, &Limits::default()).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(listener = service.name, %peer, error = %e, "no upgrade request");
            count(shared, service, "bad_request");
            let _ = refuse(&mut client.write, Refusal::BadRequest("malformed request")).await;
            return None;
        }
    };
    let upgrade = match handshake::check(&request, config) {
        Ok(upgrade) => upgrade,
        Err(refusal) => {
            // The query is left out of logs: it may carry a secret.
            let path = request.target.split(['?', '#']).next().unwrap_or("");
            tracing::debug!(listener = service.name, %peer, path = ?path, %refusal, "upgrade refused");
            count(shared, service, refusal.label());
            let _ = refuse(&mut client.write, refusal).await;
            return None;
        }
    };
    let refuse_with = |refusal: Refusal| {
        count(shared, service, refusal.label());
        refusal
    };
    let Some(pool) = shared.pools.get(&upgrade.route.pool) else {
        let _ = refuse(&mut client.write, refuse_with(Refusal::BadGateway)).await;
        return None;
    };
    let key = ClientKey::new(peer.ip());
    let mut stream = match pool.pool.connect_any_keyed(key.as_bytes()).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::info!(listener = service.name, pool = upgrade.route.pool, %peer, error = %e, "no backend");
            let _ = refuse(&mut client.write, refuse_with(Refusal::BadGateway)).await;
            return None;
        }
    };
    let info = stream.info();
    let backend_name = info.pool_member.clone().unwrap_or_default();
    let authority = format!(
        "{}:{}",
        info.target.host_for_authority(),
        info.target.port()
    );
    let accepted = match backend::handshake(&mut stream, &upgrade, peer, &authority).await {
        Ok(accepted) => accepted,
        Err(BackendError::Status(status, reason)) => {
            // The backend's own refusal (401, 403, 404…) is the client's answer.
            count(shared, service, "backend_refused");
            let answer = format!(
                "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                reason.replace(['\r', '\n'], "")
            );
            let _ = client.write.write_all(answer.as_bytes()).await;
            return None;
        }
        Err(e) => {
            tracing::info!(listener = service.name, backend = backend_name, %peer, error = %e, "backend handshake failed");
            let _ = refuse(&mut client.write, refuse_with(Refusal::BadGateway)).await;
            return None;
        }
    };
    let answer = handshake::switching_protocols(&upgrade.key, accepted.protocol.as_deref());
    if client.write.write_all(&answer).await.is_err() || client.write.flush().await.is_err() {
        return None;
    }
    let path = upgrade
        .target
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_owned();
    let live = LiveSession {
        listener: service.name.clone(),
        path,
        peer,
        backend: backend_name,
        pool: upgrade.route.pool.clone(),
        protocol: accepted.protocol,
        user: upgrade.user,
        started: tokio::time::Instant::now(),
        up: Counters::new(
            &shared.websocket.metrics,
            &service.name,
            "client_to_backend",
        ),
        down: Counters::new(
            &shared.websocket.metrics,
            &service.name,
            "backend_to_client",
        ),
    };
    // A plain TCP backend splits without a lock; TLS (wss://, an https:// hop) needs one.
    let (backend, in_flight) = match stream.into_tcp() {
        Ok(tunnel) => {
            let (tcp, prefix, in_flight) = tunnel.into_parts();
            (Halves::tcp(tcp).prefixed(prefix), Some(in_flight))
        }
        Err(stream) => (Halves::split(stream), None),
    };
    Some(Opened {
        client: client.prefixed(early),
        backend: backend.prefixed(accepted.rest),
        live,
        _in_flight: in_flight,
    })
}

async fn refuse(client: &mut BoxWrite, refusal: Refusal) -> std::io::Result<()> {
    let writing = async {
        client.write_all(&refusal.response()).await?;
        client.shutdown().await
    };
    tokio::time::timeout(REFUSAL_TIMEOUT, writing)
        .await
        .unwrap_or(Ok(()))
}
