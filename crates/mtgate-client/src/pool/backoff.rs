//! Retry policy: bounded attempts, full-jitter exponential backoff between rounds.

use std::time::Duration;

use rand::{Rng, RngExt};

/// Full-jitter exponential backoff: before retry round `n` (0-based) sleep a uniformly random
/// time in `[0, min(cap, base · 2ⁿ)]`, the schedule the AWS "Exponential Backoff and Jitter"
/// study recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The ceiling for round `n`: `min(cap, base · 2ⁿ)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random delay for round `n`, uniform in `[0, ceiling(n)]`.
    pub fn delay<R: Rng + ?Sized>(&self, n: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(n).as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

/// How a pool retries a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in all, the first included (at least 1). Default 3.
    pub max_attempts: u32,
    /// The pause between rounds; within a round each member is tried at most once, without
    /// pausing.
    pub backoff: Backoff,
    /// A budget for all attempts and pauses together; an attempt's timeout is cut to what is
    /// left of it.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            deadline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let ceilings: Vec<_> = (0..6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_spread() {
        let backoff = Backoff::default();
        let mut rng = SmallRng::seed_from_u64(7);
        for n in 0..10 {
            let samples: Vec<_> = (0..200).map(|_| backoff.delay(n, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= backoff.ceiling(n)));
            let mean = samples.iter().sum::<Duration>() / 200;
            // Uniform on [0, c]: the mean is c/2; allow a wide margin.
            let half = backoff.ceiling(n) / 2;
            assert!(
                mean > half * 7 / 10 && mean < half * 13 / 10,
                "round {n}: mean {mean:?}"
            );
        }
    }
}
