//! The HTTP forward proxy: absolute-form requests forwarded in origin-form, and CONNECT
//! tunnels. hyper frames the messages (both towards the client and towards the origin), so
//! bodies, chunked coding and keep-alive follow its tested code; this module adds the proxy's
//! rules: authentication (407 with a Basic challenge), the smuggling defences and hop-by-hop
//! scrub of [`headers`] (with the raw-head look of [`tap`] for the one pattern hyper hides),
//! the rules and the CONNECT port allow-list, `Via`.
//!
//! A CONNECT tunnel or a 101 upgrade outlives hyper's connection: the service leaves it in the
//! connection's [`service::ConnState`], hyper hands the socket back once the response is out,
//! and the tunnel runs on in the same task ([`connect`], [`forward`]).

pub mod connect;
pub mod forward;
pub mod headers;
pub mod io;
pub mod reply;
pub mod service;
pub mod tap;

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::proxy::Ctx;
use io::Prefixed;
use service::{ConnState, Pending};
use tap::HeadTap;

/// Serves one HTTP client whose first bytes are in `buffered`.
pub async fn serve(stream: TcpStream, buffered: Vec<u8>, ctx: Ctx<'_>) {
    let config = ctx.config();
    let tap = HeadTap::shared(config.http.max_header_size.max(8192) + 4096);
    let state = ConnState::new(tap.clone());
    let service = hyper::service::service_fn(|request| service::handle(request, &ctx, &state));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.handshake_timeout)
        .max_buf_size(config.http.max_header_size.max(8192))
        .max_headers(config.http.max_headers)
        .keep_alive(true);
    {
        let connection = builder
            .serve_connection(TokioIo::new(Prefixed::new(buffered, stream, tap)), service)
            .with_upgrades();
        // hyper's header read timeout also bounds how long a keep-alive connection may wait
        // for its next request.
        let result = tokio::select! {
            r = connection => Some(r),
            () = ctx.entry.killed().cancelled() => None,
        };
        if let Some(Err(e)) = &result {
            tracing::debug!(listener = ctx.name(), peer = %ctx.peer, error = %e, "HTTP connection ended");
        }
    }
    let pending = state
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match pending {
        Some(Pending::Tunnel(tunnel)) => connect::finish(*tunnel, ctx).await,
        Some(Pending::Upgrade(upgrade)) => forward::finish_upgrade(*upgrade, ctx).await,
        None => {}
    }
}

/// How long hyper may take to hand over an upgraded connection.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
