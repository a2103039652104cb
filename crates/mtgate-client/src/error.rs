//! Errors of outbound connection attempts.

use std::io;
use std::time::Duration;

/// The stage of a connection attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
}

impl Stage {
    /// A short lowercase name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Connect => "connect",
        }
    }
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
}

impl ConnectError {
    /// Whether trying another server (or the same one later) cannot cause harm: true for every
    /// error raised before a connection was established, which is all of these.
    pub fn is_retry_safe(&self) -> bool {
        true
    }

    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        match self {
            Self::NoAddresses { .. } => Stage::Resolve,
            Self::Timeout { stage, .. } | Self::Io { stage, .. } => *stage,
        }
    }

    /// A short reason for logs and metrics labels: `refused`, `unreachable`, `timeout`, ….
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoAddresses { .. } => "no_address",
            Self::Timeout { .. } => "timeout",
            Self::Io { source, .. } => match source.kind() {
                io::ErrorKind::ConnectionRefused => "refused",
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
                io::ErrorKind::TimedOut => "timeout",
                _ => "io",
            },
        }
    }
}
