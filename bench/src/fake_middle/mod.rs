//! A fake Telegram middle proxy ("ME"): the server side of the RPC protocol a proxy in
//! middle-proxy mode speaks (wire reference §7).
//!
//! It answers the proxy's RPC_NONCE with its own, derives the AES-256-CBC keys from both
//! nonces, both addresses and the proxy secret, answers RPC_HANDSHAKE (agreeing to CRC32C
//! when asked, unless [`FakeMiddleConfig::crc32c`] is off), then for every
//! RPC_PROXY_REQ
//!
//! - records what a test wants to assert: connection id, flags, client and proxy addresses,
//!   ad tag, and for the HTTP transport the TL_HTTP_QUERY_INFO headers ([`Request`]);
//! - sends RPC_SIMPLE_ACK first when the QUICKACK flag is set, with the first four payload
//!   bytes as the token;
//! - answers RPC_CLOSE_EXT instead of an echo when bytes 8..16 of the payload are
//!   [`CLOSE_ME`], or a transport error (RPC_PROXY_ANS with flag 0x10 and the 4-byte code
//!   −429) when they are [`ERROR_ME`];
//! - otherwise echoes the payload back as RPC_PROXY_ANS.
//!
//! After the handshake it sends one RPC_PING and counts the RPC_PONG; RPC_PING from the proxy is
//! answered with RPC_PONG; RPC_CLOSE_CONN is recorded. The proxy's address is
//! taken as the socket's peer address (no NAT on loopback).

mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtgate_proto::mtproto::middle::secret::ProxySecret;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes 8..16 of a payload that make the fake answer RPC_CLOSE_EXT.
pub const CLOSE_ME: &[u8; 8] = b"closeme!";

/// Bytes 8..16 of a payload that make the fake answer with the transport error −429.
pub const ERROR_ME: &[u8; 8] = b"errorme!";

/// One RPC_PROXY_REQ as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which accepted connection (0, 1, …) carried it.
    pub connection: usize,
    /// The client's connection id.
    pub conn_id: u64,
    /// Flags as sent.
    pub flags: u32,
    /// The client's address.
    pub client: SocketAddr,
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// The ad tag.
    pub ad_tag: Option<[u8; 16]>,
    /// TL_HTTP_QUERY_INFO, for queries of the HTTP transport.
    pub http: Option<HttpSeen>,
    /// Payload length.
    pub len: usize,
}

/// The HTTP headers an RPC_PROXY_REQ carried in TL_HTTP_QUERY_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSeen {
    /// `Origin`.
    pub origin: Vec<u8>,
    /// `Referer`.
    pub referer: Vec<u8>,
    /// `User-Agent`.
    pub user_agent: Vec<u8>,
}

/// What the fake has seen, live.
#[derive(Debug, Default)]
pub struct FakeMiddleStats {
    inner: Mutex<Seen>,
}

/// A copy of [`FakeMiddleStats`].
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Connections accepted.
    pub connections: usize,
    /// Connections whose handshake completed.
    pub handshakes: usize,
    /// Handshakes refused (wrong key selector, schema or keys).
    pub refused: usize,
    /// Handshakes that asked for CRC32C (flag 0x800).
    pub crc32c_asked: usize,
    /// Connections framed with CRC32C after the handshake.
    pub crc32c_used: usize,
    /// Every RPC_PROXY_REQ, in arrival order.
    pub requests: Vec<Request>,
    /// Connection ids announced closed by RPC_CLOSE_CONN.
    pub closed: Vec<u64>,
    /// RPC_PING received.
    pub pings: usize,
    /// RPC_PONG received for the ping sent after each handshake.
    pub pongs: usize,
}

impl FakeMiddleStats {
    /// A copy of everything seen so far.
    pub fn snapshot(&self) -> Seen {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Settings of a fake middle proxy.
#[derive(Debug, Clone)]
pub struct FakeMiddleConfig {
    /// The proxy secret it shares with proxies.
    pub secret: ProxySecret,
    /// Deadline of the nonce and handshake exchange.
    pub handshake_timeout: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Whether to agree to CRC32C when the proxy asks for it (handshake flag 0x800), as
    /// Telegram's middle proxies may; off, the answer keeps CRC32.
    pub crc32c: bool,
}

impl FakeMiddleConfig {
    /// Defaults around `secret`.
    pub fn new(secret: ProxySecret) -> Self {
        Self {
            secret,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_frame: 2 << 20,
            crc32c: true,
        }
    }
}

/// A running fake middle proxy. Dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct FakeMiddle {
    addr: SocketAddr,
    stats: Arc<FakeMiddleStats>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl FakeMiddle {
    /// Listens on `addr` (port 0 picks one) and serves.
    pub async fn start(addr: SocketAddr, config: FakeMiddleConfig) -> std::io::Result<Self> {
        Self::start_with_stats(addr, config, Arc::default()).await
    }

    /// As [`FakeMiddle::start`], adding to existing counters (a restart on the same port).
    pub async fn start_with_stats(
        addr: SocketAddr,
        config: FakeMiddleConfig,
        stats: Arc<FakeMiddleStats>,
    ) -> std::io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            Arc::new(config),
            stats.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        Ok(Self {
            addr,
            stats,
            cancel,
            tracker,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters, live.
    pub fn stats(&self) -> &Arc<FakeMiddleStats> {
        &self.stats
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for FakeMiddle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<FakeMiddleConfig>,
    stats: Arc<FakeMiddleStats>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let connection = {
            let mut seen = stats.lock();
            seen.connections += 1;
            seen.connections - 1
        };
        let config = config.clone();
        let stats = stats.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            tokio::select! {
                result = session::serve(stream, peer, connection, &config, &stats) => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "fake middle proxy connection ended");
                    }
                }
                () = cancel.cancelled() => {}
            }
        });
    }
}
