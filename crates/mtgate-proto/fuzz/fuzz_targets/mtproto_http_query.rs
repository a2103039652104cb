//! MTProto-over-HTTP queries on arbitrary bytes: no panic, the request never claims more bytes
//! than given, and the body is a whole number of words under the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::http1::Limits;
use mtgate_proto::mtproto::http::{self, MAX_BODY, MAX_INFO_VALUE, Method};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_len: 2048,
        max_headers: 16,
    };
    let _ = http::is_api_request(data);
    match http::parse(data, &limits) {
        Ok(Some(q)) => {
            assert!(q.consumed <= data.len());
            assert!(q.body.len() < MAX_BODY && q.body.len() % 4 == 0);
            assert!(q.method == Method::Post || q.body.is_empty());
            assert!(q.user_agent.len() <= MAX_INFO_VALUE);
        }
        Ok(None) => {}
        Err(e) => {
            let mut out = Vec::new();
            http::write_error(e.status(), &mut out);
        }
    }
});
