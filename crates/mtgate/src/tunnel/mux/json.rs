//! The JSON protocol of AnyProxy's API document, translated to and from frames, so the rest of
//! the multiplexer only knows frames. The translation is lossy where the JSON protocol is
//! poorer: no WINDOW (no flow control on the wire), no FIN (a stream ends with one `close`),
//! no GOAWAY and no LISTEN.

use std::collections::{HashMap, VecDeque};

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::anyproxy::Message;
use mtgate_proto::tunnel::{ErrorCode, Frame, Network, OpenTarget};

/// Names of finished streams kept for frames still queued about them (a refusal, a close).
const RETIRED: usize = 4096;

/// Connection ids: the JSON protocol names connections with strings; frames number them.
#[derive(Debug, Default)]
pub(super) struct JsonIds {
    by_name: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
    retired: VecDeque<(u32, String)>,
    next_peer: u32,
}

impl JsonIds {
    /// The name of one of our streams (its number, unless the peer named it).
    fn name_of(&mut self, id: u32) -> String {
        if let Some(name) = self.by_id.get(&id) {
            return name.clone();
        }
        if let Some((_, name)) = self.retired.iter().rev().find(|(r, _)| *r == id) {
            return name.clone();
        }
        let name = id.to_string();
        self.by_name.insert(name.clone(), id);
        self.by_id.insert(id, name.clone());
        name
    }

    fn id_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// A number for a connection the peer opened, in the peer's id space; `None` if the
    /// name is already in use.
    fn adopt(&mut self, name: &str, peer_is_even: bool) -> Option<u32> {
        if self.by_name.contains_key(name) {
            return None;
        }
        if self.next_peer == 0 {
            self.next_peer = if peer_is_even { 2 } else { 1 };
        }
        let id = self.next_peer;
        self.next_peer = self.next_peer.checked_add(2)?;
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        Some(id)
    }

    /// Drops a finished stream's name.
    pub(super) fn forget(&mut self, id: u32) {
        if let Some(name) = self.by_id.remove(&id) {
            self.by_name.remove(&name);
            if self.retired.len() == RETIRED {
                self.retired.pop_front();
            }
            self.retired.push_back((id, name));
        }
    }
}

/// The messages a frame becomes (none for frames the JSON protocol cannot say).
pub(super) fn encode(frame: Frame, ids: &mut JsonIds) -> Vec<Message> {
    match frame {
        Frame::Open { stream, target } => {
            let (target_host, target_port) = host_and_port(&target.address);
            vec![Message::Connect {
                connection_id: ids.name_of(stream),
                target_host,
                target_port,
                protocol: target.network.as_str().to_owned(),
            }]
        }
        Frame::OpenOk { stream } => vec![Message::ConnectResponse {
            connection_id: ids.name_of(stream),
            success: true,
            message: String::new(),
        }],
        Frame::OpenErr {
            stream,
            code,
            reason,
        } => {
            let connection_id = ids.name_of(stream);
            let message = if reason.is_empty() {
                code.describe().to_owned()
            } else {
                reason
            };
            vec![
                Message::Error {
                    code: code.anyproxy_name().to_owned(),
                    message: message.clone(),
                    connection_id: Some(connection_id.clone()),
                },
                Message::ConnectResponse {
                    connection_id,
                    success: false,
                    message,
                },
            ]
        }
        Frame::Data { stream, payload } => vec![Message::Data {
            connection_id: ids.name_of(stream),
            payload: payload.to_vec(),
        }],
        Frame::Rst {
            stream,
            code,
            reason,
        } => vec![Message::Close {
            connection_id: ids.name_of(stream),
            reason: if reason.is_empty() {
                code.describe().to_owned()
            } else {
                reason
            },
        }],
        Frame::Ping { opaque } => vec![Message::Ping {
            timestamp: opaque as i64,
        }],
        Frame::Pong { opaque } => vec![Message::Pong {
            timestamp: opaque as i64,
        }],
        Frame::Window { .. }
        | Frame::Fin { .. }
        | Frame::GoAway { .. }
        | Frame::Listen { .. }
        | Frame::ListenResult { .. } => Vec::new(),
    }
}

/// What an incoming message means.
#[derive(Debug)]
pub(super) enum Decoded {
    /// The same as this frame.
    Frame(Frame),
    /// The peer closed this stream both ways (`close`).
    Closed(u32),
    /// Answer with this message (a `pong`, or an error about a bad `connect`).
    Reply(Message),
    /// The peer reports a session error (an `error` without a connection).
    SessionError(ErrorCode, String),
    /// Nothing to do (an unknown connection, a pong, a repeated auth).
    Nothing,
}

/// Translates one message; `peer_is_even` tells which ids the peer's streams get.
pub(super) fn decode(message: Message, ids: &mut JsonIds, peer_is_even: bool) -> Decoded {
    match message {
        Message::Connect {
            connection_id,
            target_host,
            target_port,
            protocol,
        } => {
            let refuse = |code: ErrorCode, message: &str| {
                Decoded::Reply(Message::ConnectResponse {
                    connection_id: connection_id.clone(),
                    success: false,
                    message: format!("{}: {message}", code.anyproxy_name()),
                })
            };
            let network = match protocol.as_str() {
                "tcp" | "" => Network::Tcp,
                "udp" => Network::Udp,
                _ => return refuse(ErrorCode::InvalidMessage, "unknown protocol"),
            };
            let Ok(address) = Address::from_host(&target_host, target_port) else {
                return refuse(ErrorCode::InvalidMessage, "invalid target_host");
            };
            let Some(stream) = ids.adopt(&connection_id, peer_is_even) else {
                return refuse(ErrorCode::InvalidMessage, "connection_id already in use");
            };
            Decoded::Frame(Frame::Open {
                stream,
                target: OpenTarget { network, address },
            })
        }
        Message::ConnectResponse {
            connection_id,
            success,
            message,
        } => match ids.id_of(&connection_id) {
            Some(stream) if success => Decoded::Frame(Frame::OpenOk { stream }),
            Some(stream) => Decoded::Frame(Frame::OpenErr {
                stream,
                code: ErrorCode::ConnectionRefused,
                reason: message,
            }),
            None => Decoded::Nothing,
        },
        Message::Data {
            connection_id,
            payload,
        } => match ids.id_of(&connection_id) {
            Some(stream) => Decoded::Frame(Frame::Data {
                stream,
                payload: payload.into(),
            }),
            None => Decoded::Nothing,
        },
        Message::Close { connection_id, .. } => match ids.id_of(&connection_id) {
            Some(stream) => Decoded::Closed(stream),
            None => Decoded::Nothing,
        },
        Message::Ping { timestamp } => Decoded::Reply(Message::Pong { timestamp }),
        Message::Error {
            code,
            message,
            connection_id,
        } => {
            let code = ErrorCode::from_anyproxy_name(&code);
            match connection_id.as_deref().map(|c| ids.id_of(c)) {
                Some(Some(stream)) => Decoded::Frame(Frame::OpenErr {
                    stream,
                    code,
                    reason: message,
                }),
                Some(None) => Decoded::Nothing,
                None => Decoded::SessionError(code, message),
            }
        }
        Message::Pong { .. } | Message::Auth { .. } | Message::AuthResponse { .. } => {
            Decoded::Nothing
        }
    }
}

/// AnyProxy's `target_host` and `target_port`: IPv6 literals without brackets.
fn host_and_port(address: &Address) -> (String, u16) {
    match address {
        Address::Socket(addr) => (addr.ip().to_string(), addr.port()),
        Address::Domain(name, port) => (name.clone(), *port),
    }
}
