//! Middle-proxy mode: clients reach Telegram through its middle proxies ("ME"), multiplexed
//! over a few shared connections per DC cluster. This is what carries the ad tag.
//!
//! - [`connection`]: one connection (handshake, framing, CBC, ping, dispatch by client id);
//! - [`clients`]: a connection's client table with bounded per-client queues;
//! - [`pool`]: the connections to one cluster's middle proxies (min..max, reconnection);
//! - [`MiddleProxies`]: the pools, opened at start for every cluster of `proxy-multi.conf`
//!   ([`MiddleProxies::warm`]) and kept; new files (SIGHUP, or every `refresh_interval`)
//!   retire the pools whose middle proxies are gone and open the new ones. Clusters that
//!   list the same middle proxies share one pool: Telegram's file names the same ones for
//!   DC N and DC -N (media), and the official proxy, too, keeps one set of connections per
//!   middle proxy.
//!
//! A client's entry in a table lives as long as its session, which ends on the listener's
//! idle timeout: that is the idle eviction of the table.

pub mod clients;
pub mod collector;
pub mod connection;
pub mod counters;
pub mod pool;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::middle::proxy_config::Cluster;
use tokio_util::sync::CancellationToken;

use crate::config::MiddleConfig;
use clients::ClientQueue;
use connection::MeConnection;
use counters::Counters;
use pool::Pool;

/// Why a client could not be served through a middle proxy.
#[derive(Debug, thiserror::Error)]
pub enum MiddleError {
    /// `proxy-multi.conf` names no middle proxy for the DC (nor a default).
    #[error("no middle proxy for DC {0}")]
    NoProxy(i16),
    /// No connection to the DC's middle proxies came up in time.
    #[error("no middle proxy of DC {0} is reachable")]
    Unavailable(i16),
    /// Every connection to the DC's middle proxies has its maximum of clients.
    #[error("every middle-proxy connection of DC {0} is full")]
    Full(i16),
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// A step took too long.
    #[error("timed out ({0})")]
    Timeout(&'static str),
    /// The peer closed, or the connection ended.
    #[error("connection closed")]
    Closed,
    /// The middle proxy broke the protocol, or refused us.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl MiddleError {
    /// A short reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoProxy(_) => "middle_no_proxy",
            Self::Unavailable(_) => "middle_unavailable",
            Self::Full(_) => "middle_full",
            Self::Connect(_) | Self::Io(_) | Self::Closed => "middle_io",
            Self::Timeout(_) => "middle_timeout",
            Self::Protocol(_) => "middle_protocol",
        }
    }
}

/// What identifies a cluster's pool: its middle proxies, in file order.
fn pool_key(cluster: &Cluster) -> Vec<SocketAddr> {
    cluster.endpoints.iter().map(|e| e.addr).collect()
}

/// A client's place on a middle-proxy connection. Dropping it removes the client and, if
/// the middle proxy still knows it, sends RPC_CLOSE_CONN.
#[derive(Debug)]
pub struct ClientLink {
    /// The connection.
    pub conn: Arc<MeConnection>,
    /// The client's connection id.
    pub id: u64,
    /// What the middle proxy sends the client.
    pub queue: ClientQueue,
}

impl ClientLink {
    fn new(conn: Arc<MeConnection>, id: u64, queue: ClientQueue) -> Self {
        Self { conn, id, queue }
    }
}

impl Drop for ClientLink {
    fn drop(&mut self) {
        if self.conn.clients.remove(self.id) && !self.conn.is_closed() {
            self.conn.send_close_conn(self.id);
        }
    }
}

/// Every pool, by the middle proxies it connects to (in file order).
#[derive(Debug)]
pub struct MiddleProxies {
    /// Totals for `/stats`.
    pub counters: Arc<Counters>,
    config: Arc<ArcSwap<MiddleConfig>>,
    pools: Mutex<HashMap<Vec<SocketAddr>, Arc<Pool>>>,
    connect_timeout: Duration,
    stop: CancellationToken,
}

impl MiddleProxies {
    /// The pools for `config`; none is opened before [`MiddleProxies::warm`] or a client.
    pub fn new(
        config: Arc<MiddleConfig>,
        connect_timeout: Duration,
        stop: CancellationToken,
    ) -> Self {
        Self {
            counters: Arc::default(),
            config: Arc::new(ArcSwap::new(config)),
            pools: Mutex::default(),
            connect_timeout,
            stop,
        }
    }

    /// The settings now.
    pub fn config(&self) -> Arc<MiddleConfig> {
        self.config.load_full()
    }

    /// Registers a client of DC `dc` on a connection of its cluster.
    pub async fn connect(&self, dc: DcId) -> Result<ClientLink, MiddleError> {
        let pool = {
            let config = self.config.load();
            let cluster = config
                .proxies
                .cluster(dc.0)
                .ok_or(MiddleError::NoProxy(dc.0))?;
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            self.pool(&mut pools, cluster, &config)
        };
        let link = pool.acquire(dc.0).await?;
        Counters::inc(&self.counters.clients_created);
        Ok(link)
    }

    /// Opens the pool of every cluster of `proxy-multi.conf` that has none yet, as the
    /// official proxy does when it loads the file: the first client of a DC then finds its
    /// `min_connections` already up.
    pub fn warm(&self) {
        let config = self.config.load();
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        for cluster in &config.proxies.clusters {
            self.pool(&mut pools, cluster, &config);
        }
    }

    /// The pool for `cluster`'s middle proxies, started if there is none yet.
    fn pool(
        &self,
        pools: &mut HashMap<Vec<SocketAddr>, Arc<Pool>>,
        cluster: &Cluster,
        config: &MiddleConfig,
    ) -> Arc<Pool> {
        let key = pool_key(cluster);
        if let Some(pool) = pools.get(&key) {
            return pool.clone();
        }
        let pool = Pool::start(
            cluster,
            config,
            self.config.clone(),
            self.counters.clone(),
            self.connect_timeout,
            self.stop.child_token(),
        );
        pools.insert(key, pool.clone());
        pool
    }

    /// Applies new settings and files: pools whose middle proxies changed are retired (their
    /// clients stay until they leave) and opened again for the new ones.
    pub fn reload(&self, config: Arc<MiddleConfig>) {
        self.retire_changed(&config);
        self.config.store(config);
        self.warm();
    }

    fn retire_changed(&self, config: &MiddleConfig) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|endpoints, pool| {
            let keep = config
                .proxies
                .clusters
                .iter()
                .any(|c| pool_key(c) == *endpoints);
            if !keep {
                tracing::info!(
                    ?endpoints,
                    "no DC uses these middle proxies any more: retiring their connections"
                );
                pool.retire();
            }
            keep
        });
    }

    /// Live connections and the clients on them.
    pub fn load(&self) -> (usize, usize) {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .values()
            .flat_map(|p| p.live())
            .fold((0, 0), |(c, n), conn| (c + 1, n + conn.clients.len()))
    }

    /// Reads both files every `refresh_interval` and applies them; a bad file keeps the
    /// last good one.
    pub async fn refresh_loop(self: Arc<Self>) {
        loop {
            let interval = self.config.load().refresh_interval;
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.stop.cancelled() => return,
            }
            match self.config.load().reload_files() {
                Ok(fresh) => self.reload(Arc::new(fresh)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot refresh the middle-proxy files; keeping the last good ones");
                }
            }
        }
    }
}
