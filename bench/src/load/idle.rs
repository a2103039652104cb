//! Memory per idle connection: the resident size of a process (the proxy) before and after
//! opening many connections that each completed a handshake and one echo and then stay silent.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout_at};

use super::{LoadError, LoadTarget, connect_and_echo};
use crate::client::MtprotoConnection;
use crate::rss::process_tree_rss_kib;

/// Shape of an idle-connections run.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// The process whose memory is measured (with its descendants).
    pub pid: u32,
    /// Connections to open.
    pub connections: usize,
    /// Connections being opened at once.
    pub concurrency: usize,
    /// Time given to open them all.
    pub open_deadline: Duration,
    /// Wait between the last connection and the measurement.
    pub settle: Duration,
}

impl IdleOptions {
    /// 10,000 connections, 64 at a time, within 120 s, measured 1 s later.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            connections: 10_000,
            concurrency: 64,
            open_deadline: Duration::from_secs(120),
            settle: Duration::from_secs(1),
        }
    }
}

/// What an idle-connections run measured.
#[derive(Debug, Clone)]
pub struct IdleResult {
    /// The measured process.
    pub pid: u32,
    /// Connections asked for.
    pub requested: usize,
    /// Connections open (handshake and echo done) at the measurement.
    pub opened: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// Resident memory before opening, KiB.
    pub rss_before_kib: u64,
    /// Resident memory with the connections open, KiB.
    pub rss_after_kib: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl IdleResult {
    /// Growth per open connection, KiB.
    pub fn kib_per_connection(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.opened.max(1) as f64
    }
}

/// Runs one idle-connections measurement; the connections close when it returns.
pub async fn run(target: &LoadTarget, options: &IdleOptions) -> Result<IdleResult, LoadError> {
    let rss = |pid| process_tree_rss_kib(pid).map_err(|source| LoadError::Rss { pid, source });
    let rss_before_kib = rss(options.pid)?;
    let deadline = Instant::now() + options.open_deadline;
    // Give up early when the target clearly refuses (a limit was hit): failures are fast.
    let max_failures = (options.connections / 10).max(100);

    let mut open: Vec<MtprotoConnection> = Vec::with_capacity(options.connections);
    let mut failed = 0;
    let mut first_error = None;
    let mut pending = JoinSet::new();
    let mut started = 0;
    loop {
        let may_start = Instant::now() < deadline && failed < max_failures;
        while may_start && started < options.connections && pending.len() < options.concurrency {
            let target = target.clone();
            pending.spawn(async move { connect_and_echo(&target).await });
            started += 1;
        }
        let Ok(Some(joined)) = timeout_at(deadline, pending.join_next()).await else {
            break;
        };
        match joined {
            Ok(Ok(conn)) => open.push(conn),
            Ok(Err(error)) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    if !pending.is_empty() {
        failed += pending.len();
        first_error.get_or_insert_with(|| "opening timed out".into());
        pending.abort_all();
    }

    sleep(options.settle).await;
    let rss_after_kib = rss(options.pid)?;
    let result = IdleResult {
        pid: options.pid,
        requested: options.connections,
        opened: open.len(),
        failed,
        rss_before_kib,
        rss_after_kib,
        first_error,
    };
    drop(open);
    Ok(result)
}
