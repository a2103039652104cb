//! The connections to the middle proxies of one cluster (shared by the clusters that list
//! the same middle proxies).
//!
//! Each connection slot is a task that connects, serves until the connection fails, then
//! reconnects with exponential backoff (200 ms doubling to 10 s). The pool starts with
//! `min_connections` slots per middle proxy and adds slots, up to `max_connections` per
//! middle proxy, when every live connection is at least half full. A client goes to the
//! least-loaded live connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::{self, MeConnection};
use super::counters::Counters;
use super::{ClientLink, MiddleError};
use crate::config::MiddleConfig;
use mtgate_proto::mtproto::middle::proxy_config::Cluster;

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One slot: the connection it currently holds, if any.
#[derive(Debug)]
struct Slot {
    endpoint: SocketAddr,
    current: Mutex<Option<Arc<MeConnection>>>,
}

impl Slot {
    fn get(&self) -> Option<Arc<MeConnection>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    fn set(&self, conn: Option<Arc<MeConnection>>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = conn;
    }
}

/// The connections to one list of middle proxies.
#[derive(Debug)]
pub struct Pool {
    /// Middle proxies and how many connections each may have.
    endpoints: Vec<(SocketAddr, u32)>,
    slots: Mutex<Vec<Arc<Slot>>>,
    ready: Notify,
    config: Arc<ArcSwap<MiddleConfig>>,
    counters: Arc<Counters>,
    connect_timeout: Duration,
    /// Stops every slot.
    stop: CancellationToken,
    /// Stops reconnecting; live connections end once their clients have left.
    retire: CancellationToken,
}

impl Pool {
    /// Starts the pool of `cluster`'s middle proxies, with the connection counts `snapshot`
    /// gives them; the pool follows `config` for everything else.
    pub fn start(
        cluster: &Cluster,
        snapshot: &MiddleConfig,
        config: Arc<ArcSwap<MiddleConfig>>,
        counters: Arc<Counters>,
        connect_timeout: Duration,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let mut endpoints = Vec::new();
        let mut initial = Vec::new();
        for e in &cluster.endpoints {
            let (min, max) = snapshot.connections(e.min_connections, e.max_connections);
            endpoints.push((e.addr, max));
            initial.extend(std::iter::repeat_n(e.addr, min as usize));
        }
        let pool = Arc::new(Self {
            endpoints,
            slots: Mutex::default(),
            ready: Notify::new(),
            config,
            counters,
            connect_timeout,
            stop,
            retire: CancellationToken::new(),
        });
        for endpoint in initial {
            pool.add_slot(endpoint);
        }
        pool
    }

    /// Stops reconnecting and lets the connections end when their clients have left.
    pub fn retire(&self) {
        self.retire.cancel();
    }

    /// Live connections.
    pub fn live(&self) -> Vec<Arc<MeConnection>> {
        self.slots().iter().filter_map(|s| s.get()).collect()
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add_slot(self: &Arc<Self>, endpoint: SocketAddr) {
        let slot = Arc::new(Slot {
            endpoint,
            current: Mutex::new(None),
        });
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot.clone());
        tokio::spawn(supervise(self.clone(), slot));
    }

    /// Opens one more slot if a middle proxy has room for it; whether it did.
    fn grow(self: &Arc<Self>) -> bool {
        let slots = self.slots();
        let spare = self.endpoints.iter().find(|(addr, max)| {
            slots.iter().filter(|s| s.endpoint == *addr).count() < *max as usize
        });
        match spare {
            Some((addr, _)) => {
                self.add_slot(*addr);
                true
            }
            None => false,
        }
    }

    /// Registers a client of DC `dc` on the least-loaded live connection, waiting up to the
    /// connect timeout for one to come up.
    pub async fn acquire(self: &Arc<Self>, dc: i16) -> Result<ClientLink, MiddleError> {
        let deadline = Instant::now() + self.connect_timeout;
        let capacity = self.config.load().clients_per_connection;
        let mut grown = false;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut live = self.live();
            live.sort_by_key(|c| c.clients.len());
            if let Some(least) = live.first()
                && least.clients.len() >= capacity / 2
                && !grown
            {
                grown = self.grow();
            }
            for conn in live.iter() {
                if let Some((id, queue)) = conn.clients.add() {
                    return Ok(ClientLink::new(conn.clone(), id, queue));
                }
            }
            if !live.is_empty() && !grown {
                return Err(MiddleError::Full(dc));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(MiddleError::Unavailable(dc));
            }
        }
    }
}

async fn supervise(pool: Arc<Pool>, slot: Arc<Slot>) {
    let mut backoff = BACKOFF_START;
    loop {
        if pool.stop.is_cancelled() || pool.retire.is_cancelled() {
            return;
        }
        let config = pool.config.load_full();
        let opening = connection::open(
            slot.endpoint,
            &config,
            pool.counters.clone(),
            pool.connect_timeout,
        );
        let opened = tokio::select! {
            opened = opening => opened,
            () = pool.stop.cancelled() => return,
        };
        match opened {
            Ok(established) => {
                backoff = BACKOFF_START;
                Counters::inc(&pool.counters.connections_created);
                let conn = established.conn.clone();
                tracing::info!(endpoint = %slot.endpoint, public = %conn.public, "middle proxy connection up");
                slot.set(Some(conn.clone()));
                pool.ready.notify_waiters();
                let stop = CancellationToken::new();
                let running = established.run(&stop);
                tokio::pin!(running);
                let result = tokio::select! {
                    r = &mut running => r,
                    () = pool.stop.cancelled() => { stop.cancel(); running.await }
                    () = drained(&pool.retire, &conn) => { stop.cancel(); running.await }
                };
                slot.set(None);
                match result {
                    Ok(()) => {}
                    Err(e) => {
                        Counters::inc(&pool.counters.connection_failures);
                        tracing::warn!(endpoint = %slot.endpoint, error = %e, "middle proxy connection lost")
                    }
                }
            }
            Err(e) => {
                Counters::inc(&pool.counters.connection_failures);
                tracing::warn!(endpoint = %slot.endpoint, error = %e, retry_in = ?backoff, "cannot connect to the middle proxy");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = pool.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Resolves once the pool is retired and the connection has no client left.
async fn drained(retire: &CancellationToken, conn: &MeConnection) {
    retire.cancelled().await;
    while !conn.clients.is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
