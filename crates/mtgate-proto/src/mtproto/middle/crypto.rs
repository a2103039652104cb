//! The keys of a middle-proxy connection and its AES-256-CBC streams.
//!
//! Both directions derive from one byte string `s` built from the two nonces, the proxy's
//! timestamp, both ends' addresses and ports, a purpose and the proxy secret:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 16 | the ME's nonce |
//! | 16 | 16 | the proxy's nonce |
//! | 32 | 4 | the proxy's timestamp (LE) |
//! | 36 | 4 | the ME's IPv4 address, bytes reversed (zero for IPv6) |
//! | 40 | 2 | the proxy's port (LE) |
//! | 42 | 6 | `CLIENT` (proxy → ME) or `SERVER` (ME → proxy) |
//! | 48 | 4 | the proxy's public IPv4 address, bytes reversed (zero for IPv6) |
//! | 52 | 2 | the ME's port (LE) |
//! | 54 | N | the proxy secret |
//! | | 16 | the ME's nonce |
//! | | 32 | IPv6 only: the proxy's then the ME's address |
//! | | 16 | the proxy's nonce |
//!
//! key = MD5(s[1..])[..12] ‖ SHA1(s); IV = MD5(s[2..]). The cipher runs without padding and is
//! chained across frames in each direction.

use std::net::{IpAddr, SocketAddr};

use aes::Aes256;
use cbc::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use md5::Md5;
use sha1::{Digest, Sha1};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// AES block size: every encrypted write is a multiple of it.
pub const BLOCK: usize = 16;

/// Who the key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proxy → ME.
    Client,
    /// ME → proxy.
    Server,
}

impl Purpose {
    const fn tag(self) -> &'static [u8; 6] {
        match self {
            Self::Client => b"CLIENT",
            Self::Server => b"SERVER",
        }
    }
}

/// What both sides know after the nonce exchange.
#[derive(Debug, Clone, Copy)]
pub struct KeyMaterial<'a> {
    /// The ME's nonce.
    pub nonce_srv: [u8; 16],
    /// The proxy's nonce.
    pub nonce_clt: [u8; 16],
    /// The timestamp the proxy sent in its nonce.
    pub clt_ts: u32,
    /// The ME's address.
    pub srv: SocketAddr,
    /// The proxy's public address with its local port (the NAT-translated source).
    pub clt: SocketAddr,
    /// The proxy secret (the `--aes-pwd` file).
    pub secret: &'a [u8],
}

/// Why keys could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// One end is IPv4 and the other IPv6: the ME would derive different keys.
    #[error("address families differ: the proxy's address must be of the middle proxy's family")]
    FamilyMismatch,
}

/// An AES-256-CBC key and IV. Wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CbcKey {
    /// AES-256 key.
    pub key: [u8; 32],
    /// Initial chaining block.
    pub iv: [u8; 16],
}

impl std::fmt::Debug for CbcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CbcKey(<redacted>)")
    }
}

impl CbcKey {
    /// Derives the key for `purpose`.
    pub fn derive(m: &KeyMaterial<'_>, purpose: Purpose) -> Result<Self, KeyError> {
        let (srv_v4, clt_v4, v6) = match (m.srv.ip(), m.clt.ip()) {
            (IpAddr::V4(srv), IpAddr::V4(clt)) => {
                (reversed(srv.octets()), reversed(clt.octets()), None)
            }
            (IpAddr::V6(srv), IpAddr::V6(clt)) => {
                ([0; 4], [0; 4], Some((clt.octets(), srv.octets())))
            }
            _ => return Err(KeyError::FamilyMismatch),
        };
        let mut s = Vec::with_capacity(54 + m.secret.len() + 64);
        s.extend_from_slice(&m.nonce_srv);
        s.extend_from_slice(&m.nonce_clt);
        s.extend_from_slice(&m.clt_ts.to_le_bytes());
        s.extend_from_slice(&srv_v4);
        s.extend_from_slice(&m.clt.port().to_le_bytes());
        s.extend_from_slice(purpose.tag());
        s.extend_from_slice(&clt_v4);
        s.extend_from_slice(&m.srv.port().to_le_bytes());
        s.extend_from_slice(m.secret);
        s.extend_from_slice(&m.nonce_srv);
        if let Some((clt, srv)) = v6 {
            s.extend_from_slice(&clt);
            s.extend_from_slice(&srv);
        }
        s.extend_from_slice(&m.nonce_clt);
        let mut key = [0u8; 32];
        key[..12].copy_from_slice(&Md5::digest(&s[1..])[..12]);
        key[12..].copy_from_slice(&Sha1::digest(&s));
        let iv: [u8; 16] = Md5::digest(&s[2..]).into();
        s.zeroize();
        Ok(Self { key, iv })
    }

    /// An encrypting stream starting at this key's IV.
    pub fn encryptor(&self) -> CbcEncryptor {
        CbcEncryptor(cbc::Encryptor::new(&self.key.into(), &self.iv.into()))
    }

    /// A decrypting stream starting at this key's IV.
    pub fn decryptor(&self) -> CbcDecryptor {
        CbcDecryptor(cbc::Decryptor::new(&self.key.into(), &self.iv.into()))
    }
}

fn reversed(mut octets: [u8; 4]) -> [u8; 4] {
    octets.reverse();
    octets
}

/// The keys of one side of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionKeys {
    /// Encrypts what this side sends.
    pub write: CbcKey,
    /// Decrypts what this side receives.
    pub read: CbcKey,
}

impl ConnectionKeys {
    /// The proxy's keys: it writes with "CLIENT" and reads with "SERVER".
    pub fn for_proxy(m: &KeyMaterial<'_>) -> Result<Self, KeyError> {
        Ok(Self {
            write: CbcKey::derive(m, Purpose::Client)?,
            read: CbcKey::derive(m, Purpose::Server)?,
        })
    }

    /// The middle proxy's keys (for test doubles): the mirror image.
    pub fn for_middle_proxy(m: &KeyMaterial<'_>) -> Result<Self, KeyError> {
        let proxy = Self::for_proxy(m)?;
        Ok(Self {
            write: proxy.read,
            read: proxy.write,
        })
    }
}

/// AES-256-CBC encryption chained across calls.
pub struct CbcEncryptor(cbc::Encryptor<Aes256>);

impl CbcEncryptor {
    /// Encrypts in place; `data.len()` must be a multiple of [`BLOCK`] (callers pad with
    /// filler words first).
    pub fn encrypt(&mut self, data: &mut [u8]) {
        let (blocks, rest) = Block::<Aes256>::slice_as_chunks_mut(data);
        assert!(rest.is_empty(), "CBC input must be whole blocks");
        self.0.encrypt_blocks(blocks);
    }
}

/// AES-256-CBC decryption chained across calls.
pub struct CbcDecryptor(cbc::Decryptor<Aes256>);

impl CbcDecryptor {
    /// Decrypts the whole blocks at the start of `data` in place and returns how many bytes
    /// that was; a partial block at the end is left for the next call.
    pub fn decrypt(&mut self, data: &mut [u8]) -> usize {
        let whole = data.len() - data.len() % BLOCK;
        let (blocks, _) = Block::<Aes256>::slice_as_chunks_mut(&mut data[..whole]);
        self.0.decrypt_blocks(blocks);
        whole
    }
}

impl std::fmt::Debug for CbcEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CbcEncryptor")
    }
}

impl std::fmt::Debug for CbcDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CbcDecryptor")
    }
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
