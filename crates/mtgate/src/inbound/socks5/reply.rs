//! Writing replies, and closing after a failure the way RFC 1928 asks: stop sending, then
//! close within a short, bounded wait so the reply is not lost to a reset.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::relay::pump::write_all;

/// Budget for writing a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused client may keep sending before the socket is closed.
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 64 * 1024;

/// Writes `bytes` within [`REPLY_TIMEOUT`].
pub async fn send(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(REPLY_TIMEOUT, write_all(stream, bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Shuts the write side down (the reply goes out with a FIN), drains what the client still
/// sends for a moment (closing with unread bytes would reset the connection and could destroy
/// the reply in flight), then closes.
pub async fn close_after_failure(mut stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 2048];
    let mut drained = 0;
    let drain = async {
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Sends a SOCKS5 failure reply with a zero address, then closes as above.
pub async fn fail(stream: TcpStream, reply: mtgate_proto::socks5::Reply) {
    let mut answer = Vec::new();
    mtgate_proto::socks5::Response::failure(reply).write_to_buf(&mut answer);
    if send(&stream, &answer).await.is_ok() {
        close_after_failure(stream).await;
    }
}
