//! What can go wrong on the client side, by stage.

use mtgate_proto::mtproto::faketls::record::RecordError;
use mtgate_proto::mtproto::faketls::server_hello::AnswerError;
use mtgate_proto::mtproto::transport::FrameError;

/// The step of a connection that was under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// Sending the ClientHello and reading the fake-TLS answer.
    FakeTls,
    /// Writing to the proxy.
    Write,
    /// Reading from the proxy.
    Read,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FakeTls => "fake TLS handshake",
            Self::Write => "write",
            Self::Read => "read",
        })
    }
}

/// Why a client connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer did not answer in time.
    #[error("{0} timed out")]
    Timeout(Stage),
    /// A socket error.
    #[error("{stage} failed: {source}")]
    Io {
        /// Where it happened.
        stage: Stage,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection during {0}")]
    Closed(Stage),
    /// The fake-TLS answer is not what a Telegram client accepts.
    #[error("fake-TLS answer refused: {0}")]
    FakeTlsAnswer(#[from] AnswerError),
    /// The fake-TLS answer is larger than any real one.
    #[error("fake-TLS answer of {0} bytes is too large")]
    FakeTlsAnswerTooLarge(usize),
    /// The peer's TLS records are malformed.
    #[error("bad TLS record from the peer: {0}")]
    Record(#[from] RecordError),
    /// The peer's frames are malformed.
    #[error("bad frame from the peer: {0}")]
    Frame(#[from] FrameError),
    /// A payload that no transport can carry (empty, or not a multiple of 4 bytes).
    #[error("a payload must be a non-empty multiple of 4 bytes, got {0}")]
    BadPayload(usize),
    /// An echoed payload differs from what was sent.
    #[error("the echo differs from what was sent")]
    EchoMismatch,
}

impl ClientError {
    pub(crate) fn io(stage: Stage) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { stage, source }
    }
}
