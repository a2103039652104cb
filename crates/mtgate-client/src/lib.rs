//! Outbound connections for mtgate and for anyone who needs to reach a host directly or
//! through SOCKS4/4a/5 and HTTP(S) proxies, chains of them, or pools with failover.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mtgate_client::{Chain, Proxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // One proxy; `socks5h` lets the proxy resolve the name.
//! let proxy: Proxy = "socks5h://user:p%40ss@127.0.0.1:1080".parse()?;
//! let mut stream = proxy.connect(("example.com", 80)).await?;
//! stream.write_all(b"HEAD / HTTP/1.0\r\n\r\n").await?;
//!
//! // Two hops of different kinds; the stream says which hops it used.
//! let chain = Chain::from_urls(&["http://127.0.0.1:8888", "socks5://127.0.0.1:1080"])?;
//! let stream = chain.connect("example.com:443").await?;
//! println!("via {:?} in {:?}", stream.info().hops, stream.info().connect_time);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`proxy`]: [`Proxy`] and its URL form (`socks4`, `socks4a`, `socks5`, `socks5h`, `http`,
//!   `https`), percent-decoded credentials, IPv6 literals.
//! - [`chain`]: [`Chain`] of any length and mix of kinds; also BIND and UDP ASSOCIATE.
//! - [`stream`]: [`ProxyStream`], the connected stream (TCP or TLS underneath), and
//!   [`ConnectionInfo`] (addresses, hops, timing, bytes moved).
//! - [`pool`]: [`Pool`] with strategies, passive ejection, active health checks, retries with
//!   full-jitter backoff, live statistics, runtime add/remove.
//! - [`udp`]: [`Socks5Datagram`], UDP through a SOCKS5 relay. [`bind`]: [`BindListener`].
//! - [`framing`]: 4-byte big-endian length-prefixed packets, as a codec or two functions.
//! - [`http_request`]: HTTP/1.1 requests over a tunnel with hyper's client.
//! - [`mod@bridge`]: stdin/stdout ↔ target, with exit codes (for `mtgate connect`).
//! - [`direct`]: resolve and dial with happy eyeballs (RFC 8305) under one deadline.
//! - [`error`]: [`ConnectError`]: the [`Stage`] that failed, who is to [`Blame`], whether a
//!   retry elsewhere is safe, the SOCKS reply or HTTP status (with the 407 challenge).
//!
//! The wire codecs live in `mtgate-proto` (sans-IO) and are shared with mtgate's server.
//!
//! # Behaviour worth knowing
//!
//! - **One deadline per attempt** ([`ConnectOptions::timeout`]) covers resolving and
//!   dialling the first proxy, TLS, and every hop's negotiation, authentication and reply. A
//!   timeout names the stage it interrupted.
//! - **No byte is lost**: whatever the last proxy sent after its reply (a server that speaks
//!   first, right behind `200 Connection established`) is returned by the first reads.
//! - **Happy eyeballs** to the first proxy over all of its addresses.
//! - **DNS where the scheme says**: `socks4`/`socks5` resolve the target here, `socks4a`,
//!   `socks5h` and `http(s)` let the proxy resolve it.
//! - **Credentials are never logged**; `Display`/`Debug` of proxies redact passwords.
//!
//! # Compared with other client libraries
//!
//! | | mtgate-client | PyRoxi 1.0.0 | tokio-socks 0.5 | python-socks 3.2 |
//! |---|---|---|---|---|
//! | I/O model | async (tokio) | blocking sockets in a thread pool | async (tokio) | sync + asyncio/trio/curio/anyio |
//! | SOCKS4 / 4a | yes / yes | no / no | yes / yes | yes / yes |
//! | SOCKS5 CONNECT, user/pass | yes | yes | yes | yes |
//! | local vs proxy DNS | `socks5` / `socks5h` | domain ⇒ proxy | proxy | `rdns` flag |
//! | HTTP CONNECT | yes, bytes after the reply kept | yes, bytes after the reply dropped | no | yes |
//! | TLS to the proxy (`https://`) | yes (rustls), also mid-chain | no | no | yes (`proxy_ssl`, v2 API) |
//! | IPv6 proxy address | yes, happy eyeballs | no (`AF_INET` only) | yes | yes |
//! | URL parsing | yes, percent-decoded | no | no | `Proxy.from_url` |
//! | one deadline over dial+auth+reply | yes, stage reported | per-socket timeout | no (wrap it yourself) | `timeout` |
//! | chains | any length, any kinds, hops reported | advertised, does not chain | by nesting streams | v2 `ProxyChain` (the v1 one is deprecated) |
//! | UDP ASSOCIATE | yes | no | no | no |
//! | BIND | yes | no | yes | no |
//! | typed errors | stage, blame, retry-safety, REP, HTTP status + 407 challenge | three unrelated exceptions | REP codes | `ProxyError` code |
//! | pool / strategies | RR, smooth weighted RR, weighted random, least in-flight, fastest (EWMA + hysteresis), first-available; backups | RR, random, least-used, fastest, sequential | no | no |
//! | health checks | active to a configured target (connect or HTTP), rise/fall; passive ejection with backoff | hard-coded `www.google.com:80` | no | no |
//! | retries | bounded, full-jitter exponential backoff, only before the first byte | linear sleep | no | no |
//! | statistics | live per member: in flight, successes, failures, EWMA, state | counts, average time | no | no |
//! | length-prefixed framing | codec + functions, 10 MiB default cap | `send_packet`/`receive_packet` | no | no |
//! | HTTP request over a tunnel | hyper client | hand-built request, read to EOF | no | no |
//! | connection info | addresses, hops, timing, bytes moved | `get_connection_info()` | no | no |

#![forbid(unsafe_code)]

pub mod bind;
pub mod bridge;
pub mod chain;
mod connector;
pub mod direct;
pub mod error;
pub mod framing;
mod handshake;
pub mod http_request;
pub mod pool;
pub mod proxy;
pub mod stream;
mod target;
mod tls;
mod transport;
pub mod udp;

pub use bind::BindListener;
pub use bridge::{BridgeError, Transferred, bridge, bridge_stdio};
pub use chain::Chain;
pub use connector::ConnectOptions;
pub use direct::{DialOptions, connect, connect_addrs, resolve};
pub use error::{Blame, ConnectError, Stage};
pub use framing::{FramingError, LengthPrefixed, recv_packet, send_packet};
pub use mtgate_proto::address::Address;
pub use pool::{Pool, Strategy, Upstream};
pub use proxy::{Credentials, Kind, Proxy, ProxyUrlError};
pub use stream::{ConnectionInfo, InFlight, ProxyStream, TcpTunnel};
pub use target::IntoTarget;
pub use tls::{BackendTls, default_tls_config};
pub use udp::Socks5Datagram;

#[cfg(test)]
mod tests {
    /// Everything a server hands to spawned tasks must be `Send` (and shared state `Sync`).
    #[test]
    fn public_types_are_thread_safe() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<crate::ProxyStream>();
        send::<crate::TcpTunnel>();
        send::<crate::BindListener>();
        send_sync::<crate::Socks5Datagram>();
        send_sync::<crate::Pool>();
        send_sync::<crate::Chain>();
        send_sync::<crate::Proxy>();
        send_sync::<crate::ConnectError>();
        send_sync::<crate::pool::HealthTask>();
    }
}
