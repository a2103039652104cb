//! Counters a fake DC keeps, so tests and the binary can tell what reached it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::ProtoTag;

/// Live counters of a fake DC, shared by its accept loops and sessions.
#[derive(Debug, Default)]
pub struct FakeDcStats {
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    headers_rejected: AtomicU64,
    sessions_failed: AtomicU64,
    frames_echoed: AtomicU64,
    bytes_echoed: AtomicU64,
    last_header: Mutex<Option<(DcId, ProtoTag)>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// TCP connections accepted since start.
    pub connections_accepted: u64,
    /// Connections being served now.
    pub connections_open: u64,
    /// Connections whose 64-byte header carried no known transport tag.
    pub headers_rejected: u64,
    /// Sessions that ended with an error (timeout, malformed frame, I/O error).
    pub sessions_failed: u64,
    /// Frames echoed (frame mode).
    pub frames_echoed: u64,
    /// Decrypted bytes echoed back (both modes; in frame mode, payload bytes).
    pub bytes_echoed: u64,
    /// DC index of the last accepted header.
    pub last_dc: Option<DcId>,
    /// Transport of the last accepted header.
    pub last_transport: Option<ProtoTag>,
}

impl FakeDcStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let last = *self
            .last_header
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StatsSnapshot {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            headers_rejected: self.headers_rejected.load(Ordering::Relaxed),
            sessions_failed: self.sessions_failed.load(Ordering::Relaxed),
            frames_echoed: self.frames_echoed.load(Ordering::Relaxed),
            bytes_echoed: self.bytes_echoed.load(Ordering::Relaxed),
            last_dc: last.map(|(dc, _)| dc),
            last_transport: last.map(|(_, tag)| tag),
        }
    }

    pub(crate) fn accepted(&self) -> OpenGuard<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self)
    }

    pub(crate) fn header_rejected(&self) {
        self.headers_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_failed(&self) {
        self.sessions_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn header_accepted(&self, dc: DcId, tag: ProtoTag) {
        *self
            .last_header
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((dc, tag));
    }

    pub(crate) fn echoed(&self, frames: u64, bytes: u64) {
        self.frames_echoed.fetch_add(frames, Ordering::Relaxed);
        self.bytes_echoed.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Counts a connection as open until dropped.
pub(crate) struct OpenGuard<'a>(&'a FakeDcStats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}
