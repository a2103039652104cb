//! Forwarding absolute-form requests: the URI's authority names the origin (and wins over
//! `Host`), the request goes on in origin-form over a kept-alive connection to that origin,
//! hop-by-hop headers are scrubbed both ways, and a 101 answer to an upgrade request switches
//! both connections to a byte tunnel, only after the origin said 101.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use mtgate_proto::address::Address;

use super::UPGRADE_TIMEOUT;
use super::headers::{add_via, scrub, wants_upgrade};
use super::io::upstream_io;
use super::reply::{self, Body};
use super::service::{
    AbortOnDrop, ConnState, FORWARD, KeptUpstream, Pending, uri_for_log, user_pass,
};
use crate::auth::UserEntry;
use crate::gate::Pass;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::context::user_name;
use crate::outbound::{self, OutboundError};

/// A 101 switch waiting for both sides' sockets.
#[derive(Debug)]
pub struct PendingUpgrade {
    client: OnUpgrade,
    origin: OnUpgrade,
    target: Address,
    user: Option<Arc<UserEntry>>,
    _pass: Option<Pass>,
}

/// Forwards one request.
pub async fn handle(
    mut request: Request<Incoming>,
    user: Option<Arc<UserEntry>>,
    ctx: &Ctx<'_>,
    state: &ConnState,
) -> Response<Body> {
    let u = user.as_deref();
    let uri = request.uri().clone();
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        ctx.refused(u, FORWARD, &uri_for_log(&uri), "not_absolute_form");
        return reply::status(400, false);
    };
    if !scheme.eq_ignore_ascii_case("http") {
        ctx.refused(u, FORWARD, &uri_for_log(&uri), "unsupported_scheme");
        return reply::status(400, false);
    }
    let port = authority.port_u16().unwrap_or(80);
    let Ok(target) = Address::from_host(authority.host(), port) else {
        ctx.refused(u, FORWARD, &uri_for_log(&uri), "bad_target");
        return reply::status(400, false);
    };
    let pass = match user_pass(user.as_ref()) {
        Ok(p) => p,
        Err(response) => {
            ctx.refused(u, FORWARD, &target, "user_connection_limit");
            return response;
        }
    };
    let upgrade = wants_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let client_version = request.version();
    let (mut parts, body) = request.into_parts();
    parts.uri = uri.path_and_query().map_or_else(
        || Uri::from_static("/"),
        |pq| pq.as_str().parse().unwrap_or_default(),
    );
    parts.version = Version::HTTP_11;
    scrub(&mut parts.headers, upgrade);
    // The authority of the absolute-form target wins over any Host the client sent.
    let host = match authority.port() {
        Some(p) => format!("{}:{p}", authority.host()),
        None => authority.host().to_owned(),
    };
    match HeaderValue::from_str(&host) {
        Ok(v) => parts.headers.insert(header::HOST, v),
        Err(_) => return reply::status(400, false),
    };
    if ctx.config().http.via {
        add_via(&mut parts.headers, client_version);
    }
    let mut sender = match sender(state, &target, u, ctx).await {
        Ok(s) => s,
        Err(e) => {
            ctx.refused(u, FORWARD, &target, e.reason());
            return reply::status(e.status(), false);
        }
    };
    let sending = sender.sender.send_request(Request::from_parts(parts, body));
    let response = tokio::select! {
        r = tokio::time::timeout(ctx.config().idle_timeout, sending) => r,
        () = ctx.entry.killed().cancelled() => return reply::status(503, true),
    };
    let mut response = match response {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(listener = ctx.name(), target = ?target, error = %e, "origin failed");
            ctx.refused(u, FORWARD, &target, "origin_error");
            return reply::status(502, false);
        }
        Err(_) => {
            ctx.refused(u, FORWARD, &target, "origin_timeout");
            return reply::status(504, false);
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = client_upgrade else {
            ctx.refused(u, FORWARD, &target, "unrequested_upgrade");
            return reply::status(502, true);
        };
        let origin = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        scrub(&mut parts.headers, true);
        *state.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Pending::Upgrade(Box::new(PendingUpgrade {
                client,
                origin,
                target,
                user,
                _pass: pass,
            })));
        // The driver must live on until the origin's socket is handed over.
        sender.driver.detach();
        return Response::from_parts(parts, reply::empty());
    }
    ctx.count(u, FORWARD, "ok");
    *state.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    let (mut parts, body) = response.into_parts();
    scrub(&mut parts.headers, false);
    if ctx.config().http.via {
        add_via(&mut parts.headers, parts.version);
    }
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}

/// The kept connection to `target` if it is still usable, else a new one.
async fn sender(
    state: &ConnState,
    target: &Address,
    user: Option<&UserEntry>,
    ctx: &Ctx<'_>,
) -> Result<KeptUpstream, OutboundError> {
    let kept = state
        .upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(mut kept) = kept.filter(|k| &k.target == target) {
        let ready = tokio::time::timeout(ctx.config().idle_timeout, kept.sender.ready()).await;
        if matches!(ready, Ok(Ok(()))) {
            return Ok(kept);
        }
    }
    let route = ctx.route(user);
    let dialed = outbound::connect(target, &route).await?;
    let io = TokioIo::new(upstream_io(dialed));
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(1 << 20)
        .handshake::<_, Incoming>(io);
    let (sender, connection) = tokio::time::timeout(ctx.config().connect_timeout, handshake)
        .await
        .map_err(|_| mtgate_client::ConnectError::Timeout {
            stage: mtgate_client::Stage::Request,
            after: ctx.config().connect_timeout,
        })?
        .map_err(|e| mtgate_client::ConnectError::Io {
            stage: mtgate_client::Stage::Request,
            source: std::io::Error::other(e),
        })?;
    let driver = tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(KeptUpstream {
        target: target.clone(),
        sender,
        driver: AbortOnDrop(Some(driver)),
    })
}

/// Bridges a switched protocol between the client and the origin until either ends.
pub async fn finish_upgrade(pending: PendingUpgrade, ctx: Ctx<'_>) {
    let user = pending.user.as_deref();
    let both = async { tokio::try_join!(pending.client, pending.origin) };
    let (client, origin) = match tokio::time::timeout(UPGRADE_TIMEOUT, both).await {
        Ok(Ok(pair)) => pair,
        _ => {
            ctx.count(user, "upgrade", "client_gone");
            return;
        }
    };
    let (mut client, mut origin) = (TokioIo::new(client), TokioIo::new(origin));
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut origin, 16 << 10, 16 << 10);
    let outcome = tokio::select! {
        r = copy => if r.is_ok() { "ok" } else { "io" },
        () = ctx.entry.killed().cancelled() => "closed_by_proxy",
    };
    ctx.count(user, "upgrade", outcome);
    tracing::debug!(listener = ctx.name(), peer = %ctx.peer, user = user_name(user), target = ?pending.target, outcome, "upgraded connection closed");
}
