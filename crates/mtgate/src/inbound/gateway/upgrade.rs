//! From an accepted TCP connection to an authenticated WebSocket positioned after the 101:
//! TLS (with an optional client certificate), the upgrade request, the lockout, the
//! credentials (a certificate identity, then `Authorization`), and for AnyProxy JSON without
//! an `Authorization` header the first message, `auth`, answered with `auth_response`.

use std::net::SocketAddr;

use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use mtgate_proto::http1::Limits;
use mtgate_proto::tunnel::anyproxy::{MAX_MESSAGE_LEN, Message};
use mtgate_proto::tunnel::{SUBPROTOCOL_ANYPROXY_JSON, SUBPROTOCOL_V1};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{GatewayService, REFUSAL_TIMEOUT};
use crate::config::gateway::GatewayConfig;
use crate::inbound::websocket::handshake::switching_protocols;
use crate::inbound::websocket::head_io;
use crate::inbound::websocket::prefixed::Prefixed;
use crate::inbound::websocket::session::Io;
use crate::server::Shared;
use crate::tunnel::gateway::auth::{AgentAuthenticator, AuthRequest, Chain, Granted, Presented};
use crate::tunnel::gateway::handshake::{self, MAX_CLIENT_ID, Refusal};
use crate::tunnel::mux::Codec;

/// The byte stream under an agent's WebSocket (TCP or TLS, with early bytes replayed).
pub type AgentIo = Box<dyn Io>;

/// WebSocket close code for a policy violation (RFC 6455 §7.4.1).
const CLOSE_POLICY: u16 = 1008;

/// An agent whose upgrade and authentication succeeded.
pub struct Accepted {
    /// The WebSocket, after the 101 (and after the `auth` exchange for JSON).
    pub ws: WebSocket<AgentIo>,
    /// The wire protocol.
    pub codec: Codec,
    /// Its name for logs and the admin API.
    pub protocol_name: &'static str,
    /// The agent's id (given, or made from its identity and address).
    pub client_id: String,
    /// The group it joined.
    pub group: String,
    /// Who it authenticated as (never a secret).
    pub identity: String,
}

/// Runs TLS, the upgrade and authentication. `None` when refused (answered and counted).
pub async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    service: &GatewayService,
    shared: &Shared,
    config: &GatewayConfig,
    auth: &Chain,
) -> Option<Accepted> {
    let _ = tcp.set_nodelay(true);
    let (mut io, certificate): (AgentIo, Option<String>) = match &service.tls {
        None => (Box::new(tcp), None),
        Some(tls) => match tokio_rustls::TlsAcceptor::from(tls.clone())
            .accept(tcp)
            .await
        {
            Ok(stream) => {
                let identity = if config.mtls {
                    stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| certificate_identity(leaf.as_ref()))
                } else {
                    None
                };
                (Box::new(stream), identity)
            }
            Err(e) => {
                tracing::debug!(gateway = service.name, %peer, error = %e, "TLS handshake failed");
                service.count(shared, "tls");
                return None;
            }
        },
    };
    let refuse = |refusal: Refusal| {
        service.count(shared, refusal.label());
        tracing::debug!(gateway = service.name, %peer, %refusal, "agent refused");
        refusal
    };
    let (request, early) = match head_io::read_request(&mut io, &Limits::default()).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(gateway = service.name, %peer, error = %e, "no upgrade request");
            let refusal = refuse(Refusal::BadRequest("malformed request"));
            answer(&mut io, refusal).await;
            return None;
        }
    };
    let upgrade = match handshake::check(&request, &config.path) {
        Ok(upgrade) => upgrade,
        Err(refusal) => {
            answer(&mut io, refuse(refusal)).await;
            return None;
        }
    };
    let ip = peer.ip();
    if service.lockout.is_locked(ip, Instant::now()) {
        answer(&mut io, refuse(Refusal::Banned)).await;
        return None;
    }
    let offered: Vec<Presented> = certificate
        .map(Presented::Certificate)
        .into_iter()
        .chain(upgrade.presented.clone())
        .collect();
    let mut granted = None;
    for presented in &offered {
        let request = AuthRequest {
            presented: presented.clone(),
            client_id: upgrade.client_id.clone(),
            peer,
        };
        if let Some(g) = auth.check(&request).await {
            granted = Some((g, presented.identity().to_owned()));
            break;
        }
    }
    let deferred = offered.is_empty() && upgrade.codec == Codec::AnyProxyJson;
    if granted.is_none() && !deferred {
        if !offered.is_empty() {
            failed(
                service,
                peer,
                offered.last().map_or("", Presented::identity),
            );
        }
        answer(&mut io, refuse(Refusal::Unauthorized)).await;
        return None;
    }
    if let Some((g, _)) = &granted
        && !group_matches(upgrade.group.as_deref(), &g.group, service, peer)
    {
        answer(&mut io, refuse(Refusal::WrongGroup)).await;
        return None;
    }
    let answer_101 = switching_protocols(&upgrade.key, upgrade.protocol);
    if io.write_all(&answer_101).await.is_err() || io.flush().await.is_err() {
        return None;
    }
    let io: AgentIo = if early.is_empty() {
        io
    } else {
        Box::new(Prefixed::new(early, io))
    };
    let mut ws = WebSocket::after_handshake(io, fastwebsockets::Role::Server);
    let mut client_id = upgrade.client_id;
    let (granted, identity) = match granted {
        Some(pair) => pair,
        None => {
            ws.set_max_message_size(MAX_MESSAGE_LEN);
            let (g, identity, id) = json_auth(
                &mut ws,
                peer,
                service,
                shared,
                auth,
                upgrade.group.as_deref(),
            )
            .await?;
            client_id = client_id.or(id);
            (g, identity)
        }
    };
    service.lockout.success(ip);
    let Granted { group } = granted;
    let client_id = client_id.unwrap_or_else(|| format!("{identity}@{}", ip.to_canonical()));
    let protocol_name = match upgrade.codec {
        Codec::Binary => SUBPROTOCOL_V1,
        Codec::AnyProxyJson => SUBPROTOCOL_ANYPROXY_JSON,
    };
    Some(Accepted {
        ws,
        codec: upgrade.codec,
        protocol_name,
        client_id,
        group,
        identity,
    })
}

/// Whether the group the agent asked for (`X-Group-ID`), if any, is the one its credentials
/// grant; a mismatch is refused so a misconfigured agent is noticed, not silently regrouped.
fn group_matches(
    asked: Option<&str>,
    granted: &str,
    service: &GatewayService,
    peer: SocketAddr,
) -> bool {
    match asked {
        Some(asked) if asked != granted => {
            tracing::warn!(gateway = service.name, %peer, asked = ?asked, granted, "agent asked for another group than its credentials grant");
            false
        }
        _ => true,
    }
}

/// Counts a failed authentication towards the lockout and logs it (the identity escaped,
/// never the secret).
fn failed(service: &GatewayService, peer: SocketAddr, identity: &str) {
    let config = service.config();
    let locked = service
        .lockout
        .failure(peer.ip(), &config.lockout, Instant::now());
    tracing::info!(gateway = service.name, %peer, identity = ?identity, "agent authentication failed");
    if locked {
        tracing::warn!(gateway = service.name, %peer, lockout = ?config.lockout.duration, "too many agent authentication failures: address locked out");
    }
}

/// The AnyProxy document's first message: `auth` → `auth_response`. A refusal is answered
/// with `success: false`, then a 1008 close.
async fn json_auth(
    ws: &mut WebSocket<AgentIo>,
    peer: SocketAddr,
    service: &GatewayService,
    shared: &Shared,
    auth: &Chain,
    asked_group: Option<&str>,
) -> Option<(Granted, String, Option<String>)> {
    let frame = match ws.read_frame().await {
        Ok(frame) => frame,
        Err(e) => {
            tracing::debug!(gateway = service.name, %peer, error = %e, "no auth message");
            service.count(shared, "bad_auth_message");
            return None;
        }
    };
    let message = match frame.opcode {
        OpCode::Text | OpCode::Binary => Message::decode(&frame.payload).ok(),
        _ => None,
    };
    let Some(Message::Auth {
        username,
        password,
        client_id,
    }) = message
    else {
        service.count(shared, "bad_auth_message");
        let _ = reply(ws, false, "the first message must be auth").await;
        return None;
    };
    let client_id = (!client_id.is_empty()
        && client_id.len() <= MAX_CLIENT_ID
        && !client_id.chars().any(char::is_control))
    .then_some(client_id);
    let request = AuthRequest {
        presented: Presented::Basic {
            username: username.clone(),
            password: password.into_bytes(),
        },
        client_id: client_id.clone(),
        peer,
    };
    match auth.check(&request).await {
        Some(granted) if !group_matches(asked_group, &granted.group, service, peer) => {
            service.count(shared, Refusal::WrongGroup.label());
            let _ = reply(ws, false, &Refusal::WrongGroup.to_string()).await;
            None
        }
        Some(granted) => {
            reply(ws, true, "authenticated").await.ok()?;
            Some((granted, username, client_id))
        }
        None => {
            failed(service, peer, &username);
            service.count(shared, Refusal::Unauthorized.label());
            let _ = reply(ws, false, "authentication failed").await;
            None
        }
    }
}

async fn reply(
    ws: &mut WebSocket<AgentIo>,
    success: bool,
    message: &str,
) -> Result<(), fastwebsockets::WebSocketError> {
    let text = Message::AuthResponse {
        success,
        message: message.to_owned(),
    }
    .to_json();
    ws.write_frame(Frame::text(Payload::Owned(text.into_bytes())))
        .await?;
    if !success {
        ws.write_frame(Frame::close(CLOSE_POLICY, message.as_bytes()))
            .await?;
    }
    ws.flush().await
}

/// Writes a refusal and closes, within [`REFUSAL_TIMEOUT`].
async fn answer<W: AsyncWrite + Unpin + ?Sized>(io: &mut W, refusal: Refusal) {
    let writing = async {
        io.write_all(&refusal.response()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, writing).await;
}

/// A certificate's identity: its subject CN, else its first DNS SAN.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        return Some(cn.to_owned());
    }
    let san = cert.subject_alternative_name().ok().flatten()?;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        _ => None,
    })
}
