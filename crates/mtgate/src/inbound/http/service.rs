//! One HTTP request through the proxy: framing checks, authentication, then CONNECT or
//! forwarding. Also the per-connection state the requests of one connection share.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header;
use hyper::{Method, Request, Response};
use mtgate_proto::address::Address;
use mtgate_proto::http1::parse_basic;

use super::reply::{self, Body};
use super::tap::SharedTap;
use super::{connect, forward, headers};
use crate::auth::UserEntry;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::context::AuthOutcome;

/// What a connection's requests share.
#[derive(Debug)]
pub struct ConnState {
    /// A tunnel or upgrade to run once hyper hands the socket back.
    pub pending: Mutex<Option<Pending>>,
    /// The kept-alive connection to the last origin.
    pub upstream: Mutex<Option<KeptUpstream>>,
    /// The raw bytes of the client's heads.
    pub tap: SharedTap,
}

impl ConnState {
    /// The state of a new connection whose heads `tap` sees.
    pub fn new(tap: SharedTap) -> Self {
        Self {
            pending: Mutex::new(None),
            upstream: Mutex::new(None),
            tap,
        }
    }
}

/// Work left for after hyper's part of the connection.
#[derive(Debug)]
pub enum Pending {
    /// A CONNECT tunnel.
    Tunnel(Box<connect::PendingTunnel>),
    /// A 101 protocol switch.
    Upgrade(Box<forward::PendingUpgrade>),
}

/// An origin connection kept for the next request to the same origin.
#[derive(Debug)]
pub struct KeptUpstream {
    /// The origin.
    pub target: Address,
    /// hyper's handle to send on it.
    pub sender: SendRequest<Incoming>,
    /// The task driving it (aborted when dropped).
    pub driver: AbortOnDrop,
}

/// Aborts a task when dropped, unless detached.
#[derive(Debug)]
pub struct AbortOnDrop(pub Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Lets the task run to its end.
    pub fn detach(mut self) {
        self.0.take();
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The metric name of forwarded requests.
pub const FORWARD: &str = "http";

/// Handles one request.
pub async fn handle(
    request: Request<Incoming>,
    ctx: &Ctx<'_>,
    state: &ConnState,
) -> Result<Response<Body>, Infallible> {
    ctx.entry.touch();
    let command = if request.method() == Method::CONNECT {
        connect::COMMAND
    } else {
        FORWARD
    };
    let hidden_length = state
        .tap
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_has_length_and_coding(request.method().as_str());
    let framing = if hidden_length {
        Err("content_length_with_transfer_encoding")
    } else {
        headers::check_framing(&request)
    };
    if let Err(reason) = framing {
        ctx.refused(None, command, &uri_for_log(request.uri()), reason);
        return Ok(reply::status(400, true));
    }
    let user = if ctx.state.users.required() {
        match authenticate(&request, ctx).await {
            Ok(user) => Some(user),
            Err(response) => {
                ctx.count(None, command, "auth_required");
                return Ok(response);
            }
        }
    } else {
        None
    };
    let response = if command == connect::COMMAND {
        connect::handle(request, user, ctx, state).await
    } else {
        forward::handle(request, user, ctx, state).await
    };
    ctx.entry.touch();
    Ok(response)
}

/// What of a request target goes to the logs: the host and port only, never the user
/// information, path or query (which may carry credentials or tokens).
pub fn uri_for_log(uri: &hyper::Uri) -> String {
    match uri.authority() {
        Some(a) => match a.port_u16() {
            Some(port) => format!("{}:{port}", a.host()),
            None => a.host().to_owned(),
        },
        None => "(origin-form)".to_owned(),
    }
}

/// The user named by `Proxy-Authorization` (any case of `Basic`), or the answer to send.
async fn authenticate<B>(
    request: &Request<B>,
    ctx: &Ctx<'_>,
) -> Result<Arc<UserEntry>, Response<Body>> {
    let realm = &ctx.config().http.realm;
    let Some(credentials) = request
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| parse_basic(v.as_bytes()))
    else {
        return Err(reply::auth_required(realm));
    };
    match ctx
        .authenticate(&credentials.username, &credentials.password)
        .await
    {
        AuthOutcome::User(user) => Ok(user),
        AuthOutcome::Rejected => Err(reply::auth_required(realm)),
        AuthOutcome::LockedOut => Err(reply::status(429, true)),
    }
}

/// Takes a place in the user's connection limit (or answers 429).
#[allow(clippy::result_large_err)] // the error is the reply itself, built once per refusal
pub fn user_pass(
    user: Option<&Arc<UserEntry>>,
) -> Result<Option<crate::gate::Pass>, Response<Body>> {
    match user {
        Some(u) => u
            .gate
            .try_enter(u.config.max_connections.unwrap_or(usize::MAX))
            .map(Some)
            .ok_or_else(|| reply::status(429, false)),
        None => Ok(None),
    }
}
