//! The relay loop: two pumps, an idle watchdog and a kill switch.
//!
//! A pump is a hand-written state machine rather than an `async fn`: its state is exactly the
//! filter, the sockets and the buffer on loan, with nothing duplicated by generator layout.
//! Every idle connection holds one relay, so those bytes count.

use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::buffers::{Buffer, BufferPool};
use super::filter::{Filter, ReadOutcome, RelayError};
use super::registry::ConnEntry;

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both sides finished sending.
    Finished,
    /// No bytes moved for the idle timeout.
    Idle,
    /// The connection was killed (memory pressure or shutdown).
    Killed,
    /// A socket failed or the bytes broke a rule.
    Failed(RelayError),
}

/// What a relay needs besides its two sockets and filters.
#[derive(Debug, Clone, Copy)]
pub struct RelayContext<'a> {
    /// Source of buffers.
    pub pool: &'a BufferPool,
    /// The connection's registry entry (activity, kill switch).
    pub entry: &'a ConnEntry,
    /// Close after this long without traffic.
    pub idle_timeout: Duration,
    /// The caller closes both sockets as soon as the relay returns. The direction that ends
    /// last then leaves its FIN to that close, one system call less per connection, when its
    /// destination has already sent everything (so the close cannot turn into a reset).
    pub closes_after: bool,
}

/// Relays between `a` and `b` until both directions end, the connection idles out, it is
/// killed, or an error occurs. Half-close is carried: when one side stops sending, the other
/// side's write half is shut down and the opposite direction goes on.
pub fn relay<'a, AB: Filter + 'a, BA: Filter + 'a>(
    a: &'a TcpStream,
    b: &'a TcpStream,
    a_to_b: (AB, Option<&'a Counter>),
    b_to_a: (BA, Option<&'a Counter>),
    ctx: RelayContext<'a>,
) -> impl Future<Output = RelayEnd> + 'a {
    // Built outside the async block so that each pump is stored once, as its upvar.
    let mut forward = Pump::new(a, b, a_to_b.0, a_to_b.1);
    let mut backward = Pump::new(b, a, b_to_a.0, b_to_a.1);
    async move {
        let both = poll_fn(|cx| {
            let f = forward.poll(cx, ctx, ctx.closes_after && backward.src_ended)?;
            let b = backward.poll(cx, ctx, ctx.closes_after && forward.src_ended)?;
            if f.is_ready() && b.is_ready() {
                Poll::Ready(Ok::<(), RelayError>(()))
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            result = both => match result {
                Ok(()) => RelayEnd::Finished,
                Err(e) => RelayEnd::Failed(e),
            },
            () = idle(ctx.entry, ctx.idle_timeout) => RelayEnd::Idle,
            () = ctx.entry.killed().cancelled() => RelayEnd::Killed,
        }
    }
}

/// One direction: read through the filter, write everything, repeat.
struct Pump<'a, F> {
    src: &'a TcpStream,
    dst: &'a TcpStream,
    filter: F,
    counter: Option<&'a Counter>,
    /// Bytes read but not yet written: the buffer, how far it is written, its length.
    unsent: Option<(Buffer<'a>, usize, usize)>,
    done: bool,
    /// `src` sent its FIN and everything before it was read.
    src_ended: bool,
}

impl<'a, F: Filter> Pump<'a, F> {
    fn new(
        src: &'a TcpStream,
        dst: &'a TcpStream,
        filter: F,
        counter: Option<&'a Counter>,
    ) -> Self {
        Self {
            src,
            dst,
            filter,
            counter,
            unsent: None,
            done: false,
            src_ended: false,
        }
    }

    /// Moves bytes until `src` ends or nothing can move. `fin_by_close`: when `src` ends,
    /// leave the FIN towards `dst` to the caller's close.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        ctx: RelayContext<'a>,
        fin_by_close: bool,
    ) -> Poll<Result<(), RelayError>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some((buf, written, len)) = &mut self.unsent {
                while *written < *len {
                    match self.dst.try_write(&buf[*written..*len]) {
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            ready!(self.dst.poll_write_ready(cx))?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
                if let Some(counter) = self.counter {
                    counter.inc_by(*len as u64);
                }
                self.unsent = None;
                ctx.entry.touch();
            }
            if self.filter.exhausted() {
                return self.finish(false);
            }
            ready!(self.filter.poll_admit(cx));
            ready!(self.src.poll_read_ready(cx))?;
            let mut buf = ctx.pool.take(ctx.entry);
            match self.filter.read(self.src, &mut buf)? {
                ReadOutcome::WouldBlock => {}
                ReadOutcome::Eof => {
                    self.src_ended = true;
                    return self.finish(fin_by_close);
                }
                ReadOutcome::Data(0) => ctx.entry.touch(),
                ReadOutcome::Data(n) => {
                    ctx.entry.touch();
                    self.unsent = Some((buf, 0, n));
                }
            }
        }
    }

    /// Carries a half-close: no more bytes will go to `dst`. The peer may already be gone,
    /// which is fine.
    fn finish(&mut self, fin_by_close: bool) -> Poll<Result<(), RelayError>> {
        self.done = true;
        if !fin_by_close {
            let _ = socket2::SockRef::from(self.dst).shutdown(Shutdown::Write);
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes all of `data` to a socket shared by reference.
pub async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match dst.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn idle(entry: &ConnEntry, timeout: Duration) {
    loop {
        let deadline = entry.last_active() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        sleep_until(deadline).await;
    }
}

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
