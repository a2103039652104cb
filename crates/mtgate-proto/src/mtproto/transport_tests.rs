use super::*;
use proptest::prelude::*;

fn tag_strategy() -> impl Strategy<Value = ProtoTag> {
    prop::sample::select(ProtoTag::ALL.to_vec())
}

#[test]
fn abridged_short_and_long_forms() {
    let mut out = Vec::new();
    encode(ProtoTag::Abridged, &[1; 8], false, &[], &mut out);
    assert_eq!(out[0], 2);
    out.clear();
    encode(ProtoTag::Abridged, &[1; 8], true, &[], &mut out);
    assert_eq!(out[0], 0x82);
    out.clear();
    let big = vec![5u8; 0x7f * 4];
    encode(ProtoTag::Abridged, &big, false, &[], &mut out);
    assert_eq!(&out[..4], &[0x7f, 0x7f, 0, 0]);
    let (frame, used) = decode(ProtoTag::Abridged, &out, DEFAULT_MAX_FRAME)
        .unwrap()
        .unwrap();
    assert_eq!((frame.payload.len(), used), (big.len(), big.len() + 4));
}

#[test]
fn rejects_overlong_unaligned_empty_and_oversized() {
    let max = DEFAULT_MAX_FRAME;
    assert_eq!(
        parse_head(ProtoTag::Abridged, &[0x7f, 3, 0, 0], max),
        Err(FrameError::Overlong)
    );
    assert_eq!(
        parse_head(ProtoTag::Abridged, &[0x00], max),
        Err(FrameError::Empty)
    );
    assert_eq!(
        parse_head(ProtoTag::Intermediate, &[6, 0, 0, 0], max),
        Err(FrameError::Unaligned(6))
    );
    assert_eq!(
        parse_head(ProtoTag::Padded, &[0, 0, 0, 0x7f], max),
        Err(FrameError::TooLarge {
            len: 0x7f00_0000,
            max
        })
    );
    // Padded frames may be unaligned: the padding is cut on reading.
    let (frame, used) = decode(ProtoTag::Padded, &[6, 0, 0, 0, 1, 2, 3, 4, 9, 9], max)
        .unwrap()
        .unwrap();
    assert_eq!((frame.payload, used), (&[1u8, 2, 3, 4][..], 10));
    assert_eq!(
        parse_head(ProtoTag::Intermediate, &[4, 0, 0], max),
        Ok(None)
    );
    assert_eq!(parse_head(ProtoTag::Abridged, &[0x7f, 1], max), Ok(None));
}

#[test]
fn quick_ack_replies() {
    let token = 0x8123_4567;
    assert_eq!(
        quick_ack_reply(ProtoTag::Abridged, token),
        [0x81, 0x23, 0x45, 0x67]
    );
    assert_eq!(
        quick_ack_reply(ProtoTag::Intermediate, token),
        [0x67, 0x45, 0x23, 0x81]
    );
    assert_eq!(
        quick_ack_reply(ProtoTag::Padded, 0x0000_0001),
        [0x01, 0, 0, 0x80]
    );
    let (head, _) = (
        parse_head(ProtoTag::Intermediate, &[4, 0, 0, 0x80], 64)
            .unwrap()
            .unwrap(),
        (),
    );
    assert!(head.quick_ack);
}

proptest! {
    #[test]
    fn frames_round_trip(
        tag in tag_strategy(),
        frames in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 1..300usize), any::<bool>(), 0..=3usize),
            1..8,
        ),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (mut payload, quick_ack, pad) in frames {
            payload.resize(payload.len().div_ceil(4) * 4, 0);
            let padding = if tag == ProtoTag::Padded { vec![0xaa; pad] } else { Vec::new() };
            encode(tag, &payload, quick_ack, &padding, &mut wire);
            expected.push((payload, quick_ack));
        }
        let mut rest = &wire[..];
        for (payload, quick_ack) in &expected {
            let (frame, used) = decode(tag, rest, DEFAULT_MAX_FRAME).unwrap().unwrap();
            prop_assert_eq!(frame.payload, &payload[..]);
            prop_assert_eq!(frame.quick_ack, *quick_ack);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn scanner_agrees_with_decoder_for_any_split(
        tag in tag_strategy(),
        sizes in prop::collection::vec(1..600usize, 1..6),
        split in prop::collection::vec(1..50usize, 1..40),
    ) {
        let mut wire = Vec::new();
        for size in sizes {
            let payload = vec![0x11; size.div_ceil(4) * 4];
            let padding = if tag == ProtoTag::Padded { vec![0; 3] } else { Vec::new() };
            encode(tag, &payload, false, &padding, &mut wire);
        }
        let mut scanner = FrameScanner::new(tag, DEFAULT_MAX_FRAME);
        let mut rest = &wire[..];
        for step in split.iter().cycle() {
            if rest.is_empty() { break; }
            let n = (*step).min(rest.len());
            scanner.scan(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        prop_assert!(scanner.at_boundary());
    }

    #[test]
    fn scanner_catches_an_oversized_frame_split_anywhere(split in 1..4usize) {
        let wire = [0u8, 0, 0x10, 0]; // 1 MiB body, cap 64 KiB
        let mut scanner = FrameScanner::new(ProtoTag::Intermediate, 65_536);
        let first = scanner.scan(&wire[..split]);
        let result = first.and_then(|()| scanner.scan(&wire[split..]));
        prop_assert!(matches!(result, Err(FrameError::TooLarge { .. })), "split {}", split);
    }

    #[test]
    fn decoder_never_panics(tag in tag_strategy(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(tag, &bytes, 4096);
        let _ = FrameScanner::new(tag, 4096).scan(&bytes);
    }
}
