//! Key derivation vectors computed with mtprotoproxy's `get_middleproxy_aes_key_and_iv`
//! (alexbers/mtprotoproxy, the Python reference) on the same inputs, and a CBC vector computed
//! with `openssl enc -aes-256-cbc -nopad`.

use super::*;
use crate::hex;

fn secret() -> Vec<u8> {
    (0..128u32).map(|i| (i * 7 + 3) as u8).collect()
}

fn material<'a>(secret: &'a [u8], srv: &str, clt: &str) -> KeyMaterial<'a> {
    KeyMaterial {
        nonce_srv: core::array::from_fn(|i| i as u8),
        nonce_clt: core::array::from_fn(|i| i as u8 + 16),
        clt_ts: 1_700_000_000,
        srv: srv.parse().unwrap(),
        clt: clt.parse().unwrap(),
        secret,
    }
}

fn key_hex(k: &CbcKey) -> (String, String) {
    (hex::encode(&k.key), hex::encode(&k.iv))
}

#[test]
fn ipv4_vectors_match_the_python_reference() {
    let secret = secret();
    let m = material(&secret, "149.154.175.50:8888", "203.0.113.7:40000");
    let keys = ConnectionKeys::for_proxy(&m).unwrap();
    assert_eq!(
        key_hex(&keys.write),
        (
            "5d548d20800885a5a717e69df8294e552e6988ff2fa6f37bce13c0743c093e87".into(),
            "59735e302c4315084e35a829da275e7c".into()
        )
    );
    assert_eq!(
        key_hex(&keys.read),
        (
            "613bf9991785b45522d3b0cd6f7345a2a38761e0830c6b17a36e73d4d2df61ea".into(),
            "aeccb3c01b836cb2b38e9d3093ec6f39".into()
        )
    );
}

#[test]
fn ipv6_vectors_match_the_python_reference() {
    let secret = secret();
    let m = material(&secret, "[2001:67c:4e8:f002::d]:80", "[2001:db8::1]:40000");
    let keys = ConnectionKeys::for_proxy(&m).unwrap();
    assert_eq!(
        key_hex(&keys.write),
        (
            "d0a8c8eec9342c9d5510b77a530a95fd0de85340bb02ceb794d700d3077c4cea".into(),
            "894659e637f53959a05d5f818f948c51".into()
        )
    );
    assert_eq!(
        key_hex(&keys.read).0,
        "18c3006d3779976f333b376d0996cf5874ed182451e516730ae82cd214357b18"
    );
}

#[test]
fn families_must_match() {
    let secret = secret();
    let m = material(&secret, "[2001:67c:4e8:f002::d]:80", "203.0.113.7:40000");
    assert_eq!(
        ConnectionKeys::for_proxy(&m).unwrap_err(),
        KeyError::FamilyMismatch
    );
}

#[test]
fn cbc_matches_openssl_and_chains_across_calls() {
    let secret = secret();
    let m = material(&secret, "149.154.175.50:8888", "203.0.113.7:40000");
    let key = CbcKey::derive(&m, Purpose::Client).unwrap();
    let plain: Vec<u8> = (0..48u8).collect();
    let mut data = plain.clone();
    let mut enc = key.encryptor();
    enc.encrypt(&mut data[..16]);
    enc.encrypt(&mut data[16..]);
    assert_eq!(
        hex::encode(&data),
        "0b86d63dec192b57bf2e799c65fe387f3b9534ed3b03a81a64e188945d65aa49\
         35cfd9b2487ec763531580f6898a636d"
    );
    let mut dec = key.decryptor();
    assert_eq!(dec.decrypt(&mut data[..20]), 16);
    assert_eq!(dec.decrypt(&mut data[16..]), 32);
    assert_eq!(data, plain);
}

#[test]
fn the_middle_proxy_mirrors_the_proxy() {
    let secret = secret();
    let m = material(&secret, "10.0.0.1:8888", "10.0.0.2:1");
    let proxy = ConnectionKeys::for_proxy(&m).unwrap();
    let me = ConnectionKeys::for_middle_proxy(&m).unwrap();
    assert_eq!(proxy.write.key, me.read.key);
    assert_eq!(proxy.read.iv, me.write.iv);
}
