//! Reaching a SOCKS/HTTP proxy client's destination: checking it against the rules (after
//! resolving it, on every address), then dialling it directly with happy eyeballs, through
//! an upstream pool, or through a tunnel gateway's agents. Errors map to the exact SOCKS reply
//! and HTTP status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgate_client::{ConnectError, DialOptions, Pool, ProxyStream, TcpTunnel};
use mtgate_proto::address::Address;
use mtgate_proto::socks5::Reply;
use tokio::net::TcpStream;

use crate::acl::{self, Command, Destination, Rule, Verdict};
use crate::tunnel::gateway::{AgentError, Registry};
use crate::tunnel::mux::MuxStream;

/// Traffic through a gateway's agents.
#[derive(Debug, Clone)]
pub struct AgentRoute {
    /// The gateway's agents.
    pub registry: Arc<Registry>,
    /// The agent group that carries the traffic.
    pub group: String,
}

/// How to reach destinations for one request.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// Rule lists in order (the user's, then the listener's).
    pub rules: [&'a [Rule]; 2],
    /// The upstream pool, if traffic goes through one (a clone: pools are shared handles).
    pub pool: Option<Pool>,
    /// Budget for resolving and connecting.
    pub timeout: Duration,
    /// The agents that carry the traffic, if it goes through a tunnel gateway.
    pub agents: Option<AgentRoute>,
}

/// A connection to the destination.
#[derive(Debug)]
pub enum Dialed {
    /// A direct TCP connection.
    Direct(TcpStream),
    /// A tunnel through plain-TCP upstreams: the socket is the first hop's; bytes the
    /// destination sent during the handshake wait in its `prefix`. It also holds the pool
    /// member's in-flight count while the tunnel lives.
    Tunnel(Box<TcpTunnel>),
    /// A tunnel through an upstream that is not plain TCP (TLS to an `https://` proxy).
    Stream(Box<ProxyStream>),
    /// A stream through a tunnel agent.
    Agent(Box<MuxStream>),
}

impl Dialed {
    /// The local address of the outbound connection (SOCKS BND); none through an agent.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp()?.local_addr().ok()
    }

    /// The TCP socket underneath, if there is one here.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Direct(s) => Some(s),
            Self::Tunnel(t) => Some(&t.tcp),
            Self::Stream(s) => Some(s.tcp()),
            Self::Agent(_) => None,
        }
    }
}

/// Why a destination could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The rules (or the default policy) refused it.
    #[error("not allowed: {}", .0.reason())]
    Denied(Verdict),
    /// Resolving or connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// No agent could open the stream.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl OutboundError {
    /// The SOCKS5 reply: `02` for rules, `03`/`04`/`05`/`06` from the socket error, `04` for
    /// names that do not resolve, `01` otherwise.
    pub fn reply(&self) -> Reply {
        let error = match self {
            Self::Denied(_) => return Reply::NotAllowed,
            Self::Agent(e) => return e.reply(),
            Self::Connect(e) => e.root(),
        };
        match error {
            ConnectError::Timeout { .. } => Reply::TtlExpired,
            ConnectError::NoAddresses { .. } => Reply::HostUnreachable,
            ConnectError::Io { stage, source } => match (stage, source.kind()) {
                (mtgate_client::Stage::Resolve, _) => Reply::HostUnreachable,
                _ => Reply::from_io_error(source),
            },
            ConnectError::Socks5 { reply } => *reply,
            ConnectError::Http { status: 504, .. } => Reply::TtlExpired,
            ConnectError::Http { status: 403, .. } => Reply::NotAllowed,
            _ => Reply::GeneralFailure,
        }
    }

    /// The HTTP status: 403 for rules, 504 for timeouts, 502 otherwise (503 for agents at
    /// their limits).
    pub fn status(&self) -> u16 {
        if let Self::Agent(e) = self {
            return e.status();
        }
        match self.reply() {
            Reply::NotAllowed => 403,
            Reply::TtlExpired => 504,
            _ => 502,
        }
    }

    /// A reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Denied(v) => v.reason(),
            Self::Agent(e) => e.reason(),
            Self::Connect(_) => match self.reply() {
                Reply::NetworkUnreachable => "network_unreachable",
                Reply::HostUnreachable => "host_unreachable",
                Reply::ConnectionRefused => "connection_refused",
                Reply::TtlExpired => "timeout",
                Reply::NotAllowed => "upstream_denied",
                _ => "connect_failed",
            },
        }
    }
}

/// Resolves `target` and keeps the addresses the rules allow for `command`.
pub async fn allowed_addresses(
    target: &Address,
    command: Command,
    route: &Route<'_>,
) -> Result<Vec<SocketAddr>, OutboundError> {
    let (host, addrs) = match target {
        Address::Socket(addr) => (addr.ip().to_string(), vec![*addr]),
        Address::Domain(name, port) => {
            let unresolved = Destination {
                host: name,
                ip: None,
                port: *port,
                command,
            };
            if acl::denied_before_resolution(&route.rules, &unresolved) {
                return Err(OutboundError::Denied(Verdict::Denied));
            }
            (
                name.clone(),
                mtgate_client::resolve(name, *port, route.timeout).await?,
            )
        }
    };
    let mut verdict = Verdict::Denied;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| {
            let d = Destination {
                host: &host,
                ip: Some(addr.ip()),
                port: addr.port(),
                command,
            };
            verdict = acl::check(&route.rules, &d);
            verdict.is_allowed()
        })
        .collect();
    if allowed.is_empty() {
        return Err(OutboundError::Denied(verdict));
    }
    Ok(allowed)
}

/// Checks `target` as given (names unresolved) against the rules for `command`, for routes
/// where the far side resolves names.
pub fn check_unresolved(
    target: &Address,
    command: Command,
    route: &Route<'_>,
) -> Result<(), OutboundError> {
    let ip = match target {
        Address::Socket(addr) => Some(addr.ip()),
        // An IP literal sent as a name (SOCKS5 ATYP 3, an HTTP Host) is still that address.
        Address::Domain(name, _) => name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok(),
    };
    let host = target.host();
    let verdict = acl::check(
        &route.rules,
        &Destination {
            host: &host,
            ip,
            port: target.port(),
            command,
        },
    );
    if verdict.is_allowed() {
        Ok(())
    } else {
        Err(OutboundError::Denied(verdict))
    }
}

/// Opens a TCP connection to `target`, directly, through the route's pool, or through an
/// agent.
pub async fn connect(target: &Address, route: &Route<'_>) -> Result<Dialed, OutboundError> {
    if let Some(agents) = &route.agents {
        // The agent resolves names and applies its own policy; ours applies first.
        check_unresolved(target, Command::Connect, route)?;
        let opening = agents.registry.open(
            &agents.group,
            mtgate_proto::tunnel::OpenTarget {
                network: mtgate_proto::tunnel::Network::Tcp,
                address: target.clone(),
            },
        );
        let stream = tokio::time::timeout(route.timeout, opening)
            .await
            .map_err(|_| AgentError::Open(crate::tunnel::mux::OpenError::Timeout))??;
        return Ok(Dialed::Agent(Box::new(stream)));
    }
    if let Some(pool) = &route.pool {
        // The upstream resolves names; rules still apply to names, ports and IP literals.
        check_unresolved(target, Command::Connect, route)?;
        let stream = tokio::time::timeout(route.timeout, pool.connect(target.clone()))
            .await
            .map_err(|_| ConnectError::Timeout {
                stage: mtgate_client::Stage::Connect,
                after: route.timeout,
            })??;
        return Ok(match stream.into_tcp() {
            Ok(tunnel) => Dialed::Tunnel(Box::new(tunnel)),
            Err(stream) => Dialed::Stream(Box::new(stream)),
        });
    }
    let started = tokio::time::Instant::now();
    let addrs = allowed_addresses(target, Command::Connect, route).await?;
    let options = DialOptions {
        timeout: route.timeout.saturating_sub(started.elapsed()),
        ..DialOptions::default()
    };
    let stream = mtgate_client::connect_addrs(&addrs, &options).await?;
    Ok(Dialed::Direct(stream))
}
