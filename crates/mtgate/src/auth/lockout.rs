//! Locking out client addresses after repeated authentication failures.
//!
//! Failures are counted per address (IPv6 per /64, since one host holds a whole /64) in a
//! window; at the threshold the address is locked out for a while, during which even correct
//! credentials are refused. The table is bounded: when full, expired entries go first, and if
//! none has expired the new address is not tracked (the limit of the table, not a bypass of
//! the lock of addresses already in it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// When to lock an address out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that lock the address (0 disables the lockout).
    pub failures: u32,
    /// The counting window.
    pub window: Duration,
    /// How long the lock lasts.
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    first: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Failure counts per client address.
#[derive(Debug)]
pub struct Lockout {
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
        }
    }
}

/// The key an address is counted under.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6([s[0], s[1], s[2], s[3], 0, 0, 0, 0].into())
        }
        v4 => v4,
    }
}

impl Lockout {
    /// Whether `ip` is locked out now.
    pub fn is_locked(&self, ip: IpAddr, now: Instant) -> bool {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table
            .get(&key(ip))
            .and_then(|e| e.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failure; returns true when it locks the address.
    pub fn failure(&self, ip: IpAddr, policy: &LockoutPolicy, now: Instant) -> bool {
        if policy.failures == 0 {
            return false;
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(ip);
        if !table.contains_key(&k) && table.len() >= MAX_TRACKED {
            table.retain(|_, e| !expired(e, policy, now));
            if table.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = table.entry(k).or_insert(Entry {
            first: now,
            count: 0,
            locked_until: None,
        });
        if expired(entry, policy, now) {
            *entry = Entry {
                first: now,
                count: 0,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= policy.failures && entry.locked_until.is_none_or(|u| u <= now) {
            entry.locked_until = Some(now + policy.duration);
            return true;
        }
        false
    }

    /// Forgets the failures of `ip` after a success.
    pub fn success(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&key(ip));
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn expired(entry: &Entry, policy: &LockoutPolicy, now: Instant) -> bool {
    match entry.locked_until {
        Some(until) => now >= until,
        None => now.duration_since(entry.first) >= policy.window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy {
        failures: 3,
        window: Duration::from_secs(60),
        duration: Duration::from_secs(300),
    };

    #[tokio::test(start_paused = true)]
    async fn locks_after_the_threshold_and_expires() {
        let lockout = Lockout::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        assert!(!lockout.failure(ip, &POLICY, now));
        assert!(!lockout.failure(ip, &POLICY, now));
        assert!(!lockout.is_locked(ip, now));
        assert!(lockout.failure(ip, &POLICY, now));
        assert!(lockout.is_locked(ip, now + Duration::from_secs(299)));
        assert!(!lockout.is_locked(ip, now + Duration::from_secs(300)));
        // The count starts over after the lock.
        let later = now + Duration::from_secs(301);
        assert!(!lockout.failure(ip, &POLICY, later));
    }

    #[tokio::test(start_paused = true)]
    async fn window_and_success_reset_and_v6_prefixes() {
        let lockout = Lockout::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let now = Instant::now();
        lockout.failure(a, &POLICY, now);
        lockout.failure(b, &POLICY, now);
        assert_eq!(lockout.tracked(), 1, "one /64");
        assert!(!lockout.failure(a, &POLICY, now + Duration::from_secs(61)));
        lockout.success(b);
        assert_eq!(lockout.tracked(), 0);
    }
}
