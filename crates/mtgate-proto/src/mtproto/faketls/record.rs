//! TLS record framing after the fake handshake.

/// TLS record content types.
#[rustfmt::skip]
pub mod content_type {
    /// ChangeCipherSpec.
    pub const CHANGE_CIPHER_SPEC: u8 = 0x14;
    /// Alert.
    pub const ALERT: u8             = 0x15;
    /// Handshake.
    pub const HANDSHAKE: u8         = 0x16;
    /// ApplicationData.
    pub const APPLICATION_DATA: u8  = 0x17;
}

/// Length of a record header.
pub const HEADER_LEN: usize = 5;

/// Largest record payload accepted from a client: 2^14 plus 256 bytes of ciphertext expansion.
pub const MAX_CLIENT_RECORD: usize = 16_384 + 256;

/// Largest record payload the proxy sends.
pub const MAX_SERVER_RECORD: usize = 16_384;

/// The protocol version written in records after the hello (TLS 1.2 on the wire, as TLS 1.3
/// servers do).
pub const VERSION: [u8; 2] = [0x03, 0x03];

/// The bytes of one ChangeCipherSpec record.
pub const CHANGE_CIPHER_SPEC_RECORD: [u8; 6] = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];

/// An ApplicationData record header for a payload of `len` bytes.
pub fn application_data_header(len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= usize::from(u16::MAX));
    let l = (len as u16).to_be_bytes();
    [
        content_type::APPLICATION_DATA,
        VERSION[0],
        VERSION[1],
        l[0],
        l[1],
    ]
}

/// Why the record stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A record type other than ApplicationData or ChangeCipherSpec.
    #[error("unexpected TLS record type {0:#04x}")]
    UnexpectedType(u8),
    /// The peer sent an alert.
    #[error("the peer sent a TLS alert")]
    Alert,
    /// A record version other than `03 03` (or `03 01`).
    #[error("unexpected TLS record version {0:#06x}")]
    BadVersion(u16),
    /// A record longer than [`MAX_CLIENT_RECORD`].
    #[error("TLS record of {0} bytes is too long")]
    TooLong(usize),
    /// A ChangeCipherSpec record that is not the single byte 1.
    #[error("malformed ChangeCipherSpec record")]
    BadChangeCipherSpec,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header {
        have: usize,
        bytes: [u8; HEADER_LEN],
    },
    Payload {
        kind: u8,
        left: usize,
    },
}

/// Strips record framing from a client's stream in place, keeping ApplicationData payloads and
/// skipping ChangeCipherSpec records. Records may be split across reads at any byte.
#[derive(Debug, Clone)]
pub struct RecordReader {
    state: State,
}

impl Default for RecordReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordReader {
    /// A reader at a record boundary.
    pub fn new() -> Self {
        Self {
            state: State::Header {
                have: 0,
                bytes: [0; HEADER_LEN],
            },
        }
    }

    /// Consumes `buf` (bytes as received) and moves the payload bytes to its front.
    /// Returns how many payload bytes `buf[..n]` now holds.
    pub fn unwrap_in_place(&mut self, buf: &mut [u8]) -> Result<usize, RecordError> {
        let mut read = 0;
        let mut written = 0;
        while read < buf.len() {
            match &mut self.state {
                State::Payload { kind, left } => {
                    let n = (*left).min(buf.len() - read);
                    if *kind == content_type::APPLICATION_DATA {
                        buf.copy_within(read..read + n, written);
                        written += n;
                    } else if buf[read] != 1 {
                        return Err(RecordError::BadChangeCipherSpec);
                    }
                    read += n;
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Header {
                            have: 0,
                            bytes: [0; HEADER_LEN],
                        };
                    }
                }
                State::Header { have, bytes } => {
                    let n = (HEADER_LEN - *have).min(buf.len() - read);
                    bytes[*have..*have + n].copy_from_slice(&buf[read..read + n]);
                    *have += n;
                    read += n;
                    if *have == HEADER_LEN {
                        let header = *bytes;
                        self.state = Self::start_record(&header)?;
                    }
                }
            }
        }
        Ok(written)
    }

    /// Whether the reader sits between records.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }

    fn start_record(header: &[u8; HEADER_LEN]) -> Result<State, RecordError> {
        let kind = header[0];
        let version = u16::from_be_bytes([header[1], header[2]]);
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        match kind {
            content_type::APPLICATION_DATA | content_type::CHANGE_CIPHER_SPEC => {}
            content_type::ALERT => return Err(RecordError::Alert),
            other => return Err(RecordError::UnexpectedType(other)),
        }
        if version != 0x0303 && version != 0x0301 {
            return Err(RecordError::BadVersion(version));
        }
        if len > MAX_CLIENT_RECORD {
            return Err(RecordError::TooLong(len));
        }
        if kind == content_type::CHANGE_CIPHER_SPEC && len != 1 {
            return Err(RecordError::BadChangeCipherSpec);
        }
        Ok(if len == 0 {
            State::Header {
                have: 0,
                bytes: [0; HEADER_LEN],
            }
        } else {
            State::Payload { kind, left: len }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records(payloads: &[&[u8]], ccs_first: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if ccs_first {
            out.extend_from_slice(&CHANGE_CIPHER_SPEC_RECORD);
        }
        for p in payloads {
            out.extend_from_slice(&application_data_header(p.len()));
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn skips_change_cipher_spec_anywhere_and_empty_records() {
        let mut wire = records(&[b"hello", b""], true);
        wire.extend_from_slice(&CHANGE_CIPHER_SPEC_RECORD);
        wire.extend_from_slice(&records(&[b" world"], false));
        let mut reader = RecordReader::new();
        let n = reader.unwrap_in_place(&mut wire).unwrap();
        assert_eq!(&wire[..n], b"hello world");
        assert!(reader.at_boundary());
    }

    #[test]
    fn refuses_alerts_handshakes_and_long_records() {
        let mut r = RecordReader::new();
        assert_eq!(
            r.unwrap_in_place(&mut [0x15, 3, 3, 0, 2, 2, 0x32]),
            Err(RecordError::Alert)
        );
        let mut r = RecordReader::new();
        assert_eq!(
            r.unwrap_in_place(&mut [0x16, 3, 3, 0, 1, 0]),
            Err(RecordError::UnexpectedType(0x16))
        );
        let mut r = RecordReader::new();
        assert_eq!(
            r.unwrap_in_place(&mut [0x17, 3, 3, 0x41, 0x01]),
            Err(RecordError::TooLong(0x4101))
        );
        let mut r = RecordReader::new();
        assert_eq!(
            r.unwrap_in_place(&mut [0x17, 2, 0, 0, 1]),
            Err(RecordError::BadVersion(0x0200))
        );
        let mut r = RecordReader::new();
        assert_eq!(
            r.unwrap_in_place(&mut [0x14, 3, 3, 0, 1, 2]),
            Err(RecordError::BadChangeCipherSpec)
        );
        // The largest legal record is fine.
        let mut r = RecordReader::new();
        let mut max = records(&[&vec![7; MAX_CLIENT_RECORD]], false);
        assert_eq!(r.unwrap_in_place(&mut max), Ok(MAX_CLIENT_RECORD));
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_payload(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..6),
            cuts in prop::collection::vec(1..700usize, 1..30),
            ccs in any::<bool>(),
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let wire = records(&refs, ccs);
            let expected: Vec<u8> = payloads.concat();
            let mut reader = RecordReader::new();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let n = (*cut).min(rest.len());
                let mut chunk = rest[..n].to_vec();
                let m = reader.unwrap_in_place(&mut chunk).unwrap();
                got.extend_from_slice(&chunk[..m]);
                rest = &rest[n..];
            }
            prop_assert_eq!(got, expected);
            prop_assert!(reader.at_boundary());
        }
    }
}
