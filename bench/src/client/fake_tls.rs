//! The client half of the fake-TLS handshake (`ee` secrets): a ClientHello keyed by the
//! secret, then the proxy's ServerHello + ChangeCipherSpec + ApplicationData, checked as
//! Telegram clients check it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtgate_proto::mtproto::faketls::client_hello::{self, HelloSpec};
use mtgate_proto::mtproto::faketls::server_hello;
use mtgate_proto::mtproto::faketls::{RANDOM_LEN, RANDOM_OFFSET};
use mtgate_proto::mtproto::secret::Secret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use x25519_dalek::{PublicKey, StaticSecret};

use super::error::{ClientError, Stage};

/// Largest answer accepted: ServerHello and CCS are ~130 bytes, and the ApplicationData record
/// is at most 2^16 - 1 bytes.
const MAX_ANSWER: usize = 70_000;

/// Sends a ClientHello and verifies the answer. Returns bytes received after the answer (the
/// start of the proxy's record stream, normally empty).
pub(crate) async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    secret: &Secret,
    domain: &str,
    limit: Duration,
) -> Result<Vec<u8>, ClientError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = client_hello::build(secret, &hello_spec(domain));
    let mut client_random = [0u8; RANDOM_LEN];
    client_random.copy_from_slice(&hello[RANDOM_OFFSET..RANDOM_OFFSET + RANDOM_LEN]);
    timeout(limit, writer.write_all(&hello))
        .await
        .map_err(|_| ClientError::Timeout(Stage::FakeTls))?
        .map_err(ClientError::io(Stage::FakeTls))?;

    let mut answer = Vec::with_capacity(4096);
    let len = loop {
        if let Some(len) = server_hello::answer_len(&answer)? {
            if len > MAX_ANSWER {
                return Err(ClientError::FakeTlsAnswerTooLarge(len));
            }
            if answer.len() >= len {
                break len;
            }
        }
        if answer.len() >= MAX_ANSWER {
            return Err(ClientError::FakeTlsAnswerTooLarge(answer.len()));
        }
        let mut chunk = [0u8; 4096];
        let n = timeout(limit, reader.read(&mut chunk))
            .await
            .map_err(|_| ClientError::Timeout(Stage::FakeTls))?
            .map_err(ClientError::io(Stage::FakeTls))?;
        if n == 0 {
            return Err(ClientError::Closed(Stage::FakeTls));
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    server_hello::verify(secret, &client_random, &answer[..len])?;
    Ok(answer.split_off(len))
}

/// A fresh hello: random session id, a real X25519 public key, the current Unix time.
fn hello_spec(domain: &str) -> HelloSpec<'_> {
    let mut session_id = [0u8; 32];
    rand::fill(&mut session_id);
    let mut private = [0u8; 32];
    rand::fill(&mut private);
    let key_share = PublicKey::from(&StaticSecret::from(private)).to_bytes();
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    HelloSpec {
        domain,
        unix_time,
        session_id,
        key_share,
    }
}
