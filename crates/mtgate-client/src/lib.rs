//! Outbound connections for mtgate and for anyone who needs to reach a host directly or
//! through proxies.
//!
//! # Layout
//!
//! - [`direct`]: resolve a name and dial it with happy eyeballs (RFC 8305) under one deadline,
//!   with TCP_NODELAY and keepalive set.
//! - [`error`]: typed errors that say which stage failed and whether another attempt elsewhere
//!   is safe.

#![forbid(unsafe_code)]

pub mod direct;
pub mod error;

pub use direct::{DialOptions, connect, connect_addrs, resolve};
pub use error::{ConnectError, Stage};
