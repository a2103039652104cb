//! Abridged, intermediate and padded-intermediate decoders, and the streaming frame scanner
//! fed the same bytes in arbitrary pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::obfs2::ProtoTag;
use mtgate_proto::mtproto::transport::{self, FrameScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let tag = ProtoTag::ALL[usize::from(selector % 3)];
    let max = 1 + usize::from(selector) * 64;
    let mut input = rest;
    while let Ok(Some((frame, used))) = transport::decode(tag, input, max) {
        assert!(frame.payload.len() <= max && used <= input.len() && used > 0);
        input = &input[used..];
    }
    let mut scanner = FrameScanner::new(tag, max);
    for piece in rest.chunks(usize::from(selector % 7) + 1) {
        if scanner.scan(piece).is_err() {
            break;
        }
    }
});
