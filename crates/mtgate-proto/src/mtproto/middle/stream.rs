//! One direction of a middle-proxy connection as a byte stream: [`super::frame`]s, then once the
//! nonces are exchanged, AES-256-CBC with filler words up to whole blocks.
//!
//! Both ends start in plaintext (the nonce frame, sequence number −2) and switch to
//! encryption for everything after it. A [`Sealer`] turns payloads into bytes to send; an
//! [`Opener`] is fed the bytes received and hands out payloads.

use super::crypto::{BLOCK, CbcDecryptor, CbcEncryptor};
use super::frame::{Checksum, FrameError, FrameReader, FrameWriter};

/// Builds the outgoing byte stream.
#[derive(Debug)]
pub struct Sealer {
    frames: FrameWriter,
    cipher: Option<CbcEncryptor>,
}

impl Default for Sealer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sealer {
    /// A sealer in plaintext whose first frame is the nonce (sequence number −2).
    pub fn new() -> Self {
        Self {
            frames: FrameWriter::new(super::consts::SEQ_NONCE),
            cipher: None,
        }
    }

    /// Encrypts every later frame.
    pub fn start_encryption(&mut self, cipher: CbcEncryptor) {
        self.cipher = Some(cipher);
    }

    /// Changes the checksum of later frames.
    pub fn set_checksum(&mut self, checksum: Checksum) {
        self.frames.set_checksum(checksum);
    }

    /// Appends one frame carrying the concatenation of `parts`, padded and encrypted once
    /// encryption has started.
    pub fn seal(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let start = out.len();
        self.frames.write(parts, out);
        if let Some(cipher) = &mut self.cipher {
            FrameWriter::pad_to_block(out, start);
            cipher.encrypt(&mut out[start..]);
        }
    }
}

/// Reads the incoming byte stream.
#[derive(Debug)]
pub struct Opener {
    frames: FrameReader,
    cipher: Option<CbcDecryptor>,
    /// Received bytes not yet decrypted (less than a block once encryption runs).
    raw: Vec<u8>,
    /// Decrypted bytes not yet returned as payloads.
    plain: Vec<u8>,
    start: usize,
}

impl Opener {
    /// An opener in plaintext expecting the nonce frame, with frames of at most `max_frame`
    /// bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            frames: FrameReader::new(super::consts::SEQ_NONCE, max_frame),
            cipher: None,
            raw: Vec::new(),
            plain: Vec::new(),
            start: 0,
        }
    }

    /// Decrypts everything after the frames read so far, including bytes already fed.
    pub fn start_decryption(&mut self, cipher: CbcDecryptor) {
        let mut early = self.plain.split_off(self.start);
        self.plain.clear();
        self.start = 0;
        early.append(&mut self.raw);
        self.raw = early;
        self.cipher = Some(cipher);
        self.decrypt_raw();
    }

    /// Changes the checksum expected of later frames.
    pub fn set_checksum(&mut self, checksum: Checksum) {
        self.frames.set_checksum(checksum);
    }

    /// Takes bytes received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        if self.cipher.is_some() {
            self.raw.extend_from_slice(data);
            self.decrypt_raw();
        } else {
            self.plain.extend_from_slice(data);
        }
    }

    /// Bytes held (fed but not yet returned), for callers that cap their buffers.
    pub fn buffered(&self) -> usize {
        self.raw.len() + self.plain.len() - self.start
    }

    /// The next payload, or `Ok(None)` until more bytes are fed.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some((payload, used)) = self.frames.read(&self.plain[self.start..])? else {
            self.compact();
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += used;
        Ok(Some(payload))
    }

    fn decrypt_raw(&mut self) {
        let Some(cipher) = &mut self.cipher else {
            return;
        };
        let whole = self.raw.len() - self.raw.len() % BLOCK;
        if whole == 0 {
            return;
        }
        cipher.decrypt(&mut self.raw[..whole]);
        self.plain.extend_from_slice(&self.raw[..whole]);
        self.raw.drain(..whole);
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.plain.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtproto::middle::crypto::{CbcKey, KeyMaterial, Purpose};

    fn key() -> CbcKey {
        let secret = [7u8; 64];
        let m = KeyMaterial {
            nonce_srv: [1; 16],
            nonce_clt: [2; 16],
            clt_ts: 3,
            srv: "127.0.0.1:8888".parse().unwrap(),
            clt: "127.0.0.1:4000".parse().unwrap(),
            secret: &secret,
        };
        CbcKey::derive(&m, Purpose::Client).unwrap()
    }

    #[test]
    fn plaintext_then_encrypted_fed_in_one_piece_and_byte_by_byte() {
        let key = key();
        let mut sealer = Sealer::new();
        let mut wire = Vec::new();
        sealer.seal(&[&[0xaa; 32]], &mut wire);
        sealer.start_encryption(key.encryptor());
        sealer.seal(&[&[0xbb; 32]], &mut wire);
        sealer.seal(&[b"abcd", &[0xcc; 40]], &mut wire);
        assert_eq!((wire.len() - 44) % BLOCK, 0);

        for chunk in [wire.len(), 1, 7] {
            let mut opener = Opener::new(1024);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                opener.feed(piece);
                while let Some(p) = opener.next_payload().unwrap() {
                    if got.is_empty() {
                        opener.start_decryption(key.decryptor());
                    }
                    got.push(p);
                }
            }
            assert_eq!(got.len(), 3, "chunk {chunk}");
            assert_eq!(got[0], vec![0xaa; 32]);
            assert_eq!(got[1], vec![0xbb; 32]);
            assert_eq!(&got[2][..4], b"abcd");
            // Only the filler words after the last frame are left.
            assert!(opener.buffered() < BLOCK);
        }
    }

    #[test]
    fn a_wrong_key_is_a_checksum_or_length_error() {
        let mut sealer = Sealer::new();
        sealer.start_encryption(key().encryptor());
        let mut wire = Vec::new();
        sealer.seal(&[&[1; 32]], &mut wire);
        let mut opener = Opener::new(1024);
        let other = CbcKey {
            key: [9; 32],
            iv: [9; 16],
        };
        opener.start_decryption(other.decryptor());
        opener.feed(&wire);
        assert!(opener.next_payload().is_err());
    }
}
