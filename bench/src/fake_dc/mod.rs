//! A fake Telegram DC, as a proxy in direct mode sees one.
//!
//! The proxy opens a keyless obfuscated2 stream (wire reference §6.3): 64 bytes whose tail,
//! once decrypted with the raw key seed, names the transport and the DC. The fake DC accepts
//! any DC index, remembers it, then either
//!
//! - [`EchoMode::Frames`]: decodes each frame of the client's transport and sends its payload
//!   back framed the same way (padded intermediate gets 0..=3 random padding bytes; quick-ack
//!   flags are ignored), or
//! - [`EchoMode::Raw`]: decrypts whatever arrives and sends the same plaintext back encrypted,
//!   without looking at frames (throughput runs, where parsing would only slow the DC down).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtgate_bench::fake_dc::FakeDcError> {
//! use mtgate_bench::fake_dc::FakeDc;
//! let dc = FakeDc::bind(&["127.0.0.1:0".parse().unwrap()]).await?.spawn();
//! let addr = dc.local_addrs()[0];
//! // ... point a proxy's DC table at `addr`, connect clients ...
//! assert_eq!(dc.stats().snapshot().headers_rejected, 0);
//! dc.stop().await;
//! # Ok(()) }
//! ```

mod session;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::mtproto::transport::DEFAULT_MAX_FRAME;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use stats::{FakeDcStats, StatsSnapshot};

/// What the fake DC sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EchoMode {
    /// Decode frames and echo each payload in a new frame of the same transport.
    #[default]
    Frames,
    /// Echo decrypted bytes as they come, without parsing frames.
    Raw,
}

/// Limits and behaviour of a fake DC.
#[derive(Debug, Clone)]
pub struct FakeDcConfig {
    /// What to send back.
    pub mode: EchoMode,
    /// How long to wait for the 64-byte header after accepting.
    pub header_timeout: Duration,
    /// How long a connection may stay silent before it is closed.
    pub idle_timeout: Duration,
    /// How long one write back to the peer may take.
    pub write_timeout: Duration,
    /// Largest frame body accepted in frame mode.
    pub max_frame: usize,
    /// Connections served at once; further peers wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for FakeDcConfig {
    fn default() -> Self {
        Self {
            mode: EchoMode::Frames,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 30_000,
        }
    }
}

/// Why a fake DC could not start.
#[derive(Debug, thiserror::Error)]
pub enum FakeDcError {
    /// No address to listen on.
    #[error("a fake DC needs at least one listen address")]
    NoAddress,
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A fake DC whose listeners are bound but not yet accepting.
#[derive(Debug)]
pub struct FakeDc {
    listeners: Vec<TcpListener>,
    local_addrs: Vec<SocketAddr>,
    config: FakeDcConfig,
    stats: Arc<FakeDcStats>,
}

impl FakeDc {
    /// Binds every address with the default configuration (frame echo).
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Self, FakeDcError> {
        Self::bind_with(addrs, FakeDcConfig::default()).await
    }

    /// Binds every address. Port 0 picks a free port; see [`FakeDc::local_addrs`].
    pub async fn bind_with(
        addrs: &[SocketAddr],
        config: FakeDcConfig,
    ) -> Result<Self, FakeDcError> {
        if addrs.is_empty() {
            return Err(FakeDcError::NoAddress);
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        let mut local_addrs = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let listener = listen(addr).map_err(|source| FakeDcError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| FakeDcError::Bind { addr, source })?;
            listeners.push(listener);
            local_addrs.push(local);
        }
        Ok(Self {
            listeners,
            local_addrs,
            config,
            stats: Arc::default(),
        })
    }

    /// The addresses actually bound, in the order given to [`FakeDc::bind`].
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The counters, live.
    pub fn stats(&self) -> &Arc<FakeDcStats> {
        &self.stats
    }

    /// Starts accepting on every listener in background tasks.
    pub fn spawn(self) -> FakeDcHandle {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.config.max_connections));
        let config = Arc::new(self.config);
        for listener in self.listeners {
            tracker.spawn(accept_loop(
                listener,
                Arc::clone(&config),
                Arc::clone(&self.stats),
                Arc::clone(&permits),
                cancel.clone(),
                tracker.clone(),
            ));
        }
        FakeDcHandle {
            local_addrs: self.local_addrs,
            stats: self.stats,
            cancel,
            tracker,
        }
    }
}

/// A running fake DC. Dropping it stops the accept loops and closes every connection (without
/// waiting for them; use [`FakeDcHandle::stop`] to wait).
#[derive(Debug)]
pub struct FakeDcHandle {
    local_addrs: Vec<SocketAddr>,
    stats: Arc<FakeDcStats>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl FakeDcHandle {
    /// The addresses the fake DC listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The counters, live.
    pub fn stats(&self) -> &Arc<FakeDcStats> {
        &self.stats
    }

    /// Stops accepting, closes every connection and waits until all tasks have ended.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for FakeDcHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // A deep backlog: load runs open thousands of connections at once.
    socket.listen(4096)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<FakeDcConfig>,
    stats: Arc<FakeDcStats>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = cancel.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let config = Arc::clone(&config);
                let stats = Arc::clone(&stats);
                let cancel = cancel.clone();
                tracker.spawn(async move {
                    session::serve(stream, peer, &config, &stats, &cancel).await;
                    drop(permit);
                });
            }
            Err(error) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(%error, "fake DC accept failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }
}
