//! A client socket that notes on its registry entry every time bytes move, so that relays
//! built on tokio's copy (through TLS upstreams and tunnel agents) see activity for their idle
//! timeout, and counts the bytes for the listener's traffic metrics.

use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::relay::ConnEntry;

/// The client's socket, noting on the registry entry every time bytes move either way.
pub struct Touching<'a> {
    inner: TcpStream,
    entry: &'a ConnEntry,
    /// Bytes read from the client (upload) and written to it (download).
    counters: Option<(Counter, Counter)>,
}

impl AsyncRead for Touching<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.entry.touch();
            if let Some((up, _)) = &self.counters {
                up.inc_by(n as u64);
            }
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
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.entry.touch();
            if let Some((_, down)) = &self.counters {
                down.inc_by(n as u64);
            }
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
        Self {
            inner,
            entry,
            counters: None,
        }
    }

    /// Also counts the bytes read from the client (`up`) and written to it (`down`).
    pub fn counting(mut self, up: Counter, down: Counter) -> Self {
        self.counters = Some((up, down));
        self
    }
}
