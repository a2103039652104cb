//! The two halves of a session's stream, with two things the session needs and the frame
//! library does not offer: send FIN at the next flush (so a close frame is read before the
//! socket goes away), and take the read half back from the frame reader to drain a peer after
//! refusing a frame whose payload was never read, instead of resetting the connection on it.
//! (The frame reader may hold part of that payload in its buffer, and cannot skip it.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads at most this many chunks per poll while draining, then yields.
const DRAIN_ROUNDS: usize = 16;

/// Size of the scratch buffer a drain reads into.
const DRAIN_CHUNK: usize = 8192;

/// A read half shared with a [`Drainer`].
#[derive(Debug)]
pub struct DrainRead<R> {
    inner: Arc<Mutex<R>>,
}

/// Reads a [`DrainRead`]'s stream directly, discarding everything, once its frame reader is
/// no longer used.
#[derive(Debug)]
pub struct Drainer<R> {
    inner: Arc<Mutex<R>>,
}

impl<R> DrainRead<R> {
    /// Wraps `inner`, with the handle that can drain it.
    pub fn new(inner: R) -> (Self, Drainer<R>) {
        let inner = Arc::new(Mutex::new(inner));
        let drainer = Drainer {
            inner: inner.clone(),
        };
        (Self { inner }, drainer)
    }
}

fn lock<R>(inner: &Mutex<R>) -> MutexGuard<'_, R> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: AsyncRead + Unpin> AsyncRead for DrainRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.inner)).poll_read(cx, buf)
    }
}

impl<R: AsyncRead + Unpin> Drainer<R> {
    /// Reads and discards until the peer's EOF or a read error. Call it only once the frame
    /// reader is done with the stream.
    pub async fn until_eof(&self) {
        let mut scratch = vec![0u8; DRAIN_CHUNK];
        std::future::poll_fn(|cx| {
            let mut inner = lock(&self.inner);
            for _ in 0..DRAIN_ROUNDS {
                let mut sink = ReadBuf::new(&mut scratch);
                match Pin::new(&mut *inner).poll_read(cx, &mut sink) {
                    Poll::Ready(Ok(())) if sink.filled().is_empty() => return Poll::Ready(()),
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
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
