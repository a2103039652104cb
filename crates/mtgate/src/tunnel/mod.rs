//! The reverse tunnel: agents behind NAT dial out to a gateway over WebSocket (+TLS), and the
//! gateway reaches targets through them.
//!
//! - [`mux`]: many streams over one WebSocket, with per-stream byte-credit flow control,
//!   half-close, fair scheduling and liveness; the wire frames live in
//!   `mtgate_proto::tunnel`.
//! - [`gateway`]: the gateway's side: agent authentication, upgrade checks and the registry
//!   of connected agents that the proxy listeners open streams through (the listener itself
//!   is `inbound::gateway`).

pub mod gateway;
pub mod mux;
