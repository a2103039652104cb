//! Direct TCP dialling: resolution and happy eyeballs (RFC 8305) under one deadline.
//!
//! Addresses are tried in an order that alternates families, starting with the preferred one.
//! A new attempt starts when the previous one fails or after a short stagger delay, so a dead
//! IPv6 route costs a quarter of a second rather than a whole connect timeout. The first
//! connection to complete wins; the others are dropped.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::error::{ConnectError, Stage};

/// How to dial.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// Budget for the whole attempt: resolution and every address.
    pub timeout: Duration,
    /// Delay before starting the next address while one is still pending (RFC 8305 suggests
    /// 250 ms).
    pub stagger: Duration,
    /// Try IPv6 addresses first.
    pub prefer_ipv6: bool,
    /// Set TCP_NODELAY on the connection.
    pub nodelay: bool,
    /// TCP keepalive idle time, if any.
    pub keepalive: Option<Duration>,
    /// Local address to bind before connecting (source address selection).
    pub bind: Option<IpAddr>,
}

impl Default for DialOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            stagger: Duration::from_millis(250),
            prefer_ipv6: false,
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            bind: None,
        }
    }
}

/// Resolves `host` (a name or an IP literal) to socket addresses, within `budget`.
pub async fn resolve(
    host: &str,
    port: u16,
    budget: Duration,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(budget, lookup).await {
        Err(_) => {
            return Err(ConnectError::Timeout {
                stage: Stage::Resolve,
                after: budget,
            });
        }
        Ok(Err(source)) => {
            return Err(ConnectError::Io {
                stage: Stage::Resolve,
                source,
            });
        }
        Ok(Ok(addrs)) => addrs.collect(),
    };
    if addrs.is_empty() {
        return Err(ConnectError::NoAddresses {
            host: host.to_owned(),
        });
    }
    Ok(addrs)
}

/// Resolves `host` and connects to it.
pub async fn connect(
    host: &str,
    port: u16,
    options: &DialOptions,
) -> Result<TcpStream, ConnectError> {
    let deadline = Instant::now() + options.timeout;
    let addrs = resolve(host, port, options.timeout).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    connect_addrs(
        &addrs,
        &DialOptions {
            timeout: left,
            ..options.clone()
        },
    )
    .await
}

/// Connects to the first of `addrs` that answers, racing them happy-eyeballs style.
pub async fn connect_addrs(
    addrs: &[SocketAddr],
    options: &DialOptions,
) -> Result<TcpStream, ConnectError> {
    if let [only] = addrs {
        // Nothing to race: dial inline, without a task per address.
        return dial_one(*only, options)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::TimedOut => ConnectError::Timeout {
                    stage: Stage::Connect,
                    after: options.timeout,
                },
                _ => ConnectError::Io {
                    stage: Stage::Connect,
                    source,
                },
            });
    }
    // Boxed: the race is a large future, and most dials have one address.
    Box::pin(race(addrs, options)).await
}

/// Races `addrs` (several) happy-eyeballs style: the next one starts when the previous
/// failed or after the stagger delay; the first to connect wins.
async fn race(addrs: &[SocketAddr], options: &DialOptions) -> Result<TcpStream, ConnectError> {
    let deadline = Instant::now() + options.timeout;
    let ordered = interleave(addrs, options.prefer_ipv6);
    if ordered.is_empty() {
        return Err(ConnectError::NoAddresses {
            host: String::new(),
        });
    }
    let mut pending = JoinSet::new();
    let mut next = ordered.into_iter();
    let mut last_error = None;
    loop {
        if let Some(addr) = next.next() {
            let opts = options.clone();
            pending.spawn(async move { dial_one(addr, &opts).await });
        } else if pending.is_empty() {
            break;
        }
        let stagger = Instant::now() + options.stagger;
        let more_to_start = next.len() > 0;
        // Wait for a result, or for the stagger delay when another address could start.
        let outcome = tokio::select! {
            joined = pending.join_next(), if !pending.is_empty() => joined,
            () = sleep_until(stagger), if more_to_start => continue,
            () = sleep_until(deadline) => {
                return Err(ConnectError::Timeout { stage: Stage::Connect, after: options.timeout });
            }
        };
        match outcome {
            Some(Ok(Ok(stream))) => return Ok(stream),
            Some(Ok(Err(e))) => last_error = Some(e),
            Some(Err(join)) => last_error = Some(std::io::Error::other(join)),
            None => {}
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    match last_error {
        Some(source) => Err(ConnectError::Io {
            stage: Stage::Connect,
            source,
        }),
        None => Err(ConnectError::Timeout {
            stage: Stage::Connect,
            after: options.timeout,
        }),
    }
}

async fn dial_one(addr: SocketAddr, options: &DialOptions) -> std::io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = options.bind {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    // Options before the handshake: the same system calls, and the first segment already
    // carries them.
    if options.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(idle) = options.keepalive {
        // Idle time only: the probe interval keeps the system default, saving a system call
        // per connection.
        socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    // A handshake with a close peer (loopback, a LAN) has often finished already: then the
    // connection is ready without a turn of the event loop.
    if stream.peer_addr().is_ok() {
        return Ok(stream);
    }
    timeout_at(Instant::now() + options.timeout, stream.writable())
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(stream)
}

/// Orders addresses alternating families, preferred family first, keeping order within each.
fn interleave(addrs: &[SocketAddr], prefer_ipv6: bool) -> Vec<SocketAddr> {
    let (mut first, mut second): (Vec<_>, Vec<_>) = addrs
        .iter()
        .copied()
        .partition(|a| a.is_ipv6() == prefer_ipv6);
    let mut out = Vec::with_capacity(addrs.len());
    first.reverse();
    second.reverse();
    loop {
        match (first.pop(), second.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn interleaves_families_preferred_first() {
        let v4: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let v4b: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert_eq!(interleave(&[v4, v4b, v6], true), vec![v6, v4, v4b]);
        assert_eq!(interleave(&[v6, v4, v4b], false), vec![v4, v6, v4b]);
    }

    #[tokio::test]
    async fn falls_back_from_a_refused_address_to_a_listening_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // A port nobody listens on: bind, read the port, drop.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let stream = connect_addrs(&[closed, good], &DialOptions::default())
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good);
    }

    #[tokio::test]
    async fn reports_refusal_when_nothing_listens() {
        let closed = TcpListener::bind("[::1]:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect_addrs(&[closed], &DialOptions::default())
            .await
            .unwrap_err();
        assert_eq!((err.stage(), err.reason()), (Stage::Connect, "refused"));
        assert!(err.is_retry_safe());
    }

    #[tokio::test]
    async fn resolves_literals_without_lookup() {
        let addrs = resolve("[::1]", 443, Duration::from_secs(1)).await.unwrap();
        assert_eq!(addrs, vec!["[::1]:443".parse().unwrap()]);
        let addrs = resolve("127.0.0.1", 80, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:80".parse().unwrap()]);
    }
}
