//! Where connections go out: the destinations of SOCKS and HTTP proxy clients, checked against
//! the rules and dialled directly or through an upstream ([`route`]); the named upstream pools
//! ([`pools`]) and the client key their hashing strategies use ([`client_key`]); and what is
//! said to a backend before the client's bytes ([`proxy_header`]).

pub mod client_key;
pub mod pools;
pub mod proxy_header;
pub mod route;

pub use client_key::ClientKey;
pub use pools::{PoolEntry, PoolSet};
pub use route::{Dialed, OutboundError, Route, allowed_addresses, connect};
