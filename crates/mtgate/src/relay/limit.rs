//! Bandwidth shaping: a token bucket shared by all of a user's tunnels in one direction, and a
//! filter that reads only as many bytes as the bucket holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::filter::{Filter, ReadOutcome, RelayError, try_read};

/// A token bucket: `rate` bytes per second, holding at most `burst` bytes.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket of `rate` bytes per second with a burst of a quarter second (at least
    /// 16 KiB, so one read of a relay buffer can pass).
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let burst = (rate / 4.0).max(16.0 * 1024.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    fn refill(&self, now: Instant) -> std::sync::MutexGuard<'_, (f64, Instant)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.rate).min(self.burst);
        state.1 = now;
        state
    }

    /// Whole bytes available now.
    pub fn available(&self, now: Instant) -> usize {
        self.refill(now).0.max(0.0) as usize
    }

    /// Takes `n` bytes (the balance may go negative after a read larger than the balance).
    pub fn take(&self, n: usize, now: Instant) {
        self.refill(now).0 -= n as f64;
    }

    /// How long until at least one byte is available.
    pub fn wait(&self, now: Instant) -> Duration {
        let balance = self.refill(now).0;
        if balance >= 1.0 {
            Duration::ZERO
        } else {
            // At least a millisecond, so a nearly empty bucket does not wake up in a loop.
            Duration::from_secs_f64((1.0 - balance) / self.rate).max(Duration::from_millis(1))
        }
    }
}

/// Forwards bytes unchanged at most as fast as its bucket allows.
#[derive(Debug)]
pub struct Shaped {
    bucket: Arc<TokenBucket>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Shaped {
    /// A filter drawing from `bucket`.
    pub fn new(bucket: Arc<TokenBucket>) -> Self {
        Self {
            bucket,
            sleep: None,
        }
    }
}

impl Filter for Shaped {
    fn poll_admit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(sleep) = &mut self.sleep {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            let wait = self.bucket.wait(Instant::now());
            if wait.is_zero() {
                return Poll::Ready(());
            }
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    fn read(&mut self, src: &TcpStream, buf: &mut [u8]) -> Result<ReadOutcome, RelayError> {
        let now = Instant::now();
        let allowed = self.bucket.available(now).clamp(1, buf.len());
        let outcome = try_read(src, &mut buf[..allowed])?;
        if let ReadOutcome::Data(n) = outcome {
            self.bucket.take(n, now);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_at_the_rate_up_to_the_burst() {
        let bucket = TokenBucket::new(64 * 1024);
        let now = Instant::now();
        assert_eq!(bucket.available(now), 16 * 1024);
        bucket.take(16 * 1024 + 512, now);
        assert_eq!(bucket.available(now), 0);
        let wait = bucket.wait(now);
        assert!(
            wait > Duration::from_millis(7) && wait < Duration::from_millis(9),
            "{wait:?}"
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(bucket.available(later), 16 * 1024, "capped by the burst");
    }
}
