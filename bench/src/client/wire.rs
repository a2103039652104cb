//! The byte layer of a client connection: the obfuscated2 cipher, and for fake TLS the
//! ApplicationData records around it. Frames are the business of [`super::framed`].

use std::time::Duration;

use mtgate_proto::mtproto::faketls::record::{
    CHANGE_CIPHER_SPEC_RECORD, MAX_SERVER_RECORD, RecordReader, application_data_header,
};
use mtgate_proto::mtproto::obfs2::{CtrStream, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::error::{ClientError, Stage};

/// How the writer frames its bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// Plain obfuscated2: the ciphertext goes straight to the socket.
    None,
    /// Fake TLS: ApplicationData records of at most 16384 bytes.
    Tls {
        /// Send a ChangeCipherSpec record before the first data record, as tdlib does
        /// (TelethonFakeTLS does not).
        change_cipher_spec: bool,
    },
}

/// Encrypts and sends. The obfuscated2 header goes out with the first write, in the same
/// segment (and, with fake TLS, the same record) as the first data, as Telegram clients do.
#[derive(Debug)]
pub struct WireWriter<W> {
    io: W,
    encrypt: CtrStream,
    wrapping: Wrapping,
    header: Option<[u8; HEADER_LEN]>,
    out: Vec<u8>,
    limit: Duration,
}

impl<W: AsyncWrite + Unpin> WireWriter<W> {
    pub(crate) fn new(
        io: W,
        encrypt: CtrStream,
        header: [u8; HEADER_LEN],
        wrapping: Wrapping,
        limit: Duration,
    ) -> Self {
        Self {
            io,
            encrypt,
            wrapping,
            header: Some(header),
            out: Vec::new(),
            limit,
        }
    }

    /// Encrypts `plaintext` (wrapping it in records for fake TLS) and writes it all.
    pub async fn write(&mut self, plaintext: &[u8]) -> Result<(), ClientError> {
        self.out.clear();
        let header = self.header.take();
        let header: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
        match self.wrapping {
            Wrapping::None => {
                self.out.extend_from_slice(header);
                let start = self.out.len();
                self.out.extend_from_slice(plaintext);
                self.encrypt.apply(&mut self.out[start..]);
            }
            Wrapping::Tls { change_cipher_spec } => {
                if change_cipher_spec && !header.is_empty() {
                    self.out.extend_from_slice(&CHANGE_CIPHER_SPEC_RECORD);
                }
                wrap_records(&mut self.out, header, plaintext, &mut self.encrypt);
            }
        }
        timeout(self.limit, self.io.write_all(&self.out))
            .await
            .map_err(|_| ClientError::Timeout(Stage::Write))?
            .map_err(ClientError::io(Stage::Write))?;
        if self.out.capacity() > 4 * MAX_SERVER_RECORD {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Sends the header now if no data has been written yet.
    pub async fn flush_header(&mut self) -> Result<(), ClientError> {
        if self.header.is_some() {
            self.write(&[]).await?;
        }
        Ok(())
    }

    /// Closes the sending direction.
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        timeout(self.limit, self.io.shutdown())
            .await
            .map_err(|_| ClientError::Timeout(Stage::Write))?
            .map_err(ClientError::io(Stage::Write))
    }

    /// The socket half.
    pub fn get_ref(&self) -> &W {
        &self.io
    }
}

/// Appends `header` (already encrypted) then `plaintext` (encrypted here) to `out` in
/// ApplicationData records of at most [`MAX_SERVER_RECORD`] bytes.
fn wrap_records(
    out: &mut Vec<u8>,
    mut header: &[u8],
    mut plaintext: &[u8],
    encrypt: &mut CtrStream,
) {
    while !header.is_empty() || !plaintext.is_empty() {
        let len = (header.len() + plaintext.len()).min(MAX_SERVER_RECORD);
        out.extend_from_slice(&application_data_header(len));
        let from_header = len.min(header.len());
        out.extend_from_slice(&header[..from_header]);
        header = &header[from_header..];
        let start = out.len();
        out.extend_from_slice(&plaintext[..len - from_header]);
        plaintext = &plaintext[len - from_header..];
        encrypt.apply(&mut out[start..]);
    }
}

/// Receives and decrypts, stripping records for fake TLS.
#[derive(Debug)]
pub struct WireReader<R> {
    io: R,
    decrypt: CtrStream,
    records: Option<RecordReader>,
    /// Bytes read during the handshake beyond its end, handled before the socket.
    leftover: Vec<u8>,
    limit: Duration,
}

impl<R: AsyncRead + Unpin> WireReader<R> {
    pub(crate) fn new(
        io: R,
        decrypt: CtrStream,
        tls: bool,
        leftover: Vec<u8>,
        limit: Duration,
    ) -> Self {
        Self {
            io,
            decrypt,
            records: tls.then(RecordReader::new),
            leftover,
            limit,
        }
    }

    /// Reads some plaintext into `buf`; `Ok(0)` means the peer closed the connection.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ClientError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = if self.leftover.is_empty() {
                timeout(self.limit, self.io.read(buf))
                    .await
                    .map_err(|_| ClientError::Timeout(Stage::Read))?
                    .map_err(ClientError::io(Stage::Read))?
            } else {
                let n = self.leftover.len().min(buf.len());
                buf[..n].copy_from_slice(&self.leftover[..n]);
                self.leftover.drain(..n);
                n
            };
            if n == 0 {
                return Ok(0);
            }
            let n = match &mut self.records {
                Some(records) => records.unwrap_in_place(&mut buf[..n])?,
                None => n,
            };
            if n > 0 {
                self.decrypt.apply(&mut buf[..n]);
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtgate_proto::mtproto::obfs2::StreamKey;

    fn cipher() -> CtrStream {
        StreamKey {
            key: [3; 32],
            iv: [4; 16],
        }
        .cipher()
    }

    #[test]
    fn records_carry_header_then_ciphertext_and_never_exceed_the_cap() {
        let header = [0xab; HEADER_LEN];
        let plaintext: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        wrap_records(&mut out, &header, &plaintext, &mut cipher());

        let mut reader = RecordReader::new();
        let mut stream = out.clone();
        let n = reader.unwrap_in_place(&mut stream).unwrap();
        assert_eq!(n, HEADER_LEN + plaintext.len());
        assert_eq!(&stream[..HEADER_LEN], &header);
        let mut body = stream[HEADER_LEN..n].to_vec();
        cipher().apply(&mut body);
        assert_eq!(body, plaintext);

        // 40064 bytes: two full records and one of 7296.
        let lens: Vec<usize> = [0, 5 + 16_384, 2 * (5 + 16_384)]
            .iter()
            .map(|&at| usize::from(u16::from_be_bytes([out[at + 3], out[at + 4]])))
            .collect();
        assert_eq!(lens, [16_384, 16_384, 7_296]);
    }
}
