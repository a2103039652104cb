//! Where connections go out: the destinations of SOCKS and HTTP proxy clients, checked against
//! the rules and dialled directly or through an upstream ([`route`]).

pub mod route;

pub use route::{Dialed, OutboundError, Route, allowed_addresses, connect};
