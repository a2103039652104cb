use proptest::prelude::*;

use super::*;

fn encode(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    write(&mut buf);
    buf
}

/// Every strict prefix parses as "need more bytes"; the whole input parses with all of it consumed.
fn check_prefixes<T: std::fmt::Debug + PartialEq>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, Error>,
    expected: &T,
) {
    for cut in 0..bytes.len() {
        assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
    }
    let mut extended = bytes.to_vec();
    extended.extend_from_slice(b"tail");
    let (value, used) = parse(&extended).unwrap().unwrap();
    assert_eq!((&value, used), (expected, bytes.len()));
}

#[test]
fn greeting_bytes() {
    let greeting = Greeting::new(&[Method::NO_AUTH, Method::USER_PASS]);
    let bytes = encode(|b| greeting.write_to_buf(b));
    assert_eq!(bytes, [0x05, 0x02, 0x00, 0x02]);
    assert_eq!(greeting.serialized_len(), 4);
    check_prefixes(&bytes, Greeting::parse, &greeting);
    assert_eq!(Greeting::parse(&[0x05, 0x00]), Err(Error::NoMethods));
    assert_eq!(Greeting::parse(&[0x04]), Err(Error::Version(4)));
}

#[test]
fn method_selection_follows_server_preference_among_offered() {
    let greeting = Greeting::new(&[Method::NO_AUTH, Method::USER_PASS]);
    assert_eq!(greeting.select(&[Method::USER_PASS]), Method::USER_PASS);
    assert_eq!(greeting.select(&[Method::GSSAPI]), Method::NO_ACCEPTABLE);
    let selection = MethodSelection {
        method: Method::NO_ACCEPTABLE,
    };
    let bytes = encode(|b| selection.write_to_buf(b));
    assert_eq!(bytes, [0x05, 0xff]);
    check_prefixes(&bytes, MethodSelection::parse, &selection);
    assert_eq!(
        MethodSelection::parse(b"HTTP/1.1"),
        Err(Error::Version(b'H'))
    );
}

#[test]
fn user_pass_bytes() {
    let request = UserPassRequest {
        username: b"bob".to_vec(),
        password: b"s3".to_vec(),
    };
    let bytes = encode(|b| request.write_to_buf(b));
    assert_eq!(bytes, [0x01, 3, b'b', b'o', b'b', 2, b's', b'3']);
    assert_eq!(request.serialized_len(), bytes.len());
    check_prefixes(&bytes, UserPassRequest::parse, &request);
    assert_eq!(
        UserPassRequest::parse(&[1, 0, 1, b'x']),
        Err(Error::EmptyCredential)
    );
    assert_eq!(
        UserPassRequest::parse(&[1, 1, b'u', 0]),
        Err(Error::EmptyCredential)
    );
    assert_eq!(UserPassRequest::parse(&[5, 1]), Err(Error::AuthVersion(5)));
    assert!(
        !format!("{request:?}").contains("s3"),
        "Debug must not show the password"
    );

    let failure = encode(|b| UserPassResponse::FAILURE.write_to_buf(b));
    assert_eq!(failure, [0x01, 0x01]);
    let (parsed, _) = UserPassResponse::parse(&failure).unwrap().unwrap();
    assert!(!parsed.is_success());
    assert!(
        UserPassResponse::parse(&[0x05, 0x00])
            .unwrap()
            .unwrap()
            .0
            .is_success()
    );
}

#[test]
fn connect_request_bytes_for_each_address_type() {
    let cases: [(Address, Vec<u8>); 3] = [
        (
            "192.0.2.1:443".parse().unwrap(),
            vec![5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xbb],
        ),
        (
            "[2001:db8::1]:80".parse().unwrap(),
            [
                &[5u8, 1, 0, 4][..],
                &[0x20, 0x01, 0x0d, 0xb8],
                &[0; 10],
                &[0, 1],
                &[0, 80],
            ]
            .concat(),
        ),
        (
            "example.com:8080".parse().unwrap(),
            [&[5u8, 1, 0, 3, 11][..], b"example.com", &[0x1f, 0x90]].concat(),
        ),
    ];
    for (address, wire) in cases {
        let request = Request {
            command: Command::Connect,
            address,
        };
        let bytes = encode(|b| request.write_to_buf(b));
        assert_eq!(bytes, wire, "{request:?}");
        assert_eq!(request.serialized_len(), wire.len());
        check_prefixes(&bytes, Request::parse, &request);
    }
}

#[test]
fn request_errors_map_to_replies() {
    let unknown_cmd = [5, 9, 0, 1, 127, 0, 0, 1, 0, 80];
    let err = Request::parse(&unknown_cmd).unwrap_err();
    assert_eq!(
        (err, err.as_reply()),
        (Error::Command(9), Reply::CommandNotSupported)
    );
    // An unknown command is only reported once the request is complete.
    assert_eq!(Request::parse(&unknown_cmd[..6]), Ok(None));
    let err = Request::parse(&[5, 1, 0, 2, 0]).unwrap_err();
    assert_eq!(
        (err, err.as_reply()),
        (Error::AddressType(2), Reply::AddressTypeNotSupported)
    );
    assert_eq!(
        Request::parse(&[5, 1, 0, 3, 0, 0, 80]),
        Err(Error::EmptyDomain)
    );
    assert_eq!(
        Request::parse(&[5, 1, 0, 3, 1, 0xff, 0, 80]),
        Err(Error::DomainNotUtf8)
    );
    assert_eq!(Request::parse(&[4, 1]), Err(Error::Version(4)));
}

#[test]
fn reply_codes_round_trip_and_describe() {
    for byte in 0..=255u8 {
        assert_eq!(Reply::from_u8(byte).as_u8(), byte);
    }
    assert_eq!(Reply::from_u8(2), Reply::NotAllowed);
    assert_eq!(Reply::from_u8(6).description(), "TTL expired");
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(Reply::from_io_error(&refused), Reply::ConnectionRefused);
    let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
    assert_eq!(Reply::from_io_error(&timeout), Reply::TtlExpired);
}

#[test]
fn response_bytes() {
    let response = Response::new(Reply::Succeeded, "10.1.2.3:1080".parse().unwrap());
    let bytes = encode(|b| response.write_to_buf(b));
    assert_eq!(bytes, [5, 0, 0, 1, 10, 1, 2, 3, 0x04, 0x38]);
    check_prefixes(&bytes, Response::parse, &response);
    let failure = encode(|b| Response::failure(Reply::NotAllowed).write_to_buf(b));
    assert_eq!(failure, [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn udp_header_bytes() {
    let header = UdpHeader::new("[::1]:53".parse().unwrap());
    let bytes = encode(|b| header.write_to_buf(b));
    assert_eq!(bytes[..4], [0, 0, 0, 4]);
    assert_eq!(bytes.len(), 3 + 1 + 16 + 2);
    assert_eq!(bytes[bytes.len() - 2..], [0, 53]);
    check_prefixes(&bytes, UdpHeader::parse, &header);
    let fragment = [0, 0, 1, 1, 1, 2, 3, 4, 0, 9, b'x'];
    let (parsed, len) = UdpHeader::parse(&fragment).unwrap().unwrap();
    assert_eq!((parsed.frag, len), (1, 10));
}

fn arb_address() -> impl Strategy<Value = Address> {
    prop_oneof![
        (any::<std::net::IpAddr>(), any::<u16>())
            .prop_map(|(ip, port)| Address::Socket(std::net::SocketAddr::new(ip, port))),
        ("[a-z0-9.-]{1,255}", any::<u16>()).prop_map(|(n, p)| Address::Domain(n, p)),
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Connect),
        Just(Command::Bind),
        Just(Command::UdpAssociate)
    ]
}

proptest! {
    #[test]
    fn request_round_trips(command in arb_command(), address in arb_address()) {
        let request = Request { command, address };
        let bytes = encode(|b| request.write_to_buf(b));
        prop_assert_eq!(bytes.len(), request.serialized_len());
        prop_assert_eq!(Request::parse(&bytes), Ok(Some((request, bytes.len()))));
    }

    #[test]
    fn response_round_trips(reply in any::<u8>(), address in arb_address()) {
        let response = Response::new(Reply::from_u8(reply), address);
        let bytes = encode(|b| response.write_to_buf(b));
        prop_assert_eq!(Response::parse(&bytes), Ok(Some((response, bytes.len()))));
    }

    #[test]
    fn udp_header_round_trips(frag in any::<u8>(), address in arb_address()) {
        let header = UdpHeader { frag, address };
        let bytes = encode(|b| header.write_to_buf(b));
        prop_assert_eq!(UdpHeader::parse(&bytes), Ok(Some((header, bytes.len()))));
    }

    #[test]
    fn credentials_round_trip(
        username in proptest::collection::vec(any::<u8>(), 1..=255),
        password in proptest::collection::vec(any::<u8>(), 1..=255),
    ) {
        let request = UserPassRequest { username, password };
        let bytes = encode(|b| request.write_to_buf(b));
        prop_assert_eq!(UserPassRequest::parse(&bytes), Ok(Some((request, bytes.len()))));
    }

    #[test]
    fn greeting_round_trips(methods in proptest::collection::vec(any::<u8>(), 1..=255)) {
        let greeting = Greeting { methods: methods.into_iter().map(Method).collect() };
        let bytes = encode(|b| greeting.write_to_buf(b));
        prop_assert_eq!(Greeting::parse(&bytes), Ok(Some((greeting, bytes.len()))));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Greeting::parse(&bytes);
        let _ = MethodSelection::parse(&bytes);
        let _ = UserPassRequest::parse(&bytes);
        let _ = UserPassResponse::parse(&bytes);
        let _ = Request::parse(&bytes);
        let _ = Response::parse(&bytes);
        let _ = UdpHeader::parse(&bytes);
    }
}
