//! Errors of outbound connection attempts: which stage failed, who is to blame, and whether
//! trying elsewhere is safe.

use std::io;
use std::time::Duration;

use mtgate_proto::address::AddressError;
use mtgate_proto::{socks4, socks5};

/// The stage of a connection attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Resolving a host name (the proxy's, or the target's for local-DNS schemes).
    Resolve,
    /// Opening the TCP connection to the first hop (or the target, when direct).
    Connect,
    /// The TLS handshake with an `https://` proxy, or with a TLS backend of a pool member.
    Tls,
    /// SOCKS5 method negotiation.
    Negotiate,
    /// Authentication (RFC 1929 username/password).
    Auth,
    /// The request and its reply (SOCKS CONNECT/BIND/UDP ASSOCIATE, HTTP CONNECT).
    Request,
    /// Waiting for the second BIND reply (the peer's connection).
    Accept,
}

impl Stage {
    /// A short lowercase name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Negotiate => "negotiate",
            Self::Auth => "auth",
            Self::Request => "request",
            Self::Accept => "accept",
        }
    }
}

/// Who caused a failure; pools count only [`Blame::Proxy`] failures against a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The proxy (or, when direct, the server) is unreachable, slow, broken or refused us.
    Proxy,
    /// The proxy worked but could not reach the target (refused, unreachable, TTL expired).
    Target,
    /// The request itself cannot work (bad target, unsupported feature).
    Caller,
}

/// Why an outbound connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name has no usable address.
    #[error("{host:?} did not resolve to any address")]
    NoAddresses {
        /// The name that was looked up.
        host: String,
    },
    /// The deadline passed during `stage`.
    #[error("timed out after {after:?} while {}", .stage.name())]
    Timeout {
        /// The stage in progress when time ran out.
        stage: Stage,
        /// The whole budget that was allowed.
        after: Duration,
    },
    /// An I/O error at `stage` (for several addresses: the last one's).
    #[error("{} failed: {source}", .stage.name())]
    Io {
        /// The stage that failed.
        stage: Stage,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The proxy closed the connection in the middle of the handshake.
    #[error("proxy closed the connection during {}", .stage.name())]
    Closed {
        /// The stage in progress.
        stage: Stage,
    },
    /// The proxy answered with bytes that are not the expected protocol.
    #[error("invalid reply during {}: {detail}", .stage.name())]
    Protocol {
        /// The stage in progress.
        stage: Stage,
        /// What was wrong.
        detail: String,
    },
    /// The SOCKS5 proxy accepted none of the offered authentication methods (`0xff`).
    #[error("SOCKS5 proxy accepted none of the offered authentication methods")]
    NoAcceptableMethod,
    /// The proxy requires credentials and none were configured.
    #[error("proxy requires authentication and no credentials were given")]
    AuthRequired,
    /// The proxy rejected the credentials (RFC 1929 status).
    #[error("proxy rejected the credentials (status {status:#04x})")]
    AuthFailed {
        /// The non-zero status byte.
        status: u8,
    },
    /// The SOCKS5 proxy refused the request.
    #[error("SOCKS5 proxy replied {:#04x}: {}", .reply.as_u8(), .reply.description())]
    Socks5 {
        /// The reply code.
        reply: socks5::Reply,
    },
    /// The SOCKS4 proxy refused the request.
    #[error("SOCKS4 proxy replied {:#04x}: {}", .code.as_u8(), .code.description())]
    Socks4 {
        /// The reply code.
        code: socks4::ReplyCode,
    },
    /// The HTTP proxy answered CONNECT with a non-2xx status.
    #[error("HTTP proxy answered {status} {reason}")]
    Http {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The `Proxy-Authenticate` challenge of a 407.
        challenge: Option<String>,
    },
    /// The request needs something the proxy kind cannot do (e.g. an IPv6 target over SOCKS4,
    /// UDP through an HTTP proxy).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The target is not a valid destination.
    #[error("invalid target: {0}")]
    InvalidTarget(#[from] AddressError),
    /// A hop of a chain failed; `source` says how.
    #[error("hop {index} ({proxy}): {source}")]
    Hop {
        /// Zero-based position of the failing hop.
        index: usize,
        /// The hop's URL, password redacted.
        proxy: String,
        /// What went wrong there.
        #[source]
        source: Box<ConnectError>,
    },
    /// A pool gave up after `attempts` attempts; `last` is the final error.
    #[error("all {attempts} attempts failed; last: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<ConnectError>,
    },
    /// A pool has no enabled member.
    #[error("the pool has no enabled member")]
    EmptyPool,
    /// Every member of a pool is at its connection cap.
    #[error("every pool member is at its connection cap")]
    Saturated,
}

impl ConnectError {
    /// The innermost error, looking through [`ConnectError::Hop`] and
    /// [`ConnectError::Exhausted`].
    pub fn root(&self) -> &Self {
        match self {
            Self::Hop { source, .. } => source.root(),
            Self::Exhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// Whether trying again (through another proxy, or later) cannot cause harm and might
    /// succeed. Every error here happens before any payload byte was sent, so only requests
    /// that cannot work anywhere ([`Blame::Caller`]) are not worth retrying.
    pub fn is_retry_safe(&self) -> bool {
        self.blame() != Blame::Caller
    }

    /// Who caused the failure.
    pub fn blame(&self) -> Blame {
        use socks5::Reply;
        match self.root() {
            Self::Unsupported(_) | Self::InvalidTarget(_) => Blame::Caller,
            Self::Socks5 { reply } => match reply {
                Reply::NetworkUnreachable
                | Reply::HostUnreachable
                | Reply::ConnectionRefused
                | Reply::TtlExpired => Blame::Target,
                Reply::CommandNotSupported | Reply::AddressTypeNotSupported => Blame::Caller,
                _ => Blame::Proxy,
            },
            Self::Http {
                status: 502 | 504, ..
            } => Blame::Target,
            _ => Blame::Proxy,
        }
    }

    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        match self.root() {
            Self::NoAddresses { .. } => Stage::Resolve,
            Self::Timeout { stage, .. }
            | Self::Io { stage, .. }
            | Self::Closed { stage }
            | Self::Protocol { stage, .. } => *stage,
            Self::NoAcceptableMethod => Stage::Negotiate,
            Self::AuthRequired | Self::AuthFailed { .. } => Stage::Auth,
            Self::Http { status: 407, .. } => Stage::Auth,
            _ => Stage::Request,
        }
    }

    /// Whether the proxy refused our credentials or wants some: RFC 1929 failure, no
    /// acceptable method, or HTTP 407.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.root(),
            Self::AuthRequired
                | Self::AuthFailed { .. }
                | Self::NoAcceptableMethod
                | Self::Http { status: 407, .. }
        )
    }

    /// The SOCKS5 reply code, if a SOCKS5 proxy refused the request.
    pub fn socks5_reply(&self) -> Option<socks5::Reply> {
        match self.root() {
            Self::Socks5 { reply } => Some(*reply),
            _ => None,
        }
    }

    /// The HTTP status, if an HTTP proxy refused CONNECT.
    pub fn http_status(&self) -> Option<u16> {
        match self.root() {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short reason for logs and metrics labels: `refused`, `timeout`, `auth`, ….
    pub fn reason(&self) -> &'static str {
        match self.root() {
            Self::NoAddresses { .. } => "no_address",
            Self::Timeout { .. } => "timeout",
            Self::Io { source, .. } => match source.kind() {
                io::ErrorKind::ConnectionRefused => "refused",
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
                io::ErrorKind::TimedOut => "timeout",
                io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => "reset",
                _ => "io",
            },
            Self::Closed { .. } => "closed",
            Self::Protocol { .. } => "protocol",
            Self::NoAcceptableMethod | Self::AuthRequired | Self::AuthFailed { .. } => "auth",
            Self::Http { status: 407, .. } => "auth",
            Self::Socks5 { .. } | Self::Socks4 { .. } | Self::Http { .. } => "rejected",
            Self::Unsupported(_) => "unsupported",
            Self::InvalidTarget(_) => "invalid_target",
            Self::EmptyPool => "empty_pool",
            Self::Saturated => "saturated",
            Self::Hop { .. } | Self::Exhausted { .. } => "exhausted",
        }
    }

    pub(crate) fn io(stage: Stage, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return Self::Closed { stage };
        }
        Self::Io { stage, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_wrapping_is_transparent_to_classification() {
        let inner = ConnectError::Socks5 {
            reply: socks5::Reply::ConnectionRefused,
        };
        let wrapped = ConnectError::Hop {
            index: 1,
            proxy: "socks5://h:1".into(),
            source: Box::new(inner),
        };
        assert_eq!(
            wrapped.socks5_reply(),
            Some(socks5::Reply::ConnectionRefused)
        );
        assert_eq!(wrapped.blame(), Blame::Target);
        assert_eq!(wrapped.stage(), Stage::Request);
        assert!(wrapped.is_retry_safe());
        assert!(
            wrapped
                .to_string()
                .starts_with("hop 1 (socks5://h:1): SOCKS5 proxy replied 0x05")
        );
    }

    #[test]
    fn auth_failures_are_recognised() {
        let challenge = ConnectError::Http {
            status: 407,
            reason: "Proxy Authentication Required".into(),
            challenge: Some("Basic realm=\"x\"".into()),
        };
        assert!(challenge.is_auth_failure());
        assert_eq!(
            (challenge.stage(), challenge.reason()),
            (Stage::Auth, "auth")
        );
        assert!(ConnectError::AuthFailed { status: 1 }.is_auth_failure());
        assert!(!ConnectError::Unsupported("udp over http").is_retry_safe());
    }
}
