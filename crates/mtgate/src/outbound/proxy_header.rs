//! PROXY protocol headers sent to backends, so that they see the client's address (HAProxy's
//! specification, versions 1 and 2).

use std::net::{IpAddr, SocketAddr};

use crate::config::pool::ProxyHeader;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header announcing a TCP connection from `client` to `local` (the address the client
/// connected to). Both addresses are put in one family: IPv4 when both are IPv4 (or
/// IPv4-mapped), IPv6 otherwise.
pub fn encode(version: ProxyHeader, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(client, local);
    match version {
        ProxyHeader::V1 => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        ProxyHeader::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            // Version 2, command PROXY.
            out.push(0x21);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
            out
        }
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
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
            SocketAddr::new(IpAddr::V6(v6(a.ip())), a.port()),
            SocketAddr::new(IpAddr::V6(v6(b.ip())), b.port()),
        )
    }
}

#[cfg(test)]
mod tests {
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
    }
}
