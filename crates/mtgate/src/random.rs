//! Randomness for the proxy: keys, nonces, padding. Backed by the thread-local CSPRNG.

use mtgate_proto::mtproto::secret::{SECRET_LEN, Secret};
use rand::RngExt;

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    rand::fill(buf);
}

/// A fresh 16-byte proxy key.
pub fn secret() -> Secret {
    let mut bytes = [0u8; SECRET_LEN];
    fill(&mut bytes);
    Secret::from_bytes(bytes)
}

/// A uniformly random number in `range`.
pub fn in_range(range: std::ops::RangeInclusive<usize>) -> usize {
    rand::rng().random_range(range)
}
