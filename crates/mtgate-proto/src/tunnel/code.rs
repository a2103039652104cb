//! Error codes: why a stream was refused (OPEN_ERR) or aborted (RST), or why a connection is
//! going away (GOAWAY). The names follow AnyProxy's documented set, with its
//! CONNECTION_FAILED split into what the dial really met.

use std::fmt;

/// An error code on the wire (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No error: a normal close, or GOAWAY for a restart.
    None,
    /// The credentials were refused.
    AuthFailed,
    /// A frame or message broke the protocol.
    InvalidMessage,
    /// The target refused the connection.
    ConnectionRefused,
    /// No route to the target host.
    HostUnreachable,
    /// The target's network is unreachable.
    NetworkUnreachable,
    /// The dial timed out, or the name did not resolve in time.
    ConnectionTimeout,
    /// The name did not resolve.
    NameNotResolved,
    /// The agent's policy forbids the target.
    ForbiddenHost,
    /// A limit was hit (streams, rate, concurrent connections).
    RateLimited,
    /// The peer sent more than its window allowed.
    FlowControl,
    /// The opener gave up (its client left before the stream was set up or finished).
    Cancelled,
    /// Anything else, including codes this version does not know.
    InternalError,
}

impl ErrorCode {
    /// The byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::None => 0x00,
            Self::AuthFailed => 0x01,
            Self::InvalidMessage => 0x02,
            Self::ConnectionRefused => 0x03,
            Self::HostUnreachable => 0x04,
            Self::NetworkUnreachable => 0x05,
            Self::ConnectionTimeout => 0x06,
            Self::NameNotResolved => 0x07,
            Self::ForbiddenHost => 0x08,
            Self::RateLimited => 0x09,
            Self::FlowControl => 0x0a,
            Self::Cancelled => 0x0b,
            Self::InternalError => 0x0c,
        }
    }

    /// The code for a byte; unknown bytes read as [`ErrorCode::InternalError`].
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0x00 => Self::None,
            0x01 => Self::AuthFailed,
            0x02 => Self::InvalidMessage,
            0x03 => Self::ConnectionRefused,
            0x04 => Self::HostUnreachable,
            0x05 => Self::NetworkUnreachable,
            0x06 => Self::ConnectionTimeout,
            0x07 => Self::NameNotResolved,
            0x08 => Self::ForbiddenHost,
            0x09 => Self::RateLimited,
            0x0a => Self::FlowControl,
            0x0b => Self::Cancelled,
            _ => Self::InternalError,
        }
    }

    /// The AnyProxy name of the code (its `error.code` string); refused, unreachable and
    /// timeout all map to `CONNECTION_FAILED` there.
    pub fn anyproxy_name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::AuthFailed => "AUTH_FAILED",
            Self::InvalidMessage | Self::FlowControl => "INVALID_MESSAGE",
            Self::ConnectionRefused
            | Self::HostUnreachable
            | Self::NetworkUnreachable
            | Self::ConnectionTimeout
            | Self::NameNotResolved
            | Self::Cancelled => "CONNECTION_FAILED",
            Self::ForbiddenHost => "FORBIDDEN_HOST",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The code for an AnyProxy `error.code` string; unknown names read as
    /// [`ErrorCode::InternalError`].
    pub fn from_anyproxy_name(name: &str) -> Self {
        match name {
            "AUTH_FAILED" => Self::AuthFailed,
            "INVALID_MESSAGE" => Self::InvalidMessage,
            "CONNECTION_FAILED" => Self::ConnectionRefused,
            "FORBIDDEN_HOST" => Self::ForbiddenHost,
            "RATE_LIMITED" => Self::RateLimited,
            _ => Self::InternalError,
        }
    }

    /// The code's name in snake case, for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::AuthFailed => "auth_failed",
            Self::InvalidMessage => "invalid_message",
            Self::ConnectionRefused => "connection_refused",
            Self::HostUnreachable => "host_unreachable",
            Self::NetworkUnreachable => "network_unreachable",
            Self::ConnectionTimeout => "connection_timeout",
            Self::NameNotResolved => "name_not_resolved",
            Self::ForbiddenHost => "forbidden_host",
            Self::RateLimited => "rate_limited",
            Self::FlowControl => "flow_control",
            Self::Cancelled => "cancelled",
            Self::InternalError => "internal_error",
        }
    }

    /// A short human-readable description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "no error",
            Self::AuthFailed => "authentication failed",
            Self::InvalidMessage => "invalid message",
            Self::ConnectionRefused => "connection refused",
            Self::HostUnreachable => "host unreachable",
            Self::NetworkUnreachable => "network unreachable",
            Self::ConnectionTimeout => "connection timed out",
            Self::NameNotResolved => "name not resolved",
            Self::ForbiddenHost => "forbidden host",
            Self::RateLimited => "rate limited",
            Self::FlowControl => "flow-control window exceeded",
            Self::Cancelled => "cancelled",
            Self::InternalError => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}
