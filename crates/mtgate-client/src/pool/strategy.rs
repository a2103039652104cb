//! How a pool picks among the members that are available.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::member::Member;
use super::ring::Ring;

/// A selection strategy. Backups are used only when no primary is available, whatever the
/// strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Each available member in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round-robin (nginx's): a member of weight 3 gets three picks out of
    /// four next to one of weight 1, interleaved.
    Weighted,
    /// Uniformly random, proportionally to weight.
    Random,
    /// The member with the fewest connections open through it now; ties go round-robin.
    LeastInFlight,
    /// The member with the lowest EWMA connect latency; members never measured go first. The
    /// current favourite is kept until another beats it by more than the pool's tolerance
    /// (hysteresis against flapping between near-equal members).
    Fastest,
    /// The first available member in configuration order (ordered failover).
    FirstAvailable,
    /// The connection's key (e.g. the client address) hashed onto the members, mod n; a key
    /// whose member is unavailable goes to the next one. Without a key, round-robin.
    Hash,
    /// The key placed on a ketama consistent-hash ring (256 points per unit of weight):
    /// adding or removing one of n members moves about 1/n of the keys. Without a key, random.
    ConsistentHash,
    /// Power of two choices: two members drawn at random, the one with the lower peak-EWMA
    /// connect latency × (connections in flight + 1) wins.
    PowerOfTwo,
}

impl Strategy {
    /// A lowercase name for configs and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Weighted => "weighted",
            Self::Random => "random",
            Self::LeastInFlight => "least-in-flight",
            Self::Fastest => "fastest",
            Self::FirstAvailable => "first-available",
            Self::Hash => "hash",
            Self::ConsistentHash => "consistent-hash",
            Self::PowerOfTwo => "p2c",
        }
    }

    /// Whether picks follow the connection's key.
    pub const fn is_keyed(self) -> bool {
        matches!(self, Self::Hash | Self::ConsistentHash)
    }

    /// Every strategy, for listings and parsing.
    pub const ALL: [Self; 9] = [
        Self::RoundRobin,
        Self::Weighted,
        Self::Random,
        Self::LeastInFlight,
        Self::Fastest,
        Self::FirstAvailable,
        Self::Hash,
        Self::ConsistentHash,
        Self::PowerOfTwo,
    ];
}

impl std::str::FromStr for Strategy {
    type Err = String;

    /// Accepts [`Strategy::name`] and the usual aliases: `least-connections`/`leastconn`,
    /// `ip-hash`, `ketama`, `power-of-two`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alias = match s {
            "least-connections" | "leastconn" => Some(Self::LeastInFlight),
            "ip-hash" => Some(Self::Hash),
            "ketama" => Some(Self::ConsistentHash),
            "power-of-two" => Some(Self::PowerOfTwo),
            "smooth-weighted" | "weighted-round-robin" => Some(Self::Weighted),
            _ => None,
        };
        alias
            .or_else(|| Self::ALL.into_iter().find(|strategy| strategy.name() == s))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.name()).collect();
                format!("unknown strategy {s:?}; use one of {}", names.join(", "))
            })
    }
}

/// How much faster another member must be before [`Strategy::Fastest`] switches to it
/// (see [`super::PoolBuilder::fastest_tolerance`]).
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_millis(5);

/// Everything a strategy may look at for one pick.
pub(crate) struct Pick<'a> {
    /// The members it may choose from (non-empty, in configuration order).
    pub(crate) candidates: &'a [&'a Arc<Member>],
    /// The whole member list (the hash strategies map keys onto it, so that a key keeps its
    /// member while other members come and go).
    pub(crate) all: &'a [Arc<Member>],
    /// The connection's key hash, for the keyed strategies.
    pub(crate) key: Option<u64>,
    /// Now, for slow start.
    pub(crate) now: Instant,
    /// The pool's slow-start time.
    pub(crate) slow_start: Duration,
}

/// Weights are scaled by this before integer arithmetic, so slow start can lower them finely.
const WEIGHT_SCALE: f64 = 100.0;

/// The strategy with the state it keeps between picks.
#[derive(Debug)]
pub(crate) struct Selector {
    strategy: Strategy,
    counter: AtomicUsize,
    weighted: Mutex<()>,
    /// Fastest: the favourite, by address (compared, never dereferenced).
    favourite: AtomicUsize,
    tolerance: Duration,
    /// Consistent hash: the ring for the member list it was built for.
    ring: Mutex<(RingSignature, Arc<Ring>)>,
}

/// The member names and weights a ring was built for.
type RingSignature = Vec<(String, u32)>;

impl Selector {
    #[cfg(test)]
    pub(crate) fn new(strategy: Strategy) -> Self {
        Self::with_tolerance(strategy, DEFAULT_TOLERANCE)
    }

    pub(crate) fn with_tolerance(strategy: Strategy, tolerance: Duration) -> Self {
        Self {
            strategy,
            counter: AtomicUsize::new(0),
            weighted: Mutex::new(()),
            favourite: AtomicUsize::new(0),
            tolerance,
            ring: Mutex::new((Vec::new(), Arc::new(Ring::default()))),
        }
    }

    pub(crate) fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Picks one of `pick.candidates`; returns its index.
    pub(crate) fn pick(&self, pick: &Pick<'_>, rng: &Mutex<SmallRng>) -> usize {
        let candidates = pick.candidates;
        debug_assert!(!candidates.is_empty());
        let n = candidates.len();
        let turn = || self.counter.fetch_add(1, Ordering::Relaxed);
        let random = |below: usize| {
            rng.lock()
                .unwrap_or_else(|e| e.into_inner())
                .random_range(0..below.max(1))
        };
        let scaled = |member: &Member| -> u64 {
            (member.effective_weight(pick.now, pick.slow_start) * WEIGHT_SCALE)
                .round()
                .max(1.0) as u64
        };
        match self.strategy {
            Strategy::RoundRobin => turn() % n,
            Strategy::FirstAvailable => 0,
            Strategy::Weighted => self.smooth_weighted(candidates, scaled),
            Strategy::Random => {
                let total: u64 = candidates.iter().map(|m| scaled(m)).sum();
                let mut ticket = random(total as usize) as u64;
                for (i, member) in candidates.iter().enumerate() {
                    let weight = scaled(member);
                    if ticket < weight {
                        return i;
                    }
                    ticket -= weight;
                }
                n - 1
            }
            Strategy::LeastInFlight => {
                let start = turn() % n;
                (0..n)
                    .map(|k| (start + k) % n)
                    .min_by_key(|&i| candidates[i].in_flight())
                    .unwrap_or(0)
            }
            Strategy::Fastest => self.fastest(candidates, turn() % n),
            Strategy::PowerOfTwo => {
                if n == 1 {
                    return 0;
                }
                let a = random(n);
                let b = (a + 1 + random(n - 1)) % n;
                let cost = |i: usize| candidates[i].cost(pick.now, pick.slow_start);
                if cost(b) < cost(a) { b } else { a }
            }
            Strategy::Hash => {
                let Some(key) = pick.key else {
                    return turn() % n;
                };
                let len = pick.all.len().max(1);
                let start = (key % len as u64) as usize;
                (0..len)
                    .find_map(|k| position(candidates, pick.all.get((start + k) % len)?))
                    .unwrap_or(0)
            }
            Strategy::ConsistentHash => {
                let key = pick.key.unwrap_or_else(|| random(usize::MAX) as u64);
                let ring = self.ring_for(pick.all);
                ring.walk(key)
                    .find_map(|index| position(candidates, pick.all.get(index)?))
                    .unwrap_or(0)
            }
        }
    }

    fn fastest(&self, candidates: &[&Arc<Member>], start: usize) -> usize {
        let n = candidates.len();
        let order = (0..n).map(|k| (start + k) % n);
        // Unmeasured members sort first (None < Some), so each gets measured.
        let best = order.min_by_key(|&i| candidates[i].ewma()).unwrap_or(0);
        let Some(best_latency) = candidates[best].ewma() else {
            return best;
        };
        let favourite = self.favourite.load(Ordering::Relaxed);
        let kept = candidates
            .iter()
            .position(|m| Arc::as_ptr(m) as usize == favourite);
        if let Some(i) = kept
            && candidates[i]
                .ewma()
                .is_some_and(|latency| latency <= best_latency + self.tolerance)
        {
            return i;
        }
        self.favourite
            .store(Arc::as_ptr(candidates[best]) as usize, Ordering::Relaxed);
        best
    }

    /// The consistent-hash ring for `all`, rebuilt when names or weights changed.
    fn ring_for(&self, all: &[Arc<Member>]) -> Arc<Ring> {
        let mut cached = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let same = cached.0.len() == all.len()
            && cached
                .0
                .iter()
                .zip(all)
                .all(|((name, weight), m)| name == m.name() && *weight == m.weight());
        if !same {
            let signature: RingSignature = all
                .iter()
                .map(|m| (m.name().to_owned(), m.weight()))
                .collect();
            let ring = Ring::build(signature.iter().map(|(n, w)| (n.as_str(), *w)));
            *cached = (signature, Arc::new(ring));
        }
        cached.1.clone()
    }

    fn smooth_weighted(
        &self,
        candidates: &[&Arc<Member>],
        weight_of: impl Fn(&Member) -> u64,
    ) -> usize {
        let _guard = self.weighted.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best = 0;
        let mut best_weight = i64::MIN;
        for (i, member) in candidates.iter().enumerate() {
            let weight = weight_of(member) as i64;
            total += weight;
            let current = member.current_weight.fetch_add(weight, Ordering::Relaxed) + weight;
            if current > best_weight {
                best_weight = current;
                best = i;
            }
        }
        candidates[best]
            .current_weight
            .fetch_sub(total, Ordering::Relaxed);
        best
    }
}

/// Where `member` is among `candidates`, if it is one.
fn position(candidates: &[&Arc<Member>], member: &Arc<Member>) -> Option<usize> {
    candidates.iter().position(|c| Arc::ptr_eq(c, member))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::chain::Chain;
    use crate::pool::Upstream;
    use crate::pool::ring::stable_hash;

    impl Selector {
        /// A pick among `refs` as the whole pool, without a key.
        fn pick_simple(&self, refs: &[&Arc<Member>], rng: &Mutex<SmallRng>) -> usize {
            let all: Vec<Arc<Member>> = refs.iter().map(|m| Arc::clone(m)).collect();
            self.pick_keyed(refs, &all, None, rng)
        }

        fn pick_keyed(
            &self,
            refs: &[&Arc<Member>],
            all: &[Arc<Member>],
            key: Option<u64>,
            rng: &Mutex<SmallRng>,
        ) -> usize {
            let pick = Pick {
                candidates: refs,
                all,
                key,
                now: Instant::now(),
                slow_start: Duration::ZERO,
            };
            self.pick(&pick, rng)
        }
    }

    fn members(weights: &[u32]) -> Vec<Arc<Member>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Member::new(
                    Upstream::new(Chain::direct())
                        .name(format!("m{i}"))
                        .weight(w),
                ))
            })
            .collect()
    }

    fn counts(strategy: Strategy, weights: &[u32], picks: usize) -> Vec<usize> {
        let members = members(weights);
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::new(strategy);
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        let mut counts = vec![0; weights.len()];
        for _ in 0..picks {
            counts[selector.pick_simple(&refs, &rng)] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_is_even() {
        assert_eq!(
            counts(Strategy::RoundRobin, &[1, 1, 1], 300),
            [100, 100, 100]
        );
    }

    #[test]
    fn smooth_weighted_is_exact_and_interleaved() {
        assert_eq!(counts(Strategy::Weighted, &[5, 1, 1], 700), [500, 100, 100]);
        let members = members(&[5, 1, 1]);
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::new(Strategy::Weighted);
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        let sequence: Vec<_> = (0..7).map(|_| selector.pick_simple(&refs, &rng)).collect();
        // nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
        assert_eq!(sequence, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn random_follows_weights_within_bounds() {
        let counts = counts(Strategy::Random, &[3, 1], 8000);
        // Expected 6000/2000; 5 standard deviations is about ±195.
        assert!((5800..6200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn least_in_flight_prefers_idle_members() {
        let members = members(&[1, 1, 1]);
        members[0].acquire();
        members[1].acquire();
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::new(Strategy::LeastInFlight);
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        assert!((0..10).all(|_| selector.pick_simple(&refs, &rng) == 2));
    }

    #[test]
    fn fastest_explores_then_exploits() {
        let members = members(&[1, 1, 1]);
        members[0].record_success(std::time::Duration::from_millis(30));
        members[1].record_success(std::time::Duration::from_millis(5));
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::new(Strategy::Fastest);
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        assert_eq!(selector.pick_simple(&refs, &rng), 2, "unmeasured first");
        members[2].record_success(std::time::Duration::from_millis(50));
        assert!((0..10).all(|_| selector.pick_simple(&refs, &rng) == 1));
    }

    #[test]
    fn fastest_keeps_its_favourite_within_the_tolerance() {
        use std::time::Duration;
        let members = members(&[1, 1]);
        members[0].record_success(Duration::from_millis(20));
        members[1].record_success(Duration::from_millis(21));
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::with_tolerance(Strategy::Fastest, Duration::from_millis(5));
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        assert_eq!(selector.pick_simple(&refs, &rng), 0);
        // Member 1 becomes slightly faster: within the tolerance, no switch.
        for _ in 0..10 {
            members[1].record_success(Duration::from_millis(17));
        }
        assert!((0..10).all(|_| selector.pick_simple(&refs, &rng) == 0));
        // Clearly faster: switch.
        for _ in 0..10 {
            members[1].record_success(Duration::from_millis(5));
        }
        assert_eq!(selector.pick_simple(&refs, &rng), 1);
    }

    #[test]
    fn names_round_trip() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
        }
        assert_eq!("leastconn".parse(), Ok(Strategy::LeastInFlight));
        assert!("fair".parse::<Strategy>().unwrap_err().contains("p2c"));
    }

    /// The member each of `keys` keys lands on, by name.
    fn owners(selector: &Selector, all: &[Arc<Member>], keys: u32) -> Vec<String> {
        let refs: Vec<&Arc<Member>> = all.iter().collect();
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        (0..keys)
            .map(|k| {
                let key = stable_hash(&k.to_be_bytes());
                let i = selector.pick_keyed(&refs, all, Some(key), &rng);
                refs[i].name().to_owned()
            })
            .collect()
    }

    #[test]
    fn hash_is_sticky_and_spreads_evenly() {
        let all = members(&[1, 1, 1, 1]);
        let selector = Selector::new(Strategy::Hash);
        let first = owners(&selector, &all, 8_000);
        assert_eq!(
            first,
            owners(&selector, &all, 8_000),
            "same key, same member"
        );
        for name in ["m0", "m1", "m2", "m3"] {
            let count = first.iter().filter(|o| *o == name).count();
            // 2000 expected; 5 standard deviations is about ±194.
            assert!((1_800..2_200).contains(&count), "{name}: {count}");
        }
    }

    #[test]
    fn hash_sends_a_keys_traffic_elsewhere_only_while_its_member_is_out() {
        let all = members(&[1, 1, 1]);
        let selector = Selector::new(Strategy::Hash);
        let before = owners(&selector, &all, 3_000);
        // m1 unavailable: only its keys move.
        let refs: Vec<&Arc<Member>> = vec![&all[0], &all[2]];
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        for (k, owner) in before.iter().enumerate() {
            let key = stable_hash(&(k as u32).to_be_bytes());
            let now = refs[selector.pick_keyed(&refs, &all, Some(key), &rng)].name();
            if owner != "m1" {
                assert_eq!(now, owner);
            }
        }
    }

    #[test]
    fn consistent_hash_moves_about_one_in_n_keys_when_a_member_joins_or_leaves() {
        let selector = Selector::new(Strategy::ConsistentHash);
        let four = members(&[1, 1, 1, 1]);
        let before = owners(&selector, &four, 20_000);
        let mut five = four.clone();
        five.push(Arc::new(Member::new(
            Upstream::new(Chain::direct()).name("m4"),
        )));
        let after = owners(&selector, &five, 20_000);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        assert!(
            moved.iter().all(|(_, a)| *a == "m4"),
            "keys move only to the newcomer"
        );
        let fraction = moved.len() as f64 / 20_000.0;
        assert!((0.15..0.25).contains(&fraction), "joined: {fraction}");
        // And back: removing it restores every key's old member.
        assert_eq!(owners(&selector, &four, 20_000), before);
        // Removing one of four moves its keys (about a quarter) and only those.
        let three: Vec<_> = four.iter().filter(|m| m.name() != "m2").cloned().collect();
        let left = owners(&selector, &three, 20_000);
        let moved = before.iter().zip(&left).filter(|(b, a)| b != a).count();
        let owned = before.iter().filter(|b| *b == "m2").count();
        assert_eq!(moved, owned);
        assert!(
            (0.2..0.3).contains(&(moved as f64 / 20_000.0)),
            "left: {moved}"
        );
    }

    #[test]
    fn power_of_two_prefers_the_less_loaded_and_spreads_ties() {
        let all = members(&[1, 1, 1, 1]);
        let refs: Vec<&Arc<Member>> = all.iter().collect();
        let selector = Selector::new(Strategy::PowerOfTwo);
        let rng = Mutex::new(SmallRng::seed_from_u64(3));
        let mut counts = [0usize; 4];
        for _ in 0..8_000 {
            counts[selector.pick_simple(&refs, &rng)] += 1;
        }
        for count in counts {
            assert!((1_800..2_200).contains(&count), "{counts:?}");
        }
        // A member with ten connections in flight loses every comparison it is drawn into.
        for _ in 0..10 {
            all[0].acquire();
        }
        let busy = (0..4_000)
            .filter(|_| selector.pick_simple(&refs, &rng) == 0)
            .count();
        assert_eq!(busy, 0);
        // A slow member loses too.
        all[1].record_success(Duration::from_millis(500));
        all[2].record_success(Duration::from_millis(1));
        all[3].record_success(Duration::from_millis(1));
        let slow = (0..4_000)
            .filter(|_| selector.pick_simple(&refs, &rng) == 1)
            .count();
        assert_eq!(slow, 0);
    }
}
