//! Remote port forwarding (AnyProxy's `open_ports`): an agent's LISTEN asks the gateway to
//! listen on a port (one of `forward_ports`, bound on `forward_bind`); each connection
//! accepted there becomes a stream opened back to that agent, to the address it named, and is
//! relayed both ways with half-close. The port closes when the agent's connection ends.

use std::net::SocketAddr;
use std::sync::Arc;

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{ErrorCode, Network, OpenTarget};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::gateway::GatewayConfig;
use crate::tunnel::mux::{ListenRequest, Mux};

/// Ports one agent connection may have forwarded at once.
pub const MAX_FORWARDS_PER_AGENT: usize = 16;

/// The forwarded ports of one agent connection.
#[derive(Debug)]
pub struct Forwards {
    ports: Vec<u16>,
    streams: Arc<Semaphore>,
}

impl Forwards {
    /// No port yet; forwarded connections share `max_streams` streams.
    pub fn new(max_streams: usize) -> Self {
        Self {
            ports: Vec::new(),
            streams: Arc::new(Semaphore::new(max_streams)),
        }
    }

    /// Checks and binds the requested port, answers the agent, and serves the port until the
    /// agent's connection ends or the server stops.
    pub async fn start(
        &mut self,
        request: ListenRequest,
        mux: &Mux,
        config: &GatewayConfig,
        stop: &CancellationToken,
    ) {
        let port = request.port();
        let refused = |code, reason: &str| Err((code, reason.to_owned()));
        let checked = if request.network() != Network::Tcp {
            refused(ErrorCode::InvalidMessage, "only tcp ports are forwarded")
        } else if !config.forward_ports.iter().any(|r| r.contains(&port)) {
            refused(
                ErrorCode::ForbiddenHost,
                "the port is not in the gateway's forward_ports",
            )
        } else if self.ports.contains(&port) {
            refused(ErrorCode::InvalidMessage, "the port is already forwarded")
        } else if self.ports.len() >= MAX_FORWARDS_PER_AGENT {
            refused(ErrorCode::RateLimited, "too many forwarded ports")
        } else {
            Ok(())
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
        let listener = match crate::listener::bind(addr) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::info!(gateway = config.name, %addr, error = %e, "port forward cannot bind");
                request.answer(Err((
                    ErrorCode::InternalError,
                    format!("cannot listen: {e}"),
                )));
                return;
            }
        };
        let target = request.target().clone();
        request.answer(Ok(()));
        self.ports.push(port);
        tracing::info!(gateway = config.name, %addr, target = ?target, "port forwarded to an agent");
        tokio::spawn(serve(
            listener,
            target,
            mux.clone(),
            self.streams.clone(),
            stop.clone(),
        ));
    }
}

async fn serve(
    listener: TcpListener,
    target: Address,
    mux: Mux,
    streams: Arc<Semaphore>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = mux.closed() => return,
            () = stop.cancelled() => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "forwarded port: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the limit the connection is closed at once rather than queued.
        let Ok(permit) = streams.clone().try_acquire_owned() else {
            continue;
        };
        let mux = mux.clone();
        let target = target.clone();
        tokio::spawn(async move {
            relay(tcp, &mux, target).await;
            drop(permit);
        });
    }
}

/// Opens a stream back to the agent and relays until both directions finished.
async fn relay(mut tcp: TcpStream, mux: &Mux, target: Address) {
    let _ = tcp.set_nodelay(true);
    let opened = mux
        .open(OpenTarget {
            network: Network::Tcp,
            address: target,
        })
        .await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(error = %e, "forwarded connection: the agent did not open the stream");
            return;
        }
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut tcp, &mut stream, 32 << 10, 32 << 10);
    tokio::select! {
        r = copy => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "forwarded connection ended with an error");
            }
        }
        () = mux.closed() => {}
    }
}
