//! The "full" RPC framing of a middle-proxy connection.
//!
//! | field | size | |
//! |---|---|---|
//! | total length | u32 LE | 12 + payload |
//! | sequence number | i32 LE | −2 for the nonce, −1 for the handshake, then 0, 1, 2… per direction |
//! | payload | | a multiple of 4 bytes |
//! | checksum | u32 LE | CRC32 (or CRC32C, when negotiated) of length ‖ seq ‖ payload |
//!
//! Once encryption starts, a sender pads each write to the 16-byte AES block with 4-byte
//! filler words `04 00 00 00`, which receivers skip where a length is expected.

use super::consts::FILLER;

/// Bytes of framing around a payload.
pub const OVERHEAD: usize = 12;

/// Largest frame a reader accepts unless told otherwise.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The checksum of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// zlib CRC32 (the default).
    #[default]
    Crc32,
    /// CRC32C (Castagnoli), when both sides set the handshake flag.
    Crc32c,
}

impl Checksum {
    fn compute(self, parts: &[&[u8]]) -> u32 {
        match self {
            Self::Crc32 => {
                let mut hasher = crc32fast::Hasher::new();
                for part in parts {
                    hasher.update(part);
                }
                hasher.finalize()
            }
            Self::Crc32c => parts
                .iter()
                .fold(0, |crc, part| crc32c::crc32c_append(crc, part)),
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length below 12, not a multiple of 4, or above the cap.
    #[error("bad RPC frame length {0}")]
    BadLength(u32),
    /// A sequence number out of order.
    #[error("RPC frame sequence number {got}, expected {expected}")]
    BadSeq {
        /// What the reader expected.
        expected: i32,
        /// What arrived.
        got: i32,
    },
    /// The checksum does not match.
    #[error("RPC frame checksum mismatch")]
    BadChecksum,
}

/// Builds frames, numbering them.
#[derive(Debug, Clone)]
pub struct FrameWriter {
    seq: i32,
    checksum: Checksum,
}

impl FrameWriter {
    /// A writer whose next frame gets sequence number `seq`.
    pub fn new(seq: i32) -> Self {
        Self {
            seq,
            checksum: Checksum::Crc32,
        }
    }

    /// Changes the checksum of later frames.
    pub fn set_checksum(&mut self, checksum: Checksum) {
        self.checksum = checksum;
    }

    /// Appends one frame whose payload is the concatenation of `parts` (a multiple of 4 bytes
    /// in total). Passing the payload in parts lets a caller frame a header and a client's
    /// packet without joining them first.
    pub fn write(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(
            payload_len.is_multiple_of(4),
            "RPC payloads are 4-byte aligned"
        );
        let head_at = out.len();
        out.extend_from_slice(&((payload_len + OVERHEAD) as u32).to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        for part in parts {
            out.extend_from_slice(part);
        }
        let crc = self.checksum.compute(&[&out[head_at..]]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// Appends filler words until `out[start..]` is a whole number of 16-byte blocks.
    pub fn pad_to_block(out: &mut Vec<u8>, start: usize) {
        debug_assert!((out.len() - start).is_multiple_of(4));
        while !(out.len() - start).is_multiple_of(16) {
            out.extend_from_slice(&FILLER);
        }
    }
}

/// Reads frames, checking their order and checksum.
#[derive(Debug, Clone)]
pub struct FrameReader {
    seq: i32,
    checksum: Checksum,
    max: usize,
}

impl FrameReader {
    /// A reader expecting sequence number `seq` next and frames of at most `max` bytes.
    pub fn new(seq: i32, max: usize) -> Self {
        Self {
            seq,
            checksum: Checksum::Crc32,
            max,
        }
    }

    /// Changes the checksum expected of later frames.
    pub fn set_checksum(&mut self, checksum: Checksum) {
        self.checksum = checksum;
    }

    /// Decodes the next frame at the start of `buf`, skipping filler words before it. Returns
    /// the payload and the bytes consumed; `Ok(None)` means more bytes are needed.
    pub fn read<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, FrameError> {
        let mut at = 0;
        while buf.len() >= at + 4 && buf[at..at + 4] == FILLER {
            at += 4;
        }
        let Some(head) = buf.get(at..at + 8) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let total = len as usize;
        if total < OVERHEAD || !total.is_multiple_of(4) || total > self.max {
            return Err(FrameError::BadLength(len));
        }
        let Some(frame) = buf.get(at..at + total) else {
            return Ok(None);
        };
        let got = i32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if got != self.seq {
            return Err(FrameError::BadSeq {
                expected: self.seq,
                got,
            });
        }
        let (body, crc) = frame.split_at(total - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if self.checksum.compute(&[body]) != crc {
            return Err(FrameError::BadChecksum);
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(Some((&body[8..], at + total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nonce_frame_bytes() {
        // The shape of a nonce frame as seen on the wire: 0x2c = 44 bytes, seq −2.
        let payload = [0u8; 32];
        let mut out = Vec::new();
        FrameWriter::new(-2).write(&[&payload], &mut out);
        assert_eq!(&out[..8], &[0x2c, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        let crc = crc32fast::hash(&out[..40]);
        assert_eq!(&out[40..], &crc.to_le_bytes());
    }

    #[test]
    fn crc32_of_a_known_frame() {
        // CRC32 of "123456789" is 0xcbf43926 and CRC32C 0xe3069283 (the check values).
        assert_eq!(Checksum::Crc32.compute(&[b"1234", b"56789"]), 0xcbf4_3926);
        assert_eq!(Checksum::Crc32c.compute(&[b"12345", b"6789"]), 0xe306_9283);
    }

    #[test]
    fn fillers_are_skipped_and_sequence_checked() {
        let mut w = FrameWriter::new(0);
        let mut out = Vec::new();
        w.write(&[b"abcd", b"efgh"], &mut out);
        FrameWriter::pad_to_block(&mut out, 0);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[20..], &[4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0]);
        w.write(&[b"ijkl"], &mut out);
        let mut r = FrameReader::new(0, DEFAULT_MAX_FRAME);
        let (p, n) = r.read(&out).unwrap().unwrap();
        assert_eq!((p, n), (&b"abcdefgh"[..], 20));
        let (p, n) = r.read(&out[20..]).unwrap().unwrap();
        assert_eq!(p, b"ijkl");
        assert_eq!(n, 12 + 16);
        assert_eq!(r.read(&[4, 0, 0, 0]).unwrap(), None);
        let mut stale = FrameReader::new(5, DEFAULT_MAX_FRAME);
        assert_eq!(
            stale.read(&out),
            Err(FrameError::BadSeq {
                expected: 5,
                got: 0
            })
        );
    }

    #[test]
    fn refuses_bad_lengths_and_checksums() {
        let mut out = Vec::new();
        FrameWriter::new(0).write(&[b"abcd"], &mut out);
        let mut broken = out.clone();
        broken[9] ^= 1;
        assert_eq!(
            FrameReader::new(0, 1024).read(&broken),
            Err(FrameError::BadChecksum)
        );
        assert_eq!(
            FrameReader::new(0, 8).read(&out),
            Err(FrameError::BadLength(16))
        );
        assert_eq!(
            FrameReader::new(0, 1024).read(&[8, 0, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::BadLength(8))
        );
        let mut c = Vec::new();
        let mut w = FrameWriter::new(0);
        w.set_checksum(Checksum::Crc32c);
        w.write(&[b"abcd"], &mut c);
        let mut r = FrameReader::new(0, 1024);
        assert_eq!(r.read(&c), Err(FrameError::BadChecksum));
        r.set_checksum(Checksum::Crc32c);
        assert!(r.read(&c).unwrap().is_some());
    }

    proptest! {
        #[test]
        fn round_trip_in_any_split(payloads in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.truncate(v.len() & !3); v }), 1..8),
            split in 0usize..600) {
            let mut w = FrameWriter::new(-1);
            let mut wire = Vec::new();
            for p in &payloads {
                w.write(&[p], &mut wire);
                FrameWriter::pad_to_block(&mut wire, 0);
            }
            let split = split.min(wire.len());
            let mut r = FrameReader::new(-1, 4096);
            let mut buf = wire[..split].to_vec();
            let mut got = Vec::new();
            let mut rest = &wire[split..];
            loop {
                while let Some((p, n)) = r.read(&buf).unwrap() {
                    got.push(p.to_vec());
                    buf.drain(..n);
                }
                if rest.is_empty() { break; }
                buf.extend_from_slice(rest);
                rest = &[];
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
