//! The fake-TLS record reader after the handshake, fed in arbitrary pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::faketls::record::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let mut reader = RecordReader::new();
    for piece in rest.chunks(usize::from(step) + 1) {
        let mut piece = piece.to_vec();
        match reader.unwrap_in_place(&mut piece) {
            Ok(n) => assert!(n <= piece.len()),
            Err(_) => break,
        }
    }
});
