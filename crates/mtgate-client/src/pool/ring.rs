//! Hashing for the keyed strategies: a stable 64-bit hash and a ketama-style consistent-hash
//! ring.
//!
//! The ring places `POINTS_PER_WEIGHT × weight` points per member on a 64-bit circle, each
//! at the hash of the member's name and the point's number; a key belongs to the first point
//! at or after its own hash, wrapping around. Adding or removing one of `n` equal members
//! moves about `1/n` of the keys and no other key, which is what the consistent-hash strategy
//! promises.

/// Points per unit of weight. ketama and nginx use 160; with 256, four equal members get
/// within ±6 % of their share in the tests here (±17 % with 160), for a ring still small.
pub(crate) const POINTS_PER_WEIGHT: u32 = 256;

/// FNV-1a over `bytes`, then a 64-bit finaliser (SplitMix64's) so that nearby inputs land
/// far apart. Stable across runs and platforms: keys keep their member across restarts.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash)
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A consistent-hash ring over members identified by name.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// (point, member index) sorted by point.
    points: Vec<(u64, usize)>,
    /// Distinct members on the ring.
    members: usize,
}

impl Ring {
    /// Builds the ring for `(name, weight)` pairs; indices in the ring refer to this order.
    pub(crate) fn build<'a>(members: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut points = Vec::new();
        let mut count = 0;
        for (index, (name, weight)) in members.into_iter().enumerate() {
            count += 1;
            let total = POINTS_PER_WEIGHT.saturating_mul(weight.max(1));
            let mut label = Vec::with_capacity(name.len() + 11);
            for point in 0..total {
                label.clear();
                label.extend_from_slice(name.as_bytes());
                label.push(b'#');
                label.extend_from_slice(point.to_string().as_bytes());
                points.push((stable_hash(&label), index));
            }
        }
        points.sort_unstable();
        Self {
            points,
            members: count,
        }
    }

    /// Member indices in ring order from `key_hash` on, each once: the owner first, then the
    /// members a key fails over to. Bounded by the number of members.
    pub(crate) fn walk(&self, key_hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|&(point, _)| point < key_hash);
        let mut seen = Vec::with_capacity(self.members.min(16));
        let len = self.points.len();
        (0..len)
            .map(move |k| self.points[(start + k) % len].1)
            .filter(move |index| {
                if seen.contains(index) {
                    false
                } else {
                    seen.push(*index);
                    true
                }
            })
            .take(self.members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: u32) -> Vec<usize> {
        (0..keys)
            .map(|k| ring.walk(stable_hash(&k.to_be_bytes())).next().unwrap())
            .collect()
    }

    #[test]
    fn hash_is_stable_and_spreads() {
        assert_eq!(stable_hash(b"10.0.0.1"), stable_hash(b"10.0.0.1"));
        assert_ne!(stable_hash(b"10.0.0.1"), stable_hash(b"10.0.0.2"));
        // The top bit of consecutive keys is close to a fair coin.
        let ones = (0u32..10_000)
            .filter(|k| stable_hash(&k.to_be_bytes()) >> 63 == 1)
            .count();
        assert!((4_800..5_200).contains(&ones), "{ones}");
    }

    #[test]
    fn keys_spread_evenly_over_equal_members() {
        let names = ["a", "b", "c", "d"];
        let ring = Ring::build(names.iter().map(|n| (*n, 1)));
        let mut counts = [0usize; 4];
        for owner in owners(&ring, 40_000) {
            counts[owner] += 1;
        }
        // 10,000 each expected; with 256 points per member the spread stays within ±15 %.
        for count in counts {
            assert!((8_500..11_500).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn weights_scale_the_share() {
        let ring = Ring::build([("a", 3), ("b", 1)]);
        let a = owners(&ring, 20_000).iter().filter(|&&o| o == 0).count();
        assert!((14_000..16_000).contains(&a), "{a}");
    }

    #[test]
    fn adding_a_member_moves_about_one_in_n_keys_and_only_to_it() {
        let before = Ring::build(["a", "b", "c", "d"].map(|n| (n, 1)));
        let after = Ring::build(["a", "b", "c", "d", "e"].map(|n| (n, 1)));
        let (old, new) = (owners(&before, 20_000), owners(&after, 20_000));
        let moved: Vec<_> = old.iter().zip(&new).filter(|(o, n)| o != n).collect();
        // Every moved key went to the newcomer (index 4) ...
        assert!(moved.iter().all(|(_, n)| **n == 4));
        // ... and about 1/5 of the keys moved.
        let fraction = moved.len() as f64 / 20_000.0;
        assert!((0.15..0.25).contains(&fraction), "{fraction}");
    }

    #[test]
    fn walk_visits_each_member_once_owner_first() {
        let ring = Ring::build(["a", "b", "c"].map(|n| (n, 2)));
        let hash = stable_hash(b"key");
        let order: Vec<_> = ring.walk(hash).collect();
        assert_eq!(order.len(), 3);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2]);
        assert_eq!(order[0], owners_for(&ring, hash));
        assert_eq!(Ring::default().walk(hash).count(), 0);
    }

    fn owners_for(ring: &Ring, hash: u64) -> usize {
        let i = ring.points.partition_point(|&(p, _)| p < hash) % ring.points.len();
        ring.points[i].1
    }
}
