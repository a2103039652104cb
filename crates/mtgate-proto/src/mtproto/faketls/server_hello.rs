//! The proxy's answer to a valid ClientHello: ServerHello, ChangeCipherSpec and one
//! ApplicationData record, with the ServerHello random set to
//! `HMAC-SHA256(key, client_random ‖ the whole answer with that random zeroed)`.
//!
//! Clients check exactly this layout: `16 03 03 …`, then `14 03 03 00 01 01`, then
//! `17 03 03 LL LL` and `LL` bytes; only that one ApplicationData record is under the digest.

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::record::{CHANGE_CIPHER_SPEC_RECORD, application_data_header, content_type};
use super::{RANDOM_LEN, RANDOM_OFFSET};
use crate::mtproto::secret::Secret;

type HmacSha256 = hmac::Hmac<Sha256>;

const HANDSHAKE_SERVER_HELLO: u8 = 0x02;
const GROUP_X25519: [u8; 2] = [0x00, 0x1d];
const EXT_KEY_SHARE: [u8; 2] = [0x00, 0x33];
const EXT_SUPPORTED_VERSIONS: [u8; 2] = [0x00, 0x2b];
const TLS13: [u8; 2] = [0x03, 0x04];

/// What goes into the answer besides the key.
#[derive(Debug, Clone)]
pub struct ServerHelloSpec<'a> {
    /// The client's random, as received.
    pub client_random: &'a [u8; RANDOM_LEN],
    /// The client's session id, echoed.
    pub session_id: &'a [u8],
    /// The cipher suite to select (one the client offered).
    pub cipher_suite: u16,
    /// The server's X25519 public key.
    pub key_share: [u8; 32],
    /// Body of the ApplicationData record (random bytes standing for the encrypted
    /// certificate flight).
    pub application_data: &'a [u8],
}

/// Appends the whole answer to `out`.
pub fn build(secret: &Secret, spec: &ServerHelloSpec<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    let sid_len = spec.session_id.len();
    // version, random, session id, suite, compression, extensions length, two extensions.
    let body_len = 2 + RANDOM_LEN + 1 + sid_len + 2 + 1 + 2 + (4 + 36) + (4 + 2);
    out.extend_from_slice(&[content_type::HANDSHAKE, 0x03, 0x03]);
    out.extend_from_slice(&((body_len + 4) as u16).to_be_bytes());
    out.push(HANDSHAKE_SERVER_HELLO);
    out.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[0x03, 0x03]);
    out.extend_from_slice(&[0u8; RANDOM_LEN]);
    out.push(sid_len as u8);
    out.extend_from_slice(spec.session_id);
    out.extend_from_slice(&spec.cipher_suite.to_be_bytes());
    out.push(0x00);
    out.extend_from_slice(&(40u16 + 6).to_be_bytes());
    out.extend_from_slice(&EXT_KEY_SHARE);
    out.extend_from_slice(&36u16.to_be_bytes());
    out.extend_from_slice(&GROUP_X25519);
    out.extend_from_slice(&32u16.to_be_bytes());
    out.extend_from_slice(&spec.key_share);
    out.extend_from_slice(&EXT_SUPPORTED_VERSIONS);
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&TLS13);
    out.extend_from_slice(&CHANGE_CIPHER_SPEC_RECORD);
    out.extend_from_slice(&application_data_header(spec.application_data.len()));
    out.extend_from_slice(spec.application_data);

    let random = answer_digest(secret, spec.client_random, &out[start..]);
    out[start + RANDOM_OFFSET..start + RANDOM_OFFSET + RANDOM_LEN].copy_from_slice(&random);
}

fn answer_digest(secret: &Secret, client_random: &[u8; RANDOM_LEN], answer: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(client_random);
    mac.update(&answer[..RANDOM_OFFSET]);
    mac.update(&[0u8; RANDOM_LEN]);
    mac.update(&answer[RANDOM_OFFSET + RANDOM_LEN..]);
    mac.finalize().into_bytes().into()
}

/// Client side: how many bytes the whole answer takes, once its first three records' headers
/// are in `buf`; `Ok(None)` means more bytes are needed.
pub fn answer_len(buf: &[u8]) -> Result<Option<usize>, AnswerError> {
    let Some(h) = buf.get(..5) else {
        return Ok(None);
    };
    if h[0] != content_type::HANDSHAKE || h[1..3] != [0x03, 0x03] {
        return Err(AnswerError::Layout);
    }
    let first = 5 + usize::from(u16::from_be_bytes([h[3], h[4]]));
    let ccs_end = first + CHANGE_CIPHER_SPEC_RECORD.len();
    let Some(ccs) = buf.get(first..ccs_end) else {
        return Ok(None);
    };
    if ccs != CHANGE_CIPHER_SPEC_RECORD {
        return Err(AnswerError::Layout);
    }
    let Some(h) = buf.get(ccs_end..ccs_end + 5) else {
        return Ok(None);
    };
    if h[..3] != [content_type::APPLICATION_DATA, 0x03, 0x03] {
        return Err(AnswerError::Layout);
    }
    Ok(Some(
        ccs_end + 5 + usize::from(u16::from_be_bytes([h[3], h[4]])),
    ))
}

/// Client side: checks the answer's digest (as Telegram clients do).
pub fn verify(
    secret: &Secret,
    client_random: &[u8; RANDOM_LEN],
    answer: &[u8],
) -> Result<(), AnswerError> {
    if answer.len() < RANDOM_OFFSET + RANDOM_LEN {
        return Err(AnswerError::Layout);
    }
    let expected = answer_digest(secret, client_random, answer);
    let got = &answer[RANDOM_OFFSET..RANDOM_OFFSET + RANDOM_LEN];
    if bool::from(expected.ct_eq(got)) {
        Ok(())
    } else {
        Err(AnswerError::BadDigest)
    }
}

/// Why a client refuses the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not ServerHello + ChangeCipherSpec + ApplicationData.
    #[error("the server answer does not have the fake-TLS layout")]
    Layout,
    /// The ServerHello random is not the expected HMAC.
    #[error("the server answer's digest is wrong")]
    BadDigest,
}

#[cfg(test)]
#[path = "server_hello_tests.rs"]
mod tests;
