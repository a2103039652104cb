//! The two directions of an MTProto session.
//!
//! client → DC: strip TLS records (fake TLS), decrypt with the client's key, follow frame
//! boundaries to enforce the size cap, encrypt with the DC's key.
//!
//! DC → client: decrypt with the DC's key and encrypt with the client's (not needed in fast
//! mode, where the DC already encrypts with the client's key), and wrap in TLS records for
//! fake-TLS clients. Records are built without copying: the socket is read with `readv` into
//! 16 KiB segments separated by 5-byte gaps, and the record headers are written into the gaps.

use std::io::IoSliceMut;

use mtgate_proto::mtproto::faketls::record::{self, MAX_SERVER_RECORD, RecordReader};
use mtgate_proto::mtproto::obfs2::CtrStream;
use mtgate_proto::mtproto::transport::{FrameError, FrameScanner};
use tokio::net::TcpStream;

use crate::relay::filter::{Filter, ReadOutcome, RelayError, try_read};

/// client → DC.
#[derive(Debug)]
pub struct ClientToDc {
    /// TLS record state (fake TLS only).
    pub records: Option<RecordReader>,
    /// Client's stream.
    pub decrypt: CtrStream,
    /// Frame boundaries.
    pub frames: FrameScanner,
    /// DC's stream.
    pub encrypt: CtrStream,
}

impl Filter for ClientToDc {
    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
        let mut n = match try_read(src, buf)? {
            ReadOutcome::Data(n) => n,
            other => return Ok(other),
        };
        if let Some(records) = &mut self.records {
            n = records
                .unwrap_in_place(&mut buf[..n])
                .map_err(|_| RelayError::Protocol("bad_tls_record"))?;
        }
        let data = &mut buf[..n];
        self.decrypt.apply(data);
        self.frames.scan(data).map_err(|e| {
            RelayError::Protocol(match e {
                FrameError::TooLarge { .. } => "frame_too_large",
                _ => "bad_frame",
            })
        })?;
        self.encrypt.apply(data);
        Ok(ReadOutcome::Data(n))
    }
}

/// DC → client.
#[derive(Debug)]
pub struct DcToClient {
    /// DC's stream and client's stream; `None` in fast mode (boxed: an idle fast-mode
    /// session then spends a pointer on it, not two cipher states).
    pub recrypt: Option<Box<(CtrStream, CtrStream)>>,
    /// Wrap in TLS records.
    pub tls: bool,
}

const STRIDE: usize = record::HEADER_LEN + MAX_SERVER_RECORD;
const MAX_SEGMENTS: usize = 16;

impl Filter for DcToClient {
    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
        if !self.tls {
            let outcome = try_read(src, buf)?;
            if let (ReadOutcome::Data(n), Some(ciphers)) = (outcome, &mut self.recrypt) {
                let (dc, client) = &mut **ciphers;
                dc.apply(&mut buf[..n]);
                client.apply(&mut buf[..n]);
            }
            return Ok(outcome);
        }
        let segments = (buf.len() / STRIDE).clamp(1, MAX_SEGMENTS);
        let n = {
            let mut slices: Vec<IoSliceMut<'_>> = buf
                .chunks_mut(STRIDE)
                .take(segments)
                .map(|chunk| IoSliceMut::new(&mut chunk[record::HEADER_LEN..]))
                .collect();
            match src.try_read_vectored(&mut slices) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut left = n;
        let mut out = 0;
        for chunk in buf.chunks_mut(STRIDE) {
            if left == 0 {
                break;
            }
            let len = left.min(chunk.len() - record::HEADER_LEN);
            chunk[..record::HEADER_LEN].copy_from_slice(&record::application_data_header(len));
            if let Some(ciphers) = &mut self.recrypt {
                let (dc, client) = &mut **ciphers;
                let payload = &mut chunk[record::HEADER_LEN..record::HEADER_LEN + len];
                dc.apply(payload);
                client.apply(payload);
            }
            left -= len;
            out += record::HEADER_LEN + len;
        }
        Ok(ReadOutcome::Data(out))
    }
}
