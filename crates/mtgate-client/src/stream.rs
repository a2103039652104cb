//! The stream a successful connect returns, and what it knows about itself.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mtgate_proto::address::Address;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::pool::Lease;
use crate::proxy::Proxy;
use crate::transport::{Transport, read_prefix};

/// A connection to the target, through zero or more proxies. Reads and writes go to the
/// target; bytes the last proxy sent along with its reply are served first, so nothing the
/// target says early is lost.
///
/// Dropping it closes the connection (and, for pool connections, ends the member's in-flight
/// count).
#[derive(Debug)]
pub struct ProxyStream {
    transport: Transport,
    prefix: Bytes,
    info: ConnectionInfo,
    lease: Option<Lease>,
}

/// Facts about a connection: where it goes, how, and how many bytes moved.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The destination asked for.
    pub target: Address,
    /// The proxies used, in order (empty for a direct connection). Passwords are redacted when
    /// displayed.
    pub hops: Arc<[Proxy]>,
    /// Local address of the TCP connection.
    pub local_addr: Option<SocketAddr>,
    /// Remote address of the TCP connection: the first proxy, or the target when direct.
    pub peer_addr: Option<SocketAddr>,
    /// The address the last proxy reported as bound (SOCKS BND), if it said.
    pub bound_addr: Option<Address>,
    /// Time from the start of the attempt to the tunnel being ready.
    pub connect_time: Duration,
    /// The pool member that carried it, if it came from a pool.
    pub pool_member: Option<String>,
    /// Bytes read from the target so far (through this stream).
    pub bytes_read: u64,
    /// Bytes written towards the target so far.
    pub bytes_written: u64,
}

impl ProxyStream {
    pub(crate) fn new(transport: Transport, prefix: Bytes, info: ConnectionInfo) -> Self {
        Self {
            transport,
            prefix,
            info,
            lease: None,
        }
    }

    /// Replaces the transport (with the unread prefix put back in front of it) by what `wrap`
    /// makes of it, e.g. TLS over it.
    pub(crate) async fn map_transport<F, Fut>(self, wrap: F) -> Result<Self, crate::ConnectError>
    where
        F: FnOnce(Transport) -> Fut,
        Fut: std::future::Future<Output = Result<Transport, crate::ConnectError>>,
    {
        let transport = wrap(self.transport.rewound(self.prefix)).await?;
        Ok(Self {
            transport,
            prefix: Bytes::new(),
            info: self.info,
            lease: self.lease,
        })
    }

    pub(crate) fn attach_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    /// A snapshot of the connection's facts and byte counters.
    pub fn info(&self) -> ConnectionInfo {
        let mut info = self.info.clone();
        // Named when asked for, not on every connection a pool makes.
        info.pool_member = self.lease.as_ref().map(|l| l.member_name().to_owned());
        let tcp = self.transport.tcp();
        info.local_addr = tcp.local_addr().ok();
        info.peer_addr = tcp.peer_addr().ok();
        info
    }

    /// The TCP connection to the first hop, e.g. to set socket options.
    pub fn tcp(&self) -> &TcpStream {
        self.transport.tcp()
    }

    /// Bytes the proxy sent after its reply that have not been read yet.
    pub fn buffered(&self) -> &[u8] {
        &self.prefix
    }

    /// The plain TCP connection underneath, for relays that want the socket itself (e.g. to
    /// splice). Fails, giving the stream back, when TLS is involved or an earlier hop left
    /// bytes behind. Byte counters stop counting.
    #[allow(
        clippy::result_large_err,
        reason = "the stream itself comes back, by value"
    )]
    pub fn into_tcp(self) -> Result<TcpTunnel, Self> {
        match self.transport {
            Transport::Tcp(tcp) => {
                // The addresses are left out of `info`: `tcp` has them, and relays that do not
                // need them save two system calls per connection.
                Ok(TcpTunnel {
                    tcp,
                    prefix: self.prefix,
                    info: self.info,
                    _lease: self.lease,
                })
            }
            transport => Err(Self { transport, ..self }),
        }
    }
}

/// A tunnel as a bare TCP connection: write [`TcpTunnel::prefix`] to whoever reads from the
/// target before anything read from [`TcpTunnel::tcp`]. Keep it alive while relaying: for
/// pool connections it holds the member's in-flight count.
#[derive(Debug)]
pub struct TcpTunnel {
    /// The connection to the first hop, carrying the tunnel.
    pub tcp: TcpStream,
    /// Bytes from the target already read during the handshake.
    pub prefix: Bytes,
    /// Facts about the connection (byte counters as of the conversion; the addresses are not
    /// filled in, ask [`TcpTunnel::tcp`]).
    pub info: ConnectionInfo,
    _lease: Option<Lease>,
}

impl TcpTunnel {
    /// The socket, the bytes the target already sent, and the pool member's in-flight count
    /// as a guard of its own, for relays that keep the socket apart from the rest. Hold the
    /// guard as long as the socket is in use.
    pub fn into_parts(self) -> (TcpStream, Bytes, InFlight) {
        (self.tcp, self.prefix, InFlight(self._lease))
    }
}

/// Holds a pool member's in-flight count (nothing for connections outside pools) until
/// dropped.
#[derive(Debug)]
pub struct InFlight(#[allow(dead_code, reason = "held for its Drop")] Option<Lease>);

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = if read_prefix(&mut this.prefix, buf) {
            Poll::Ready(Ok(()))
        } else {
            Pin::new(&mut this.transport).poll_read(cx, buf)
        };
        this.info.bytes_read += (buf.filled().len() - before) as u64;
        result
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.transport).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result {
            this.info.bytes_written += n as u64;
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.transport).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.info.bytes_written += n as u64;
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.transport.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.transport).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.transport).poll_shutdown(cx)
    }
}
