use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::frame::{FrameError, kind, put_data_header};
use super::*;
use crate::address::Address;

fn all_frames() -> Vec<Frame> {
    let v4 = Address::Socket("127.0.0.1:80".parse().unwrap());
    let v6 = Address::Socket("[::1]:443".parse().unwrap());
    let name = Address::Domain("example.org".into(), 8080);
    vec![
        Frame::Open {
            stream: 2,
            target: OpenTarget {
                network: Network::Tcp,
                address: v4,
            },
        },
        Frame::Open {
            stream: 4,
            target: OpenTarget {
                network: Network::Udp,
                address: v6,
            },
        },
        Frame::OpenOk { stream: 2 },
        Frame::OpenErr {
            stream: 2,
            code: ErrorCode::ForbiddenHost,
            reason: "10.0.0.0/8 is forbidden".into(),
        },
        Frame::Data {
            stream: 7,
            payload: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream: 7,
            payload: Bytes::new(),
        },
        Frame::Window {
            stream: 9,
            increment: 65536,
        },
        Frame::Fin { stream: 3 },
        Frame::Rst {
            stream: 3,
            code: ErrorCode::Cancelled,
            reason: String::new(),
        },
        Frame::Ping { opaque: 42 },
        Frame::Pong { opaque: u64::MAX },
        Frame::GoAway {
            code: ErrorCode::None,
            reason: "restart".into(),
        },
        Frame::Listen {
            request: 1,
            network: Network::Tcp,
            port: 2222,
            target: name,
        },
        Frame::ListenResult {
            request: 1,
            code: ErrorCode::None,
            reason: String::new(),
        },
    ]
}

#[test]
fn every_kind_round_trips() {
    for frame in all_frames() {
        let bytes = frame.to_bytes();
        assert_eq!(bytes[0], frame.kind());
        assert_eq!(Frame::decode(bytes).unwrap(), frame);
    }
}

#[test]
fn header_layout_is_kind_flags_big_endian_stream() {
    let bytes = Frame::Fin {
        stream: 0x0102_0304,
    }
    .to_bytes();
    assert_eq!(&bytes[..], &[kind::FIN, 0, 1, 2, 3, 4]);
    let mut buf = BytesMut::new();
    put_data_header(&mut buf, 5);
    buf.extend_from_slice(b"xy");
    assert_eq!(
        Frame::decode(buf.freeze()).unwrap(),
        Frame::Data {
            stream: 5,
            payload: Bytes::from_static(b"xy")
        }
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for frame in all_frames() {
        let bytes = frame.to_bytes();
        for cut in 0..bytes.len() {
            let short = bytes.slice(..cut);
            // Reasons and DATA payloads may legally be cut; the rest must be refused.
            if let Ok(decoded) = Frame::decode(short) {
                assert!(matches!(
                    decoded,
                    Frame::Data { .. }
                        | Frame::OpenErr { .. }
                        | Frame::Rst { .. }
                        | Frame::GoAway { .. }
                        | Frame::ListenResult { .. }
                ));
            }
        }
    }
}

#[test]
fn wrong_streams_are_refused() {
    let data_on_zero = Frame::Data {
        stream: 0,
        payload: Bytes::from_static(b"x"),
    }
    .to_bytes();
    assert!(matches!(
        Frame::decode(data_on_zero),
        Err(FrameError::WrongStream { .. })
    ));
    let mut ping_on_stream = Frame::Ping { opaque: 1 }.to_bytes().to_vec();
    ping_on_stream[5] = 1;
    assert!(matches!(
        Frame::decode(ping_on_stream.into()),
        Err(FrameError::WrongStream { .. })
    ));
}

#[test]
fn limits_and_unknowns_are_refused() {
    let mut big = BytesMut::new();
    put_data_header(&mut big, 1);
    big.extend_from_slice(&vec![0u8; MAX_DATA_LEN + 1]);
    assert_eq!(
        Frame::decode(big.freeze()),
        Err(FrameError::DataTooLarge(MAX_DATA_LEN + 1))
    );
    assert_eq!(
        Frame::decode(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 1])),
        Err(FrameError::UnknownKind(0x7f))
    );
    assert_eq!(
        Frame::decode(Bytes::from_static(&[
            kind::WINDOW,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0
        ])),
        Err(FrameError::ZeroWindow)
    );
    assert_eq!(
        Frame::decode(Bytes::from_static(&[kind::FIN, 0, 0, 0, 0, 1, 9])),
        Err(FrameError::Trailing(kind::FIN))
    );
    // OPEN with a zero-length domain.
    assert!(matches!(
        Frame::decode(Bytes::from_static(&[
            kind::OPEN,
            0,
            0,
            0,
            0,
            2,
            1,
            3,
            0,
            0,
            80
        ])),
        Err(FrameError::Address(_))
    ));
}

#[test]
fn long_reasons_are_cut_on_a_char_boundary() {
    let frame = Frame::Rst {
        stream: 1,
        code: ErrorCode::InternalError,
        reason: "é".repeat(300),
    };
    match Frame::decode(frame.to_bytes()).unwrap() {
        Frame::Rst { reason, .. } => {
            assert!(reason.len() <= frame::MAX_REASON_LEN);
            assert!(reason.chars().all(|c| c == 'é'));
        }
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn error_codes_round_trip_and_map_to_anyproxy_names() {
    for byte in 0..=0x0c {
        let code = ErrorCode::from_byte(byte);
        assert_eq!(code.to_byte(), byte);
    }
    assert_eq!(ErrorCode::from_byte(0xee), ErrorCode::InternalError);
    assert_eq!(
        ErrorCode::HostUnreachable.anyproxy_name(),
        "CONNECTION_FAILED"
    );
    assert_eq!(
        ErrorCode::from_anyproxy_name("FORBIDDEN_HOST"),
        ErrorCode::ForbiddenHost
    );
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(frame) = Frame::decode(Bytes::from(bytes)) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(Frame::decode(frame.to_bytes()).unwrap(), frame);
        }
    }
}
