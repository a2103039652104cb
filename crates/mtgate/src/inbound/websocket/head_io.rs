//! Reading one HTTP head from a stream, capped in size; the bytes after it are kept.

use bytes::{Bytes, BytesMut};
use mtgate_proto::http1::{Limits, RequestHead, ResponseHead};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The peer closed before the head ended.
    #[error("connection closed before the HTTP head ended")]
    Eof,
    /// The head is malformed or too large.
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads until `parse` finds a complete head; returns it and the bytes read past it.
async fn read_head<S, T, E>(
    stream: &mut S,
    limits: &Limits,
    parse: impl Fn(&[u8], &Limits) -> Result<Option<(T, usize)>, E>,
) -> Result<(T, Bytes), HeadError>
where
    S: AsyncRead + Unpin,
    E: std::fmt::Display,
{
    let mut buf = BytesMut::with_capacity(1024);
    // Each round reads at least one byte and the parser caps the head, so this ends.
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HeadError::Eof);
        }
        match parse(&buf, limits) {
            Ok(Some((head, used))) => {
                let rest = buf.split_off(used).freeze();
                return Ok((head, rest));
            }
            Ok(None) if buf.len() < limits.max_head_len => {}
            Ok(None) => return Err(HeadError::Malformed("head too large".into())),
            Err(e) => return Err(HeadError::Malformed(e.to_string())),
        }
    }
}

/// Reads a request head.
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: &Limits,
) -> Result<(RequestHead, Bytes), HeadError> {
    read_head(stream, limits, RequestHead::parse).await
}

/// Reads a response head.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: &Limits,
) -> Result<(ResponseHead, Bytes), HeadError> {
    read_head(stream, limits, ResponseHead::parse).await
}
