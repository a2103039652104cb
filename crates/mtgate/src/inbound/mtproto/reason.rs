//! Why a handshake was refused: one value per cause, for logs and metrics.

/// A refused handshake's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The peer closed before completing the handshake.
    Closed,
    /// The handshake deadline passed.
    Timeout,
    /// The peer sent more than a handshake can hold.
    TooLarge,
    /// The bytes start like a text protocol (HTTP and friends), not like MTProto.
    OtherProtocol,
    /// No user's secret opens the obfuscated2 header.
    BadSecret,
    /// The client's mode (classic, padded or fake TLS) is not enabled on this listener.
    ModeDisabled,
    /// The TLS ClientHello is malformed.
    MalformedHello,
    /// The ClientHello digest matches no user's secret.
    BadDigest,
    /// The SNI names no configured domain.
    UnknownSni,
    /// The client's clock is outside the accepted window.
    ClockSkew,
    /// The handshake was seen before.
    Replay,
    /// After the fake-TLS answer, the inner header or records were invalid.
    BadInnerStream,
    /// A socket error.
    Io,
}

impl Reason {
    /// A machine-readable name (metrics label, log field).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
            Self::OtherProtocol => "other_protocol",
            Self::BadSecret => "bad_secret",
            Self::ModeDisabled => "mode_disabled",
            Self::MalformedHello => "malformed_hello",
            Self::BadDigest => "bad_digest",
            Self::UnknownSni => "unknown_sni",
            Self::ClockSkew => "clock_skew",
            Self::Replay => "replay",
            Self::BadInnerStream => "bad_inner_stream",
            Self::Io => "io",
        }
    }

    /// Whether a real client, not just a prober, is likely behind this failure: worth a log
    /// line at the default level.
    pub const fn concerns_a_client(self) -> bool {
        matches!(
            self,
            Self::ClockSkew
                | Self::Replay
                | Self::UnknownSni
                | Self::ModeDisabled
                | Self::BadInnerStream
        )
    }
}

/// A refused handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The cause.
    pub reason: Reason,
    /// Whether the proxy already answered (fake-TLS ServerHello): then the connection is
    /// simply closed, since it can no longer pass for the cover site.
    pub answered: bool,
    /// Extra detail for the log (never secret material).
    pub detail: Option<String>,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Self {
            reason,
            answered: false,
            detail: None,
        }
    }
}
