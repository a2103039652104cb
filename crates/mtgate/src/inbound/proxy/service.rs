//! One proxy listener at run time: its settings, users, upstream pools and counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use mtgate_client::pool::Upstream as PoolMember;
use mtgate_client::{ConnectOptions, Pool};

use crate::auth::{Lockout, Users};
use crate::config::proxy::{ProxyKind, ProxyListener, UpstreamConfig};
use crate::gate::Gate;
use crate::relay::TokenBucket;

/// A user's bandwidth buckets: upload, download.
pub type Buckets = (Arc<TokenBucket>, Arc<TokenBucket>);

/// A listener's settings as of the last (re)load.
#[derive(Debug)]
pub struct ProxyState {
    /// Settings.
    pub config: ProxyListener,
    /// Users.
    pub users: Users,
    /// The listener's upstream.
    pub pool: Option<Upstream>,
    /// Upstreams of users that have their own.
    pub user_pools: HashMap<String, Upstream>,
    /// Bandwidth buckets of users that have a limit.
    pub buckets: HashMap<String, Buckets>,
}

/// One `[[socks5]]`, `[[http]]` or `[[mixed]]` listener at run time.
#[derive(Debug)]
pub struct ProxyService {
    name: String,
    kind: ProxyKind,
    state: ArcSwap<ProxyState>,
    /// Connections open on this listener.
    pub gate: Arc<Gate>,
    user_gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// Authentication failures per client address.
    pub lockout: Lockout,
}

impl ProxyService {
    /// A service for `config`.
    pub fn new(config: ProxyListener) -> Self {
        let mut gates = HashMap::new();
        let state = build_state(config.clone(), &mut gates);
        Self {
            name: config.name.clone(),
            kind: config.kind,
            state: ArcSwap::from_pointee(state),
            gate: Arc::default(),
            user_gates: Mutex::new(gates),
            lockout: Lockout::default(),
        }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The protocols it serves.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The current settings.
    pub fn state(&self) -> Arc<ProxyState> {
        self.state.load_full()
    }

    /// Open connections of a user.
    pub fn user_connections(&self, user: &str) -> usize {
        self.user_gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .map_or(0, |g| g.open())
    }

    /// Replaces users and settings for new connections.
    pub fn apply(&self, config: ProxyListener) {
        let mut gates = self.user_gates.lock().unwrap_or_else(|e| e.into_inner());
        let state = build_state(config, &mut gates);
        self.state.store(Arc::new(state));
    }
}

fn build_state(config: ProxyListener, gates: &mut HashMap<String, Arc<Gate>>) -> ProxyState {
    for user in config.users.iter().filter(|u| !u.password.is_hash()) {
        tracing::warn!(
            listener = config.name,
            user = user.name,
            "plain-text password in the config: store an argon2 hash (mtgate hash-password) or a bcrypt one instead"
        );
    }
    let mut options = ConnectOptions::with_timeout(config.connect_timeout);
    options.tls = config.upstream_tls.clone();
    let pool = config.upstream.as_ref().map(|u| build_pool(u, &options));
    let user_pools = config
        .users
        .iter()
        .filter_map(|u| Some((u.name.clone(), build_pool(u.upstream.as_ref()?, &options))))
        .collect();
    let buckets = config
        .users
        .iter()
        .filter_map(|u| {
            let rate = u.bandwidth?;
            let pair = (
                Arc::new(TokenBucket::new(rate)),
                Arc::new(TokenBucket::new(rate)),
            );
            Some((u.name.clone(), pair))
        })
        .collect();
    ProxyState {
        users: Users::new(&config.users, gates),
        config,
        pool,
        user_pools,
        buckets,
    }
}

fn build_pool(upstream: &UpstreamConfig, options: &ConnectOptions) -> Upstream {
    match upstream {
        UpstreamConfig::Members(members) => Upstream::Own(
            members
                .iter()
                .fold(Pool::builder(), |b, chain| {
                    b.upstream(PoolMember::new(chain.clone()))
                })
                .connect_options(options.clone())
                .build(),
        ),
        UpstreamConfig::Pool(name) => Upstream::Named(name.clone()),
    }
}

/// Where a listener's or a user's connections go out.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A pool built from the listener's `upstream` list.
    Own(Pool),
    /// A `[[pool]]`, looked up by name for each connection (so reloads and the admin API
    /// apply at once).
    Named(String),
}
