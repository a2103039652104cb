//! The SOCKS5 server (RFC 1928, RFC 1929), with SOCKS4/4a on the same port ([`socks4`]).
//!
//! The negotiation runs under the handshake deadline: the method is chosen from the client's
//! offer only (`ff` when nothing fits), credentials are checked in constant time with the
//! lockout, and the request is parsed with its exact refusals (`07` unknown command, `08`
//! unknown address type, `01` empty or non-UTF-8 domain). Then [`connect`], [`udp`] or
//! [`bind`] takes over. After any failure reply the server stops sending and closes.

pub mod bind;
pub mod connect;
pub mod reply;
pub mod socks4;
pub mod udp;

use std::sync::Arc;

use mtgate_proto::socks5::{
    Command, Error, Greeting, Method, MethodSelection, Reply, Request, Response, UserPassRequest,
    UserPassResponse,
};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::proxy::Ctx;
use super::proxy::context::AuthOutcome;
use super::proxy::prelude::read_more;
use crate::auth::UserEntry;
use reply::{close_after_failure, send};

/// Longest SOCKS5 negotiation message (a request with a 255-byte domain, or credentials).
const MAX_MESSAGE: usize = 1024;

/// A negotiated request.
struct Negotiated {
    user: Option<Arc<UserEntry>>,
    request: Request,
}

/// Why a negotiation stopped: what to send (if anything) and a reason code.
struct Stop {
    reason: &'static str,
    answer: Option<Vec<u8>>,
}

impl Stop {
    fn silent(reason: &'static str) -> Self {
        Self {
            reason,
            answer: None,
        }
    }

    fn reply(reason: &'static str, reply: Reply) -> Self {
        let mut answer = Vec::new();
        Response::failure(reply).write_to_buf(&mut answer);
        Self {
            reason,
            answer: Some(answer),
        }
    }
}

/// Serves one SOCKS5 client whose first bytes are in `buf`.
pub async fn serve(mut stream: TcpStream, mut buf: Vec<u8>, deadline: Instant, ctx: Ctx<'_>) {
    let negotiation = Box::pin(timeout_at(deadline, negotiate(&mut stream, &mut buf, &ctx)));
    let negotiated = tokio::select! {
        r = negotiation => r.unwrap_or_else(|_| Err(Stop::silent("timeout"))),
        () = ctx.entry.killed().cancelled() => Err(Stop::silent("closed_by_proxy")),
    };
    match negotiated {
        Err(stop) => {
            ctx.handshake_failure(stop.reason);
            tracing::debug!(listener = ctx.name(), peer = %ctx.peer, reason = stop.reason, "SOCKS5 handshake failed");
            if let Some(answer) = stop.answer {
                let _ = send(&stream, &answer).await;
                close_after_failure(stream).await;
            }
        }
        Ok(n) => {
            let user = n.user.as_deref();
            match n.request.command {
                Command::Connect => {
                    let run = Box::pin(connect::run(stream, buf, n.request.address, user, ctx));
                    run.await;
                }
                Command::UdpAssociate => {
                    let run = Box::pin(udp::run(stream, n.request.address, user, ctx));
                    run.await;
                }
                Command::Bind => {
                    let run = Box::pin(bind::run(stream, n.request.address, user, ctx));
                    run.await;
                }
            }
        }
    }
}

/// Parses one message with `parse`, reading more bytes as needed; consumes it from `buf`.
async fn next<T, E>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<Result<T, E>, Stop> {
    loop {
        match parse(buf) {
            Ok(Some((message, used))) => {
                buf.drain(..used);
                return Ok(Ok(message));
            }
            Ok(None) => match read_more(stream, buf, MAX_MESSAGE).await {
                Ok(0) => return Err(Stop::silent("closed")),
                Ok(_) => {}
                Err(_) => return Err(Stop::silent("io")),
            },
            Err(e) => return Ok(Err(e)),
        }
    }
}

async fn negotiate(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    ctx: &Ctx<'_>,
) -> Result<Negotiated, Stop> {
    let greeting = match next(stream, buf, Greeting::parse).await? {
        Ok(g) => g,
        Err(Error::NoMethods) => {
            return Err(Stop {
                reason: "malformed_greeting",
                answer: Some(vec![0x05, 0xff]),
            });
        }
        Err(_) => return Err(Stop::silent("malformed_greeting")),
    };
    let required = ctx.state.users.required();
    // Without users, a client that only offers username/password is let in with any.
    let preferred: &[Method] = if required {
        &[Method::USER_PASS]
    } else {
        &[Method::NO_AUTH, Method::USER_PASS]
    };
    let method = greeting.select(preferred);
    let mut answer = Vec::with_capacity(2);
    MethodSelection { method }.write_to_buf(&mut answer);
    send(stream, &answer)
        .await
        .map_err(|_| Stop::silent("io"))?;
    if method == Method::NO_ACCEPTABLE {
        return Err(Stop::silent("no_acceptable_method"));
    }
    let mut user = None;
    if method == Method::USER_PASS {
        let failure = || {
            let mut answer = Vec::new();
            UserPassResponse::FAILURE.write_to_buf(&mut answer);
            answer
        };
        let credentials = match next(stream, buf, UserPassRequest::parse).await? {
            Ok(c) => c,
            Err(_) => {
                return Err(Stop {
                    reason: "malformed_auth",
                    answer: Some(failure()),
                });
            }
        };
        if required {
            match ctx
                .authenticate(&credentials.username, &credentials.password)
                .await
            {
                AuthOutcome::User(u) => user = Some(u),
                AuthOutcome::Rejected => {
                    return Err(Stop {
                        reason: "bad_credentials",
                        answer: Some(failure()),
                    });
                }
                AuthOutcome::LockedOut => {
                    return Err(Stop {
                        reason: "locked_out",
                        answer: Some(failure()),
                    });
                }
            }
        }
        drop(credentials);
        let mut answer = Vec::with_capacity(2);
        UserPassResponse::SUCCESS.write_to_buf(&mut answer);
        send(stream, &answer)
            .await
            .map_err(|_| Stop::silent("io"))?;
    }
    match next(stream, buf, Request::parse).await? {
        Ok(request) => Ok(Negotiated { user, request }),
        Err(e) => Err(Stop::reply(request_reason(&e), e.as_reply())),
    }
}

fn request_reason(e: &Error) -> &'static str {
    match e {
        Error::Command(_) => "unsupported_command",
        Error::AddressType(_) => "unsupported_address_type",
        Error::EmptyDomain => "empty_domain",
        Error::DomainNotUtf8 => "bad_domain",
        _ => "malformed_request",
    }
}
