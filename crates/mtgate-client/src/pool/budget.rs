//! A retry budget: retries as a bounded fraction of requests over a sliding window, so that a
//! sick pool is not hammered by every caller retrying at once.
//!
//! Every connect deposits one request; every retry (an attempt after the first) withdraws one.
//! A retry is allowed while the window's retries stay under
//! `min_per_second × window + ratio × requests`, the shape of tower's and Envoy's budgets.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many retries a pool may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed as a fraction of requests in the window. Default 0.2.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the traffic. Default 10.
    pub min_per_second: u32,
    /// The window the counts cover. Default 10 s.
    pub window: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Slots the window is cut into; counts age out one slot at a time.
const SLOTS: usize = 10;

/// The budget's live counts: `SLOTS` buckets of (requests, retries).
#[derive(Debug)]
pub(crate) struct BudgetState {
    policy: RetryBudget,
    slots: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    counts: [(u64, u64); SLOTS],
    /// The slot `current` covers time from `current_started`.
    current: usize,
    current_started: Instant,
}

impl BudgetState {
    pub(crate) fn new(policy: RetryBudget) -> Self {
        Self {
            policy,
            slots: Mutex::new(Slots {
                counts: [(0, 0); SLOTS],
                current: 0,
                current_started: Instant::now(),
            }),
        }
    }

    fn slot_length(&self) -> Duration {
        (self.policy.window / SLOTS as u32).max(Duration::from_millis(1))
    }

    fn with_slots<T>(&self, f: impl FnOnce(&mut Slots) -> T) -> T {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let length = self.slot_length();
        let now = Instant::now();
        // Advance, clearing the slots that aged out (at most all of them).
        let mut steps = 0;
        while now.duration_since(slots.current_started) >= length && steps <= SLOTS {
            slots.current = (slots.current + 1) % SLOTS;
            let current = slots.current;
            slots.counts[current] = (0, 0);
            slots.current_started += length;
            steps += 1;
        }
        if steps > SLOTS {
            slots.current_started = now;
        }
        f(&mut slots)
    }

    /// Counts a request.
    pub(crate) fn deposit(&self) {
        self.with_slots(|slots| slots.counts[slots.current].0 += 1);
    }

    /// Takes one retry from the budget if there is one left.
    pub(crate) fn withdraw(&self) -> bool {
        let floor = f64::from(self.policy.min_per_second) * self.policy.window.as_secs_f64();
        let ratio = self.policy.ratio;
        self.with_slots(|slots| {
            let (requests, retries) = slots
                .counts
                .iter()
                .fold((0u64, 0u64), |(a, b), (r, t)| (a + r, b + t));
            let allowed = floor + ratio * requests as f64;
            if (retries as f64) < allowed {
                slots.counts[slots.current].1 += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32) -> BudgetState {
        BudgetState::new(RetryBudget {
            ratio,
            min_per_second,
            window: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_capped_by_the_ratio() {
        let budget = budget(0.2, 0);
        for _ in 0..100 {
            budget.deposit();
        }
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_retries_without_traffic() {
        let budget = budget(0.0, 2);
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 20, "2 per second over a 10 s window");
    }

    #[tokio::test(start_paused = true)]
    async fn spent_retries_age_out_of_the_window() {
        let budget = budget(0.5, 0);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 5);
        tokio::time::advance(Duration::from_secs(11)).await;
        // Old requests and retries are gone alike: nothing deposited, nothing to spend.
        assert!(!budget.withdraw());
        for _ in 0..4 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 2);
    }
}
