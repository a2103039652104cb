//! A client socket that notes on its registry entry every time bytes move, so that relays
//! built on tokio's copy (through TLS upstreams) see activity for their idle timeout.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::relay::ConnEntry;

/// The client's socket, noting on the registry entry every time bytes move either way.
pub struct Touching<'a> {
    inner: TcpStream,
    entry: &'a ConnEntry,
}

impl AsyncRead for Touching<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.entry.touch();
        }
        result
    }
}

impl AsyncWrite for Touching<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.entry.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<'a> Touching<'a> {
    /// Wraps `inner`, touching `entry`.
    pub fn new(inner: TcpStream, entry: &'a ConnEntry) -> Self {
        Self { inner, entry }
    }
}
