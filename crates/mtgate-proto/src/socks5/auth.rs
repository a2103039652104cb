//! Username/password sub-negotiation (RFC 1929).

use std::fmt;

use bytes::BufMut;

use super::Error;
use super::consts::USER_PASS_VERSION;

/// The client's credentials: `01` · ULEN · UNAME · PLEN · PASSWD. Both fields are opaque bytes
/// of 1 to 255 bytes. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPassRequest {
    /// The username.
    pub username: Vec<u8>,
    /// The password.
    pub password: Vec<u8>,
}

impl fmt::Debug for UserPassRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPassRequest")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

impl UserPassRequest {
    /// Parses credentials from the start of `buf`. Empty fields are refused, as RFC 1929 asks.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let [version, ulen, ..] = *buf else {
            return match buf.first() {
                Some(&v) if v != USER_PASS_VERSION => Err(Error::AuthVersion(v)),
                _ => Ok(None),
            };
        };
        if version != USER_PASS_VERSION {
            return Err(Error::AuthVersion(version));
        }
        let ulen = usize::from(ulen);
        if ulen == 0 {
            return Err(Error::EmptyCredential);
        }
        let Some(&plen) = buf.get(2 + ulen) else {
            return Ok(None);
        };
        let plen = usize::from(plen);
        if plen == 0 {
            return Err(Error::EmptyCredential);
        }
        let total = 3 + ulen + plen;
        if buf.len() < total {
            return Ok(None);
        }
        let request = Self {
            username: buf[2..2 + ulen].to_vec(),
            password: buf[3 + ulen..total].to_vec(),
        };
        Ok(Some((request, total)))
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        3 + self.username.len().min(255) + self.password.len().min(255)
    }

    /// Appends the wire form. Fields longer than 255 bytes are cut; callers check lengths first.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        let user = &self.username[..self.username.len().min(255)];
        let pass = &self.password[..self.password.len().min(255)];
        buf.put_u8(USER_PASS_VERSION);
        buf.put_u8(user.len() as u8);
        buf.put_slice(user);
        buf.put_u8(pass.len() as u8);
        buf.put_slice(pass);
    }
}

/// The server's verdict: `01` · STATUS, where zero means success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPassResponse {
    /// The status byte; anything but zero is a failure and the server closes.
    pub status: u8,
}

impl UserPassResponse {
    /// Bytes on the wire.
    pub const SERIALIZED_LEN: usize = 2;

    /// Success.
    pub const SUCCESS: Self = Self { status: 0 };
    /// Failure (status 1).
    pub const FAILURE: Self = Self { status: 1 };

    /// Whether the credentials were accepted.
    pub const fn is_success(self) -> bool {
        self.status == 0
    }

    /// Parses a response from the start of `buf`. Some servers answer with version `05`
    /// instead of `01`; both are accepted.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        match *buf {
            [USER_PASS_VERSION | super::consts::VERSION, status, ..] => {
                Ok(Some((Self { status }, 2)))
            }
            [version, ..] if version != USER_PASS_VERSION && version != super::consts::VERSION => {
                Err(Error::AuthVersion(version))
            }
            _ => Ok(None),
        }
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(USER_PASS_VERSION);
        buf.put_u8(self.status);
    }
}
