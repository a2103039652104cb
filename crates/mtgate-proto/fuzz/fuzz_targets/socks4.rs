//! SOCKS4/4a parsers on arbitrary bytes: no panic, and parsed messages round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::socks4::{Reply, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((request, used))) = Request::parse(data) {
        assert!(used <= data.len());
        let mut again = Vec::new();
        request.write_to_buf(&mut again);
        assert_eq!(Request::parse(&again), Ok(Some((request, again.len()))));
    }
    if let Ok(Some((reply, _))) = Reply::parse(data) {
        let mut again = Vec::new();
        reply.write_to_buf(&mut again);
        let (reparsed, _) = Reply::parse(&again).unwrap().unwrap();
        assert_eq!(reparsed.code, reply.code);
    }
});
