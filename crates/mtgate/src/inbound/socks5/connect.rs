//! SOCKS5 CONNECT: check, dial, answer with the real bound address, relay.

use mtgate_proto::address::Address;
use mtgate_proto::socks5::{Reply, Response};
use tokio::net::TcpStream;

use super::reply::{fail, send};
use crate::auth::UserEntry;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::tunnel::{self, Tunnel};
use crate::outbound::{self, Dialed, OutboundError};

/// The metric name of the command.
pub const COMMAND: &str = "connect";

/// Opens the destination for a CONNECT (or SOCKS4 CONNECT) request, honouring the user's
/// connection limit and the kill switch.
pub async fn dial(
    target: &Address,
    user: Option<&UserEntry>,
    ctx: &Ctx<'_>,
) -> Result<(Dialed, Option<crate::gate::Pass>), (Reply, &'static str)> {
    let pass = match user {
        Some(u) => match u
            .gate
            .try_enter(u.config.max_connections.unwrap_or(usize::MAX))
        {
            Some(pass) => Some(pass),
            None => return Err((Reply::NotAllowed, "user_connection_limit")),
        },
        None => None,
    };
    let route = ctx.route(user);
    let dialing = Box::pin(outbound::connect(target, &route));
    let dialed = tokio::select! {
        d = dialing => d,
        () = ctx.entry.killed().cancelled() => return Err((Reply::GeneralFailure, "closed_by_proxy")),
    };
    match dialed {
        Ok(d) => Ok((d, pass)),
        Err(e) => {
            if let OutboundError::Connect(c) = &e {
                tracing::debug!(listener = ctx.name(), target = ?target, error = %c, "cannot reach the destination");
            }
            Err((e.reply(), e.reason()))
        }
    }
}

/// Runs a CONNECT request. `early` holds bytes the client sent after its request.
pub async fn run(
    stream: TcpStream,
    early: Vec<u8>,
    target: Address,
    user: Option<&UserEntry>,
    ctx: Ctx<'_>,
) {
    let (dialed, _pass) = match dial(&target, user, &ctx).await {
        Ok(ok) => ok,
        Err((reply, reason)) => {
            ctx.refused(user, COMMAND, &target, reason);
            return fail(stream, reply).await;
        }
    };
    let bound = dialed
        .local_addr()
        .map_or_else(Address::unspecified, |a| Address::Socket(canonical(a)));
    let mut answer = Vec::new();
    Response::new(Reply::Succeeded, bound).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_err() {
        ctx.count(user, COMMAND, "client_gone");
        return;
    }
    let t = Tunnel {
        user,
        command: COMMAND,
        target: &target,
    };
    tunnel::run(stream, dialed, &early, ctx, t).await;
}

/// IPv4-mapped IPv6 addresses as plain IPv4 (what a client expects to see).
pub fn canonical(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
