//! Direct egress of a UDP association: one outbound socket per address family, every
//! destination resolved here and checked against the rules (command `udp`); answers are
//! taken only from addresses the client has sent to.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mtgate_proto::address::Address;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::Received;
use crate::acl::Command;
use crate::inbound::socks5::connect::canonical;
use crate::outbound::{Route, allowed_addresses};

/// Destinations a client may receive answers from, per association.
const MAX_PEERS: usize = 4096;

/// Resolved names remembered per association, and for how long.
const DNS_CACHE: usize = 256;
const DNS_TTL: Duration = Duration::from_secs(60);

/// The sockets and the memory of one direct association.
#[derive(Debug, Default)]
pub(super) struct Direct {
    out4: Option<UdpSocket>,
    out6: Option<UdpSocket>,
    peers: HashSet<SocketAddr>,
    dns: HashMap<(String, u16), (Instant, SocketAddr)>,
}

/// Sends a datagram now or drops it (UDP semantics). This goes to the socket directly:
/// tokio's `try_send_to` reports `WouldBlock` on a socket the reactor has not yet seen
/// writable, which is every freshly opened outbound socket.
pub(super) fn send_now(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to(data, &to.into())
}

/// Waits until `socket` (if any) has a datagram.
async fn readable(socket: &Option<UdpSocket>) -> std::io::Result<()> {
    match socket {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

impl Direct {
    /// Sends `payload` to `target`; the outcome's metric reason.
    pub(super) async fn send(
        &mut self,
        route: &Route<'_>,
        target: &Address,
        payload: &[u8],
    ) -> &'static str {
        let Some(destination) = self.resolve(route, target).await else {
            return "denied";
        };
        let v6 = destination.is_ipv6();
        if self.open_outbound(v6).is_err() {
            return "send_failed";
        }
        let socket = if v6 { &self.out6 } else { &self.out4 };
        let Some(socket) = socket else {
            return "send_failed";
        };
        match send_now(socket, payload, destination) {
            Ok(_) => {
                if self.peers.len() < MAX_PEERS {
                    self.peers.insert(destination);
                }
                "relayed_out"
            }
            Err(_) => "send_failed",
        }
    }

    /// The next answer, written to `buf`. Cancel-safe: a datagram is taken only when it is
    /// returned.
    pub(super) async fn recv(&mut self, buf: &mut [u8]) -> Received {
        loop {
            let v6 = tokio::select! {
                r = readable(&self.out4) => match r {
                    Ok(()) => false,
                    Err(_) => return Received::Failed,
                },
                r = readable(&self.out6) => match r {
                    Ok(()) => true,
                    Err(_) => return Received::Failed,
                },
            };
            let socket = if v6 { &self.out6 } else { &self.out4 };
            let Some(socket) = socket else { continue };
            let (n, from) = match socket.try_recv_from(buf) {
                Ok(pair) => pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                // An ICMP error for an earlier datagram.
                Err(_) => return Received::Skipped(None),
            };
            let from = canonical(from);
            if !self.peers.contains(&from) {
                return Received::Skipped(Some("unsolicited"));
            }
            return Received::Datagram(Address::Socket(from), n);
        }
    }

    /// The address to send to, if the rules allow it (cached per name).
    async fn resolve(&mut self, route: &Route<'_>, target: &Address) -> Option<SocketAddr> {
        let key = match target {
            Address::Domain(name, port) => Some((name.clone(), *port)),
            Address::Socket(_) => None,
        };
        if let Some(key) = &key
            && let Some((at, addr)) = self.dns.get(key)
            && at.elapsed() < DNS_TTL
        {
            return Some(*addr);
        }
        let addrs = allowed_addresses(target, Command::Udp, route).await.ok()?;
        let addr = canonical(*addrs.first()?);
        if let Some(key) = key {
            if self.dns.len() >= DNS_CACHE {
                self.dns.clear();
            }
            self.dns.insert(key, (Instant::now(), addr));
        }
        Some(addr)
    }

    /// Opens the outbound socket of one family on first use.
    fn open_outbound(&mut self, v6: bool) -> std::io::Result<()> {
        let slot = if v6 { &mut self.out6 } else { &mut self.out4 };
        if slot.is_none() {
            let any: SocketAddr = if v6 {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let std = std::net::UdpSocket::bind(any)?;
            std.set_nonblocking(true)?;
            *slot = Some(UdpSocket::from_std(std)?);
        }
        Ok(())
    }
}
