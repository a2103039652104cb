//! HTTP/1.x message heads for CONNECT tunnels and forward proxying, both directions.
//!
//! Only heads: the request line or status line and the header block, up to the blank line.
//! Parsing uses `httparse` and is incremental: `Ok(None)` until the blank line has arrived,
//! then the head and the number of bytes it took. Whatever follows belongs to the body or,
//! after a 2xx answer to CONNECT, to the tunnel; callers keep those bytes.
//!
//! Every parse is capped by [`Limits`]: the head size and the number of header fields.
//! Body framing (Content-Length, chunked) is not handled here; the server uses hyper for that.

mod basic;
mod head;
mod request;
mod response;

#[cfg(test)]
mod tests;

pub use basic::{BasicCredentials, basic_authorization, parse_basic};
pub use head::{Header, Headers};
pub use request::RequestHead;
pub use response::ResponseHead;

/// Caps applied while parsing a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head, request or status line included, in bytes.
    pub max_head_len: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_len: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The head is larger than [`Limits::max_head_len`].
    #[error("message head larger than {0} bytes")]
    TooLarge(usize),
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// Not HTTP/1.x syntax.
    #[error("malformed message head: {0}")]
    Malformed(&'static str),
    /// A CONNECT target that is not `host:port`.
    #[error("CONNECT target is not host:port")]
    BadAuthority,
}

impl Error {
    fn from_httparse(error: httparse::Error, limits: &Limits) -> Self {
        match error {
            httparse::Error::TooManyHeaders => Self::TooManyHeaders(limits.max_headers),
            httparse::Error::HeaderName => Self::Malformed("invalid header name"),
            httparse::Error::HeaderValue => Self::Malformed("invalid header value"),
            httparse::Error::NewLine => Self::Malformed("invalid line ending"),
            httparse::Error::Status => Self::Malformed("invalid status"),
            httparse::Error::Token => Self::Malformed("invalid token"),
            httparse::Error::Version => Self::Malformed("invalid HTTP version"),
        }
    }

    /// The status a server answers with: 431 for oversized heads, 400 otherwise.
    pub fn as_status(&self) -> u16 {
        match self {
            Self::TooLarge(_) | Self::TooManyHeaders(_) => 431,
            _ => 400,
        }
    }
}

/// Applies the size cap to a parse outcome: partial input that already exceeds the cap, or a
/// complete head longer than the cap, is an error.
fn capped<T>(
    outcome: Result<Option<(T, usize)>, Error>,
    buf_len: usize,
    limits: &Limits,
) -> Result<Option<(T, usize)>, Error> {
    match outcome {
        Ok(Some((_, used))) if used > limits.max_head_len => {
            Err(Error::TooLarge(limits.max_head_len))
        }
        Ok(None) if buf_len >= limits.max_head_len => Err(Error::TooLarge(limits.max_head_len)),
        other => other,
    }
}
