//! Obfuscated2: the 64-byte init header and the AES-256-CTR streams it keys.
//!
//! Header layout (plaintext view): noise `0..8`, key seed `8..40`, IV `40..56`, transport tag
//! `56..60`, DC index `60..62` (i16 LE), noise `62..64`. The sender transmits bytes `0..56` in
//! the clear and bytes `56..64` encrypted with its own outgoing stream, whose keystream then
//! continues with the data.
//!
//! Keys, for a header `H` and an optional proxy key `S` (without a key the seeds are used raw):
//!
//! | stream | key | IV |
//! |---|---|---|
//! | header sender → receiver | SHA256(H[8..40] ‖ S) | H[40..56] |
//! | receiver → header sender | SHA256(R[0..32] ‖ S) | R[32..48], R = reverse(H[8..56]) |
//!
//! The counter is a 128-bit big-endian integer starting at the IV.

// Encryption-only key schedule: CTR never decrypts blocks, and it halves the state.
use aes::Aes256Enc;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::dc::DcId;
use super::secret::Secret;

/// Length of the init header.
pub const HEADER_LEN: usize = 64;

/// Offset of the transport tag in the header.
pub const TAG_OFFSET: usize = 56;

/// Offset of the DC index in the header.
pub const DC_OFFSET: usize = 60;

/// The span of the header that carries key material (seed and IV).
pub const KEY_MATERIAL: std::ops::Range<usize> = 8..56;

type Aes256Ctr = ctr::Ctr128BE<Aes256Enc>;

/// The transport the client speaks inside the obfuscated stream, from header bytes 56..60.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtoTag {
    /// `ef ef ef ef`: abridged.
    Abridged,
    /// `ee ee ee ee`: intermediate.
    Intermediate,
    /// `dd dd dd dd`: padded intermediate (dd and ee secrets).
    Padded,
}

impl ProtoTag {
    /// All tags, in wire order of their bytes.
    pub const ALL: [Self; 3] = [Self::Abridged, Self::Intermediate, Self::Padded];

    /// The four tag bytes.
    pub const fn to_bytes(self) -> [u8; 4] {
        match self {
            Self::Abridged => [0xef; 4],
            Self::Intermediate => [0xee; 4],
            Self::Padded => [0xdd; 4],
        }
    }

    /// Recognises a tag.
    pub fn from_bytes(bytes: [u8; 4]) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.to_bytes() == bytes)
    }

    /// A short lowercase name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Abridged => "abridged",
            Self::Intermediate => "intermediate",
            Self::Padded => "padded",
        }
    }
}

/// Key and IV of one AES-256-CTR direction. Wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StreamKey {
    /// AES-256 key.
    pub key: [u8; 32],
    /// Initial counter block.
    pub iv: [u8; 16],
}

impl StreamKey {
    /// Starts a keystream at offset 0.
    pub fn cipher(&self) -> CtrStream {
        CtrStream(Aes256Ctr::new(&self.key.into(), &self.iv.into()))
    }

    /// `reverse(key ‖ iv)`: placed at header bytes 8..56 of a keyless header, it makes the
    /// receiver of that header encrypt its replies with exactly this key (the proxy's "fast
    /// mode", where DC→client bytes then need no re-encryption).
    pub fn mirrored(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..32].copy_from_slice(&self.key);
        out[32..].copy_from_slice(&self.iv);
        out.reverse();
        out
    }
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

/// Both directions keyed by one header.
#[derive(Clone, Debug)]
pub struct HeaderKeys {
    /// The stream from the header's sender to its receiver.
    pub sender_to_receiver: StreamKey,
    /// The stream from the header's receiver back to its sender.
    pub receiver_to_sender: StreamKey,
}

/// Derives both stream keys from a header (and the proxy key, when there is one).
pub fn derive_keys(header: &[u8; HEADER_LEN], secret: Option<&Secret>) -> HeaderKeys {
    let mut reversed = [0u8; 48];
    reversed.copy_from_slice(&header[KEY_MATERIAL]);
    reversed.reverse();
    let forward = stream_key(&header[8..40], &header[40..56], secret);
    let backward = stream_key(&reversed[..32], &reversed[32..], secret);
    reversed.zeroize();
    HeaderKeys {
        sender_to_receiver: forward,
        receiver_to_sender: backward,
    }
}

fn stream_key(seed: &[u8], iv: &[u8], secret: Option<&Secret>) -> StreamKey {
    let mut key = [0u8; 32];
    match secret {
        Some(secret) => {
            key = Sha256::new()
                .chain_update(seed)
                .chain_update(secret.as_bytes())
                .finalize()
                .into()
        }
        None => key.copy_from_slice(seed),
    }
    let mut iv_block = [0u8; 16];
    iv_block.copy_from_slice(iv);
    StreamKey { key, iv: iv_block }
}

/// One direction of an obfuscated2 stream: AES-256-CTR with a 128-bit big-endian counter.
pub struct CtrStream(Aes256Ctr);

impl CtrStream {
    /// Encrypts or decrypts in place, advancing the keystream.
    #[inline]
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }

    /// Moves the keystream to an absolute byte offset.
    pub fn seek(&mut self, offset: u64) {
        self.0.seek(offset);
    }
}

impl std::fmt::Debug for CtrStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtrStream")
    }
}

/// A header a server accepted.
#[derive(Debug)]
pub struct Accepted {
    /// Index of the key that opened the header, in the order the keys were given.
    pub user: usize,
    /// The client's transport.
    pub tag: ProtoTag,
    /// The DC the client asked for.
    pub dc: DcId,
    /// Decrypts what the client sends next (positioned after the header).
    pub decrypt: CtrStream,
    /// Encrypts what the server sends to the client (starts at offset 0).
    pub encrypt: CtrStream,
    /// The key of [`Accepted::encrypt`], kept for fast mode.
    pub encrypt_key: StreamKey,
    /// Header bytes 8..56: what an anti-replay cache should remember.
    pub replay_key: [u8; 48],
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No configured key decrypts the header to a known transport tag.
    #[error("no secret matches the obfuscated2 header")]
    NoMatchingSecret,
}

/// Server side: tries every key on a received header, in time that does not depend on which
/// key (if any) matches, and returns the streams keyed by the winner. The decrypting stream is
/// positioned after the header, where the client's data continues.
pub fn accept(header: &[u8; HEADER_LEN], secrets: &[Secret]) -> Result<Accepted, HeaderError> {
    let mut found = Choice::from(0);
    let mut index = 0u32;
    for (i, secret) in secrets.iter().enumerate() {
        let keys = derive_keys(header, Some(secret));
        let tail = decrypt_tail(header, &keys.sender_to_receiver);
        let tag = [tail[0], tail[1], tail[2], tail[3]];
        let valid = ProtoTag::ALL
            .iter()
            .fold(Choice::from(0), |acc, t| acc | t.to_bytes().ct_eq(&tag));
        index.conditional_assign(&(i as u32), valid & !found);
        found |= valid;
    }
    if !bool::from(found) {
        return Err(HeaderError::NoMatchingSecret);
    }
    let user = index as usize;
    let keys = derive_keys(header, Some(&secrets[user]));
    let tail = decrypt_tail(header, &keys.sender_to_receiver);
    let tag = ProtoTag::from_bytes([tail[0], tail[1], tail[2], tail[3]])
        .ok_or(HeaderError::NoMatchingSecret)?;
    let mut decrypt = keys.sender_to_receiver.cipher();
    decrypt.seek(HEADER_LEN as u64);
    let mut replay_key = [0u8; 48];
    replay_key.copy_from_slice(&header[KEY_MATERIAL]);
    Ok(Accepted {
        user,
        tag,
        dc: DcId::from_le_bytes([tail[4], tail[5]]),
        decrypt,
        encrypt: keys.receiver_to_sender.cipher(),
        encrypt_key: keys.receiver_to_sender.clone(),
        replay_key,
    })
}

fn decrypt_tail(header: &[u8; HEADER_LEN], key: &StreamKey) -> [u8; 8] {
    let mut cipher = key.cipher();
    cipher.seek(TAG_OFFSET as u64);
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&header[TAG_OFFSET..]);
    cipher.apply(&mut tail);
    tail
}

/// Whether the first eight bytes of a header would make it look like another protocol (or like
/// an abridged/intermediate stream): clients and the proxy regenerate such headers.
pub fn is_forbidden_start(first8: &[u8]) -> bool {
    const FORBIDDEN_FIRST_WORDS: [u32; 7] = [
        0x4441_4548, // "HEAD"
        0x5453_4f50, // "POST"
        0x2054_4547, // "GET "
        0x4954_504f, // "OPTI"
        0xdddd_dddd, // padded intermediate tag
        0xeeee_eeee, // intermediate tag
        0x0201_0316, // TLS record "16 03 01 02"
    ];
    let first = u32::from_le_bytes([first8[0], first8[1], first8[2], first8[3]]);
    let second = u32::from_le_bytes([first8[4], first8[5], first8[6], first8[7]]);
    first8[0] == 0xef || FORBIDDEN_FIRST_WORDS.contains(&first) || second == 0
}

/// A header built by the side that opens an obfuscated2 stream.
#[derive(Debug)]
pub struct Opened {
    /// The 64 bytes to send: plaintext `0..56`, encrypted `56..64`.
    pub header: [u8; HEADER_LEN],
    /// Encrypts what the opener sends next (positioned after the header).
    pub encrypt: CtrStream,
    /// Decrypts what the opener receives.
    pub decrypt: CtrStream,
}

/// What the opener of a stream puts into its header.
#[derive(Debug, Clone)]
pub struct OpenSpec<'a> {
    /// Transport spoken inside the stream.
    pub tag: ProtoTag,
    /// DC index to announce.
    pub dc: DcId,
    /// The proxy key (a client talking to a proxy), or `None` (a proxy talking to a DC).
    pub secret: Option<&'a Secret>,
    /// Fixed key material for bytes 8..56 (fast mode, see [`StreamKey::mirrored`]); random
    /// when `None`.
    pub key_material: Option<[u8; 48]>,
}

/// Builds a header with `fill_random` as the source of randomness, regenerating it until the
/// bytes actually sent do not start like another protocol.
pub fn open(spec: &OpenSpec<'_>, mut fill_random: impl FnMut(&mut [u8])) -> Opened {
    let mut header = [0u8; HEADER_LEN];
    loop {
        fill_random(&mut header);
        if let Some(material) = &spec.key_material {
            header[KEY_MATERIAL].copy_from_slice(material);
        }
        // Bytes 0..8 travel in plaintext: check exactly what the peer will see.
        if !is_forbidden_start(&header[..8]) {
            break;
        }
    }
    header[TAG_OFFSET..DC_OFFSET].copy_from_slice(&spec.tag.to_bytes());
    header[DC_OFFSET..DC_OFFSET + 2].copy_from_slice(&spec.dc.to_le_bytes());
    let keys = derive_keys(&header, spec.secret);
    let mut encrypt = keys.sender_to_receiver.cipher();
    let mut encrypted = header;
    encrypt.apply(&mut encrypted);
    header[TAG_OFFSET..].copy_from_slice(&encrypted[TAG_OFFSET..]);
    Opened {
        header,
        encrypt,
        decrypt: keys.receiver_to_sender.cipher(),
    }
}

/// Receiver side without a key (a DC, or a test double of one): opens a header sent by a proxy.
/// Returns `None` when the tag is not a known transport.
pub fn accept_keyless(header: &[u8; HEADER_LEN]) -> Option<(ProtoTag, DcId, CtrStream, CtrStream)> {
    let keys = derive_keys(header, None);
    let tail = decrypt_tail(header, &keys.sender_to_receiver);
    let tag = ProtoTag::from_bytes([tail[0], tail[1], tail[2], tail[3]])?;
    let mut decrypt = keys.sender_to_receiver.cipher();
    decrypt.seek(HEADER_LEN as u64);
    Some((
        tag,
        DcId::from_le_bytes([tail[4], tail[5]]),
        decrypt,
        keys.receiver_to_sender.cipher(),
    ))
}

#[cfg(test)]
#[path = "obfs2_tests.rs"]
mod tests;
