use super::*;
use crate::hex;

#[test]
fn matches_the_reference_vector_and_verifies() {
    let hello =
        hex::decode(include_str!("../../../testdata/telethonfaketls-client-hello.hex").trim())
            .unwrap();
    let expected = hex::decode(include_str!("../../../testdata/server-hello.hex").trim()).unwrap();
    let secret = Secret::from_hex("00112233445566778899aabbccddeeff").unwrap();
    let client_random: [u8; 32] = hello[11..43].try_into().unwrap();
    let key_share: [u8; 32] = core::array::from_fn(|i| i as u8);
    let spec = ServerHelloSpec {
        client_random: &client_random,
        session_id: &hello[44..76],
        cipher_suite: 0x1301,
        key_share,
        application_data: &[0xa5; 40],
    };
    let mut out = vec![0xff]; // appends after what is already there
    build(&secret, &spec, &mut out);
    assert_eq!(hex::encode(&out[1..]), hex::encode(&expected));
    assert_eq!(&out[1..6], &[0x16, 0x03, 0x03, 0x00, 0x7a]);
    assert_eq!(answer_len(&out[1..]), Ok(Some(expected.len())));
    assert_eq!(verify(&secret, &client_random, &out[1..]), Ok(()));
    let mut tampered = out[1..].to_vec();
    tampered[150] ^= 1;
    assert_eq!(
        verify(&secret, &client_random, &tampered),
        Err(AnswerError::BadDigest)
    );
    assert_eq!(answer_len(&out[1..20]), Ok(None));
    assert_eq!(answer_len(b"HTTP/1.1 400"), Err(AnswerError::Layout));
}
