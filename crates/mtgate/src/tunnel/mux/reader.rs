//! The reader task: WebSocket messages in, frames decoded and handed to streams, openers and
//! the inbound queue. It never waits on a stream in the binary protocol (windows bound what a
//! stream may hold); in the JSON protocol it pauses on a full stream, which is that protocol's
//! only backpressure.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use fastwebsockets::{OpCode, WebSocketError, WebSocketRead};
use mtgate_proto::tunnel::anyproxy::{self, Message};
use mtgate_proto::tunnel::{ErrorCode, Frame, MAX_FRAME_LEN};
use tokio::io::AsyncRead;

use super::json::{self, Decoded};
use super::state::{CLOSE_PROTOCOL, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED, Out, Shared};
use super::stream::{JSON_STREAM_BUFFER, Refused, StreamCell};
use super::{Codec, Inbound, IncomingOpen, ListenRequest, Role};

/// The frame library's message limit for a codec: it refuses payloads of this size and
/// over, so the limit is one past the largest message the codec accepts.
pub(super) fn max_message(codec: Codec) -> usize {
    match codec {
        Codec::Binary => MAX_FRAME_LEN + 1,
        Codec::AnyProxyJson => anyproxy::MAX_MESSAGE_LEN + 1,
    }
}

/// Reads until the connection ends, then shuts it.
pub(super) async fn run<R: AsyncRead + Unpin>(mut ws: WebSocketRead<R>, shared: Arc<Shared>) {
    let end = tokio::select! {
        end = read_loop(&mut ws, &shared) => end,
        () = shared.done.cancelled() => Ok(()),
    };
    if let Err(code) = end {
        tracing::debug!(code, "tunnel connection closed on a protocol violation");
        shared.close_code.store(code, Ordering::Relaxed);
    }
    shared.shut();
}

/// Ok on a clean close; Err with the WebSocket close code to send on a violation.
async fn read_loop<R: AsyncRead + Unpin>(
    ws: &mut WebSocketRead<R>,
    shared: &Arc<Shared>,
) -> Result<(), u16> {
    let limit = max_message(shared.codec);
    let mut partial: Option<(OpCode, BytesMut)> = None;
    loop {
        let mut obligated = |frame: fastwebsockets::Frame<'_>| {
            shared.send_control(Out::Ws(frame.opcode, frame.payload.to_vec()));
            std::future::ready(Ok::<(), Infallible>(()))
        };
        let frame = match ws.read_frame(&mut obligated).await {
            Ok(frame) => frame,
            Err(WebSocketError::FrameTooLarge) => return Err(CLOSE_TOO_BIG),
            Err(e) => {
                tracing::debug!(error = %e, "tunnel connection read ended");
                return Err(CLOSE_PROTOCOL);
            }
        };
        let fin = frame.fin;
        let opcode = frame.opcode;
        let payload = frame.payload.to_owned_bytes();
        let message = match (opcode, partial.take()) {
            (OpCode::Close, _) => return Ok(()),
            (OpCode::Pong, kept) => {
                partial = kept;
                pong(shared, &payload);
                continue;
            }
            (OpCode::Ping, kept) => {
                partial = kept;
                continue;
            }
            (OpCode::Binary | OpCode::Text, None) if fin => (opcode, payload.freeze()),
            (OpCode::Binary | OpCode::Text, None) => {
                partial = Some((opcode, payload));
                continue;
            }
            (OpCode::Continuation, Some((first, mut kept))) => {
                if kept.len() + payload.len() >= limit {
                    return Err(CLOSE_TOO_BIG);
                }
                kept.extend_from_slice(&payload);
                if !fin {
                    partial = Some((first, kept));
                    continue;
                }
                (first, kept.freeze())
            }
            _ => return Err(CLOSE_PROTOCOL),
        };
        handle_message(shared, message).await?;
    }
}

trait OwnedBytes {
    fn to_owned_bytes(self) -> BytesMut;
}

impl OwnedBytes for fastwebsockets::Payload<'_> {
    fn to_owned_bytes(self) -> BytesMut {
        match self {
            fastwebsockets::Payload::Bytes(b) => b,
            other => BytesMut::from(&other[..]),
        }
    }
}

fn pong(shared: &Shared, payload: &[u8]) {
    let Ok(sent) = <[u8; 8]>::try_from(payload) else {
        return;
    };
    let sent = u64::from_be_bytes(sent);
    let now = shared.epoch.elapsed().as_micros() as u64;
    if sent > now {
        return;
    }
    shared
        .rtt_micros
        .store((now - sent).max(1), Ordering::Relaxed);
    shared.last_pong.fetch_max(sent, Ordering::Relaxed);
}

async fn handle_message(shared: &Arc<Shared>, (opcode, bytes): (OpCode, Bytes)) -> Result<(), u16> {
    match shared.codec {
        Codec::Binary => {
            if opcode != OpCode::Binary {
                return Err(CLOSE_UNSUPPORTED);
            }
            let frame = Frame::decode(bytes).map_err(|e| {
                tracing::debug!(error = %e, "malformed tunnel frame");
                CLOSE_PROTOCOL
            })?;
            dispatch(shared, frame).await
        }
        Codec::AnyProxyJson => {
            if opcode != OpCode::Text {
                return Err(CLOSE_UNSUPPORTED);
            }
            let message = match Message::decode(&bytes) {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!(error = %e, "malformed AnyProxy message");
                    shared.send_control(Out::Json(Message::Error {
                        code: ErrorCode::InvalidMessage.anyproxy_name().to_owned(),
                        message: e.to_string(),
                        connection_id: None,
                    }));
                    return Err(CLOSE_PROTOCOL);
                }
            };
            let peer_is_even = shared.role == Role::Agent;
            let decoded = {
                let mut inner = shared.lock();
                json::decode(message, &mut inner.json, peer_is_even)
            };
            match decoded {
                Decoded::Frame(frame) => dispatch(shared, frame).await,
                Decoded::Closed(stream) => {
                    closed_by_peer(shared, stream);
                    Ok(())
                }
                Decoded::Reply(message) => {
                    shared.send_control(Out::Json(message));
                    Ok(())
                }
                Decoded::SessionError(code, message) => {
                    tracing::warn!(%code, message, "tunnel peer reported an error");
                    if code == ErrorCode::AuthFailed {
                        return Err(super::state::CLOSE_POLICY);
                    }
                    Ok(())
                }
                Decoded::Nothing => Ok(()),
            }
        }
    }
}

fn stream(shared: &Shared, id: u32) -> Option<Arc<StreamCell>> {
    shared.lock().streams.get(&id).cloned()
}

fn answer_open(shared: &Shared, stream: u32, answer: Result<(), (ErrorCode, String)>) -> bool {
    let waiting = shared.lock().pending_opens.remove(&stream);
    match waiting {
        Some(tx) => {
            let _ = tx.send(answer);
            true
        }
        None => false,
    }
}

fn closed_by_peer(shared: &Shared, stream_id: u32) {
    if answer_open(
        shared,
        stream_id,
        Err((
            ErrorCode::Cancelled,
            "closed before connect_response".into(),
        )),
    ) {
        return;
    }
    if let Some(cell) = stream(shared, stream_id) {
        cell.peer_fin(true);
    }
}

async fn dispatch(shared: &Arc<Shared>, frame: Frame) -> Result<(), u16> {
    match frame {
        Frame::Open { stream, target } => peer_open(shared, stream, target),
        Frame::OpenOk { stream } => {
            answer_open(shared, stream, Ok(()));
        }
        Frame::OpenErr {
            stream: id,
            code,
            reason,
        } => {
            if !answer_open(shared, id, Err((code, reason)))
                && let Some(cell) = stream(shared, id)
            {
                cell.peer_reset(code);
            }
        }
        Frame::Data {
            stream: id,
            payload,
        } => {
            shared
                .bytes_in
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
            let Some(cell) = stream(shared, id) else {
                return Ok(());
            };
            match cell.push_data(payload, shared.codec) {
                Ok(unread)
                    if shared.codec == Codec::AnyProxyJson && unread > JSON_STREAM_BUFFER =>
                {
                    wait_for_reader(shared, &cell).await;
                }
                Ok(_) | Err(Refused::Closed) => {}
                Err(Refused::DatagramDropped) => {
                    shared.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(Refused::OverWindow) => {
                    cell.peer_reset(ErrorCode::FlowControl);
                    shared.send_control(Out::Frame(Frame::Rst {
                        stream: id,
                        code: ErrorCode::FlowControl,
                        reason: "window exceeded".into(),
                    }));
                }
            }
        }
        Frame::Window {
            stream: id,
            increment,
        } => {
            if let Some(cell) = stream(shared, id) {
                cell.add_credit(increment);
            }
        }
        Frame::Fin { stream: id } => {
            if let Some(cell) = stream(shared, id) {
                cell.peer_fin(false);
            }
        }
        Frame::Rst {
            stream: id, code, ..
        } => {
            if !answer_open(shared, id, Err((code, "reset".into())))
                && let Some(cell) = stream(shared, id)
            {
                cell.peer_reset(code);
            }
        }
        Frame::Ping { opaque } => shared.send_control(Out::Frame(Frame::Pong { opaque })),
        Frame::Pong { .. } => {}
        Frame::GoAway { code, reason } => {
            tracing::debug!(%code, reason, "tunnel peer is going away");
            shared.going_away.store(true, Ordering::Relaxed);
        }
        Frame::Listen {
            request,
            network,
            port,
            target,
        } => {
            let refusal = if shared.role != Role::Gateway {
                Some("only a gateway listens")
            } else {
                let tx = shared.lock().incoming.clone();
                let req = ListenRequest {
                    request,
                    network,
                    port,
                    target,
                    shared: Some(shared.clone()),
                };
                match tx.map(|tx| tx.try_send(Inbound::Listen(req))) {
                    Some(Ok(())) => None,
                    Some(Err(e)) => {
                        // The request is answered by its drop.
                        drop(e);
                        None
                    }
                    None => Some("gateway is closing"),
                }
            };
            if let Some(reason) = refusal {
                shared.send_control(Out::Frame(Frame::ListenResult {
                    request,
                    code: ErrorCode::InvalidMessage,
                    reason: reason.into(),
                }));
            }
        }
        Frame::ListenResult {
            request,
            code,
            reason,
        } => {
            let waiting = shared.lock().pending_listens.remove(&request);
            if let Some(tx) = waiting {
                let answer = if code == ErrorCode::None {
                    Ok(())
                } else {
                    Err((code, reason))
                };
                let _ = tx.send(answer);
            }
        }
    }
    Ok(())
}

/// An OPEN from the peer: queued for the application, or refused at once.
fn peer_open(shared: &Arc<Shared>, id: u32, target: mtgate_proto::tunnel::OpenTarget) {
    let refuse = |code: ErrorCode, reason: &str| {
        shared.send_control(Out::Frame(Frame::OpenErr {
            stream: id,
            code,
            reason: reason.into(),
        }));
    };
    if !shared.is_peer_id(id) {
        return refuse(ErrorCode::InvalidMessage, "stream id of the wrong parity");
    }
    if shared.going_away.load(Ordering::Relaxed) {
        return refuse(ErrorCode::RateLimited, "going away");
    }
    let cell = Arc::new(StreamCell::new(id, true, shared.codec, target.network));
    let tx = {
        let mut inner = shared.lock();
        if inner.streams.contains_key(&id) {
            drop(inner);
            return refuse(ErrorCode::InvalidMessage, "stream id in use");
        }
        if inner.inbound_streams >= shared.config.max_inbound_streams {
            drop(inner);
            return refuse(ErrorCode::RateLimited, "too many streams");
        }
        inner.streams.insert(id, cell.clone());
        inner.inbound_streams += 1;
        inner.incoming.clone()
    };
    shared.streams_total.fetch_add(1, Ordering::Relaxed);
    let open = IncomingOpen {
        cell: Some(cell.clone()),
        shared: shared.clone(),
        target,
    };
    let queued = tx.is_some_and(|tx| match tx.try_send(Inbound::Open(open)) {
        Ok(()) => true,
        Err(e) => {
            // Take the request back without its drop answering: it is refused below.
            if let Inbound::Open(mut open) = e.into_inner() {
                open.cell = None;
            }
            false
        }
    });
    if !queued {
        shared.forget_stream(&cell, 0);
        shared.open_failures.fetch_add(1, Ordering::Relaxed);
        refuse(ErrorCode::RateLimited, "too many pending streams");
    }
}

/// JSON protocol: waits until the stream's reader caught up (or the stream or connection
/// ended). The whole connection waits meanwhile; that is the protocol's only backpressure.
async fn wait_for_reader(shared: &Shared, cell: &StreamCell) {
    shared.reader_paused.store(true, Ordering::Relaxed);
    // Each wake re-checks; the stream notifies on every read and on reset.
    loop {
        let drained = cell.drained.notified();
        if cell.unread() <= JSON_STREAM_BUFFER || shared.done.is_cancelled() {
            break;
        }
        if !shared.lock().streams.contains_key(&cell.id) {
            break;
        }
        tokio::select! {
            () = drained => {}
            () = shared.done.cancelled() => break,
        }
    }
    shared.reader_paused.store(false, Ordering::Relaxed);
}
