//! AnyProxy's JSON message decoder on arbitrary bytes: no panic, and a decoded message
//! re-encodes to JSON that decodes to the same message (and encodes to the same text again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::tunnel::anyproxy::{MAX_MESSAGE_LEN, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    let json = message.to_json();
    // Fields the input left out come back with their defaults (`"reason":""`, …), so an input
    // just under the cap can re-encode a few bytes over it; such messages are not compared.
    if json.len() > MAX_MESSAGE_LEN {
        assert!(
            json.len() <= data.len() + 64,
            "re-encoding grew by {}",
            json.len() - data.len()
        );
        return;
    }
    let reparsed = Message::decode(json.as_bytes()).expect("a re-encoded message decodes");
    assert_eq!(reparsed, message);
    assert_eq!(reparsed.to_json(), json);
    assert_eq!(reparsed.connection_id(), message.connection_id());
});
