//! Bridging a local byte pair (stdin/stdout) to a target through a chain: what
//! `mtgate connect --via URL … HOST:PORT` runs, usable as an SSH `ProxyCommand`.
//!
//! # Exit codes
//!
//! [`exit_code`] maps outcomes to `sysexits.h` values so scripts can tell what failed:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the tunnel was used and both directions ended cleanly |
//! | 64 (`EX_USAGE`) | invalid proxy URL or target, or the chain cannot do what was asked |
//! | 68 (`EX_NOHOST`) | a name did not resolve, or the proxy could not reach the target (refused, unreachable, TTL expired, HTTP 502/504) |
//! | 69 (`EX_UNAVAILABLE`) | a proxy refused the TCP connection, failed, or refused the request (other SOCKS/HTTP errors) |
//! | 74 (`EX_IOERR`) | an I/O error after the tunnel was up |
//! | 75 (`EX_TEMPFAIL`) | the deadline passed (any stage) |
//! | 76 (`EX_PROTOCOL`) | a proxy answered with garbage or closed mid-handshake |
//! | 77 (`EX_NOPERM`) | authentication failed or is required (SOCKS5 auth, HTTP 407), or the ruleset denied (SOCKS5 `02`) |

use std::io;

use mtgate_proto::socks5::Reply;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::chain::Chain;
use crate::connector::ConnectOptions;
use crate::error::{Blame, ConnectError};
use crate::target::IntoTarget;

/// Bytes moved by a finished bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// From the local reader to the target.
    pub sent: u64,
    /// From the target to the local writer.
    pub received: u64,
}

/// Why a bridge ended badly.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The tunnel could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Copying failed after the tunnel was up.
    #[error("relay failed: {0}")]
    Relay(#[from] io::Error),
}

impl BridgeError {
    /// The process exit code for this error (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Relay(_) => 74,
            Self::Connect(e) => connect_exit_code(e),
        }
    }
}

/// The exit code for a connect error (see the module docs).
pub fn connect_exit_code(error: &ConnectError) -> i32 {
    let root = error.root();
    if error.is_auth_failure() || error.socks5_reply() == Some(Reply::NotAllowed) {
        return 77;
    }
    match root {
        ConnectError::Timeout { .. } => 75,
        ConnectError::Protocol { .. } | ConnectError::Closed { .. } => 76,
        ConnectError::NoAddresses { .. } => 68,
        ConnectError::InvalidTarget(_) | ConnectError::Unsupported(_) => 64,
        _ if error.blame() == Blame::Target => 68,
        _ => 69,
    }
}

/// The exit code for a whole bridge outcome: 0 on success.
pub fn exit_code(outcome: &Result<Transferred, BridgeError>) -> i32 {
    match outcome {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    }
}

/// Connects to `target` through `chain` and copies stdin → target and target → stdout. When
/// stdin ends, the write side towards the target is shut down and the target may still answer;
/// when the target ends its side, the bridge ends (the `sent` count is then not reported).
pub async fn bridge_stdio(
    chain: &Chain,
    target: impl IntoTarget,
    options: &ConnectOptions,
) -> Result<Transferred, BridgeError> {
    bridge(
        chain,
        target,
        options,
        tokio::io::stdin(),
        tokio::io::stdout(),
    )
    .await
}

/// [`bridge_stdio`] with any reader and writer in place of stdin and stdout.
pub async fn bridge<R, W>(
    chain: &Chain,
    target: impl IntoTarget,
    options: &ConnectOptions,
    mut input: R,
    mut output: W,
) -> Result<Transferred, BridgeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stream = chain.connect_with(target, options).await?;
    let (mut from_target, mut to_target) = tokio::io::split(stream);
    let mut upstream = std::pin::pin!(async {
        let n = tokio::io::copy(&mut input, &mut to_target).await?;
        to_target.shutdown().await?;
        Ok::<_, io::Error>(n)
    });
    let mut downstream = std::pin::pin!(async {
        let n = tokio::io::copy(&mut from_target, &mut output).await?;
        output.flush().await?;
        Ok::<_, io::Error>(n)
    });
    // When the target finishes first we are done: waiting for local input to end could hang
    // forever on an interactive stdin. When local input ends first, the target still gets to
    // answer (half-close).
    tokio::select! {
        received = &mut downstream => Ok(Transferred { sent: 0, received: received? }),
        sent = &mut upstream => {
            let sent = sent?;
            let received = downstream.await?;
            Ok(Transferred { sent, received })
        }
    }
}
