//! Relay throughput: every connection streams well-formed frames through the proxy to a fake
//! DC in raw-echo mode and reads the echo back, verifying every byte.
//!
//! The figure is the number of echoed bytes the clients received per second, measured after a
//! warm-up: each of those bytes crossed the proxy once upstream and once downstream, and is
//! counted once. A per-connection window bounds the bytes in flight, so what was sent and what
//! came back never drift apart by more than the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mtgate_proto::mtproto::obfs2::ProtoTag;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

use super::{LoadError, LoadTarget, connect_and_echo};
use crate::client::{ClientError, WireReader, WireWriter, encode_frame};

/// How long connections may take to drain their window after the measurement.
const DRAIN: Duration = Duration::from_secs(10);

/// Frames per write.
const FRAMES_PER_WRITE: usize = 4;

/// Shape of a throughput run.
#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    /// Concurrent connections.
    pub connections: usize,
    /// Time measured.
    pub duration: Duration,
    /// Time streamed before measuring.
    pub warmup: Duration,
    /// Payload bytes per frame (a multiple of 4).
    pub frame_payload: usize,
    /// Bytes a connection may have sent but not yet seen echoed.
    pub window: u64,
}

impl Default for ThroughputOptions {
    fn default() -> Self {
        Self {
            connections: 1,
            duration: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            frame_payload: 16 * 1024,
            window: 2 * 1024 * 1024,
        }
    }
}

/// What a throughput run measured.
#[derive(Debug, Clone)]
pub struct ThroughputResult {
    /// Connections streaming.
    pub connections: usize,
    /// Echoed bytes received during the measured time.
    pub echoed_bytes: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Connections that failed during the run.
    pub failed_connections: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl ThroughputResult {
    /// Echoed megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.echoed_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-connection progress shared by its writer and reader.
#[derive(Debug, Default)]
struct Flow {
    sent: AtomicU64,
    received: AtomicU64,
    /// The reader made progress: the writer may have room in its window again.
    progress: Notify,
    /// The writer has stopped; `sent` is final.
    writer_done: CancellationToken,
    /// The reader has stopped: the writer may now close its half. (Closing it earlier would
    /// send a FIN, and proxies that do not carry half-close would cut the echo short.)
    reader_done: CancellationToken,
}

/// Runs one throughput measurement.
pub async fn run(
    target: &LoadTarget,
    options: &ThroughputOptions,
) -> Result<ThroughputResult, LoadError> {
    let pattern = Arc::new(stream_pattern(
        target.client.effective_transport(),
        options.frame_payload,
    )?);
    let mut conns = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        conns.push(connect_and_echo(target).await?);
    }

    let stop = CancellationToken::new();
    let mut flows = Vec::with_capacity(conns.len());
    let mut tasks = JoinSet::new();
    for conn in conns {
        let (reader, writer) = conn.into_split();
        let (reader, _) = reader.into_wire();
        let flow = Arc::new(Flow::default());
        flows.push(Arc::clone(&flow));
        // Not a child of `stop`: after the measurement, readers drain instead of quitting.
        let failed = CancellationToken::new();
        tasks.spawn(write_loop(
            writer.into_wire(),
            Arc::clone(&pattern),
            Arc::clone(&flow),
            stop.clone(),
            failed.clone(),
            options.window,
        ));
        tasks.spawn(read_loop(reader, Arc::clone(&pattern), flow, failed));
    }
    let received = || -> u64 {
        flows
            .iter()
            .map(|f| f.received.load(Ordering::Relaxed))
            .sum()
    };

    sleep(options.warmup).await;
    let (start_bytes, start) = (received(), Instant::now());
    sleep(options.duration).await;
    let (end_bytes, elapsed) = (received(), start.elapsed());
    stop.cancel();

    let mut failures = Vec::new();
    let deadline = Instant::now() + DRAIN;
    while let Ok(Some(joined)) = timeout_at(deadline, tasks.join_next()).await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(error.to_string()),
            Err(error) => failures.push(error.to_string()),
        }
    }
    if !tasks.is_empty() {
        failures.push(format!("{} tasks did not drain in {DRAIN:?}", tasks.len()));
        tasks.abort_all();
    }
    Ok(ThroughputResult {
        connections: options.connections,
        echoed_bytes: end_bytes - start_bytes,
        elapsed,
        failed_connections: failures.len(),
        first_error: failures.into_iter().next(),
    })
}

/// A run of frames written again and again; the echo must repeat it byte for byte.
fn stream_pattern(tag: ProtoTag, payload_len: usize) -> Result<Vec<u8>, ClientError> {
    let mut payload = vec![0u8; payload_len];
    let mut pattern = Vec::with_capacity(FRAMES_PER_WRITE * (payload_len + 32));
    for _ in 0..FRAMES_PER_WRITE {
        rand::fill(&mut payload[..]);
        encode_frame(tag, &payload, &mut pattern)?;
    }
    Ok(pattern)
}

async fn write_loop(
    mut wire: WireWriter<OwnedWriteHalf>,
    pattern: Arc<Vec<u8>>,
    flow: Arc<Flow>,
    stop: CancellationToken,
    failed: CancellationToken,
    window: u64,
) -> Result<(), ClientError> {
    let len = pattern.len() as u64;
    let result = async {
        while !stop.is_cancelled() && !failed.is_cancelled() {
            let in_flight =
                flow.sent.load(Ordering::Relaxed) - flow.received.load(Ordering::Relaxed);
            if in_flight + len > window.max(len) {
                tokio::select! {
                    () = flow.progress.notified() => {}
                    () = stop.cancelled() => {}
                    () = failed.cancelled() => {}
                }
                continue;
            }
            wire.write(&pattern).await?;
            flow.sent.fetch_add(len, Ordering::Relaxed);
        }
        Ok(())
    }
    .await;
    flow.writer_done.cancel();
    if result.is_err() {
        failed.cancel();
    }
    // Keep the sending half open until the echo has drained (bounded by the caller's drain
    // deadline, after which this task is aborted).
    flow.reader_done.cancelled().await;
    drop(wire);
    result
}

async fn read_loop(
    mut wire: WireReader<OwnedReadHalf>,
    pattern: Arc<Vec<u8>>,
    flow: Arc<Flow>,
    failed: CancellationToken,
) -> Result<(), ClientError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    let result = async {
        loop {
            let writer_done = flow.writer_done.is_cancelled();
            if writer_done
                && flow.received.load(Ordering::Relaxed) >= flow.sent.load(Ordering::Relaxed)
            {
                return Ok(());
            }
            let n = tokio::select! {
                n = wire.read(&mut buf) => n?,
                // Wake up to re-check the exit condition once the writer stops.
                () = flow.writer_done.cancelled(), if !writer_done => continue,
                () = failed.cancelled() => return Ok(()),
            };
            if n == 0 {
                return Err(ClientError::Closed(crate::client::Stage::Read));
            }
            if !matches_cyclic(&pattern, offset, &buf[..n]) {
                return Err(ClientError::EchoMismatch);
            }
            offset = (offset + n) % pattern.len();
            flow.received.fetch_add(n as u64, Ordering::Relaxed);
            flow.progress.notify_one();
        }
    }
    .await;
    flow.reader_done.cancel();
    if result.is_err() {
        failed.cancel();
    }
    result
}

/// Whether `data` equals `pattern` repeated, starting at `offset` within it.
fn matches_cyclic(pattern: &[u8], mut offset: usize, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let n = (pattern.len() - offset).min(data.len());
        if data[..n] != pattern[offset..offset + n] {
            return false;
        }
        data = &data[n..];
        offset = 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_comparison_wraps_around() {
        let pattern = [1, 2, 3, 4, 5];
        assert!(matches_cyclic(&pattern, 3, &[4, 5, 1, 2, 3, 4, 5, 1]));
        assert!(!matches_cyclic(&pattern, 3, &[4, 5, 1, 9]));
        assert!(matches_cyclic(&pattern, 0, &[]));
    }

    #[test]
    fn pattern_is_whole_frames() {
        let pattern = stream_pattern(ProtoTag::Intermediate, 64).unwrap();
        assert_eq!(pattern.len(), FRAMES_PER_WRITE * (4 + 64));
        assert!(stream_pattern(ProtoTag::Padded, 6).is_err());
    }
}
