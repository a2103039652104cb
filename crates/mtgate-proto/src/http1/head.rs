//! Header fields, owned.

use bytes::BufMut;

/// One header field. Names keep the sender's case; lookups ignore case.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: String,
    /// Field value, as bytes (HTTP allows obs-text).
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials travel in headers: never print them.
        let sensitive = self.name.eq_ignore_ascii_case("proxy-authorization")
            || self.name.eq_ignore_ascii_case("authorization");
        let value = if sensitive {
            "<redacted>".into()
        } else {
            String::from_utf8_lossy(&self.value)
        };
        write!(f, "{}: {value:?}", self.name)
    }
}

/// An ordered list of header fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    pub(crate) fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        Self(
            headers
                .iter()
                .map(|h| Header {
                    name: h.name.to_owned(),
                    value: h.value.to_vec(),
                })
                .collect(),
        )
    }

    pub(crate) fn serialized_len(&self) -> usize {
        self.0
            .iter()
            .map(|h| h.name.len() + 2 + h.value.len() + 2)
            .sum()
    }

    /// Writes the fields and the blank line. CR and LF inside names or values are dropped so a
    /// caller-supplied value cannot inject a field.
    pub(crate) fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        let clean = |b: &u8| *b != b'\r' && *b != b'\n';
        for header in &self.0 {
            buf.put_slice(&header.name.bytes().filter(clean).collect::<Vec<_>>());
            buf.put_slice(b": ");
            buf.put_slice(
                &header
                    .value
                    .iter()
                    .copied()
                    .filter(clean)
                    .collect::<Vec<_>>(),
            );
            buf.put_slice(b"\r\n");
        }
        buf.put_slice(b"\r\n");
    }
}
