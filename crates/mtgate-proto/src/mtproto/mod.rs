//! The MTProto proxy protocol ("MTProxy"), byte by byte.
//!
//! How a client reaches Telegram through the proxy:
//!
//! 1. The client knows a [`secret::ClientSecret`] from a link: a 16-byte key, optionally marked
//!    `dd` (padded transport) or `ee` (fake TLS, followed by the cover domain).
//! 2. With fake TLS, the client first sends a TLS ClientHello whose random field is an
//!    HMAC-SHA256 of the hello under the key, XORed with a timestamp
//!    ([`faketls::client_hello`]). The proxy answers with a ServerHello, a ChangeCipherSpec and
//!    one ApplicationData record ([`faketls::server_hello`]); afterwards everything travels in
//!    ApplicationData records ([`faketls::record`]).
//! 3. The client sends the 64-byte obfuscated2 init header ([`obfs2`]). Both sides derive
//!    AES-256-CTR keys from it and the key; bytes 56..64 carry the transport tag and DC index.
//! 4. Inside the encrypted stream the client speaks one of the [`transport`]s.
//! 5. In direct mode the proxy opens its own obfuscated2 stream (no key) to the DC named by
//!    the [`dc::DcId`] and relays. In middle-proxy mode it instead decodes the client's frames
//!    and forwards them over shared connections to Telegram's middle proxies ([`middle`]).
//!
//! In middle-proxy mode a client may also skip steps 1–4 and send each MTProto message as an
//! HTTP request ([`http`]).

pub mod dc;
pub mod faketls;
pub mod http;
pub mod middle;
pub mod obfs2;
pub mod replay;
pub mod secret;
pub mod transport;
