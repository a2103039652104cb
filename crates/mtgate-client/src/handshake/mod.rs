//! Client sides of the proxy handshakes, driving the sans-IO codecs of `mtgate-proto` over
//! any byte stream, each step under the attempt's deadline.

mod http;
mod socks4;
mod socks5;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use crate::error::{ConnectError, Stage};

pub(crate) use http::http_connect;
pub(crate) use socks4::socks4_request;
pub(crate) use socks5::{socks5_read_reply, socks5_request};

/// Largest reply accepted from a proxy while waiting for it to complete; the HTTP parser has
/// its own smaller cap, SOCKS replies are at most a few hundred bytes.
const MAX_REPLY: usize = 64 * 1024;

/// One deadline for a whole attempt, reported with the stage it interrupted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) budget: Duration,
}

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Runs `step`, turning an expired deadline into a timeout at `stage`.
    pub(crate) async fn run<T>(
        &self,
        stage: Stage,
        step: impl Future<Output = Result<T, ConnectError>>,
    ) -> Result<T, ConnectError> {
        match timeout_at(self.at, step).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                stage,
                after: self.budget,
            }),
        }
    }
}

/// A stream being driven through a handshake, with the bytes read but not yet parsed.
pub(crate) struct HandshakeIo<'a, S> {
    io: &'a mut S,
    buf: BytesMut,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> HandshakeIo<'a, S> {
    pub(crate) fn new(io: &'a mut S, leftover: Bytes) -> Self {
        Self {
            io,
            buf: BytesMut::from(&leftover[..]),
        }
    }

    pub(crate) async fn send(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), ConnectError> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| ConnectError::io(stage, e))?;
        self.io
            .flush()
            .await
            .map_err(|e| ConnectError::io(stage, e))
    }

    /// Reads until `parse` yields a message; the bytes after it stay buffered.
    pub(crate) async fn recv<T, E: Display>(
        &mut self,
        stage: Stage,
        parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<T, ConnectError> {
        loop {
            match parse(&self.buf) {
                Ok(Some((message, used))) => {
                    self.buf.advance(used);
                    return Ok(message);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ConnectError::Protocol {
                        stage,
                        detail: e.to_string(),
                    });
                }
            }
            if self.buf.len() >= MAX_REPLY {
                return Err(ConnectError::Protocol {
                    stage,
                    detail: format!("reply longer than {MAX_REPLY} bytes"),
                });
            }
            self.buf.reserve(4096);
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ConnectError::io(stage, e))?;
            if n == 0 {
                return Err(ConnectError::Closed { stage });
            }
        }
    }

    /// The bytes read past the last message: they belong to whoever speaks next.
    pub(crate) fn into_leftover(self) -> Bytes {
        self.buf.freeze()
    }
}
