//! ATYP · ADDR · PORT, shared by requests, replies and UDP headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

use super::consts::{ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6};
use super::{Address, Error};

/// Bytes `address` takes on the wire, ATYP and port included.
pub fn address_len(address: &Address) -> usize {
    match address {
        Address::Socket(SocketAddr::V4(_)) => 1 + 4 + 2,
        Address::Socket(SocketAddr::V6(_)) => 1 + 16 + 2,
        Address::Domain(name, _) => 1 + 1 + name.len().min(255) + 2,
    }
}

/// Writes ATYP · ADDR · PORT. Domain names longer than 255 bytes cannot be represented and are
/// cut at 255 bytes; [`Address::from_host`] never builds such a name.
pub fn write_address<B: BufMut>(address: &Address, buf: &mut B) {
    match address {
        Address::Socket(SocketAddr::V4(addr)) => {
            buf.put_u8(ATYP_IPV4);
            buf.put_slice(&addr.ip().octets());
            buf.put_u16(addr.port());
        }
        Address::Socket(SocketAddr::V6(addr)) => {
            buf.put_u8(ATYP_IPV6);
            buf.put_slice(&addr.ip().octets());
            buf.put_u16(addr.port());
        }
        Address::Domain(name, port) => {
            debug_assert!(name.len() <= 255, "domain longer than 255 bytes");
            let name = &name.as_bytes()[..name.len().min(255)];
            buf.put_u8(ATYP_DOMAIN);
            buf.put_u8(name.len() as u8);
            buf.put_slice(name);
            buf.put_u16(*port);
        }
    }
}

/// Reads ATYP · ADDR · PORT from the start of `buf`.
pub fn read_address(buf: &[u8]) -> Result<Option<(Address, usize)>, Error> {
    let Some(&atyp) = buf.first() else {
        return Ok(None);
    };
    let (ip_len, name_len) = match atyp {
        ATYP_IPV4 => (4, 0),
        ATYP_IPV6 => (16, 0),
        ATYP_DOMAIN => match buf.get(1) {
            None => return Ok(None),
            Some(0) => return Err(Error::EmptyDomain),
            Some(&n) => (0, usize::from(n)),
        },
        other => return Err(Error::AddressType(other)),
    };
    let body = if atyp == ATYP_DOMAIN {
        1 + name_len
    } else {
        ip_len
    };
    let total = 1 + body + 2;
    if buf.len() < total {
        return Ok(None);
    }
    let port = u16::from_be_bytes([buf[total - 2], buf[total - 1]]);
    let address = match atyp {
        ATYP_IPV4 => {
            let octets: [u8; 4] = buf[1..5].try_into().expect("length checked");
            Address::Socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(octets)), port))
        }
        ATYP_IPV6 => {
            let octets: [u8; 16] = buf[1..17].try_into().expect("length checked");
            Address::Socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => {
            let name =
                std::str::from_utf8(&buf[2..2 + name_len]).map_err(|_| Error::DomainNotUtf8)?;
            Address::Domain(name.to_owned(), port)
        }
    };
    Ok(Some((address, total)))
}
