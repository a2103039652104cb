//! Middle-proxy RPC: the byte stream (frames, fillers, CRC) and every message decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::middle::handshake::{Handshake, Nonce};
use mtgate_proto::mtproto::middle::message::{MeMessage, ProxyControl, ProxyReq, check_client_packet};
use mtgate_proto::mtproto::middle::stream::Opener;

fuzz_target!(|data: &[u8]| {
    let mut opener = Opener::new(1 << 16);
    for chunk in data.chunks(7) {
        opener.feed(chunk);
        while let Ok(Some(payload)) = opener.next_payload() {
            let _ = MeMessage::decode(&payload);
        }
    }
    let _ = Nonce::decode(data);
    let _ = Handshake::decode(data);
    let _ = ProxyControl::decode(data);
    let _ = check_client_packet(data);
    if let Ok(req) = ProxyReq::decode(data) {
        assert!(req.payload.len() <= data.len());
    }
});
