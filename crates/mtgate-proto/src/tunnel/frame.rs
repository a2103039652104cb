//! Frames: a 6-byte header (kind u8, flags u8, stream id u32) and a payload whose shape the
//! kind fixes. A WebSocket binary message holds exactly one frame, so the payload length is
//! the message length minus the header.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::code::ErrorCode;
use super::{CONNECTION_STREAM, HEADER_LEN, MAX_DATA_LEN};
use crate::address::Address;
use crate::socks5;

/// Frame kinds on the wire.
pub mod kind {
    /// Open a stream to a target.
    pub const OPEN: u8 = 0x01;
    /// The target is connected.
    pub const OPEN_OK: u8 = 0x02;
    /// The target could not be connected.
    pub const OPEN_ERR: u8 = 0x03;
    /// Stream bytes.
    pub const DATA: u8 = 0x04;
    /// More send credit for a stream.
    pub const WINDOW: u8 = 0x05;
    /// No more data in this direction (half-close).
    pub const FIN: u8 = 0x06;
    /// Abort the stream in both directions.
    pub const RST: u8 = 0x07;
    /// Liveness probe on stream 0.
    pub const PING: u8 = 0x08;
    /// Answer to a PING, echoing its payload.
    pub const PONG: u8 = 0x09;
    /// No new streams on this connection; existing ones finish.
    pub const GOAWAY: u8 = 0x0a;
    /// The agent asks the gateway to listen on a port and forward to the agent's side.
    pub const LISTEN: u8 = 0x0b;
    /// The gateway's answer to a LISTEN.
    pub const LISTEN_RESULT: u8 = 0x0c;
}

/// Longest reason text written into OPEN_ERR, RST, GOAWAY and LISTEN_RESULT.
pub const MAX_REASON_LEN: usize = 256;

/// The transport a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// A TCP connection: an ordered byte stream with half-close.
    Tcp,
    /// UDP: each DATA frame is one datagram.
    Udp,
}

impl Network {
    fn to_byte(self) -> u8 {
        match self {
            Self::Tcp => 1,
            Self::Udp => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, FrameError> {
        match byte {
            1 => Ok(Self::Tcp),
            2 => Ok(Self::Udp),
            other => Err(FrameError::Network(other)),
        }
    }

    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Where an OPEN asks to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpenTarget {
    /// TCP or UDP.
    pub network: Network,
    /// The destination: an IP address or a name the agent resolves, and a port.
    pub address: Address,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Open `stream` to `target`.
    Open {
        /// The new stream's id (even from the gateway, odd from the agent).
        stream: u32,
        /// Where to connect.
        target: OpenTarget,
    },
    /// `stream` is connected.
    OpenOk {
        /// The stream.
        stream: u32,
    },
    /// `stream` could not be connected.
    OpenErr {
        /// The stream.
        stream: u32,
        /// Why.
        code: ErrorCode,
        /// Detail for logs (may be empty).
        reason: String,
    },
    /// Bytes of `stream` (at most [`MAX_DATA_LEN`]).
    Data {
        /// The stream.
        stream: u32,
        /// The bytes.
        payload: Bytes,
    },
    /// `increment` more bytes of send credit for `stream`.
    Window {
        /// The stream.
        stream: u32,
        /// Credit added, in bytes (never 0).
        increment: u32,
    },
    /// The sender will send no more data on `stream`.
    Fin {
        /// The stream.
        stream: u32,
    },
    /// `stream` is aborted both ways.
    Rst {
        /// The stream.
        stream: u32,
        /// Why.
        code: ErrorCode,
        /// Detail for logs (may be empty).
        reason: String,
    },
    /// A liveness probe.
    Ping {
        /// Opaque value the PONG echoes (the sender's clock, usually).
        opaque: u64,
    },
    /// The answer to a PING.
    Pong {
        /// The PING's value.
        opaque: u64,
    },
    /// The sender opens no more streams and accepts no more; existing ones finish.
    GoAway {
        /// Why ([`ErrorCode::None`] for a restart or shutdown).
        code: ErrorCode,
        /// Detail for logs (may be empty).
        reason: String,
    },
    /// The agent asks the gateway to listen on `port` and open streams to `target` for every
    /// connection it accepts there.
    Listen {
        /// The agent's number for this request, echoed in the result.
        request: u32,
        /// TCP or UDP.
        network: Network,
        /// The port on the gateway.
        port: u16,
        /// The address on the agent's side that accepted connections are forwarded to.
        target: Address,
    },
    /// The gateway's answer to a [`Frame::Listen`].
    ListenResult {
        /// The request's number.
        request: u32,
        /// [`ErrorCode::None`] when the port is listening.
        code: ErrorCode,
        /// Detail (the reason for a refusal).
        reason: String,
    },
}

/// Why a message is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header or than its kind's fixed payload.
    #[error("frame too short")]
    Short,
    /// Longer than its kind allows.
    #[error("frame of kind {0:#04x} has trailing bytes")]
    Trailing(u8),
    /// A DATA payload over [`MAX_DATA_LEN`].
    #[error("DATA payload of {0} bytes exceeds {MAX_DATA_LEN}")]
    DataTooLarge(usize),
    /// A kind this version does not define.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A stream frame on stream 0, or a connection frame on another stream.
    #[error("frame of kind {kind:#04x} on the wrong stream {stream}")]
    WrongStream {
        /// The frame kind.
        kind: u8,
        /// The stream id it carried.
        stream: u32,
    },
    /// A WINDOW with a zero increment.
    #[error("WINDOW with a zero increment")]
    ZeroWindow,
    /// A network byte other than TCP (1) or UDP (2).
    #[error("unknown network {0}")]
    Network(u8),
    /// A malformed address.
    #[error("bad address: {0}")]
    Address(#[from] socks5::Error),
}

impl Frame {
    /// The stream the frame belongs to (0 for connection frames).
    pub fn stream(&self) -> u32 {
        match self {
            Self::Open { stream, .. }
            | Self::OpenOk { stream }
            | Self::OpenErr { stream, .. }
            | Self::Data { stream, .. }
            | Self::Window { stream, .. }
            | Self::Fin { stream }
            | Self::Rst { stream, .. } => *stream,
            Self::Ping { .. }
            | Self::Pong { .. }
            | Self::GoAway { .. }
            | Self::Listen { .. }
            | Self::ListenResult { .. } => CONNECTION_STREAM,
        }
    }

    /// The kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Open { .. } => kind::OPEN,
            Self::OpenOk { .. } => kind::OPEN_OK,
            Self::OpenErr { .. } => kind::OPEN_ERR,
            Self::Data { .. } => kind::DATA,
            Self::Window { .. } => kind::WINDOW,
            Self::Fin { .. } => kind::FIN,
            Self::Rst { .. } => kind::RST,
            Self::Ping { .. } => kind::PING,
            Self::Pong { .. } => kind::PONG,
            Self::GoAway { .. } => kind::GOAWAY,
            Self::Listen { .. } => kind::LISTEN,
            Self::ListenResult { .. } => kind::LISTEN_RESULT,
        }
    }

    /// Decodes one whole message. DATA payloads share `message`'s memory.
    pub fn decode(message: Bytes) -> Result<Self, FrameError> {
        if message.len() < HEADER_LEN {
            return Err(FrameError::Short);
        }
        let kind = message[0];
        // message[1] holds flags; version 1 defines none and ignores them.
        let stream = u32::from_be_bytes([message[2], message[3], message[4], message[5]]);
        let mut body = message.slice(HEADER_LEN..);
        let on_stream = !matches!(
            kind,
            kind::PING | kind::PONG | kind::GOAWAY | kind::LISTEN | kind::LISTEN_RESULT
        );
        if on_stream == (stream == CONNECTION_STREAM) && kind <= kind::LISTEN_RESULT && kind != 0 {
            return Err(FrameError::WrongStream { kind, stream });
        }
        let frame = match kind {
            kind::OPEN => {
                let network = Network::from_byte(take_u8(&mut body)?)?;
                let address = take_address(&mut body)?;
                expect_end(&body, kind)?;
                Self::Open {
                    stream,
                    target: OpenTarget { network, address },
                }
            }
            kind::OPEN_OK => {
                expect_end(&body, kind)?;
                Self::OpenOk { stream }
            }
            kind::OPEN_ERR => {
                let code = ErrorCode::from_byte(take_u8(&mut body)?);
                Self::OpenErr {
                    stream,
                    code,
                    reason: text(&body),
                }
            }
            kind::DATA => {
                if body.len() > MAX_DATA_LEN {
                    return Err(FrameError::DataTooLarge(body.len()));
                }
                Self::Data {
                    stream,
                    payload: body,
                }
            }
            kind::WINDOW => {
                let increment = take_u32(&mut body)?;
                expect_end(&body, kind)?;
                if increment == 0 {
                    return Err(FrameError::ZeroWindow);
                }
                Self::Window { stream, increment }
            }
            kind::FIN => {
                expect_end(&body, kind)?;
                Self::Fin { stream }
            }
            kind::RST => {
                let code = ErrorCode::from_byte(take_u8(&mut body)?);
                Self::Rst {
                    stream,
                    code,
                    reason: text(&body),
                }
            }
            kind::PING | kind::PONG => {
                let opaque = take_u64(&mut body)?;
                expect_end(&body, kind)?;
                if kind == kind::PING {
                    Self::Ping { opaque }
                } else {
                    Self::Pong { opaque }
                }
            }
            kind::GOAWAY => {
                let code = ErrorCode::from_byte(take_u8(&mut body)?);
                Self::GoAway {
                    code,
                    reason: text(&body),
                }
            }
            kind::LISTEN => {
                let request = take_u32(&mut body)?;
                let network = Network::from_byte(take_u8(&mut body)?)?;
                let port = take_u16(&mut body)?;
                let target = take_address(&mut body)?;
                expect_end(&body, kind)?;
                Self::Listen {
                    request,
                    network,
                    port,
                    target,
                }
            }
            kind::LISTEN_RESULT => {
                let request = take_u32(&mut body)?;
                let code = ErrorCode::from_byte(take_u8(&mut body)?);
                Self::ListenResult {
                    request,
                    code,
                    reason: text(&body),
                }
            }
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok(frame)
    }

    /// Appends the encoded frame to `buf`. DATA payloads over [`MAX_DATA_LEN`] and reasons
    /// over [`MAX_REASON_LEN`] are the caller's bug; reasons are cut, DATA is written as is.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(HEADER_LEN + self.payload_len_hint());
        put_header(buf, self.kind(), self.stream());
        match self {
            Self::Open { target, .. } => {
                buf.put_u8(target.network.to_byte());
                socks5::write_address(&target.address, buf);
            }
            Self::OpenOk { .. } | Self::Fin { .. } => {}
            Self::OpenErr { code, reason, .. }
            | Self::Rst { code, reason, .. }
            | Self::GoAway { code, reason } => {
                buf.put_u8(code.to_byte());
                put_reason(buf, reason);
            }
            Self::Data { payload, .. } => {
                debug_assert!(payload.len() <= MAX_DATA_LEN, "DATA payload too large");
                buf.put_slice(payload);
            }
            Self::Window { increment, .. } => buf.put_u32(*increment),
            Self::Ping { opaque } | Self::Pong { opaque } => buf.put_u64(*opaque),
            Self::Listen {
                request,
                network,
                port,
                target,
            } => {
                buf.put_u32(*request);
                buf.put_u8(network.to_byte());
                buf.put_u16(*port);
                socks5::write_address(target, buf);
            }
            Self::ListenResult {
                request,
                code,
                reason,
            } => {
                buf.put_u32(*request);
                buf.put_u8(code.to_byte());
                put_reason(buf, reason);
            }
        }
    }

    /// The frame as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }

    fn payload_len_hint(&self) -> usize {
        match self {
            Self::Data { payload, .. } => payload.len(),
            Self::Open { target, .. } => 1 + socks5::address_len(&target.address),
            Self::Listen { target, .. } => 7 + socks5::address_len(target),
            _ => 16,
        }
    }
}

/// Writes a DATA header for `stream`; the caller appends up to [`MAX_DATA_LEN`] bytes of
/// payload right after it. Lets a sender build a frame without copying its payload twice.
pub fn put_data_header(buf: &mut BytesMut, stream: u32) {
    put_header(buf, kind::DATA, stream);
}

fn put_header(buf: &mut BytesMut, kind: u8, stream: u32) {
    buf.put_u8(kind);
    buf.put_u8(0);
    buf.put_u32(stream);
}

fn put_reason(buf: &mut BytesMut, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_slice(&reason.as_bytes()[..end]);
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(MAX_REASON_LEN)]).into_owned()
}

fn take_u8(body: &mut Bytes) -> Result<u8, FrameError> {
    if body.remaining() < 1 {
        return Err(FrameError::Short);
    }
    Ok(body.get_u8())
}

fn take_u16(body: &mut Bytes) -> Result<u16, FrameError> {
    if body.remaining() < 2 {
        return Err(FrameError::Short);
    }
    Ok(body.get_u16())
}

fn take_u32(body: &mut Bytes) -> Result<u32, FrameError> {
    if body.remaining() < 4 {
        return Err(FrameError::Short);
    }
    Ok(body.get_u32())
}

fn take_u64(body: &mut Bytes) -> Result<u64, FrameError> {
    if body.remaining() < 8 {
        return Err(FrameError::Short);
    }
    Ok(body.get_u64())
}

fn take_address(body: &mut Bytes) -> Result<Address, FrameError> {
    match socks5::read_address(body)? {
        Some((address, used)) => {
            body.advance(used);
            Ok(address)
        }
        None => Err(FrameError::Short),
    }
}

fn expect_end(body: &Bytes, kind: u8) -> Result<(), FrameError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(FrameError::Trailing(kind))
    }
}
