//! AnyProxy's JSON messages, exactly as its API document shapes them: an envelope
//! `{"type": <string>, "data": {…}}` per WebSocket text message, stream data as standard
//! base64 with padding. mtgate speaks this on the `anyproxy-json` subprotocol (and when a
//! client offers no subprotocol), so agents and gateways written from that document work with
//! mtgate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest JSON message accepted: a 32 KiB payload in base64 plus the envelope.
pub const MAX_MESSAGE_LEN: usize = 48 * 1024;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Message {
    /// Agent → gateway, first message: the credentials.
    Auth {
        /// The user name (the agent group for mtgate).
        username: String,
        /// The password.
        password: String,
        /// The agent's id.
        client_id: String,
    },
    /// Gateway → agent: the answer to `auth`.
    AuthResponse {
        /// Whether the agent is in.
        success: bool,
        /// Detail.
        #[serde(default)]
        message: String,
    },
    /// Gateway → agent: open a connection.
    Connect {
        /// The gateway's id for the connection.
        connection_id: String,
        /// The target's name or IP literal.
        target_host: String,
        /// The target's port.
        target_port: u16,
        /// `"tcp"`.
        #[serde(default = "tcp")]
        protocol: String,
    },
    /// Agent → gateway: the answer to `connect`.
    ConnectResponse {
        /// The connection.
        connection_id: String,
        /// Whether the target is connected.
        success: bool,
        /// Detail (the failure).
        #[serde(default)]
        message: String,
    },
    /// Both ways: connection bytes.
    Data {
        /// The connection.
        connection_id: String,
        /// The bytes (base64 on the wire).
        #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
        payload: Vec<u8>,
    },
    /// Both ways: the connection is over.
    Close {
        /// The connection.
        connection_id: String,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Agent → gateway: liveness.
    Ping {
        /// Unix seconds (echoed in the pong).
        timestamp: i64,
    },
    /// Gateway → agent: the answer to `ping`.
    Pong {
        /// The ping's timestamp.
        timestamp: i64,
    },
    /// Both ways: an error, about one connection or the whole session.
    Error {
        /// One of AUTH_FAILED, INVALID_MESSAGE, CONNECTION_FAILED, FORBIDDEN_HOST,
        /// RATE_LIMITED, INTERNAL_ERROR.
        code: String,
        /// Detail.
        #[serde(default)]
        message: String,
        /// The connection it is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection_id: Option<String>,
    },
}

/// Why a message is not a valid AnyProxy message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnyProxyError {
    /// Over [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    /// Not JSON, an unknown type, or a missing or mistyped field.
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl Message {
    /// Decodes one WebSocket message.
    pub fn decode(message: &[u8]) -> Result<Self, AnyProxyError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(AnyProxyError::TooLarge(message.len()));
        }
        serde_json::from_slice(message).map_err(|e| AnyProxyError::Invalid(e.to_string()))
    }

    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages always serialise")
    }

    /// The connection the message is about, if any.
    pub fn connection_id(&self) -> Option<&str> {
        match self {
            Self::Connect { connection_id, .. }
            | Self::ConnectResponse { connection_id, .. }
            | Self::Data { connection_id, .. }
            | Self::Close { connection_id, .. } => Some(connection_id),
            Self::Error { connection_id, .. } => connection_id.as_deref(),
            _ => None,
        }
    }
}

fn tcp() -> String {
    "tcp".to_owned()
}

fn to_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_shapes_decode() {
        let auth = br#"{"type":"auth","data":{"username":"g","password":"p","client_id":"c1"}}"#;
        assert_eq!(
            Message::decode(auth).unwrap(),
            Message::Auth {
                username: "g".into(),
                password: "p".into(),
                client_id: "c1".into()
            }
        );
        let connect = br#"{"type":"connect","data":{"connection_id":"x","target_host":"example.org","target_port":443,"protocol":"tcp"}}"#;
        assert!(matches!(
            Message::decode(connect).unwrap(),
            Message::Connect {
                target_port: 443,
                ..
            }
        ));
        let data = br#"{"type":"data","data":{"connection_id":"x","payload":"aGVsbG8="}}"#;
        assert_eq!(
            Message::decode(data).unwrap(),
            Message::Data {
                connection_id: "x".into(),
                payload: b"hello".to_vec()
            }
        );
        let error = br#"{"type":"error","data":{"code":"FORBIDDEN_HOST","message":"no","connection_id":"x"}}"#;
        assert_eq!(Message::decode(error).unwrap().connection_id(), Some("x"));
    }

    #[test]
    fn encoding_uses_the_envelope_and_base64() {
        let json = Message::Data {
            connection_id: "7".into(),
            payload: vec![0, 255],
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"data","data":{"connection_id":"7","payload":"AP8="}}"#
        );
        let pong = Message::Pong { timestamp: 17 }.to_json();
        assert_eq!(pong, r#"{"type":"pong","data":{"timestamp":17}}"#);
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            &br#"{"type":"nope","data":{}}"#[..],
            br#"{"type":"data","data":{"connection_id":"x","payload":"***"}}"#,
            br#"{"type":"connect","data":{"connection_id":"x","target_host":"h","target_port":70000}}"#,
            br#"{"data":{}}"#,
            b"not json",
        ] {
            assert!(Message::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let big = vec![b' '; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Message::decode(&big),
            Err(AnyProxyError::TooLarge(MAX_MESSAGE_LEN + 1))
        );
    }
}
