//! PROXY protocol v1/v2 parser on arbitrary bytes: no panic, lengths in bounds, and parsed
//! headers round-trip through both encoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::proxy_protocol::{Header, MAX_V1_LEN, MAX_V2_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((header, used))) = Header::parse(data) {
        assert!(used <= data.len() && used <= MAX_V1_LEN.max(MAX_V2_LEN));
        if let Header::Proxied { .. } = header {
            for v2 in [false, true] {
                let mut again = Vec::new();
                if v2 {
                    header.write_v2(&mut again);
                } else {
                    header.write_v1(&mut again);
                }
                let (reparsed, len) = Header::parse(&again).unwrap().unwrap();
                assert_eq!(len, again.len());
                // Mixed families are widened (v2) or unknown (v1); same families are exact.
                if reparsed != header {
                    assert!(!v2 || matches!(reparsed, Header::Proxied { .. }));
                }
            }
        }
    }
});
