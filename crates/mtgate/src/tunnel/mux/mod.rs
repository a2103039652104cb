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
//! RST.

use std::time::Duration;

use fastwebsockets::WebSocket;
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{ErrorCode, Network, OpenTarget};
use tokio::io::{AsyncRead, AsyncWrite};

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
    /// Inbound OPENs queued for [`Incoming::next`] before new ones are refused.
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
            accept_backlog: 256,
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
    /// The last PING's round-trip time.
    pub rtt: Option<Duration>,
}

/// A handle on one multiplexed connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Mux {}

/// The peer's requests, in arrival order.
#[derive(Debug)]
pub struct Incoming {}

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
pub struct IncomingOpen {}

/// A LISTEN from the agent. Dropping it refuses with INTERNAL_ERROR.
#[derive(Debug)]
pub struct ListenRequest {}

/// One stream: bytes in order both ways, with half-close.
#[derive(Debug)]
pub struct MuxStream {}

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
        let _ = (ws, role, codec, config);
        unimplemented!("mux under construction")
    }

    /// Opens a stream to `target` and waits for the peer's answer.
    pub async fn open(&self, target: OpenTarget) -> Result<MuxStream, OpenError> {
        let _ = target;
        unimplemented!("mux under construction")
    }

    /// Asks the gateway to listen on `port` and forward what it accepts to `target` on this
    /// side (agent only); the gateway's OPENs for it then arrive through [`Incoming`].
    pub async fn listen(
        &self,
        network: Network,
        port: u16,
        target: Address,
    ) -> Result<(), ListenError> {
        let _ = (network, port, target);
        unimplemented!("mux under construction")
    }

    /// Sends GOAWAY: no new streams either way; existing ones finish.
    pub fn go_away(&self) {
        unimplemented!("mux under construction")
    }

    /// Closes the connection now; open streams are reset.
    pub fn close(&self) {
        unimplemented!("mux under construction")
    }

    /// Waits until the connection has ended.
    pub async fn closed(&self) {
        unimplemented!("mux under construction")
    }

    /// True once the connection ended or GOAWAY was sent or received.
    pub fn is_closing(&self) -> bool {
        unimplemented!("mux under construction")
    }

    /// Current counters.
    pub fn stats(&self) -> MuxStats {
        unimplemented!("mux under construction")
    }
}

impl Incoming {
    /// The next request, or `None` once the connection closed.
    pub async fn next(&mut self) -> Option<Inbound> {
        unimplemented!("mux under construction")
    }
}

impl IncomingOpen {
    /// Where the peer wants to go.
    pub fn target(&self) -> &OpenTarget {
        unimplemented!("mux under construction")
    }

    /// Sends OPEN_OK and returns the stream.
    pub fn accept(self) -> MuxStream {
        unimplemented!("mux under construction")
    }

    /// Sends OPEN_ERR.
    pub fn reject(self, code: ErrorCode, reason: &str) {
        let _ = (code, reason);
        unimplemented!("mux under construction")
    }
}

impl ListenRequest {
    /// TCP or UDP.
    pub fn network(&self) -> Network {
        unimplemented!("mux under construction")
    }

    /// The port the agent wants the gateway to listen on.
    pub fn port(&self) -> u16 {
        unimplemented!("mux under construction")
    }

    /// The address on the agent's side to forward to (send it back in the OPENs).
    pub fn target(&self) -> &Address {
        unimplemented!("mux under construction")
    }

    /// Answers the request: `Ok` when the port listens.
    pub fn answer(self, result: Result<(), (ErrorCode, String)>) {
        let _ = result;
        unimplemented!("mux under construction")
    }
}

impl MuxStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        unimplemented!("mux under construction")
    }

    /// Aborts the stream both ways with `code`.
    pub fn reset(self, code: ErrorCode) {
        let _ = code;
        unimplemented!("mux under construction")
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        unimplemented!("mux under construction")
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        unimplemented!("mux under construction")
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        unimplemented!("mux under construction")
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        unimplemented!("mux under construction")
    }
}
