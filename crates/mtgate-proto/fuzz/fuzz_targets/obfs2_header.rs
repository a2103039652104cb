//! The obfuscated2 header: any 64 bytes against a few keys, with and without a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::obfs2;
use mtgate_proto::mtproto::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let Some(header) = data.get(..64).and_then(|h| <&[u8; 64]>::try_from(h).ok()) else { return };
    let secrets = [Secret::from_bytes([0; 16]), Secret::from_bytes([0xa5; 16])];
    if let Ok(mut accepted) = obfs2::accept(header, &secrets) {
        let mut rest = data[64..].to_vec();
        accepted.decrypt.apply(&mut rest);
    }
    let _ = obfs2::accept_keyless(header);
    let _ = obfs2::is_forbidden_start(&header[..8]);
});
