//! Structured failure records: what went wrong, where and when, kept in a bounded ring for
//! operators (the server's admin API shows them).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many records a pool keeps; older ones are dropped first.
pub const FAILURE_RING_CAPACITY: usize = 256;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// When it failed (wall clock).
    pub at: SystemTime,
    /// The member's name.
    pub member: String,
    /// The stage that failed (`connect`, `negotiate`, `check`, ...).
    pub stage: &'static str,
    /// What happened (`timeout`, `refused`, `http status 503`, ...).
    pub kind: String,
    /// Which attempt of its connect this was (1-based; 0 for a health check).
    pub attempt: u32,
}

/// The bounded ring, with a running total.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    inner: Mutex<(VecDeque<FailureRecord>, u64)>,
}

impl FailureLog {
    /// Appends a record, dropping the oldest when full.
    pub(crate) fn push(&self, record: FailureRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0.len() == FAILURE_RING_CAPACITY {
            inner.0.pop_front();
        }
        inner.0.push_back(record);
        inner.1 += 1;
    }

    /// The records kept, oldest first, and how many were ever recorded.
    pub(crate) fn snapshot(&self) -> (Vec<FailureRecord>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.0.iter().cloned().collect(), inner.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_all() {
        let log = FailureLog::default();
        let total = FAILURE_RING_CAPACITY as u32 + 10;
        for attempt in 0..total {
            log.push(FailureRecord {
                at: SystemTime::now(),
                member: "a".into(),
                stage: "connect",
                kind: "refused".into(),
                attempt,
            });
        }
        let (records, count) = log.snapshot();
        assert_eq!(count, u64::from(total));
        assert_eq!(records.len(), FAILURE_RING_CAPACITY);
        assert_eq!(records[0].attempt, 10);
        assert_eq!(records.last().unwrap().attempt, total - 1);
    }
}
