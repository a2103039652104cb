//! UDP streams on the agent: the target is resolved and checked like a TCP one, then a UDP
//! socket connected to the first allowed address carries the stream's datagrams both ways.
//! Nothing waits: a datagram the target's socket cannot take now, or that the stream has no
//! window for, is dropped (and counted), so a slow tunnel costs no memory here.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::ErrorCode;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::Policy;
use super::target::{DialFailure, allowed_addresses};
use crate::tunnel::mux::MuxStream;

/// Room for the largest UDP datagram (larger than a DATA frame: those are dropped).
const RECV_BUFFER: usize = 65_536;

/// How long the last queued datagrams get to leave before FIN.
const FIN_GRACE: Duration = Duration::from_secs(2);

/// How a UDP stream ended, with its datagram counts.
#[derive(Debug, Default)]
pub struct UdpEnd {
    /// Why: `finished` (FIN from the gateway), `idle`, `stopped`, `failed`.
    pub reason: &'static str,
    /// Datagrams sent to the target.
    pub to_target: u64,
    /// Datagrams from the target queued for the gateway.
    pub to_gateway: u64,
    /// Datagrams dropped (too big for a frame, no window, the target's socket full).
    pub dropped: u64,
}

/// A UDP socket connected to `target`, if `policy` allows it. Tries the allowed addresses
/// in order until one family can be bound and connected.
pub async fn connect(
    target: &Address,
    policy: &Policy,
    timeout: Duration,
) -> Result<UdpSocket, DialFailure> {
    let allowed = allowed_addresses(target, policy, timeout).await?;
    let mut last = None;
    for addr in allowed {
        match connect_one(addr).await {
            Ok(socket) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    let code = match last.as_ref().map(std::io::Error::kind) {
        Some(ErrorKind::HostUnreachable) => ErrorCode::HostUnreachable,
        Some(ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable) => {
            ErrorCode::NetworkUnreachable
        }
        _ => ErrorCode::InternalError,
    };
    let reason = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
    Err(DialFailure::new(code, reason))
}

async fn connect_one(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

/// Moves datagrams between `socket` and `stream` until the gateway finishes the stream, it
/// idles for `idle_timeout`, `stop` fires, or a side fails. Dropping the stream unfinished
/// resets it. A datagram the target's socket cannot take also counts in `drops` as it
/// happens (the multiplexer counts those it drops itself).
pub async fn relay(
    socket: UdpSocket,
    mut stream: MuxStream,
    idle_timeout: Duration,
    stop: &CancellationToken,
    drops: &AtomicU64,
) -> UdpEnd {
    let mut end = UdpEnd::default();
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut last_active = Instant::now();
    end.reason = loop {
        tokio::select! {
            received = socket.recv(&mut buf) => match received {
                Ok(n) => {
                    last_active = Instant::now();
                    match stream.send_datagram(&buf[..n]) {
                        Ok(Ok(())) => end.to_gateway += 1,
                        Ok(Err(_)) => end.dropped += 1,
                        Err(_) => break "failed",
                    }
                }
                // An ICMP error from the target (port unreachable) is UDP's news, not an end.
                Err(e) if transient(&e) => {}
                Err(_) => break "failed",
            },
            datagram = stream.recv_datagram() => match datagram {
                Ok(Some(datagram)) => {
                    last_active = Instant::now();
                    // Straight to the socket: tokio's `try_send` can report WouldBlock on a
                    // socket the reactor has not yet seen writable.
                    match socket2::SockRef::from(&socket).send(&datagram) {
                        Ok(_) => end.to_target += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock || transient(&e) => {
                            end.dropped += 1;
                            drops.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break "failed",
                    }
                }
                Ok(None) => break "finished",
                Err(_) => break "failed",
            },
            () = tokio::time::sleep_until(last_active + idle_timeout) => break "idle",
            () = stop.cancelled() => break "stopped",
        }
    };
    if end.reason == "finished" {
        // Both ways done: the stream closes without a reset.
        let _ = tokio::time::timeout(FIN_GRACE, stream.shutdown()).await;
    }
    end
}

/// Errors a connected UDP socket reports for earlier datagrams (ICMP), not for itself.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
    )
}
