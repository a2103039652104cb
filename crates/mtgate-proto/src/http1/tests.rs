use proptest::prelude::*;

use super::*;
use crate::address::Address;

fn bytes_of(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    write(&mut buf);
    buf
}

#[test]
fn connect_request_bytes() {
    let target: Address = "[2001:db8::2]:443".parse().unwrap();
    let head = RequestHead::connect(&target, Some((b"Aladdin", b"open sesame")));
    let bytes = bytes_of(|b| head.write_to_buf(b));
    assert_eq!(
        bytes,
        b"CONNECT [2001:db8::2]:443 HTTP/1.1\r\nHost: [2001:db8::2]:443\r\n\
          Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
    assert_eq!(head.serialized_len(), bytes.len());
    let (parsed, used) = RequestHead::parse(&bytes, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!((&parsed, used), (&head, bytes.len()));
    assert_eq!(parsed.connect_target().unwrap(), target);
    let creds = parse_basic(parsed.headers.get("proxy-authorization").unwrap()).unwrap();
    assert_eq!(
        (creds.username.as_slice(), creds.password.as_slice()),
        (&b"Aladdin"[..], &b"open sesame"[..])
    );
    assert!(
        !format!("{parsed:?}").contains("QWxh"),
        "Debug must hide credentials"
    );
}

#[test]
fn partial_heads_need_more_bytes() {
    let wire = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nHELLO";
    let limits = Limits::default();
    for cut in 0..wire.len() - 5 {
        assert_eq!(
            ResponseHead::parse(&wire[..cut], &limits),
            Ok(None),
            "cut {cut}"
        );
    }
    let (head, used) = ResponseHead::parse(wire, &limits).unwrap().unwrap();
    assert!(head.is_success());
    assert_eq!(
        &wire[used..],
        b"HELLO",
        "bytes after the head are left to the caller"
    );
}

#[test]
fn challenge_is_exposed_and_round_trips() {
    let head = ResponseHead::proxy_auth_required("my \"realm\"");
    let bytes = bytes_of(|b| head.write_to_buf(b));
    assert_eq!(
        bytes,
        b"HTTP/1.1 407 Proxy Authentication Required\r\n\
          Proxy-Authenticate: Basic realm=\"my \\\"realm\\\"\"\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(head.serialized_len(), bytes.len());
    let (parsed, _) = ResponseHead::parse(&bytes, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(parsed.status, 407);
    assert_eq!(
        parsed.proxy_authenticate(),
        Some("Basic realm=\"my \\\"realm\\\"\"")
    );
}

#[test]
fn caps_are_enforced() {
    let limits = Limits {
        max_head_len: 64,
        max_headers: 2,
    };
    let slow = [&b"HTTP/1.1 200 OK\r\nX-Slow: "[..], &[b'a'; 48]].concat();
    assert_eq!(
        ResponseHead::parse(&slow, &limits),
        Err(Error::TooLarge(64))
    );
    let many = b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(
        ResponseHead::parse(many, &limits),
        Err(Error::TooManyHeaders(2))
    );
    let err = RequestHead::parse(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", &limits).unwrap_err();
    assert_eq!(err.as_status(), 400);
    assert!(matches!(
        ResponseHead::parse(b"SSH-2.0-OpenSSH\r\n\r\n", &limits),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn basic_scheme_matches_any_case() {
    assert!(parse_basic(b"bAsIc dTpw").is_some());
    assert!(parse_basic(b"Bearer dTpw").is_none());
    assert!(parse_basic(b"Basic !!!").is_none());
    assert_eq!(basic_authorization(b"u", b"p"), "Basic dTpw");
}

#[test]
fn header_values_cannot_inject_fields() {
    let mut head = ResponseHead::new(200, "OK");
    head.headers.push("X-Test", "a\r\nInjected: yes");
    let bytes = bytes_of(|b| head.write_to_buf(b));
    let (parsed, _) = ResponseHead::parse(&bytes, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(parsed.headers.0.len(), 1);
}

proptest! {
    #[test]
    fn connect_round_trips(
        host in "[a-z][a-z0-9-]{0,30}(\\.[a-z0-9-]{1,20}){0,3}",
        port in any::<u16>(),
        user in proptest::collection::vec(any::<u8>(), 0..40),
        pass in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        prop_assume!(!user.contains(&b':'));
        let target = Address::from_host(&host, port).unwrap();
        let head = RequestHead::connect(&target, Some((&user, &pass)));
        let bytes = bytes_of(|b| head.write_to_buf(b));
        let (parsed, used) = RequestHead::parse(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(parsed.connect_target().unwrap(), target);
        let creds = parse_basic(parsed.headers.get("Proxy-Authorization").unwrap()).unwrap();
        prop_assert_eq!((creds.username, creds.password), (user, pass));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let limits = Limits { max_head_len: 256, max_headers: 8 };
        let _ = RequestHead::parse(&bytes, &limits);
        let _ = ResponseHead::parse(&bytes, &limits);
    }
}
