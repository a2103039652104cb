//! SOCKS5 client: method negotiation, RFC 1929 authentication, one request.

use mtgate_proto::address::Address;
use mtgate_proto::socks5::{
    Command, Greeting, Method, MethodSelection, Reply, Request, Response, UserPassRequest,
    UserPassResponse,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Deadline, HandshakeIo};
use crate::error::{ConnectError, Stage};
use crate::proxy::Credentials;

/// Negotiates, authenticates if asked, sends `command` for `address` and reads the first
/// reply. Returns the bound address the proxy reported.
pub(crate) async fn socks5_request<S: AsyncRead + AsyncWrite + Unpin>(
    hs: &mut HandshakeIo<'_, S>,
    credentials: Option<&Credentials>,
    command: Command,
    address: Address,
    deadline: &Deadline,
) -> Result<Address, ConnectError> {
    let methods: &[Method] = if credentials.is_some() {
        &[Method::NO_AUTH, Method::USER_PASS]
    } else {
        &[Method::NO_AUTH]
    };
    let mut out = Vec::with_capacity(600);
    Greeting::new(methods).write_to_buf(&mut out);
    let chosen = deadline
        .run(Stage::Negotiate, async {
            hs.send(Stage::Negotiate, &out).await?;
            hs.recv(Stage::Negotiate, MethodSelection::parse).await
        })
        .await?
        .method;
    match chosen {
        Method::NO_AUTH => {}
        Method::USER_PASS => {
            let creds = credentials.ok_or(ConnectError::AuthRequired)?;
            if creds.username.is_empty() || creds.username.len() > 255 || creds.password.len() > 255
            {
                return Err(ConnectError::Unsupported(
                    "SOCKS5 user names and passwords must be 1 to 255 bytes",
                ));
            }
            out.clear();
            UserPassRequest {
                username: creds.username.as_bytes().to_vec(),
                password: creds.password.as_bytes().to_vec(),
            }
            .write_to_buf(&mut out);
            let verdict = deadline
                .run(Stage::Auth, async {
                    hs.send(Stage::Auth, &out).await?;
                    hs.recv(Stage::Auth, UserPassResponse::parse).await
                })
                .await?;
            if !verdict.is_success() {
                return Err(ConnectError::AuthFailed {
                    status: verdict.status,
                });
            }
        }
        Method::NO_ACCEPTABLE => return Err(ConnectError::NoAcceptableMethod),
        Method(other) => {
            return Err(ConnectError::Protocol {
                stage: Stage::Negotiate,
                detail: format!("proxy chose method {other:#04x}, which was not offered"),
            });
        }
    }
    out.clear();
    Request { command, address }.write_to_buf(&mut out);
    deadline
        .run(Stage::Request, async {
            hs.send(Stage::Request, &out).await?;
            socks5_read_reply(hs, Stage::Request).await
        })
        .await
}

/// Reads one reply; anything but success is an error.
pub(crate) async fn socks5_read_reply<S: AsyncRead + AsyncWrite + Unpin>(
    hs: &mut HandshakeIo<'_, S>,
    stage: Stage,
) -> Result<Address, ConnectError> {
    let response = hs.recv(stage, Response::parse).await?;
    match response.reply {
        Reply::Succeeded => Ok(response.address),
        reply => Err(ConnectError::Socks5 { reply }),
    }
}
