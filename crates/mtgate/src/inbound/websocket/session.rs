//! A session after both 101s: frames relayed one at a time each way (memory per session is
//! bounded by one frame and one write buffer per direction), per-message limits, heartbeats
//! both ways, the closing handshake carried end to end, and 1001 on shutdown.
//!
//! Two tasks read, one per side, and write what they read to the other side; the session task
//! watches deadlines (idle, ping, pong, close) and shutdown. A forwarded frame goes into the
//! other side's write buffer, flushed when the reader has no further frame ready: a burst of
//! small messages leaves in one write instead of one each. Every way out sends each side a
//! close frame it has not had yet, then FIN, so the close is read before the socket goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::deadline::{poll_once, timed};
use super::halves::{DrainRead, Drainer, FinWrite};
use super::live::LiveSession;
use super::message::{MessageLimits, Tracker, Violation, check_close, codes};
use super::prefixed::Prefixed;
use crate::relay::ConnEntry;

/// A byte stream a session runs over (TCP, TLS, or a pool connection).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed read half.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// A boxed write half.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
type Reader = WebSocketRead<DrainRead<BoxRead>>;
type Writer = WebSocketWrite<FinWrite<BufWriter<BoxWrite>>>;

/// Bytes of forwarded frames a side holds before they go out (larger frames go out directly).
const WRITE_BUFFER: usize = 32 * 1024;

/// A connection as separately owned read and write halves.
pub struct Halves {
    /// The read half.
    pub read: BoxRead,
    /// The write half.
    pub write: BoxWrite,
}

impl Halves {
    /// Splits any stream (one lock shared by the halves, as TLS needs).
    pub fn split<S: Io>(io: S) -> Self {
        let (read, write): (ReadHalf<S>, WriteHalf<S>) = tokio::io::split(io);
        Self {
            read: Box::new(read),
            write: Box::new(write),
        }
    }

    /// Splits a TCP connection without a lock.
    pub fn tcp(tcp: TcpStream) -> Self {
        let (read, write) = tcp.into_split();
        Self {
            read: Box::new(read),
            write: Box::new(write),
        }
    }

    /// Reads `early` (bytes read past an HTTP head) before the rest.
    pub fn prefixed(self, early: Bytes) -> Self {
        if early.is_empty() {
            return self;
        }
        Self {
            read: Box::new(Prefixed::new(early, self.read)),
            write: self.write,
        }
    }
}

/// Time settings of a session.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Close after this long without a message.
    pub idle_timeout: Duration,
    /// Ping interval, if pinging.
    pub ping_interval: Option<Duration>,
    /// Deadline for a pong.
    pub pong_timeout: Duration,
    /// Deadline for the answer to a close, and for writing one frame to a slow peer.
    pub close_timeout: Duration,
}

/// Why a session ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed.
    Client,
    /// The backend closed.
    Backend,
    /// A message broke a limit.
    TooBig,
    /// A peer broke the protocol.
    Protocol,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A peer missed its pong deadline.
    PingTimeout,
    /// mtgate is shutting down or the connection was evicted.
    Shutdown,
    /// The backend's connection broke.
    BackendLost,
    /// The client's connection broke.
    ClientLost,
}

impl Ending {
    /// A label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Backend => "backend",
            Self::TooBig => "too_big",
            Self::Protocol => "protocol",
            Self::Idle => "idle",
            Self::PingTimeout => "ping_timeout",
            Self::Shutdown => "shutdown",
            Self::BackendLost => "backend_lost",
            Self::ClientLost => "client_lost",
        }
    }
}

/// One end of the session.
struct Side {
    is_client: bool,
    writer: Mutex<Writer>,
    awaiting_pong: AtomicBool,
    fin: Arc<AtomicBool>,
    drainer: Drainer<BoxRead>,
    write_timeout: Duration,
}

impl Side {
    fn new(
        io: Halves,
        is_client: bool,
        max_payload: usize,
        write_timeout: Duration,
    ) -> (Reader, Self) {
        let Halves { read, write } = io;
        let fin = Arc::new(AtomicBool::new(false));
        let (read, drainer) = DrainRead::new(read);
        let role = if is_client {
            fastwebsockets::Role::Server
        } else {
            fastwebsockets::Role::Client
        };
        let (mut reader, writer) = fastwebsockets::after_handshake_split(
            read,
            FinWrite::new(BufWriter::with_capacity(WRITE_BUFFER, write), fin.clone()),
            role,
        );
        // fastwebsockets refuses frames of `max_message_size` bytes or more.
        reader.set_max_message_size(max_payload.saturating_add(1));
        reader.set_auto_close(false);
        reader.set_auto_pong(true);
        let side = Self {
            is_client,
            writer: Mutex::new(writer),
            awaiting_pong: AtomicBool::new(false),
            fin,
            drainer,
            write_timeout,
        };
        (reader, side)
    }

    /// Writes and flushes one frame within the write timeout. Nothing goes out after a close.
    async fn send(&self, frame: Frame<'_>) -> Result<(), WebSocketError> {
        self.write(frame, true).await
    }

    /// Writes one frame into the buffer (it goes out once the buffer fills, or at the next
    /// flush) within the write timeout.
    async fn queue(&self, frame: Frame<'_>) -> Result<(), WebSocketError> {
        self.write(frame, false).await
    }

    /// Sends what [`Side::queue`] left in the buffer, within the write timeout.
    async fn flush(&self) -> Result<(), WebSocketError> {
        timed(self.write_timeout, async {
            self.writer.lock().await.flush().await
        })
        .await
    }

    async fn write(&self, frame: Frame<'_>, flush: bool) -> Result<(), WebSocketError> {
        let writing = async {
            let mut writer = self.writer.lock().await;
            if writer.is_closed() {
                return Ok(());
            }
            writer.write_frame(frame).await?;
            if flush {
                writer.flush().await?;
            }
            Ok(())
        };
        timed(self.write_timeout, writing).await
    }

    async fn close(&self, code: u16, reason: &str) {
        let _ = self.send(Frame::close(code, reason.as_bytes())).await;
    }

    async fn closed(&self) -> bool {
        self.writer.lock().await.is_closed()
    }

    /// Sends FIN after what was written.
    async fn finish(&self) {
        self.fin.store(true, Ordering::Relaxed);
        let _ = self.flush().await;
    }
}

/// How one direction ended.
#[derive(Debug)]
enum DirectionEnd {
    /// `from` sent a close, passed on to the other side (payload kept for the echo).
    Closed(Vec<u8>),
    /// `from` broke a rule; both sides were sent a close.
    Violated(Violation),
    /// `from`'s connection broke; the other side was told.
    Lost,
    /// Writing to the other side failed.
    WriteFailed,
}

/// Runs a session until both sides are closed or the deadlines pass.
pub async fn run(
    client: Halves,
    backend: Halves,
    live: Arc<LiveSession>,
    limits: MessageLimits,
    timing: Timing,
    entry: &ConnEntry,
    stop: CancellationToken,
) -> Ending {
    let (client_reader, client) = Side::new(client, true, limits.max_payload, timing.close_timeout);
    let (backend_reader, backend) =
        Side::new(backend, false, limits.max_payload, timing.close_timeout);
    let (client, backend) = (Arc::new(client), Arc::new(backend));
    let activity = Arc::new(Activity::default());
    let direction = |reader, from: &Arc<Side>, to: &Arc<Side>| {
        tokio::spawn(forward(
            reader,
            from.clone(),
            to.clone(),
            limits,
            timing.close_timeout,
            live.clone(),
            activity.clone(),
        ))
    };
    let mut up = direction(client_reader, &client, &backend);
    let mut down = direction(backend_reader, &backend, &client);
    let _abort = AbortOnDrop([up.abort_handle(), down.abort_handle()]);
    entry.touch();

    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut next_ping = timing.ping_interval.map(|i| Instant::now() + i);
    let mut pong_deadline: Option<Instant> = None;
    let mut closing: Option<Instant> = None;
    let mut ending: Option<Ending> = None;
    let (mut up_end, mut down_end) = (None, None);
    // Each round ends a direction, acts on a deadline that then moves or clears, or starts
    // the close (which sets `closing`); the loop ends when both directions have ended or the
    // close deadline passes.
    while up_end.is_none() || down_end.is_none() {
        if activity.take() {
            entry.touch();
        }
        let idle_at = entry.last_active() + timing.idle_timeout;
        let open = closing.is_none();
        tokio::select! {
            r = &mut up, if up_end.is_none() => {
                let end = r.unwrap_or(DirectionEnd::Lost);
                ending.get_or_insert(ending_of(&end, true));
                up_end = Some(end);
                closing.get_or_insert(Instant::now() + timing.close_timeout);
            }
            r = &mut down, if down_end.is_none() => {
                let end = r.unwrap_or(DirectionEnd::Lost);
                ending.get_or_insert(ending_of(&end, false));
                down_end = Some(end);
                closing.get_or_insert(Instant::now() + timing.close_timeout);
            }
            () = tokio::time::sleep_until(closing.unwrap_or(far)), if !open => break,
            () = tokio::time::sleep_until(idle_at), if open => {
                if activity.take() {
                    entry.touch();
                    continue;
                }
                close_both(&client, &backend, codes::GOING_AWAY, "idle timeout").await;
                ending = Some(Ending::Idle);
                closing = Some(Instant::now() + timing.close_timeout);
            }
            () = tokio::time::sleep_until(next_ping.unwrap_or(far)), if open && next_ping.is_some() => {
                let interval = timing.ping_interval.unwrap_or(Duration::from_secs(30));
                next_ping = Some(Instant::now() + interval);
                for side in [&client, &backend] {
                    side.awaiting_pong.store(true, Ordering::Relaxed);
                    let ping = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b"mtgate"));
                    let _ = side.send(ping).await;
                }
                pong_deadline = Some(Instant::now() + timing.pong_timeout);
            }
            () = tokio::time::sleep_until(pong_deadline.unwrap_or(far)), if open && pong_deadline.is_some() => {
                pong_deadline = None;
                if client.awaiting_pong.load(Ordering::Relaxed) {
                    client.close(codes::GOING_AWAY, "no pong within the deadline").await;
                    backend.close(codes::GOING_AWAY, "client did not answer pings").await;
                } else if backend.awaiting_pong.load(Ordering::Relaxed) {
                    backend.close(codes::GOING_AWAY, "no pong within the deadline").await;
                    client.close(codes::INTERNAL, "backend did not answer pings").await;
                } else {
                    continue;
                }
                ending = Some(Ending::PingTimeout);
                // A dead peer will not answer: do not wait long for it.
                closing = Some(Instant::now() + timing.close_timeout.min(Duration::from_secs(1)));
            }
            () = stop.cancelled(), if open => {
                close_both(&client, &backend, codes::GOING_AWAY, "server shutting down").await;
                ending = Some(Ending::Shutdown);
                closing = Some(Instant::now() + timing.close_timeout);
            }
            () = entry.killed().cancelled() => {
                close_both(&client, &backend, codes::GOING_AWAY, "connection closed by the server").await;
                ending = Some(Ending::Shutdown);
                break;
            }
        }
    }
    // Each side that has not had a close gets one: the echo of the other side's close when
    // there was one, else 1001.
    let echo = |end: &Option<DirectionEnd>| match end {
        Some(DirectionEnd::Closed(payload)) => Some(payload.clone()),
        _ => None,
    };
    for (side, theirs, other) in [
        (&client, &down_end, &up_end),
        (&backend, &up_end, &down_end),
    ] {
        if !side.closed().await {
            let payload = echo(theirs).or_else(|| echo(other));
            let frame = match &payload {
                Some(p) => Frame::close_raw(Payload::Borrowed(p)),
                None => Frame::close(codes::GOING_AWAY, b""),
            };
            let _ = side.send(frame).await;
        }
    }
    tokio::join!(client.finish(), backend.finish());
    ending.unwrap_or(Ending::Shutdown)
}

fn ending_of(end: &DirectionEnd, from_client: bool) -> Ending {
    match (end, from_client) {
        (DirectionEnd::Closed(_), true) => Ending::Client,
        (DirectionEnd::Closed(_), false) => Ending::Backend,
        (DirectionEnd::Violated(v), _) if v.code == codes::TOO_BIG => Ending::TooBig,
        (DirectionEnd::Violated(_), _) => Ending::Protocol,
        (DirectionEnd::Lost, true) | (DirectionEnd::WriteFailed, false) => Ending::ClientLost,
        (DirectionEnd::Lost, false) | (DirectionEnd::WriteFailed, true) => Ending::BackendLost,
    }
}

async fn close_both(client: &Side, backend: &Side, code: u16, reason: &str) {
    tokio::join!(client.close(code, reason), backend.close(code, reason));
}

/// Relays frames from `from` to `to` until a close, a violation or a failure.
async fn forward(
    mut reader: Reader,
    from: Arc<Side>,
    to: Arc<Side>,
    limits: MessageLimits,
    close_timeout: Duration,
    live: Arc<LiveSession>,
    activity: Arc<Activity>,
) -> DirectionEnd {
    let counters = if from.is_client { &live.up } else { &live.down };
    let mut tracker = Tracker::default();
    let pong_to = from.clone();
    // Pongs to `from`'s pings go back to `from`.
    let mut obligated = move |frame: Frame<'static>| {
        let side = pong_to.clone();
        async move { side.send(frame).await }
    };
    // Frames queued on `to` and not flushed yet.
    let mut queued = false;
    // Each round reads one frame; the peer's EOF or an error ends the loop.
    let violation = loop {
        let mut reading = std::pin::pin!(reader.read_frame(&mut obligated));
        let read = match poll_once(reading.as_mut()).await {
            Some(read) => read,
            None => {
                // Nothing more to forward now: what was queued goes out before the wait.
                if std::mem::take(&mut queued) && to.flush().await.is_err() {
                    return DirectionEnd::WriteFailed;
                }
                reading.await
            }
        };
        let frame = match read {
            Ok(frame) => frame,
            Err(e) => match classify(e, limits.max_payload) {
                Some(v) => break v,
                None => {
                    let (code, reason) = if from.is_client {
                        (codes::GOING_AWAY, "client connection lost")
                    } else {
                        (codes::INTERNAL, "backend connection lost")
                    };
                    to.close(code, reason).await;
                    return DirectionEnd::Lost;
                }
            },
        };
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let len = frame.payload.len();
                let ended = match tracker.data(frame.opcode, frame.fin, len, &limits) {
                    Ok(ended) => ended,
                    Err(v) => break v,
                };
                let frame = if from.is_client {
                    frame
                } else {
                    // A backend's frames go to the client unmasked.
                    Frame::new(frame.fin, frame.opcode, None, frame.payload)
                };
                if to.queue(frame).await.is_err() {
                    return DirectionEnd::WriteFailed;
                }
                queued = true;
                counters.record(len, ended);
                activity.set();
            }
            OpCode::Close => {
                let payload = frame.payload.to_vec();
                if let Err(v) = check_close(&payload) {
                    break v;
                }
                // Not sent when `to` was already closed: then this answered a close of ours.
                let _ = to.send(Frame::close_raw(Payload::Borrowed(&payload))).await;
                return DirectionEnd::Closed(payload);
            }
            OpCode::Pong => from.awaiting_pong.store(false, Ordering::Relaxed),
            // Answered by fastwebsockets (auto-pong), not forwarded.
            OpCode::Ping => {}
        }
    };
    // `from` broke a rule: tell both sides, then read `from` out until it hangs up, so the
    // close is not lost to a reset.
    let (to_code, who) = if from.is_client {
        (violation.code, "client")
    } else {
        (codes::INTERNAL, "backend")
    };
    let told = Violation::new(to_code, format!("{who}: {}", violation.reason));
    tokio::join!(
        from.close(violation.code, &violation.reason),
        to.close(told.code, &told.reason)
    );
    from.finish().await;
    drop(reader);
    let _ = tokio::time::timeout(close_timeout, from.drainer.until_eof()).await;
    DirectionEnd::Violated(violation)
}

/// A read error that is the peer's fault, as the close to send; `None` for a lost connection.
fn classify(e: WebSocketError, max_payload: usize) -> Option<Violation> {
    match e {
        // The header announced more than the limit; none of the payload was read.
        WebSocketError::FrameTooLarge => Some(Violation::new(
            codes::TOO_BIG,
            format!("message exceeds {max_payload} bytes"),
        )),
        WebSocketError::InvalidUTF8 => {
            Some(Violation::new(codes::INVALID_DATA, "text is not UTF-8"))
        }
        WebSocketError::ReservedBitsNotZero
        | WebSocketError::ControlFrameFragmented
        | WebSocketError::PingFrameTooLarge
        | WebSocketError::InvalidFragment
        | WebSocketError::InvalidContinuationFrame
        | WebSocketError::InvalidValue => Some(Violation::new(codes::PROTOCOL, e.to_string())),
        _ => None,
    }
}

/// "A message moved" flag set by the direction tasks, taken by the session task.
#[derive(Debug, Default)]
struct Activity(AtomicBool);

impl Activity {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

struct AbortOnDrop([tokio::task::AbortHandle; 2]);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
