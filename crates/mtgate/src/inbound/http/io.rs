//! Streams for hyper: the client's socket with the bytes already read in front of it, and an
//! upstream connection of any kind.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tap::SharedTap;

/// A TCP stream whose first reads return `prefix` (bytes the prelude already consumed); what
/// is read also goes to a [`super::tap::HeadTap`].
#[derive(Debug)]
pub struct Prefixed {
    prefix: Vec<u8>,
    read: usize,
    stream: TcpStream,
    tap: SharedTap,
}

impl Prefixed {
    /// `stream` with `prefix` in front, recording into `tap`.
    pub fn new(prefix: Vec<u8>, stream: TcpStream, tap: SharedTap) -> Self {
        Self {
            prefix,
            read: 0,
            stream,
            tap,
        }
    }

    /// The socket and the prefix bytes not read yet.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let mut prefix = self.prefix;
        prefix.drain(..self.read);
        (self.stream, prefix)
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
        } else {
            ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        }
        this.tap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Any upstream connection, for hyper's client.
pub trait UpstreamIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpstreamIo for T {}

/// An upstream connection opened by [`crate::outbound`], as one stream type.
pub fn upstream_io(dialed: crate::outbound::Dialed) -> Box<dyn UpstreamIo> {
    use crate::outbound::Dialed;
    match dialed {
        Dialed::Direct(stream) => Box::new(stream),
        Dialed::Tunnel(tunnel) => Box::new(TunnelIo(tunnel)),
        Dialed::Stream(stream) => Box::new(*stream),
        Dialed::Agent(stream) => Box::new(*stream),
    }
}

/// A plain-TCP upstream tunnel (keeps its pool lease); early bytes are served first.
struct TunnelIo(Box<mtgate_client::TcpTunnel>);

impl AsyncRead for TunnelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tunnel = &mut *self.0;
        if !tunnel.prefix.is_empty() {
            let n = tunnel.prefix.len().min(buf.remaining());
            buf.put_slice(&tunnel.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut tunnel.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0.tcp).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.tcp).poll_shutdown(cx)
    }
}
