//! Length-prefixed packets over any stream: a 4-byte big-endian length, then the payload
//! (PyRoxi's `send_packet`/`receive_packet` wire format), with a size cap.
//!
//! Use [`LengthPrefixed`] with `tokio_util::codec::Framed` for a `Stream`/`Sink` of packets,
//! or [`send_packet`]/[`recv_packet`] for one packet at a time.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// The default cap on a packet's payload: 10 MiB.
pub const DEFAULT_MAX_PACKET: usize = 10 * 1024 * 1024;

const PREFIX: usize = 4;

/// Why a packet could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// A packet (announced or about to be sent) is larger than the cap. The stream is no
    /// longer in sync after a received oversize prefix; close it.
    #[error("packet of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The packet's length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The stream ended inside a packet.
    #[error("stream ended inside a packet ({missing} bytes missing)")]
    Truncated {
        /// Bytes still expected.
        missing: usize,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A `tokio_util` codec for length-prefixed packets.
#[derive(Debug, Clone, Copy)]
pub struct LengthPrefixed {
    max: usize,
}

impl Default for LengthPrefixed {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET)
    }
}

impl LengthPrefixed {
    /// A codec accepting payloads up to `max` bytes (at most `u32::MAX`).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.min(u32::MAX as usize),
        }
    }

    /// The cap.
    pub fn max_len(&self) -> usize {
        self.max
    }
}

impl Decoder for LengthPrefixed {
    type Item = BytesMut;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
        let Some(prefix) = src.get(..PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > self.max {
            return Err(FramingError::TooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        if src.len() < PREFIX + len {
            src.reserve(PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(PREFIX);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
        match self.decode(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty() => Ok(None),
            None => {
                let wanted = match src.get(..PREFIX) {
                    Some(p) => PREFIX + u32::from_be_bytes(p.try_into().expect("4 bytes")) as usize,
                    None => PREFIX,
                };
                Err(FramingError::Truncated {
                    missing: wanted - src.len(),
                })
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LengthPrefixed {
    type Error = FramingError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FramingError> {
        let payload = item.as_ref();
        if payload.len() > self.max {
            return Err(FramingError::TooLarge {
                len: payload.len() as u64,
                max: self.max,
            });
        }
        dst.reserve(PREFIX + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        Ok(())
    }
}

/// Writes one packet (prefix and payload) and flushes.
pub async fn send_packet<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
    max: usize,
) -> Result<(), FramingError> {
    if payload.len() > max.min(u32::MAX as usize) {
        return Err(FramingError::TooLarge {
            len: payload.len() as u64,
            max,
        });
    }
    writer
        .write_all(&(payload.len() as u32).to_be_bytes())
        .await?;
    writer.write_all(payload).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one packet. `Ok(None)` means the stream ended cleanly before a new packet.
pub async fn recv_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FramingError> {
    let mut prefix = [0u8; PREFIX];
    let mut have = 0;
    while have < PREFIX {
        let n = reader.read(&mut prefix[have..]).await?;
        if n == 0 {
            return match have {
                0 => Ok(None),
                _ => Err(FramingError::Truncated {
                    missing: PREFIX - have,
                }),
            };
        }
        have += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FramingError::TooLarge {
            len: len as u64,
            max,
        });
    }
    let mut payload = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = reader.read(&mut payload[filled..]).await?;
        if n == 0 {
            return Err(FramingError::Truncated {
                missing: len - filled,
            });
        }
        filled += n;
    }
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn wire_format_is_big_endian_length_then_payload() {
        let mut codec = LengthPrefixed::default();
        let mut buf = BytesMut::new();
        codec.encode(b"abc", &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x00\x00\x03abc");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_is_refused_both_ways() {
        let mut codec = LengthPrefixed::new(4);
        let mut buf = BytesMut::new();
        let err = codec.encode(b"hello", &mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "packet of 5 bytes exceeds the maximum of 4 bytes"
        );
        let mut incoming = BytesMut::from(&b"\x00\xa0\x00\x00"[..]);
        assert!(matches!(
            codec.decode(&mut incoming),
            Err(FramingError::TooLarge {
                len: 0xa0_0000,
                max: 4
            })
        ));
        assert_eq!(LengthPrefixed::default().max_len(), 10 * 1024 * 1024);
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut codec = LengthPrefixed::default();
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x05ab"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FramingError::Truncated { missing: 3 })
        ));
    }

    #[tokio::test]
    async fn packets_cross_a_stream() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for packet in [&b""[..], b"one", &[7u8; 1000]] {
                send_packet(&mut a, packet, DEFAULT_MAX_PACKET)
                    .await
                    .unwrap();
            }
        });
        assert_eq!(recv_packet(&mut b, 2000).await.unwrap().unwrap(), b"");
        assert_eq!(recv_packet(&mut b, 2000).await.unwrap().unwrap(), b"one");
        assert_eq!(
            recv_packet(&mut b, 2000).await.unwrap().unwrap(),
            vec![7u8; 1000]
        );
        writer.await.unwrap();
        assert!(recv_packet(&mut b, 2000).await.unwrap().is_none());
    }

    proptest! {
        #[test]
        fn codec_round_trips_any_split(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            chunk in 1usize..50,
        ) {
            let mut codec = LengthPrefixed::new(300);
            let mut wire = BytesMut::new();
            for p in &packets {
                codec.encode(p, &mut wire).unwrap();
            }
            let mut received = Vec::new();
            let mut buf = BytesMut::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(p) = codec.decode(&mut buf).unwrap() {
                    received.push(p.to_vec());
                }
            }
            prop_assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            prop_assert_eq!(received, packets);
        }
    }
}
