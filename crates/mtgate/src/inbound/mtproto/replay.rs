//! The listener's two anti-replay caches, shared by all its connections.

use std::sync::Mutex;

use mtgate_proto::mtproto::replay::ReplayCache;

use crate::config::Replay;

/// Fake-TLS client randoms and obfuscated2 key material seen from authenticated clients.
#[derive(Debug)]
pub struct Replays {
    tls: Mutex<ReplayCache>,
    obfs2: Mutex<ReplayCache>,
}

impl Replays {
    /// Empty caches sized by the config.
    pub fn new(config: &Replay) -> Self {
        Self {
            tls: Mutex::new(ReplayCache::new(config.capacity, Some(config.tls_window))),
            obfs2: Mutex::new(ReplayCache::new(config.capacity, None)),
        }
    }

    /// Records a fake-TLS client random; `false` if it was seen before.
    pub fn tls_first_seen(&self, client_random: &[u8], now: u64) -> bool {
        self.tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client_random, now)
    }

    /// Records obfuscated2 key material; `false` if it was seen before.
    pub fn obfs2_first_seen(&self, key_material: &[u8], now: u64) -> bool {
        self.obfs2
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_material, now)
    }
}
