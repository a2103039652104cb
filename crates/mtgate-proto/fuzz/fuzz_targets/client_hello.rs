//! Fake-TLS ClientHello: reassembly from records, parsing and digest checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::faketls::client_hello;
use mtgate_proto::mtproto::secret::Secret;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(assembled)) = client_hello::assemble(data) {
        assert!(assembled.consumed <= data.len());
        if let Ok(hello) = client_hello::parse(&assembled.record) {
            assert!(hello.session_id.len() <= 32);
        }
        let _ = client_hello::verify(&assembled.record, &[Secret::from_bytes([1; 16])]);
    }
    let _ = client_hello::parse(data);
});
