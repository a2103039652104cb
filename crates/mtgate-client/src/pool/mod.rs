//! Pools: many upstreams behind one `connect`, with selection strategies, passive ejection,
//! active health checks, retries with backoff and live statistics.
//!
//! # How a connect goes
//!
//! 1. Candidates are the members that are enabled, not draining, below their connection cap,
//!    not marked down by active checks and not ejected, primaries first; backups only when no
//!    primary is available. When nothing is available the pool tries every enabled member
//!    below its cap anyway ("panic mode") rather than fail without trying.
//! 2. The [`Strategy`] picks one (the keyed strategies by the connection's key, see
//!    [`Pool::connect_keyed`]); the attempt runs under [`ConnectOptions::timeout`].
//! 3. Success records the connect latency (EWMA) and resets the failure streak. The stream
//!    holds an in-flight count on the member until dropped.
//! 4. A failure blamed on the member ([`crate::Blame::Proxy`], timeouts included) counts
//!    towards its ejection ([`EjectionPolicy`]). A failure the target caused, or one the caller
//!    caused, is returned at once: another member would not fare better.
//! 5. Otherwise the next member is tried; each member at most once per round. Between rounds
//!    the pool sleeps a full-jitter exponential [`Backoff`], and it stops after
//!    [`RetryPolicy::max_attempts`] attempts with [`ConnectError::Exhausted`]. With a
//!    [`RetryBudget`], a retry also needs the budget's consent, so that a sick pool sees at
//!    most a fixed share of extra attempts.
//! 6. Every failed attempt is kept as a [`FailureRecord`] in a bounded ring
//!    ([`Pool::recent_failures`]).
//!
//! All of this happens before the stream is handed over, so no payload byte is ever sent
//! twice. Time is tokio's, so tests can pause it.
//!
//! The machinery is not proxy-specific: a member is any [`Chain`] (zero hops for a plain TCP
//! backend, see [`Upstream::backend`]), so the server's upstream pools use the same code.
//! A backend member may also speak TLS to the backend itself ([`Upstream::tls`], e.g. for
//! `wss://` servers): the handshake is part of the attempt (same timeout, a failure counts
//! against the member and moves on), and health checks run over it.

mod backoff;
mod budget;
mod ejection;
mod failures;
mod health;
mod lease;
mod member;
mod ring;
mod strategy;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use mtgate_proto::address::Address;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::{Instant, sleep_until};

pub use backoff::{Backoff, RetryPolicy};
pub use budget::RetryBudget;
pub use ejection::EjectionPolicy;
pub use failures::{FAILURE_RING_CAPACITY, FailureRecord};
pub use health::{HealthCheck, HealthTask, Probe};
pub(crate) use lease::Lease;
pub use member::{MemberState, MemberStats, Upstream};
pub use ring::stable_hash;
pub use strategy::Strategy;

use budget::BudgetState;
use failures::FailureLog;
use member::Member;
use strategy::{Pick, Selector};

use crate::chain::Chain;
use crate::connector::ConnectOptions;
use crate::error::{Blame, ConnectError};
use crate::handshake::Deadline;
use crate::stream::ProxyStream;
use crate::target::IntoTarget;

/// A pool of upstreams. Cheap to clone; clones share members and statistics.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
pub(crate) struct PoolInner {
    pub(crate) members: ArcSwap<Vec<Arc<Member>>>,
    selector: Selector,
    retry: RetryPolicy,
    ejection: EjectionPolicy,
    pub(crate) options: ConnectOptions,
    rng: Mutex<SmallRng>,
    slow_start: Duration,
    budget: Option<BudgetState>,
    pub(crate) failures: FailureLog,
}

/// Builds a [`Pool`].
#[derive(Debug)]
pub struct PoolBuilder {
    upstreams: Vec<Upstream>,
    strategy: Strategy,
    retry: RetryPolicy,
    ejection: EjectionPolicy,
    options: ConnectOptions,
    seed: Option<u64>,
    fastest_tolerance: Duration,
    slow_start: Duration,
    budget: Option<RetryBudget>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            strategy: Strategy::default(),
            retry: RetryPolicy::default(),
            ejection: EjectionPolicy::default(),
            options: ConnectOptions::default(),
            seed: None,
            fastest_tolerance: strategy::DEFAULT_TOLERANCE,
            slow_start: Duration::ZERO,
            budget: None,
        }
    }
}

impl PoolBuilder {
    /// Adds a member.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstreams.push(upstream);
        self
    }

    /// Adds a member for `proxy` with weight 1.
    pub fn proxy(self, proxy: impl Into<Chain>) -> Self {
        self.upstream(Upstream::new(proxy))
    }

    /// The selection strategy. Default round-robin.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Retries. Default: 3 attempts, 50 ms base, 2 s cap.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Passive ejection. Default: 3 failures in a row, 10 s doubling up to 5 min.
    pub fn ejection(mut self, ejection: EjectionPolicy) -> Self {
        self.ejection = ejection;
        self
    }

    /// Options for every attempt (and health check, with the check's timeout).
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// How much faster another member must be before [`Strategy::Fastest`] leaves its current
    /// favourite. Default 5 ms.
    pub fn fastest_tolerance(mut self, tolerance: Duration) -> Self {
        self.fastest_tolerance = tolerance;
        self
    }

    /// After a member comes back (from ejection or from failing health checks), its weight
    /// ramps linearly from 5 % to 100 % over this time. Default zero: at once.
    pub fn slow_start(mut self, time: Duration) -> Self {
        self.slow_start = time;
        self
    }

    /// Limits retries to a share of connects (see [`RetryBudget`]). Default: no budget, only
    /// [`RetryPolicy::max_attempts`].
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Seeds the random choices (random strategy, jitter), for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The pool.
    pub fn build(self) -> Pool {
        let members = self
            .upstreams
            .into_iter()
            .map(|u| Arc::new(Member::new(u)))
            .collect();
        let seed = self.seed.unwrap_or_else(rand::random);
        Pool {
            inner: Arc::new(PoolInner {
                members: ArcSwap::from_pointee(members),
                selector: Selector::with_tolerance(self.strategy, self.fastest_tolerance),
                retry: RetryPolicy {
                    max_attempts: self.retry.max_attempts.max(1),
                    ..self.retry
                },
                ejection: self.ejection,
                options: self.options,
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
                slow_start: self.slow_start,
                budget: self.budget.map(BudgetState::new),
                failures: FailureLog::default(),
            }),
        }
    }
}

impl Pool {
    /// A builder with the defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.inner.selector.strategy()
    }

    /// Connects to `target` through one of the members, retrying as configured. Members built
    /// with [`Upstream::backend`] connect to their own destination instead.
    pub async fn connect(&self, target: impl IntoTarget) -> Result<ProxyStream, ConnectError> {
        let target = target.into_target()?;
        self.connect_inner(Some(target), None).await
    }

    /// Like [`Pool::connect`], with a key for the keyed strategies ([`Strategy::Hash`],
    /// [`Strategy::ConsistentHash`]): the same key goes to the same member while it is
    /// available. Other strategies ignore it.
    pub async fn connect_keyed(
        &self,
        target: impl IntoTarget,
        key: &[u8],
    ) -> Result<ProxyStream, ConnectError> {
        let target = target.into_target()?;
        self.connect_inner(Some(target), Some(stable_hash(key)))
            .await
    }

    /// Connects to a member's own destination (pools of [`Upstream::backend`] members).
    pub fn connect_any(&self) -> impl Future<Output = Result<ProxyStream, ConnectError>> + '_ {
        self.connect_inner(None, None)
    }

    /// [`Pool::connect_any`] with a key for the keyed strategies (e.g. the client's address,
    /// for IP-hash stickiness). The key is hashed at once, not borrowed.
    pub fn connect_any_keyed(
        &self,
        key: &[u8],
    ) -> impl Future<Output = Result<ProxyStream, ConnectError>> + '_ {
        // No `async` wrapper: the caller awaits `connect_inner`'s future itself, one state
        // machine less in every connect (callers such as the tcp listener box it).
        self.connect_inner(None, Some(stable_hash(key)))
    }

    async fn connect_inner(
        &self,
        target: Option<Address>,
        key: Option<u64>,
    ) -> Result<ProxyStream, ConnectError> {
        let inner = &self.inner;
        let policy = &inner.retry;
        let give_up_at = policy.deadline.map(|d| Instant::now() + d);
        self.prune_drained();
        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
        let mut tried: Vec<Arc<Member>> = Vec::new();
        let mut attempts = 0u32;
        let mut round = 0u32;
        // Boxed, as `Exhausted` wants it: the slot costs a pointer, not a whole error, in
        // every connect's future.
        let mut last_error: Option<Box<ConnectError>> = None;
        while attempts < policy.max_attempts {
            let members = inner.members.load_full();
            if !members.iter().any(|m| m.in_rotation()) {
                return Err(ConnectError::EmptyPool);
            }
            let Some(member) = self.select(&members, &tried, key) else {
                if !members.iter().any(|m| m.in_rotation() && m.has_room()) {
                    return Err(ConnectError::Saturated);
                }
                if round >= policy.max_attempts {
                    break;
                }
                // Every member had its turn this round: pause, then start over.
                let pause = {
                    let mut rng = inner.rng.lock().unwrap_or_else(|e| e.into_inner());
                    policy.backoff.delay(round, &mut *rng)
                };
                round += 1;
                tried.clear();
                let wake = Instant::now() + pause;
                if give_up_at.is_some_and(|at| wake >= at) {
                    break;
                }
                sleep_until(wake).await;
                continue;
            };
            if give_up_at.is_some_and(|at| Instant::now() >= at) {
                break;
            }
            // `tried` is filled only when a member fails, so that the common path, a first
            // attempt that succeeds, allocates nothing for it.
            let Some(lease) = Lease::try_new(member.clone()) else {
                // It reached its cap since it was chosen: not an attempt, choose again.
                tried.push(member);
                continue;
            };
            if attempts > 0
                && let Some(budget) = &inner.budget
                && !budget.withdraw()
            {
                tracing::debug!(attempt = attempts, "pool retry budget spent");
                break;
            }
            attempts += 1;
            let started = Instant::now();
            let destination = member.config.destination.as_ref().or(target.as_ref());
            let Some(destination) = destination else {
                return Err(ConnectError::Unsupported(
                    "connect_any needs members with a destination",
                ));
            };
            // An attempt never outlives the overall retry deadline.
            let options = &inner.options;
            let budget = match give_up_at {
                Some(at) => options.timeout.min(at.saturating_duration_since(started)),
                None => options.timeout,
            };
            let chain = &member.config.chain;
            let connected = chain.connect_within(destination, options, budget).await;
            let connected = match (connected, &member.config.tls) {
                (Ok(stream), Some(tls)) => {
                    let deadline = Deadline {
                        at: started + budget,
                        budget,
                    };
                    // Boxed: a TLS handshake's future would make every pool connect large.
                    Box::pin(crate::tls::wrap_backend(stream, tls, &deadline)).await
                }
                (connected, _) => connected,
            };
            match connected {
                Ok(mut stream) => {
                    member.record_success(started.elapsed());
                    stream.attach_lease(lease);
                    return Ok(stream);
                }
                Err(error) => {
                    drop(lease);
                    tried.push(member.clone());
                    inner.failures.push(FailureRecord {
                        at: std::time::SystemTime::now(),
                        member: member.name().to_owned(),
                        stage: error.stage().name(),
                        kind: error.reason().to_owned(),
                        attempt: attempts,
                    });
                    match error.blame() {
                        Blame::Proxy => self.count_failure(&members, &member, &error),
                        Blame::Target | Blame::Caller => return Err(error),
                    }
                    tracing::debug!(member = %member.name(), attempt = attempts, error = ?error, "pool attempt failed");
                    last_error = Some(Box::new(error));
                }
            }
        }
        Err(ConnectError::Exhausted {
            attempts,
            last: last_error.unwrap_or_else(|| {
                Box::new(ConnectError::Timeout {
                    stage: crate::Stage::Connect,
                    after: policy.deadline.unwrap_or_default(),
                })
            }),
        })
    }

    fn count_failure(&self, members: &[Arc<Member>], member: &Member, error: &ConnectError) {
        let now = Instant::now();
        let ejected = members.iter().filter(|m| m.is_ejected(now)).count();
        let may_eject = self.inner.ejection.may_eject(ejected, members.len());
        let reason = format!("{}/{}", error.stage().name(), error.reason());
        if let Some(time) = member.record_failure(reason, &self.inner.ejection, may_eject, now) {
            tracing::warn!(member = %member.name(), ejected_for = ?time, "pool member ejected");
        }
    }

    /// Candidates per the rules in the module docs, then the strategy's pick.
    fn select(
        &self,
        members: &[Arc<Member>],
        tried: &[Arc<Member>],
        key: Option<u64>,
    ) -> Option<Arc<Member>> {
        let now = Instant::now();
        let untried = |m: &&Arc<Member>| {
            m.in_rotation() && m.has_room() && !tried.iter().any(|t| Arc::ptr_eq(t, m))
        };
        let available = |backup: bool| -> Vec<&Arc<Member>> {
            members
                .iter()
                .filter(untried)
                .filter(|m| m.config.backup == backup && m.is_available(now))
                .collect()
        };
        let mut candidates = available(false);
        if candidates.is_empty() {
            candidates = available(true);
        }
        let panic_mode = candidates.is_empty();
        if panic_mode {
            // Nothing healthy is left to try this round; everything available was already
            // tried if `tried` is non-empty, so only fall back when nothing was available.
            let any_available_tried = tried.iter().any(|m| m.is_available(now));
            if any_available_tried {
                return None;
            }
            candidates = members.iter().filter(untried).collect();
            candidates.sort_by_key(|m| m.config.backup);
        }
        if candidates.is_empty() {
            return None;
        }
        let pick = Pick {
            candidates: &candidates,
            all: members,
            key,
            now,
            slow_start: self.inner.slow_start,
        };
        let index = self.inner.selector.pick(&pick, &self.inner.rng);
        Some(candidates[index].clone())
    }

    /// Live statistics per member, in configuration order.
    pub fn stats(&self) -> Vec<MemberStats> {
        self.prune_drained();
        let now = Instant::now();
        self.inner
            .members
            .load()
            .iter()
            .map(|m| m.stats(now, self.inner.slow_start))
            .collect()
    }

    /// The most recent failed attempts (at most [`FAILURE_RING_CAPACITY`]), oldest first, and
    /// how many failures were ever recorded.
    pub fn recent_failures(&self) -> (Vec<FailureRecord>, u64) {
        self.inner.failures.snapshot()
    }

    /// Starts active health checks in the background; they run until the returned task is
    /// dropped or stopped.
    pub fn spawn_health_checks(&self, check: HealthCheck) -> HealthTask {
        HealthTask::spawn(self.inner.clone(), check)
    }

    /// Runs one round of health checks now and applies the results.
    pub async fn check_now(&self, check: &HealthCheck) {
        health::run_round(&self.inner, check).await;
    }

    /// Adds a member at runtime (effective for the next connect).
    pub fn add(&self, upstream: Upstream) {
        let member = Arc::new(Member::new(upstream));
        self.inner.members.rcu(|members| {
            let mut next = Vec::clone(members);
            next.push(member.clone());
            next
        });
    }

    /// Removes the member named `name`; open connections through it stay open. Returns whether
    /// it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut found = false;
        self.inner.members.rcu(|members| {
            let next: Vec<_> = members
                .iter()
                .filter(|m| m.name() != name)
                .cloned()
                .collect();
            found = next.len() != members.len();
            next
        });
        found
    }

    /// Enables or disables the member named `name` (disabled members get no new connections;
    /// open ones stay). Returns whether it exists.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        self.with_member(name, |member| member.set_enabled(enabled))
    }

    /// Starts or ends draining the member named `name`: while draining it gets no new
    /// connections, open ones finish, and health checks go on. Returns whether it exists.
    pub fn set_draining(&self, name: &str, draining: bool) -> bool {
        self.with_member(name, |member| member.set_draining(draining))
    }

    /// Changes the weight of the member named `name` (effective for the next pick). Returns
    /// whether it exists.
    pub fn set_weight(&self, name: &str, weight: u32) -> bool {
        self.with_member(name, |member| member.set_weight(weight))
    }

    /// Drains the member named `name` and removes it once its last connection closed (at
    /// once if it has none). Returns whether it existed.
    pub fn remove_after_drain(&self, name: &str) -> bool {
        let found = self.with_member(name, |member| {
            member.set_draining(true);
            member
                .remove_when_drained
                .store(true, std::sync::atomic::Ordering::Relaxed);
        });
        self.prune_drained();
        found
    }

    /// The names of the members, in configuration order.
    pub fn member_names(&self) -> Vec<String> {
        self.prune_drained();
        let members = self.inner.members.load();
        members.iter().map(|m| m.name().to_owned()).collect()
    }

    fn with_member(&self, name: &str, f: impl FnOnce(&Member)) -> bool {
        let members = self.inner.members.load();
        let member = members.iter().find(|m| m.name() == name);
        if let Some(member) = member {
            f(member);
        }
        member.is_some()
    }

    /// Removes members marked for removal whose last connection has closed.
    fn prune_drained(&self) {
        let drained = |m: &Arc<Member>| {
            m.remove_when_drained
                .load(std::sync::atomic::Ordering::Relaxed)
                && m.in_flight() == 0
        };
        if !self.inner.members.load().iter().any(drained) {
            return;
        }
        self.inner.members.rcu(|members| {
            members
                .iter()
                .filter(|m| !drained(m))
                .cloned()
                .collect::<Vec<_>>()
        });
    }
}
