//! Fake TLS (`ee` secrets): the proxy looks like a TLS 1.3 server of the cover domain.
//!
//! 1. The client sends a ClientHello whose 32-byte random (record offset 11) is
//!    `HMAC-SHA256(key, record with the random zeroed)` with its last four bytes XORed with the
//!    little-endian Unix time ([`client_hello`]).
//! 2. The proxy checks the digest for each key, the clock skew and the replay cache, and answers
//!    ServerHello + ChangeCipherSpec + one ApplicationData record; its random is an HMAC over the
//!    client's random and the whole answer, which the client verifies ([`server_hello`]).
//! 3. Both sides then wrap the obfuscated2 stream in ApplicationData records ([`record`]).
//!    Stray ChangeCipherSpec records from the client are skipped.

pub mod client_hello;
pub mod record;
pub mod server_hello;

/// Offset of the 32-byte random in a hello record (5 record + 4 handshake + 2 version bytes).
pub const RANDOM_OFFSET: usize = 11;

/// Length of a hello random.
pub const RANDOM_LEN: usize = 32;

/// A TLS fatal `decode_error` alert.
pub const DECODE_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
