use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn proxied(source: &str, destination: &str) -> Header {
    Header::Proxied {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

#[test]
fn v1_tcp4_and_tcp6_with_the_payload_after() {
    let text = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
    assert_eq!(
        Header::parse(text),
        Ok(Some((proxied("192.0.2.1:56324", "198.51.100.2:443"), 45)))
    );
    let text = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
    assert_eq!(
        Header::parse(text),
        Ok(Some((
            proxied("[2001:db8::1]:1", "[2001:db8::2]:65535"),
            text.len()
        )))
    );
    assert_eq!(
        Header::parse(b"PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n"),
        Ok(Some((Header::Local, 49)))
    );
    assert_eq!(
        Header::parse(b"PROXY UNKNOWN\r\n"),
        Ok(Some((Header::Local, 15)))
    );
}

#[test]
fn v1_needs_more_bytes_until_crlf() {
    let text = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    for cut in 0..text.len() {
        assert_eq!(Header::parse(&text[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn v1_refuses_malformed_lines() {
    for bad in [
        &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 9\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX",
    ] {
        assert_eq!(
            Header::parse(bad),
            Err(Error::BadV1),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b"PROXY ".as_slice(), &[b'A'; 120]].concat();
    assert_eq!(Header::parse(&long), Err(Error::BadV1));
}

#[test]
fn v2_byte_exact_ipv4() {
    let mut bytes = V2_SIGNATURE.to_vec();
    bytes.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    bytes.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb]);
    bytes.extend_from_slice(b"payload");
    assert_eq!(
        Header::parse(&bytes),
        Ok(Some((proxied("192.0.2.1:56324", "198.51.100.2:443"), 28)))
    );
    let mut written = Vec::new();
    proxied("192.0.2.1:56324", "198.51.100.2:443").write_v2(&mut written);
    assert_eq!(written, bytes[..28]);
}

#[test]
fn v2_skips_tlvs_and_honours_local() {
    let mut bytes = V2_SIGNATURE.to_vec();
    // PROXY, TCP6, 36 address bytes + a 7-byte TLV.
    bytes.extend_from_slice(&[0x21, 0x21, 0x00, 36 + 7]);
    let src: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&[0, 80, 1, 187]);
    bytes.extend_from_slice(&[0x02, 0x00, 0x04, b'h', b'o', b's', b't']);
    assert_eq!(
        Header::parse(&bytes),
        Ok(Some((
            proxied("[2001:db8::1]:80", "[2001:db8::2]:443"),
            bytes.len()
        )))
    );
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(Header::parse(&local), Ok(Some((Header::Local, 16))));
}

#[test]
fn v2_refuses_bad_versions_commands_families_and_sizes() {
    let with = |ver_cmd: u8, fam: u8, len: u16| {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend_from_slice(&[ver_cmd, fam]);
        b.extend_from_slice(&len.to_be_bytes());
        b.resize(16 + usize::from(len), 0);
        b
    };
    assert_eq!(Header::parse(&with(0x11, 0x11, 12)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x22, 0x11, 12)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x21, 0x41, 12)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x21, 0x13, 12)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x21, 0x11, 11)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x21, 0x21, 35)), Err(Error::BadV2));
    assert_eq!(Header::parse(&with(0x21, 0x11, 2000)), Err(Error::TooLarge));
    // Partial: the fixed part, then the announced length.
    let full = with(0x21, 0x11, 12);
    for cut in 0..full.len() {
        assert_eq!(Header::parse(&full[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn other_protocols_are_not_headers() {
    assert_eq!(Header::parse(b"\x05\x01\x00"), Err(Error::Missing));
    assert_eq!(Header::parse(b"GET / HTTP/1.1\r\n"), Err(Error::Missing));
    assert_eq!(Header::parse(b"PROXZ"), Err(Error::Missing));
    assert_eq!(Header::parse(b"PRO"), Ok(None));
    assert_eq!(Header::parse(b"\r\n\r\n\0"), Ok(None));
}

fn socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<u16>()
        )
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
        (
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<u16>()
        )
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
    ]
}

proptest! {
    #[test]
    fn both_versions_round_trip((source, destination) in socket_pair(), tail in any::<Vec<u8>>()) {
        let header = Header::Proxied { source, destination };
        for v2 in [false, true] {
            let mut bytes = Vec::new();
            if v2 { header.write_v2(&mut bytes) } else { header.write_v1(&mut bytes) }
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(Header::parse(&bytes), Ok(Some((header, len))));
        }
    }

    #[test]
    fn never_panics(bytes in any::<Vec<u8>>()) {
        let _ = Header::parse(&bytes);
        let mut v1 = b"PROXY ".to_vec();
        v1.extend_from_slice(&bytes);
        let _ = Header::parse(&v1);
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&bytes);
        let _ = Header::parse(&v2);
    }
}
