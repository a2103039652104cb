//! Remote port forwarding (AnyProxy's `open_ports`): an agent's LISTEN asks the gateway to
//! listen on a port (one of `forward_ports`, bound on `forward_bind`); each connection
//! accepted there becomes a stream opened back to that agent, to the address it named, and is
//! relayed both ways with half-close.
//!
//! A forwarded port belongs to the agent (its client id), not to one connection: every
//! replica of an agent asks for the same ports, the first LISTEN binds, the others are
//! answered yes, accepted connections go to any live replica of the agent, and the port closes
//! once the agent has no connection left. UDP ports are served by [`super::forward_udp`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{ErrorCode, Network, OpenTarget};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::gateway::GatewayConfig;
use crate::tunnel::gateway::Registry;
use crate::tunnel::gateway::flows::FlowRoute;
use crate::tunnel::gateway::registry::ReplicaInfo;
use crate::tunnel::mux::ListenRequest;

/// Ports one agent may have forwarded at once.
pub const MAX_FORWARDS_PER_AGENT: usize = 16;

/// How often a forwarded port checks that its agent is still connected.
const AGENT_CHECK: Duration = Duration::from_millis(250);

/// Who holds a forwarded port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) group: String,
    pub(super) client_id: String,
    pub(super) target: Address,
}

/// A forwarded port: TCP and UDP ports of the same number are apart.
type PortKey = (Network, u16);

/// The forwarded ports of one gateway.
#[derive(Debug, Default)]
pub struct ForwardTable {
    ports: Mutex<HashMap<PortKey, Holder>>,
}

impl ForwardTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PortKey, Holder>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frees a port once its server ended.
    pub(super) fn release(&self, key: PortKey) {
        self.lock().remove(&key);
    }
}

/// What serves a bound port.
enum Bound {
    Tcp(TcpListener),
    Udp(tokio::net::UdpSocket),
}

fn bind(network: Network, addr: SocketAddr) -> std::io::Result<Bound> {
    match network {
        Network::Tcp => crate::listener::bind(addr).map(Bound::Tcp),
        Network::Udp => {
            let socket = std::net::UdpSocket::bind(addr)?;
            socket.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(socket).map(Bound::Udp)
        }
    }
}

/// Checks and binds the requested port for `agent`, answers, and serves the port until the
/// agent has no connection left or the server stops.
pub async fn listen(
    request: ListenRequest,
    agent: &ReplicaInfo,
    table: &Arc<ForwardTable>,
    registry: &Arc<Registry>,
    config: &GatewayConfig,
    stop: &CancellationToken,
) {
    let port = request.port();
    let network = request.network();
    let key = (network, port);
    let holder = Holder {
        group: agent.group.clone(),
        client_id: agent.client_id.clone(),
        target: request.target().clone(),
    };
    let refused = |code, reason: &str| Err((code, reason.to_owned()));
    let checked = {
        let ports = table.lock();
        if !config.forward_ports.iter().any(|r| r.contains(&port)) {
            refused(
                ErrorCode::ForbiddenHost,
                "the port is not in the gateway's forward_ports",
            )
        } else if let Some(held) = ports.get(&key) {
            if held == &holder {
                // Another replica of the same agent: the port is already served.
                request.answer(Ok(()));
                return;
            }
            refused(
                ErrorCode::InvalidMessage,
                "the port is forwarded for another agent",
            )
        } else if ports
            .values()
            .filter(|h| h.group == holder.group && h.client_id == holder.client_id)
            .count()
            >= MAX_FORWARDS_PER_AGENT
        {
            refused(ErrorCode::RateLimited, "too many forwarded ports")
        } else {
            Ok(())
        }
    };
    if let Err(e) = checked {
        tracing::info!(
            gateway = config.name,
            port,
            reason = e.1,
            "port forward refused"
        );
        request.answer(Err(e));
        return;
    }
    let addr = SocketAddr::new(config.forward_bind, port);
    let bound = match bind(network, addr) {
        Ok(bound) => bound,
        Err(e) => {
            tracing::info!(gateway = config.name, %addr, error = %e, "port forward cannot bind");
            request.answer(Err((
                ErrorCode::InternalError,
                format!("cannot listen: {e}"),
            )));
            return;
        }
    };
    {
        let mut ports = table.lock();
        if ports.contains_key(&key) {
            // Another replica bound it meanwhile (the bind above then failed for one of us).
            drop(ports);
            request.answer(Ok(()));
            return;
        }
        ports.insert(key, holder.clone());
    }
    request.answer(Ok(()));
    tracing::info!(gateway = config.name, %addr, network = network.as_str(), client_id = holder.client_id, target = ?holder.target, "port forwarded to an agent");
    match bound {
        Bound::Tcp(listener) => {
            tokio::spawn(serve(
                listener,
                port,
                holder,
                table.clone(),
                registry.clone(),
                config.max_streams_per_agent,
                stop.clone(),
            ));
        }
        Bound::Udp(socket) => {
            let route = FlowRoute {
                registry: registry.clone(),
                group: holder.group.clone(),
                client_id: Some(holder.client_id.clone()),
                open_timeout: config.open_timeout,
                idle_timeout: super::forward_udp::IDLE_TIMEOUT,
                max_flows: config
                    .max_streams_per_agent
                    .min(super::forward_udp::MAX_FLOWS),
            };
            tokio::spawn(super::forward_udp::serve(
                socket,
                port,
                holder,
                route,
                table.clone(),
                stop.clone(),
            ));
        }
    }
}

async fn serve(
    listener: TcpListener,
    port: u16,
    holder: Holder,
    table: Arc<ForwardTable>,
    registry: Arc<Registry>,
    max_streams: usize,
    stop: CancellationToken,
) {
    let streams = Arc::new(Semaphore::new(max_streams));
    let mut check = tokio::time::interval(AGENT_CHECK);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = check.tick() => {
                if registry.agent_connections(&holder.group, &holder.client_id) == 0 {
                    break;
                }
                continue;
            }
            () = stop.cancelled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(port, error = %e, "forwarded port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the limit the connection is closed at once rather than queued.
        let Ok(permit) = streams.clone().try_acquire_owned() else {
            continue;
        };
        let registry = registry.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            relay(tcp, &registry, &holder).await;
            drop(permit);
        });
    }
    table.release((Network::Tcp, port));
    tracing::info!(port, client_id = holder.client_id, "forwarded port closed");
}

/// Opens a stream back to the agent and relays until both directions finished.
async fn relay(mut tcp: TcpStream, registry: &Registry, holder: &Holder) {
    let _ = tcp.set_nodelay(true);
    let target = OpenTarget {
        network: Network::Tcp,
        address: holder.target.clone(),
    };
    let mut stream = match registry
        .open_on_agent(&holder.group, &holder.client_id, target)
        .await
    {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(error = %e, "forwarded connection: the agent did not open the stream");
            return;
        }
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut tcp, &mut stream, 32 << 10, 32 << 10);
    if let Err(e) = copy.await {
        tracing::debug!(error = %e, "forwarded connection ended with an error");
    }
}
