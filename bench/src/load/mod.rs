//! The load generator: three measurements against one target, each bounded in time and count.
//!
//! - [`throughput`]: bytes echoed per second through `n` connections for a fixed time.
//! - [`handshakes`]: complete connections per second with `n` concurrent clients (connect,
//!   fake TLS for `ee`, obfuscated2 header, one small frame echoed back, close).
//! - [`idle`]: resident memory of a process (the proxy) before and after `n` connections that
//!   completed a handshake and one echo and then stay silent.
//!
//! All of them need a fake DC behind the proxy (or as the target with `--direct`); throughput
//! needs it in raw-echo mode, the others work with either mode.

pub mod handshakes;
pub mod idle;
pub mod report;
pub mod throughput;

use std::net::SocketAddr;

use crate::client::{ClientConfig, ClientError, MtprotoConnection};

/// Where the load goes and how its clients connect.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The proxy (or fake DC) address; loopback only.
    pub addr: SocketAddr,
    /// How each client connects.
    pub client: ClientConfig,
}

/// Why a measurement could not run at all (single connection failures are counted instead).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Setting up the measurement's connections failed.
    #[error("cannot set up a connection: {0}")]
    Setup(#[from] ClientError),
    /// Reading the measured process's memory failed.
    #[error("cannot read the memory of pid {pid}: {source}")]
    Rss {
        /// The process asked for.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A small payload standing for a client's request: random bytes, so it looks like an
/// encrypted MTProto message (a non-zero auth_key_id), of the 56 bytes at least that a proxy in
/// middle-proxy mode requires of one.
pub(crate) fn probe_payload() -> [u8; 64] {
    let mut payload = [0u8; 64];
    rand::fill(&mut payload);
    payload
}

/// Connects and proves the path works end to end with one echoed frame.
pub(crate) async fn connect_and_echo(
    target: &LoadTarget,
) -> Result<MtprotoConnection, ClientError> {
    let mut conn = MtprotoConnection::connect(target.addr, &target.client).await?;
    conn.echo(&probe_payload()).await?;
    Ok(conn)
}
