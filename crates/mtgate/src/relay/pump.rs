//! The relay loop: two pumps, an idle watchdog and a kill switch.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::buffers::BufferPool;
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
}

/// Relays between `a` and `b` until both directions end, the connection idles out, it is
/// killed, or an error occurs. Half-close is carried: when one side stops sending, the other
/// side's write half is shut down and the opposite direction goes on.
pub async fn relay<AB: Filter, BA: Filter>(
    a: &TcpStream,
    b: &TcpStream,
    a_to_b: (AB, Option<&Counter>),
    b_to_a: (BA, Option<&Counter>),
    ctx: RelayContext<'_>,
) -> RelayEnd {
    let forward = pump(a, b, a_to_b.0, a_to_b.1, ctx);
    let backward = pump(b, a, b_to_a.0, b_to_a.1, ctx);
    tokio::select! {
        result = async { tokio::try_join!(forward, backward) } => match result {
            Ok(_) => RelayEnd::Finished,
            Err(e) => RelayEnd::Failed(e),
        },
        () = idle(ctx.entry, ctx.idle_timeout) => RelayEnd::Idle,
        () = ctx.entry.killed().cancelled() => RelayEnd::Killed,
    }
}

async fn pump<F: Filter>(
    src: &TcpStream,
    dst: &TcpStream,
    mut filter: F,
    counter: Option<&Counter>,
    ctx: RelayContext<'_>,
) -> Result<(), RelayError> {
    loop {
        if filter.exhausted() {
            end_direction(dst);
            return Ok(());
        }
        src.readable().await?;
        let mut buf = ctx.pool.take(ctx.entry);
        let n = match filter.read(src, &mut buf)? {
            ReadOutcome::WouldBlock => continue,
            ReadOutcome::Eof => {
                end_direction(dst);
                return Ok(());
            }
            ReadOutcome::Data(n) => n,
        };
        ctx.entry.touch();
        if n > 0 {
            write_all(dst, &buf[..n]).await?;
            ctx.entry.touch();
            if let Some(counter) = counter {
                counter.inc_by(n as u64);
            }
        }
    }
}

/// Carries a half-close: no more bytes will go to `dst`. The peer may already be gone, which
/// is fine.
fn end_direction(dst: &TcpStream) {
    let _ = socket2::SockRef::from(dst).shutdown(Shutdown::Write);
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
