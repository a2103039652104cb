//! The two halves of a session's stream, with two switches the session needs and the frame
//! library does not offer: send FIN at the next flush (so a close frame is read before the
//! socket goes away), and discard everything read (to drain a peer after refusing a frame
//! whose payload was never read, instead of resetting the connection on it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads at most this many chunks per poll while draining, then yields.
const DRAIN_ROUNDS: usize = 16;

/// A read half that can be switched to discard its input until EOF.
#[derive(Debug)]
pub struct DrainRead<R> {
    inner: R,
    drain: Arc<AtomicBool>,
}

impl<R> DrainRead<R> {
    /// Wraps `inner`; setting `drain` turns reads into discarding until EOF.
    pub fn new(inner: R, drain: Arc<AtomicBool>) -> Self {
        Self { inner, drain }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DrainRead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.drain.load(Ordering::Relaxed) {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let mut scratch = [0u8; 8192];
        for _ in 0..DRAIN_ROUNDS {
            let mut sink = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut sink) {
                // EOF: report it with nothing read.
                Poll::Ready(Ok(())) if sink.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A write half that shuts down (FIN) at the flush after `fin` is set.
#[derive(Debug)]
pub struct FinWrite<W> {
    inner: W,
    fin: Arc<AtomicBool>,
    shut: bool,
}

impl<W> FinWrite<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, fin: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            fin,
            shut: false,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for FinWrite<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) if !self.shut && self.fin.load(Ordering::Relaxed) => {
                let done = Pin::new(&mut self.inner).poll_shutdown(cx);
                if done.is_ready() {
                    self.shut = true;
                }
                done
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
