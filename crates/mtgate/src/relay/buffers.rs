//! A pool of relay buffers with an accounting of bytes in flight.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::registry::ConnEntry;

/// Hands out fixed-size buffers and counts the bytes held.
#[derive(Debug)]
pub struct BufferPool {
    size: usize,
    cap: usize,
    max_free: usize,
    free: Mutex<Vec<Box<[u8]>>>,
    held: AtomicUsize,
    gauge: Gauge,
    pressure: Notify,
}

impl BufferPool {
    /// A pool of `size`-byte buffers; past `cap` bytes held, [`BufferPool::pressure`] fires.
    pub fn new(size: usize, cap: usize, gauge: Gauge) -> Self {
        // Keep a few spare buffers for bursts; more would only sit in memory.
        let max_free = (cap / size / 8).clamp(4, 32);
        Self {
            size,
            cap,
            max_free,
            free: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            gauge,
            pressure: Notify::new(),
        }
    }

    /// Bytes in each buffer.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// Bytes held by connections right now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The configured cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Fires when bytes held go past the cap.
    pub fn pressure(&self) -> &Notify {
        &self.pressure
    }

    /// Takes a buffer on behalf of `owner`.
    pub fn take<'a>(&'a self, owner: &'a ConnEntry) -> Buffer<'a> {
        let buf = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice());
        let held = self.held.fetch_add(self.size, Ordering::Relaxed) + self.size;
        owner.add_held(self.size);
        self.gauge.set(held as i64);
        if held > self.cap {
            self.pressure.notify_one();
        }
        Buffer {
            buf: Some(buf),
            pool: self,
            owner,
        }
    }

    fn give_back(&self, buf: Box<[u8]>, owner: &ConnEntry) {
        let held = self.held.fetch_sub(self.size, Ordering::Relaxed) - self.size;
        owner.sub_held(self.size);
        self.gauge.set(held as i64);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.max_free {
            free.push(buf);
        }
    }
}

/// A buffer on loan; returned to the pool when dropped.
#[derive(Debug)]
pub struct Buffer<'a> {
    buf: Option<Box<[u8]>>,
    pool: &'a BufferPool,
    owner: &'a ConnEntry,
}

impl Deref for Buffer<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or_default()
    }
}

impl DerefMut for Buffer<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give_back(buf, self.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_held_and_signals_pressure() {
        let pool = BufferPool::new(1024, 2048, Gauge::default());
        let owner = ConnEntry::new_detached();
        let a = pool.take(&owner);
        let b = pool.take(&owner);
        assert_eq!((pool.held(), owner.held()), (2048, 2048));
        assert_eq!(a.len(), 1024);
        let c = pool.take(&owner);
        assert_eq!(pool.held(), 3072);
        drop((a, b, c));
        assert_eq!((pool.held(), owner.held()), (0, 0));
        // Buffers are reused, not reallocated.
        assert_eq!(pool.free.lock().unwrap().len(), 3);
    }
}
