//! Why a stream could not be opened through a group's agents, and what each reason becomes
//! for a SOCKS5 client (reply code), an HTTP client (status) and the metrics (labels).

use mtgate_proto::socks5::Reply;
use mtgate_proto::tunnel::ErrorCode;

use crate::tunnel::mux::OpenError;

/// Why no stream to the target could be opened through a group's agents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No live agent in the group.
    #[error("no agent connected for group {group:?}")]
    NoAgent {
        /// The group.
        group: String,
    },
    /// Every live connection of the group carries `max_streams_per_agent` streams.
    #[error("every agent of group {group:?} is at its stream limit")]
    Busy {
        /// The group.
        group: String,
    },
    /// The agent's answer, or the connection's fate.
    #[error("agent: {0}")]
    Open(#[from] OpenError),
}

impl AgentError {
    /// The SOCKS5 reply.
    pub fn reply(&self) -> Reply {
        match self {
            Self::NoAgent { .. } => Reply::HostUnreachable,
            Self::Busy { .. } => Reply::GeneralFailure,
            Self::Open(OpenError::Timeout) => Reply::TtlExpired,
            Self::Open(OpenError::Closed) => Reply::GeneralFailure,
            Self::Open(OpenError::Refused { code, .. }) => match code {
                ErrorCode::ForbiddenHost => Reply::NotAllowed,
                ErrorCode::ConnectionRefused => Reply::ConnectionRefused,
                ErrorCode::ConnectionTimeout => Reply::TtlExpired,
                ErrorCode::HostUnreachable | ErrorCode::NameNotResolved => Reply::HostUnreachable,
                ErrorCode::NetworkUnreachable => Reply::NetworkUnreachable,
                _ => Reply::GeneralFailure,
            },
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Busy { .. }
            | Self::Open(OpenError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) => 503,
            _ => match self.reply() {
                Reply::NotAllowed => 403,
                Reply::TtlExpired => 504,
                _ => 502,
            },
        }
    }

    /// A reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoAgent { .. } => "no_agent",
            Self::Busy { .. } => "agent_busy",
            Self::Open(OpenError::Timeout) => "agent_timeout",
            Self::Open(OpenError::Closed) => "agent_closed",
            Self::Open(OpenError::Refused { code, .. }) => match code {
                ErrorCode::ForbiddenHost => "agent_forbidden_host",
                ErrorCode::ConnectionRefused => "connection_refused",
                ErrorCode::ConnectionTimeout => "timeout",
                ErrorCode::HostUnreachable | ErrorCode::NameNotResolved => "host_unreachable",
                ErrorCode::NetworkUnreachable => "network_unreachable",
                ErrorCode::RateLimited => "agent_rate_limited",
                _ => "agent_error",
            },
        }
    }

    /// The label of `mtgate_tunnel_stream_open_failures_total`.
    pub fn code_label(&self) -> &'static str {
        match self {
            Self::NoAgent { .. } => "no_agent",
            Self::Busy { .. } => "busy",
            Self::Open(OpenError::Timeout) => "timeout",
            Self::Open(OpenError::Closed) => "closed",
            Self::Open(OpenError::Refused { code, .. }) => code.label(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: ErrorCode) -> AgentError {
        AgentError::Open(OpenError::Refused {
            code,
            reason: String::new(),
        })
    }

    #[test]
    fn errors_map_to_socks_replies_and_http_statuses() {
        let cases = [
            (
                AgentError::NoAgent { group: "g".into() },
                Reply::HostUnreachable,
                502,
            ),
            (refused(ErrorCode::ForbiddenHost), Reply::NotAllowed, 403),
            (
                refused(ErrorCode::ConnectionRefused),
                Reply::ConnectionRefused,
                502,
            ),
            (
                refused(ErrorCode::ConnectionTimeout),
                Reply::TtlExpired,
                504,
            ),
            (AgentError::Open(OpenError::Timeout), Reply::TtlExpired, 504),
            (refused(ErrorCode::RateLimited), Reply::GeneralFailure, 503),
            (
                AgentError::Busy { group: "g".into() },
                Reply::GeneralFailure,
                503,
            ),
            (
                refused(ErrorCode::NameNotResolved),
                Reply::HostUnreachable,
                502,
            ),
        ];
        for (error, reply, status) in cases {
            assert_eq!(error.reply(), reply, "{error}");
            assert_eq!(error.status(), status, "{error}");
        }
    }
}
