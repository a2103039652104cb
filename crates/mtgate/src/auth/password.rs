//! Password verification: plain text (for quick starts) or argon2 PHC strings.

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured password.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Plain text (the config warns about it).
    Plain(String),
    /// An argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    Argon2(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Argon2(_) => f.write_str("Argon2(<hash>)"),
        }
    }
}

/// Why a password field is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Empty, or longer than RFC 1929 allows (255 bytes).
    #[error("a password has 1 to 255 bytes")]
    Length,
    /// Starts like an argon2 hash but does not parse as one.
    #[error("not a valid argon2 PHC string: {0}")]
    BadHash(String),
}

impl Password {
    /// Reads a config value: an argon2 PHC string (starting with `$argon2`), else plain text.
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|e| PasswordError::BadHash(e.to_string()))?;
            return Ok(Self::Argon2(text.to_owned()));
        }
        if text.is_empty() || text.len() > 255 {
            return Err(PasswordError::Length);
        }
        Ok(Self::Plain(text.to_owned()))
    }

    /// Whether this is a hash (not plain text).
    pub fn is_hash(&self) -> bool {
        matches!(self, Self::Argon2(_))
    }
}

/// Hashes a password into an argon2id PHC string with the crate's default cost.
pub fn hash(password: &[u8]) -> String {
    use argon2::PasswordHasher;
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Checks passwords against one configured password.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// SHA-256 of the plain password.
    Plain([u8; 32]),
    /// An argon2 hash and, once a password matched it, that password's digest.
    Argon2 {
        /// The PHC string.
        phc: Arc<str>,
        /// Digest of the password that matched, so later checks skip argon2.
        known: Arc<Mutex<Option<[u8; 32]>>>,
    },
}

fn digest(password: &[u8]) -> [u8; 32] {
    // Domain-separated so the digest is not a bare SHA-256 of the password.
    Sha256::new()
        .chain_update(b"mtgate proxy password\0")
        .chain_update(password)
        .finalize()
        .into()
}

impl Verifier {
    /// A verifier for `password`.
    pub fn new(password: &Password) -> Self {
        match password {
            Password::Plain(text) => Self::Plain(digest(text.as_bytes())),
            Password::Argon2(phc) => Self::Argon2 {
                phc: phc.as_str().into(),
                known: Arc::default(),
            },
        }
    }

    /// A verifier of the same kind and cost that no password opens.
    pub fn dummy_like(password: &Password) -> Self {
        match password {
            Password::Plain(_) => Self::Plain([0; 32]),
            Password::Argon2(phc) => {
                // Same parameters, another salt: the cost of a miss matches a wrong password.
                let params = PasswordHash::new(phc)
                    .ok()
                    .and_then(|h| argon2::Params::try_from(&h).ok())
                    .unwrap_or_default();
                let argon =
                    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                use argon2::PasswordHasher;
                let phc = argon
                    .hash_password(b"no password opens this")
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                Self::Argon2 {
                    phc: phc.into(),
                    known: Arc::new(Mutex::new(Some([0; 32]))),
                }
            }
        }
    }

    /// The answer when it needs no argon2 run.
    pub fn quick(&self, password: &[u8]) -> Option<bool> {
        match self {
            Self::Plain(expected) => Some(bool::from(digest(password).ct_eq(expected))),
            Self::Argon2 { known, .. } => {
                let known = *known.lock().unwrap_or_else(|e| e.into_inner());
                known.map(|k| bool::from(digest(password).ct_eq(&k)))
            }
        }
    }

    /// Runs argon2 on the blocking pool and remembers a match.
    pub async fn slow(&self, password: &[u8]) -> bool {
        let Self::Argon2 { phc, known } = self else {
            return self.quick(password).unwrap_or(false);
        };
        let (phc, password) = (phc.clone(), password.to_vec());
        let known = known.clone();
        tokio::task::spawn_blocking(move || {
            let ok = PasswordHash::new(&phc)
                .is_ok_and(|h| Argon2::default().verify_password(&password, &h).is_ok());
            if ok {
                *known.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest(&password));
            }
            ok
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_and_argon2() {
        let plain = Verifier::new(&Password::parse("s3cret").unwrap());
        assert_eq!(plain.quick(b"s3cret"), Some(true));
        assert_eq!(plain.quick(b"s3cret "), Some(false));

        let phc = hash(b"hunter2");
        let password = Password::parse(&phc).unwrap();
        assert!(password.is_hash());
        let argon = Verifier::new(&password);
        assert_eq!(argon.quick(b"hunter2"), None);
        assert!(!argon.slow(b"hunter3").await);
        assert!(argon.slow(b"hunter2").await);
        assert_eq!(argon.quick(b"hunter2"), Some(true));
        assert_eq!(argon.quick(b"hunter3"), Some(false));

        let dummy = Verifier::dummy_like(&password);
        assert_eq!(dummy.quick(b"anything"), Some(false));
    }

    #[test]
    fn refuses_bad_fields() {
        assert_eq!(Password::parse(""), Err(PasswordError::Length));
        assert!(matches!(
            Password::parse("$argon2id$garbage"),
            Err(PasswordError::BadHash(_))
        ));
        assert!(!format!("{:?}", Password::parse("pw").unwrap()).contains("pw"));
    }
}
