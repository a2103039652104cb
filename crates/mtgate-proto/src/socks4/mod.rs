//! SOCKS4 and SOCKS4a, both directions.
//!
//! | message | layout |
//! |---|---|
//! | request | VN `04` · CD · DSTPORT(2) · DSTIP(4) · USERID · `00` |
//! | 4a request | DSTIP `0.0.0.x` (x ≠ 0) · … · USERID · `00` · HOSTNAME · `00` |
//! | reply | VN `00` · CD (`5a` granted, `5b` rejected, `5c`/`5d` identd) · DSTPORT(2) · DSTIP(4) |
//!
//! User ids and host names are capped at 255 bytes each, so a request is at most 521 bytes.

mod message;

#[cfg(test)]
mod tests;

pub use message::{Command, Error, Host, Reply, ReplyCode, Request};

/// Longest user id or host name accepted.
pub const MAX_FIELD_LEN: usize = 255;

/// Raw protocol constants.
#[rustfmt::skip]
pub mod consts {
    /// Request version byte.
    pub const VERSION:                 u8 = 0x04;
    /// Reply version byte.
    pub const REPLY_VERSION:           u8 = 0x00;
    /// Command: CONNECT.
    pub const CMD_CONNECT:             u8 = 0x01;
    /// Command: BIND.
    pub const CMD_BIND:                u8 = 0x02;
    /// Reply: request granted.
    pub const REP_GRANTED:             u8 = 0x5a;
    /// Reply: request rejected or failed.
    pub const REP_REJECTED:            u8 = 0x5b;
    /// Reply: rejected, the server cannot reach the client's identd.
    pub const REP_IDENTD_UNREACHABLE:  u8 = 0x5c;
    /// Reply: rejected, identd reports a different user id.
    pub const REP_IDENTD_MISMATCH:     u8 = 0x5d;
}
