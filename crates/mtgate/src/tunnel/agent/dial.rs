//! Reaching the gateway: TCP (happy eyeballs through `mtgate-client`), TLS (rustls,
//! aws-lc-rs) when the URL is `wss://`, then the WebSocket upgrade with the credentials,
//! `X-Client-ID` and the subprotocol, checked like RFC 6455 §4.1 asks (101, `Upgrade`,
//! `Connection`, `Sec-WebSocket-Accept`, the chosen subprotocol). With `anyproxy-json`, the
//! `auth` message exchange follows. Everything runs under `connect_timeout`.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fastwebsockets::WebSocket;
use mtgate_proto::http1::{Headers, Limits, RequestHead, basic_authorization};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::{AgentConfig, Credentials, subprotocol};
use crate::inbound::websocket::handshake::{accept_key, has_token};
use crate::inbound::websocket::head_io::{HeadError, read_response};
use crate::inbound::websocket::prefixed::Prefixed;
use crate::tunnel::mux::Codec;

/// The byte stream under the WebSocket: TCP, or TLS over TCP.
#[derive(Debug)]
pub enum GatewayIo {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A WebSocket to the gateway, right after the handshake (bytes read past the 101 replayed).
pub type GatewaySocket = WebSocket<Prefixed<GatewayIo>>;

/// Why the gateway could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Resolving or connecting to the gateway failed.
    #[error("cannot reach the gateway: {0}")]
    Connect(#[from] mtgate_client::ConnectError),
    /// The TLS handshake failed (certificate not trusted, wrong name, alert…).
    #[error("TLS handshake with the gateway failed: {0}")]
    Tls(std::io::Error),
    /// The gateway's host is not a valid TLS server name.
    #[error("the gateway host is not a valid TLS server name")]
    ServerName,
    /// Reading the answer to the upgrade failed.
    #[error("upgrade answer: {0}")]
    Head(#[from] HeadError),
    /// The gateway refused the credentials (401 or 403).
    #[error("the gateway refused the agent's credentials: {status} {reason}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The gateway answered another status.
    #[error("the gateway answered {status} {reason} instead of 101")]
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The 101 broke the WebSocket protocol.
    #[error("invalid upgrade answer: {0}")]
    Invalid(&'static str),
    /// The gateway answered the JSON `auth` message with `success: false`.
    #[error("the gateway refused the agent's credentials (auth_response: {0:?})")]
    AuthRejected(String),
    /// The JSON `auth` exchange broke the protocol.
    #[error("JSON auth exchange failed: {0}")]
    JsonAuth(String),
    /// `connect_timeout` passed.
    #[error("no connection to the gateway within {0:?}")]
    Timeout(std::time::Duration),
}

impl DialError {
    /// Whether the gateway refused the credentials (logged louder: retrying will not help
    /// until someone fixes the config).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::AuthRejected(_))
    }
}

/// Connects, upgrades and (for JSON) authenticates, within `connect_timeout`.
pub async fn connect(config: &AgentConfig) -> Result<GatewaySocket, DialError> {
    tokio::time::timeout(config.connect_timeout, connect_inner(config))
        .await
        .map_err(|_| DialError::Timeout(config.connect_timeout))?
}

async fn connect_inner(config: &AgentConfig) -> Result<GatewaySocket, DialError> {
    let gateway = &config.gateway;
    let options = mtgate_client::DialOptions {
        timeout: config.connect_timeout,
        keepalive: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    let tcp = mtgate_client::connect(&gateway.host, gateway.port, &options).await?;
    let mut io = match &config.tls {
        None => GatewayIo::Plain(tcp),
        Some(tls) => {
            let name =
                ServerName::try_from(gateway.host.clone()).map_err(|_| DialError::ServerName)?;
            let stream = TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(DialError::Tls)?;
            GatewayIo::Tls(Box::new(stream))
        }
    };
    let rest = upgrade(&mut io, config).await?;
    let mut ws = WebSocket::after_handshake(Prefixed::new(rest, io), fastwebsockets::Role::Client);
    if config.codec == Codec::AnyProxyJson {
        super::json_auth::authenticate(&mut ws, config).await?;
    }
    Ok(ws)
}

/// Sends the upgrade request and checks the 101; returns the bytes read past it.
async fn upgrade(io: &mut GatewayIo, config: &AgentConfig) -> Result<bytes::Bytes, DialError> {
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    let key = STANDARD.encode(nonce);
    let protocol = subprotocol(config.codec);
    let mut headers = Headers::default();
    headers.push("Host", config.gateway.authority());
    headers.push("Upgrade", "websocket");
    headers.push("Connection", "Upgrade");
    headers.push("Sec-WebSocket-Key", key.clone());
    headers.push("Sec-WebSocket-Version", "13");
    headers.push("Sec-WebSocket-Protocol", protocol);
    headers.push("X-Client-ID", config.client_id.clone());
    if let Some(group) = &config.group {
        headers.push("X-Group-ID", group.clone());
    }
    // With JSON, the credentials go in the `auth` message instead.
    if config.codec == Codec::Binary {
        match &config.credentials {
            Credentials::Basic { username, password } => headers.push(
                "Authorization",
                basic_authorization(username.as_bytes(), password.expose().as_bytes()),
            ),
            Credentials::Bearer(token) => {
                headers.push("Authorization", format!("Bearer {}", token.expose()));
            }
            Credentials::None => {}
        }
    }
    let request = RequestHead {
        method: "GET".into(),
        target: config.gateway.path.clone(),
        version: 1,
        headers,
    };
    let mut out = Vec::with_capacity(request.serialized_len());
    request.write_to_buf(&mut out);
    io.write_all(&out).await.map_err(HeadError::Io)?;
    io.flush().await.map_err(HeadError::Io)?;

    let (response, rest) = read_response(io, &Limits::default()).await?;
    match response.status {
        101 => {}
        status @ (401 | 403) => {
            return Err(DialError::Unauthorized {
                status,
                reason: response.reason,
            });
        }
        status => {
            return Err(DialError::Status {
                status,
                reason: response.reason,
            });
        }
    }
    let h = &response.headers;
    if !has_token(h, "upgrade", "websocket") || !has_token(h, "connection", "upgrade") {
        return Err(DialError::Invalid("Upgrade/Connection headers missing"));
    }
    if h.get_str("sec-websocket-accept").map(str::trim) != Some(accept_key(&key).as_str()) {
        return Err(DialError::Invalid("wrong Sec-WebSocket-Accept"));
    }
    if h.get("sec-websocket-extensions").is_some() {
        return Err(DialError::Invalid("extension not offered"));
    }
    match h.get_str("sec-websocket-protocol").map(str::trim) {
        Some(chosen) if chosen == protocol => {}
        // AnyProxy's own gateway selects no subprotocol; its JSON is what was asked for.
        None if config.codec == Codec::AnyProxyJson => {}
        _ => {
            return Err(DialError::Invalid(
                "the gateway did not choose the subprotocol",
            ));
        }
    }
    Ok(rest)
}

impl AsyncRead for GatewayIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for GatewayIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
