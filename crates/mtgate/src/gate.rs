//! Connection counters with limits that a reload can change: a connection enters if the count
//! is below the limit read at that moment, and leaves when its guard drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A counter of open connections.
#[derive(Debug, Default)]
pub struct Gate {
    open: AtomicUsize,
}

/// Holds a place in a [`Gate`] until dropped.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
}

impl Gate {
    /// Takes a place if fewer than `limit` are taken.
    pub fn try_enter(self: &Arc<Self>, limit: usize) -> Option<Pass> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Pass { gate: self.clone() })
    }

    /// Places taken.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_the_limit_and_releases() {
        let gate = Arc::new(Gate::default());
        let a = gate.try_enter(2).unwrap();
        let _b = gate.try_enter(2).unwrap();
        assert!(gate.try_enter(2).is_none());
        drop(a);
        assert_eq!(gate.open(), 1);
        assert!(gate.try_enter(2).is_some());
    }
}
