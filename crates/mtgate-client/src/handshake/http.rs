//! HTTP CONNECT client: one request head, one response head.

use mtgate_proto::address::Address;
use mtgate_proto::http1::{Limits, RequestHead, ResponseHead};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Deadline, HandshakeIo};
use crate::error::{ConnectError, Stage};
use crate::proxy::Credentials;

/// Sends `CONNECT target` and reads the response head. Bytes after the head stay buffered:
/// they are the target's.
pub(crate) async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    hs: &mut HandshakeIo<'_, S>,
    credentials: Option<&Credentials>,
    target: &Address,
    deadline: &Deadline,
) -> Result<(), ConnectError> {
    let creds = credentials.map(|c| (c.username.as_bytes(), c.password.as_bytes()));
    let head = RequestHead::connect(target, creds);
    let mut out = Vec::with_capacity(head.serialized_len());
    head.write_to_buf(&mut out);
    let limits = Limits::default();
    let response = deadline
        .run(Stage::Request, async {
            hs.send(Stage::Request, &out).await?;
            hs.recv(Stage::Request, |buf| ResponseHead::parse(buf, &limits))
                .await
        })
        .await?;
    if response.is_success() {
        return Ok(());
    }
    let challenge = response.proxy_authenticate().map(str::to_owned);
    Err(ConnectError::Http {
        status: response.status,
        reason: response.reason,
        challenge,
    })
}
