//! One member of a pool: its configuration and its live state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use mtgate_proto::address::Address;
use tokio::time::Instant;

use super::ejection::EjectionPolicy;
use crate::chain::Chain;
use crate::tls::BackendTls;

/// A pool member as configured: how to reach it, its weight, whether it is a backup.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub(crate) name: String,
    pub(crate) chain: Chain,
    pub(crate) destination: Option<Address>,
    pub(crate) weight: u32,
    pub(crate) backup: bool,
    pub(crate) max_connections: Option<u32>,
    pub(crate) tls: Option<BackendTls>,
}

impl Upstream {
    /// A member that connects through `chain` (a proxy, a chain, or direct) to the target the
    /// caller asks for. Its name is the chain's redacted URL.
    pub fn new(chain: impl Into<Chain>) -> Self {
        let chain = chain.into();
        Self {
            name: chain.to_string(),
            chain,
            destination: None,
            weight: 1,
            backup: false,
            max_connections: None,
            tls: None,
        }
    }

    /// A member that always connects to `destination` (a backend, for load balancing servers
    /// rather than proxies), through `chain`.
    pub fn backend(chain: impl Into<Chain>, destination: Address) -> Self {
        let mut upstream = Self::new(chain);
        upstream.name = if upstream.chain.is_direct() {
            destination.to_string()
        } else {
            format!("{} -> {destination}", upstream.chain)
        };
        upstream.destination = Some(destination);
        upstream
    }

    /// Renames the member (names identify members in stats and runtime changes).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the weight (for weighted strategies; 0 counts as 1). Default 1.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// Marks the member as a backup: used only when no primary member is available.
    pub fn backup(mut self) -> Self {
        self.backup = true;
        self
    }

    /// Caps the connections open through the member at once; at the cap it gets no new ones.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = Some(max.max(1));
        self
    }

    /// Speaks TLS to the backend itself once the tunnel is open (e.g. for `wss://` servers).
    /// The handshake is part of the attempt: it runs under the same timeout, and a failure
    /// (a certificate that does not verify, say) counts against the member and moves on to
    /// another one, like a failed dial. Health checks run over it too.
    pub fn tls(mut self, tls: BackendTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The member's name.
    pub fn member_name(&self) -> &str {
        &self.name
    }
}

/// A member's state, as reported in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Selectable.
    Healthy,
    /// Taken out by passive ejection for the time given.
    Ejected {
        /// Time until it comes back.
        remaining: Duration,
    },
    /// Failing active health checks.
    Down,
    /// Taken out of rotation by the operator: no new connections, open ones finish.
    Draining,
    /// Disabled by the operator.
    Disabled,
}

impl MemberState {
    /// A lowercase name for APIs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Ejected { .. } => "ejected",
            Self::Down => "down",
            Self::Draining => "draining",
            Self::Disabled => "disabled",
        }
    }
}

/// A snapshot of a member's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStats {
    /// The member's name.
    pub name: String,
    /// Whether it is a backup.
    pub backup: bool,
    /// Its weight.
    pub weight: u32,
    /// Its weight now, lower while it slowly starts after a recovery.
    pub effective_weight: f64,
    /// Its connection cap.
    pub max_connections: Option<u32>,
    /// Its state.
    pub state: MemberState,
    /// Connections open through it now (handshakes included).
    pub in_flight: u32,
    /// Successful connects.
    pub successes: u64,
    /// Failed connects counted against it.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Exponentially weighted moving average of connect latency, once measured.
    pub ewma_latency: Option<Duration>,
    /// How many times it was ejected (decays with successes).
    pub times_ejected: u32,
    /// The last failure's stage and reason, e.g. `negotiate/timeout`.
    pub last_error: Option<String>,
}

/// Health bookkeeping guarded by one lock.
#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
    down: bool,
    check_successes: u32,
    check_failures: u32,
    last_error: Option<String>,
    /// Peak EWMA of connect latency in nanoseconds (0: unmeasured) and when it was updated.
    peak_nanos: f64,
    peak_at: Option<Instant>,
    /// When the member last came back (slow start ramps from here).
    recovered_at: Option<Instant>,
}

/// What an active check result did to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    WentDown,
    CameUp,
}

/// Weight of a new latency sample in the EWMA.
const EWMA_ALPHA: f64 = 0.3;

/// Peak EWMA: the latency assumed for a member never measured (Linkerd's default).
const PEAK_DEFAULT: Duration = Duration::from_millis(30);
/// Peak EWMA: time constant of the decay towards lower samples.
const PEAK_DECAY: Duration = Duration::from_secs(10);
/// Slow start never sends a recovering member less than this share of its weight.
const SLOW_START_FLOOR: f64 = 0.05;

/// A member with its live counters.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) config: Upstream,
    weight: AtomicU32,
    enabled: AtomicBool,
    draining: AtomicBool,
    /// Removed from the pool once drained.
    pub(crate) remove_when_drained: AtomicBool,
    in_flight: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
    ewma_nanos: AtomicU64,
    /// Smooth weighted round-robin's running weight.
    pub(crate) current_weight: AtomicI64,
    health: Mutex<Health>,
}

impl Member {
    pub(crate) fn new(config: Upstream) -> Self {
        Self {
            weight: AtomicU32::new(config.weight.max(1)),
            config,
            enabled: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            remove_when_drained: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            ewma_nanos: AtomicU64::new(0),
            current_weight: AtomicI64::new(0),
            health: Mutex::new(Health::default()),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic while holding this lock leaves plain counters behind; keep using them.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Takes new connections at all: enabled and not draining (health aside).
    pub(crate) fn in_rotation(&self) -> bool {
        self.is_enabled() && !self.is_draining()
    }

    pub(crate) fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    /// Below its connection cap.
    pub(crate) fn has_room(&self) -> bool {
        self.config
            .max_connections
            .is_none_or(|max| self.in_flight() < max)
    }

    /// Selectable now: in rotation, below its cap, not down, not ejected.
    pub(crate) fn is_available(&self, now: Instant) -> bool {
        if !self.in_rotation() || !self.has_room() {
            return false;
        }
        let health = self.health();
        !health.down && health.ejected_until.is_none_or(|until| now >= until)
    }

    /// The share of its weight the member gets now: ramps linearly from a small floor to 1
    /// over `slow_start` after it came back.
    pub(crate) fn ramp(&self, now: Instant, slow_start: Duration) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        let Some(recovered) = self.health().recovered_at else {
            return 1.0;
        };
        let elapsed = now.saturating_duration_since(recovered);
        (elapsed.as_secs_f64() / slow_start.as_secs_f64()).clamp(SLOW_START_FLOOR, 1.0)
    }

    /// Weight times the slow-start ramp.
    pub(crate) fn effective_weight(&self, now: Instant, slow_start: Duration) -> f64 {
        f64::from(self.weight()) * self.ramp(now, slow_start)
    }

    /// Peak-EWMA cost for power-of-two-choices: latency estimate × (in flight + 1), divided
    /// by the slow-start ramp so that a recovering member gets less.
    pub(crate) fn cost(&self, now: Instant, slow_start: Duration) -> f64 {
        let estimate = {
            let health = self.health();
            if health.peak_nanos > 0.0 {
                health.peak_nanos
            } else {
                PEAK_DEFAULT.as_nanos() as f64
            }
        };
        estimate * f64::from(self.in_flight() + 1) / self.ramp(now, slow_start)
    }

    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.health().ejected_until.is_some_and(|until| now < until)
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn acquire(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection if the member is below its cap.
    pub(crate) fn try_acquire(&self) -> bool {
        let Some(max) = self.config.max_connections else {
            self.acquire();
            return true;
        };
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn ewma(&self) -> Option<Duration> {
        match self.ewma_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    pub(crate) fn record_success(&self, latency: Duration) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        let sample = (latency.as_nanos().min(u128::from(u64::MAX / 2)) as u64).max(1);
        let old = self.ewma_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (EWMA_ALPHA * sample as f64 + (1.0 - EWMA_ALPHA) * old as f64) as u64
        };
        self.ewma_nanos.store(new.max(1), Ordering::Relaxed);
        let now = Instant::now();
        let mut health = self.health();
        health.consecutive_failures = 0;
        if health.ejected_until.take().is_some() {
            health.times_ejected = health.times_ejected.saturating_sub(1);
        }
        // Peak EWMA: jump to a higher sample at once, decay towards lower ones with time.
        let sample = sample as f64;
        health.peak_nanos = match health.peak_at {
            Some(at) if health.peak_nanos > 0.0 && sample < health.peak_nanos => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let keep = (-elapsed / PEAK_DECAY.as_secs_f64()).exp();
                health.peak_nanos * keep + sample * (1.0 - keep)
            }
            _ => sample,
        };
        health.peak_at = Some(now);
    }

    /// Counts a failure; ejects the member when the policy says so and `may_eject` allows.
    /// Returns the ejection time if it was ejected.
    pub(crate) fn record_failure(
        &self,
        error: String,
        policy: &EjectionPolicy,
        may_eject: bool,
        now: Instant,
    ) -> Option<Duration> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut health = self.health();
        health.last_error = Some(error);
        health.consecutive_failures += 1;
        let already = health.ejected_until.is_some_and(|until| now < until);
        if already || !may_eject || health.consecutive_failures < policy.consecutive_failures {
            return None;
        }
        health.times_ejected += 1;
        let time = policy.ejection_time(health.times_ejected);
        health.ejected_until = Some(now + time);
        // Slow start, if configured, ramps from the end of the ejection.
        health.recovered_at = Some(now + time);
        health.consecutive_failures = 0;
        Some(time)
    }

    /// Applies an active check result with the rise/fall thresholds.
    pub(crate) fn record_check(
        &self,
        ok: bool,
        rise: u32,
        fall: u32,
        error: Option<String>,
    ) -> Transition {
        let mut health = self.health();
        if ok {
            health.check_failures = 0;
            health.check_successes += 1;
            if health.check_successes >= rise {
                // Healthy by active checks: a passive ejection may end early.
                if health.ejected_until.take().is_some() {
                    health.recovered_at = Some(Instant::now());
                }
                if health.down {
                    health.down = false;
                    health.consecutive_failures = 0;
                    health.recovered_at = Some(Instant::now());
                    return Transition::CameUp;
                }
            }
        } else {
            health.check_successes = 0;
            health.check_failures += 1;
            if let Some(error) = error {
                health.last_error = Some(error);
            }
            if !health.down && health.check_failures >= fall {
                health.down = true;
                return Transition::WentDown;
            }
        }
        Transition::None
    }

    pub(crate) fn stats(&self, now: Instant, slow_start: Duration) -> MemberStats {
        let effective_weight = self.effective_weight(now, slow_start);
        let health = self.health();
        let state = if !self.is_enabled() {
            MemberState::Disabled
        } else if self.is_draining() {
            MemberState::Draining
        } else if health.down {
            MemberState::Down
        } else {
            match health.ejected_until {
                Some(until) if now < until => MemberState::Ejected {
                    remaining: until - now,
                },
                _ => MemberState::Healthy,
            }
        };
        MemberStats {
            name: self.config.name.clone(),
            backup: self.config.backup,
            weight: self.weight(),
            effective_weight,
            max_connections: self.config.max_connections,
            state,
            in_flight: self.in_flight(),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: health.consecutive_failures,
            ewma_latency: self.ewma(),
            times_ejected: health.times_ejected,
            last_error: health.last_error.clone(),
        }
    }
}
