//! The two messages that open a middle-proxy connection.
//!
//! 1. RPC_NONCE, in plaintext with sequence number −2, both ways:
//!    `type ‖ key_select (4) ‖ crypto schema u32 = 1 ‖ timestamp u32 ‖ nonce (16)`.
//!    key_select is the first four bytes of the proxy secret, so the ME knows which secret the
//!    proxy holds. The keys of [`super::crypto`] follow from both nonces.
//! 2. RPC_HANDSHAKE, the first encrypted frame (sequence number −1), both ways:
//!    `type ‖ flags u32 ‖ sender pid (12) ‖ peer pid (12)`. The answer's peer pid is the
//!    proxy's sender pid. Flag 0x800 asks for CRC32C checksums afterwards.

use super::consts::{CRYPTO_AES, kind};
use super::message::MessageError;

/// Length of both messages.
pub const MESSAGE_LEN: usize = 32;

/// The RPC_NONCE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    /// First four bytes of the proxy secret.
    pub key_select: [u8; 4],
    /// Crypto schema (1 = AES).
    pub schema: u32,
    /// Unix time of the sender.
    pub timestamp: u32,
    /// 16 random bytes.
    pub nonce: [u8; 16],
}

impl Nonce {
    /// A nonce for AES with the given key selector.
    pub fn aes(key_select: [u8; 4], timestamp: u32, nonce: [u8; 16]) -> Self {
        Self {
            key_select,
            schema: CRYPTO_AES,
            timestamp,
            nonce,
        }
    }

    /// The 32 payload bytes.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..4].copy_from_slice(&kind::RPC_NONCE.to_le_bytes());
        out[4..8].copy_from_slice(&self.key_select);
        out[8..12].copy_from_slice(&self.schema.to_le_bytes());
        out[12..16].copy_from_slice(&self.timestamp.to_le_bytes());
        out[16..].copy_from_slice(&self.nonce);
        out
    }

    /// Reads a nonce payload.
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let p: &[u8; MESSAGE_LEN] = payload
            .try_into()
            .map_err(|_| MessageError::BadLength(payload.len()))?;
        expect_kind(p, kind::RPC_NONCE)?;
        Ok(Self {
            key_select: [p[4], p[5], p[6], p[7]],
            schema: u32::from_le_bytes([p[8], p[9], p[10], p[11]]),
            timestamp: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            nonce: p[16..].try_into().expect("16 bytes"),
        })
    }
}

/// A process id as the RPC layer names its ends: IPv4 (u32 LE), port (u16), pid (u16),
/// start time (i32). Only equality matters to the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId(pub [u8; 12]);

impl ProcessId {
    /// Builds a process id.
    pub fn new(ipv4: [u8; 4], port: u16, pid: u16, start: i32) -> Self {
        let mut b = [0u8; 12];
        let mut ip = ipv4;
        ip.reverse();
        b[..4].copy_from_slice(&ip);
        b[4..6].copy_from_slice(&port.to_le_bytes());
        b[6..8].copy_from_slice(&pid.to_le_bytes());
        b[8..].copy_from_slice(&start.to_le_bytes());
        Self(b)
    }
}

/// The RPC_HANDSHAKE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Flags (0, or [`super::consts::handshake_flag::CRC32C`]).
    pub flags: u32,
    /// Who sends it.
    pub sender: ProcessId,
    /// Whom it is for (in an answer: the proxy's sender pid).
    pub peer: ProcessId,
}

impl Handshake {
    /// The 32 payload bytes.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..4].copy_from_slice(&kind::RPC_HANDSHAKE.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..20].copy_from_slice(&self.sender.0);
        out[20..].copy_from_slice(&self.peer.0);
        out
    }

    /// Reads a handshake payload; an RPC_HANDSHAKE_ERROR becomes [`MessageError::Refused`].
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        if payload.len() >= 4 && payload[..4] == kind::RPC_HANDSHAKE_ERROR.to_le_bytes() {
            return Err(MessageError::Refused);
        }
        let p: &[u8; MESSAGE_LEN] = payload
            .try_into()
            .map_err(|_| MessageError::BadLength(payload.len()))?;
        expect_kind(p, kind::RPC_HANDSHAKE)?;
        Ok(Self {
            flags: u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
            sender: ProcessId(p[8..20].try_into().expect("12 bytes")),
            peer: ProcessId(p[20..].try_into().expect("12 bytes")),
        })
    }
}

fn expect_kind(payload: &[u8], expected: u32) -> Result<(), MessageError> {
    let got = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    if got == expected {
        Ok(())
    } else {
        Err(MessageError::UnexpectedKind(got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn nonce_bytes_and_round_trip() {
        let n = Nonce::aes([0xc4, 0xf9, 0xfa, 0xca], 0x5f5e_1000, [0x11; 16]);
        let bytes = n.encode();
        assert_eq!(
            hex::encode(&bytes[..16]),
            "aa87cb7ac4f9faca0100000000105e5f"
        );
        assert_eq!(Nonce::decode(&bytes).unwrap(), n);
        assert_eq!(
            Nonce::decode(&bytes[..31]),
            Err(MessageError::BadLength(31))
        );
    }

    #[test]
    fn handshake_round_trip_and_refusal() {
        let h = Handshake {
            flags: 0,
            sender: ProcessId::new([127, 0, 0, 1], 40000, 77, 1_700_000_000),
            peer: ProcessId(*b"IPIPPRPDTIME"),
        };
        let bytes = h.encode();
        assert_eq!(&bytes[..4], &[0xf5, 0xee, 0x82, 0x76]);
        assert_eq!(&bytes[8..12], &[1, 0, 0, 127]);
        assert_eq!(Handshake::decode(&bytes).unwrap(), h);
        let mut refused = bytes;
        refused[..4].copy_from_slice(&kind::RPC_HANDSHAKE_ERROR.to_le_bytes());
        assert_eq!(Handshake::decode(&refused), Err(MessageError::Refused));
        assert_eq!(
            Handshake::decode(&Nonce::aes([0; 4], 0, [0; 16]).encode()),
            Err(MessageError::UnexpectedKind(kind::RPC_NONCE))
        );
    }
}
