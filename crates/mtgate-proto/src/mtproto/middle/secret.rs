//! The proxy secret (`proxy-secret`, the official `--aes-pwd` file): the shared key of every
//! proxy and Telegram's middle proxies, 128 bytes today. Not the users' 16-byte keys.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Shortest secret accepted (the official `MIN_PWD_LEN`).
pub const MIN_LEN: usize = 32;

/// Longest secret accepted (the official `MAX_PWD_LEN`).
pub const MAX_LEN: usize = 256;

/// The proxy secret. Wiped on drop; `Debug` shows only its key selector.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ProxySecret(Vec<u8>);

/// Why a proxy secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "proxy secret of {0} bytes: expected {MIN_LEN}..={MAX_LEN} bytes (the file from getProxySecret)"
)]
pub struct SecretLengthError(pub usize);

impl ProxySecret {
    /// Wraps the bytes of a `proxy-secret` file.
    pub fn new(bytes: Vec<u8>) -> Result<Self, SecretLengthError> {
        if (MIN_LEN..=MAX_LEN).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(SecretLengthError(bytes.len()))
        }
    }

    /// The secret's bytes (for the key derivation).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its first four bytes: the key selector sent in RPC_NONCE.
    pub fn key_select(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }
}

impl std::fmt::Debug for ProxySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = u32::from_le_bytes(self.key_select());
        write!(f, "ProxySecret(len={}, key_select={k:#010x})", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_selector() {
        assert_eq!(ProxySecret::new(vec![1; 31]), Err(SecretLengthError(31)));
        assert!(ProxySecret::new(vec![1; 257]).is_err());
        let mut bytes = vec![0u8; 128];
        bytes[..4].copy_from_slice(&[0xc4, 0xf9, 0xfa, 0xca]);
        let s = ProxySecret::new(bytes).unwrap();
        assert_eq!(s.key_select(), [0xc4, 0xf9, 0xfa, 0xca]);
        assert_eq!(
            format!("{s:?}"),
            "ProxySecret(len=128, key_select=0xcafaf9c4)"
        );
    }
}
