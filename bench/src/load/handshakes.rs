//! Handshakes per second: concurrent clients each repeat connect, fake TLS (for `ee`),
//! obfuscated2 header, one small frame echoed back, close, for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use super::{LoadTarget, connect_and_echo};

/// Pause after a failed attempt, so that a refusing target is not hammered in a hot loop.
const BACKOFF: Duration = Duration::from_millis(10);

/// Shape of a handshake run.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// Concurrent clients.
    pub clients: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many attempts in total, whatever the time.
    pub max_attempts: u64,
}

impl Default for HandshakeOptions {
    fn default() -> Self {
        Self {
            clients: 8,
            duration: Duration::from_secs(3),
            max_attempts: 1_000_000,
        }
    }
}

/// What a handshake run measured.
#[derive(Debug, Clone)]
pub struct HandshakeResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Handshakes that completed with a correct echo.
    pub completed: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Time from the first attempt to the last completion.
    pub elapsed: Duration,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl HandshakeResult {
    /// Completed handshakes per second.
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, Default)]
struct Tally {
    attempts: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
}

/// Runs one handshake measurement.
pub async fn run(target: &LoadTarget, options: &HandshakeOptions) -> HandshakeResult {
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + options.duration;
    let mut workers = JoinSet::new();
    for _ in 0..options.clients {
        let target = target.clone();
        let tally = Arc::clone(&tally);
        let max_attempts = options.max_attempts;
        workers.spawn(async move {
            let mut first_error = None;
            while Instant::now() < deadline
                && tally.attempts.fetch_add(1, Ordering::Relaxed) < max_attempts
            {
                match connect_and_echo(&target).await {
                    Ok(conn) => {
                        drop(conn);
                        tally.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| error.to_string());
                        sleep(BACKOFF).await;
                    }
                }
            }
            first_error
        });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let error = match joined {
            Ok(error) => error,
            Err(join_error) => Some(join_error.to_string()),
        };
        if first_error.is_none() {
            first_error = error;
        }
    }
    HandshakeResult {
        clients: options.clients,
        completed: tally.completed.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        first_error,
    }
}
