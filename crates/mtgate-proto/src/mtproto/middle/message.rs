//! The messages multiplexed over a middle-proxy connection, keyed by a 64-bit connection id
//! that the proxy picks per client.
//!
//! Proxy → ME: [`ProxyReq`] (one client packet, with the client's and the proxy's addresses
//! and the ad tag), RPC_CLOSE_CONN (the client left), RPC_PING / RPC_PONG.
//!
//! ME → proxy ([`MeMessage`]): RPC_PROXY_ANS (a packet for the client), RPC_SIMPLE_ACK (a
//! quick acknowledgement for it), RPC_CLOSE_EXT (close it), RPC_PING / RPC_PONG.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::consts::{flag, kind, unencrypted};
use crate::mtproto::obfs2::ProtoTag;

/// Length of an encoded address: 16-byte IPv6 (IPv4-mapped for IPv4) and a u32 port.
pub const ADDR_LEN: usize = 20;

/// Length of the fixed part of RPC_PROXY_REQ before the extra section.
pub const PROXY_REQ_FIXED: usize = 4 + 4 + 8 + ADDR_LEN + ADDR_LEN;

/// Length of an ad tag.
pub const AD_TAG_LEN: usize = 16;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Too short or too long for its type.
    #[error("message of {0} bytes has the wrong length for its type")]
    BadLength(usize),
    /// Not the message type expected here.
    #[error("unexpected message type {0:#010x}")]
    UnexpectedKind(u32),
    /// The middle proxy refused the handshake (RPC_HANDSHAKE_ERROR).
    #[error("the middle proxy refused the handshake")]
    Refused,
    /// An extra section that does not add up.
    #[error("malformed extra section")]
    BadExtra,
}

/// HTTP transport details carried by TL_HTTP_QUERY_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpQueryInfo<'a> {
    /// The `Origin` header.
    pub origin: &'a [u8],
    /// The `Referer` header.
    pub referer: &'a [u8],
    /// The `User-Agent` header.
    pub user_agent: &'a [u8],
}

/// RPC_PROXY_REQ: one client packet for the middle proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyReq<'a> {
    /// Flags ([`super::consts::flag`]); [`ProxyReq::write_header`] adds HAS_AD_TAG and
    /// HTTP_QUERY to match the sections present.
    pub flags: u32,
    /// The client's connection id.
    pub conn_id: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The proxy's (public) address the client connected to.
    pub proxy: SocketAddr,
    /// The ad tag, if any.
    pub ad_tag: Option<[u8; AD_TAG_LEN]>,
    /// HTTP transport details, if the client came over HTTP.
    pub http: Option<HttpQueryInfo<'a>>,
    /// The client's MTProto packet, transport framing removed.
    pub payload: &'a [u8],
}

impl<'a> ProxyReq<'a> {
    /// The flags as sent: [`ProxyReq::flags`] plus the bits of the extra sections.
    pub fn wire_flags(&self) -> u32 {
        let mut flags = self.flags & !(flag::HAS_AD_TAG | flag::HTTP_QUERY);
        if self.ad_tag.is_some() {
            flags |= flag::HAS_AD_TAG;
        }
        if self.http.is_some() {
            flags |= flag::HTTP_QUERY;
        }
        flags
    }

    /// Appends everything before the payload; the payload follows it in the frame.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        let flags = self.wire_flags();
        out.extend_from_slice(&kind::RPC_PROXY_REQ.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.conn_id.to_le_bytes());
        write_addr(self.client, out);
        write_addr(self.proxy, out);
        if flags & (flag::HAS_AD_TAG | flag::HTTP_QUERY) != 0 {
            let size_at = out.len();
            out.extend_from_slice(&[0; 4]);
            if let Some(tag) = &self.ad_tag {
                out.extend_from_slice(&kind::TL_PROXY_TAG.to_le_bytes());
                write_tl_string(tag, out);
            }
            if let Some(http) = &self.http {
                out.extend_from_slice(&kind::TL_HTTP_QUERY_INFO.to_le_bytes());
                write_tl_string(http.origin, out);
                write_tl_string(http.referer, out);
                write_tl_string(http.user_agent, out);
            }
            let size = (out.len() - size_at - 4) as u32;
            out[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
        }
    }

    /// The whole message in one buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROXY_REQ_FIXED + 64 + self.payload.len());
        self.write_header(&mut out);
        out.extend_from_slice(self.payload);
        out
    }

    /// Reads a message (the middle proxy's side; test doubles use it).
    pub fn decode(p: &'a [u8]) -> Result<Self, MessageError> {
        let fixed = p
            .get(..PROXY_REQ_FIXED)
            .ok_or(MessageError::BadLength(p.len()))?;
        let got = u32_at(fixed, 0);
        if got != kind::RPC_PROXY_REQ {
            return Err(MessageError::UnexpectedKind(got));
        }
        let flags = u32_at(fixed, 4);
        let conn_id = u64_at(fixed, 8);
        let client = read_addr(&fixed[16..36]);
        let proxy = read_addr(&fixed[36..56]);
        let mut rest = &p[PROXY_REQ_FIXED..];
        let (mut ad_tag, mut http) = (None, None);
        if flags & (flag::HAS_AD_TAG | flag::HTTP_QUERY) != 0 {
            let size = rest.get(..4).ok_or(MessageError::BadExtra)?;
            let size = u32_at(size, 0) as usize;
            let mut extra = rest.get(4..4 + size).ok_or(MessageError::BadExtra)?;
            rest = &rest[4 + size..];
            while !extra.is_empty() {
                let object = extra.get(..4).ok_or(MessageError::BadExtra)?;
                extra = &extra[4..];
                match u32_at(object, 0) {
                    kind::TL_PROXY_TAG => {
                        let tag = read_tl_string(&mut extra)?;
                        ad_tag = Some(tag.try_into().map_err(|_| MessageError::BadExtra)?);
                    }
                    kind::TL_HTTP_QUERY_INFO => {
                        http = Some(HttpQueryInfo {
                            origin: read_tl_string(&mut extra)?,
                            referer: read_tl_string(&mut extra)?,
                            user_agent: read_tl_string(&mut extra)?,
                        });
                    }
                    _ => return Err(MessageError::BadExtra),
                }
            }
        }
        Ok(Self {
            flags,
            conn_id,
            client,
            proxy,
            ad_tag,
            http,
            payload: rest,
        })
    }
}

/// The RPC_PROXY_REQ flags for a client packet.
pub fn client_flags(tag: ProtoTag, quick_ack: bool, payload: &[u8]) -> u32 {
    let mut flags = flag::MAGIC | flag::EXTMODE2;
    flags |= match tag {
        ProtoTag::Abridged => flag::ABRIDGED,
        ProtoTag::Intermediate => flag::INTERMEDIATE,
        ProtoTag::Padded => flag::INTERMEDIATE | flag::PAD,
    };
    if quick_ack {
        flags |= flag::QUICKACK;
    }
    if payload.get(..8) == Some(&[0; 8]) {
        flags |= flag::NOT_ENCRYPTED;
    }
    flags
}

/// Why a client packet is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than an MTProto header, or not 4-byte aligned.
    #[error("packet of {0} bytes is too short or unaligned")]
    Malformed(usize),
    /// An unencrypted packet whose inner length does not fit.
    #[error("unencrypted packet with a bad inner length")]
    BadInnerLength,
    /// An unencrypted packet calling a function other than the key exchange.
    #[error("unencrypted function {0:#010x} is not forwarded")]
    Forbidden(u32),
}

/// Whether a client packet may go to the middle proxy, as the official proxy decides:
/// encrypted packets need a full header (56 bytes); unencrypted ones (auth_key_id 0) only for
/// req_pq, req_pq_multi, req_DH_params and set_client_DH_params, with a consistent length.
pub fn check_client_packet(p: &[u8]) -> Result<(), PacketError> {
    const HEADER: usize = 28;
    const ENCRYPTED_HEADER: usize = 56;
    if p.len() < HEADER || !p.len().is_multiple_of(4) {
        return Err(PacketError::Malformed(p.len()));
    }
    if p[..8] != [0; 8] {
        return if p.len() >= ENCRYPTED_HEADER {
            Ok(())
        } else {
            Err(PacketError::Malformed(p.len()))
        };
    }
    let inner = u32_at(p, 16) as usize;
    if inner < 20 || inner + 20 > p.len() {
        return Err(PacketError::BadInnerLength);
    }
    match u32_at(p, 20) {
        unencrypted::REQ_PQ
        | unencrypted::REQ_PQ_MULTI
        | unencrypted::REQ_DH_PARAMS
        | unencrypted::SET_CLIENT_DH_PARAMS => Ok(()),
        other => Err(PacketError::Forbidden(other)),
    }
}

/// A message from the middle proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeMessage<'a> {
    /// RPC_PROXY_ANS: a packet for a client.
    ProxyAns {
        /// Flags (unused by proxies).
        flags: u32,
        /// The client.
        conn_id: u64,
        /// The MTProto packet.
        payload: &'a [u8],
    },
    /// RPC_SIMPLE_ACK: a quick acknowledgement for a client.
    SimpleAck {
        /// The client.
        conn_id: u64,
        /// The token to send to the client.
        confirm: u32,
    },
    /// RPC_CLOSE_EXT: close the client.
    CloseExt {
        /// The client.
        conn_id: u64,
    },
    /// RPC_PING: answer with RPC_PONG.
    Ping {
        /// Echoed in the answer.
        id: u64,
    },
    /// RPC_PONG: the answer to our ping.
    Pong {
        /// The id of our ping.
        id: u64,
    },
}

impl<'a> MeMessage<'a> {
    /// Reads a message from the middle proxy.
    pub fn decode(p: &'a [u8]) -> Result<Self, MessageError> {
        let head = p.get(..4).ok_or(MessageError::BadLength(p.len()))?;
        let exact = |len: usize| {
            if p.len() == len {
                Ok(())
            } else {
                Err(MessageError::BadLength(p.len()))
            }
        };
        Ok(match u32_at(head, 0) {
            kind::RPC_PROXY_ANS => {
                if p.len() < 16 {
                    return Err(MessageError::BadLength(p.len()));
                }
                Self::ProxyAns {
                    flags: u32_at(p, 4),
                    conn_id: u64_at(p, 8),
                    payload: &p[16..],
                }
            }
            kind::RPC_SIMPLE_ACK => {
                exact(16)?;
                Self::SimpleAck {
                    conn_id: u64_at(p, 4),
                    confirm: u32_at(p, 12),
                }
            }
            kind::RPC_CLOSE_EXT => {
                exact(12)?;
                Self::CloseExt {
                    conn_id: u64_at(p, 4),
                }
            }
            kind::RPC_PING => {
                exact(12)?;
                Self::Ping { id: u64_at(p, 4) }
            }
            kind::RPC_PONG => {
                exact(12)?;
                Self::Pong { id: u64_at(p, 4) }
            }
            other => return Err(MessageError::UnexpectedKind(other)),
        })
    }

    /// Encodes the message (the middle proxy's side; test doubles use it).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::ProxyAns {
                flags,
                conn_id,
                payload,
            } => {
                out.extend_from_slice(&kind::RPC_PROXY_ANS.to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&conn_id.to_le_bytes());
                out.extend_from_slice(payload);
            }
            Self::SimpleAck { conn_id, confirm } => {
                out.extend_from_slice(&kind::RPC_SIMPLE_ACK.to_le_bytes());
                out.extend_from_slice(&conn_id.to_le_bytes());
                out.extend_from_slice(&confirm.to_le_bytes());
            }
            Self::CloseExt { conn_id } => control(kind::RPC_CLOSE_EXT, conn_id, out),
            Self::Ping { id } => control(kind::RPC_PING, id, out),
            Self::Pong { id } => control(kind::RPC_PONG, id, out),
        }
    }
}

/// A control message from the proxy (RPC_PROXY_REQ aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyControl {
    /// RPC_CLOSE_CONN: the client left.
    CloseConn {
        /// The client.
        conn_id: u64,
    },
    /// RPC_PING.
    Ping {
        /// Echoed in the answer.
        id: u64,
    },
    /// RPC_PONG.
    Pong {
        /// The id of the ping answered.
        id: u64,
    },
}

impl ProxyControl {
    /// The 12 payload bytes.
    pub fn encode(&self) -> [u8; 12] {
        let (k, v) = match *self {
            Self::CloseConn { conn_id } => (kind::RPC_CLOSE_CONN, conn_id),
            Self::Ping { id } => (kind::RPC_PING, id),
            Self::Pong { id } => (kind::RPC_PONG, id),
        };
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&k.to_le_bytes());
        out[4..].copy_from_slice(&v.to_le_bytes());
        out
    }

    /// Reads a control message; `Ok(None)` for an RPC_PROXY_REQ (see [`ProxyReq::decode`]).
    pub fn decode(p: &[u8]) -> Result<Option<Self>, MessageError> {
        let head = p.get(..4).ok_or(MessageError::BadLength(p.len()))?;
        let k = u32_at(head, 0);
        if k == kind::RPC_PROXY_REQ {
            return Ok(None);
        }
        if p.len() != 12 {
            return Err(MessageError::BadLength(p.len()));
        }
        let v = u64_at(p, 4);
        Ok(Some(match k {
            kind::RPC_CLOSE_CONN => Self::CloseConn { conn_id: v },
            kind::RPC_PING => Self::Ping { id: v },
            kind::RPC_PONG => Self::Pong { id: v },
            other => return Err(MessageError::UnexpectedKind(other)),
        }))
    }
}

fn control(k: u32, v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&k.to_le_bytes());
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes an address as the RPC layer does: the IPv6 address (IPv4-mapped for IPv4), then
/// the port as u32 LE.
pub fn write_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    let v6 = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&v6.octets());
    out.extend_from_slice(&u32::from(addr.port()).to_le_bytes());
}

fn read_addr(b: &[u8]) -> SocketAddr {
    let octets: [u8; 16] = b[..16].try_into().expect("16 bytes");
    let ip = Ipv6Addr::from(octets);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    SocketAddr::new(ip, u32_at(b, 16) as u16)
}

/// Appends a TL string: a length byte (or `fe` and 3 length bytes from 254 on), the bytes,
/// zero padding to 4.
pub fn write_tl_string(s: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    if s.len() < 254 {
        out.push(s.len() as u8);
    } else {
        let l = (s.len() as u32).to_le_bytes();
        out.extend_from_slice(&[0xfe, l[0], l[1], l[2]]);
    }
    out.extend_from_slice(s);
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
}

fn read_tl_string<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], MessageError> {
    let first = *b.first().ok_or(MessageError::BadExtra)?;
    let (head, len) = if first < 254 {
        (1, usize::from(first))
    } else {
        let l = b.get(1..4).ok_or(MessageError::BadExtra)?;
        (4, u32::from_le_bytes([l[0], l[1], l[2], 0]) as usize)
    };
    let s = b.get(head..head + len).ok_or(MessageError::BadExtra)?;
    let total = (head + len).next_multiple_of(4);
    *b = b.get(total..).ok_or(MessageError::BadExtra)?;
    Ok(s)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
