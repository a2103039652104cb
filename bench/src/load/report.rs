//! The figures of one load run, for people (text) and for scripts (`key=value` lines).

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::handshakes::HandshakeResult;
use super::idle::IdleResult;
use super::throughput::ThroughputResult;

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The target address.
    pub target: Option<SocketAddr>,
    /// The client mode (`plain`, `dd`, `ee`, `direct`); never the secret.
    pub mode: String,
    /// Throughput runs, one per connection count.
    pub throughput: Vec<ThroughputResult>,
    /// The handshake run.
    pub handshakes: Option<HandshakeResult>,
    /// The idle-connections run.
    pub idle: Option<IdleResult>,
    /// Measurements that could not run, and why.
    pub failures: Vec<(String, String)>,
}

impl Report {
    /// A few aligned lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let target = self.target.map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, "target      {target} ({})", self.mode);
        for t in &self.throughput {
            let _ = writeln!(
                out,
                "throughput  {:>2} conn: {:>9.1} MB/s echoed ({:.1} MB in {:.2} s{})",
                t.connections,
                t.mb_per_s(),
                t.echoed_bytes as f64 / 1e6,
                t.elapsed.as_secs_f64(),
                failure_note(t.failed_connections, t.first_error.as_deref()),
            );
        }
        if let Some(h) = &self.handshakes {
            let _ = writeln!(
                out,
                "handshakes  {:>2} clients: {:>7.0}/s ({} done in {:.2} s{})",
                h.clients,
                h.per_second(),
                h.completed,
                h.elapsed.as_secs_f64(),
                failure_note(h.failed as usize, h.first_error.as_deref()),
            );
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                out,
                "idle rss    pid {}: {:.1} MiB before, {:.1} MiB with {} idle connections, {:.1} KiB/conn{}",
                i.pid,
                i.rss_before_kib as f64 / 1024.0,
                i.rss_after_kib as f64 / 1024.0,
                i.opened,
                i.kib_per_connection(),
                failure_note(i.failed, i.first_error.as_deref()),
            );
        }
        for (what, why) in &self.failures {
            let _ = writeln!(out, "{what:<11} not measured: {why}");
        }
        out
    }

    /// One `key=value` line per figure; values run to the end of the line.
    pub fn to_kv(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "mode={}", self.mode);
        for t in &self.throughput {
            let c = t.connections;
            let _ = writeln!(out, "throughput_mbps_c{c}={:.1}", t.mb_per_s());
            let _ = writeln!(out, "throughput_failed_c{c}={}", t.failed_connections);
            if let Some(e) = &t.first_error {
                let _ = writeln!(out, "throughput_error_c{c}={}", one_line(e));
            }
        }
        if let Some(h) = &self.handshakes {
            let _ = writeln!(out, "handshakes_per_s={:.0}", h.per_second());
            let _ = writeln!(out, "handshakes_completed={}", h.completed);
            let _ = writeln!(out, "handshakes_failed={}", h.failed);
            if let Some(e) = &h.first_error {
                let _ = writeln!(out, "handshakes_error={}", one_line(e));
            }
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(out, "idle_requested={}", i.requested);
            let _ = writeln!(out, "idle_opened={}", i.opened);
            let _ = writeln!(out, "idle_failed={}", i.failed);
            let _ = writeln!(out, "rss_before_kib={}", i.rss_before_kib);
            let _ = writeln!(out, "rss_after_kib={}", i.rss_after_kib);
            let _ = writeln!(out, "rss_per_conn_kib={:.2}", i.kib_per_connection());
            if let Some(e) = &i.first_error {
                let _ = writeln!(out, "idle_error={}", one_line(e));
            }
        }
        for (what, why) in &self.failures {
            let _ = writeln!(out, "{what}_error={}", one_line(why));
        }
        out
    }
}

fn failure_note(failed: usize, first: Option<&str>) -> String {
    match (failed, first) {
        (0, _) => String::new(),
        (n, Some(e)) => format!("; {n} failed, first: {e}"),
        (n, None) => format!("; {n} failed"),
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn kv_lines_carry_every_figure() {
        let report = Report {
            target: Some("127.0.0.1:1".parse().unwrap()),
            mode: "ee".into(),
            throughput: vec![ThroughputResult {
                connections: 8,
                echoed_bytes: 300_000_000,
                elapsed: Duration::from_secs(3),
                failed_connections: 0,
                first_error: None,
            }],
            handshakes: Some(HandshakeResult {
                clients: 8,
                completed: 9000,
                failed: 1,
                elapsed: Duration::from_secs(3),
                first_error: Some("read timed out\nx".into()),
            }),
            idle: Some(IdleResult {
                pid: 1,
                requested: 10,
                opened: 10,
                failed: 0,
                rss_before_kib: 1000,
                rss_after_kib: 1100,
                first_error: None,
            }),
            failures: vec![],
        };
        let kv = report.to_kv();
        for line in [
            "mode=ee",
            "throughput_mbps_c8=100.0",
            "handshakes_per_s=3000",
            "handshakes_error=read timed out x",
            "rss_after_kib=1100",
            "rss_per_conn_kib=10.00",
        ] {
            assert!(kv.lines().any(|l| l == line), "{line} missing in\n{kv}");
        }
        assert!(report.to_text().contains("100.0 MB/s"));
    }
}
