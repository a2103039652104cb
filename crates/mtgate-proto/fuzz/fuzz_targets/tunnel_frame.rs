//! The tunnel frame decoder on arbitrary bytes: no panic, and a decoded frame re-encodes to a
//! message that decodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::tunnel::{Frame, MAX_FRAME_LEN};

/// Reason texts are cut at 256 bytes on both sides and decoded lossily, so a reason made of
/// invalid UTF-8 may change once (U+FFFD is three bytes) and then stays fixed.
fn has_reason(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::OpenErr { .. }
            | Frame::Rst { .. }
            | Frame::GoAway { .. }
            | Frame::ListenResult { .. }
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = frame.to_bytes();
    assert!(again.len() <= MAX_FRAME_LEN.max(data.len()));
    let reparsed = Frame::decode(again.clone()).expect("a re-encoded frame decodes");
    if has_reason(&frame) && reparsed != frame {
        // Only the reason may differ, and only when the original was not valid UTF-8.
        assert_eq!(reparsed.kind(), frame.kind());
        assert_eq!(reparsed.stream(), frame.stream());
        let fixed = Frame::decode(reparsed.to_bytes()).expect("decodes");
        assert_eq!(fixed, reparsed);
    } else {
        assert_eq!(reparsed, frame);
        assert_eq!(reparsed.to_bytes(), again);
    }
});
