//! Binding listening sockets: dual stack for `[::]`, address reuse, a deep backlog.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accept backlog for every listener.
pub const BACKLOG: i32 = 4096;

/// Binds `addr`. An unspecified IPv6 address (`[::]`) also accepts IPv4; on hosts without
/// IPv6 it falls back to `0.0.0.0` on the same port.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind_with_backlog(addr, None)
}

/// [`bind`] with an accept queue of `backlog` connections (default when `None`).
pub fn bind_with_backlog(addr: SocketAddr, backlog: Option<u32>) -> std::io::Result<TcpListener> {
    let backlog = backlog.map_or(BACKLOG, |b| i32::try_from(b).unwrap_or(i32::MAX));
    match bind_exact(addr, backlog) {
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && ipv6_unavailable(&e) => {
            tracing::warn!(%addr, "IPv6 is not available here; listening on IPv4 only");
            bind_exact(
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()),
                backlog,
            )
        }
        other => other,
    }
}

/// The next connection on `listener`, or `None` once `stop` fires. A failed accept (out of
/// descriptors or memory) is logged and retried after a pause instead of spinning.
pub async fn accept_until(
    listener: &TcpListener,
    stop: &CancellationToken,
    name: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            () = stop.cancelled() => return None,
        }
    }
}

fn bind_exact(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    TcpListener::from_std(socket.into())
}

fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EAFNOSUPPORT) | Some(nix::libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dual_stack_accepts_ipv4_and_ipv6() {
        let listener = bind("[::]:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let v4 = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let (_, from) = listener.accept().await.unwrap();
        assert_eq!(from.ip().to_canonical(), v4.local_addr().unwrap().ip());
        let v6 = tokio::net::TcpStream::connect(("::1", port)).await.unwrap();
        let (accepted, from) = listener.accept().await.unwrap();
        assert_eq!(from, v6.local_addr().unwrap());
        // Accepted sockets inherit TCP_NODELAY from the listener: no system call per accept.
        assert!(accepted.nodelay().unwrap());
    }
}
