//! Version 2: a binary header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

use super::{Error, Header, MAX_V2_LEN, V2_SIGNATURE};

#[rustfmt::skip]
mod consts {
    pub(super) const VERSION_2:     u8 = 0x20;
    pub(super) const CMD_LOCAL:     u8 = 0x00;
    pub(super) const CMD_PROXY:     u8 = 0x01;
    pub(super) const AF_UNSPEC:     u8 = 0x00;
    pub(super) const AF_INET:       u8 = 0x10;
    pub(super) const AF_INET6:      u8 = 0x20;
    pub(super) const AF_UNIX:       u8 = 0x30;
    pub(super) const TRANSPORT_UNSPEC: u8 = 0x00;
    pub(super) const STREAM:        u8 = 0x01;
    pub(super) const DGRAM:         u8 = 0x02;
}
use consts::*;

pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(None);
    };
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if ver_cmd & 0xf0 != VERSION_2 {
        return Err(Error::BadV2);
    }
    let total = 16 + len;
    if total > MAX_V2_LEN {
        return Err(Error::TooLarge);
    }
    let Some(body) = buf.get(16..total) else {
        return Ok(None);
    };
    let (family, transport) = (fam & 0xf0, fam & 0x0f);
    if !matches!(transport, TRANSPORT_UNSPEC | STREAM | DGRAM) {
        return Err(Error::BadV2);
    }
    let header = match ver_cmd & 0x0f {
        // LOCAL: the addresses, if any, are to be ignored.
        CMD_LOCAL => Header::Local,
        CMD_PROXY => match family {
            AF_INET => {
                let b = body.get(..12).ok_or(Error::BadV2)?;
                let ip =
                    |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
                Header::Proxied {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([b[8], b[9]])),
                    destination: SocketAddr::new(ip(4), u16::from_be_bytes([b[10], b[11]])),
                }
            }
            AF_INET6 => {
                let b = body.get(..36).ok_or(Error::BadV2)?;
                let ip = |at: usize| {
                    let octets: [u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
                    IpAddr::V6(Ipv6Addr::from(octets))
                };
                Header::Proxied {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([b[32], b[33]])),
                    destination: SocketAddr::new(ip(16), u16::from_be_bytes([b[34], b[35]])),
                }
            }
            AF_UNSPEC | AF_UNIX => Header::Local,
            _ => return Err(Error::BadV2),
        },
        _ => return Err(Error::BadV2),
    };
    Ok(Some((header, total)))
}

pub(super) fn write<B: BufMut>(header: &Header, buf: &mut B) {
    buf.put_slice(&V2_SIGNATURE);
    match header {
        Header::Local => {
            buf.put_u8(VERSION_2 | CMD_LOCAL);
            buf.put_u8(AF_UNSPEC | TRANSPORT_UNSPEC);
            buf.put_u16(0);
        }
        Header::Proxied {
            source,
            destination,
        } => {
            buf.put_u8(VERSION_2 | CMD_PROXY);
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    buf.put_u8(AF_INET | STREAM);
                    buf.put_u16(12);
                    buf.put_slice(&s.octets());
                    buf.put_slice(&d.octets());
                }
                (s, d) => {
                    let v6 = |ip: IpAddr| match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    buf.put_u8(AF_INET6 | STREAM);
                    buf.put_u16(36);
                    buf.put_slice(&v6(s).octets());
                    buf.put_slice(&v6(d).octets());
                }
            }
            buf.put_u16(source.port());
            buf.put_u16(destination.port());
        }
    }
}
