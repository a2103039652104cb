//! A bounded anti-replay cache.
//!
//! A censor can record a client's first bytes and replay them to see whether the server answers
//! like a proxy. The proxy remembers what authenticated clients sent (the fake-TLS client random,
//! or the obfuscated2 key material) and treats a repeat like any other failure. Entries are
//! added only after authentication, so unauthenticated probes cannot fill the cache and push
//! real clients out.

use std::collections::{HashMap, VecDeque};

/// Bytes of a fingerprint kept per entry.
pub const KEY_LEN: usize = 16;

/// Remembers up to `capacity` fingerprints, each for at most `window` seconds.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    window: Option<u64>,
    seen: HashMap<[u8; KEY_LEN], u64>,
    order: VecDeque<([u8; KEY_LEN], u64)>,
}

impl ReplayCache {
    /// A cache of at most `capacity` entries. With a `window`, entries older than that many
    /// seconds are forgotten (the timestamp check refuses such old hellos anyway).
    pub fn new(capacity: usize, window: Option<u64>) -> Self {
        Self {
            capacity,
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `fingerprint` (its first [`KEY_LEN`] bytes) seen at time `now` (seconds).
    /// Returns `false` if it was already there: a replay.
    pub fn insert(&mut self, fingerprint: &[u8], now: u64) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let mut key = [0u8; KEY_LEN];
        let n = fingerprint.len().min(KEY_LEN);
        key[..n].copy_from_slice(&fingerprint[..n]);
        self.expire(now);
        if self.seen.contains_key(&key) {
            return false;
        }
        while self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
        true
    }

    /// Number of fingerprints held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn expire(&mut self, now: u64) {
        let Some(window) = self.window else { return };
        while let Some(&(_, at)) = self.order.front() {
            if at + window >= now {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, _)) = self.order.pop_front() {
            self.seen.remove(&key);
        }
        if self.order.capacity() > 4 * self.capacity.max(64) {
            self.order.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_replays_until_evicted_or_expired() {
        let mut cache = ReplayCache::new(2, Some(10));
        assert!(cache.insert(b"aaaaaaaaaaaaaaaa-ignored-tail", 100));
        assert!(!cache.insert(b"aaaaaaaaaaaaaaaa-other-tail", 105));
        assert!(cache.insert(b"bbbbbbbbbbbbbbbb", 105));
        // Capacity 2: a third entry pushes out the oldest.
        assert!(cache.insert(b"cccccccccccccccc", 106));
        assert_eq!(cache.len(), 2);
        assert!(cache.insert(b"aaaaaaaaaaaaaaaa", 106));
        // Window 10 s: "b" (105) is gone at 116.
        assert!(cache.insert(b"bbbbbbbbbbbbbbbb", 116));
    }

    #[test]
    fn no_window_keeps_entries_until_capacity() {
        let mut cache = ReplayCache::new(100, None);
        assert!(cache.insert(&[1; 16], 0));
        assert!(!cache.insert(&[1; 16], 1_000_000_000));
        let mut off = ReplayCache::new(0, None);
        assert!(off.insert(&[1; 16], 0) && off.insert(&[1; 16], 0));
        assert!(off.is_empty());
    }
}
