//! HTTP Basic credentials (RFC 7617) for `Proxy-Authorization`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A decoded user-id and password. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user-id (before the first colon).
    pub username: Vec<u8>,
    /// The password.
    pub password: Vec<u8>,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The header value `Basic base64(user:pass)`.
pub fn basic_authorization(username: &[u8], password: &[u8]) -> String {
    let mut plain = Vec::with_capacity(username.len() + 1 + password.len());
    plain.extend_from_slice(username);
    plain.push(b':');
    plain.extend_from_slice(password);
    format!("Basic {}", STANDARD.encode(plain))
}

/// Decodes a `Basic` credentials header value; the scheme token matches in any case.
pub fn parse_basic(value: &[u8]) -> Option<BasicCredentials> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let plain = STANDARD.decode(token.trim()).ok()?;
    let colon = plain.iter().position(|&b| b == b':')?;
    Some(BasicCredentials {
        username: plain[..colon].to_vec(),
        password: plain[colon + 1..].to_vec(),
    })
}
