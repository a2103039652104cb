//! How a pool picks among the members that are available.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::member::Member;

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
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::RoundRobin,
            Self::Weighted,
            Self::Random,
            Self::LeastInFlight,
            Self::Fastest,
            Self::FirstAvailable,
        ]
        .into_iter()
        .find(|strategy| strategy.name() == s)
        .ok_or_else(|| format!("unknown strategy {s:?}"))
    }
}

/// How much faster another member must be before [`Strategy::Fastest`] switches to it
/// (see [`super::PoolBuilder::fastest_tolerance`]).
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_millis(5);

/// The strategy with the state it keeps between picks.
#[derive(Debug)]
pub(crate) struct Selector {
    strategy: Strategy,
    counter: AtomicUsize,
    weighted: Mutex<()>,
    /// Fastest: the favourite, by address (compared, never dereferenced).
    favourite: AtomicUsize,
    tolerance: Duration,
}

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
        }
    }

    pub(crate) fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Picks one of `candidates` (non-empty, in configuration order); returns its index.
    pub(crate) fn pick(&self, candidates: &[&Arc<Member>], rng: &Mutex<SmallRng>) -> usize {
        debug_assert!(!candidates.is_empty());
        let n = candidates.len();
        let turn = || self.counter.fetch_add(1, Ordering::Relaxed);
        match self.strategy {
            Strategy::RoundRobin => turn() % n,
            Strategy::FirstAvailable => 0,
            Strategy::Weighted => self.smooth_weighted(candidates),
            Strategy::Random => {
                let total: u64 = candidates.iter().map(|m| u64::from(m.config.weight)).sum();
                let mut ticket = rng
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .random_range(0..total.max(1));
                for (i, member) in candidates.iter().enumerate() {
                    let weight = u64::from(member.config.weight);
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
            Strategy::Fastest => {
                let start = turn() % n;
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
        }
    }

    fn smooth_weighted(&self, candidates: &[&Arc<Member>]) -> usize {
        let _guard = self.weighted.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best = 0;
        let mut best_weight = i64::MIN;
        for (i, member) in candidates.iter().enumerate() {
            let weight = i64::from(member.config.weight);
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::chain::Chain;
    use crate::pool::Upstream;

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
            counts[selector.pick(&refs, &rng)] += 1;
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
        let sequence: Vec<_> = (0..7).map(|_| selector.pick(&refs, &rng)).collect();
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
        assert!((0..10).all(|_| selector.pick(&refs, &rng) == 2));
    }

    #[test]
    fn fastest_explores_then_exploits() {
        let members = members(&[1, 1, 1]);
        members[0].record_success(std::time::Duration::from_millis(30));
        members[1].record_success(std::time::Duration::from_millis(5));
        let refs: Vec<&Arc<Member>> = members.iter().collect();
        let selector = Selector::new(Strategy::Fastest);
        let rng = Mutex::new(SmallRng::seed_from_u64(1));
        assert_eq!(selector.pick(&refs, &rng), 2, "unmeasured first");
        members[2].record_success(std::time::Duration::from_millis(50));
        assert!((0..10).all(|_| selector.pick(&refs, &rng) == 1));
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
        assert_eq!(selector.pick(&refs, &rng), 0);
        // Member 1 becomes slightly faster: within the tolerance, no switch.
        for _ in 0..10 {
            members[1].record_success(Duration::from_millis(17));
        }
        assert!((0..10).all(|_| selector.pick(&refs, &rng) == 0));
        // Clearly faster: switch.
        for _ in 0..10 {
            members[1].record_success(Duration::from_millis(5));
        }
        assert_eq!(selector.pick(&refs, &rng), 1);
    }

    #[test]
    fn names_round_trip() {
        for s in [
            "round-robin",
            "weighted",
            "random",
            "least-in-flight",
            "fastest",
            "first-available",
        ] {
            assert_eq!(s.parse::<Strategy>().unwrap().name(), s);
        }
    }
}
