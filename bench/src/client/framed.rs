//! The frame layer of a client connection: one MTProto payload per frame of the chosen
//! transport. Client padding in padded intermediate is 0..=15 random bytes, as tdlib sends.

use mtgate_proto::mtproto::obfs2::ProtoTag;
use mtgate_proto::mtproto::transport;
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::{ClientError, Stage};
use super::wire::{WireReader, WireWriter};

/// Most padding tdlib (and this client) appends to a padded-intermediate frame.
pub const MAX_CLIENT_PADDING: usize = 15;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Appends one frame of `payload` to `out`, with random padding for padded intermediate.
pub fn encode_frame(tag: ProtoTag, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ClientError> {
    if payload.is_empty() || !payload.len().is_multiple_of(4) {
        return Err(ClientError::BadPayload(payload.len()));
    }
    let mut space = [0u8; MAX_CLIENT_PADDING];
    let padding: &[u8] = if tag == ProtoTag::Padded {
        let padding = &mut space[..rand::random_range(0..=MAX_CLIENT_PADDING)];
        rand::fill(padding);
        padding
    } else {
        &[]
    };
    transport::encode(tag, payload, false, padding, out);
    Ok(())
}

/// Sends frames.
#[derive(Debug)]
pub struct FrameWriter<W> {
    wire: WireWriter<W>,
    tag: ProtoTag,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(wire: WireWriter<W>, tag: ProtoTag) -> Self {
        Self {
            wire,
            tag,
            scratch: Vec::new(),
        }
    }

    /// Sends one payload (a non-empty multiple of 4 bytes) as one frame.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_frame(self.tag, payload, &mut self.scratch)?;
        self.wire.write(&self.scratch).await
    }

    /// The byte layer underneath, for callers that build frames themselves.
    pub fn into_wire(self) -> WireWriter<W> {
        self.wire
    }

    /// The byte layer underneath.
    pub fn wire_mut(&mut self) -> &mut WireWriter<W> {
        &mut self.wire
    }
}

/// Receives frames.
#[derive(Debug)]
pub struct FrameReader<R> {
    wire: WireReader<R>,
    tag: ProtoTag,
    max_frame: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(wire: WireReader<R>, tag: ProtoTag, max_frame: usize) -> Self {
        Self {
            wire,
            tag,
            max_frame,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Receives the next payload (without transport padding).
    pub async fn recv(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some((frame, used)) = transport::decode(self.tag, pending, self.max_frame)? {
                let payload = frame.payload.to_vec();
                self.start += used;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                    // Idle connections should not keep a read buffer.
                    self.buf = Vec::new();
                }
                return Ok(payload);
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let want = self.end + READ_CHUNK;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = self.wire.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(ClientError::Closed(Stage::Read));
            }
            self.end += n;
        }
    }

    /// The byte layer underneath and the plaintext already read from it but not yet returned.
    pub fn into_wire(self) -> (WireReader<R>, Vec<u8>) {
        let rest = self.buf[self.start..self.end].to_vec();
        (self.wire, rest)
    }
}
