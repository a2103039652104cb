//! What a refused peer sees: the cover site (everything it sent so far, then the rest of its
//! stream, relayed both ways), or nothing at all until the deadline.

use std::time::Duration;

use mtgate_client::DialOptions;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::config::Masking;
use crate::relay::pump::{RelayContext, write_all};
use crate::relay::{BufferPool, ConnEntry, Passthrough, relay};

/// How a refused connection was handled (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Relayed to the cover site.
    Relayed,
    /// Read and discarded until the deadline.
    Discarded,
    /// The cover site could not be reached; discarded instead.
    CoverUnreachable,
    /// The cover site resolves to this proxy; discarded instead of looping.
    CoverIsSelf,
    /// Already answered (fake TLS), so just closed.
    Closed,
}

impl Outcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Relayed => "relayed",
            Self::Discarded => "discarded",
            Self::CoverUnreachable => "cover_unreachable",
            Self::CoverIsSelf => "cover_is_self",
            Self::Closed => "closed",
        }
    }
}

/// Relays `client` (which already sent `received`) to the cover site, or discards its bytes
/// until `deadline` when masking is off or the cover site is unreachable.
pub async fn handle(
    mut client: TcpStream,
    received: &[u8],
    masking: Option<&Masking>,
    deadline: Instant,
    pool: &BufferPool,
    entry: &ConnEntry,
) -> Outcome {
    let Some(masking) = masking else {
        discard(&mut client, deadline).await;
        return Outcome::Discarded;
    };
    let options = DialOptions {
        timeout: masking.connect_timeout,
        ..DialOptions::default()
    };
    let cover = match mtgate_client::connect(&masking.host, masking.port, &options).await {
        Ok(cover) => cover,
        Err(e) => {
            tracing::debug!(host = ?masking.host, error = %e, "cover site unreachable");
            discard(&mut client, deadline).await;
            return Outcome::CoverUnreachable;
        }
    };
    if cover.peer_addr().ok() == client.local_addr().ok() {
        tracing::warn!(host = ?masking.host, "the masking host points at this proxy; fix masking.host");
        discard(&mut client, deadline).await;
        return Outcome::CoverIsSelf;
    }
    let session = async {
        if write_all(&cover, received).await.is_err() {
            return;
        }
        let ctx = RelayContext {
            pool,
            entry,
            idle_timeout: masking.max_duration,
            closes_after: false,
        };
        let budget = masking.max_bytes;
        relay(
            &client,
            &cover,
            (Passthrough::limited(budget), None),
            (Passthrough::limited(budget), None),
            ctx,
        )
        .await;
    };
    let _ = timeout(masking.max_duration, session).await;
    Outcome::Relayed
}

/// Reads and drops whatever the peer sends until `deadline` (or its end of stream), answering
/// nothing. Bounded: at most 1 MiB is read.
async fn discard(client: &mut TcpStream, deadline: Instant) {
    const MAX_DISCARD: u64 = 1 << 20;
    let mut sink = [0u8; 2048];
    let mut total = 0u64;
    let floor = Instant::now() + Duration::from_millis(10);
    let _ = timeout_at(deadline.max(floor), async {
        while total < MAX_DISCARD {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    })
    .await;
}
