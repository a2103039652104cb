//! What can name a destination.

use std::net::{IpAddr, SocketAddr};

use mtgate_proto::address::Address;

use crate::error::ConnectError;

/// Anything that names a destination: an [`Address`], a `SocketAddr`, `(host, port)`, or a
/// `"host:port"` string (IPv6 in brackets).
pub trait IntoTarget {
    /// The destination, checked.
    fn into_target(self) -> Result<Address, ConnectError>;
}

impl IntoTarget for Address {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(self)
    }
}

impl IntoTarget for &Address {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(self.clone())
    }
}

impl IntoTarget for SocketAddr {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(Address::Socket(self))
    }
}

impl IntoTarget for (IpAddr, u16) {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(Address::from(self))
    }
}

impl IntoTarget for (&str, u16) {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(Address::from_host(self.0, self.1)?)
    }
}

impl IntoTarget for (String, u16) {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(Address::from_host(&self.0, self.1)?)
    }
}

impl IntoTarget for &str {
    fn into_target(self) -> Result<Address, ConnectError> {
        Ok(self.parse::<Address>()?)
    }
}

impl IntoTarget for String {
    fn into_target(self) -> Result<Address, ConnectError> {
        self.as_str().into_target()
    }
}
