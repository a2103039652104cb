//! An authenticated client's session in direct mode: the user's limit, the DC connection, and
//! the relay.
//!
//! Opening the DC side is a boxed phase of its own, so that what an idle session keeps in
//! memory is only the relay: two sockets, two filters and a few counters.

use std::net::SocketAddr;

use mtgate_client::InFlight;
use mtgate_proto::mtproto::transport::FrameScanner;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;

use super::ListenerState;
use super::filters::{ClientToDc, DcToClient};
use super::handshake::{Established, Mode};
use super::middle::{self, MiddleSession};
use crate::config::{MtprotoListener, TelegramMode};
use crate::relay::pump::{RelayContext, write_all};
use crate::relay::{ConnEntry, RelayEnd, relay};
use crate::server::Shared;
use crate::telegram::direct::{self, DcRequest};
use crate::telemetry::metrics::{BytesLabels, ReasonLabels, SessionLabels};

/// Runs the session until either side ends it.
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    est: Box<Established>,
    state: &ListenerState,
    shared: &Shared,
    entry: &ConnEntry,
) {
    let config = &state.config;
    let user = &config.users[est.user];
    let metrics = &shared.metrics;
    let limit = user.max_connections.unwrap_or(usize::MAX);
    let Some(_user_pass) = state.user_gates[est.user].try_enter(limit) else {
        tracing::info!(listener = config.name, user = user.name, %peer, "user connection limit reached");
        count_error(shared, config, "user_limit");
        return;
    };
    let labels = SessionLabels {
        listener: config.name.clone(),
        user: user.name.clone(),
        mode: est.mode.as_str().into(),
    };
    metrics.sessions.get_or_create(&labels).inc();
    let open = metrics.sessions_open.get_or_create(&labels).clone();
    drop(labels);
    open.inc();

    let est = if config.mode == TelegramMode::Middle {
        let middle = Box::pin(through_middle(&client, peer, est, state, shared, entry));
        match middle.await {
            Some(est) => est,
            None => {
                open.dec();
                return;
            }
        }
    } else {
        est
    };

    let opening = Box::pin(open_dc(peer, est, config, shared, entry));
    if let Some(opened) = opening.await {
        let Opened {
            dc,
            to_dc,
            to_client,
            up,
            down,
            in_flight: _in_flight,
        } = *opened;
        let ctx = RelayContext {
            pool: &shared.pool,
            entry,
            idle_timeout: config.idle_timeout,
            closes_after: true,
        };
        let relaying = relay(
            &client,
            &dc,
            (to_dc, Some(&up)),
            (to_client, Some(&down)),
            ctx,
        );
        match relaying.await {
            RelayEnd::Finished | RelayEnd::Idle => {}
            RelayEnd::Killed => count_error(shared, config, "closed_by_proxy"),
            RelayEnd::Failed(e) => {
                tracing::debug!(listener = config.name, %peer, error = %e, "session ended");
                count_error(shared, config, e.reason());
            }
        }
    }
    open.dec();
}

/// Serves the client through a middle proxy. Gives the client back when no middle proxy
/// is reachable and falling back to direct mode is allowed.
async fn through_middle(
    client: &TcpStream,
    peer: SocketAddr,
    est: Box<Established>,
    state: &ListenerState,
    shared: &Shared,
    entry: &ConnEntry,
) -> Option<Box<Established>> {
    let config = &state.config;
    let Some(middle) = shared.middle.as_ref() else {
        count_error(shared, config, "middle_not_configured");
        return None;
    };
    let connecting = Box::pin(middle.connect(est.dc));
    let link = tokio::select! {
        link = connecting => link,
        () = entry.killed().cancelled() => return None,
    };
    let settings = middle.config();
    let link = match link {
        Ok(link) => link,
        Err(e) if settings.fallback_to_direct => {
            tracing::info!(listener = config.name, dc = est.dc.0, error = %e, "middle proxy unavailable: serving in direct mode");
            count_error(shared, config, "middle_fallback_direct");
            return Some(est);
        }
        Err(e) => {
            tracing::warn!(listener = config.name, dc = est.dc.0, error = %e, "cannot reach a middle proxy");
            count_error(shared, config, e.reason());
            return None;
        }
    };
    let user = &config.users[est.user];
    let local = client.local_addr().unwrap_or(peer);
    let bytes = |direction| {
        let labels = BytesLabels {
            listener: config.name.clone(),
            user: user.name.clone(),
            direction,
        };
        shared.metrics.bytes.get_or_create(&labels).clone()
    };
    let (up, down) = (bytes("client_to_dc"), bytes("dc_to_client"));
    let session = MiddleSession {
        peer,
        proxy: SocketAddr::new(settings.translate(local.ip()), local.port()),
        ad_tag: user.ad_tag.or(shared.config().telegram.ad_tag),
        max_frame: config.max_frame,
        idle_timeout: config.idle_timeout,
        entry,
        up: &up,
        down: &down,
    };
    tracing::debug!(listener = config.name, user = user.name, %peer, dc = est.dc.0, endpoint = %link.conn.endpoint, "middle session started");
    match middle::run(client, *est, link, session).await {
        middle::End::Finished => {}
        middle::End::Killed => count_error(shared, config, "closed_by_proxy"),
        middle::End::Middle(reason) | middle::End::Client(reason) => {
            tracing::debug!(listener = config.name, %peer, reason, "middle session ended");
            count_error(shared, config, reason);
        }
    }
    None
}

/// What the relay needs once the DC side is open.
struct Opened {
    dc: TcpStream,
    /// Held while relaying, for DC connections through an upstream pool.
    in_flight: Option<InFlight>,
    to_dc: ClientToDc,
    to_client: DcToClient,
    up: Counter,
    down: Counter,
}

/// Connects to the DC, sends the header and the client's first bytes, and builds the filters.
async fn open_dc(
    peer: SocketAddr,
    est: Box<Established>,
    config: &MtprotoListener,
    shared: &Shared,
    entry: &ConnEntry,
) -> Option<Box<Opened>> {
    let telegram = shared.telegram();
    let pool = match telegram.upstream_pool.as_deref() {
        Some(name) => match shared.pools.get(name) {
            Some(entry) => Some(entry),
            None => {
                // Validation makes this unreachable; never fall back to a direct connection.
                tracing::warn!(
                    listener = config.name,
                    pool = name,
                    "telegram.upstream_pool is gone"
                );
                count_error(shared, config, "dc_unreachable");
                return None;
            }
        },
        None => None,
    };
    let request = DcRequest {
        dc: est.dc,
        tag: est.tag,
        fast_mode_key: config.fast_mode.then_some(&est.encrypt_key),
        prefer_ipv6: telegram.prefer_ipv6,
        timeout: telegram.connect_timeout,
        via: pool.as_ref().map(|entry| &entry.pool),
    };
    let table = shared.dc_table();
    let connecting = Box::pin(direct::connect(&table, &request, &shared.metrics));
    let dc = tokio::select! {
        dc = connecting => dc,
        () = entry.killed().cancelled() => return None,
    };
    let mut dc = match dc {
        Ok(dc) => dc,
        Err(e) => {
            tracing::warn!(listener = config.name, dc = est.dc.0, error = %e, "cannot reach the DC");
            count_error(shared, config, "dc_unreachable");
            return None;
        }
    };
    let user = &config.users[est.user].name;
    tracing::debug!(listener = config.name, user, %peer, dc = est.dc.0, mode = est.mode.as_str(), "session started");

    let est = *est;
    let mut frames = FrameScanner::new(est.tag, config.max_frame);
    let mut pending = est.pending;
    if frames.scan(&pending).is_err() {
        count_error(shared, config, "bad_frame");
        return None;
    }
    dc.encrypt.apply(&mut pending);
    let mut first = Vec::with_capacity(dc.header.len() + pending.len());
    first.extend_from_slice(&dc.header);
    first.extend_from_slice(&pending);
    if write_all(&dc.stream, &first).await.is_err() {
        count_error(shared, config, "dc_write");
        return None;
    }
    let bytes = |direction| {
        let labels = BytesLabels {
            listener: config.name.clone(),
            user: user.clone(),
            direction,
        };
        shared.metrics.bytes.get_or_create(&labels).clone()
    };
    let up = bytes("client_to_dc");
    up.inc_by(pending.len() as u64);
    Some(Box::new(Opened {
        dc: dc.stream,
        in_flight: dc.in_flight,
        to_dc: ClientToDc {
            records: est.records,
            decrypt: est.decrypt,
            frames,
            encrypt: dc.encrypt,
        },
        to_client: DcToClient {
            recrypt: dc.decrypt.map(|d| Box::new((d, est.encrypt))),
            tls: est.mode == Mode::FakeTls,
        },
        up,
        down: bytes("dc_to_client"),
    }))
}

fn count_error(shared: &Shared, config: &MtprotoListener, reason: &'static str) {
    let labels = ReasonLabels {
        listener: config.name.clone(),
        reason,
    };
    shared.metrics.session_errors.get_or_create(&labels).inc();
}
