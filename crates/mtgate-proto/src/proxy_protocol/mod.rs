//! The PROXY protocol (HAProxy, versions 1 and 2): the header a load balancer puts in front of
//! a TCP stream to tell the server who the real client is.
//!
//! | version | layout |
//! |---|---|
//! | v1 (text) | `PROXY TCP4\|TCP6\|UNKNOWN src dst sport dport\r\n`, at most 107 bytes |
//! | v2 (binary) | 12-byte signature · ver/cmd · family/transport · length (2) · addresses · TLVs |
//!
//! [`Header::parse`] takes the first bytes of a connection and returns the header and its
//! length (what follows belongs to the proxied protocol), `Ok(None)` while more bytes are
//! needed, or an error. A v2 header is capped at [`MAX_V2_LEN`] bytes; TLVs are skipped.
//! [`Header::write_v1`] and [`Header::write_v2`] produce headers (for tests and for sending
//! the header to backends).

mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use bytes::BufMut;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v1 header, CRLF included (the specification's figure).
pub const MAX_V1_LEN: usize = 107;

/// Longest v2 header accepted (16-byte fixed part plus addresses and TLVs).
pub const MAX_V2_LEN: usize = 16 + 1024;

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied TCP (or UDP) connection from `source` to `destination`.
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// The sender speaks for itself (v2 `LOCAL`, e.g. health checks), or the family is not
    /// IP (v1 `UNKNOWN`, v2 `UNSPEC` or Unix sockets): use the real peer address.
    Local,
}

/// Why the bytes are not a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The stream does not start with a v1 or v2 header.
    #[error("no PROXY protocol header")]
    Missing,
    /// A v1 line that is malformed or longer than 107 bytes.
    #[error("malformed PROXY protocol v1 header")]
    BadV1,
    /// A v2 header with an unknown version, command or family, or addresses that do not fit
    /// its length.
    #[error("malformed PROXY protocol v2 header")]
    BadV2,
    /// A v2 header longer than [`MAX_V2_LEN`].
    #[error("PROXY protocol v2 header longer than {MAX_V2_LEN} bytes")]
    TooLarge,
}

impl Header {
    /// Parses a v1 or v2 header from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let v1 = b"PROXY ";
        let v2 = &V2_SIGNATURE[..];
        let prefix_of = |sig: &[u8]| buf.len() < sig.len() && sig.starts_with(buf);
        if buf.starts_with(v1) {
            v1::parse(buf)
        } else if buf.starts_with(v2) {
            v2::parse(buf)
        } else if prefix_of(v1) || prefix_of(v2) {
            Ok(None)
        } else {
            Err(Error::Missing)
        }
    }

    /// The client address to use instead of the TCP peer's, if the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Self::Proxied { source, .. } => Some(*source),
            Self::Local => None,
        }
    }

    /// Appends the v1 (text) form. A pair of addresses of different families cannot be said
    /// in v1 and is written as `UNKNOWN`.
    pub fn write_v1<B: BufMut>(&self, buf: &mut B) {
        v1::write(self, buf);
    }

    /// Appends the v2 (binary) form, without TLVs. IPv4 and IPv6 addresses mixed in one
    /// header are written as IPv6 (IPv4-mapped).
    pub fn write_v2<B: BufMut>(&self, buf: &mut B) {
        v2::write(self, buf);
    }
}
