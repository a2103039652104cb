//! Every live connection, with its last activity, its buffered bytes and a kill switch: what
//! memory-pressure eviction, idle timeouts and shutdown act on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One live connection.
#[derive(Debug)]
pub struct ConnEntry {
    epoch: Instant,
    last_active_ms: AtomicU64,
    held: AtomicUsize,
    kill: CancellationToken,
}

impl ConnEntry {
    /// An entry not tracked by any registry (tests, short-lived helpers).
    pub fn new_detached() -> Self {
        Self::with_epoch(Instant::now())
    }

    /// An entry whose activity times count from `epoch` (shared by a registry's entries so
    /// they compare).
    fn with_epoch(epoch: Instant) -> Self {
        Self {
            epoch,
            last_active_ms: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            kill: CancellationToken::new(),
        }
    }

    /// Notes that bytes moved now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// When bytes last moved.
    pub fn last_active(&self) -> Instant {
        self.epoch + std::time::Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }

    /// Bytes of relay buffers this connection holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub(super) fn add_held(&self, n: usize) {
        self.held.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn sub_held(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    /// Fires when the connection must close (eviction or shutdown deadline).
    pub fn killed(&self) -> &CancellationToken {
        &self.kill
    }
}

/// The set of live connections.
#[derive(Debug)]
pub struct ConnRegistry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnEntry>>>,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub struct Registration<'a> {
    registry: &'a ConnRegistry,
    id: u64,
    entry: Arc<ConnEntry>,
}

impl Registration<'_> {
    /// The connection's entry.
    pub fn entry(&self) -> &ConnEntry {
        &self.entry
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Default for ConnRegistry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::default(),
        }
    }
}

impl ConnRegistry {
    /// Adds a connection.
    pub fn register(&self) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(ConnEntry::with_epoch(self.epoch));
        entry.touch();
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry.clone());
        Registration {
            registry: self,
            id,
            entry,
        }
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kills every connection.
    pub fn kill_all(&self) {
        for entry in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            entry.kill.cancel();
        }
    }

    /// Kills the longest-idle connections that hold buffers until at least `bytes` of buffers
    /// will be released. Returns how many were killed.
    pub fn evict_idlest(&self, bytes: usize) -> usize {
        let mut holders: Vec<Arc<ConnEntry>> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.held() > 0 && !e.kill.is_cancelled())
            .cloned()
            .collect();
        holders.sort_by_key(|e| e.last_active_ms.load(Ordering::Relaxed));
        let mut freed = 0;
        let mut killed = 0;
        for entry in holders {
            if freed >= bytes {
                break;
            }
            freed += entry.held();
            entry.kill.cancel();
            killed += 1;
        }
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn evicts_the_longest_idle_holders_first() {
        let registry = ConnRegistry::default();
        let old = registry.register();
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let recent = registry.register();
        let idle_without_buffers = registry.register();
        old.entry().add_held(100);
        recent.entry().add_held(100);
        assert_eq!(registry.len(), 3);
        assert_eq!(registry.evict_idlest(50), 1);
        assert!(old.entry().killed().is_cancelled());
        assert!(!recent.entry().killed().is_cancelled());
        assert!(!idle_without_buffers.entry().killed().is_cancelled());
        drop(old);
        assert_eq!(registry.len(), 2);
    }
}
