//! One connection to the fake DC: the keyless header, then echo until the peer stops.

use std::net::SocketAddr;

use mtgate_proto::mtproto::obfs2::{self, CtrStream, HEADER_LEN, ProtoTag};
use mtgate_proto::mtproto::transport::{self, FrameError, MAX_SERVER_PADDING};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{EchoMode, FakeDcConfig, FakeDcStats};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// A read shorter than this means the peer is not streaming.
const QUIET_READ: usize = 4 * 1024;

/// Why a session ended early.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("the header carries no known transport tag")]
    UnknownTag,
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &FakeDcConfig,
    stats: &FakeDcStats,
    cancel: &CancellationToken,
) {
    let _open = stats.accepted();
    let _ = stream.set_nodelay(true);
    let result = tokio::select! {
        result = run(&mut stream, config, stats) => result,
        () = cancel.cancelled() => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(SessionError::UnknownTag) => {
            stats.header_rejected();
            tracing::debug!(%peer, "fake DC: header with an unknown transport tag");
        }
        Err(error) => {
            stats.session_failed();
            tracing::debug!(%peer, %error, "fake DC session failed");
        }
    }
}

async fn run(
    stream: &mut TcpStream,
    config: &FakeDcConfig,
    stats: &FakeDcStats,
) -> Result<(), SessionError> {
    let mut header = [0u8; HEADER_LEN];
    timeout(config.header_timeout, stream.read_exact(&mut header))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (tag, dc, decrypt, encrypt) =
        obfs2::accept_keyless(&header).ok_or(SessionError::UnknownTag)?;
    stats.header_accepted(dc, tag);
    let mut echo = Echo {
        stream,
        config,
        stats,
        decrypt,
        encrypt,
    };
    match config.mode {
        EchoMode::Frames => echo.frames(tag).await,
        EchoMode::Raw => echo.raw().await,
    }
}

struct Echo<'a> {
    stream: &'a mut TcpStream,
    config: &'a FakeDcConfig,
    stats: &'a FakeDcStats,
    decrypt: CtrStream,
    encrypt: CtrStream,
}

impl Echo<'_> {
    /// Decrypts, then encrypts the same bytes back.
    async fn raw(&mut self) -> Result<(), SessionError> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = self.read_into(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            self.decrypt.apply(&mut buf);
            self.encrypt.apply(&mut buf);
            self.write(&buf).await?;
            self.stats.echoed(0, n as u64);
            release_if_quiet(&mut buf, n);
        }
    }

    /// Decodes whole frames and echoes each payload in a frame of the same transport.
    async fn frames(&mut self, tag: ProtoTag) -> Result<(), SessionError> {
        let mut inbound = Vec::new();
        let mut outbound = Vec::new();
        loop {
            let filled = inbound.len();
            let n = self.read_into(&mut inbound).await?;
            if n == 0 {
                return Ok(());
            }
            self.decrypt.apply(&mut inbound[filled..]);
            let filled = inbound.len();

            let mut used = 0;
            let (mut frames, mut bytes) = (0u64, 0u64);
            outbound.clear();
            while let Some((frame, len)) =
                transport::decode(tag, &inbound[used..filled], self.config.max_frame)?
            {
                used += len;
                // A padded frame of 1..=3 bytes carries padding only: nothing to echo.
                if frame.payload.is_empty() {
                    continue;
                }
                let mut pad = [0u8; MAX_SERVER_PADDING];
                let pad = padding(tag, &mut pad);
                transport::encode(tag, frame.payload, false, pad, &mut outbound);
                frames += 1;
                bytes += frame.payload.len() as u64;
            }
            inbound.drain(..used);
            if !outbound.is_empty() {
                self.encrypt.apply(&mut outbound);
                self.write(&outbound).await?;
                self.stats.echoed(frames, bytes);
            }
            if inbound.is_empty() {
                release_if_quiet(&mut inbound, n);
                release_if_quiet(&mut outbound, n);
            }
        }
    }

    /// Waits (under the idle timeout) until the socket is readable, then appends what it has
    /// to `buf`. The buffer grows only now and is never zero-filled, so silent connections
    /// hold no buffer and a short read touches only the pages it fills.
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, SessionError> {
        loop {
            timeout(self.config.idle_timeout, self.stream.readable())
                .await
                .map_err(|_| SessionError::Timeout)??;
            // Bounded: frame mode never keeps more than one partial frame (`max_frame`).
            buf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        timeout(self.config.write_timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| SessionError::Timeout)??;
        Ok(())
    }
}

/// Frees a buffer after a short read: the peer is not streaming, so it may now sit idle for
/// long, and ten thousand idle connections should not hold ten thousand buffers.
fn release_if_quiet(buf: &mut Vec<u8>, last_read: usize) {
    if last_read < QUIET_READ {
        *buf = Vec::new();
    }
}

/// Server padding for padded intermediate: 0..=3 random bytes (clients strip `len % 4`).
fn padding(tag: ProtoTag, space: &mut [u8; MAX_SERVER_PADDING]) -> &[u8] {
    if tag != ProtoTag::Padded {
        return &[];
    }
    let pad = &mut space[..rand::random_range(0..=MAX_SERVER_PADDING)];
    rand::fill(pad);
    pad
}
