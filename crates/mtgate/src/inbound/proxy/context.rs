//! What a proxy connection's handlers share: the listener, the client, the server, and the
//! bookkeeping of outcomes (metrics and connection logs with reason codes).

use std::net::SocketAddr;
use std::sync::Arc;

use mtgate_client::Pool;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::service::{Buckets, ProxyService, ProxyState, Upstream};
use crate::auth::{Authenticated, UserEntry};
use crate::config::proxy::ProxyListener;
use crate::outbound::Route;
use crate::relay::ConnEntry;
use crate::server::Shared;
use prometheus_client::metrics::gauge::Gauge;

use crate::telemetry::proxy_metrics::{ProxyListenerLabels, ProxyReasonLabels, RequestLabels};

/// The user name in metrics and logs when there is none.
pub const ANONYMOUS: &str = "anonymous";

/// One client connection's context.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Server-wide state.
    pub shared: &'a Arc<Shared>,
    /// The listener.
    pub service: &'a ProxyService,
    /// The listener's settings when the connection came in.
    pub state: &'a ProxyState,
    /// The connection's registry entry (activity, kill switch).
    pub entry: &'a ConnEntry,
    /// The client (from the PROXY header when a trusted balancer sent one).
    pub peer: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// Tasks that must finish before shutdown completes (HTTP upgrades).
    pub tracker: &'a TaskTracker,
}

/// The result of checking credentials.
#[derive(Debug)]
pub enum AuthOutcome {
    /// Good credentials.
    User(Arc<UserEntry>),
    /// Wrong credentials.
    Rejected,
    /// The client address is locked out.
    LockedOut,
}

impl Ctx<'_> {
    /// The listener's settings.
    pub fn config(&self) -> &ProxyListener {
        &self.state.config
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.state.config.name
    }

    /// How to reach destinations for `user`.
    pub fn route<'b>(&'b self, user: Option<&'b UserEntry>) -> Route<'b> {
        let user_rules: &[crate::acl::Rule] = user.map_or(&[], |u| &u.config.rules);
        Route {
            rules: [user_rules, &self.state.config.rules],
            pool: self.pool(user),
            timeout: self.state.config.connect_timeout,
            agents: self.agents(user),
        }
    }

    /// The gateway agents for `user` when the listener routes through a gateway: the group is
    /// the user's `agent_group`, else the user name (AnyProxy: username = group), else the
    /// listener's `agent_group`.
    pub fn agents(&self, user: Option<&UserEntry>) -> Option<crate::outbound::route::AgentRoute> {
        let config = &self.state.config;
        let gateway = config.gateway.as_ref()?;
        let group = user
            .and_then(|u| u.config.agent_group.clone())
            .or_else(|| user.map(|u| u.config.name.clone()))
            .or_else(|| config.agent_group.clone())?;
        let registry = match self.shared.gateways.get(gateway) {
            Some(registry) => registry.clone(),
            // A gateway added by a reload has no agents until a restart.
            None => Arc::new(crate::tunnel::gateway::Registry::new(gateway)),
        };
        Some(crate::outbound::route::AgentRoute { registry, group })
    }

    /// The upstream pool for `user`: the user's own, else the listener's. A named `[[pool]]`
    /// that a reload just removed comes back empty (connections fail, never go direct).
    pub fn pool(&self, user: Option<&UserEntry>) -> Option<Pool> {
        let upstream = user
            .and_then(|u| self.state.user_pools.get(&u.config.name))
            .or(self.state.pool.as_ref())?;
        Some(match upstream {
            Upstream::Own(pool) => pool.clone(),
            Upstream::Named(name) => match self.shared.pools.get(name) {
                Some(entry) => entry.pool.clone(),
                None => Pool::builder().build(),
            },
        })
    }

    /// The bandwidth buckets of `user`, if limited.
    pub fn buckets(&self, user: Option<&UserEntry>) -> Option<&Buckets> {
        user.and_then(|u| self.state.buckets.get(&u.config.name))
    }

    /// Checks credentials, honouring and feeding the lockout.
    pub async fn authenticate(&self, username: &[u8], password: &[u8]) -> AuthOutcome {
        let ip = self.peer.ip();
        let lockout = &self.service.lockout;
        if lockout.is_locked(ip, Instant::now()) {
            self.handshake_failure("locked_out");
            tracing::info!(listener = self.name(), peer = %self.peer, reason = "locked_out", "authentication refused");
            return AuthOutcome::LockedOut;
        }
        match self.state.users.verify(username, password).await {
            Authenticated::User(user) => {
                lockout.success(ip);
                AuthOutcome::User(user)
            }
            Authenticated::Rejected => {
                self.handshake_failure("bad_credentials");
                let locked = lockout.failure(ip, &self.state.config.lockout, Instant::now());
                // The user name is the client's claim: escaped, and never the password.
                let user = String::from_utf8_lossy(username);
                tracing::info!(listener = self.name(), peer = %self.peer, user = ?user, reason = "bad_credentials", "authentication failed");
                if locked {
                    tracing::warn!(listener = self.name(), peer = %self.peer, lockout = ?self.state.config.lockout.duration, "too many authentication failures: address locked out");
                }
                AuthOutcome::Rejected
            }
        }
    }

    /// Counts a tunnel or UDP association as open; the caller decrements the returned gauge
    /// when it ends.
    pub fn tunnel_opened(&self) -> Gauge {
        let open = self
            .shared
            .metrics
            .proxy
            .tunnels_open
            .get_or_create(&ProxyListenerLabels {
                listener: self.name().to_owned(),
            })
            .clone();
        open.inc();
        open
    }

    /// Counts a handshake failure.
    pub fn handshake_failure(&self, reason: &'static str) {
        self.shared
            .metrics
            .proxy
            .handshake_failures
            .get_or_create(&ProxyReasonLabels {
                listener: self.name().to_owned(),
                reason,
            })
            .inc();
    }

    /// Counts a request's outcome.
    pub fn count(&self, user: Option<&UserEntry>, command: &'static str, outcome: &'static str) {
        self.shared
            .metrics
            .proxy
            .requests
            .get_or_create(&RequestLabels {
                listener: self.name().to_owned(),
                user: user_name(user).to_owned(),
                command,
                outcome,
            })
            .inc();
    }

    /// Counts and logs a refused request.
    pub fn refused(
        &self,
        user: Option<&UserEntry>,
        command: &'static str,
        target: &dyn std::fmt::Debug,
        outcome: &'static str,
    ) {
        self.count(user, command, outcome);
        tracing::info!(
            listener = self.name(),
            peer = %self.peer,
            user = user_name(user),
            command,
            target = ?target,
            reason = outcome,
            "request refused"
        );
    }
}

/// A user's name, or [`ANONYMOUS`].
pub fn user_name(user: Option<&UserEntry>) -> &str {
    user.map_or(ANONYMOUS, |u| u.config.name.as_str())
}
