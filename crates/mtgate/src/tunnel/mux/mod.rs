//! Many streams over one WebSocket connection (the tunnel's multiplexer).
//!
//! [`Mux::start`] takes a WebSocket whose handshake is done and runs two tasks: a reader that
//! decodes frames and hands them to streams, and a writer that sends control frames first and
//! then one DATA frame per ready stream in turn, so a bulk stream cannot starve a small one.
//!
//! Streams are [`MuxStream`]s: `AsyncRead + AsyncWrite`, so the relay moves their bytes like a
//! socket's. Each direction of a stream has a byte-credit window: a writer waits for credit
//! and never drops; a reader's credit is returned once the application has read the bytes.
//! `shutdown()` sends FIN (half-close); dropping a stream before both directions finished sends
//! RST. UDP streams carry datagrams instead ([`MuxStream::send_datagram`],
//! [`MuxStream::recv_datagram`]): one DATA frame each, dropped rather than waited for when the
//! window or the send buffer is full.

#[cfg(test)]
mod datagram_tests;
mod json;
mod reader;
mod state;
mod stream;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fastwebsockets::WebSocket;
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{ErrorCode, Frame, Network, OpenTarget};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use state::{Out, Shared};
use stream::StreamCell;
pub use stream::{DatagramDrop, MuxStream};

/// Which end of the tunnel this is. The gateway is the WebSocket server and opens even
/// stream ids; the agent is the client, masks its frames and opens odd ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The WebSocket server side.
    Gateway,
    /// The WebSocket client side (`mtgate agent`).
    Agent,
}

/// The wire format, chosen by the WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `mtgate-tunnel-v1`: binary frames with flow control.
    Binary,
    /// `anyproxy-json`: AnyProxy's documented JSON messages. No windows on the wire: a
    /// stream whose reader is slow pauses the whole connection instead of losing data.
    AnyProxyJson,
}

/// Tunables of one multiplexed connection.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// Streams the peer may have open towards us at once; OPENs over it get RATE_LIMITED.
    pub max_inbound_streams: usize,
    /// Largest receive window a stream grows to, in bytes.
    pub max_window: u32,
    /// Receive windows of all streams together stop growing past this many bytes.
    pub connection_window: u64,
    /// How often to PING the peer.
    pub ping_interval: Duration,
    /// How long a PONG may take before the connection is declared dead.
    pub pong_timeout: Duration,
    /// How long [`Mux::open`] waits for OPEN_OK or OPEN_ERR.
    pub open_timeout: Duration,
    /// Inbound OPENs queued for [`Incoming::next`] before new ones are refused (with
    /// RATE_LIMITED). A burst of OPENs is normal (a browser opening a page through the
    /// gateway), so the default matches the default stream cap.
    pub accept_backlog: usize,
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            max_inbound_streams: 4096,
            max_window: 4 * 1024 * 1024,
            connection_window: 64 * 1024 * 1024,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(15),
            accept_backlog: 4096,
        }
    }
}

/// Why [`Mux::open`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The peer answered OPEN_ERR (or RST before OPEN_OK).
    #[error("{code}: {reason}")]
    Refused {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's detail.
        reason: String,
    },
    /// No answer within [`MuxConfig::open_timeout`].
    #[error("no answer to OPEN in time")]
    Timeout,
    /// The connection is closed or closing (GOAWAY sent or received).
    #[error("tunnel connection closed")]
    Closed,
}

/// Why a LISTEN request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// The gateway refused it.
    #[error("{code}: {reason}")]
    Refused {
        /// The gateway's code.
        code: ErrorCode,
        /// The gateway's detail.
        reason: String,
    },
    /// The connection closed before the answer.
    #[error("tunnel connection closed")]
    Closed,
    /// The JSON protocol cannot carry LISTEN.
    #[error("the AnyProxy JSON protocol has no remote listeners")]
    Unsupported,
}

/// Bytes and datagrams, summed over connections (live ones, and those that closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Stream payload bytes received.
    pub bytes_in: u64,
    /// Stream payload bytes sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams dropped.
    pub datagrams_dropped: u64,
}

impl Traffic {
    /// Adds one connection's counts.
    pub fn add(&mut self, s: &MuxStats) {
        self.bytes_in += s.bytes_in;
        self.bytes_out += s.bytes_out;
        self.datagrams_in += s.datagrams_in;
        self.datagrams_out += s.datagrams_out;
        self.datagrams_dropped += s.datagrams_dropped;
    }

    /// Bytes as metric rows: `in`, `out`.
    pub fn bytes_by_direction(&self) -> [(&'static str, u64); 2] {
        [("in", self.bytes_in), ("out", self.bytes_out)]
    }

    /// Datagrams as metric rows: `in`, `out`, `dropped`.
    pub fn datagrams_by_direction(&self) -> [(&'static str, u64); 3] {
        [
            ("in", self.datagrams_in),
            ("out", self.datagrams_out),
            ("dropped", self.datagrams_dropped),
        ]
    }
}

/// Counters of one connection, read at any time.
#[derive(Debug, Clone, Default)]
pub struct MuxStats {
    /// Streams open now (both directions of opening).
    pub open_streams: usize,
    /// Streams opened since the start, by either side.
    pub streams_total: u64,
    /// OPENs answered with OPEN_ERR or timed out, by either side.
    pub open_failures: u64,
    /// Stream payload bytes received.
    pub bytes_in: u64,
    /// Stream payload bytes sent.
    pub bytes_out: u64,
    /// Datagrams (DATA frames of UDP streams) received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams dropped either way: too big for a frame, no window or buffer room.
    pub datagrams_dropped: u64,
    /// The last PING's round-trip time.
    pub rtt: Option<Duration>,
}

/// Closes the connection when the last [`Mux`] handle and the [`Incoming`] are gone.
#[derive(Debug)]
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// A handle on one multiplexed connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Mux {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// The peer's requests, in arrival order.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Inbound>,
    _owner: Arc<Owner>,
}

/// One request from the peer.
#[derive(Debug)]
pub enum Inbound {
    /// The peer wants a stream to a target.
    Open(IncomingOpen),
    /// The agent asks the gateway to listen on a port (only the gateway receives these).
    Listen(ListenRequest),
}

/// An OPEN from the peer, to accept or refuse. Dropping it refuses with INTERNAL_ERROR.
#[derive(Debug)]
pub struct IncomingOpen {
    cell: Option<Arc<StreamCell>>,
    shared: Arc<Shared>,
    target: OpenTarget,
}

/// A LISTEN from the agent. Dropping it refuses with INTERNAL_ERROR.
#[derive(Debug)]
pub struct ListenRequest {
    request: u32,
    network: Network,
    port: u16,
    target: Address,
    shared: Option<Arc<Shared>>,
}

impl Mux {
    /// Runs the multiplexer over `ws` (handshake done) and returns the handle and the peer's
    /// requests. The tasks end when the connection closes; dropping every handle and the
    /// [`Incoming`] closes it.
    pub fn start<S>(
        ws: WebSocket<S>,
        role: Role,
        codec: Codec,
        config: MuxConfig,
    ) -> (Mux, Incoming)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(config.accept_backlog.max(1));
        let shared = Arc::new(Shared::new(role, codec, config, tx));
        let (mut read, mut write) = ws.split(tokio::io::split);
        read.set_auto_close(true);
        read.set_auto_pong(true);
        read.set_max_message_size(reader::max_message(codec));
        write.set_writev(true);
        tokio::spawn(reader::run(read, shared.clone()));
        tokio::spawn(writer::run(write, shared.clone()));
        let owner = Arc::new(Owner(shared.clone()));
        (
            Mux {
                shared,
                _owner: owner.clone(),
            },
            Incoming { rx, _owner: owner },
        )
    }

    /// Opens a stream to `target` and waits for the peer's answer. Dropping the future
    /// cancels the stream (RST).
    pub async fn open(&self, target: OpenTarget) -> Result<MuxStream, OpenError> {
        let shared = &self.shared;
        let (tx, rx) = oneshot::channel();
        let cell = {
            let mut inner = shared.lock();
            if self.is_closing() {
                return Err(OpenError::Closed);
            }
            let id = inner.next_id;
            let Some(next) = id.checked_add(2) else {
                shared.going_away.store(true, Ordering::Relaxed);
                return Err(OpenError::Closed);
            };
            inner.next_id = next;
            let cell = Arc::new(StreamCell::new(id, false, shared.codec, target.network));
            inner.streams.insert(id, cell.clone());
            inner.pending_opens.insert(id, tx);
            inner
                .control
                .push_back(Out::Frame(Frame::Open { stream: id, target }));
            cell
        };
        shared.wake_writer.notify_one();
        shared.streams_total.fetch_add(1, Ordering::Relaxed);
        // From here on, dropping `stream` (failure, timeout, cancellation) resets the stream.
        let stream = MuxStream {
            cell: cell.clone(),
            shared: shared.clone(),
        };
        let failed = |e| {
            shared.open_failures.fetch_add(1, Ordering::Relaxed);
            Err(e)
        };
        match tokio::time::timeout(shared.config.open_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(stream),
            Ok(Ok(Err((code, reason)))) => {
                // Refused: the peer forgot the stream already, no RST needed.
                cell.peer_reset(code);
                failed(
                    if code == ErrorCode::Cancelled && shared.done.is_cancelled() {
                        OpenError::Closed
                    } else {
                        OpenError::Refused { code, reason }
                    },
                )
            }
            Ok(Err(_)) => failed(OpenError::Closed),
            Err(_) => failed(OpenError::Timeout),
        }
    }

    /// Asks the gateway to listen on `port` and forward what it accepts to `target` on this
    /// side (agent only); the gateway's OPENs for it then arrive through [`Incoming`].
    pub async fn listen(
        &self,
        network: Network,
        port: u16,
        target: Address,
    ) -> Result<(), ListenError> {
        let shared = &self.shared;
        if shared.codec == Codec::AnyProxyJson {
            return Err(ListenError::Unsupported);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = shared.lock();
            if shared.done.is_cancelled() {
                return Err(ListenError::Closed);
            }
            let request = inner.next_listen;
            inner.next_listen = inner.next_listen.wrapping_add(1);
            inner.pending_listens.insert(request, tx);
            inner.control.push_back(Out::Frame(Frame::Listen {
                request,
                network,
                port,
                target,
            }));
        }
        shared.wake_writer.notify_one();
        match tokio::time::timeout(shared.config.open_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err((code, reason)))) if !shared.done.is_cancelled() => {
                Err(ListenError::Refused { code, reason })
            }
            _ => Err(ListenError::Closed),
        }
    }

    /// Sends GOAWAY: no new streams either way; existing ones finish.
    pub fn go_away(&self) {
        if !self.shared.going_away.swap(true, Ordering::Relaxed) {
            self.shared.send_control(Out::Frame(Frame::GoAway {
                code: ErrorCode::None,
                reason: "going away".into(),
            }));
        }
    }

    /// Closes the connection now; open streams are reset.
    pub fn close(&self) {
        self.shared.fail(state::CLOSE_GOING_AWAY);
    }

    /// Ends the connection after writing what is queued (the last FINs, RSTs and data),
    /// waiting at most `grace`; streams still open are reset.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.finishing.cancel();
        self.shared.wake_writer.notify_one();
        if tokio::time::timeout(grace, self.closed()).await.is_err() {
            self.close();
        }
    }

    /// Waits until the connection has ended.
    pub async fn closed(&self) {
        self.shared.done.cancelled().await;
    }

    /// True once the connection ended or GOAWAY was sent or received.
    pub fn is_closing(&self) -> bool {
        self.shared.done.is_cancelled() || self.shared.going_away.load(Ordering::Relaxed)
    }

    /// The wire format in use.
    pub fn codec(&self) -> Codec {
        self.shared.codec
    }

    /// Current counters.
    pub fn stats(&self) -> MuxStats {
        let s = &self.shared;
        MuxStats {
            open_streams: s.lock().streams.len(),
            streams_total: s.streams_total.load(Ordering::Relaxed),
            open_failures: s.open_failures.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            datagrams_in: s.datagrams_in.load(Ordering::Relaxed),
            datagrams_out: s.datagrams_out.load(Ordering::Relaxed),
            datagrams_dropped: s.datagrams_dropped.load(Ordering::Relaxed),
            rtt: s.rtt(),
        }
    }
}

impl Incoming {
    /// The next request, or `None` once the connection closed.
    pub async fn next(&mut self) -> Option<Inbound> {
        self.rx.recv().await
    }
}

impl IncomingOpen {
    /// Where the peer wants to go.
    pub fn target(&self) -> &OpenTarget {
        &self.target
    }

    /// Sends OPEN_OK and returns the stream.
    pub fn accept(mut self) -> MuxStream {
        let cell = self.cell.take().expect("an incoming open is answered once");
        self.shared
            .send_control(Out::Frame(Frame::OpenOk { stream: cell.id }));
        MuxStream {
            cell,
            shared: self.shared.clone(),
        }
    }

    /// Sends OPEN_ERR.
    pub fn reject(mut self, code: ErrorCode, reason: &str) {
        self.refuse(code, reason);
    }

    fn refuse(&mut self, code: ErrorCode, reason: &str) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        self.shared.open_failures.fetch_add(1, Ordering::Relaxed);
        cell.peer_reset(code);
        self.shared.send_control(Out::Frame(Frame::OpenErr {
            stream: cell.id,
            code,
            reason: reason.to_owned(),
        }));
        self.shared.forget_stream(&cell, 0);
    }
}

impl Drop for IncomingOpen {
    fn drop(&mut self) {
        self.refuse(ErrorCode::InternalError, "not handled");
    }
}

impl ListenRequest {
    /// TCP or UDP.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The port the agent wants the gateway to listen on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address on the agent's side to forward to (send it back in the OPENs).
    pub fn target(&self) -> &Address {
        &self.target
    }

    /// Answers the request: `Ok` when the port listens.
    pub fn answer(mut self, result: Result<(), (ErrorCode, String)>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<(), (ErrorCode, String)>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let (code, reason) = match result {
            Ok(()) => (ErrorCode::None, String::new()),
            Err(e) => e,
        };
        shared.send_control(Out::Frame(Frame::ListenResult {
            request: self.request,
            code,
            reason,
        }));
    }
}

impl Drop for ListenRequest {
    fn drop(&mut self) {
        self.send(Err((ErrorCode::InternalError, "not handled".into())));
    }
}
