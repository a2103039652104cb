//! What a pump does to the bytes it moves.

use std::io;

use tokio::net::TcpStream;

/// Result of one non-blocking read through a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `buf[..n]` holds bytes to forward (possibly zero, e.g. a skipped TLS record).
    Data(usize),
    /// The source finished sending.
    Eof,
    /// Nothing to read after all (spurious readiness).
    WouldBlock,
}

/// Why a relay stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The bytes broke a protocol rule (machine-readable reason).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

impl RelayError {
    /// A short reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(e) if e.kind() == io::ErrorKind::ConnectionReset => "reset",
            Self::Io(_) => "io",
            Self::Protocol(reason) => reason,
        }
    }
}

/// Reads from a socket without blocking and transforms the bytes in place.
pub trait Filter: Send {
    /// Reads what `src` has into `buf` and transforms it; the output is `buf[..n]`.
    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError>;

    /// Whether the filter will forward nothing more (a spent byte budget): the pump then ends
    /// the direction without waiting for the source.
    fn exhausted(&self) -> bool {
        false
    }

    /// Whether the pump may read now; a filter that shapes bandwidth returns `Pending` (and
    /// arranges a wake-up) until it may. Checked before each read.
    fn poll_admit(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

/// Reads raw bytes into a buffer, mapping the three outcomes of a non-blocking read.
///
/// A read that returns less than `buf` holds has emptied the socket's receive queue, so the
/// socket's read readiness is cleared then and there: the next read waits for the next
/// readiness event instead of asking the kernel and getting `EAGAIN`. This saves one system
/// call per read burst (two per short connection). Tokio clears readiness only if no event
/// arrived since it was observed, so bytes that land meanwhile are not missed.
pub fn try_read(src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
    use std::io::Read;

    let capacity = buf.len();
    let mut got = None;
    let result = src.try_io(tokio::io::Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(src)).read(buf)?;
        got = Some(n);
        if n > 0 && n < capacity {
            // Drained: report "would block" so Tokio clears the readiness; `got` has the bytes.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let n = match (result, got) {
        (Ok(n), _) | (Err(_), Some(n)) => n,
        (Err(e), None)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return Ok(ReadOutcome::WouldBlock);
        }
        (Err(e), None) => return Err(e.into()),
    };
    Ok(match n {
        0 => ReadOutcome::Eof,
        n => ReadOutcome::Data(n),
    })
}

/// Forwards bytes unchanged, up to an optional byte budget (then behaves as end of stream).
#[derive(Debug, Clone, Default)]
pub struct Passthrough {
    budget: Option<u64>,
}

impl Passthrough {
    /// Forwards everything.
    pub fn unlimited() -> Self {
        Self { budget: None }
    }

    /// Forwards at most `bytes` bytes.
    pub fn limited(bytes: u64) -> Self {
        Self {
            budget: Some(bytes),
        }
    }
}

impl Filter for Passthrough {
    fn exhausted(&self) -> bool {
        self.budget == Some(0)
    }

    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
        let limit = match self.budget {
            Some(0) => return Ok(ReadOutcome::Eof),
            Some(left) => buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let outcome = try_read(src, &mut buf[..limit])?;
        if let (ReadOutcome::Data(n), Some(left)) = (outcome, self.budget.as_mut()) {
            *left -= n as u64;
        }
        Ok(outcome)
    }
}
