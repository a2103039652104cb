//! SOCKS4/4a requests and replies.

use std::net::Ipv4Addr;

use bytes::BufMut;

use super::MAX_FIELD_LEN;
use super::consts::*;

/// A malformed SOCKS4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The version byte is not `04` (requests) or `00` (replies).
    #[error("SOCKS4 version {0:#04x}")]
    Version(u8),
    /// An unknown command.
    #[error("unsupported SOCKS4 command {0:#04x}")]
    Command(u8),
    /// A user id or host name without its terminating NUL within 255 bytes.
    #[error("SOCKS4 field longer than {MAX_FIELD_LEN} bytes")]
    TooLong,
    /// A SOCKS4a host name that is empty or not UTF-8.
    #[error("invalid SOCKS4a host name")]
    InvalidHost,
}

/// A request's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// CONNECT.
    Connect,
    /// BIND.
    Bind,
}

impl Command {
    /// The command for a wire byte, if known.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            CMD_CONNECT => Some(Self::Connect),
            CMD_BIND => Some(Self::Bind),
            _ => None,
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Connect => CMD_CONNECT,
            Self::Bind => CMD_BIND,
        }
    }
}

/// The destination host: an IPv4 address (SOCKS4) or a name the server resolves (SOCKS4a).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// SOCKS4: an IPv4 address.
    Ip(Ipv4Addr),
    /// SOCKS4a: a host name (1 to 255 bytes, no NUL).
    Domain(String),
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// Destination port.
    pub port: u16,
    /// Destination host.
    pub host: Host,
    /// The USERID field (may be empty; at most 255 bytes).
    pub user_id: Vec<u8>,
}

/// Finds the NUL that ends a field starting at `buf[0]`, within the cap.
fn field(buf: &[u8]) -> Result<Option<&[u8]>, Error> {
    match buf.iter().take(MAX_FIELD_LEN + 1).position(|&b| b == 0) {
        Some(end) => Ok(Some(&buf[..end])),
        None if buf.len() > MAX_FIELD_LEN => Err(Error::TooLong),
        None => Ok(None),
    }
}

impl Request {
    /// Parses a request from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        match buf.first() {
            None => return Ok(None),
            Some(&VERSION) => {}
            Some(&other) => return Err(Error::Version(other)),
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        let command = Command::from_u8(buf[1]).ok_or(Error::Command(buf[1]))?;
        let port = u16::from_be_bytes([buf[2], buf[3]]);
        let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
        let Some(user_id) = field(&buf[8..])? else {
            return Ok(None);
        };
        let mut used = 8 + user_id.len() + 1;
        let [a, b, c, d] = ip.octets();
        let host = if a == 0 && b == 0 && c == 0 && d != 0 {
            let Some(name) = field(&buf[used..])? else {
                return Ok(None);
            };
            used += name.len() + 1;
            let name = std::str::from_utf8(name).map_err(|_| Error::InvalidHost)?;
            if name.is_empty() {
                return Err(Error::InvalidHost);
            }
            Host::Domain(name.to_owned())
        } else {
            Host::Ip(ip)
        };
        let request = Self {
            command,
            port,
            host,
            user_id: user_id.to_vec(),
        };
        Ok(Some((request, used)))
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        let name = match &self.host {
            Host::Ip(_) => 0,
            Host::Domain(name) => name.len().min(MAX_FIELD_LEN) + 1,
        };
        8 + self.user_id.len().min(MAX_FIELD_LEN) + 1 + name
    }

    /// Appends the wire form. Fields are cut at their first NUL and at 255 bytes.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        let clean = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .take(MAX_FIELD_LEN)
                .collect()
        };
        buf.put_u8(VERSION);
        buf.put_u8(self.command.as_u8());
        buf.put_u16(self.port);
        match &self.host {
            Host::Ip(ip) => buf.put_slice(&ip.octets()),
            Host::Domain(_) => buf.put_slice(&[0, 0, 0, 1]),
        }
        buf.put_slice(&clean(&self.user_id));
        buf.put_u8(0);
        if let Host::Domain(name) = &self.host {
            buf.put_slice(&clean(name.as_bytes()));
            buf.put_u8(0);
        }
    }
}

/// A reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    /// `5a` request granted.
    Granted,
    /// `5b` request rejected or failed.
    Rejected,
    /// `5c` the server cannot reach identd on the client.
    IdentdUnreachable,
    /// `5d` identd reports a different user id.
    IdentdMismatch,
    /// Any other byte.
    Other(u8),
}

impl ReplyCode {
    /// The code for a wire byte.
    pub const fn from_u8(byte: u8) -> Self {
        match byte {
            REP_GRANTED => Self::Granted,
            REP_REJECTED => Self::Rejected,
            REP_IDENTD_UNREACHABLE => Self::IdentdUnreachable,
            REP_IDENTD_MISMATCH => Self::IdentdMismatch,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Granted => REP_GRANTED,
            Self::Rejected => REP_REJECTED,
            Self::IdentdUnreachable => REP_IDENTD_UNREACHABLE,
            Self::IdentdMismatch => REP_IDENTD_MISMATCH,
            Self::Other(byte) => byte,
        }
    }

    /// A short description, for messages.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Granted => "request granted",
            Self::Rejected => "request rejected or failed",
            Self::IdentdUnreachable => "identd unreachable",
            Self::IdentdMismatch => "identd user id mismatch",
            Self::Other(_) => "unknown reply code",
        }
    }
}

/// A server's reply: VN · CD · DSTPORT · DSTIP (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The reply code.
    pub code: ReplyCode,
    /// Port (BIND: the listening port).
    pub port: u16,
    /// Address (BIND: the listening address).
    pub ip: Ipv4Addr,
}

impl Reply {
    /// Bytes on the wire.
    pub const SERIALIZED_LEN: usize = 8;

    /// A reply with a zero address.
    pub const fn new(code: ReplyCode) -> Self {
        Self {
            code,
            port: 0,
            ip: Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Parses a reply. The version byte should be `00`; `04`, which some servers send, is
    /// accepted too.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        match buf.first() {
            None => return Ok(None),
            Some(&(REPLY_VERSION | VERSION)) => {}
            Some(&other) => return Err(Error::Version(other)),
        }
        let Some(bytes) = buf.get(..Self::SERIALIZED_LEN) else {
            return Ok(None);
        };
        let reply = Self {
            code: ReplyCode::from_u8(bytes[1]),
            port: u16::from_be_bytes([bytes[2], bytes[3]]),
            ip: Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]),
        };
        Ok(Some((reply, Self::SERIALIZED_LEN)))
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(REPLY_VERSION);
        buf.put_u8(self.code.as_u8());
        buf.put_u16(self.port);
        buf.put_slice(&self.ip.octets());
    }
}
