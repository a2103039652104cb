//! The header in front of every datagram relayed through a UDP association.

use bytes::BufMut;

use super::{Address, Error, address_len, read_address, write_address};

/// RSV(2) · FRAG · ATYP · DST.ADDR · DST.PORT, then the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpHeader {
    /// Fragment number; zero means a whole datagram. Relays may drop anything else.
    pub frag: u8,
    /// The destination (client → relay) or the source (relay → client).
    pub address: Address,
}

impl UdpHeader {
    /// An unfragmented header for `address`.
    pub fn new(address: Address) -> Self {
        Self { frag: 0, address }
    }

    /// Parses the header at the start of a datagram. The payload starts at the returned
    /// length. `Ok(None)` means the datagram is too short to hold a header.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let [_, _, frag, ..] = *buf else {
            return Ok(None);
        };
        let Some((address, len)) = read_address(&buf[3..])? else {
            return Ok(None);
        };
        Ok(Some((Self { frag, address }, 3 + len)))
    }

    /// Bytes on the wire, payload excluded.
    pub fn serialized_len(&self) -> usize {
        3 + address_len(&self.address)
    }

    /// Appends the header.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(0);
        buf.put_u8(self.frag);
        write_address(&self.address, buf);
    }
}
