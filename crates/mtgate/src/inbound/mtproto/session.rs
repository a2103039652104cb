//! An authenticated client's session in direct mode: the user's limit, the DC connection, and
//! the relay.

use std::net::SocketAddr;

use mtgate_proto::mtproto::transport::FrameScanner;
use tokio::net::TcpStream;

use super::ListenerState;
use super::filters::{ClientToDc, DcToClient};
use super::handshake::{Established, Mode};
use crate::relay::pump::{RelayContext, write_all};
use crate::relay::{ConnEntry, RelayEnd, relay};
use crate::server::Shared;
use crate::telegram::direct::{self, DcRequest};
use crate::telemetry::metrics::{BytesLabels, ReasonLabels, SessionLabels};

/// Runs the session until either side ends it.
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    est: Established,
    state: &ListenerState,
    shared: &Shared,
    entry: &ConnEntry,
) {
    let config = &state.config;
    let user = &config.users[est.user];
    let metrics = &shared.metrics;
    let error = |reason: &'static str| {
        metrics
            .session_errors
            .get_or_create(&ReasonLabels {
                listener: config.name.clone(),
                reason,
            })
            .inc();
    };
    let Some(_user_pass) =
        state.user_gates[est.user].try_enter(user.max_connections.unwrap_or(usize::MAX))
    else {
        tracing::info!(listener = config.name, user = user.name, %peer, "user connection limit reached");
        error("user_limit");
        return;
    };
    let session_labels = SessionLabels {
        listener: config.name.clone(),
        user: user.name.clone(),
        mode: est.mode.as_str().into(),
    };
    metrics.sessions.get_or_create(&session_labels).inc();
    let open = metrics.sessions_open.get_or_create(&session_labels).clone();
    open.inc();
    let _open = scopeguard(move || {
        open.dec();
    });

    let telegram = shared.telegram();
    let request = DcRequest {
        dc: est.dc,
        tag: est.tag,
        fast_mode_key: config.fast_mode.then_some(&est.encrypt_key),
        prefer_ipv6: telegram.prefer_ipv6,
        timeout: telegram.connect_timeout,
    };
    let table = shared.dc_table();
    let dc = tokio::select! {
        dc = direct::connect(&table, &request, metrics) => dc,
        () = entry.killed().cancelled() => return,
    };
    let mut dc = match dc {
        Ok(dc) => dc,
        Err(e) => {
            tracing::warn!(listener = config.name, dc = est.dc.0, error = %e, "cannot reach the DC");
            error("dc_unreachable");
            return;
        }
    };
    tracing::debug!(listener = config.name, user = user.name, %peer, dc = est.dc.0, mode = est.mode.as_str(), "session started");

    let mut frames = FrameScanner::new(est.tag, config.max_frame);
    let mut pending = est.pending;
    if frames.scan(&pending).is_err() {
        error("bad_frame");
        return;
    }
    dc.encrypt.apply(&mut pending);
    let mut first = Vec::with_capacity(dc.header.len() + pending.len());
    first.extend_from_slice(&dc.header);
    first.extend_from_slice(&pending);
    let up = metrics
        .bytes
        .get_or_create(&BytesLabels {
            listener: config.name.clone(),
            user: user.name.clone(),
            direction: "client_to_dc",
        })
        .clone();
    let down = metrics
        .bytes
        .get_or_create(&BytesLabels {
            listener: config.name.clone(),
            user: user.name.clone(),
            direction: "dc_to_client",
        })
        .clone();
    if write_all(&dc.stream, &first).await.is_err() {
        error("dc_write");
        return;
    }
    up.inc_by(pending.len() as u64);
    drop(first);

    let tls = est.mode == Mode::FakeTls;
    let to_dc = ClientToDc {
        records: est.records,
        decrypt: est.decrypt,
        frames,
        encrypt: dc.encrypt,
    };
    let to_client = DcToClient {
        recrypt: dc.decrypt.map(|d| (d, est.encrypt)),
        tls,
    };
    let ctx = RelayContext {
        pool: &shared.pool,
        entry,
        idle_timeout: config.idle_timeout,
    };
    match relay(
        &client,
        &dc.stream,
        (to_dc, Some(&up)),
        (to_client, Some(&down)),
        ctx,
    )
    .await
    {
        RelayEnd::Finished | RelayEnd::Idle => {}
        RelayEnd::Killed => error("closed_by_proxy"),
        RelayEnd::Failed(e) => {
            tracing::debug!(listener = config.name, %peer, error = %e, "session ended");
            error(e.reason());
        }
    }
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
