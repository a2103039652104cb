//! The byte pipe under a tunnel: TCP, TLS over a previous pipe, or a pipe with bytes already
//! read from it put back in front.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// What a hop of a chain runs over. Recursive so that TLS to the second proxy can run inside
/// the tunnel through the first.
#[derive(Debug)]
pub(crate) enum Transport {
    /// A plain TCP connection.
    Tcp(TcpStream),
    /// TLS (to an `https://` proxy) over another transport.
    Tls(Box<TlsStream<Transport>>),
    /// Bytes read past a handshake, served before the inner transport's.
    Rewind(Box<Rewind<Transport>>),
}

impl Transport {
    /// The underlying TCP connection.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0.tcp(),
            Self::Rewind(rewind) => rewind.inner.tcp(),
        }
    }

    /// Puts `prefix` in front of the transport's bytes (no-op when empty).
    pub(crate) fn rewound(self, prefix: Bytes) -> Self {
        if prefix.is_empty() {
            self
        } else {
            Self::Rewind(Box::new(Rewind {
                prefix,
                inner: self,
            }))
        }
    }
}

/// A stream with some already-read bytes to hand out first.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    pub(crate) prefix: Bytes,
    pub(crate) inner: T,
}

/// Serves `prefix` into `buf` if any is left; returns whether it did.
pub(crate) fn read_prefix(prefix: &mut Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let n = prefix.len().min(buf.remaining());
    buf.put_slice(&prefix[..n]);
    prefix.advance(n);
    true
}

impl AsyncRead for Rewind<Transport> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if read_prefix(&mut this.prefix, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

macro_rules! delegate {
    ($self:ident, $io:ident => $call:expr) => {
        match &mut *$self {
            Transport::Tcp($io) => {
                let $io = Pin::new($io);
                $call
            }
            Transport::Tls(tls) => {
                let $io = Pin::new(&mut **tls);
                $call
            }
            Transport::Rewind(rewind) => {
                let $io = Pin::new(&mut rewind.inner);
                $call
            }
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Transport::Rewind(rewind) = &mut *self {
            return Pin::new(&mut **rewind).poll_read(cx, buf);
        }
        delegate!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => io.poll_write(cx, data))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
            Self::Rewind(rewind) => rewind.inner.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => io.poll_shutdown(cx))
    }
}
