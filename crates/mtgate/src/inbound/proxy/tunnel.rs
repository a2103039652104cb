//! Relaying an established proxy tunnel: early bytes first, then the shared relay with the
//! user's byte counters and bandwidth shaping; the end is counted and logged with a reason.

use std::fmt::Debug;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::context::{Ctx, user_name};
use super::touching::Touching;
use crate::auth::UserEntry;
use crate::outbound::Dialed;
use crate::relay::filter::{ReadOutcome, RelayError};
use crate::relay::pump::{RelayContext, write_all};
use crate::relay::{Filter, Passthrough, RelayEnd, Shaped, relay};
use crate::telemetry::proxy_metrics::TrafficLabels;

/// Budget for writing early bytes to either side.
const EARLY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A direction's filter: plain, or shaped by the user's bandwidth.
enum TunnelFilter {
    Plain(Passthrough),
    Shaped(Shaped),
}

impl Filter for TunnelFilter {
    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
        match self {
            Self::Plain(f) => f.read(src, buf),
            Self::Shaped(f) => f.read(src, buf),
        }
    }

    fn poll_admit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Plain(_) => Poll::Ready(()),
            Self::Shaped(f) => f.poll_admit(cx),
        }
    }
}

/// What is being relayed, for counting and logging.
#[derive(Debug, Clone, Copy)]
pub struct Tunnel<'a> {
    /// The authenticated user.
    pub user: Option<&'a UserEntry>,
    /// The command's metric name.
    pub command: &'static str,
    /// The destination as requested.
    pub target: &'a (dyn Debug + Sync),
}

/// Relays between the client and the destination until both finish, the tunnel idles out,
/// or the connection is killed. `early` are bytes the client sent along with its request.
pub async fn run(client: TcpStream, dialed: Dialed, early: &[u8], ctx: Ctx<'_>, t: Tunnel<'_>) {
    let metrics = &ctx.shared.metrics.proxy;
    let counter = |direction| {
        metrics
            .bytes
            .get_or_create(&TrafficLabels {
                listener: ctx.name().to_owned(),
                user: user_name(t.user).to_owned(),
                direction,
            })
            .clone()
    };
    let (up, down) = (counter("upload"), counter("download"));
    let open = ctx.tunnel_opened();
    let started = Instant::now();
    let end = match dialed {
        Dialed::Stream(stream) => {
            Box::pin(run_stream(client, *stream, early, ctx, (&up, &down))).await
        }
        Dialed::Agent(stream) => {
            Box::pin(run_stream(client, *stream, early, ctx, (&up, &down))).await
        }
        Dialed::Direct(stream) => {
            Box::pin(run_tcp(&client, &stream, &[], early, ctx, t, (&up, &down))).await
        }
        Dialed::Tunnel(tunnel) => {
            let prefix = tunnel.prefix.clone();
            Box::pin(run_tcp(
                &client,
                &tunnel.tcp,
                &prefix,
                early,
                ctx,
                t,
                (&up, &down),
            ))
            .await
        }
    };
    open.dec();
    let outcome = match &end {
        RelayEnd::Finished => "ok",
        RelayEnd::Idle => "idle_timeout",
        RelayEnd::Killed => "closed_by_proxy",
        RelayEnd::Failed(e) => e.reason(),
    };
    ctx.count(
        t.user,
        t.command,
        if outcome == "reset" { "ok" } else { outcome },
    );
    tracing::debug!(
        listener = ctx.name(),
        peer = %ctx.peer,
        user = user_name(t.user),
        command = t.command,
        target = ?t.target,
        outcome,
        up = up.get(),
        down = down.get(),
        secs = started.elapsed().as_secs_f32(),
        "tunnel closed"
    );
}

async fn run_tcp(
    client: &TcpStream,
    remote: &TcpStream,
    prefix: &[u8],
    early: &[u8],
    ctx: Ctx<'_>,
    t: Tunnel<'_>,
    (up, down): (
        &prometheus_client::metrics::counter::Counter,
        &prometheus_client::metrics::counter::Counter,
    ),
) -> RelayEnd {
    for (dst, bytes, counter) in [(client, prefix, down), (remote, early, up)] {
        if bytes.is_empty() {
            continue;
        }
        match tokio::time::timeout(EARLY_WRITE_TIMEOUT, write_all(dst, bytes)).await {
            Ok(Ok(())) => {
                counter.inc_by(bytes.len() as u64);
            }
            Ok(Err(e)) => return RelayEnd::Failed(e.into()),
            Err(_) => return RelayEnd::Idle,
        }
    }
    let filter = |bucket: Option<&std::sync::Arc<crate::relay::TokenBucket>>| match bucket {
        Some(b) => TunnelFilter::Shaped(Shaped::new(b.clone())),
        None => TunnelFilter::Plain(Passthrough::unlimited()),
    };
    let buckets = ctx.buckets(t.user);
    #[cfg(target_os = "linux")]
    if ctx.config().splice && buckets.is_none() {
        // Without pipes (descriptor limits), fall through to the copying relay.
        if let Ok(pipes) = crate::relay::splice::Pipes::new() {
            return crate::relay::splice::splice_relay(
                client,
                remote,
                pipes,
                (up, down),
                ctx.entry,
                ctx.config().idle_timeout,
            )
            .await;
        }
    }
    let relay_ctx = RelayContext {
        pool: &ctx.shared.pool,
        entry: ctx.entry,
        idle_timeout: ctx.config().idle_timeout,
        closes_after: true,
    };
    relay(
        client,
        remote,
        (filter(buckets.map(|b| &b.0)), Some(up)),
        (filter(buckets.map(|b| &b.1)), Some(down)),
        relay_ctx,
    )
    .await
}

/// Relays through an upstream that is not plain TCP (TLS, or a tunnel agent's stream):
/// tokio's copy over a client socket that notes activity on the registry entry, with the
/// kill switch and the idle timeout checked against that activity. Half-close is carried:
/// an EOF from one side shuts the other's write half down.
async fn run_stream<S>(
    client: TcpStream,
    mut stream: S,
    early: &[u8],
    ctx: Ctx<'_>,
    (up, down): (
        &prometheus_client::metrics::counter::Counter,
        &prometheus_client::metrics::counter::Counter,
    ),
) -> RelayEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    if !early.is_empty() {
        match tokio::time::timeout(EARLY_WRITE_TIMEOUT, stream.write_all(early)).await {
            Ok(Ok(())) => {
                up.inc_by(early.len() as u64);
            }
            Ok(Err(e)) => return RelayEnd::Failed(e.into()),
            Err(_) => return RelayEnd::Idle,
        }
    }
    let idle = ctx.config().idle_timeout;
    let mut client = Touching::new(client, ctx.entry).counting(up.clone(), down.clone());
    ctx.entry.touch();
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut stream, 32 << 10, 32 << 10);
    let idle_out = async {
        loop {
            let deadline = ctx.entry.last_active() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = copy => match r {
            Ok(_) => RelayEnd::Finished,
            Err(e) => RelayEnd::Failed(e.into()),
        },
        () = idle_out => RelayEnd::Idle,
        () = ctx.entry.killed().cancelled() => RelayEnd::Killed,
    }
}
