//! SOCKS4/4a client: one request, one 8-byte reply.

use mtgate_proto::socks4::{Command, Host, Reply, ReplyCode, Request};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Deadline, HandshakeIo};
use crate::error::{ConnectError, Stage};
use crate::proxy::Credentials;

/// Sends CONNECT for `host:port` and reads the reply.
pub(crate) async fn socks4_request<S: AsyncRead + AsyncWrite + Unpin>(
    hs: &mut HandshakeIo<'_, S>,
    credentials: Option<&Credentials>,
    host: Host,
    port: u16,
    deadline: &Deadline,
) -> Result<(), ConnectError> {
    let user_id = credentials
        .map(|c| c.username.as_bytes().to_vec())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(64);
    Request {
        command: Command::Connect,
        port,
        host,
        user_id,
    }
    .write_to_buf(&mut out);
    let reply = deadline
        .run(Stage::Request, async {
            hs.send(Stage::Request, &out).await?;
            hs.recv(Stage::Request, Reply::parse).await
        })
        .await?;
    match reply.code {
        ReplyCode::Granted => Ok(()),
        code => Err(ConnectError::Socks4 { code }),
    }
}
