//! Opening a tunnel through a list of hops under one deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mtgate_proto::address::Address;
use mtgate_proto::socks4;
use mtgate_proto::socks5::Command;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::direct::{self, DialOptions};
use crate::error::{ConnectError, Stage};
use crate::handshake::{self, Deadline, HandshakeIo};
use crate::proxy::{Kind, Proxy};
use crate::stream::{ConnectionInfo, ProxyStream};
use crate::tls;
use crate::transport::Transport;

/// How to connect through proxies.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The budget for the whole attempt: resolving and dialling the first hop, TLS, every
    /// hop's authentication and reply. Default 10 s.
    pub timeout: Duration,
    /// Dialling the first hop (happy eyeballs, TCP_NODELAY, keepalive, source address). Its
    /// `timeout` is capped by the attempt's remaining budget.
    pub dial: DialOptions,
    /// TLS for `https://` proxies; `None` uses [`crate::default_tls_config`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            dial: DialOptions::default(),
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults with a different overall timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

/// What the last hop is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Connect,
    Bind,
    UdpAssociate,
}

/// A tunnel right after the last hop's (first) reply.
pub(crate) struct Opened {
    pub(crate) transport: Transport,
    pub(crate) leftover: Bytes,
    pub(crate) bound: Option<Address>,
    pub(crate) deadline: Deadline,
    pub(crate) started: Instant,
}

impl Opened {
    pub(crate) fn into_stream(self, hops: Arc<[Proxy]>, target: Address) -> ProxyStream {
        // Socket addresses are looked up when asked for (each lookup is a system call).
        let info = ConnectionInfo {
            target,
            hops,
            local_addr: None,
            peer_addr: None,
            bound_addr: self.bound,
            connect_time: self.started.elapsed(),
            pool_member: None,
            bytes_read: 0,
            bytes_written: 0,
        };
        ProxyStream::new(self.transport, self.leftover, info)
    }
}

/// Connects to `target` through `hops` (directly when there are none), within `budget`
/// (usually `options.timeout`).
pub(crate) async fn open(
    hops: &[Proxy],
    target: &Address,
    finish: Finish,
    options: &ConnectOptions,
    budget: Duration,
) -> Result<Opened, ConnectError> {
    let started = Instant::now();
    let deadline = Deadline::after(budget);
    let Some(first) = hops.first() else {
        if finish != Finish::Connect {
            return Err(ConnectError::Unsupported(
                "BIND and UDP ASSOCIATE need a SOCKS5 proxy",
            ));
        }
        let tcp = dial(target, options, &deadline).await?;
        return Ok(Opened {
            transport: Transport::Tcp(tcp),
            leftover: Bytes::new(),
            bound: None,
            deadline,
            started,
        });
    };
    // The proxy handshakes and TLS make a large state machine. Boxed, they leave a direct
    // connection's future small, and with it every pool connect and task that waits on one.
    let (transport, leftover, bound) = Box::pin(through_hops(
        first, hops, target, finish, options, &deadline,
    ))
    .await?;
    Ok(Opened {
        transport,
        leftover,
        bound,
        deadline,
        started,
    })
}

/// The tunnel through `hops`, of which `first` is the first: the TCP connection to it, each
/// hop's handshake towards the next (TLS where a hop is `https://`), and the last one's towards
/// `target`. Gives the transport, bytes read past the last reply, and the bound address.
async fn through_hops(
    first: &Proxy,
    hops: &[Proxy],
    target: &Address,
    finish: Finish,
    options: &ConnectOptions,
    deadline: &Deadline,
) -> Result<(Transport, Bytes, Option<Address>), ConnectError> {
    let at_hop = |index: usize| {
        let many = hops.len() > 1;
        move |source: ConnectError| {
            if many {
                ConnectError::Hop {
                    index,
                    proxy: hops[index].to_string(),
                    source: Box::new(source),
                }
            } else {
                source
            }
        }
    };
    let first_address = first.address().map_err(|e| at_hop(0)(e.into()))?;
    let tcp = dial(&first_address, options, deadline)
        .await
        .map_err(at_hop(0))?;
    let mut transport = Transport::Tcp(tcp);
    if first.kind() == Kind::Https {
        transport = tls::wrap(transport, first.host(), options.tls.as_ref(), deadline)
            .await
            .map_err(at_hop(0))?;
    }
    let mut leftover = Bytes::new();
    let mut bound = None;
    for (index, hop) in hops.iter().enumerate() {
        let next_hop = hops.get(index + 1);
        let (next, command) = match next_hop {
            Some(next) => (
                next.address().map_err(|e| at_hop(index)(e.into()))?,
                Finish::Connect,
            ),
            None => (target.clone(), finish),
        };
        let mut hs = HandshakeIo::new(&mut transport, leftover);
        bound = step(&mut hs, hop, command, next, deadline)
            .await
            .map_err(at_hop(index))?;
        leftover = hs.into_leftover();
        if let Some(next) = next_hop
            && next.kind() == Kind::Https
        {
            transport = transport.rewound(std::mem::take(&mut leftover));
            transport = tls::wrap(transport, next.host(), options.tls.as_ref(), deadline)
                .await
                .map_err(at_hop(index + 1))?;
        }
    }
    Ok((transport, leftover, bound))
}

/// Dials `address` within the deadline, resolving it first when it is a name.
async fn dial(
    address: &Address,
    options: &ConnectOptions,
    deadline: &Deadline,
) -> Result<TcpStream, ConnectError> {
    let dial = DialOptions {
        timeout: options.dial.timeout.min(deadline.remaining()),
        ..options.dial.clone()
    };
    // `dial.timeout` is what is left of the deadline, and the dialler keeps to it: no second
    // timer around it (this future sits in every pool connect, so its size counts too).
    let result = match address {
        Address::Socket(addr) => direct::connect_addrs(std::slice::from_ref(addr), &dial).await,
        // Resolution is a large future and rarer on hot paths: boxed.
        Address::Domain(host, port) => Box::pin(direct::connect(host, *port, &dial)).await,
    };
    // Report the attempt's budget, not the share that was left for dialling.
    match result {
        Err(ConnectError::Timeout { stage, .. }) => Err(ConnectError::Timeout {
            stage,
            after: deadline.budget,
        }),
        other => other,
    }
}

/// One hop's handshake: asks `hop` to do `finish` towards `next`.
async fn step(
    hs: &mut HandshakeIo<'_, Transport>,
    hop: &Proxy,
    finish: Finish,
    next: Address,
    deadline: &Deadline,
) -> Result<Option<Address>, ConnectError> {
    let creds = hop.credentials();
    match hop.kind() {
        Kind::Socks5 | Kind::Socks5h => {
            let next = if hop.kind().resolves_locally() {
                resolve_locally(next, deadline, |_| true).await?
            } else {
                next
            };
            let command = match finish {
                Finish::Connect => Command::Connect,
                Finish::Bind => Command::Bind,
                Finish::UdpAssociate => Command::UdpAssociate,
            };
            let bound = handshake::socks5_request(hs, creds, command, next, deadline).await?;
            Ok(Some(bound))
        }
        Kind::Socks4 | Kind::Socks4a => {
            if finish != Finish::Connect {
                return Err(ConnectError::Unsupported(
                    "BIND and UDP ASSOCIATE need a SOCKS5 proxy",
                ));
            }
            let port = next.port();
            let next = match (hop.kind(), next) {
                (Kind::Socks4a, Address::Domain(name, _)) => socks4::Host::Domain(name),
                (_, next) => match resolve_locally(next, deadline, |ip| ip.is_ipv4()).await? {
                    Address::Socket(SocketAddr::V4(addr)) => socks4::Host::Ip(*addr.ip()),
                    _ => {
                        return Err(ConnectError::Unsupported(
                            "SOCKS4 reaches IPv4 targets only",
                        ));
                    }
                },
            };
            handshake::socks4_request(hs, creds, next, port, deadline).await?;
            Ok(None)
        }
        Kind::Http | Kind::Https => {
            if finish != Finish::Connect {
                return Err(ConnectError::Unsupported(
                    "BIND and UDP ASSOCIATE need a SOCKS5 proxy",
                ));
            }
            handshake::http_connect(hs, creds, &next, deadline).await?;
            Ok(None)
        }
    }
}

/// Turns a domain into the first resolved address that `accept` likes.
async fn resolve_locally(
    address: Address,
    deadline: &Deadline,
    accept: impl Fn(&IpAddr) -> bool,
) -> Result<Address, ConnectError> {
    let Address::Domain(name, port) = address else {
        return Ok(address);
    };
    let addrs = deadline
        .run(
            Stage::Resolve,
            direct::resolve(&name, port, deadline.remaining()),
        )
        .await?;
    addrs
        .into_iter()
        .find(|a| accept(&a.ip()))
        .map(Address::Socket)
        .ok_or(ConnectError::NoAddresses { host: name })
}
