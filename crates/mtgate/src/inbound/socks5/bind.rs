//! SOCKS5 BIND: listen on the address the client reached the proxy at, tell the client where
//! (first reply), accept one connection, check it against the rules (command `bind`, and the
//! address the client named, unless zeros), tell the client who came (second reply), relay.

use mtgate_proto::address::Address;
use mtgate_proto::socks5::{Reply, Response};
use tokio::net::{TcpListener, TcpStream};

use super::connect::canonical;
use super::reply::{fail, send};
use crate::acl::{self, Command, Destination};
use crate::auth::UserEntry;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::tunnel::{self, Tunnel};
use crate::outbound::Dialed;

/// The metric name of the command.
const COMMAND: &str = "bind";

/// Runs a BIND request; `expected` is the peer the client expects (zeros: anyone allowed).
pub async fn run(stream: TcpStream, expected: Address, user: Option<&UserEntry>, ctx: Ctx<'_>) {
    macro_rules! refuse {
        ($reply:expr, $reason:expr) => {{
            ctx.refused(user, COMMAND, &expected, $reason);
            return fail(stream, $reply).await;
        }};
    }
    if !ctx.config().bind {
        refuse!(Reply::CommandNotSupported, "bind_disabled");
    }
    if ctx.pool(user).is_some() || ctx.config().gateway.is_some() {
        refuse!(Reply::CommandNotSupported, "bind_through_upstream");
    }
    // Rules that refuse BIND whatever the peer (by command, port or name) answer now, before
    // a port is opened; the peer's address is checked again when it connects.
    let host = expected.host();
    let early = Destination {
        host: &host,
        ip: None,
        port: expected.port(),
        command: Command::Bind,
    };
    if acl::denied_before_resolution(&ctx.route(user).rules, &early) {
        refuse!(Reply::NotAllowed, "denied_by_rule");
    }
    let _pass = match user {
        Some(u) => match u
            .gate
            .try_enter(u.config.max_connections.unwrap_or(usize::MAX))
        {
            Some(p) => Some(p),
            None => refuse!(Reply::NotAllowed, "user_connection_limit"),
        },
        None => None,
    };
    let listener = match TcpListener::bind((ctx.local.ip().to_canonical(), 0)).await {
        Ok(l) => l,
        Err(_) => refuse!(Reply::GeneralFailure, "bind_failed"),
    };
    let Ok(listening) = listener.local_addr() else {
        refuse!(Reply::GeneralFailure, "bind_failed");
    };
    let mut answer = Vec::new();
    Response::new(Reply::Succeeded, Address::Socket(listening)).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_err() {
        return;
    }
    // Wait for the peer, for as long as a tunnel may idle, unless the client gives up.
    let waiting = async {
        tokio::select! {
            accepted = listener.accept() => accepted.ok(),
            () = client_gone(&stream) => None,
            () = ctx.entry.killed().cancelled() => None,
        }
    };
    let Ok(Some((peer_stream, peer))) =
        tokio::time::timeout(ctx.config().idle_timeout, waiting).await
    else {
        ctx.count(user, COMMAND, "no_peer");
        return;
    };
    drop(listener);
    let peer = canonical(peer);
    let expected_ip = match &expected {
        Address::Socket(a) if !a.ip().is_unspecified() => Some(a.ip().to_canonical()),
        _ => None,
    };
    let host = peer.ip().to_string();
    let verdict = acl::check(
        &ctx.route(user).rules,
        &Destination {
            host: &host,
            ip: Some(peer.ip()),
            port: peer.port(),
            command: Command::Bind,
        },
    );
    if expected_ip.is_some_and(|ip| ip != peer.ip()) {
        refuse!(Reply::NotAllowed, "unexpected_peer");
    }
    if !verdict.is_allowed() {
        refuse!(Reply::NotAllowed, verdict.reason());
    }
    let _ = peer_stream.set_nodelay(true);
    let mut answer = Vec::new();
    Response::new(Reply::Succeeded, Address::Socket(peer)).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_err() {
        return;
    }
    let t = Tunnel {
        user,
        command: COMMAND,
        target: &peer,
    };
    tunnel::run(stream, Dialed::Direct(peer_stream), &[], ctx, t).await;
}

/// Resolves when the client closes (or breaks) its connection; bytes it sends are dropped.
async fn client_gone(stream: &TcpStream) {
    let mut scratch = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut scratch) {
            Ok(0) => return,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
            _ => {}
        }
    }
}
