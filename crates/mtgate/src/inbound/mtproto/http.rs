//! MTProto over HTTP on an MTProto listener (`http_transport = true`, middle mode only).
//!
//! The handshake hands a connection over here when it starts with `POST /api` or
//! `OPTIONS /api` (anything else that looks like HTTP still goes to the cover site). Each
//! query is served as the official proxy serves it:
//!
//! 1. the request is read whole (head and body, [`mtproto::http::parse`]) within the
//!    handshake timeout of its first byte; keep-alive waits at most `idle_timeout` for it;
//! 2. the body must be an MTProto message the official proxy forwards
//!    ([`check_client_packet`]), else 404;
//! 3. it goes, as RPC_PROXY_REQ with the HTTP flags and TL_HTTP_QUERY_INFO, to a connection
//!    of the `default` cluster of `proxy-multi.conf` (an HTTP client names no DC), under a
//!    connection id of its own;
//! 4. the first RPC_PROXY_ANS for that id is the answer (`200`, or the status of a 4-byte
//!    transport error such as −429, and a close); quick acks are ignored;
//!    RPC_CLOSE_EXT, or the middle-proxy connection ending, closes the client unanswered; no
//!    answer within `idle_timeout` is a `500` and a close;
//! 5. the id is released (RPC_CLOSE_CONN), so later answers for it are dropped, and the next
//!    request of a keep-alive connection is read. Requests are served one at a time, in order.

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_proto::http1::Limits;
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::http::{self as mtproto_http, Method, Query};
use mtgate_proto::mtproto::middle::consts::flag;
use mtgate_proto::mtproto::middle::message::{HttpQueryInfo, ProxyReq, check_client_packet};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::ListenerState;
use crate::relay::ConnEntry;
use crate::relay::pump::write_all;
use crate::server::Shared;
use crate::telegram::middle::clients::ToClient;
use crate::telegram::middle::counters::Counters;
use crate::telemetry::metrics::ReasonLabels;

/// Caps on a request head.
const LIMITS: Limits = Limits {
    max_head_len: 8 * 1024,
    max_headers: 64,
};

/// Bytes held for one request at most: its head and its body.
const MAX_REQUEST: usize = LIMITS.max_head_len + mtproto_http::MAX_BODY;

/// Bytes read from the client at once.
const READ_CHUNK: usize = 16 * 1024;

/// How a connection's turn ended (a metrics reason).
enum Step {
    /// Answered; read the next request.
    Again,
    /// Done, for this reason (`None`: a normal end).
    End(Option<&'static str>),
}

/// Serves MTProto-over-HTTP requests on `stream`, which already sent `received`.
pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut received: Vec<u8>,
    state: &ListenerState,
    shared: &Shared,
    entry: &ConnEntry,
) {
    let config = &state.config;
    let Some(middle) = shared.middle.as_ref() else {
        answer_error(&stream, 503, config.idle_timeout).await;
        count(shared, &config.name, "middle_not_configured");
        return;
    };
    let counters = &middle.counters;
    let mut out = Vec::new();
    loop {
        let reading = read_query(
            &mut stream,
            &mut received,
            config.idle_timeout,
            config.handshake_timeout,
        );
        let got = tokio::select! {
            got = reading => got,
            () = entry.killed().cancelled() => return count(shared, &config.name, "closed_by_proxy"),
        };
        let end = match got {
            Err(reason) => Step::End(reason),
            Ok(Err(status)) => {
                Counters::inc(&counters.http_bad_headers);
                answer_error(&stream, status, config.idle_timeout).await;
                Step::End(Some("http_bad_request"))
            }
            Ok(Ok(())) => {
                entry.touch();
                let Ok(Some(query)) = mtproto_http::parse(&received, &LIMITS) else {
                    return;
                };
                let consumed = query.consumed;
                let keep_alive = query.keep_alive;
                out.clear();
                let step = answer(&stream, peer, &query, state, shared, entry, &mut out).await;
                received.drain(..consumed);
                if received.is_empty() {
                    // A keep-alive connection waiting for its next request holds no buffer.
                    received = Vec::new();
                }
                match step {
                    Step::Again if keep_alive => Step::Again,
                    Step::Again => Step::End(None),
                    end => end,
                }
            }
        };
        match end {
            Step::Again => {}
            Step::End(None) => return,
            Step::End(Some(reason)) => {
                count(shared, &config.name, reason);
                linger(&mut stream).await;
                return;
            }
        }
    }
}

/// Reads until `received` holds a whole request. `Ok(Err(status))`: a request to refuse;
/// `Err`: the client left or was too slow (`None` when it simply closed between requests).
async fn read_query(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    idle_timeout: Duration,
    request_timeout: Duration,
) -> Result<Result<(), u16>, Option<&'static str>> {
    let mut deadline = (!received.is_empty()).then(|| Instant::now() + request_timeout);
    loop {
        match mtproto_http::parse(received, &LIMITS) {
            Ok(Some(_)) => return Ok(Ok(())),
            Err(e) => return Ok(Err(e.status())),
            Ok(None) if received.len() >= MAX_REQUEST => return Ok(Err(413)),
            Ok(None) => {}
        }
        let start = received.len();
        received.resize(start + READ_CHUNK.min(MAX_REQUEST - start), 0);
        let wait = deadline.unwrap_or_else(|| Instant::now() + idle_timeout);
        let read = timeout_at(wait, stream.read(&mut received[start..])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => {
                received.truncate(start);
                return Err(Some("io"));
            }
            Err(_) => {
                received.truncate(start);
                return Err(deadline.map(|_| "http_request_timeout"));
            }
        };
        received.truncate(start + n);
        if n == 0 {
            return Err((start > 0).then_some("http_incomplete_request"));
        }
        deadline.get_or_insert_with(|| Instant::now() + request_timeout);
    }
}

/// Serves one query; `out` is scratch space for the answer.
async fn answer(
    stream: &TcpStream,
    peer: SocketAddr,
    query: &Query<'_>,
    state: &ListenerState,
    shared: &Shared,
    entry: &ConnEntry,
    out: &mut Vec<u8>,
) -> Step {
    let config = &state.config;
    let Some(middle) = shared.middle.as_ref() else {
        return Step::End(Some("middle_not_configured"));
    };
    let counters = &middle.counters;
    Counters::inc(&counters.http_queries);
    if query.method == Method::Options {
        mtproto_http::write_options_answer(query.keep_alive, query.cors, out);
        return write(stream, out, config.idle_timeout).await;
    }
    if let Err(e) = check_client_packet(query.body) {
        tracing::debug!(listener = config.name, %peer, error = %e, "HTTP query not forwarded");
        Counters::inc(&counters.http_bad_headers);
        answer_error(stream, 404, config.idle_timeout).await;
        return Step::End(Some("bad_packet"));
    }
    // An HTTP client names no DC: the official proxy sends its queries to the default cluster.
    let connecting = middle.connect(DcId(0));
    let link = tokio::select! {
        link = connecting => link,
        () = entry.killed().cancelled() => return Step::End(Some("closed_by_proxy")),
    };
    let mut link = match link {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(listener = config.name, error = %e, "HTTP query: no middle proxy");
            answer_error(stream, 503, config.idle_timeout).await;
            return Step::End(Some(e.reason()));
        }
    };
    let settings = middle.config();
    let local = stream.local_addr().unwrap_or(peer);
    let mut flags = flag::HTTP_CLIENT;
    if query.body[..8] == [0; 8] {
        flags |= flag::NOT_ENCRYPTED;
    }
    let req = ProxyReq {
        flags,
        conn_id: link.id,
        client: peer,
        proxy: SocketAddr::new(settings.translate(local.ip()), local.port()),
        ad_tag: shared.config().telegram.ad_tag,
        http: Some(HttpQueryInfo {
            origin: &query.origin,
            referer: &query.referer,
            user_agent: &query.user_agent,
        }),
        payload: query.body,
    };
    Counters::inc(&counters.forwarded_queries);
    if link
        .conn
        .send(req.encode(), config.idle_timeout)
        .await
        .is_err()
    {
        answer_error(stream, 502, config.idle_timeout).await;
        return Step::End(Some("middle_send"));
    }
    Counters::inc(&counters.http_pending);
    let waiting = async {
        loop {
            match link.queue.recv().await {
                Some(ToClient::Packet(p)) => return Ok(p),
                Some(ToClient::QuickAck(_)) => {}
                Some(ToClient::Close(reason)) => return Err(reason.as_str()),
                None => return Err("middle_connection_lost"),
            }
        }
    };
    let answered = tokio::select! {
        answered = timeout(config.idle_timeout, waiting) => answered,
        () = entry.killed().cancelled() => Ok(Err("closed_by_proxy")),
    };
    Counters::dec(&counters.http_pending);
    // Releasing the id before writing: answers arriving later for it are dropped.
    drop(link);
    match answered {
        Ok(Ok(body)) if mtproto_http::transport_error(&body).is_some() => {
            let status = mtproto_http::transport_error(&body).unwrap_or(500);
            answer_error(stream, status, config.idle_timeout).await;
            Step::End(Some("http_transport_error"))
        }
        Ok(Ok(body)) => {
            mtproto_http::write_answer_head(body.len(), query.keep_alive, query.cors, out);
            out.extend_from_slice(&body);
            write(stream, out, config.idle_timeout).await
        }
        Ok(Err(reason)) => Step::End(Some(reason)),
        Err(_) => {
            answer_error(stream, 500, config.idle_timeout).await;
            Step::End(Some("http_answer_timeout"))
        }
    }
}

/// Closes after an error without resetting the connection: stops writing, then reads and
/// drops what the client still sends (a little, briefly), so that the answer is not lost to
/// a reset caused by unread bytes.
async fn linger(stream: &mut TcpStream) {
    const MAX: usize = 64 * 1024;
    let _ = socket2::SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let mut total = 0;
    let _ = timeout(Duration::from_secs(1), async {
        while total < MAX {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

async fn write(stream: &TcpStream, bytes: &[u8], wait: Duration) -> Step {
    match timeout(wait, write_all(stream, bytes)).await {
        Ok(Ok(())) => Step::Again,
        Ok(Err(_)) => Step::End(Some("io")),
        Err(_) => Step::End(Some("write_timeout")),
    }
}

async fn answer_error(stream: &TcpStream, status: u16, wait: Duration) {
    let mut out = Vec::new();
    mtproto_http::write_error(status, &mut out);
    let _ = write(stream, &out, wait).await;
}

fn count(shared: &Shared, listener: &str, reason: &'static str) {
    let labels = ReasonLabels {
        listener: listener.to_owned(),
        reason,
    };
    shared.metrics.session_errors.get_or_create(&labels).inc();
}
