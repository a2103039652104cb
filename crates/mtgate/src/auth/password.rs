//! Password verification: plain text (for quick starts), argon2 PHC strings, or bcrypt hashes
//! (`$2b$`, `$2a$`, `$2y$`, as `htpasswd -B` and most libraries write them).
//!
//! A hash is checked on the blocking pool; once a password matched, its keyed digest is kept,
//! so the user's next connections cost one SHA-256. A password that does not match the kept
//! digest still gets the full hash check, so a wrong password costs the same whether or not
//! the user logged in before, and the same as an unknown user (checked against a dummy of the
//! same kind and cost, see [`Verifier::dummy_like`]).

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Highest bcrypt cost accepted: each step doubles the work, and 14 already takes about a
/// second of a core per check; more would let a config make every login that slow.
pub const MAX_BCRYPT_COST: u32 = 14;

/// bcrypt uses the first 72 bytes of a password only; longer ones are refused rather than
/// truncated, so two passwords sharing 72 bytes are not both accepted.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// A configured password.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Plain text (the config warns about it).
    Plain(String),
    /// An argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    Argon2(String),
    /// A bcrypt hash (`$2b$12$` + 53 characters of salt and hash).
    Bcrypt(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Argon2(_) => f.write_str("Argon2(<hash>)"),
            Self::Bcrypt(_) => f.write_str("Bcrypt(<hash>)"),
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
    /// Starts like a bcrypt hash but is not a valid `$2b$`, `$2a$` or `$2y$` one.
    #[error("not a valid bcrypt hash: {0}")]
    BadBcrypt(String),
    /// A bcrypt cost above [`MAX_BCRYPT_COST`].
    #[error(
        "bcrypt cost {0} is above {MAX_BCRYPT_COST}: every login would take seconds of CPU; hash it again with a lower cost (10 to 12 is usual)"
    )]
    BcryptCost(u32),
}

impl Password {
    /// Reads a config value: an argon2 PHC string (starting with `$argon2`), a bcrypt hash
    /// (starting with `$2`), else plain text.
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|e| PasswordError::BadHash(e.to_string()))?;
            return Ok(Self::Argon2(text.to_owned()));
        }
        if text.starts_with("$2") {
            let variant = text.get(1..4).unwrap_or("");
            if !matches!(variant, "2a$" | "2b$" | "2y$") {
                return Err(PasswordError::BadBcrypt(
                    "the prefix must be $2b$, $2a$ or $2y$".into(),
                ));
            }
            let parts = text
                .parse::<bcrypt::HashParts>()
                .map_err(|e| PasswordError::BadBcrypt(e.to_string()))?;
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(PasswordError::BcryptCost(parts.get_cost()));
            }
            if parts.get_cost() < 4 {
                return Err(PasswordError::BadBcrypt(
                    "the cost must be 4 or more".into(),
                ));
            }
            return Ok(Self::Bcrypt(text.to_owned()));
        }
        if text.is_empty() || text.len() > 255 {
            return Err(PasswordError::Length);
        }
        Ok(Self::Plain(text.to_owned()))
    }

    /// Whether this is a hash (not plain text).
    pub fn is_hash(&self) -> bool {
        !matches!(self, Self::Plain(_))
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

/// Which slow hash a [`Verifier`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// argon2 (PHC string).
    Argon2,
    /// bcrypt.
    Bcrypt,
}

/// Checks passwords against one configured password.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// SHA-256 of the plain password.
    Plain([u8; 32]),
    /// A slow hash and, once a password matched it, that password's digest.
    Hashed {
        /// argon2 or bcrypt.
        kind: HashKind,
        /// The hash as configured.
        hash: Arc<str>,
        /// Digest of the password that matched, so later checks skip the hash.
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
        let hashed = |kind, hash: &str| Self::Hashed {
            kind,
            hash: hash.into(),
            known: Arc::default(),
        };
        match password {
            Password::Plain(text) => Self::Plain(digest(text.as_bytes())),
            Password::Argon2(phc) => hashed(HashKind::Argon2, phc),
            Password::Bcrypt(hash) => hashed(HashKind::Bcrypt, hash),
        }
    }

    /// A verifier of the same kind and cost that no password opens: what an unknown user name
    /// is checked against, so that it costs what a wrong password costs.
    pub fn dummy_like(password: &Password) -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let hash = match password {
            Password::Plain(_) => return Self::Plain(secret),
            Password::Argon2(phc) => {
                // Same parameters, another salt and a random password.
                let params = PasswordHash::new(phc)
                    .ok()
                    .and_then(|h| argon2::Params::try_from(&h).ok())
                    .unwrap_or_default();
                let argon =
                    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                use argon2::PasswordHasher;
                let phc = argon
                    .hash_password(&secret)
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                return Self::Hashed {
                    kind: HashKind::Argon2,
                    hash: phc.into(),
                    known: Arc::default(),
                };
            }
            Password::Bcrypt(hash) => hash,
        };
        // A random bcrypt hash made cheaply at cost 4, then labelled with the user's cost: a
        // check recomputes at that cost (the same work as for the user) and never matches.
        let cost = hash
            .parse::<bcrypt::HashParts>()
            .map_or(10, |p| p.get_cost());
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let cheap = bcrypt::hash_with_salt(secret, 4, salt)
            .map(|p| p.format_for_version(bcrypt::Version::TwoB))
            .unwrap_or_default();
        let dummy = format!("$2b${cost:02}{}", cheap.get(6..).unwrap_or(""));
        Self::Hashed {
            kind: HashKind::Bcrypt,
            hash: dummy.into(),
            known: Arc::default(),
        }
    }

    /// The answer when it needs no slow hash: plain passwords, and a hashed password that
    /// matched before. `None`: run [`Verifier::slow`].
    pub fn quick(&self, password: &[u8]) -> Option<bool> {
        match self {
            Self::Plain(expected) => Some(bool::from(digest(password).ct_eq(expected))),
            Self::Hashed { known, .. } => {
                let known = *known.lock().unwrap_or_else(|e| e.into_inner());
                // Only a match is answered here: a miss costs a full hash check, as it does
                // before the first match and for unknown users.
                known
                    .is_some_and(|k| bool::from(digest(password).ct_eq(&k)))
                    .then_some(true)
            }
        }
    }

    /// Runs the hash on the blocking pool and remembers a match.
    pub async fn slow(&self, password: &[u8]) -> bool {
        let Self::Hashed { kind, hash, known } = self else {
            return self.quick(password).unwrap_or(false);
        };
        let (kind, hash, password) = (*kind, hash.clone(), password.to_vec());
        let known = known.clone();
        tokio::task::spawn_blocking(move || {
            let ok = match kind {
                HashKind::Argon2 => PasswordHash::new(&hash)
                    .is_ok_and(|h| Argon2::default().verify_password(&password, &h).is_ok()),
                HashKind::Bcrypt => {
                    password.len() <= BCRYPT_MAX_PASSWORD
                        && bcrypt::verify(&password, &hash).unwrap_or(false)
                }
            };
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
        // A wrong password is never answered from the cache: it costs a full check.
        assert_eq!(argon.quick(b"hunter3"), None);
        assert!(!argon.slow(b"hunter3").await);

        let dummy = Verifier::dummy_like(&password);
        assert_eq!(dummy.quick(b"anything"), None);
        assert!(!dummy.slow(b"hunter2").await);
    }

    /// Made by `htpasswd -nbB -C 10 alice 'correct horse battery'` (apache2-utils 2.4.71).
    const HTPASSWD_2Y: &str = "$2y$10$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO";
    /// Made by `htpasswd -nbB -C 4 bob 'b0b-pässword'` (UTF-8 bytes).
    const HTPASSWD_2Y_UTF8: &str = "$2y$04$dSWF62BF5bsijuE/5Yyn9uwBsYWQn0TkvzMvN7KaWLCemzKcRh/Ia";
    /// Made by Python `bcrypt` 5.0.0: `bcrypt.hashpw(b'correct horse battery',
    /// bcrypt.gensalt(rounds=5))`.
    const PYTHON_2B: &str = "$2b$05$3WxPrucgoY6Y5LtM32aEHOAg/LA90DIQooUby71UfHBde54iceouS";

    #[tokio::test]
    async fn bcrypt_hashes_from_other_tools() {
        for (hash, right) in [
            (HTPASSWD_2Y, "correct horse battery"),
            (HTPASSWD_2Y_UTF8, "b0b-pässword"),
            (PYTHON_2B, "correct horse battery"),
        ] {
            let password = Password::parse(hash).unwrap();
            assert!(matches!(password, Password::Bcrypt(_)));
            assert!(password.is_hash());
            assert!(!format!("{password:?}").contains(hash));
            let verifier = Verifier::new(&password);
            assert_eq!(verifier.quick(right.as_bytes()), None);
            assert!(!verifier.slow(b"correct horse batterY").await, "{hash}");
            assert!(!verifier.slow(b"").await, "{hash}");
            assert!(verifier.slow(right.as_bytes()).await, "{hash}");
            assert_eq!(verifier.quick(right.as_bytes()), Some(true));
            assert_eq!(verifier.quick(b"wrong"), None);
        }
        // $2a$ is the same algorithm for these passwords.
        let two_a = PYTHON_2B.replacen("$2b$", "$2a$", 1);
        let verifier = Verifier::new(&Password::parse(&two_a).unwrap());
        assert!(verifier.slow(b"correct horse battery").await);
    }

    #[tokio::test]
    async fn bcrypt_dummy_has_the_users_cost_and_opens_nothing() {
        let password = Password::parse(HTPASSWD_2Y).unwrap();
        let Verifier::Hashed { kind, hash, .. } = Verifier::dummy_like(&password) else {
            panic!("a bcrypt user's dummy is a hash");
        };
        assert_eq!(kind, HashKind::Bcrypt);
        assert_eq!(hash.parse::<bcrypt::HashParts>().unwrap().get_cost(), 10);
        let dummy = Verifier::dummy_like(&password);
        assert!(!dummy.slow(b"correct horse battery").await);
        assert!(!dummy.slow(b"").await);
    }

    #[tokio::test]
    async fn bcrypt_refuses_passwords_past_72_bytes() {
        // bcrypt reads 72 bytes; an htpasswd hash of a longer password would also open with
        // any password sharing those 72 bytes, so mtgate refuses such passwords outright.
        let long = "x".repeat(73);
        let hash = bcrypt::hash_with_salt(&long, 4, [7; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let verifier = Verifier::new(&Password::parse(&hash).unwrap());
        assert!(!verifier.slow(long.as_bytes()).await);
        assert!(!verifier.slow(format!("{long}y").as_bytes()).await);
    }

    #[test]
    fn refuses_bad_fields() {
        assert_eq!(Password::parse(""), Err(PasswordError::Length));
        assert!(matches!(
            Password::parse("$argon2id$garbage"),
            Err(PasswordError::BadHash(_))
        ));
        assert!(!format!("{:?}", Password::parse("pw").unwrap()).contains("pw"));
        let cost_15 = HTPASSWD_2Y.replacen("$10$", "$15$", 1);
        assert_eq!(
            Password::parse(&cost_15),
            Err(PasswordError::BcryptCost(15))
        );
        let message = PasswordError::BcryptCost(15).to_string();
        assert!(message.contains("above 14"), "{message}");
        let cost_14 = HTPASSWD_2Y.replacen("$10$", "$14$", 1);
        assert!(Password::parse(&cost_14).is_ok());
        for bad in [
            "$2x$10$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO",
            "$2y$10$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9Czo",
            "$2y$1x$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO",
            "$2y$03$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO",
            "$2y$",
        ] {
            assert!(
                matches!(Password::parse(bad), Err(PasswordError::BadBcrypt(_))),
                "{bad}"
            );
        }
    }
}
