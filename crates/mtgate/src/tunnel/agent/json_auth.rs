//! The `anyproxy-json` login: the agent's first message is `auth`, and the gateway answers
//! `auth_response` (or an `error` with `AUTH_FAILED`) before anything else moves.

use fastwebsockets::{Frame, OpCode, Payload};
use mtgate_proto::tunnel::anyproxy::Message;

use super::config::{AgentConfig, Credentials};
use super::dial::{DialError, GatewaySocket};

/// Frames (pings, pongs) tolerated before the answer; the caller's timeout bounds the time.
const MAX_FRAMES_BEFORE_ANSWER: usize = 16;

/// Sends `auth` and waits for a successful `auth_response`.
pub async fn authenticate(ws: &mut GatewaySocket, config: &AgentConfig) -> Result<(), DialError> {
    let Credentials::Basic { username, password } = &config.credentials else {
        return Err(DialError::JsonAuth(
            "anyproxy-json needs username and password".into(),
        ));
    };
    let auth = Message::Auth {
        username: username.clone(),
        password: password.expose().to_owned(),
        client_id: config.client_id.clone(),
    };
    let text = auth.to_json().into_bytes();
    ws.write_frame(Frame::text(Payload::Owned(text)))
        .await
        .map_err(|e| DialError::JsonAuth(format!("sending auth: {e}")))?;
    for _ in 0..MAX_FRAMES_BEFORE_ANSWER {
        let frame = ws
            .read_frame()
            .await
            .map_err(|e| DialError::JsonAuth(format!("waiting for auth_response: {e}")))?;
        match frame.opcode {
            OpCode::Text | OpCode::Binary => {}
            OpCode::Close => {
                return Err(DialError::AuthRejected(
                    "the gateway closed the connection".into(),
                ));
            }
            _ => continue,
        }
        return match Message::decode(&frame.payload) {
            Ok(Message::AuthResponse { success: true, .. }) => Ok(()),
            Ok(Message::AuthResponse { message, .. }) => Err(DialError::AuthRejected(message)),
            Ok(Message::Error { code, message, .. }) => {
                Err(DialError::AuthRejected(format!("{code}: {message}")))
            }
            Ok(other) => Err(DialError::JsonAuth(format!(
                "expected auth_response, got {:?}",
                message_type(&other)
            ))),
            Err(e) => Err(DialError::JsonAuth(e.to_string())),
        };
    }
    Err(DialError::JsonAuth("no auth_response".into()))
}

/// The `type` of a message, without its contents (which may hold payload bytes).
fn message_type(message: &Message) -> &'static str {
    match message {
        Message::Auth { .. } => "auth",
        Message::AuthResponse { .. } => "auth_response",
        Message::Connect { .. } => "connect",
        Message::ConnectResponse { .. } => "connect_response",
        Message::Data { .. } => "data",
        Message::Close { .. } => "close",
        Message::Ping { .. } => "ping",
        Message::Pong { .. } => "pong",
        Message::Error { .. } => "error",
    }
}
