//! The reverse tunnel's wire protocol, version 1: one WebSocket binary message carries one
//! frame (a 6-byte header and a payload), many streams share one WebSocket, and every stream
//! has its own byte-credit window. `docs/tunnel-protocol.md` is the full description.
//!
//! - [`frame`]: the header, the frame kinds and their payloads, encoding and decoding.
//! - [`anyproxy`]: AnyProxy's documented JSON messages, for the compatibility subprotocol.
//! - [`code`]: the error codes carried by OPEN_ERR, RST and GOAWAY.
//!
//! All integers are big-endian. Stream 0 is the connection itself (PING, PONG, GOAWAY,
//! LISTEN, LISTEN_RESULT); the gateway opens even stream ids, the agent odd ones.

pub mod anyproxy;
pub mod code;
pub mod frame;

#[cfg(test)]
mod tests;

pub use code::ErrorCode;
pub use frame::{Frame, FrameError, Network, OpenTarget};

/// The WebSocket subprotocol of the binary protocol described here.
pub const SUBPROTOCOL_V1: &str = "mtgate-tunnel-v1";

/// The WebSocket subprotocol of the JSON messages of AnyProxy's API document.
pub const SUBPROTOCOL_ANYPROXY_JSON: &str = "anyproxy-json";

/// Bytes in a frame header: kind, flags, stream id.
pub const HEADER_LEN: usize = 6;

/// Largest DATA payload a peer may send; larger frames are a protocol error.
pub const MAX_DATA_LEN: usize = 32 * 1024;

/// Largest frame of any kind (a DATA frame with its header); larger messages are refused
/// before they are read.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_DATA_LEN;

/// The receive window every stream starts with, in each direction, without any WINDOW frame.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// Stream id of the connection-level frames.
pub const CONNECTION_STREAM: u32 = 0;
