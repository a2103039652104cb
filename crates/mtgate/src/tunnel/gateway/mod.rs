//! The gateway's side of the reverse tunnel.
//!
//! - [`auth`]: who an agent is and which group it joins ([`auth::AgentAuthenticator`]:
//!   inline credentials, a credentials file, an external HTTP check);
//! - [`error`]: why a stream through agents failed, as SOCKS replies and HTTP statuses;
//! - [`flows`]: UDP flows through agents (one tunnel UDP stream per flow);
//! - [`handshake`]: the checks of an agent's upgrade request and the refusals;
//! - [`registry`]: groups → agents → replicas, and opening streams through them.
//!
//! The listener that accepts agents is `inbound::gateway`; the SOCKS5/HTTP listeners reach
//! the registry through `outbound::route` when they have `gateway = "<name>"`.

pub mod auth;
pub mod error;
pub mod flows;
pub mod handshake;
pub mod registry;

pub use error::AgentError;
pub use registry::{GatewaySet, Registry};
