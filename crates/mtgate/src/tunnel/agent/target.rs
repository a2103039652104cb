//! Dialing what an OPEN asks for: the policy on the name, resolution, the policy on every
//! resolved address, then happy eyeballs to the addresses that passed, all within
//! `connect_timeout`; a failure becomes the wire error code the gateway passes on.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use mtgate_client::{ConnectError, DialOptions, Stage};
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::ErrorCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::policy::Policy;

/// Why a target was not connected: the code for OPEN_ERR and a reason for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    /// The wire code.
    pub code: ErrorCode,
    /// Detail (no secrets; the target's name is the gateway's own request).
    pub reason: String,
}

impl DialFailure {
    pub(super) fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// Connects to `target` if `policy` allows it, within `timeout`.
pub async fn dial(
    target: &Address,
    policy: &Policy,
    timeout: Duration,
) -> Result<TcpStream, DialFailure> {
    let deadline = Instant::now() + timeout;
    let allowed = allowed_addresses(target, policy, timeout).await?;
    let options = DialOptions {
        timeout: deadline.saturating_duration_since(Instant::now()),
        ..DialOptions::default()
    };
    mtgate_client::connect_addrs(&allowed, &options)
        .await
        .map_err(|e| failure(&e))
}

/// Resolves `target` and keeps the addresses `policy` allows: the name is checked before
/// resolution, every address after it (the agent's own `open_ports` targets pass).
pub async fn allowed_addresses(
    target: &Address,
    policy: &Policy,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DialFailure> {
    let own = policy.is_own_target(target);
    let (host, port) = (target.host(), target.port());
    if !own && let Some(refusal) = policy.refuses_name(&host, port) {
        return Err(DialFailure::new(ErrorCode::ForbiddenHost, refusal.reason()));
    }
    let resolved = mtgate_client::resolve(&host, port, timeout)
        .await
        .map_err(|e| failure(&e))?;
    let mut first_refusal = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| {
            own || match policy.check(&host, addr.ip(), port) {
                Ok(()) => true,
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                    false
                }
            }
        })
        .collect();
    if allowed.is_empty() {
        let reason = first_refusal.map_or("no address", |r| r.reason());
        return Err(DialFailure::new(ErrorCode::ForbiddenHost, reason));
    }
    Ok(allowed)
}

/// The wire code for a dial error.
pub fn code_for(error: &ConnectError) -> ErrorCode {
    match error.root() {
        ConnectError::NoAddresses { .. } => ErrorCode::NameNotResolved,
        ConnectError::Timeout { .. } => ErrorCode::ConnectionTimeout,
        ConnectError::Io {
            stage: Stage::Resolve,
            ..
        } => ErrorCode::NameNotResolved,
        ConnectError::Io { source, .. } => match source.kind() {
            ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
            ErrorKind::HostUnreachable => ErrorCode::HostUnreachable,
            ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable => {
                ErrorCode::NetworkUnreachable
            }
            ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
            _ => ErrorCode::InternalError,
        },
        _ => ErrorCode::InternalError,
    }
}

fn failure(error: &ConnectError) -> DialFailure {
    DialFailure::new(code_for(error), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_policy() -> Policy {
        Policy::new(&[], &[], true, vec![]).unwrap()
    }

    #[tokio::test]
    async fn refused_port_maps_to_connection_refused() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = dial(
            &Address::Socket(closed),
            &open_policy(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ConnectionRefused);
    }

    #[tokio::test]
    async fn unknown_name_maps_to_name_not_resolved() {
        let target = Address::Domain("no-such-host.invalid".into(), 80);
        let err = dial(&target, &open_policy(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.code,
                ErrorCode::NameNotResolved | ErrorCode::ConnectionTimeout
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn default_policy_refuses_localhost_by_its_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = Policy::new(&[], &[], false, vec![]).unwrap();
        let target = Address::Domain("localhost".into(), port);
        let err = dial(&target, &strict, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ForbiddenHost);
        // The same target is allowed when it is one of the agent's own open_ports targets.
        let own = Policy::new(&[], &[], false, vec![target.clone()]).unwrap();
        assert!(dial(&target, &own, Duration::from_secs(5)).await.is_ok());
    }
}
