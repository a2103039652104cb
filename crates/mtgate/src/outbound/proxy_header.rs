//! PROXY protocol headers sent to backends, so that they see the client's address. The wire
//! format is `mtgate_proto::proxy_protocol`'s; this module picks the addresses.

use std::net::{IpAddr, SocketAddr};

use mtgate_proto::proxy_protocol::Header;

use crate::config::pool::ProxyHeader;

/// The header announcing a TCP connection from `client` to `local` (the address the client
/// connected to). IPv4-mapped addresses (an IPv4 client on a dual-stack socket) count as
/// IPv4; a pair of different families is written as IPv6, so that v1 never says `UNKNOWN`.
pub fn encode(version: ProxyHeader, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(client, local);
    let header = Header::Proxied {
        source,
        destination,
    };
    let mut out = Vec::with_capacity(64);
    match version {
        ProxyHeader::V1 => header.write_v1(&mut out),
        ProxyHeader::V2 => header.write_v2(&mut out),
    }
    out
}

fn v6(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// Canonical addresses, in one family.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let a = SocketAddr::new(a.ip().to_canonical(), a.port());
    let b = SocketAddr::new(b.ip().to_canonical(), b.port());
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (
            SocketAddr::new(v6(a.ip()), a.port()),
            SocketAddr::new(v6(b.ip()), b.port()),
        )
    }
}

#[cfg(test)]
mod tests {
    use mtgate_proto::proxy_protocol::V2_SIGNATURE;

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_text_for_both_families() {
        let h = encode(
            ProxyHeader::V1,
            addr("192.0.2.1:5000"),
            addr("198.51.100.2:80"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\n");
        let h = encode(
            ProxyHeader::V1,
            addr("[2001:db8::1]:5000"),
            addr("[::1]:80"),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 ::1 5000 80\r\n");
        // A v4 client on a dual-stack socket comes as ::ffff:a.b.c.d; it is IPv4 really.
        let h = encode(
            ProxyHeader::V1,
            addr("[::ffff:192.0.2.1]:1"),
            addr("[::ffff:127.0.0.1]:2"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n");
        // Mixed families: both as IPv6, never UNKNOWN.
        let h = encode(ProxyHeader::V1, addr("192.0.2.1:1"), addr("[::1]:2"));
        assert_eq!(h, b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n");
    }

    #[test]
    fn v2_binary_layout() {
        let h = encode(
            ProxyHeader::V2,
            addr("192.0.2.1:5000"),
            addr("198.51.100.2:80"),
        );
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[20..24], &[198, 51, 100, 2]);
        assert_eq!(&h[24..], &[0x13, 0x88, 0, 80]);
        let h = encode(
            ProxyHeader::V2,
            addr("[2001:db8::1]:1"),
            addr("127.0.0.1:2"),
        );
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[48..], &[0, 1, 0, 2]);
        // What is written parses back.
        let (parsed, used) = Header::parse(&h).unwrap().unwrap();
        assert_eq!(used, h.len());
        assert_eq!(parsed.source(), Some(addr("[2001:db8::1]:1")));
    }
}
