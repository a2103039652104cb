//! The transports inside an obfuscated2 stream: abridged, intermediate and padded
//! intermediate. All lengths are little-endian.
//!
//! | transport | frame | client asks for a quick ack | server's quick ack |
//! |---|---|---|---|
//! | abridged | 1 byte `len/4` (< 0x7f), or `7f` + 3 bytes `len/4`; payload | bit 0x80 of the first byte | the token byte-swapped, no length |
//! | intermediate | u32 `len`; payload (multiple of 4) | bit 31 of the length | the token with bit 31 set, no payload |
//! | padded | u32 `len`; payload; 0..15 random bytes (counted in `len`) | bit 31 of the length | as intermediate |
//!
//! A padded receiver keeps `len & !3` bytes of payload. A server pads with at most 3 bytes,
//! because some clients strip padding as `len % 4`.

use super::obfs2::ProtoTag;

/// Largest frame the official proxy accepts from a client (`MAX_POST_SIZE`).
pub const DEFAULT_MAX_FRAME: usize = 1_044_480;

/// Most padding a server may add to a padded-intermediate frame.
pub const MAX_SERVER_PADDING: usize = 3;

const QUICK_ACK_BIT: u32 = 0x8000_0000;
const ABRIDGED_LONG: u8 = 0x7f;
const ABRIDGED_QUICK_ACK: u8 = 0x80;

/// The length prefix of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Bytes taken by the length prefix.
    pub header_len: usize,
    /// Bytes that follow the prefix (payload, plus padding in padded intermediate).
    pub body_len: usize,
    /// The sender asks for a quick acknowledgement.
    pub quick_ack: bool,
}

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The MTProto message, without transport padding.
    pub payload: &'a [u8],
    /// The sender asks for a quick acknowledgement.
    pub quick_ack: bool,
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than the configured cap.
    #[error("frame of {len} bytes exceeds the cap of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured cap.
        max: usize,
    },
    /// A zero-length frame.
    #[error("empty frame")]
    Empty,
    /// An intermediate frame whose length is not a multiple of 4.
    #[error("intermediate frame length {0} is not a multiple of 4")]
    Unaligned(usize),
    /// The abridged long form used for a length the short form can hold.
    #[error("overlong abridged length encoding")]
    Overlong,
}

/// Reads a frame's length prefix. `Ok(None)` means more bytes are needed.
pub fn parse_head(tag: ProtoTag, buf: &[u8], max: usize) -> Result<Option<FrameHead>, FrameError> {
    let head = match tag {
        ProtoTag::Abridged => {
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            let quick_ack = first & ABRIDGED_QUICK_ACK != 0;
            let short = first & !ABRIDGED_QUICK_ACK;
            if short < ABRIDGED_LONG {
                FrameHead {
                    header_len: 1,
                    body_len: usize::from(short) * 4,
                    quick_ack,
                }
            } else {
                let Some(b) = buf.get(1..4) else {
                    return Ok(None);
                };
                let words = u32::from_le_bytes([b[0], b[1], b[2], 0]) as usize;
                if words < usize::from(ABRIDGED_LONG) {
                    return Err(FrameError::Overlong);
                }
                FrameHead {
                    header_len: 4,
                    body_len: words * 4,
                    quick_ack,
                }
            }
        }
        ProtoTag::Intermediate | ProtoTag::Padded => {
            let Some(b) = buf.get(..4) else {
                return Ok(None);
            };
            let word = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let body_len = (word & !QUICK_ACK_BIT) as usize;
            if tag == ProtoTag::Intermediate && !body_len.is_multiple_of(4) {
                return Err(FrameError::Unaligned(body_len));
            }
            FrameHead {
                header_len: 4,
                body_len,
                quick_ack: word & QUICK_ACK_BIT != 0,
            }
        }
    };
    if head.body_len == 0 {
        return Err(FrameError::Empty);
    }
    if head.body_len > max {
        return Err(FrameError::TooLarge {
            len: head.body_len,
            max,
        });
    }
    Ok(Some(head))
}

/// Decodes the next whole frame from `buf`, returning it and the bytes it took.
/// `Ok(None)` means more bytes are needed.
pub fn decode(
    tag: ProtoTag,
    buf: &[u8],
    max: usize,
) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(head) = parse_head(tag, buf, max)? else {
        return Ok(None);
    };
    let end = head.header_len + head.body_len;
    let Some(body) = buf.get(head.header_len..end) else {
        return Ok(None);
    };
    let payload = match tag {
        ProtoTag::Padded => &body[..body.len() & !3],
        _ => body,
    };
    Ok(Some((
        Frame {
            payload,
            quick_ack: head.quick_ack,
        },
        end,
    )))
}

/// Appends one frame to `out`. `padding` is appended after the payload in padded intermediate
/// (and must be empty otherwise); the payload length must be a multiple of 4.
pub fn encode(tag: ProtoTag, payload: &[u8], quick_ack: bool, padding: &[u8], out: &mut Vec<u8>) {
    debug_assert!(
        payload.len().is_multiple_of(4),
        "MTProto payloads are 4-byte aligned"
    );
    debug_assert!(tag == ProtoTag::Padded || padding.is_empty());
    match tag {
        ProtoTag::Abridged => {
            let words = payload.len() / 4;
            let ack = if quick_ack { ABRIDGED_QUICK_ACK } else { 0 };
            if words < usize::from(ABRIDGED_LONG) {
                out.push(words as u8 | ack);
            } else {
                let w = (words as u32).to_le_bytes();
                out.extend_from_slice(&[ABRIDGED_LONG | ack, w[0], w[1], w[2]]);
            }
            out.extend_from_slice(payload);
        }
        ProtoTag::Intermediate | ProtoTag::Padded => {
            let mut word = (payload.len() + padding.len()) as u32;
            if quick_ack {
                word |= QUICK_ACK_BIT;
            }
            out.extend_from_slice(&word.to_le_bytes());
            out.extend_from_slice(payload);
            out.extend_from_slice(padding);
        }
    }
}

/// The four bytes a server sends to acknowledge a packet quickly, given the client's token.
pub fn quick_ack_reply(tag: ProtoTag, token: u32) -> [u8; 4] {
    let token = token | QUICK_ACK_BIT;
    match tag {
        ProtoTag::Abridged => token.to_be_bytes(),
        ProtoTag::Intermediate | ProtoTag::Padded => token.to_le_bytes(),
    }
}

/// Follows frame boundaries in a stream that is passed through without being re-framed, so
/// that malformed or oversized frames are noticed without buffering whole frames.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    tag: ProtoTag,
    max: usize,
    head: [u8; 4],
    head_len: usize,
    body_left: usize,
}

impl FrameScanner {
    /// A scanner at the start of a frame.
    pub fn new(tag: ProtoTag, max: usize) -> Self {
        Self {
            tag,
            max,
            head: [0; 4],
            head_len: 0,
            body_left: 0,
        }
    }

    /// Consumes the next bytes of the stream.
    pub fn scan(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            // Fast path: a whole prefix inside `data` needs no copy.
            if self.head_len == 0
                && let Some(head) = parse_head(self.tag, data, self.max)?
            {
                data = &data[head.header_len..];
                self.body_left = head.body_len;
                continue;
            }
            let take = (4 - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
            match parse_head(self.tag, &self.head[..self.head_len + take], self.max)? {
                Some(head) => {
                    let used = head.header_len - self.head_len;
                    data = &data[used..];
                    self.head_len = 0;
                    self.body_left = head.body_len;
                }
                None => {
                    self.head_len += take;
                    data = &data[take..];
                }
            }
        }
        Ok(())
    }

    /// Whether the stream is between frames.
    pub fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.body_left == 0
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
