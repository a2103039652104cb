//! Where connections go out: upstream pools ([`pools`]) and what is said to a backend before
//! the client's bytes ([`proxy_header`]).

pub mod pools;
pub mod proxy_header;

pub use pools::{PoolEntry, PoolSet};
