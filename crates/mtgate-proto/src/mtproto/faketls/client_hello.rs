//! The ClientHello: reassembly, parsing, digest and timestamp checks, and (for clients and
//! tests) construction.

use std::borrow::Cow;

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::record::content_type;
use super::{RANDOM_LEN, RANDOM_OFFSET};
use crate::mtproto::secret::Secret;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Largest ClientHello handshake message accepted (modern hellos are about 1.5–1.7 KB;
/// old clients send 517 bytes).
pub const MAX_HELLO_LEN: usize = 16_384;

/// Most records a ClientHello may be split over.
pub const MAX_HELLO_RECORDS: usize = 16;

const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0x0000;
const TLS13_SUITES: std::ops::RangeInclusive<u16> = 0x1301..=0x1303;

/// Why a ClientHello was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first byte is not a TLS handshake record.
    #[error("not a TLS handshake record")]
    NotHandshake,
    /// A handshake message other than ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// The hello is larger than [`MAX_HELLO_LEN`] or spread over too many records.
    #[error("ClientHello too large or too fragmented")]
    TooLarge,
    /// The hello's structure is broken.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// No configured key produces the client's random.
    #[error("ClientHello digest matches no secret")]
    BadDigest,
    /// The client's clock is outside the accepted window.
    #[error("ClientHello timestamp is {0} s away from the server clock")]
    ClockSkew(i64),
}

/// A ClientHello reassembled into one record, as the client computed its digest over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled<'a> {
    /// The record: header, then the whole handshake message.
    pub record: Cow<'a, [u8]>,
    /// How many received bytes the hello took (possibly several records).
    pub consumed: usize,
}

/// Collects a ClientHello from the start of `buf`, joining a hello split over several
/// handshake records. `Ok(None)` means more bytes are needed.
pub fn assemble(buf: &[u8]) -> Result<Option<Assembled<'_>>, HelloError> {
    let mut pos = 0;
    let mut records = 0;
    // Only filled when the hello spans more than one record.
    let mut joined: Vec<u8> = Vec::new();
    loop {
        let Some(header) = buf.get(pos..pos + 5) else {
            return Ok(None);
        };
        if header[0] != content_type::HANDSHAKE {
            return Err(HelloError::NotHandshake);
        }
        if header[1] != 0x03 {
            return Err(HelloError::Malformed("record version"));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(HelloError::Malformed("empty record"));
        }
        records += 1;
        if records > MAX_HELLO_RECORDS || joined.len() + len > MAX_HELLO_LEN + 4 {
            return Err(HelloError::TooLarge);
        }
        let Some(payload) = buf.get(pos + 5..pos + 5 + len) else {
            return Ok(None);
        };
        pos += 5 + len;
        let message: &[u8] = if records == 1 {
            payload
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(
                    &buf[5..5 + usize::from(u16::from_be_bytes([buf[3], buf[4]]))],
                );
            }
            joined.extend_from_slice(payload);
            &joined
        };
        if message[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::NotClientHello);
        }
        let Some(len_bytes) = message.get(1..4) else {
            continue;
        };
        let msg_len = u32::from_be_bytes([0, len_bytes[0], len_bytes[1], len_bytes[2]]) as usize;
        if msg_len > MAX_HELLO_LEN {
            return Err(HelloError::TooLarge);
        }
        match message.len().cmp(&(msg_len + 4)) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Greater => return Err(HelloError::Malformed("trailing bytes")),
            std::cmp::Ordering::Equal => {}
        }
        let record = if records == 1 {
            Cow::Borrowed(&buf[..pos])
        } else {
            // One record header over the joined message, as the client hashed it.
            let mut rec = Vec::with_capacity(5 + joined.len());
            rec.extend_from_slice(&buf[..3]);
            rec.extend_from_slice(&(joined.len() as u16).to_be_bytes());
            rec.extend_from_slice(&joined);
            Cow::Owned(rec)
        };
        return Ok(Some(Assembled {
            record,
            consumed: pos,
        }));
    }
}

/// The fields of a ClientHello the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The 32-byte client random (digest ⊕ timestamp).
    pub random: [u8; RANDOM_LEN],
    /// The legacy session id, echoed in the ServerHello.
    pub session_id: &'a [u8],
    /// The first TLS 1.3 suite the client offers (GREASE skipped); `0x1301` if none.
    pub cipher_suite: u16,
    /// The host name from the server_name extension.
    pub sni: Option<&'a str>,
}

/// Parses a reassembled ClientHello record.
pub fn parse(record: &[u8]) -> Result<ClientHello<'_>, HelloError> {
    let mut r = Reader {
        buf: record,
        pos: 5,
    };
    if r.u8()? != HANDSHAKE_CLIENT_HELLO {
        return Err(HelloError::NotClientHello);
    }
    let _len = r.take(3)?;
    let _version = r.take(2)?;
    let mut random = [0u8; RANDOM_LEN];
    random.copy_from_slice(r.take(RANDOM_LEN)?);
    let sid_len = usize::from(r.u8()?);
    if sid_len > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let session_id = r.take(sid_len)?;
    let suites_len = usize::from(r.u16()?);
    if suites_len % 2 != 0 || suites_len == 0 {
        return Err(HelloError::Malformed("cipher suites"));
    }
    let suites = r.take(suites_len)?;
    let cipher_suite = suites
        .chunks_exact(2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .find(|s| !is_grease(*s) && TLS13_SUITES.contains(s))
        .unwrap_or(0x1301);
    let compression_len = usize::from(r.u8()?);
    r.take(compression_len)?;
    let mut sni = None;
    if r.pos < record.len() {
        let ext_len = usize::from(r.u16()?);
        let mut ext = Reader {
            buf: r.take(ext_len)?,
            pos: 0,
        };
        while ext.pos < ext.buf.len() {
            let kind = ext.u16()?;
            let len = usize::from(ext.u16()?);
            let data = ext.take(len)?;
            if kind == EXT_SERVER_NAME {
                sni = parse_server_name(data)?;
            }
        }
    }
    if r.pos != record.len() {
        return Err(HelloError::Malformed("trailing bytes"));
    }
    Ok(ClientHello {
        random,
        session_id,
        cipher_suite,
        sni,
    })
}

fn parse_server_name(data: &[u8]) -> Result<Option<&str>, HelloError> {
    let mut r = Reader { buf: data, pos: 0 };
    let list_len = usize::from(r.u16()?);
    let mut list = Reader {
        buf: r.take(list_len)?,
        pos: 0,
    };
    while list.pos < list.buf.len() {
        let kind = list.u8()?;
        let len = usize::from(list.u16()?);
        let name = list.take(len)?;
        if kind == 0 {
            return std::str::from_utf8(name)
                .map(Some)
                .map_err(|_| HelloError::Malformed("server name is not UTF-8"));
        }
    }
    Ok(None)
}

/// Whether a 16-bit TLS code point is a GREASE value (RFC 8701).
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(HelloError::Malformed("truncated"))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, HelloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// `HMAC-SHA256(key, record with bytes 11..43 zeroed)`, computed without copying the record.
pub fn digest(secret: &Secret, record: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(&record[..RANDOM_OFFSET]);
    mac.update(&[0u8; RANDOM_LEN]);
    mac.update(&record[RANDOM_OFFSET + RANDOM_LEN..]);
    mac.finalize().into_bytes().into()
}

/// A hello whose digest matched one of the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Index of the matching key.
    pub user: usize,
    /// The client's Unix time.
    pub timestamp: u32,
}

/// Finds the key whose digest, XORed with the client random, leaves 28 zero bytes followed by
/// a little-endian timestamp. Every key is tried and compared in constant time.
pub fn verify(record: &[u8], secrets: &[Secret]) -> Result<Verified, HelloError> {
    if record.len() < RANDOM_OFFSET + RANDOM_LEN {
        return Err(HelloError::Malformed("truncated"));
    }
    let random = &record[RANDOM_OFFSET..RANDOM_OFFSET + RANDOM_LEN];
    let mut found = Choice::from(0);
    let mut user = 0u32;
    let mut stamp = [0u8; 4];
    for (i, secret) in secrets.iter().enumerate() {
        let mut x = digest(secret, record);
        for (a, b) in x.iter_mut().zip(random) {
            *a ^= b;
        }
        let ok = x[..28].ct_eq(&[0u8; 28]);
        let take = ok & !found;
        user.conditional_assign(&(i as u32), take);
        for (s, t) in stamp.iter_mut().zip(&x[28..]) {
            s.conditional_assign(t, take);
        }
        found |= ok;
    }
    if bool::from(found) {
        Ok(Verified {
            user: user as usize,
            timestamp: u32::from_le_bytes(stamp),
        })
    } else {
        Err(HelloError::BadDigest)
    }
}

/// How far a client's clock may be from the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewPolicy {
    /// Accept timestamps from `behind` seconds in the past to `ahead` seconds in the future.
    Window {
        /// Seconds the client may be ahead of the server.
        ahead: u32,
        /// Seconds the client may be behind the server.
        behind: u32,
    },
    /// Accept any timestamp (the replay cache alone guards against replays).
    Ignore,
}

impl SkewPolicy {
    /// The official proxy's rule: at most 3 s ahead, 10 minutes behind.
    pub const OFFICIAL: Self = Self::Window {
        ahead: 3,
        behind: 600,
    };

    /// Checks a client timestamp against the server's Unix time.
    pub fn check(self, timestamp: u32, now: u64) -> Result<(), HelloError> {
        let delta = i64::from(timestamp) - now as i64;
        match self {
            Self::Ignore => Ok(()),
            Self::Window { ahead, behind }
                if delta <= i64::from(ahead) && -delta <= i64::from(behind) =>
            {
                Ok(())
            }
            Self::Window { .. } => Err(HelloError::ClockSkew(delta)),
        }
    }
}

/// What a client puts in a ClientHello it builds.
#[derive(Debug, Clone)]
pub struct HelloSpec<'a> {
    /// Cover domain for SNI.
    pub domain: &'a str,
    /// Client Unix time.
    pub unix_time: u32,
    /// Session id (32 random bytes).
    pub session_id: [u8; 32],
    /// X25519 public key for the key_share extension.
    pub key_share: [u8; 32],
}

/// Builds a 517-byte Chrome-like ClientHello keyed by `secret`, as Telegram clients do.
pub fn build(secret: &Secret, spec: &HelloSpec<'_>) -> Vec<u8> {
    const TOTAL: usize = 517;
    let mut ext = Vec::with_capacity(512);
    push_ext(&mut ext, 0x4a4a, &[]);
    let host = spec.domain.as_bytes();
    let mut sni = Vec::with_capacity(host.len() + 5);
    sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host);
    push_ext(&mut ext, EXT_SERVER_NAME, &sni);
    push_ext(&mut ext, 0x0017, &[]);
    push_ext(&mut ext, 0xff01, &[0]);
    push_ext(
        &mut ext,
        0x000a,
        &[0x00, 0x08, 0xba, 0xba, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    push_ext(&mut ext, 0x000b, &[0x01, 0x00]);
    push_ext(&mut ext, 0x0023, &[]);
    push_ext(&mut ext, 0x0010, b"\x00\x0c\x02h2\x08http/1.1");
    push_ext(&mut ext, 0x0005, &[0x01, 0, 0, 0, 0]);
    push_ext(
        &mut ext,
        0x000d,
        &[0x00, 0x08, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03],
    );
    let mut share = vec![
        0x00, 0x29, 0xba, 0xba, 0x00, 0x01, 0x00, 0x00, 0x1d, 0x00, 0x20,
    ];
    share.extend_from_slice(&spec.key_share);
    push_ext(&mut ext, 0x0033, &share);
    push_ext(&mut ext, 0x002d, &[0x01, 0x01]);
    push_ext(
        &mut ext,
        0x002b,
        &[0x06, 0x9a, 0x9a, 0x03, 0x04, 0x03, 0x03],
    );
    push_ext(&mut ext, 0x1a1a, &[0]);

    let suites: [u16; 8] = [
        0xfafa, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030,
    ];
    let fixed = 5 + 4 + 2 + 32 + 1 + 32 + 2 + suites.len() * 2 + 2 + 2;
    // Fill up to the classic 517 bytes with a padding extension (4-byte header).
    let padding = TOTAL.saturating_sub(fixed + ext.len() + 4);
    push_ext(&mut ext, 0x0015, &vec![0u8; padding]);

    let mut rec = Vec::with_capacity(TOTAL);
    let body_len = fixed - 9 + ext.len();
    rec.extend_from_slice(&[content_type::HANDSHAKE, 0x03, 0x01]);
    rec.extend_from_slice(&((body_len + 4) as u16).to_be_bytes());
    rec.push(HANDSHAKE_CLIENT_HELLO);
    rec.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    rec.extend_from_slice(&[0x03, 0x03]);
    rec.extend_from_slice(&[0u8; RANDOM_LEN]);
    rec.push(32);
    rec.extend_from_slice(&spec.session_id);
    rec.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        rec.extend_from_slice(&s.to_be_bytes());
    }
    rec.extend_from_slice(&[0x01, 0x00]);
    rec.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    rec.extend_from_slice(&ext);

    let mut random = digest(secret, &rec);
    for (r, t) in random[28..].iter_mut().zip(spec.unix_time.to_le_bytes()) {
        *r ^= t;
    }
    rec[RANDOM_OFFSET..RANDOM_OFFSET + RANDOM_LEN].copy_from_slice(&random);
    rec
}

fn push_ext(ext: &mut Vec<u8>, kind: u16, data: &[u8]) {
    ext.extend_from_slice(&kind.to_be_bytes());
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(data);
}

#[cfg(test)]
#[path = "client_hello_tests.rs"]
mod tests;
