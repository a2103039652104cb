//! The `tcp` listener: a layer-4 load balancer. Each accepted connection gets a server from
//! its pool (retries and failover happen before the first client byte goes anywhere), an
//! optional PROXY protocol header, and then the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::pool::TcpListenerConfig;
use crate::gate::{Gate, Pass};
use crate::outbound::{ClientKey, proxy_header};
use crate::relay::pump::{RelayContext, write_all};
use crate::relay::{Passthrough, RelayEnd, relay};
use crate::server::Shared;
use crate::telemetry::metrics::{DirectionLabels, ListenerLabels};

/// Time to write the PROXY header and bytes the backend sent early.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[tcp]]` listener at run time.
#[derive(Debug)]
pub struct TcpService {
    name: String,
    config: ArcSwap<TcpListenerConfig>,
    gate: Arc<Gate>,
}

impl TcpService {
    /// A service for `config`.
    pub fn new(config: TcpListenerConfig) -> Self {
        Self {
            name: config.name.clone(),
            config: ArcSwap::from_pointee(config),
            gate: Arc::default(),
        }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings now.
    pub fn config(&self) -> Arc<TcpListenerConfig> {
        self.config.load_full()
    }

    /// Applies reloaded settings to new connections.
    pub fn apply(&self, config: TcpListenerConfig) {
        self.config.store(Arc::new(config));
    }
}

/// Accepts until `stop` fires.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<TcpService>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let labels = ListenerLabels {
        listener: service.name.clone(),
    };
    let meters = Arc::new(Meters::new(&shared, &service.name));
    loop {
        let Some((stream, peer)) =
            crate::listener::accept_until(&listener, &stop, &service.name).await
        else {
            return;
        };
        let limit = service.config().max_connections.unwrap_or(usize::MAX);
        let passes = shared.admit(&labels, &service.gate, limit);
        let Some(passes) = passes else {
            count(&shared, &service, "connection_limit");
            continue;
        };
        let connection = Connection {
            service: service.clone(),
            shared: shared.clone(),
            meters: meters.clone(),
            _passes: passes,
        };
        tracker.spawn(serve(stream, peer, connection));
    }
}

fn count(shared: &Shared, service: &TcpService, reason: &'static str) {
    shared.metrics.refused(&service.name, reason);
}

/// The listener's metric handles, looked up once instead of once per connection.
struct Meters {
    open: Gauge,
    up: Counter,
    down: Counter,
}

impl Meters {
    fn new(shared: &Shared, listener: &str) -> Self {
        let metrics = &shared.metrics;
        let bytes = |direction| {
            metrics
                .tcp_bytes
                .get_or_create(&DirectionLabels {
                    listener: listener.to_owned(),
                    direction,
                })
                .clone()
        };
        Self {
            open: metrics
                .connections_open
                .get_or_create(&ListenerLabels {
                    listener: listener.to_owned(),
                })
                .clone(),
            up: bytes("client_to_upstream"),
            down: bytes("upstream_to_client"),
        }
    }
}

/// What one accepted connection shares with its listener.
struct Connection {
    service: Arc<TcpService>,
    shared: Arc<Shared>,
    meters: Arc<Meters>,
    /// Held for the connection's life: its places under the global and listener caps.
    _passes: (Pass, Pass),
}

async fn serve(client: TcpStream, peer: SocketAddr, connection: Connection) {
    let Connection {
        service,
        shared,
        meters,
        _passes,
    } = connection;
    let registration = shared.conns.register();
    let entry = registration.entry();
    let config = service.config();
    let _open = OpenGauge::enter(&meters.open);
    let Some(pool) = shared.pools.get(&config.pool) else {
        tracing::warn!(listener = service.name, pool = config.pool, "pool is gone");
        count(&shared, &service, "no_pool");
        return;
    };
    // The pool's own deadline bounds this; the kill switch ends it early at shutdown.
    let key = ClientKey::new(peer.ip());
    let connecting = Box::pin(pool.pool.connect_any_keyed(key.as_bytes()));
    let upstream = tokio::select! {
        r = connecting => r,
        () = entry.killed().cancelled() => {
            return;
        }
    };
    let upstream = match upstream {
        Ok(stream) => stream,
        Err(e) => {
            tracing::info!(listener = service.name, pool = config.pool, %peer, error = %e, "no upstream");
            count(&shared, &service, "upstream_unavailable");
            return;
        }
    };
    let tunnel = match upstream.into_tcp() {
        Ok(tunnel) => tunnel,
        Err(_) => {
            // A TLS hop (https:// proxy) cannot be relayed by the socket pump.
            tracing::warn!(
                listener = service.name,
                "https:// hops are not supported on tcp listeners"
            );
            count(&shared, &service, "unsupported_upstream");
            return;
        }
    };
    // TCP_NODELAY: the client's socket inherits it from the listener, the backend's was set
    // when it was dialled.
    if let Some(version) = config.proxy_protocol {
        let local = client.local_addr().unwrap_or(peer);
        let header = proxy_header::encode(version, peer, local);
        let writing = tokio::time::timeout(WRITE_TIMEOUT, write_all(&tunnel.tcp, &header));
        if !matches!(writing.await, Ok(Ok(()))) {
            count(&shared, &service, "upstream_write");
            return;
        }
    }
    if !tunnel.prefix.is_empty() {
        let writing = tokio::time::timeout(WRITE_TIMEOUT, write_all(&client, &tunnel.prefix));
        if !matches!(writing.await, Ok(Ok(()))) {
            return;
        }
    }
    let ctx = RelayContext {
        pool: &shared.pool,
        entry,
        idle_timeout: config.idle_timeout,
        closes_after: true,
    };
    let relaying = relay(
        &client,
        &tunnel.tcp,
        (Passthrough::unlimited(), Some(&meters.up)),
        (Passthrough::unlimited(), Some(&meters.down)),
        ctx,
    );
    match relaying.await {
        RelayEnd::Finished | RelayEnd::Idle | RelayEnd::Killed => {}
        RelayEnd::Failed(e) => {
            tracing::debug!(listener = service.name, %peer, error = %e, "tcp session ended");
        }
    }
}

/// Counts a connection in the open-connections gauge until dropped.
struct OpenGauge<'a>(&'a Gauge);

impl<'a> OpenGauge<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
