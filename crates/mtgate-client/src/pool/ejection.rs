//! Passive health: members that fail in a row are taken out for a while, longer each time.

use std::time::Duration;

/// When and for how long a failing member is ejected.
///
/// After `consecutive_failures` failures in a row (timeouts included) a member is ejected for
/// `min(max_time, base_time · 2^(k-1))`, where `k` counts its ejections; each success after
/// coming back lowers `k` by one. At most `max_ejected_fraction` of the members are ejected at
/// once (at least one may always be), and when nothing is left to choose the pool tries
/// ejected and down members anyway rather than fail without trying ("panic mode").
#[derive(Debug, Clone, PartialEq)]
pub struct EjectionPolicy {
    /// Failures in a row that eject a member. Default 3.
    pub consecutive_failures: u32,
    /// The first ejection's length. Default 10 s.
    pub base_time: Duration,
    /// The longest ejection. Default 5 min.
    pub max_time: Duration,
    /// Most members ejected at once, as a fraction of all. Default 1.0 (no cap).
    pub max_ejected_fraction: f64,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(300),
            max_ejected_fraction: 1.0,
        }
    }
}

impl EjectionPolicy {
    /// The length of the `k`-th ejection (1-based).
    pub fn ejection_time(&self, k: u32) -> Duration {
        let factor = 1u32
            .checked_shl(k.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.base_time.saturating_mul(factor).min(self.max_time)
    }

    /// Whether one more member may be ejected when `ejected` of `total` already are.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        ejected == 0 || ((ejected + 1) as f64) <= self.max_ejected_fraction * total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_time_doubles_to_the_cap() {
        let policy = EjectionPolicy {
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(60),
            ..Default::default()
        };
        let times: Vec<_> = (1..=5).map(|k| policy.ejection_time(k).as_secs()).collect();
        assert_eq!(times, [10, 20, 40, 60, 60]);
    }

    #[test]
    fn fraction_caps_ejections_but_one_is_always_allowed() {
        let policy = EjectionPolicy {
            max_ejected_fraction: 0.1,
            ..Default::default()
        };
        assert!(policy.may_eject(0, 3));
        assert!(!policy.may_eject(1, 3));
        let half = EjectionPolicy {
            max_ejected_fraction: 0.5,
            ..Default::default()
        };
        assert!(half.may_eject(1, 4));
        assert!(!half.may_eject(2, 4));
    }
}
