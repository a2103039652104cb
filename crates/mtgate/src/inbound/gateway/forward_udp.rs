//! Remote port forwarding of UDP: the gateway's socket on the forwarded port takes datagrams
//! from anyone; each client address is a flow with its own tunnel UDP stream back to the
//! agent that asked for the port (to the address it named), and the agent's answers go back
//! to that client from the forwarded port. Flows idle out after [`IDLE_TIMEOUT`], at most
//! [`MAX_FLOWS`] live at once (the least recently used makes room), and datagrams are
//! dropped rather than buffered when a stream has no window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::tunnel::Network;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::forward::{ForwardTable, Holder};
use crate::tunnel::gateway::flows::{FlowEvent, FlowRoute, Flows};

/// A client address without datagrams either way for this long loses its stream.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Client addresses (streams) one forwarded UDP port serves at once.
pub const MAX_FLOWS: usize = 1024;

/// How often the port checks that its agent is still connected.
const AGENT_CHECK: Duration = Duration::from_millis(250);

/// Serves the forwarded UDP `port` until the agent has no connection left or `stop` fires.
pub(super) async fn serve(
    socket: UdpSocket,
    port: u16,
    holder: Holder,
    route: FlowRoute,
    table: Arc<ForwardTable>,
    stop: CancellationToken,
) {
    let registry = route.registry.clone();
    let mut flows: Flows<SocketAddr> = Flows::new(route);
    let mut inbound = vec![0u8; 65_536];
    let mut answers = vec![0u8; 65_536];
    let mut check = tokio::time::interval(AGENT_CHECK);
    let (mut relayed, mut dropped) = (0u64, 0u64);
    let count = |_: &'static str, _: usize| {};
    loop {
        tokio::select! {
            received = socket.recv_from(&mut inbound) => {
                // Errors here are ICMP news about earlier answers.
                if let Ok((n, client)) = received {
                    match flows.send(&client, &holder.target, &inbound[..n]) {
                        Some("relayed_out") | None => relayed += 1,
                        Some(_) => dropped += 1,
                    }
                }
            }
            event = flows.recv(&mut answers, &count) => {
                if let FlowEvent::Datagram(client, n) = event {
                    // Now or never: a full socket buffer drops the answer, as UDP may.
                    if socket2::SockRef::from(&socket).send_to(&answers[..n], &client.into()).is_err() {
                        dropped += 1;
                    }
                }
            }
            _ = check.tick() => {
                if registry.agent_connections(&holder.group, &holder.client_id) == 0 {
                    break;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    drop(flows);
    table.release((Network::Udp, port));
    tracing::info!(
        port,
        client_id = holder.client_id,
        relayed,
        dropped,
        "forwarded UDP port closed"
    );
}
