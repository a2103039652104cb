//! The first bytes of a proxy connection: a PROXY protocol header from trusted balancers, then
//! the byte that tells SOCKS5 (`05`), SOCKS4 (`04`) and HTTP (a letter) apart.

use std::io;
use std::net::SocketAddr;

use mtgate_proto::proxy_protocol::{self, Header};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::proxy::{ProxyKind, ProxyListener};

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SOCKS5.
    Socks5,
    /// SOCKS4 or SOCKS4a.
    Socks4,
    /// HTTP/1.x.
    Http,
}

/// Why a connection was dropped before its protocol started.
#[derive(Debug, thiserror::Error)]
pub enum PreludeError {
    /// The client closed or sent nothing usable.
    #[error("closed before the first byte")]
    Closed,
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// A trusted peer sent no valid PROXY protocol header.
    #[error("{0}")]
    ProxyHeader(#[from] proxy_protocol::Error),
    /// The first byte starts no protocol the listener serves.
    #[error("unknown protocol (first byte {0:#04x})")]
    UnknownProtocol(u8),
}

impl PreludeError {
    /// A reason code for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Io(_) => "io",
            Self::ProxyHeader(_) => "bad_proxy_header",
            Self::UnknownProtocol(_) => "unknown_protocol",
        }
    }
}

/// What the prelude learnt.
#[derive(Debug)]
pub struct Prelude {
    /// The client: the PROXY header's source, or the TCP peer.
    pub peer: SocketAddr,
    /// Bytes read past the PROXY header; they start the protocol.
    pub buffered: Vec<u8>,
    /// The protocol.
    pub protocol: Protocol,
}

/// Reads at most `cap - buf.len()` more bytes into `buf` (at most 4 KiB at a time); `Ok(0)` at
/// end of stream. Errors when `buf` is already full.
pub async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let room = cap.saturating_sub(buf.len()).min(4096);
    if room == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    let start = buf.len();
    buf.resize(start + room, 0);
    let result = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// Runs the prelude (the caller bounds it with the handshake deadline).
pub async fn read(
    stream: &mut TcpStream,
    tcp_peer: SocketAddr,
    config: &ProxyListener,
) -> Result<Prelude, PreludeError> {
    let mut buf = Vec::new();
    let mut peer = tcp_peer;
    let trusted = config
        .proxy_protocol
        .iter()
        .any(|net| net.contains(&tcp_peer.ip().to_canonical()));
    if trusted {
        let cap = proxy_protocol::MAX_V2_LEN;
        loop {
            match Header::parse(&buf)? {
                Some((header, used)) => {
                    if let Some(source) = header.source() {
                        peer = source;
                    }
                    buf.drain(..used);
                    break;
                }
                None => {
                    if read_more(stream, &mut buf, cap).await? == 0 {
                        return Err(PreludeError::Closed);
                    }
                }
            }
        }
    }
    let protocol = match config.kind {
        ProxyKind::Http => Protocol::Http,
        ProxyKind::Socks5 | ProxyKind::Mixed => {
            if buf.is_empty() && read_more(stream, &mut buf, 4096).await? == 0 {
                return Err(PreludeError::Closed);
            }
            match buf[0] {
                0x05 => Protocol::Socks5,
                0x04 => Protocol::Socks4,
                b'A'..=b'Z' | b'a'..=b'z' if config.kind == ProxyKind::Mixed => Protocol::Http,
                other => return Err(PreludeError::UnknownProtocol(other)),
            }
        }
    };
    Ok(Prelude {
        peer,
        buffered: buf,
        protocol,
    })
}
