//! A time limit on a WebSocket write: running out of time reads as a timed-out I/O error, so
//! callers handle a stalled peer like any other failed write.

use std::time::Duration;

use fastwebsockets::WebSocketError;

/// Runs `work` for at most `limit`.
///
/// Most writes only fill a buffer and finish at their first poll; those never touch the clock
/// or the timer wheel. The limit starts when `work` first has to wait.
pub async fn timed<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, WebSocketError>>,
) -> Result<T, WebSocketError> {
    let mut work = std::pin::pin!(work);
    if let Some(done) = poll_once(work.as_mut()).await {
        return done;
    }
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(WebSocketError::IoError(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Polls `future` once: its output if it is ready, `None` if it would wait (it can be polled
/// again later).
pub async fn poll_once<F: Future + Unpin>(future: F) -> Option<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut future).poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_write_passes_through_and_a_stalled_one_times_out() {
        let ready = timed(Duration::from_secs(1), async { Ok::<_, WebSocketError>(7) }).await;
        assert_eq!(ready.unwrap(), 7);

        let started = tokio::time::Instant::now();
        let stalled = timed(
            Duration::from_secs(5),
            std::future::pending::<Result<(), _>>(),
        );
        match stalled.await {
            Err(WebSocketError::IoError(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_waits_then_finishes_within_the_limit_succeeds() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, WebSocketError>("sent")
        };
        assert_eq!(timed(Duration::from_secs(3), slow).await.unwrap(), "sent");
    }
}
