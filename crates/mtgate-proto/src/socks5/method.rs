//! Method negotiation: the client's greeting and the server's selection.

use bytes::BufMut;

use super::Error;
use super::consts::{
    METHOD_GSSAPI, METHOD_NO_ACCEPTABLE, METHOD_NO_AUTH, METHOD_USER_PASS, VERSION,
};

/// An authentication method byte. Any value is representable; the named ones are constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u8);

impl Method {
    /// No authentication.
    pub const NO_AUTH: Self = Self(METHOD_NO_AUTH);
    /// GSSAPI.
    pub const GSSAPI: Self = Self(METHOD_GSSAPI);
    /// Username/password (RFC 1929).
    pub const USER_PASS: Self = Self(METHOD_USER_PASS);
    /// The server's "no acceptable methods" answer.
    pub const NO_ACCEPTABLE: Self = Self(METHOD_NO_ACCEPTABLE);

    /// The method for a wire byte.
    pub const fn from_u8(byte: u8) -> Self {
        Self(byte)
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self.0
    }
}

/// The client's greeting: VER · NMETHODS · METHODS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Offered methods, 1 to 255 of them, in the client's order.
    pub methods: Vec<Method>,
}

impl Greeting {
    /// A greeting offering `methods`.
    pub fn new(methods: &[Method]) -> Self {
        Self {
            methods: methods.to_vec(),
        }
    }

    /// Parses a greeting from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let [version, count, ..] = *buf else {
            return match buf.first() {
                Some(&v) if v != VERSION => Err(Error::Version(v)),
                _ => Ok(None),
            };
        };
        if version != VERSION {
            return Err(Error::Version(version));
        }
        if count == 0 {
            return Err(Error::NoMethods);
        }
        let total = 2 + usize::from(count);
        let Some(methods) = buf.get(2..total) else {
            return Ok(None);
        };
        let methods = methods.iter().copied().map(Method).collect();
        Ok(Some((Self { methods }, total)))
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        2 + self.methods.len().min(255)
    }

    /// Appends the wire form (at most 255 methods are written).
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        let methods = &self.methods[..self.methods.len().min(255)];
        buf.put_u8(VERSION);
        buf.put_u8(methods.len() as u8);
        for method in methods {
            buf.put_u8(method.0);
        }
    }

    /// The server's choice: the first of `preferred` (server order) that the client offered,
    /// else [`Method::NO_ACCEPTABLE`].
    pub fn select(&self, preferred: &[Method]) -> Method {
        preferred
            .iter()
            .copied()
            .find(|m| self.methods.contains(m))
            .unwrap_or(Method::NO_ACCEPTABLE)
    }
}

/// The server's answer to the greeting: VER · METHOD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSelection {
    /// The chosen method, or [`Method::NO_ACCEPTABLE`].
    pub method: Method,
}

impl MethodSelection {
    /// Bytes on the wire.
    pub const SERIALIZED_LEN: usize = 2;

    /// Parses a method selection from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        match *buf {
            [VERSION, method, ..] => Ok(Some((
                Self {
                    method: Method(method),
                },
                2,
            ))),
            [version, ..] if version != VERSION => Err(Error::Version(version)),
            _ => Ok(None),
        }
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(VERSION);
        buf.put_u8(self.method.0);
    }
}
