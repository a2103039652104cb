use super::*;

fn limits() -> Limits {
    Limits::default()
}

const TELETHON: &[u8] = b"POST /api HTTP/1.1\r\nHost: 149.154.167.51:80\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nConnection: keep-alive\r\n\
    Keep-Alive: timeout=100000, max=10000000\r\nContent-Length: 8\r\n\r\n";

#[test]
fn a_telethon_query_parses_only_once_its_body_is_there() {
    let mut buf = TELETHON.to_vec();
    buf.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    for n in 0..buf.len() {
        assert_eq!(parse(&buf[..n], &limits()), Ok(None), "{n} bytes");
    }
    buf.extend_from_slice(&[8, b'P', b'O']);
    let q = parse(&buf, &limits()).unwrap().unwrap();
    assert_eq!(q.method, Method::Post);
    assert_eq!(q.body, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(q.consumed, TELETHON.len() + 8);
    assert!(q.keep_alive && !q.cors);
    assert!(q.origin.is_empty() && q.referer.is_empty() && q.user_agent.is_empty());
}

#[test]
fn headers_for_the_middle_proxy_are_taken_and_cut() {
    let long = "u".repeat(2000);
    let text = format!(
        "POST /apiw?x=1 HTTP/1.0\r\nOrigin: https://web.telegram.org\r\nreferer: r\r\n\
         User-Agent: {long}\r\nContent-Length: 4\r\n\r\nabcd"
    );
    let q = parse(text.as_bytes(), &limits()).unwrap().unwrap();
    assert!(q.cors);
    assert!(!q.keep_alive, "HTTP/1.0 without keep-alive closes");
    assert_eq!(q.origin, b"https://web.telegram.org");
    assert_eq!(q.referer, b"r");
    assert_eq!(q.user_agent.len(), MAX_INFO_VALUE);
    let q = parse(
        b"POST /api HTTP/1.1\r\nConnection: Close\r\nContent-Length: 4\r\n\r\nabcd",
        &limits(),
    )
    .unwrap()
    .unwrap();
    assert!(!q.keep_alive);
}

#[test]
fn options_is_a_preflight() {
    let q = parse(b"OPTIONS /apiw HTTP/1.1\r\nHost: x\r\n\r\n", &limits())
        .unwrap()
        .unwrap();
    assert_eq!(q.method, Method::Options);
    assert!(q.cors && q.keep_alive && q.body.is_empty());
}

#[test]
fn refusals_carry_the_official_statuses() {
    let cases: [(&[u8], u16); 9] = [
        (b"GET /api HTTP/1.1\r\n\r\n", 501),
        (b"POST /api HTTP/1.1\r\n\r\n", 501),
        (b"POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 501),
        (
            b"POST /api HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            501,
        ),
        (
            b"POST /api HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n",
            413,
        ),
        (
            b"POST /api/0123456789 HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
            414,
        ),
        (b"POST /index HTTP/1.1\r\nContent-Length: 4\r\n\r\n", 404),
        (b"POST /api HTTP/1.1\r\nContent-Length: 6\r\n\r\n", 404),
        (b"POST /api HTTP/1.1\r\nContent-Length: 4x\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        let e = parse(request, &limits()).unwrap_err();
        assert_eq!(e.status(), status, "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(
        parse(b"\x16\x03\x01\x02\x00", &limits())
            .unwrap_err()
            .status(),
        400
    );
    let huge = format!("POST /api HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(parse(huge.as_bytes(), &limits()).unwrap_err().status(), 431);
    assert_eq!(MAX_BODY, 1_044_480);
}

#[test]
fn detection_needs_the_method_and_path() {
    assert_eq!(is_api_request(b"POS"), None);
    assert_eq!(is_api_request(b"POST /ap"), None);
    assert_eq!(is_api_request(b"POST /api HTTP/1.1"), Some(true));
    assert_eq!(is_api_request(b"OPTIONS /apiw"), Some(true));
    assert_eq!(is_api_request(b"OPTI"), None);
    assert_eq!(is_api_request(b"POST / HTTP/1.1"), Some(false));
    assert_eq!(is_api_request(b"GET /api"), Some(false));
    assert_eq!(is_api_request(&[0xef, 0, 0, 0]), Some(false));
}

#[test]
fn answers_are_byte_exact() {
    let mut out = Vec::new();
    write_answer_head(8, true, false, &mut out);
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-type: application/octet-stream\r\n\
          Pragma: no-cache\r\nCache-control: no-store\r\nContent-length: 8\r\n\r\n"
    );
    out.clear();
    write_answer_head(0, false, true, &mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nConnection: close\r\n"));
    assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
    assert!(text.ends_with("Access-Control-Max-Age: 1728000\r\nContent-length: 0\r\n\r\n"));
    out.clear();
    write_error(413, &mut out);
    assert_eq!(
        out,
        b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-type: text/plain\r\n\
          Content-length: 0\r\n\r\n"
    );
    out.clear();
    write_options_answer(true, true, &mut out);
    assert!(out.ends_with(b"Content-length: 0\r\n\r\n"));
}

#[test]
fn transport_errors_become_statuses() {
    assert_eq!(transport_error(&(-404i32).to_le_bytes()), Some(404));
    assert_eq!(transport_error(&(-429i32).to_le_bytes()), Some(429));
    assert_eq!(transport_error(&404i32.to_le_bytes()), None);
    assert_eq!(transport_error(&(-1i32).to_le_bytes()), None);
    assert_eq!(transport_error(&i32::MIN.to_le_bytes()), None);
    assert_eq!(transport_error(&[0; 8]), None);
}
