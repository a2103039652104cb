//! Benchmark tooling for MTProto proxies: a fake Telegram DC, an MTProto proxy client and a
//! load generator. The `mtgate-bench` binary wraps them; integration tests of other crates use
//! the library directly (start a [`fake_dc::FakeDc`], point a proxy at it, drive it with
//! [`client::MtprotoConnection`], assert on [`fake_dc::FakeDcStats`]).
//!
//! # Layout
//!
//! - [`fake_dc`]: the server side of a DC as a proxy in direct mode sees it: a keyless
//!   obfuscated2 header, then frames echoed back in the client's transport (or raw bytes echoed
//!   back, for throughput runs).
//! - [`client`]: what a Telegram app does towards a proxy: fake TLS for `ee` secrets, the
//!   obfuscated2 header keyed by the secret, then framed payloads. Also connects straight to a
//!   (fake) DC without a key, the ceiling of every benchmark.
//! - [`fake_middle`]: the server side of Telegram's middle-proxy RPC protocol, which echoes
//!   RPC_PROXY_REQ payloads as RPC_PROXY_ANS and records flags, addresses and ad tags.
//! - [`load`]: the three measurements (relay throughput, handshakes per second, memory per
//!   idle connection) and their report.
//! - [`link`]: secrets in any link form, and the loopback-only rule for targets.
//! - [`limits`], [`rss`]: the file-descriptor limit and process memory, from the OS.
//!
//! Everything that waits on a peer has a timeout, every buffer has a cap, and every loop is
//! bounded in count and time.

#![forbid(unsafe_code)]

pub mod client;
pub mod fake_dc;
pub mod fake_middle;
pub mod limits;
pub mod link;
pub mod load;
pub mod rss;
