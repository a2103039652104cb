//! Vectors computed independently with Python's `hashlib` and `cryptography` (AES-CTR) from
//! the rules in the module docs.

use super::*;
use crate::hex;

const SECRET: &str = "00112233445566778899aabbccddeeff";
const HEADER: &str = "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bc";

fn bytes<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn keystream(key: &StreamKey, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    key.cipher().apply(&mut out);
    out
}

#[test]
fn key_derivation_matches_reference_vector() {
    let secret = Secret::from_hex(SECRET).unwrap();
    let keys = derive_keys(&bytes(HEADER), Some(&secret));
    let read = &keys.sender_to_receiver;
    let write = &keys.receiver_to_sender;
    assert_eq!(
        hex::encode(&read.key),
        "f908be338862601648dc7c87c2235fea4b04790f77430c8649bbc37ec367e287"
    );
    assert_eq!(hex::encode(&read.iv), "1b222930373e454c535a61686f767d84");
    assert_eq!(
        hex::encode(&write.key),
        "c00cbd0c6c384400c4ca4623e812271d91c32f3a66a82c72b1cb5bc452de5b23"
    );
    assert_eq!(hex::encode(&write.iv), "a49d968f88817a736c655e575049423b");
    assert_eq!(
        hex::encode(&keystream(read, 32)),
        "2de56ef4fe88559036e4d9d775979f9d08ba13560c67def650e2b062e26250f0"
    );
    assert_eq!(
        hex::encode(&keystream(write, 32)),
        "e9276fecbbb426e064c0a6f4ae53058bb010b1fd83a2974165caaec915e9bc59"
    );
}

#[test]
fn counter_is_128_bit_big_endian() {
    let key = StreamKey {
        key: [0; 32],
        iv: [0xff; 16],
    };
    assert_eq!(
        hex::encode(&keystream(&key, 32)),
        "acdace8078a32b1a182bfa4987ca1347dc95c078a2408989ad48a21492842087"
    );
}

#[test]
fn accepts_a_client_header_and_continues_the_stream() {
    let header: [u8; 64] = bytes(
        "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848246bbf84f03398f",
    );
    let other = Secret::from_bytes([7; 16]);
    let secrets = [other.clone(), Secret::from_hex(SECRET).unwrap(), other];
    let mut accepted = accept(&header, &secrets).unwrap();
    assert_eq!(accepted.user, 1);
    assert_eq!(accepted.tag, ProtoTag::Padded);
    assert_eq!(accepted.dc, DcId(-2));
    let mut data: [u8; 8] = bytes("5f130aa274430b89");
    accepted.decrypt.apply(&mut data);
    assert_eq!(&data, b"ABCDEFGH");
}

#[test]
fn refuses_a_header_under_the_wrong_secret() {
    let header: [u8; 64] = bytes(HEADER);
    let secrets = [Secret::from_bytes([1; 16]), Secret::from_bytes([2; 16])];
    assert_eq!(
        accept(&header, &secrets).unwrap_err(),
        HeaderError::NoMatchingSecret
    );
    assert_eq!(
        accept(&header, &[]).unwrap_err(),
        HeaderError::NoMatchingSecret
    );
}

#[test]
fn open_then_accept_round_trips_both_directions() {
    let secret = Secret::from_hex(SECRET).unwrap();
    let mut counter = 0u8;
    let spec = OpenSpec {
        tag: ProtoTag::Abridged,
        dc: DcId(10004),
        secret: Some(&secret),
        key_material: None,
    };
    let mut opened = open(&spec, |buf| {
        for b in buf.iter_mut() {
            counter = counter.wrapping_mul(31).wrapping_add(17);
            *b = counter;
        }
    });
    assert!(!is_forbidden_start(&opened.header[..8]));
    let mut accepted = accept(&opened.header, std::slice::from_ref(&secret)).unwrap();
    assert_eq!(
        (accepted.tag, accepted.dc),
        (ProtoTag::Abridged, DcId(10004))
    );

    let mut up = *b"client to server";
    opened.encrypt.apply(&mut up);
    accepted.decrypt.apply(&mut up);
    assert_eq!(&up, b"client to server");

    let mut down = *b"server to client";
    accepted.encrypt.apply(&mut down);
    opened.decrypt.apply(&mut down);
    assert_eq!(&down, b"server to client");
}

#[test]
fn fast_mode_material_makes_the_dc_encrypt_with_the_client_key() {
    let client_write = StreamKey {
        key: [0x42; 32],
        iv: [0x17; 16],
    };
    let spec = OpenSpec {
        tag: ProtoTag::Intermediate,
        dc: DcId(2),
        secret: None,
        key_material: Some(client_write.mirrored()),
    };
    let opened = open(&spec, |buf| buf.fill(0x55));
    let (tag, dc, _, mut dc_encrypt) = accept_keyless(&opened.header).unwrap();
    assert_eq!((tag, dc), (ProtoTag::Intermediate, DcId(2)));
    let mut from_dc = *b"same keystream";
    dc_encrypt.apply(&mut from_dc);
    let mut expected = *b"same keystream";
    client_write.cipher().apply(&mut expected);
    assert_eq!(from_dc, expected);
}

#[test]
fn forbidden_starts_are_regenerated() {
    assert!(is_forbidden_start(b"GET /abc"));
    assert!(is_forbidden_start(b"POST /ab"));
    assert!(is_forbidden_start(b"HEAD /ab"));
    assert!(is_forbidden_start(b"OPTIONS "));
    assert!(is_forbidden_start(&[0xef, 1, 2, 3, 4, 5, 6, 7]));
    assert!(is_forbidden_start(&[0xdd, 0xdd, 0xdd, 0xdd, 4, 5, 6, 7]));
    assert!(is_forbidden_start(&[0x16, 0x03, 0x01, 0x02, 4, 5, 6, 7]));
    assert!(is_forbidden_start(&[1, 2, 3, 4, 0, 0, 0, 0]));
    assert!(!is_forbidden_start(&[1, 2, 3, 4, 5, 6, 7, 8]));

    // The first draw starts with "GET "; the header actually built must not.
    let mut draws = 0;
    let spec = OpenSpec {
        tag: ProtoTag::Padded,
        dc: DcId(1),
        secret: None,
        key_material: None,
    };
    let opened = open(&spec, |buf| {
        draws += 1;
        buf.fill(9);
        if draws == 1 {
            buf[..4].copy_from_slice(b"GET ");
        }
    });
    assert_eq!(draws, 2);
    assert_eq!(&opened.header[..8], &[9; 8]);
}
