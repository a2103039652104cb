//! The accept loop of a proxy listener and the start of each connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::Ctx;
use super::prelude::{self, Protocol};
use super::service::ProxyService;
use crate::gate::Pass;
use crate::inbound::{http, socks5};
use crate::server::Shared;
use crate::telemetry::metrics::ListenerLabels;

/// Accepts connections on `listener` until `stop` fires.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<ProxyService>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let labels = ListenerLabels {
        listener: service.name().to_owned(),
    };
    loop {
        let Some((stream, peer)) =
            crate::listener::accept_until(&listener, &stop, service.name()).await
        else {
            return;
        };
        let limit = service.state().config.max_connections.unwrap_or(usize::MAX);
        let passes = shared.admit(&labels, &service.gate, limit);
        let Some(passes) = passes else {
            shared.metrics.refused(service.name(), "connection_limit");
            tracing::debug!(listener = service.name(), %peer, "connection limit reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let t = tracker.clone();
        tracker.spawn(serve(
            stream,
            peer,
            service.clone(),
            shared.clone(),
            passes,
            t,
        ));
    }
}

async fn serve(
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    service: Arc<ProxyService>,
    shared: Arc<Shared>,
    _passes: (Pass, Pass),
    tracker: TaskTracker,
) {
    let registration = shared.conns.register();
    let entry = registration.entry();
    let open = shared
        .metrics
        .connections_open
        .get_or_create(&ListenerLabels {
            listener: service.name().to_owned(),
        })
        .clone();
    open.inc();
    let state = service.state();
    let deadline = Instant::now() + state.config.handshake_timeout;
    let local = stream.local_addr().unwrap_or(tcp_peer);
    let reading = Box::pin(timeout_at(
        deadline,
        prelude::read(&mut stream, tcp_peer, &state.config),
    ));
    let outcome = tokio::select! {
        r = reading => r,
        () = entry.killed().cancelled() => Ok(Err(prelude::PreludeError::Closed)),
    };
    let ctx = |peer| Ctx {
        shared: &shared,
        service: &service,
        state: &state,
        entry,
        peer,
        local,
        tracker: &tracker,
    };
    match outcome {
        Err(_) => ctx(tcp_peer).handshake_failure("timeout"),
        Ok(Err(e)) => {
            tracing::debug!(listener = service.name(), peer = %tcp_peer, reason = e.reason(), "connection dropped: {e}");
            ctx(tcp_peer).handshake_failure(e.reason());
        }
        Ok(Ok(p)) => {
            let ctx = ctx(p.peer);
            match p.protocol {
                Protocol::Socks5 => {
                    let run = Box::pin(socks5::serve(stream, p.buffered, deadline, ctx));
                    run.await;
                }
                Protocol::Socks4 => {
                    let run = Box::pin(socks5::socks4::serve(stream, p.buffered, deadline, ctx));
                    run.await;
                }
                Protocol::Http => {
                    let run = Box::pin(http::serve(stream, p.buffered, ctx));
                    run.await;
                }
            }
        }
    }
    open.dec();
}
