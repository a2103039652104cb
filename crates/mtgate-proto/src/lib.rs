//! Sans-IO wire codecs for mtgate.
//!
//! Nothing in this crate touches a socket, a clock or a runtime. Parsers take bytes (and the
//! current time where it matters) and return a value, "need more bytes" (`Ok(None)`), or a typed
//! error. Encoders write into caller-provided buffers. The server (`mtgate`) and the client
//! library (`mtgate-client`) drive these state machines from their sockets, and the fuzz targets
//! drive them from arbitrary input.
//!
//! # Layout
//!
//! - [`mtproto`]: the Telegram MTProto proxy protocol: secrets and links, the obfuscated2 init
//!   header and its AES-256-CTR streams, the abridged / intermediate / padded-intermediate
//!   transports, fake TLS (ClientHello validation, ServerHello, record layer), the DC index,
//!   and the anti-replay cache.
//! - [`hex`]: lowercase hex helpers shared by the codecs.

#![forbid(unsafe_code)]

pub mod hex;
pub mod mtproto;
