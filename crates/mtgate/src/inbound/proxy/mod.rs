//! What the SOCKS5, HTTP and mixed listeners share.
//!
//! A connection's life: the accept loop takes places in the global and listener gates
//! ([`accept`]); the [`prelude`] reads a PROXY protocol header from trusted peers and, on
//! SOCKS and mixed listeners, the first byte that tells the protocol; the protocol's handler
//! ([`crate::inbound::socks5`], [`crate::inbound::http`]) authenticates, checks the rules and
//! dials through [`crate::outbound`]; the [`tunnel`] relays. The listener's users, rules and
//! upstreams live in an [`arc_swap::ArcSwap`] ([`service`]) so a reload changes them for new
//! connections without touching open ones.

pub mod accept;
pub mod context;
pub mod prelude;
pub mod service;
pub mod touching;
pub mod tunnel;

pub use accept::accept_loop;
pub use context::Ctx;
pub use service::{ProxyService, ProxyState};
