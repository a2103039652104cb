use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

fn encode(request: &Request) -> Vec<u8> {
    let mut buf = Vec::new();
    request.write_to_buf(&mut buf);
    buf
}

#[test]
fn socks4_connect_bytes() {
    let request = Request {
        command: Command::Connect,
        port: 80,
        host: Host::Ip(Ipv4Addr::new(192, 0, 2, 7)),
        user_id: b"fred".to_vec(),
    };
    let bytes = encode(&request);
    assert_eq!(
        bytes,
        [4, 1, 0, 80, 192, 0, 2, 7, b'f', b'r', b'e', b'd', 0]
    );
    assert_eq!(request.serialized_len(), bytes.len());
    for cut in 0..bytes.len() {
        assert_eq!(Request::parse(&bytes[..cut]), Ok(None));
    }
    assert_eq!(Request::parse(&bytes), Ok(Some((request, bytes.len()))));
}

#[test]
fn socks4a_carries_the_name_after_the_user_id() {
    let request = Request {
        command: Command::Connect,
        port: 443,
        host: Host::Domain("example.org".into()),
        user_id: Vec::new(),
    };
    let bytes = encode(&request);
    let expected = [&[4u8, 1, 1, 0xbb, 0, 0, 0, 1, 0][..], b"example.org", &[0]].concat();
    assert_eq!(bytes, expected);
    assert_eq!(Request::parse(&bytes), Ok(Some((request, bytes.len()))));
}

#[test]
fn request_errors() {
    assert_eq!(Request::parse(&[5]), Err(Error::Version(5)));
    assert_eq!(
        Request::parse(&[4, 3, 0, 0, 1, 1, 1, 1, 0]),
        Err(Error::Command(3))
    );
    let mut endless = vec![4, 1, 0, 80, 1, 2, 3, 4];
    endless.extend(std::iter::repeat_n(b'a', 256));
    assert_eq!(Request::parse(&endless), Err(Error::TooLong));
    assert_eq!(
        Request::parse(&[4, 1, 0, 80, 0, 0, 0, 1, 0, 0]),
        Err(Error::InvalidHost)
    );
}

#[test]
fn reply_bytes() {
    let reply = Reply {
        code: ReplyCode::Granted,
        port: 0x1234,
        ip: Ipv4Addr::new(10, 0, 0, 1),
    };
    let mut bytes = Vec::new();
    reply.write_to_buf(&mut bytes);
    assert_eq!(bytes, [0, 0x5a, 0x12, 0x34, 10, 0, 0, 1]);
    assert_eq!(Reply::parse(&bytes[..7]), Ok(None));
    assert_eq!(Reply::parse(&bytes), Ok(Some((reply, 8))));
    assert_eq!(Reply::parse(&[5, 0]), Err(Error::Version(5)));
    for byte in 0..=255u8 {
        assert_eq!(ReplyCode::from_u8(byte).as_u8(), byte);
    }
}

proptest! {
    #[test]
    fn request_round_trips(
        bind in any::<bool>(),
        port in any::<u16>(),
        ip in any::<[u8; 4]>(),
        name in proptest::option::of("[a-z0-9.-]{1,255}"),
        user_id in proptest::collection::vec(1u8..=255, 0..=255),
    ) {
        // 0.0.0.x with x != 0 is the SOCKS4a marker, not an address.
        prop_assume!(!(ip[..3] == [0, 0, 0] && ip[3] != 0));
        let host = match name {
            Some(name) => Host::Domain(name),
            None => Host::Ip(Ipv4Addr::from(ip)),
        };
        let command = if bind { Command::Bind } else { Command::Connect };
        let request = Request { command, port, host, user_id };
        let bytes = encode(&request);
        prop_assert_eq!(Request::parse(&bytes), Ok(Some((request, bytes.len()))));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Request::parse(&bytes);
        let _ = Reply::parse(&bytes);
    }
}
