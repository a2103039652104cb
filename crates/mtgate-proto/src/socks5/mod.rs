//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), both directions.
//!
//! | message | sender | type |
//! |---|---|---|
//! | VER · NMETHODS · METHODS | client | [`Greeting`] |
//! | VER · METHOD | server | [`MethodSelection`] |
//! | `01` · ULEN · UNAME · PLEN · PASSWD | client | [`UserPassRequest`] |
//! | `01` · STATUS | server | [`UserPassResponse`] |
//! | VER · CMD · RSV · ATYP · DST.ADDR · DST.PORT | client | [`Request`] |
//! | VER · REP · RSV · ATYP · BND.ADDR · BND.PORT | server | [`Response`] |
//! | RSV(2) · FRAG · ATYP · DST.ADDR · DST.PORT · DATA | both, over UDP | [`UdpHeader`] |
//!
//! Every message has `parse(&[u8]) -> Result<Option<(Self, usize)>, Error>` (the `usize` is the
//! number of bytes consumed; `Ok(None)` means more bytes are needed), `write_to_buf` and
//! `serialized_len`. Reserved bytes are written as zero and ignored when read, as most
//! implementations do. Messages are bounded by the format itself (at most 513 bytes).

mod addr;
mod auth;
mod command;
mod error;
mod method;
mod udp;

#[cfg(test)]
mod tests;

pub use crate::address::Address;
pub use addr::{address_len, read_address, write_address};
pub use auth::{UserPassRequest, UserPassResponse};
pub use command::{Command, Reply, Request, Response};
pub use error::Error;
pub use method::{Greeting, Method, MethodSelection};
pub use udp::UdpHeader;

/// Raw protocol constants.
#[rustfmt::skip]
pub mod consts {
    /// Protocol version byte.
    pub const VERSION:                      u8 = 0x05;
    /// RFC 1929 sub-negotiation version byte.
    pub const USER_PASS_VERSION:            u8 = 0x01;

    /// Method: no authentication required.
    pub const METHOD_NO_AUTH:               u8 = 0x00;
    /// Method: GSSAPI.
    pub const METHOD_GSSAPI:                u8 = 0x01;
    /// Method: username/password (RFC 1929).
    pub const METHOD_USER_PASS:             u8 = 0x02;
    /// Method selection: none of the offered methods is acceptable.
    pub const METHOD_NO_ACCEPTABLE:         u8 = 0xff;

    /// Command: CONNECT.
    pub const CMD_CONNECT:                  u8 = 0x01;
    /// Command: BIND.
    pub const CMD_BIND:                     u8 = 0x02;
    /// Command: UDP ASSOCIATE.
    pub const CMD_UDP_ASSOCIATE:            u8 = 0x03;

    /// Address type: IPv4, 4 bytes.
    pub const ATYP_IPV4:                    u8 = 0x01;
    /// Address type: domain name, 1 length byte then the name.
    pub const ATYP_DOMAIN:                  u8 = 0x03;
    /// Address type: IPv6, 16 bytes.
    pub const ATYP_IPV6:                    u8 = 0x04;

    /// Reply: succeeded.
    pub const REP_SUCCEEDED:                u8 = 0x00;
    /// Reply: general SOCKS server failure.
    pub const REP_GENERAL_FAILURE:          u8 = 0x01;
    /// Reply: connection not allowed by ruleset.
    pub const REP_NOT_ALLOWED:              u8 = 0x02;
    /// Reply: network unreachable.
    pub const REP_NETWORK_UNREACHABLE:      u8 = 0x03;
    /// Reply: host unreachable.
    pub const REP_HOST_UNREACHABLE:         u8 = 0x04;
    /// Reply: connection refused.
    pub const REP_CONNECTION_REFUSED:       u8 = 0x05;
    /// Reply: TTL expired.
    pub const REP_TTL_EXPIRED:              u8 = 0x06;
    /// Reply: command not supported.
    pub const REP_COMMAND_NOT_SUPPORTED:    u8 = 0x07;
    /// Reply: address type not supported.
    pub const REP_ADDRESS_NOT_SUPPORTED:    u8 = 0x08;
}
