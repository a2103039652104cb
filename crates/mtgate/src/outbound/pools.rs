//! The configured upstream pools at run time: built from `[[pool]]`, changed by the admin API,
//! reconciled with the file on reload.
//!
//! On reload the file is the source of truth: servers it no longer lists are drained and then
//! removed (servers added through the admin API included), new ones are added, weights are
//! updated in place, and a pool whose strategy, retry or ejection settings changed is rebuilt.
//! Connections already open keep their server either way.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use mtgate_client::ConnectOptions;
use mtgate_client::pool::{HealthTask, Pool};

use crate::config::pool::{PoolConfig, PoolServer};

/// One pool: its settings, the live pool and its health checker.
#[derive(Debug)]
pub struct PoolEntry {
    /// The settings it was built or last reconciled with.
    pub config: PoolConfig,
    /// The live pool (clones share members and statistics).
    pub pool: Pool,
    health: Mutex<Option<HealthTask>>,
}

impl PoolEntry {
    fn build(config: PoolConfig) -> Self {
        let mut builder = Pool::builder()
            .strategy(config.strategy)
            .retry(config.retry.clone())
            .ejection(config.ejection.clone())
            .slow_start(config.slow_start)
            .connect_options(connect_options(&config));
        if let Some(budget) = &config.budget {
            builder = builder.retry_budget(budget.clone());
        }
        for server in &config.servers {
            builder = builder.upstream(server.upstream());
        }
        let pool = builder.build();
        let health = config
            .health
            .clone()
            .map(|check| pool.spawn_health_checks(check));
        Self {
            config,
            pool,
            health: Mutex::new(health),
        }
    }

    /// Whether `other` can be applied to this pool's members in place.
    fn same_shape(&self, other: &PoolConfig) -> bool {
        let a = &self.config;
        a.strategy == other.strategy
            && a.retry == other.retry
            && a.ejection == other.ejection
            && a.budget == other.budget
            && a.slow_start == other.slow_start
            && a.connect_timeout == other.connect_timeout
    }

    /// Applies `new`'s server list and health checks to the live pool; returns the entry
    /// holding the new settings.
    fn reconcile(&self, new: PoolConfig) -> Self {
        let pool = self.pool.clone();
        let wanted: BTreeMap<&str, &PoolServer> =
            new.servers.iter().map(|s| (s.name.as_str(), s)).collect();
        let old: BTreeMap<&str, &PoolServer> = self
            .config
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        for name in pool.member_names() {
            match (wanted.get(name.as_str()), old.get(name.as_str())) {
                (None, _) => {
                    pool.remove_after_drain(&name);
                }
                (Some(want), Some(had)) if same_but_weight(want, had) => {
                    pool.set_weight(&name, want.weight);
                }
                (Some(want), _) => {
                    // Changed (or added at run time under a configured name): replace it.
                    // Open connections keep the old member until they close.
                    pool.remove(&name);
                    pool.add(want.upstream());
                }
            }
        }
        let present = pool.member_names();
        for server in &new.servers {
            if !present.contains(&server.name) {
                pool.add(server.upstream());
            }
        }
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner()).take();
        if self.config.health != new.health {
            health = new.health.clone().map(|c| pool.spawn_health_checks(c));
        }
        Self {
            config: new,
            pool,
            health: Mutex::new(health),
        }
    }

    fn stop_health_checks(&self) {
        if let Some(task) = self.health.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.stop();
        }
    }
}

/// Dial options of a pool's connections: `[pool.tls]` for `https://` proxies, no TCP keepalive (mtgate closes idle connections
/// itself, and skipping it saves two system calls per connection).
fn connect_options(config: &PoolConfig) -> ConnectOptions {
    let mut options = ConnectOptions::with_timeout(config.connect_timeout);
    options.dial.keepalive = None;
    // `https://` proxies among the servers are verified with `[pool.tls]` too.
    options.tls = config.tls.as_ref().map(|t| t.config.clone());
    options
}

fn same_but_weight(a: &PoolServer, b: &PoolServer) -> bool {
    a.url == b.url
        && a.via == b.via
        && a.backup == b.backup
        && a.max_connections == b.max_connections
        && a.tls == b.tls
}

/// Every pool by name.
#[derive(Debug, Default)]
pub struct PoolSet {
    pools: ArcSwap<BTreeMap<String, Arc<PoolEntry>>>,
}

impl PoolSet {
    /// Builds the pools and starts their health checks. Must run inside a Tokio runtime.
    pub fn new(configs: &[PoolConfig]) -> Self {
        let pools = configs
            .iter()
            .map(|c| (c.name.clone(), Arc::new(PoolEntry::build(c.clone()))))
            .collect();
        Self {
            pools: ArcSwap::from_pointee(pools),
        }
    }

    /// The pool named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<PoolEntry>> {
        self.pools.load().get(name).cloned()
    }

    /// Every pool, by name.
    pub fn all(&self) -> Vec<Arc<PoolEntry>> {
        self.pools.load().values().cloned().collect()
    }

    /// Brings the pools in line with `configs` (see the module docs).
    pub fn reconcile(&self, configs: &[PoolConfig]) {
        let current = self.pools.load_full();
        let mut next = BTreeMap::new();
        for config in configs {
            let entry = match current.get(&config.name) {
                Some(entry) if entry.same_shape(config) => entry.reconcile(config.clone()),
                Some(entry) => {
                    entry.stop_health_checks();
                    tracing::info!(pool = config.name, "pool settings changed: rebuilt");
                    PoolEntry::build(config.clone())
                }
                None => PoolEntry::build(config.clone()),
            };
            next.insert(config.name.clone(), Arc::new(entry));
        }
        for (name, entry) in current.iter() {
            if !next.contains_key(name) {
                entry.stop_health_checks();
                tracing::info!(pool = name, "pool removed");
            }
        }
        self.pools.store(Arc::new(next));
    }

    /// Stops every health checker (at shutdown).
    pub fn stop(&self) {
        for entry in self.pools.load().values() {
            entry.stop_health_checks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_raw;
    use crate::config::pool::pools;

    fn configs(toml: &str) -> Vec<PoolConfig> {
        pools(parse_raw(toml).unwrap().pool).unwrap()
    }

    #[tokio::test]
    async fn reload_adds_removes_and_reweights_in_place() {
        let set = PoolSet::new(&configs(
            r#"
            [[pool]]
            name = "web"
            servers = [
              { url = "tcp://127.0.0.1:1", name = "a" },
              { url = "tcp://127.0.0.1:2", name = "b" },
            ]
            "#,
        ));
        let before = set.get("web").unwrap().pool.clone();
        set.reconcile(&configs(
            r#"
            [[pool]]
            name = "web"
            servers = [
              { url = "tcp://127.0.0.1:2", name = "b", weight = 5 },
              { url = "tcp://127.0.0.1:3", name = "c" },
            ]
            [[pool]]
            name = "new"
            servers = [{ url = "tcp://127.0.0.1:4" }]
            "#,
        ));
        let after = set.get("web").unwrap();
        assert_eq!(after.pool.member_names(), ["b", "c"]);
        assert_eq!(after.pool.stats()[0].weight, 5);
        // The same live pool: statistics and open connections carried over.
        assert_eq!(before.member_names(), ["b", "c"]);
        assert!(set.get("new").is_some());

        set.reconcile(&configs(
            r#"
            [[pool]]
            name = "web"
            strategy = "least-connections"
            servers = [{ url = "tcp://127.0.0.1:2", name = "b" }]
            "#,
        ));
        assert!(set.get("new").is_none());
        let rebuilt = set.get("web").unwrap();
        assert_eq!(rebuilt.pool.member_names(), ["b"]);
        assert_eq!(
            before.member_names(),
            ["b", "c"],
            "the old pool was left alone"
        );
    }
}
