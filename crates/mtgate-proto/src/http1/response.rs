//! Response heads: a proxy's answer to CONNECT, or any response a server writes.

use bytes::BufMut;

use super::{Error, Headers, Limits, capped};

/// A status line and its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase (informational only).
    pub reason: String,
    /// Header fields in order.
    pub headers: Headers,
}

impl ResponseHead {
    /// A response with no header fields.
    pub fn new(status: u16, reason: &str) -> Self {
        Self {
            version: 1,
            status,
            reason: reason.to_owned(),
            headers: Headers::default(),
        }
    }

    /// `HTTP/1.1 200 Connection established`, what proxies answer to a granted CONNECT.
    pub fn connection_established() -> Self {
        Self::new(200, "Connection established")
    }

    /// `407 Proxy Authentication Required` with a Basic challenge for `realm` (quotes and
    /// backslashes in the realm are escaped).
    pub fn proxy_auth_required(realm: &str) -> Self {
        let escaped: String = realm
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let mut head = Self::new(407, "Proxy Authentication Required");
        head.headers
            .push("Proxy-Authenticate", format!("Basic realm=\"{escaped}\""));
        head.headers.push("Content-Length", "0");
        head
    }

    /// Whether the status is 2xx (for CONNECT: the tunnel is open).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Proxy-Authenticate` challenge, if any.
    pub fn proxy_authenticate(&self) -> Option<&str> {
        self.headers.get_str("Proxy-Authenticate")
    }

    /// Parses a response head from the start of `buf`.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Self, usize)>, Error> {
        let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut response = httparse::Response::new(&mut fields);
        let outcome = match response.parse(buf) {
            Err(e) => Err(Error::from_httparse(e, limits)),
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(used)) => {
                let head = Self {
                    version: response.version.unwrap_or(1),
                    status: response.code.unwrap_or_default(),
                    reason: response.reason.unwrap_or_default().to_owned(),
                    headers: Headers::from_httparse(response.headers),
                };
                Ok(Some((head, used)))
            }
        };
        capped(outcome, buf.len(), limits)
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        8 + 1 + 3 + 1 + self.reason.len() + 2 + self.headers.serialized_len() + 2
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(if self.version == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        buf.put_slice(format!("{:03} ", self.status.min(999)).as_bytes());
        buf.put_slice(self.reason.replace(['\r', '\n'], " ").as_bytes());
        buf.put_slice(b"\r\n");
        self.headers.write_to_buf(buf);
    }
}
