//! Zero-copy relaying between two plain TCP sockets with splice(2) on Linux: each direction
//! moves bytes socket → pipe → socket inside the kernel, never through user-space buffers.
//!
//! Used only where no byte needs to be seen (proxy tunnels without bandwidth shaping), and
//! only when the listener asks for it (`splice = true`): each tunnel holds two pipes (four
//! more descriptors and up to [`PIPE_SIZE`] of kernel memory per direction in flight). The
//! copying relay ([`super::relay`]) stays the default and the fallback: when a pipe cannot be
//! made, the caller relays by copying.
//!
//! Same contract as the copying relay: half-close is carried (EOF on one side shuts the
//! other's write side), the idle timeout counts from the last byte moved either way, the
//! registry's kill switch ends it, and bytes are counted per direction.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use prometheus_client::metrics::counter::Counter;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::pump::RelayEnd;
use super::registry::ConnEntry;

/// Pipe capacity asked for (the kernel may round it; the default is 64 KiB).
pub const PIPE_SIZE: usize = 256 << 10;

/// One direction's pipe.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A larger pipe moves more per call; a refusal (limits) leaves the default.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
        Ok(Self { read, write })
    }
}

/// Two pipes, made before the relay starts so a failure can fall back to copying.
pub struct Pipes([Pipe; 2]);

impl Pipes {
    /// Makes the pipes of both directions.
    pub fn new() -> io::Result<Self> {
        Ok(Self([Pipe::new()?, Pipe::new()?]))
    }
}

/// Relays between `a` and `b` until both directions finish, the connection idles for
/// `idle_timeout`, or `entry` is killed. `counters` count a→b and b→a bytes.
pub async fn splice_relay(
    a: &TcpStream,
    b: &TcpStream,
    pipes: Pipes,
    counters: (&Counter, &Counter),
    entry: &ConnEntry,
    idle_timeout: Duration,
) -> RelayEnd {
    let [forward, backward] = pipes.0;
    entry.touch();
    let both = async {
        tokio::try_join!(
            direction(a, b, &forward, counters.0, entry),
            direction(b, a, &backward, counters.1, entry)
        )
    };
    let idle = async {
        loop {
            let deadline = entry.last_active() + idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = both => match r {
            Ok(_) => RelayEnd::Finished,
            Err(e) => RelayEnd::Failed(e.into()),
        },
        () = idle => RelayEnd::Idle,
        () = entry.killed().cancelled() => RelayEnd::Killed,
    }
}

/// Moves `src` → `dst` through `pipe` until `src` ends, then shuts `dst`'s write side.
async fn direction(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    counter: &Counter,
    entry: &ConnEntry,
) -> io::Result<()> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    loop {
        // The pipe is empty here, so "would block" can only mean the socket has nothing.
        src.readable().await?;
        let filled = match src.try_io(Interest::READABLE, || {
            splice(src.as_fd(), None, &pipe.write, None, PIPE_SIZE, flags).map_err(io::Error::from)
        }) {
            Ok(0) => {
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut left = filled;
        // Bounded: every pass either moves bytes or waits for the socket to drain.
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, dst.as_fd(), None, left, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    counter.inc_by(n as u64);
                    entry.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}
