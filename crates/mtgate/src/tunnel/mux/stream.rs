//! One stream: its two windows, its buffers, and the `AsyncRead`/`AsyncWrite` face the
//! application sees.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use mtgate_proto::tunnel::frame::put_data_header;
use mtgate_proto::tunnel::{ErrorCode, Frame, HEADER_LEN, INITIAL_WINDOW, MAX_DATA_LEN, Network};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::Codec;
use super::state::{Out, Shared};

mod datagram;
pub use datagram::DatagramDrop;

/// In the JSON protocol (no windows) the reader pauses the connection once a stream holds
/// this many unread bytes.
pub(super) const JSON_STREAM_BUFFER: usize = 256 * 1024;

/// Bytes a stream may queue for the writer before `write` waits.
const SEND_BUFFER: usize = 4 * MAX_DATA_LEN;

/// A window grows when its previous grant was this recent (or two round trips, if longer).
const GROW_WHEN_WITHIN: Duration = Duration::from_millis(20);

/// Why a peer's DATA was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// More than the window allowed (a protocol violation).
    OverWindow,
    /// The stream is reset or finished receiving; the bytes are dropped.
    Closed,
    /// A datagram stream's receive buffer is full (JSON protocol): the datagram is dropped.
    DatagramDropped,
}

#[derive(Debug)]
struct StreamState {
    send_credit: u64,
    /// DATA frames waiting for the writer, each at most [`MAX_DATA_LEN`] of payload; in the
    /// binary protocol each starts with its frame header.
    pending: VecDeque<BytesMut>,
    /// Payload bytes in `pending`.
    pending_len: usize,
    /// The stream is in the writer's turn queue.
    queued: bool,
    write_waker: Option<Waker>,
    fin_sent: bool,
    recv: VecDeque<Bytes>,
    recv_len: usize,
    recv_window: u32,
    unacked: u32,
    last_grant: Option<Instant>,
    read_waker: Option<Waker>,
    fin_received: bool,
    /// JSON `close` from the peer: it takes no more bytes either.
    peer_closed: bool,
    reset: Option<ErrorCode>,
    lost: bool,
}

/// A stream's state, shared by its handle and the connection's tasks.
#[derive(Debug)]
pub(super) struct StreamCell {
    pub(super) id: u32,
    /// Opened by the peer.
    pub(super) inbound: bool,
    /// A UDP stream: each DATA frame is one datagram (see [`MuxStream::send_datagram`]).
    pub(super) datagram: bool,
    state: Mutex<StreamState>,
    /// JSON protocol: signalled when a paused reader may go on.
    pub(super) drained: Notify,
}

impl StreamCell {
    pub(super) fn new(id: u32, inbound: bool, codec: Codec, network: Network) -> Self {
        let send_credit = match codec {
            Codec::Binary => u64::from(INITIAL_WINDOW),
            Codec::AnyProxyJson => u64::MAX,
        };
        Self {
            id,
            inbound,
            datagram: network == Network::Udp,
            state: Mutex::new(StreamState {
                send_credit,
                pending: VecDeque::new(),
                pending_len: 0,
                queued: false,
                write_waker: None,
                fin_sent: false,
                recv: VecDeque::new(),
                recv_len: 0,
                recv_window: INITIAL_WINDOW,
                unacked: 0,
                last_grant: None,
                read_waker: None,
                fin_received: false,
                peer_closed: false,
                reset: None,
                lost: false,
            }),
            drained: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next DATA frame (writer side). Returns it and whether more frames wait (the
    /// stream then goes back to the end of the turn queue). Wakes the stream's writer once
    /// half the send buffer is free.
    pub(super) fn take_pending(&self, header: usize) -> Option<(BytesMut, bool)> {
        let mut s = self.state();
        let Some(frame) = s.pending.pop_front() else {
            s.queued = false;
            return None;
        };
        s.pending_len -= frame.len() - header;
        let more = !s.pending.is_empty();
        s.queued = more;
        if s.pending_len <= SEND_BUFFER / 2
            && let Some(w) = s.write_waker.take()
        {
            w.wake();
        }
        Some((frame, more))
    }

    /// Stores a peer's DATA. In the binary protocol a payload over the window is refused.
    /// Returns the unread byte count after the push.
    pub(super) fn push_data(&self, payload: Bytes, codec: Codec) -> Result<usize, Refused> {
        let mut s = self.state();
        if s.reset.is_some() || s.lost || s.fin_received {
            return Err(Refused::Closed);
        }
        if self.datagram
            && codec == Codec::AnyProxyJson
            && s.recv_len + payload.len() > JSON_STREAM_BUFFER
        {
            return Err(Refused::DatagramDropped);
        }
        if codec == Codec::Binary {
            let held = s.recv_len as u64 + u64::from(s.unacked) + payload.len() as u64;
            if held > u64::from(s.recv_window) {
                return Err(Refused::OverWindow);
            }
        }
        if !payload.is_empty() {
            s.recv_len += payload.len();
            s.recv.push_back(payload);
        }
        if let Some(w) = s.read_waker.take() {
            w.wake();
        }
        Ok(s.recv_len)
    }

    /// Unread bytes.
    pub(super) fn unread(&self) -> usize {
        self.state().recv_len
    }

    /// The peer granted `increment` more bytes.
    pub(super) fn add_credit(&self, increment: u32) {
        let mut s = self.state();
        s.send_credit = s.send_credit.saturating_add(u64::from(increment));
        if let Some(w) = s.write_waker.take() {
            w.wake();
        }
    }

    /// The peer finished sending; with `closed` (JSON `close`) it takes nothing more either.
    pub(super) fn peer_fin(&self, closed: bool) {
        let mut s = self.state();
        s.fin_received = true;
        s.peer_closed |= closed;
        wake_both(&mut s);
    }

    /// The peer aborted the stream.
    pub(super) fn peer_reset(&self, code: ErrorCode) {
        let mut s = self.state();
        s.reset.get_or_insert(code);
        s.pending.clear();
        s.pending_len = 0;
        wake_both(&mut s);
        drop(s);
        self.drained.notify_one();
    }

    /// The connection is gone.
    pub(super) fn connection_lost(&self) {
        let mut s = self.state();
        s.lost = true;
        s.pending.clear();
        s.pending_len = 0;
        wake_both(&mut s);
        drop(s);
        self.drained.notify_one();
    }

    /// Receive window granted beyond the initial one (returned to the connection's budget
    /// when the stream ends).
    fn extra_window(&self) -> u64 {
        u64::from(self.state().recv_window.saturating_sub(INITIAL_WINDOW))
    }
}

fn wake_both(s: &mut StreamState) {
    if let Some(w) = s.read_waker.take() {
        w.wake();
    }
    if let Some(w) = s.write_waker.take() {
        w.wake();
    }
}

/// One stream of a tunnel connection: bytes in order both ways, with half-close.
///
/// `shutdown()` sends FIN once the queued bytes are out; reading returns EOF after the
/// peer's FIN. Dropping the stream before both directions finished resets it (RST).
#[derive(Debug)]
pub struct MuxStream {
    pub(super) cell: Arc<StreamCell>,
    pub(super) shared: Arc<Shared>,
}

impl MuxStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.cell.id
    }

    /// Aborts the stream both ways with `code`.
    pub fn reset(self, code: ErrorCode) {
        let stream = self.cell.id;
        {
            let mut s = self.cell.state();
            if s.reset.is_none() && !s.lost {
                s.reset = Some(code);
                s.pending.clear();
                s.pending_len = 0;
                drop(s);
                self.shared.send_control(Out::Frame(Frame::Rst {
                    stream,
                    code,
                    reason: String::new(),
                }));
            }
        }
        // Drop sees the reset and sends nothing more.
    }

    fn grant(&self, s: &mut StreamState) {
        if self.shared.codec != Codec::Binary || s.fin_received {
            return;
        }
        if s.unacked < s.recv_window / 2 {
            return;
        }
        let mut increment = s.unacked;
        let now = Instant::now();
        let max = self.shared.config.max_window;
        let quick = self
            .shared
            .rtt()
            .map_or(GROW_WHEN_WITHIN, |rtt| (rtt * 2).max(GROW_WHEN_WITHIN));
        if s.recv_window < max && s.last_grant.is_some_and(|t| now - t < quick) {
            let extra = s.recv_window.min(max - s.recv_window);
            let mut inner = self.shared.lock();
            if inner.extra_window + u64::from(extra) <= self.shared.config.connection_window {
                inner.extra_window += u64::from(extra);
                s.recv_window += extra;
                increment += extra;
            }
        }
        s.last_grant = Some(now);
        s.unacked = 0;
        self.shared.send_control(Out::Frame(Frame::Window {
            stream: self.cell.id,
            increment,
        }));
    }
}

fn closed_error(s: &StreamState) -> Option<io::Error> {
    if let Some(code) = s.reset {
        return Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("tunnel stream reset: {code}"),
        ));
    }
    if s.lost {
        return Some(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "tunnel connection lost",
        ));
    }
    None
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut s = this.cell.state();
        // A reset discards what was received; a lost connection still delivers the bytes
        // (and the FIN) that arrived before it ended.
        let drained = s.recv.is_empty() && !s.fin_received;
        if let Some(e) = closed_error(&s).filter(|_| s.reset.is_some() || drained) {
            return Poll::Ready(Err(e));
        }
        if s.recv.is_empty() {
            if s.fin_received {
                return Poll::Ready(Ok(()));
            }
            s.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut copied = 0;
        while buf.remaining() > 0 {
            let Some(front) = s.recv.front_mut() else {
                break;
            };
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                s.recv.pop_front();
            }
            copied += n;
        }
        s.recv_len -= copied;
        s.unacked = s.unacked.saturating_add(copied as u32);
        this.grant(&mut s);
        let paused_reader_may_go = s.recv_len < JSON_STREAM_BUFFER;
        drop(s);
        if this.shared.codec == Codec::AnyProxyJson && paused_reader_may_go {
            this.cell.drained.notify_one();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut s = this.cell.state();
        if let Some(e) = closed_error(&s) {
            return Poll::Ready(Err(e));
        }
        if s.fin_sent || s.peer_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "tunnel stream closed for writing",
            )));
        }
        let header = match this.shared.codec {
            Codec::Binary => HEADER_LEN,
            Codec::AnyProxyJson => 0,
        };
        let room = (SEND_BUFFER - s.pending_len.min(SEND_BUFFER)) as u64;
        let n = (buf.len() as u64).min(room).min(s.send_credit) as usize;
        if n == 0 {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let full = s
                .pending
                .back()
                .is_none_or(|last| last.len() - header >= MAX_DATA_LEN);
            if full {
                let mut frame = BytesMut::with_capacity(header + MAX_DATA_LEN.min(rest.len()));
                if header > 0 {
                    put_data_header(&mut frame, this.cell.id);
                }
                s.pending.push_back(frame);
            }
            let last = s.pending.back_mut().expect("a frame was just ensured");
            let take = rest.len().min(MAX_DATA_LEN - (last.len() - header));
            last.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        s.pending_len += n;
        s.send_credit -= n as u64;
        let enqueue = !s.queued;
        s.queued = true;
        drop(s);
        this.shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        if enqueue {
            this.shared.lock().ready.push_back(this.cell.id);
            this.shared.wake_writer.notify_one();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued chunks go out without being asked; there is nothing to push.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut s = this.cell.state();
        if let Some(e) = closed_error(&s) {
            return Poll::Ready(Err(e));
        }
        if s.fin_sent {
            return Poll::Ready(Ok(()));
        }
        if !s.pending.is_empty() {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        s.fin_sent = true;
        let peer_closed = s.peer_closed;
        drop(s);
        let stream = this.cell.id;
        match this.shared.codec {
            Codec::Binary => this.shared.send_control(Out::Frame(Frame::Fin { stream })),
            // The JSON protocol has no half-close: the first end to finish closes the whole
            // connection with `close`, as AnyProxy does.
            Codec::AnyProxyJson if !peer_closed => {
                this.shared.send_control(Out::Frame(Frame::Rst {
                    stream,
                    code: ErrorCode::None,
                    reason: "eof".into(),
                }))
            }
            Codec::AnyProxyJson => {}
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let stream = self.cell.id;
        let abort = {
            let s = self.cell.state();
            let finished = match self.shared.codec {
                Codec::Binary => s.fin_sent && s.fin_received,
                Codec::AnyProxyJson => s.peer_closed || s.fin_sent,
            };
            s.reset.is_none() && !s.lost && !finished
        };
        if abort {
            self.shared.send_control(Out::Frame(Frame::Rst {
                stream,
                code: ErrorCode::Cancelled,
                reason: String::new(),
            }));
        }
        self.shared
            .forget_stream(&self.cell, self.cell.extra_window());
        // A reader paused on this stream (JSON protocol) must not wait for it any longer.
        self.cell.drained.notify_one();
    }
}
