//! Every SOCKS5 parser on arbitrary bytes: no panic, consumed length within the input, and a
//! parsed message re-encodes to bytes that parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::socks5::{
    Greeting, MethodSelection, Request, Response, UdpHeader, UserPassRequest, UserPassResponse,
};

macro_rules! round_trip {
    ($data:expr, $ty:ty) => {
        if let Ok(Some((message, used))) = <$ty>::parse($data) {
            assert!(used <= $data.len());
            let mut again = Vec::new();
            message.write_to_buf(&mut again);
            let (reparsed, reused) = <$ty>::parse(&again).unwrap().unwrap();
            assert_eq!((reparsed, reused), (message, again.len()));
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(data, Greeting);
    round_trip!(data, UserPassRequest);
    round_trip!(data, Request);
    round_trip!(data, Response);
    round_trip!(data, UdpHeader);
    let _ = MethodSelection::parse(data);
    let _ = UserPassResponse::parse(data);
});
