//! Middle-proxy ("ME") mode: the RPC protocol between an MTProto proxy and Telegram's middle
//! proxies, which is what carries the ad tag (sponsored channel).
//!
//! A connection to a middle proxy, from the proxy's side:
//!
//! 1. Plaintext [`handshake::Nonce`] both ways in [`frame`]s numbered −2; the key selector is
//!    the start of the [`secret::ProxySecret`].
//! 2. AES-256-CBC keys for both directions from the nonces, the timestamp, both addresses and
//!    ports and the secret ([`crypto`]); every later write is padded to 16 bytes.
//! 3. [`handshake::Handshake`] both ways, numbered −1.
//! 4. Frames numbered from 0 carry, multiplexed by a 64-bit connection id per client,
//!    [`message::ProxyReq`] towards the middle proxy and [`message::MeMessage`]s back.
//!
//! [`stream`] puts steps 1–4 together as a byte stream each way. Which middle proxies serve
//! which DC comes from `proxy-multi.conf` ([`proxy_config`]).

pub mod consts;
pub mod crypto;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod proxy_config;
pub mod secret;
pub mod stream;
