use super::*;
use crate::hex;

const KEY: &str = "00112233445566778899aabbccddeeff";

fn telethon_hello() -> Vec<u8> {
    hex::decode(include_str!("../../../testdata/telethonfaketls-client-hello.hex").trim()).unwrap()
}

fn key() -> Secret {
    Secret::from_hex(KEY).unwrap()
}

#[test]
fn verifies_a_hello_built_by_telethonfaketls() {
    let hello = telethon_hello();
    let assembled = assemble(&hello).unwrap().unwrap();
    assert_eq!(assembled.consumed, 517);
    assert!(matches!(assembled.record, Cow::Borrowed(_)));
    let parsed = parse(&assembled.record).unwrap();
    assert_eq!(parsed.sni, Some("example.com"));
    assert_eq!(parsed.cipher_suite, 0x1301, "GREASE 0xfafa skipped");
    assert_eq!(parsed.session_id, &(0u8..32).collect::<Vec<_>>()[..]);
    let wrong = Secret::from_bytes([9; 16]);
    let verified = verify(&assembled.record, &[wrong, key()]).unwrap();
    assert_eq!(
        verified,
        Verified {
            user: 1,
            timestamp: 1_700_000_000
        }
    );
}

#[test]
fn a_changed_byte_or_key_breaks_the_digest() {
    let mut hello = telethon_hello();
    hello[200] ^= 1;
    assert_eq!(verify(&hello, &[key()]), Err(HelloError::BadDigest));
    assert_eq!(
        verify(&telethon_hello(), &[Secret::from_bytes([0; 16])]),
        Err(HelloError::BadDigest)
    );
}

#[test]
fn reassembles_a_hello_split_over_records() {
    let hello = telethon_hello();
    let payload = &hello[5..];
    for cut in [1usize, 3, 4, 100, 511] {
        let mut split = Vec::new();
        for part in [&payload[..cut], &payload[cut..]] {
            split.extend_from_slice(&[0x16, 0x03, 0x01]);
            split.extend_from_slice(&(part.len() as u16).to_be_bytes());
            split.extend_from_slice(part);
        }
        split.extend_from_slice(b"next");
        let assembled = assemble(&split).unwrap().unwrap();
        assert_eq!(&assembled.record[..], &hello[..], "cut at {cut}");
        assert_eq!(assembled.consumed, split.len() - 4);
        assert!(verify(&assembled.record, &[key()]).is_ok());
        // Every strict prefix asks for more bytes.
        for end in [0, 4, 5, 6, cut + 5, split.len() - 5] {
            assert_eq!(assemble(&split[..end]), Ok(None), "cut {cut} end {end}");
        }
    }
}

#[test]
fn refuses_malformed_hellos() {
    assert_eq!(
        assemble(b"GET / HTTP/1.1\r\n"),
        Err(HelloError::NotHandshake)
    );
    assert_eq!(
        assemble(&[0x16, 0x03, 0x01, 0x00, 0x00]),
        Err(HelloError::Malformed("empty record"))
    );
    assert_eq!(
        assemble(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x02]),
        Err(HelloError::NotClientHello)
    );
    assert_eq!(
        assemble(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]),
        Err(HelloError::TooLarge)
    );
    assert_eq!(
        assemble(&[
            0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x01, 0xaa, 0xbb
        ]),
        Err(HelloError::Malformed("trailing bytes"))
    );
    // Many tiny records never grow without bound.
    let mut many = Vec::new();
    many.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x10, 0x00]);
    for _ in 0..MAX_HELLO_RECORDS {
        many.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x00]);
    }
    assert_eq!(assemble(&many), Err(HelloError::TooLarge));
    let mut hello = telethon_hello();
    hello[43] = 33;
    assert!(matches!(parse(&hello), Err(HelloError::Malformed(_))));
}

#[test]
fn skew_policy_follows_the_official_window() {
    let now = 1_700_000_000u64;
    let p = SkewPolicy::OFFICIAL;
    assert_eq!(p.check(now as u32 + 3, now), Ok(()));
    assert_eq!(p.check(now as u32 + 4, now), Err(HelloError::ClockSkew(4)));
    assert_eq!(p.check(now as u32 - 600, now), Ok(()));
    assert_eq!(
        p.check(now as u32 - 601, now),
        Err(HelloError::ClockSkew(-601))
    );
    assert_eq!(SkewPolicy::Ignore.check(0, now), Ok(()));
}

#[test]
fn built_hellos_parse_and_verify() {
    let spec = HelloSpec {
        domain: "cover.example",
        unix_time: 1_234_567_890,
        session_id: [7; 32],
        key_share: [9; 32],
    };
    let hello = build(&key(), &spec);
    assert_eq!(hello.len(), 517);
    let parsed = parse(&hello).unwrap();
    assert_eq!(parsed.sni, Some("cover.example"));
    assert_eq!(verify(&hello, &[key()]).unwrap().timestamp, 1_234_567_890);
}

#[test]
fn grease_values() {
    assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x4a4a));
    assert!(!is_grease(0x1301) && !is_grease(0x0a1a));
}
