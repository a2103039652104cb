//! SOCKS4 and SOCKS4a CONNECT on the SOCKS5 port. SOCKS4 carries no password, so listeners
//! with users refuse it; BIND is not offered over SOCKS4.

use std::net::{IpAddr, Ipv4Addr};

use mtgate_proto::address::Address;
use mtgate_proto::socks4::{Command, Host, Reply, ReplyCode, Request};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::connect::dial;
use super::reply::{close_after_failure, send};
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::prelude::read_more;
use crate::inbound::proxy::tunnel::{self, Tunnel};

/// The metric name of the command.
const COMMAND: &str = "socks4";

/// Longest SOCKS4a request (two 255-byte fields).
const MAX_REQUEST: usize = 8 + 256 + 256;

/// Serves one SOCKS4/4a client whose first bytes are in `buf`.
pub async fn serve(mut stream: TcpStream, mut buf: Vec<u8>, deadline: Instant, ctx: Ctx<'_>) {
    let reading = async {
        loop {
            match Request::parse(&buf) {
                Ok(Some((request, used))) => {
                    buf.drain(..used);
                    return Ok(request);
                }
                Ok(None) => match read_more(&mut stream, &mut buf, MAX_REQUEST).await {
                    Ok(0) | Err(_) => return Err("closed"),
                    Ok(_) => {}
                },
                Err(_) => return Err("malformed_request"),
            }
        }
    };
    let request = match timeout_at(deadline, reading).await {
        Ok(Ok(r)) => r,
        Ok(Err(reason)) => return refuse(stream, &ctx, reason, reason != "closed").await,
        Err(_) => return refuse(stream, &ctx, "timeout", false).await,
    };
    if ctx.state.users.required() {
        ctx.refused(None, COMMAND, &request.host, "socks4_needs_auth");
        return reject(stream).await;
    }
    if request.command != Command::Connect {
        ctx.refused(None, COMMAND, &request.host, "unsupported_command");
        return reject(stream).await;
    }
    let target = match &request.host {
        Host::Ip(ip) => Address::Socket((IpAddr::V4(*ip), request.port).into()),
        Host::Domain(name) => match Address::from_host(name, request.port) {
            Ok(a) => a,
            Err(_) => {
                ctx.refused(None, COMMAND, &request.host, "bad_domain");
                return reject(stream).await;
            }
        },
    };
    let (dialed, _pass) = match dial(&target, None, &ctx).await {
        Ok(ok) => ok,
        Err((_, reason)) => {
            ctx.refused(None, COMMAND, &target, reason);
            return reject(stream).await;
        }
    };
    let (ip, port) = match dialed.local_addr().map(super::connect::canonical) {
        Some(std::net::SocketAddr::V4(a)) => (*a.ip(), a.port()),
        _ => (Ipv4Addr::UNSPECIFIED, 0),
    };
    let mut answer = Vec::new();
    Reply {
        code: ReplyCode::Granted,
        port,
        ip,
    }
    .write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_err() {
        return;
    }
    let t = Tunnel {
        user: None,
        command: COMMAND,
        target: &target,
    };
    tunnel::run(stream, dialed, &buf, ctx, t).await;
}

async fn refuse(stream: TcpStream, ctx: &Ctx<'_>, reason: &'static str, answer: bool) {
    ctx.handshake_failure(reason);
    if answer {
        reject(stream).await;
    }
}

async fn reject(stream: TcpStream) {
    let mut answer = Vec::new();
    Reply::new(ReplyCode::Rejected).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_ok() {
        close_after_failure(stream).await;
    }
}
