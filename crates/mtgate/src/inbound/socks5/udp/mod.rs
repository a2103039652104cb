//! SOCKS5 UDP ASSOCIATE.
//!
//! The association lives as long as its TCP control connection (and ends after the UDP idle
//! timeout). The client sends datagrams to a socket bound on the address it reached the proxy
//! at; only datagrams from the client's address are relayed, fragments (FRAG ≠ 0) are dropped,
//! and every destination is checked against the rules (command `udp`).
//!
//! Where the datagrams go is the egress: `direct` sockets (destinations resolved here and
//! checked after resolution; answers only from addresses the client has sent to, the SOCKS
//! header naming their source), or, on a listener routed through a gateway, one tunnel UDP
//! stream per destination through the agents ([`crate::tunnel::gateway::flows`]; the rules
//! apply to the destination as named, the agent resolves it and applies its policy; answers
//! name the destination as the client did).

mod direct;

use std::net::{IpAddr, SocketAddr};

use mtgate_proto::address::Address;
use mtgate_proto::socks5::{Reply, Response, UdpHeader};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep_until};

use super::connect::canonical;
use super::reply::{fail, send};
use crate::acl::Command;
use crate::auth::UserEntry;
use crate::inbound::proxy::Ctx;
use crate::inbound::proxy::context::user_name;
use crate::outbound::Route;
use crate::outbound::route::check_unresolved;
use crate::telemetry::proxy_metrics::{ProxyReasonLabels, TrafficLabels};
use crate::tunnel::gateway::flows::{FlowEvent, FlowRoute, Flows};
use direct::{Direct, send_now};

/// The metric name of the command.
const COMMAND: &str = "udp";

/// Destinations (tunnel streams) one association through agents may have at once.
pub const MAX_DESTINATIONS: usize = 64;

/// Largest datagram handled (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Room in front of an answer's payload for the longest SOCKS UDP header (a 255-byte name).
const ROOM: usize = 262;

/// What an egress produced.
#[derive(Debug)]
enum Received {
    /// An answer from `Address`, its payload in the buffer.
    Datagram(Address, usize),
    /// Nothing for the client; counted under the reason if there is one.
    Skipped(Option<&'static str>),
    /// The egress failed: the association ends.
    Failed,
}

/// Where the association's datagrams go.
#[derive(Debug)]
enum Egress {
    /// Out of this host's own sockets.
    Direct(Direct),
    /// Through a tunnel gateway's agents: a flow per destination.
    Agents(Flows<Address>),
}

/// The association's counters: datagrams by outcome, bytes by direction.
#[derive(Debug)]
struct Tally {
    listener: String,
    datagrams: Family<ProxyReasonLabels, Counter>,
    upload: Counter,
    download: Counter,
}

impl Tally {
    fn datagram(&self, reason: &'static str) {
        tracing::trace!(listener = self.listener, reason, "UDP datagram");
        self.datagrams
            .get_or_create(&ProxyReasonLabels {
                listener: self.listener.clone(),
                reason,
            })
            .inc();
    }

    fn bytes(&self, direction: &'static str, n: usize) {
        let counter = if direction == "upload" {
            &self.upload
        } else {
            &self.download
        };
        counter.inc_by(n as u64);
    }
}

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
    let route = ctx.route(user);
    if route.pool.is_some() && route.agents.is_none() {
        refuse!(Reply::CommandNotSupported, "udp_through_upstream");
    }
    let egress = match &route.agents {
        Some(agents) => Egress::Agents(Flows::new(FlowRoute {
            registry: agents.registry.clone(),
            group: agents.group.clone(),
            client_id: None,
            open_timeout: route.timeout,
            idle_timeout: ctx.config().udp_idle_timeout,
            max_flows: MAX_DESTINATIONS,
        })),
        // A gateway listener whose user has no group reaches nothing (as for CONNECT).
        None if ctx.config().gateway.is_some() => {
            refuse!(Reply::GeneralFailure, "no_agent_group")
        }
        None => Egress::Direct(Direct::default()),
    };
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
    let open = ctx.tunnel_opened();
    let expected = match &requested {
        Address::Socket(a) => Some(canonical(*a)),
        Address::Domain(..) => None,
    };
    let traffic = |direction| {
        metrics
            .bytes
            .get_or_create(&TrafficLabels {
                listener: ctx.name().to_owned(),
                user: user_name(user).to_owned(),
                direction,
            })
            .clone()
    };
    let tally = Tally {
        listener: ctx.name().to_owned(),
        datagrams: metrics.udp_datagrams.clone(),
        upload: traffic("upload"),
        download: traffic("download"),
    };
    let mut association = Association {
        ctx: &ctx,
        route,
        tally,
        client_socket,
        client_ip: ctx.peer.ip().to_canonical(),
        expected_port: expected.map_or(0, |a| a.port()),
        client: None,
        egress,
        buf: vec![0u8; ROOM + MAX_DATAGRAM],
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
    tally: Tally,
    client_socket: UdpSocket,
    client_ip: IpAddr,
    expected_port: u16,
    /// The client's UDP address, fixed by its first datagram.
    client: Option<SocketAddr>,
    egress: Egress,
    buf: Vec<u8>,
    last_active: Instant,
}

impl Association<'_> {
    async fn run(&mut self, control: &TcpStream) -> &'static str {
        let idle = self.ctx.config().udp_idle_timeout;
        let killed = self.ctx.entry.killed();
        loop {
            let Self {
                egress,
                buf,
                tally,
                client_socket,
                last_active,
                ..
            } = &mut *self;
            let answers = async {
                match egress {
                    Egress::Direct(direct) => direct.recv(&mut buf[ROOM..]).await,
                    Egress::Agents(flows) => {
                        let count = |reason, n| {
                            if reason == "relayed_out" {
                                tally.bytes("upload", n);
                            }
                            tally.datagram(reason);
                        };
                        match flows.recv(&mut buf[ROOM..], &count).await {
                            FlowEvent::Datagram(from, n) => Received::Datagram(from, n),
                            FlowEvent::Nothing => Received::Skipped(None),
                        }
                    }
                }
            };
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
                r = client_socket.readable() => {
                    if r.is_err() { return "io"; }
                    self.on_client_datagram().await;
                }
                received = answers => match received {
                    Received::Datagram(from, n) => self.answer(&from, n),
                    Received::Skipped(Some(reason)) => self.tally.datagram(reason),
                    Received::Skipped(None) => {}
                    Received::Failed => return "io",
                },
                () = sleep_until(*last_active + idle) => return "idle_timeout",
                () = killed.cancelled() => return "closed_by_proxy",
            }
        }
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
            return self.tally.datagram("foreign_source");
        }
        self.client = Some(from);
        let (header, len) = match UdpHeader::parse(&self.buf[..n]) {
            Ok(Some(parsed)) => parsed,
            _ => return self.tally.datagram("malformed"),
        };
        if header.frag != 0 {
            return self.tally.datagram("fragment_dropped");
        }
        self.last_active = Instant::now();
        self.ctx.entry.touch();
        let payload = &self.buf[len..n];
        let outcome = match &mut self.egress {
            Egress::Direct(direct) => {
                Some(direct.send(&self.route, &header.address, payload).await)
            }
            Egress::Agents(flows) => {
                let target = &header.address;
                // The listener's rules, on the destination as named (the agent resolves).
                if !flows.contains(target)
                    && check_unresolved(target, Command::Udp, &self.route).is_err()
                {
                    flows.refuse(target.clone(), "denied");
                }
                flows.send(target, target, payload)
            }
        };
        if outcome == Some("relayed_out") {
            self.tally.bytes("upload", n - len);
        }
        if let Some(reason) = outcome {
            self.tally.datagram(reason);
        }
    }

    /// Sends the answer in `buf[ROOM..ROOM + n]` from `from` to the client, with its header.
    fn answer(&mut self, from: &Address, n: usize) {
        let Some(client) = self.client else {
            return self.tally.datagram("unsolicited");
        };
        let mut header = Vec::with_capacity(ROOM);
        UdpHeader::new(from.clone()).write_to_buf(&mut header);
        let start = ROOM - header.len();
        self.buf[start..ROOM].copy_from_slice(&header);
        match send_now(&self.client_socket, &self.buf[start..ROOM + n], client) {
            Ok(_) => {
                self.last_active = Instant::now();
                self.ctx.entry.touch();
                self.tally.bytes("download", n);
                self.tally.datagram("relayed_back");
            }
            Err(_) => self.tally.datagram("send_failed"),
        }
    }
}
