//! `proxy-multi.conf`: the middle-proxy list parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtgate_proto::mtproto::middle::proxy_config::ProxyConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = ProxyConfig::parse(text)
    {
        assert!(!config.clusters.is_empty());
        let _ = config.cluster(2);
    }
});
