//! CONNECT: check the port and the rules, dial, answer 200, and once hyper hands the socket
//! back, relay it with the shared relay (the socket underneath hyper is taken back whole, so
//! the tunnel is a plain TCP↔TCP relay like SOCKS).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mtgate_proto::address::Address;

use super::UPGRADE_TIMEOUT;
use super::io::Prefixed;
use super::reply::{self, Body};
use super::service::{ConnState, Pending, uri_for_log, user_pass};
use crate::auth::UserEntry;
use crate::gate::Pass;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::tunnel::{self, Tunnel};
use crate::outbound::{self, Dialed};

/// The metric name of the command.
pub const COMMAND: &str = "connect";

/// A granted CONNECT waiting for hyper to hand the socket back.
#[derive(Debug)]
pub struct PendingTunnel {
    on_upgrade: OnUpgrade,
    dialed: Dialed,
    target: Address,
    user: Option<Arc<UserEntry>>,
    _pass: Option<Pass>,
}

/// Answers a CONNECT request.
pub async fn handle(
    mut request: Request<Incoming>,
    user: Option<Arc<UserEntry>>,
    ctx: &Ctx<'_>,
    state: &ConnState,
) -> Response<Body> {
    let target = request
        .uri()
        .authority()
        .and_then(|a| Some((a.host(), a.port_u16()?)))
        .and_then(|(host, port)| Address::from_host(host, port).ok());
    let Some(target) = target else {
        ctx.refused(
            user.as_deref(),
            COMMAND,
            &uri_for_log(request.uri()),
            "bad_target",
        );
        return reply::status(400, true);
    };
    let allowed = &ctx.config().http.connect_ports;
    if !allowed.iter().any(|r| r.contains(&target.port())) {
        // Refused CONNECTs close: whatever the client sent after its request is meant for the
        // tunnel and must not be read as the next request.
        ctx.refused(user.as_deref(), COMMAND, &target, "port_not_allowed");
        return reply::status(403, true);
    }
    let pass = match user_pass(user.as_ref()) {
        Ok(p) => p,
        Err(response) => {
            ctx.refused(user.as_deref(), COMMAND, &target, "user_connection_limit");
            return response;
        }
    };
    let route = ctx.route(user.as_deref());
    let dialing = Box::pin(outbound::connect(&target, &route));
    let dialed = tokio::select! {
        d = dialing => d,
        () = ctx.entry.killed().cancelled() => return reply::status(503, true),
    };
    let dialed = match dialed {
        Ok(d) => d,
        Err(e) => {
            ctx.refused(user.as_deref(), COMMAND, &target, e.reason());
            return reply::status(e.status(), true);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    *state.pending.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(Pending::Tunnel(Box::new(PendingTunnel {
            on_upgrade,
            dialed,
            target,
            user,
            _pass: pass,
        })));
    let mut response = Response::new(reply::empty());
    *response.status_mut() = StatusCode::OK;
    response
        .extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(
            b"Connection established",
        ));
    response
}

/// Runs the tunnel once hyper has sent the 200 and handed the socket back.
pub async fn finish(pending: PendingTunnel, ctx: Ctx<'_>) {
    let user = pending.user.as_deref();
    let upgraded = match tokio::time::timeout(UPGRADE_TIMEOUT, pending.on_upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        _ => {
            ctx.count(user, COMMAND, "client_gone");
            return;
        }
    };
    let parts = match upgraded.downcast::<TokioIo<Prefixed>>() {
        Ok(parts) => parts,
        Err(_) => {
            tracing::error!(
                listener = ctx.name(),
                "hyper returned an unexpected stream type"
            );
            ctx.count(user, COMMAND, "internal_error");
            return;
        }
    };
    let (stream, mut early) = parts.io.into_inner().into_parts();
    early.extend_from_slice(&parts.read_buf);
    let t = Tunnel {
        user,
        command: COMMAND,
        target: &pending.target,
    };
    tunnel::run(stream, pending.dialed, &early, ctx, t).await;
}
