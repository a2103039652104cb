//! Proxy secrets and the forms links carry.
//!
//! The server holds a 16-byte key per user. Clients receive it in a link, where a one-byte prefix
//! tells the client which transport to use: none (plain obfuscated2), `dd` (padded intermediate)
//! or `ee` (fake TLS, followed by the ASCII cover domain). The server never sees the prefix; it
//! recognises the mode from the bytes on the wire.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::hex;

/// Length of a proxy key in bytes.
pub const SECRET_LEN: usize = 16;

/// Longest cover domain a client accepts inside an `ee` secret (tdlib's `MAX_DOMAIN_LENGTH`).
pub const MAX_DOMAIN_LEN: usize = 182;

/// Prefix byte of a padded-intermediate secret.
pub const PADDED_PREFIX: u8 = 0xdd;

/// Prefix byte of a fake-TLS secret.
pub const FAKE_TLS_PREFIX: u8 = 0xee;

/// A 16-byte proxy key. Wiped on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret([u8; SECRET_LEN]);

impl Secret {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses a key written as 32 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(text.trim()).ok_or(SecretError::NotHex)?;
        let bytes: [u8; SECRET_LEN] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| SecretError::WrongLength(v.len()))?;
        Ok(Self(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// The key as 32 lowercase hex digits, for links and configuration files only.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a client link carries: the key and the mode the client will use.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientSecret {
    /// Plain obfuscated2 (the client picks abridged or intermediate).
    Plain(Secret),
    /// `dd`: obfuscated2 with the padded intermediate transport.
    Padded(Secret),
    /// `ee`: fake TLS with this cover domain as SNI, padded intermediate inside.
    FakeTls {
        /// The proxy key.
        secret: Secret,
        /// The cover domain sent as SNI (ASCII, at most [`MAX_DOMAIN_LEN`] bytes).
        domain: String,
    },
}

impl ClientSecret {
    /// Parses a secret as a client does: hex first, then unpadded base64url; 16 bytes = plain,
    /// 17 bytes starting with `dd` = padded, 18+ bytes starting with `ee` = fake TLS.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = match hex::decode(text) {
            Some(bytes) => bytes,
            None => URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| SecretError::NotHexOrBase64)?,
        };
        Self::from_wire(&bytes)
    }

    /// Interprets the decoded bytes of a link secret.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, SecretError> {
        let key = |b: &[u8]| -> Secret {
            let mut k = [0u8; SECRET_LEN];
            k.copy_from_slice(&b[..SECRET_LEN]);
            Secret(k)
        };
        match bytes {
            b if b.len() == SECRET_LEN => Ok(Self::Plain(key(b))),
            [PADDED_PREFIX, rest @ ..] if rest.len() == SECRET_LEN => Ok(Self::Padded(key(rest))),
            [FAKE_TLS_PREFIX, rest @ ..] if rest.len() > SECRET_LEN => {
                let domain = &rest[SECRET_LEN..];
                validate_domain(domain)?;
                let domain =
                    String::from_utf8(domain.to_vec()).map_err(|_| SecretError::BadDomain)?;
                Ok(Self::FakeTls {
                    secret: key(rest),
                    domain,
                })
            }
            other => Err(SecretError::WrongLength(other.len())),
        }
    }

    /// The key inside.
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Plain(s) | Self::Padded(s) | Self::FakeTls { secret: s, .. } => s,
        }
    }

    /// The bytes a link encodes: prefix, key, and domain for fake TLS.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + SECRET_LEN + MAX_DOMAIN_LEN);
        match self {
            Self::Plain(s) => out.extend_from_slice(s.as_bytes()),
            Self::Padded(s) => {
                out.push(PADDED_PREFIX);
                out.extend_from_slice(s.as_bytes());
            }
            Self::FakeTls { secret, domain } => {
                out.push(FAKE_TLS_PREFIX);
                out.extend_from_slice(secret.as_bytes());
                out.extend_from_slice(domain.as_bytes());
            }
        }
        out
    }

    /// The link form in hex (`ee` + key + hex(domain) for fake TLS).
    pub fn to_hex(&self) -> String {
        hex::encode(&self.to_wire())
    }

    /// The link form in unpadded base64url (fake-TLS secrets start with `7`).
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_wire())
    }
}

/// Checks that a cover domain is something a client can put in SNI.
pub fn validate_domain(domain: &[u8]) -> Result<(), SecretError> {
    let ok_char = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    if domain.is_empty() || domain.len() > MAX_DOMAIN_LEN || !domain.iter().all(ok_char) {
        return Err(SecretError::BadDomain);
    }
    Ok(())
}

/// Why a secret was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key is not written in hex.
    #[error("the secret is not hex")]
    NotHex,
    /// The link secret is neither hex nor base64url.
    #[error("the secret is neither hex nor base64url")]
    NotHexOrBase64,
    /// Decoded to the wrong number of bytes.
    #[error(
        "the secret decodes to {0} bytes; a key is 16 bytes (17 with dd, 18+ with ee and a domain)"
    )]
    WrongLength(usize),
    /// The fake-TLS domain is empty, too long or not a host name.
    #[error(
        "the fake-TLS domain must be a host name of 1..=182 ASCII letters, digits, '-' and '.'"
    )]
    BadDomain,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn parses_all_three_forms() {
        let key = Secret::from_hex(KEY_HEX).unwrap();
        assert_eq!(
            ClientSecret::parse(KEY_HEX).unwrap(),
            ClientSecret::Plain(key.clone())
        );
        assert_eq!(
            ClientSecret::parse(&format!("dd{KEY_HEX}")).unwrap(),
            ClientSecret::Padded(key.clone())
        );
        let ee = ClientSecret::parse(&format!("ee{KEY_HEX}{}", hex::encode(b"example.com")));
        assert_eq!(
            ee.unwrap(),
            ClientSecret::FakeTls {
                secret: key,
                domain: "example.com".into()
            }
        );
    }

    #[test]
    fn base64url_round_trip_starts_with_7() {
        let secret = ClientSecret::FakeTls {
            secret: Secret::from_hex(KEY_HEX).unwrap(),
            domain: "www.example.org".into(),
        };
        let b64 = secret.to_base64url();
        assert!(b64.starts_with('7'));
        assert!(!b64.contains('='));
        assert_eq!(ClientSecret::parse(&b64).unwrap(), secret);
        assert_eq!(ClientSecret::parse(&secret.to_hex()).unwrap(), secret);
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(Secret::from_hex("0011"), Err(SecretError::WrongLength(2)));
        assert_eq!(Secret::from_hex("zz"), Err(SecretError::NotHex));
        // 17 bytes with a prefix other than dd.
        assert!(ClientSecret::parse(&format!("ef{KEY_HEX}")).is_err());
        // ee without a domain.
        assert!(ClientSecret::parse(&format!("ee{KEY_HEX}")).is_err());
        assert!(ClientSecret::parse("!!!").is_err());
        let long = "a".repeat(MAX_DOMAIN_LEN + 1);
        assert_eq!(
            validate_domain(long.as_bytes()),
            Err(SecretError::BadDomain)
        );
        assert_eq!(validate_domain(b"bad domain"), Err(SecretError::BadDomain));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = Secret::from_hex(KEY_HEX).unwrap();
        assert_eq!(format!("{key:?}"), "Secret(<redacted>)");
        let shown = format!("{:?}", ClientSecret::Padded(key));
        assert!(!shown.contains("0011"));
    }
}
