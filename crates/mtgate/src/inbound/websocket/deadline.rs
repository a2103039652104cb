//! A time limit on a WebSocket write: running out of time reads as a timed-out I/O error, so
//! callers handle a stalled peer like any other failed write.

use std::time::Duration;

use fastwebsockets::WebSocketError;

/// Runs `work` for at most `limit`.
pub async fn timed<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, WebSocketError>>,
) -> Result<T, WebSocketError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(WebSocketError::IoError(std::io::ErrorKind::TimedOut.into())),
    }
}
