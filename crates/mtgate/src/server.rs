//! The running server: binds every listener, runs the accept loops, the metrics endpoint and
//! the memory evictor, applies reloads and drains on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, TelegramConfig};
use crate::gate::{Gate, Pass};
use crate::inbound::mtproto::{self, MtprotoService};
use crate::inbound::tcp::{self, TcpService};
use crate::inbound::websocket::{self, WebsocketService, WebsocketState};
use crate::outbound::PoolSet;
use crate::relay::{BufferPool, ConnRegistry};
use crate::telegram::DcTable;
use crate::telegram::middle::MiddleProxies;
use crate::telegram::middle::collector::MiddleCollector;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::ListenerLabels;
use crate::telemetry::metrics::ReasonLabels;
use crate::telemetry::pools::PoolCollector;
use crate::telemetry::process::ProcessCollector;
use crate::telemetry::stats::StatsPage;

/// State every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// Metric families.
    pub metrics: Metrics,
    /// Relay buffers.
    pub pool: BufferPool,
    /// Live connections.
    pub conns: ConnRegistry,
    /// Global connection counter.
    pub gate: Arc<Gate>,
    /// When the server started.
    pub started: Instant,
    /// Upstream pools by name.
    pub pools: Arc<PoolSet>,
    /// Middle-proxy pools, when a listener runs in middle mode.
    pub middle: Option<Arc<MiddleProxies>>,
    /// Live WebSocket sessions and their metrics.
    pub websocket: Arc<WebsocketState>,
    /// The agents of every tunnel gateway.
    pub gateways: Arc<crate::tunnel::gateway::GatewaySet>,
    config: ArcSwap<Config>,
    dc_table: ArcSwap<DcTable>,
}

impl Shared {
    /// The global connection cap now.
    pub fn max_connections(&self) -> usize {
        self.config.load().limits.max_connections
    }

    /// Counts a connection a listener accepted and takes its places under the global cap and
    /// the listener's own (`limit`, read now so a reload applies at once). `None` when either
    /// is full; the places are given back when the passes drop.
    pub fn admit(
        &self,
        labels: &ListenerLabels,
        listener_gate: &Arc<Gate>,
        limit: usize,
    ) -> Option<(Pass, Pass)> {
        self.metrics
            .connections_accepted
            .get_or_create(labels)
            .inc();
        self.gate
            .try_enter(self.max_connections())
            .zip(listener_gate.try_enter(limit))
    }

    /// How to reach Telegram now.
    pub fn telegram(&self) -> TelegramConfig {
        self.config.load().telegram.clone()
    }

    /// The DC table now.
    pub fn dc_table(&self) -> Arc<DcTable> {
        self.dc_table.load_full()
    }

    /// The configuration now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    services: Vec<Arc<MtprotoService>>,
    tcp_services: Vec<Arc<TcpService>>,
    proxy_services: Vec<Arc<crate::inbound::proxy::ProxyService>>,
    ws_services: Vec<Arc<WebsocketService>>,
    gateway_services: Vec<Arc<crate::inbound::gateway::GatewayService>>,
    bound: Vec<(String, SocketAddr)>,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    stop_accepting: CancellationToken,
    stop_background: CancellationToken,
    connections: TaskTracker,
}

impl Server {
    /// Binds every listener and starts serving. Must run inside a Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));
        let pools = Arc::new(PoolSet::new(&config.pools));
        registry.register_collector(Box::new(PoolCollector::new(pools.clone())));
        let gateways = Arc::new(crate::tunnel::gateway::GatewaySet::new(
            config.gateway.iter().map(|g| g.name.as_str()),
        ));
        registry.register_collector(Box::new(crate::telemetry::tunnel::TunnelCollector::new(
            gateways.clone(),
        )));
        let stop_accepting = CancellationToken::new();
        let stop_background = CancellationToken::new();
        let middle = config.telegram.middle.as_ref().map(|m| {
            Arc::new(MiddleProxies::new(
                m.clone(),
                config.telegram.connect_timeout,
                stop_background.clone(),
            ))
        });
        if let Some(middle) = &middle {
            registry.register_collector(Box::new(MiddleCollector(middle.clone())));
            middle.warm();
        }
        let pool = BufferPool::new(
            config.limits.buffer_size,
            config.limits.buffered_bytes,
            metrics.buffered_bytes.clone(),
        );
        let shared = Arc::new(Shared {
            metrics,
            pool,
            conns: ConnRegistry::default(),
            gate: Arc::default(),
            started: Instant::now(),
            pools,
            middle,
            websocket: Arc::new(WebsocketState::register(&mut registry)),
            gateways,
            dc_table: ArcSwap::from_pointee(DcTable::new(&config.telegram)),
            config: ArcSwap::from_pointee(config.clone()),
        });
        let connections = TaskTracker::new();

        // Bind everything before serving anything, so a bad address fails the start cleanly.
        let mut bound = Vec::new();
        let mut mtproto_bound = Bound::default();
        for listener in &config.mtproto {
            let service = MtprotoService::new(listener.clone());
            mtproto_bound.bind(&listener.name, &listener.listen, None, service, &mut bound)?;
        }
        let mut tcp_bound = Bound::default();
        for listener in &config.tcp {
            let service = TcpService::new(listener.clone());
            tcp_bound.bind(&listener.name, &listener.listen, None, service, &mut bound)?;
        }
        let proxy_bound = bind_proxies(&config, &mut bound)?;
        let mut ws_bound = Bound::default();
        for listener in &config.websocket {
            let service = WebsocketService::new(listener.clone());
            let (name, addrs, backlog) = (&listener.name, &listener.listen, listener.backlog);
            ws_bound.bind(name, addrs, backlog, service, &mut bound)?;
        }
        let gateway_bound = bind_gateways(&config, &shared, &mut bound)?;
        let admin_listener = match &config.admin {
            Some(admin) => Some((
                bind_one("admin", admin.listen, None)?,
                Arc::<str>::from(admin.token.as_str()),
            )),
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok());
        let metrics_listener = match config.metrics {
            Some(addr) => Some(bind_one("metrics", addr, None)?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

        let serving = (&shared, &stop_accepting, &connections);
        let services = mtproto_bound.serve(mtproto::accept_loop, serving);
        let tcp_services = tcp_bound.serve(tcp::accept_loop, serving);
        let proxy_services = proxy_bound.serve(crate::inbound::proxy::accept_loop, serving);
        let ws_services = ws_bound.serve(websocket::accept_loop, serving);
        let gateway_services = gateway_bound.serve(crate::inbound::gateway::accept_loop, serving);
        if let Some((listener, token)) = admin_listener {
            tokio::spawn(crate::admin::serve(
                listener,
                token,
                shared.clone(),
                stop_background.clone(),
            ));
        }
        if let Some(listener) = metrics_listener {
            let page = StatsPage::new(shared.clone(), services.clone());
            tokio::spawn(crate::telemetry::endpoint::serve(
                listener,
                Arc::new(registry),
                Some(page),
                stop_background.clone(),
            ));
        }
        tokio::spawn(evictor(shared.clone(), stop_background.clone()));
        if let Some(middle) = &shared.middle {
            tokio::spawn(middle.clone().refresh_loop());
        }
        for (name, addr) in &bound {
            tracing::info!(listener = name, %addr, "listening");
        }
        if let Some(addr) = metrics_addr {
            tracing::info!(%addr, "metrics at http://{addr}/metrics, stats at http://{addr}/stats");
        }
        if let Some(addr) = admin_addr {
            tracing::info!(%addr, "admin API at http://{addr}/pools");
        }
        Ok(Self {
            shared,
            services,
            tcp_services,
            proxy_services,
            ws_services,
            gateway_services,
            bound,
            metrics_addr,
            admin_addr,
            stop_accepting,
            stop_background,
            connections,
        })
    }

    /// The addresses bound by a listener (with the real ports when 0 was configured).
    pub fn local_addrs(&self, listener: &str) -> Vec<SocketAddr> {
        self.bound
            .iter()
            .filter(|(name, _)| name == listener)
            .map(|(_, a)| *a)
            .collect()
    }

    /// Every bound address, with its listener's name.
    pub fn bound(&self) -> &[(String, SocketAddr)] {
        &self.bound
    }

    /// The metrics endpoint's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// State shared with connections.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Applies a new configuration to new connections: users, secrets, limits, timeouts,
    /// masking, DC table. Listen addresses and buffer sizes need a restart; a change to them is
    /// reported and otherwise ignored.
    pub fn reload(&self, new: Config) {
        let old = self.shared.config();
        for listener in &new.mtproto {
            match self.services.iter().find(|s| s.name() == listener.name) {
                Some(service) => {
                    if service.state().config.listen != listener.listen {
                        tracing::warn!(
                            listener = listener.name,
                            "listen addresses changed: restart to apply"
                        );
                    }
                    service.apply(listener.clone());
                }
                None => tracing::warn!(
                    listener = listener.name,
                    "new listener: restart to start it"
                ),
            }
        }
        for listener in &new.tcp {
            match self.tcp_services.iter().find(|s| s.name() == listener.name) {
                Some(service) => {
                    if service.config().listen != listener.listen {
                        tracing::warn!(
                            listener = listener.name,
                            "listen addresses changed: restart to apply"
                        );
                    }
                    service.apply(listener.clone());
                }
                None => tracing::warn!(
                    listener = listener.name,
                    "new listener: restart to start it"
                ),
            }
        }
        for listener in &new.proxies {
            match self
                .proxy_services
                .iter()
                .find(|s| s.name() == listener.name)
            {
                Some(service) => {
                    if service.state().config.listen != listener.listen
                        || service.kind() != listener.kind
                    {
                        tracing::warn!(
                            listener = listener.name,
                            "listen addresses or kind changed: restart to apply"
                        );
                    }
                    service.apply(listener.clone());
                }
                None => tracing::warn!(
                    listener = listener.name,
                    "new listener: restart to start it"
                ),
            }
        }
        for listener in &new.websocket {
            match self.ws_services.iter().find(|s| s.name() == listener.name) {
                Some(service) => service.apply(listener.clone()),
                None => tracing::warn!(
                    listener = listener.name,
                    "new listener: restart to start it"
                ),
            }
        }
        for gateway in &new.gateway {
            match self
                .gateway_services
                .iter()
                .find(|s| s.name() == gateway.name)
            {
                Some(service) => {
                    if service.config().listen != gateway.listen {
                        tracing::warn!(
                            listener = gateway.name,
                            "listen addresses changed: restart to apply"
                        );
                    }
                    service.apply(gateway.clone());
                }
                None => tracing::warn!(listener = gateway.name, "new gateway: restart to start it"),
            }
        }
        self.shared.pools.reconcile(&new.pools);
        if old.admin != new.admin {
            tracing::warn!("admin API settings changed: restart to apply");
        }
        if old.limits.buffer_size != new.limits.buffer_size
            || old.limits.buffered_bytes != new.limits.buffered_bytes
        {
            tracing::warn!("buffer limits changed: restart to apply");
        }
        match (&self.shared.middle, &new.telegram.middle) {
            (Some(middle), Some(fresh)) => middle.reload(fresh.clone()),
            (None, Some(_)) => tracing::warn!("middle mode enabled: restart to start it"),
            _ => {}
        }
        self.shared
            .dc_table
            .store(Arc::new(DcTable::new(&new.telegram)));
        self.shared.config.store(Arc::new(new));
        self.shared
            .metrics
            .reloads
            .get_or_create(&ReasonLabels {
                listener: String::new(),
                reason: "ok",
            })
            .inc();
        tracing::info!("configuration reloaded");
    }

    /// Stops accepting, waits up to `grace` for connections to finish, then closes the rest.
    pub async fn shutdown(self, grace: Duration) {
        self.stop_accepting.cancel();
        self.connections.close();
        let open = self.shared.conns.len();
        if open > 0 {
            tracing::info!(open, grace = ?grace, "draining connections");
        }
        if tokio::time::timeout(grace, self.connections.wait())
            .await
            .is_err()
        {
            tracing::info!(
                open = self.shared.conns.len(),
                "grace period over, closing the rest"
            );
            self.shared.conns.kill_all();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.connections.wait()).await;
        }
        self.stop_background.cancel();
        self.shared.pools.stop();
    }
}

/// Binds one address of the listener `name`.
fn bind_one(name: &str, addr: SocketAddr, backlog: Option<u32>) -> Result<TcpListener, StartError> {
    crate::listener::bind_with_backlog(addr, backlog).map_err(|source| StartError::Bind {
        listener: name.to_owned(),
        addr,
        source,
    })
}

/// One kind of listener, bound and not yet serving: each socket with the service behind it.
struct Bound<S> {
    listeners: Vec<(TcpListener, Arc<S>)>,
    services: Vec<Arc<S>>,
}

impl<S> Default for Bound<S> {
    fn default() -> Self {
        Self {
            listeners: Vec::new(),
            services: Vec::new(),
        }
    }
}

/// What every accept loop is started with: the shared state, the signal to stop accepting and
/// the tracker of connection tasks.
type Serving<'a> = (&'a Arc<Shared>, &'a CancellationToken, &'a TaskTracker);

impl<S: Send + Sync + 'static> Bound<S> {
    /// Binds every address of the listener `name` for `service`, recording the addresses
    /// really bound (with the ports picked for port 0) in `bound`.
    fn bind(
        &mut self,
        name: &str,
        addrs: &[SocketAddr],
        backlog: Option<u32>,
        service: S,
        bound: &mut Vec<(String, SocketAddr)>,
    ) -> Result<(), StartError> {
        let service = Arc::new(service);
        for addr in addrs {
            let listener = bind_one(name, *addr, backlog)?;
            bound.push((name.to_owned(), listener.local_addr().unwrap_or(*addr)));
            self.listeners.push((listener, service.clone()));
        }
        self.services.push(service);
        Ok(())
    }

    /// Starts one accept loop per socket; gives back the services for reloads.
    fn serve<F, Fut>(self, accept_loop: F, (shared, stop, tracker): Serving<'_>) -> Vec<Arc<S>>
    where
        F: Fn(TcpListener, Arc<S>, Arc<Shared>, CancellationToken, TaskTracker) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        for (listener, service) in self.listeners {
            let accepting = accept_loop(
                listener,
                service,
                shared.clone(),
                stop.clone(),
                tracker.clone(),
            );
            tokio::spawn(accepting);
        }
        self.services
    }
}

/// Binds the tunnel gateways; their agents join the registries in `shared`.
fn bind_gateways(
    config: &Config,
    shared: &Shared,
    bound: &mut Vec<(String, SocketAddr)>,
) -> Result<Bound<crate::inbound::gateway::GatewayService>, StartError> {
    let mut gateways = Bound::default();
    for gateway in &config.gateway {
        let Some(registry) = shared.gateways.get(&gateway.name) else {
            continue;
        };
        let service =
            crate::inbound::gateway::GatewayService::new(gateway.clone(), registry.clone());
        gateways.bind(&gateway.name, &gateway.listen, None, service, bound)?;
    }
    Ok(gateways)
}

/// Binds the SOCKS5, HTTP and mixed listeners; says loudly when one is an open proxy.
fn bind_proxies(
    config: &Config,
    bound: &mut Vec<(String, SocketAddr)>,
) -> Result<Bound<crate::inbound::proxy::ProxyService>, StartError> {
    let mut proxies = Bound::default();
    for listener in &config.proxies {
        let service = crate::inbound::proxy::ProxyService::new(listener.clone());
        proxies.bind(&listener.name, &listener.listen, None, service, bound)?;
        if listener.users.is_empty() && listener.exposed() {
            tracing::warn!(
                listener = listener.name,
                addrs = ?listener.listen,
                "OPEN PROXY: this listener accepts anyone who can reach it, without a password (open = true)"
            );
        }
    }
    Ok(proxies)
}

/// Closes the longest-idle connections while relay buffers hold more than their cap.
async fn evictor(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = shared.pool.pressure().notified() => {}
            () = stop.cancelled() => return,
        }
        while shared.pool.held() > shared.pool.cap() {
            let excess = shared.pool.held() - shared.pool.cap() * 9 / 10;
            let killed = shared.conns.evict_idlest(excess);
            if killed == 0 {
                break;
            }
            shared.metrics.evictions.inc_by(killed as u64);
            tracing::warn!(
                killed,
                held = shared.pool.held(),
                cap = shared.pool.cap(),
                "buffered bytes over the cap: closed the longest-idle connections"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
