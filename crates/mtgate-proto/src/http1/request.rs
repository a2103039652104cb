//! Request heads: the CONNECT a client sends, and whatever request a proxy server receives.

use bytes::BufMut;

use super::{Error, Headers, Limits, basic_authorization, capped};
use crate::address::Address;

/// A request line and its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, e.g. `CONNECT`.
    pub method: String,
    /// The request target: authority-form for CONNECT, absolute- or origin-form otherwise.
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// Header fields in order.
    pub headers: Headers,
}

impl RequestHead {
    /// `CONNECT host:port HTTP/1.1` with a matching `Host`, and `Proxy-Authorization: Basic …`
    /// when credentials are given.
    pub fn connect(target: &Address, credentials: Option<(&[u8], &[u8])>) -> Self {
        let authority = format!("{}:{}", target.host_for_authority(), target.port());
        let mut headers = Headers::default();
        headers.push("Host", authority.clone());
        if let Some((user, pass)) = credentials {
            headers.push("Proxy-Authorization", basic_authorization(user, pass));
        }
        Self {
            method: "CONNECT".into(),
            target: authority,
            version: 1,
            headers,
        }
    }

    /// Parses a request head from the start of `buf`.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Self, usize)>, Error> {
        let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut request = httparse::Request::new(&mut fields);
        let outcome = match request.parse(buf) {
            Err(e) => Err(Error::from_httparse(e, limits)),
            Ok(httparse::Status::Partial) => Ok(None),
            Ok(httparse::Status::Complete(used)) => {
                let head = Self {
                    method: request.method.unwrap_or_default().to_owned(),
                    target: request.path.unwrap_or_default().to_owned(),
                    version: request.version.unwrap_or(1),
                    headers: Headers::from_httparse(request.headers),
                };
                Ok(Some((head, used)))
            }
        };
        capped(outcome, buf.len(), limits)
    }

    /// The destination of a CONNECT request, from its authority-form target.
    pub fn connect_target(&self) -> Result<Address, Error> {
        self.target.parse().map_err(|_| Error::BadAuthority)
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        self.method.len() + 1 + self.target.len() + 1 + 8 + 2 + self.headers.serialized_len() + 2
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(self.method.as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(self.target.as_bytes());
        buf.put_slice(if self.version == 0 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        self.headers.write_to_buf(buf);
    }
}
