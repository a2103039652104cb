//! A look at the raw request head, for the one smuggling pattern hyper hides.
//!
//! hyper frames messages itself and handles a request carrying both `Content-Length` and
//! `Transfer-Encoding` the way RFC 9112 §6.3 allows an intermediary to: it drops the length,
//! reads the body as chunked and closes the connection afterwards. That is safe, but the
//! header is gone by the time the service sees the request, and the proxy's policy is to
//! refuse such requests with 400. So the client's socket keeps a bounded copy of the bytes read
//! since the last head was examined, and the service looks for the head of the request it was
//! handed there. This is defence in depth on top of hyper's framing, not the framing itself: a
//! client that hides a head-like block in its own body can only make its own request refused.

use std::sync::{Arc, Mutex};

/// Bytes read from the client since the last head was examined (bounded).
#[derive(Debug)]
pub struct HeadTap {
    bytes: Vec<u8>,
    cap: usize,
}

/// A tap shared by the socket wrapper and the service.
pub type SharedTap = Arc<Mutex<HeadTap>>;

impl HeadTap {
    /// A tap keeping at most `cap` bytes (at least a whole head).
    pub fn shared(cap: usize) -> SharedTap {
        Arc::new(Mutex::new(Self {
            bytes: Vec::new(),
            cap,
        }))
    }

    /// Records bytes read from the client; keeps the newest `cap`.
    pub fn record(&mut self, read: &[u8]) {
        self.bytes.extend_from_slice(read);
        if self.bytes.len() > self.cap {
            let excess = self.bytes.len() - self.cap;
            self.bytes.drain(..excess);
        }
    }

    /// Finds the first head that starts with `method` and a space at a line start, forgets
    /// everything up to its end, and tells whether it carries both `Content-Length` and
    /// `Transfer-Encoding`. `false` when no such head is found.
    pub fn take_has_length_and_coding(&mut self, method: &str) -> bool {
        let Some((start, end)) = find_head(&self.bytes, method.as_bytes()) else {
            return false;
        };
        let head = &self.bytes[start..end];
        let mut length = false;
        let mut coding = false;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            length |= name.eq_ignore_ascii_case(b"content-length");
            coding |= name.eq_ignore_ascii_case(b"transfer-encoding");
        }
        self.bytes.drain(..end);
        length && coding
    }
}

/// `(start, end)` of the first `METHOD SP … CRLF CRLF` block that starts a line.
fn find_head(bytes: &[u8], method: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while from < bytes.len() {
        let at = from + find(&bytes[from..], method)?;
        let line_start = at == 0 || bytes[at - 1] == b'\n';
        if line_start && bytes.get(at + method.len()) == Some(&b' ') {
            let end = at + find(&bytes[at..], b"\r\n\r\n")? + 4;
            return Some((at, end));
        }
        from = at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_framing_headers_in_either_order_and_case() {
        for head in [
            &b"POST http://x/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                [..],
            b"POST http://x/ HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-LENGTH: 3\r\n\r\n",
        ] {
            let mut tap = HeadTap {
                bytes: Vec::new(),
                cap: 1024,
            };
            tap.record(head);
            assert!(tap.take_has_length_and_coding("POST"));
            assert!(tap.bytes.is_empty());
        }
    }

    #[test]
    fn a_clean_head_passes_and_later_bytes_stay() {
        let mut tap = HeadTap {
            bytes: Vec::new(),
            cap: 1024,
        };
        tap.record(b"abc\r\nGET http://x/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://y/");
        assert!(!tap.take_has_length_and_coding("GET"));
        assert_eq!(tap.bytes, b"GET http://y/");
        assert!(!tap.take_has_length_and_coding("GET"), "incomplete head");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pieces: [&[u8]; 8] = [
            b"GET",
            b" ",
            b"\r\n",
            b"\r\n\r\n",
            b"\n",
            b"Content-Length:",
            b"transfer-encoding",
            b"x",
        ];
        for _ in 0..2000 {
            let mut tap = HeadTap {
                bytes: Vec::new(),
                cap: rng.random_range(1..200),
            };
            for _ in 0..rng.random_range(0..40) {
                let piece = pieces[rng.random_range(0..pieces.len())];
                tap.record(piece);
                if rng.random_bool(0.2) {
                    let _ = tap.take_has_length_and_coding("GET");
                }
            }
            assert!(tap.bytes.len() <= tap.cap);
        }
    }

    #[test]
    fn the_cap_holds() {
        let mut tap = HeadTap {
            bytes: Vec::new(),
            cap: 8,
        };
        tap.record(&[b'a'; 100]);
        assert_eq!(tap.bytes.len(), 8);
    }
}
