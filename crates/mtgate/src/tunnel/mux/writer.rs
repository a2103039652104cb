//! The writer task: control frames first, then one DATA chunk per ready stream in turn;
//! WebSocket pings on a timer and the pong deadline; the close frame at the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::{Frame as WsFrame, OpCode, Payload, WebSocketError, WebSocketWrite};
use mtgate_proto::tunnel::anyproxy::Message;
use mtgate_proto::tunnel::{Frame, HEADER_LEN};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, sleep_until};

use super::Codec;
use super::json;
use super::state::{CLOSE_GOING_AWAY, Out, Shared};
use crate::inbound::websocket::deadline::timed;

/// How long the close frame and the TLS close may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Items written before the writer yields to other tasks.
const BATCH: usize = 64;

/// What the writer takes from the queues.
enum Item {
    Out(Out),
    Data(u32, BytesMut),
}

/// Writes until the connection ends; ends it if a write fails or stalls, or a pong is late.
pub(super) async fn run<W: AsyncWrite + Unpin>(mut ws: WebSocketWrite<W>, shared: Arc<Shared>) {
    let config = &shared.config;
    // A write stuck this long means the peer stopped reading.
    let stall = config.ping_interval + config.pong_timeout;
    let mut next_ping = Instant::now() + config.ping_interval;
    let mut pong_due: Option<(Instant, u64)> = None;
    let result: Result<(), WebSocketError> = async {
        loop {
            let mut written = 0;
            while let Some(item) = next_item(&shared) {
                timed(stall, write_item(&mut ws, &shared, item)).await?;
                written += 1;
                if written == BATCH {
                    written = 0;
                    tokio::task::yield_now().await;
                }
            }
            timed(stall, ws.flush()).await?;
            if shared.finishing.is_cancelled() {
                return Ok(());
            }
            let deadline = pong_due.map_or(next_ping, |(due, _)| due.min(next_ping));
            tokio::select! {
                () = shared.wake_writer.notified() => {}
                () = shared.done.cancelled() => return Ok(()),
                () = shared.finishing.cancelled() => {}
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    if let Some((due, sent)) = pong_due
                        && now >= due
                    {
                        if shared.last_pong.load(Ordering::Relaxed) >= sent {
                            pong_due = None;
                        } else if shared.reader_paused.load(Ordering::Relaxed) {
                            pong_due = Some((now + config.pong_timeout, sent));
                        } else {
                            tracing::debug!("tunnel peer missed its pong deadline");
                            shared.close_code.store(CLOSE_GOING_AWAY, Ordering::Relaxed);
                            return Err(WebSocketError::ConnectionClosed);
                        }
                    }
                    if now >= next_ping {
                        next_ping = now + config.ping_interval;
                        let sent = (shared.epoch.elapsed().as_micros() as u64).max(1);
                        let ping = WsFrame::new(true, OpCode::Ping, None, Payload::Owned(sent.to_be_bytes().to_vec()));
                        timed(stall, ws.write_frame(ping)).await?;
                        if shared.codec == Codec::AnyProxyJson && shared.role == super::Role::Agent {
                            let unix = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs() as i64);
                            write_json(&mut ws, &Message::Ping { timestamp: unix }).await?;
                        }
                        if pong_due.is_none() {
                            pong_due = Some((now + config.pong_timeout, sent));
                        }
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = &result {
        tracing::debug!(error = %e, "tunnel connection write ended");
    }
    shared.shut();
    let code = shared.close_code.load(Ordering::Relaxed);
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        ws.write_frame(WsFrame::close(code, b"")).await?;
        ws.flush().await
    })
    .await;
}

fn next_item(shared: &Shared) -> Option<Item> {
    let header = match shared.codec {
        Codec::Binary => HEADER_LEN,
        Codec::AnyProxyJson => 0,
    };
    loop {
        let (id, cell) = {
            let mut inner = shared.lock();
            if let Some(out) = inner.control.pop_front() {
                return Some(Item::Out(out));
            }
            let id = inner.ready.pop_front()?;
            (id, inner.streams.get(&id).cloned())
        };
        // A stream that was reset or dropped has nothing to send any more.
        if let Some((frame, more)) = cell.and_then(|c| c.take_pending(header)) {
            if more {
                shared.lock().ready.push_back(id);
            }
            return Some(Item::Data(id, frame));
        }
    }
}

async fn write_item<W: AsyncWrite + Unpin>(
    ws: &mut WebSocketWrite<W>,
    shared: &Shared,
    item: Item,
) -> Result<(), WebSocketError> {
    match (shared.codec, item) {
        (_, Item::Out(Out::Ws(opcode, payload))) => {
            ws.write_frame(WsFrame::new(true, opcode, None, Payload::Owned(payload)))
                .await
        }
        (_, Item::Out(Out::Json(message))) => write_json(ws, &message).await,
        (Codec::Binary, Item::Out(Out::Frame(frame))) => {
            let mut buf = BytesMut::new();
            frame.encode(&mut buf);
            ws.write_frame(WsFrame::binary(Payload::Bytes(buf))).await
        }
        (Codec::Binary, Item::Data(_, chunk)) => {
            debug_assert!(chunk.len() > HEADER_LEN);
            ws.write_frame(WsFrame::binary(Payload::Bytes(chunk))).await
        }
        (Codec::AnyProxyJson, Item::Out(Out::Frame(frame))) => {
            let messages = json::encode(frame, &mut shared.lock().json);
            for message in messages {
                write_json(ws, &message).await?;
            }
            Ok(())
        }
        (Codec::AnyProxyJson, Item::Data(stream, chunk)) => {
            let frame = Frame::Data {
                stream,
                payload: chunk.freeze(),
            };
            let messages = json::encode(frame, &mut shared.lock().json);
            for message in messages {
                write_json(ws, &message).await?;
            }
            Ok(())
        }
    }
}

async fn write_json<W: AsyncWrite + Unpin>(
    ws: &mut WebSocketWrite<W>,
    message: &Message,
) -> Result<(), WebSocketError> {
    let text = message.to_json().into_bytes();
    ws.write_frame(WsFrame::text(Payload::Owned(text))).await
}
