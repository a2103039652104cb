//! Requests (CONNECT, BIND, UDP ASSOCIATE) and the server's replies.

use std::io;

use bytes::BufMut;

use super::consts::*;
use super::{Address, Error, address_len, read_address, write_address};

/// A request's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Open a TCP connection to the destination.
    Connect,
    /// Listen for one inbound TCP connection from the destination.
    Bind,
    /// Relay UDP datagrams.
    UdpAssociate,
}

impl Command {
    /// The command for a wire byte, if known.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            CMD_CONNECT => Some(Self::Connect),
            CMD_BIND => Some(Self::Bind),
            CMD_UDP_ASSOCIATE => Some(Self::UdpAssociate),
            _ => None,
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Connect => CMD_CONNECT,
            Self::Bind => CMD_BIND,
            Self::UdpAssociate => CMD_UDP_ASSOCIATE,
        }
    }
}

/// The reply code (REP) of a server's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `00` succeeded.
    Succeeded,
    /// `01` general SOCKS server failure.
    GeneralFailure,
    /// `02` connection not allowed by ruleset.
    NotAllowed,
    /// `03` network unreachable.
    NetworkUnreachable,
    /// `04` host unreachable.
    HostUnreachable,
    /// `05` connection refused.
    ConnectionRefused,
    /// `06` TTL expired (used for timeouts).
    TtlExpired,
    /// `07` command not supported.
    CommandNotSupported,
    /// `08` address type not supported.
    AddressTypeNotSupported,
    /// Any other byte.
    Other(u8),
}

impl Reply {
    /// The reply for a wire byte.
    pub const fn from_u8(byte: u8) -> Self {
        match byte {
            REP_SUCCEEDED => Self::Succeeded,
            REP_GENERAL_FAILURE => Self::GeneralFailure,
            REP_NOT_ALLOWED => Self::NotAllowed,
            REP_NETWORK_UNREACHABLE => Self::NetworkUnreachable,
            REP_HOST_UNREACHABLE => Self::HostUnreachable,
            REP_CONNECTION_REFUSED => Self::ConnectionRefused,
            REP_TTL_EXPIRED => Self::TtlExpired,
            REP_COMMAND_NOT_SUPPORTED => Self::CommandNotSupported,
            REP_ADDRESS_NOT_SUPPORTED => Self::AddressTypeNotSupported,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Succeeded => REP_SUCCEEDED,
            Self::GeneralFailure => REP_GENERAL_FAILURE,
            Self::NotAllowed => REP_NOT_ALLOWED,
            Self::NetworkUnreachable => REP_NETWORK_UNREACHABLE,
            Self::HostUnreachable => REP_HOST_UNREACHABLE,
            Self::ConnectionRefused => REP_CONNECTION_REFUSED,
            Self::TtlExpired => REP_TTL_EXPIRED,
            Self::CommandNotSupported => REP_COMMAND_NOT_SUPPORTED,
            Self::AddressTypeNotSupported => REP_ADDRESS_NOT_SUPPORTED,
            Self::Other(byte) => byte,
        }
    }

    /// RFC 1928's wording, for messages.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::GeneralFailure => "general SOCKS server failure",
            Self::NotAllowed => "connection not allowed by ruleset",
            Self::NetworkUnreachable => "network unreachable",
            Self::HostUnreachable => "host unreachable",
            Self::ConnectionRefused => "connection refused",
            Self::TtlExpired => "TTL expired",
            Self::CommandNotSupported => "command not supported",
            Self::AddressTypeNotSupported => "address type not supported",
            Self::Other(_) => "unassigned reply code",
        }
    }

    /// The reply a server sends when its own outbound dial failed with `error`: refused
    /// `05`, host unreachable `04`, network unreachable `03`, timeout `06`, otherwise `01`.
    pub fn from_io_error(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Self::ConnectionRefused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::ConnectionAborted => {
                Self::HostUnreachable
            }
            io::ErrorKind::NetworkUnreachable => Self::NetworkUnreachable,
            io::ErrorKind::TimedOut => Self::TtlExpired,
            _ => Self::GeneralFailure,
        }
    }
}

/// A client's request: VER · CMD · RSV · ATYP · DST.ADDR · DST.PORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// The destination (for UDP ASSOCIATE: where the client will send from, often zeros).
    pub address: Address,
}

impl Request {
    /// Parses a request from the start of `buf`. An unknown command is reported only once the
    /// whole request has arrived, so a server can answer `07` on a clean stream.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let [version, command, _reserved, ..] = *buf else {
            return match buf.first() {
                Some(&v) if v != VERSION => Err(Error::Version(v)),
                _ => Ok(None),
            };
        };
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let Some((address, len)) = read_address(&buf[3..])? else {
            return Ok(None);
        };
        let command = Command::from_u8(command).ok_or(Error::Command(command))?;
        Ok(Some((Self { command, address }, 3 + len)))
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        3 + address_len(&self.address)
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(VERSION);
        buf.put_u8(self.command.as_u8());
        buf.put_u8(0);
        write_address(&self.address, buf);
    }
}

/// A server's response: VER · REP · RSV · ATYP · BND.ADDR · BND.PORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The reply code.
    pub reply: Reply,
    /// The bound address (CONNECT: the server's outbound address; BIND: the listening address,
    /// then the peer's; UDP ASSOCIATE: where to send datagrams).
    pub address: Address,
}

impl Response {
    /// A response carrying `reply` and `address`.
    pub fn new(reply: Reply, address: Address) -> Self {
        Self { reply, address }
    }

    /// A failure response with an all-zero IPv4 bound address.
    pub fn failure(reply: Reply) -> Self {
        Self::new(reply, Address::unspecified())
    }

    /// Parses a response from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        let [version, reply, _reserved, ..] = *buf else {
            return match buf.first() {
                Some(&v) if v != VERSION => Err(Error::Version(v)),
                _ => Ok(None),
            };
        };
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let reply = Reply::from_u8(reply);
        let Some((address, len)) = read_address(&buf[3..])? else {
            return Ok(None);
        };
        Ok(Some((Self { reply, address }, 3 + len)))
    }

    /// Bytes on the wire.
    pub fn serialized_len(&self) -> usize {
        3 + address_len(&self.address)
    }

    /// Appends the wire form.
    pub fn write_to_buf<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(VERSION);
        buf.put_u8(self.reply.as_u8());
        buf.put_u8(0);
        write_address(&self.address, buf);
    }
}
