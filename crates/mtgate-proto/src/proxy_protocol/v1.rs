//! Version 1: one line of text.

use std::net::{IpAddr, SocketAddr};

use bytes::BufMut;

use super::{Error, Header, MAX_V1_LEN};

pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= MAX_V1_LEN {
            Err(Error::BadV1)
        } else {
            Ok(None)
        };
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(Error::BadV1),
    }
    let line = std::str::from_utf8(&buf[..cr]).map_err(|_| Error::BadV1)?;
    let mut words = line.split(' ');
    let _proxy = words.next();
    let header = match words.next() {
        // Whatever follows UNKNOWN is to be ignored.
        Some("UNKNOWN") => Header::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = || words.next().ok_or(Error::BadV1);
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            if words.next().is_some() {
                return Err(Error::BadV1);
            }
            let ip = |text: &str| -> Result<IpAddr, Error> {
                let ip: IpAddr = text.parse().map_err(|_| Error::BadV1)?;
                match (family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Error::BadV1),
                }
            };
            Header::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(Error::BadV1),
    };
    Ok(Some((header, cr + 2)))
}

/// A port as the specification writes it: decimal, no sign, no leading zero.
fn port(text: &str) -> Result<u16, Error> {
    let canonical = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(Error::BadV1);
    }
    text.parse().map_err(|_| Error::BadV1)
}

pub(super) fn write<B: BufMut>(header: &Header, buf: &mut B) {
    let line = match header {
        Header::Proxied {
            source,
            destination,
        } if source.is_ipv4() == destination.is_ipv4() => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
        }
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    };
    buf.put_slice(line.as_bytes());
}
