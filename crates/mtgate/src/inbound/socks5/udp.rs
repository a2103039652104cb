//! SOCKS5 UDP ASSOCIATE.
//!
//! The association lives as long as its TCP control connection (and ends after the UDP idle
//! timeout). The client sends datagrams to a socket bound on the address it reached the proxy
//! at; only datagrams from the client's address are relayed, fragments (FRAG ≠ 0) are dropped,
//! and every destination is checked against the rules (command `udp`) after resolution.
//! Answers come back only from addresses the client has sent to, with the SOCKS header naming
//! their source.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mtgate_proto::address::Address;
use mtgate_proto::socks5::{Reply, Response, UdpHeader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep_until};

use super::connect::canonical;
use super::reply::{fail, send};
use crate::acl::Command;
use crate::auth::UserEntry;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::context::user_name;
use crate::outbound::{Route, allowed_addresses};
use crate::telemetry::proxy_metrics::{ProxyListenerLabels, ProxyReasonLabels, TrafficLabels};

/// The metric name of the command.
const COMMAND: &str = "udp";

/// Largest datagram handled (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Destinations a client may receive answers from, per association.
const MAX_PEERS: usize = 4096;

/// Resolved names remembered per association, and for how long.
const DNS_CACHE: usize = 256;
const DNS_TTL: Duration = Duration::from_secs(60);

/// Runs an association; `requested` is where the client says it will send from.
pub async fn run(stream: TcpStream, requested: Address, user: Option<&UserEntry>, ctx: Ctx<'_>) {
    macro_rules! refuse {
        ($reply:expr, $reason:expr) => {{
            ctx.refused(user, COMMAND, &requested, $reason);
            return fail(stream, $reply).await;
        }};
    }
    if !ctx.config().udp {
        refuse!(Reply::CommandNotSupported, "udp_disabled");
    }
    if ctx.pool(user).is_some() || ctx.config().gateway.is_some() {
        refuse!(Reply::CommandNotSupported, "udp_through_upstream");
    }
    let _pass = match user {
        Some(u) => match u
            .gate
            .try_enter(u.config.max_connections.unwrap_or(usize::MAX))
        {
            Some(p) => Some(p),
            None => refuse!(Reply::NotAllowed, "user_connection_limit"),
        },
        None => None,
    };
    let local_ip = ctx.local.ip().to_canonical();
    let client_socket = match UdpSocket::bind((local_ip, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(listener = ctx.name(), error = %e, "cannot bind a UDP relay socket");
            refuse!(Reply::GeneralFailure, "udp_bind_failed");
        }
    };
    let Ok(bound) = client_socket.local_addr() else {
        refuse!(Reply::GeneralFailure, "udp_bind_failed");
    };
    let mut answer = Vec::new();
    Response::new(Reply::Succeeded, Address::Socket(bound)).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_err() {
        return;
    }
    let metrics = &ctx.shared.metrics.proxy;
    let open = metrics
        .tunnels_open
        .get_or_create(&ProxyListenerLabels {
            listener: ctx.name().to_owned(),
        })
        .clone();
    open.inc();
    let expected = match &requested {
        Address::Socket(a) => Some(canonical(*a)),
        Address::Domain(..) => None,
    };
    let mut association = Association {
        ctx: &ctx,
        route: ctx.route(user),
        user,
        client_socket,
        client_ip: ctx.peer.ip().to_canonical(),
        expected_port: expected.map_or(0, |a| a.port()),
        client: None,
        out4: None,
        out6: None,
        peers: HashSet::new(),
        dns: HashMap::new(),
        buf: vec![0u8; MAX_DATAGRAM + 262],
        last_active: Instant::now(),
    };
    let end = association.run(&stream).await;
    drop(association);
    open.dec();
    ctx.count(user, COMMAND, end);
    tracing::debug!(listener = ctx.name(), peer = %ctx.peer, user = user_name(user), outcome = end, "UDP association closed");
}

struct Association<'a> {
    ctx: &'a Ctx<'a>,
    route: Route<'a>,
    user: Option<&'a UserEntry>,
    client_socket: UdpSocket,
    client_ip: IpAddr,
    expected_port: u16,
    /// The client's UDP address, fixed by its first datagram.
    client: Option<SocketAddr>,
    out4: Option<UdpSocket>,
    out6: Option<UdpSocket>,
    peers: HashSet<SocketAddr>,
    dns: HashMap<(String, u16), (Instant, SocketAddr)>,
    buf: Vec<u8>,
    last_active: Instant,
}

/// Sends a datagram now or drops it (UDP semantics). This goes to the socket directly:
/// tokio's `try_send_to` reports `WouldBlock` on a socket the reactor has not yet seen
/// writable, which is every freshly opened outbound socket.
fn send_now(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to(data, &to.into())
}

/// Waits until `socket` (if any) has a datagram.
async fn readable(socket: &Option<UdpSocket>) -> std::io::Result<()> {
    match socket {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

impl Association<'_> {
    async fn run(&mut self, control: &TcpStream) -> &'static str {
        let idle = self.ctx.config().udp_idle_timeout;
        loop {
            tokio::select! {
                r = control.readable() => {
                    let mut scratch = [0u8; 64];
                    match (r, control.try_read(&mut scratch)) {
                        (Err(_), _) | (_, Ok(0)) => return "ok",
                        (_, Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => return "ok",
                        // Bytes on the control connection mean nothing; ignore them.
                        _ => {}
                    }
                }
                r = self.client_socket.readable() => {
                    if r.is_err() { return "io"; }
                    self.on_client_datagram().await;
                }
                r = readable(&self.out4) => {
                    if r.is_err() { return "io"; }
                    self.on_outside_datagram(false);
                }
                r = readable(&self.out6) => {
                    if r.is_err() { return "io"; }
                    self.on_outside_datagram(true);
                }
                () = sleep_until(self.last_active + idle) => return "idle_timeout",
                () = self.ctx.entry.killed().cancelled() => return "closed_by_proxy",
            }
        }
    }

    fn datagram(&self, reason: &'static str) {
        tracing::trace!(listener = self.ctx.name(), reason, "UDP datagram");
        self.ctx
            .shared
            .metrics
            .proxy
            .udp_datagrams
            .get_or_create(&ProxyReasonLabels {
                listener: self.ctx.name().to_owned(),
                reason,
            })
            .inc();
    }

    fn bytes(&self, direction: &'static str, n: usize) {
        self.ctx
            .shared
            .metrics
            .proxy
            .bytes
            .get_or_create(&TrafficLabels {
                listener: self.ctx.name().to_owned(),
                user: user_name(self.user).to_owned(),
                direction,
            })
            .inc_by(n as u64);
    }

    async fn on_client_datagram(&mut self) {
        let (n, from) = match self.client_socket.try_recv_from(&mut self.buf) {
            Ok(pair) => pair,
            Err(_) => return,
        };
        let from = canonical(from);
        let accepted = match self.client {
            Some(client) => client == from,
            None => {
                from.ip() == self.client_ip
                    && (self.expected_port == 0 || self.expected_port == from.port())
            }
        };
        if !accepted {
            return self.datagram("foreign_source");
        }
        self.client = Some(from);
        let (header, len) = match UdpHeader::parse(&self.buf[..n]) {
            Ok(Some(parsed)) => parsed,
            _ => return self.datagram("malformed"),
        };
        if header.frag != 0 {
            return self.datagram("fragment_dropped");
        }
        self.last_active = Instant::now();
        self.ctx.entry.touch();
        let Some(destination) = self.resolve(&header.address).await else {
            return self.datagram("denied");
        };
        let v6 = destination.is_ipv6();
        if self.open_outbound(v6).is_err() {
            return self.datagram("send_failed");
        }
        let socket = if v6 { &self.out6 } else { &self.out4 };
        let Some(socket) = socket else {
            return self.datagram("send_failed");
        };
        match send_now(socket, &self.buf[len..n], destination) {
            Ok(sent) => {
                if self.peers.len() < MAX_PEERS {
                    self.peers.insert(destination);
                }
                self.bytes("upload", sent);
                self.datagram("relayed_out");
            }
            Err(_) => self.datagram("send_failed"),
        }
    }

    fn on_outside_datagram(&mut self, v6: bool) {
        let socket = if v6 { &self.out6 } else { &self.out4 };
        let Some(socket) = socket else { return };
        // Leave room in front of the payload for the longest header (IPv6: 22 bytes).
        const ROOM: usize = 22;
        let (n, from) = match socket.try_recv_from(&mut self.buf[ROOM..]) {
            Ok(pair) => pair,
            Err(_) => return,
        };
        let from = canonical(from);
        let (Some(client), true) = (self.client, self.peers.contains(&from)) else {
            return self.datagram("unsolicited");
        };
        let mut header = Vec::with_capacity(ROOM);
        UdpHeader::new(Address::Socket(from)).write_to_buf(&mut header);
        let start = ROOM - header.len();
        self.buf[start..ROOM].copy_from_slice(&header);
        match send_now(&self.client_socket, &self.buf[start..ROOM + n], client) {
            Ok(_) => {
                self.last_active = Instant::now();
                self.ctx.entry.touch();
                self.bytes("download", n);
                self.datagram("relayed_back");
            }
            Err(_) => self.datagram("send_failed"),
        }
    }

    /// The address to send to, if the rules allow it (cached per name).
    async fn resolve(&mut self, target: &Address) -> Option<SocketAddr> {
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
        let addrs = allowed_addresses(target, Command::Udp, &self.route)
            .await
            .ok()?;
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
