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
//! - [`socks5`]: SOCKS5 (RFC 1928) and username/password (RFC 1929): greeting, method
//!   selection, requests, replies for every address type, the UDP datagram header.
//! - [`socks4`]: SOCKS4 and SOCKS4a requests and replies.
//! - [`http1`]: HTTP/1.x request and response heads (CONNECT and forward proxying), Basic
//!   proxy credentials, size caps.
//! - [`proxy_protocol`]: the HAProxy PROXY protocol header, v1 (text) and v2 (binary).
//! - [`tunnel`]: the reverse tunnel's binary frames (streams, windows, half-close) between
//!   gateway and agent.
//! - [`address`]: the destination type the proxy codecs share (socket address or domain).
//! - [`hex`]: lowercase hex helpers shared by the codecs.
//!
//! The proxy codecs are symmetric: each message parses (server side for requests, client side
//! for replies) and serialises (`write_to_buf`), so the client library and the server's
//! listeners use the same code.

#![forbid(unsafe_code)]

pub mod address;
pub mod hex;
pub mod http1;
pub mod mtproto;
pub mod proxy_protocol;
pub mod socks4;
pub mod socks5;
pub mod tunnel;
