//! HTTP/1 request and response heads on arbitrary bytes, under tight caps: no panic, caps
//! honoured, and a CONNECT target that parses is a valid destination.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::http1::{Limits, RequestHead, ResponseHead, parse_basic};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_len: 1024,
        max_headers: 16,
    };
    if let Ok(Some((head, used))) = RequestHead::parse(data, &limits) {
        assert!(used <= limits.max_head_len && head.headers.0.len() <= limits.max_headers);
        let _ = head.connect_target();
        if let Some(value) = head.headers.get("proxy-authorization") {
            let _ = parse_basic(value);
        }
        let mut again = Vec::new();
        head.write_to_buf(&mut again);
    }
    if let Ok(Some((head, used))) = ResponseHead::parse(data, &limits) {
        assert!(used <= limits.max_head_len);
        let _ = head.proxy_authenticate();
    }
});
