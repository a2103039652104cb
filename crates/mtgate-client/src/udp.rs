//! UDP through a SOCKS5 proxy (UDP ASSOCIATE).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;
use mtgate_proto::address::Address;
use mtgate_proto::socks5::UdpHeader;
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;

use crate::chain::Chain;
use crate::connector::{self, ConnectOptions, Finish};
use crate::direct;
use crate::error::{ConnectError, Stage};
use crate::stream::ProxyStream;
use crate::target::IntoTarget;

/// Largest datagram handled, header included.
const MAX_DATAGRAM: usize = 65_535;

/// A UDP association: datagrams sent with [`Socks5Datagram::send_to`] are relayed by the proxy
/// to their destination, and answers come back through [`Socks5Datagram::recv_from`] with the
/// address they came from.
///
/// The association lives as long as its TCP control connection, which this value owns; drop
/// it to end the association. Fragmented datagrams (FRAG ≠ 0) are dropped, as most relays do.
#[derive(Debug)]
pub struct Socks5Datagram {
    control: ProxyStream,
    socket: UdpSocket,
    relay: SocketAddr,
}

impl Socks5Datagram {
    pub(crate) async fn associate(
        chain: &Chain,
        options: &ConnectOptions,
    ) -> Result<Self, ConnectError> {
        let Some(last) = chain.hops().last() else {
            return Err(ConnectError::Unsupported(
                "UDP ASSOCIATE needs a SOCKS5 proxy",
            ));
        };
        if !last.kind().is_socks5() {
            return Err(ConnectError::Unsupported(
                "UDP ASSOCIATE needs a SOCKS5 proxy as the last hop",
            ));
        }
        // We do not know our address as the proxy sees it: zeros ask it to accept any source.
        let any = Address::unspecified();
        let opened = connector::open(
            chain.hops(),
            &any,
            Finish::UdpAssociate,
            options,
            options.timeout,
        )
        .await?;
        let deadline = opened.deadline;
        let relay = match opened.bound.clone() {
            Some(Address::Socket(addr)) if !addr.ip().is_unspecified() => addr,
            // Zeros (or a name) mean "the address you reached me at".
            other => {
                let port = other.map(|a| a.port()).unwrap_or(0);
                let peer = if chain.hops().len() == 1 {
                    opened.transport.tcp().peer_addr().ok()
                } else {
                    None
                };
                match peer {
                    Some(peer) => SocketAddr::new(peer.ip(), port),
                    None => {
                        let addrs = deadline
                            .run(
                                Stage::Resolve,
                                direct::resolve(last.host(), port, deadline.remaining()),
                            )
                            .await?;
                        addrs[0]
                    }
                }
            }
        };
        let local: SocketAddr = match (relay.ip(), options.dial.bind) {
            (_, Some(ip)) => SocketAddr::new(ip, 0),
            (IpAddr::V4(_), None) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            (IpAddr::V6(_), None) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| ConnectError::io(Stage::Request, e))?;
        // Connecting filters out datagrams from anyone but the relay.
        socket
            .connect(relay)
            .await
            .map_err(|e| ConnectError::io(Stage::Request, e))?;
        let control = opened.into_stream(chain.hops().into(), any);
        Ok(Self {
            control,
            socket,
            relay,
        })
    }

    /// The proxy's relay address, where datagrams go.
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay
    }

    /// The local UDP socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The TCP control connection.
    pub fn control(&self) -> &ProxyStream {
        &self.control
    }

    /// Sends `data` to `target` through the relay. Returns the payload bytes sent.
    pub async fn send_to(&self, data: &[u8], target: impl IntoTarget) -> io::Result<usize> {
        let target = target
            .into_target()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let header = UdpHeader::new(target);
        let mut packet = Vec::with_capacity(header.serialized_len() + data.len());
        header.write_to_buf(&mut packet);
        packet.put_slice(data);
        if packet.len() > MAX_DATAGRAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            ));
        }
        let sent = self.socket.send(&packet).await?;
        Ok(sent.saturating_sub(header.serialized_len()))
    }

    /// Receives one datagram into `buf`; returns its length and where it came from. Malformed
    /// and fragmented datagrams are skipped. Payload beyond `buf.len()` is cut.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        // Room for the largest header (a 255-byte name) in front of a payload of `buf.len()`.
        let mut packet = vec![0u8; (buf.len() + 3 + 1 + 1 + 255 + 2).min(MAX_DATAGRAM)];
        loop {
            let n = self.socket.recv(&mut packet).await?;
            let Ok(Some((header, used))) = UdpHeader::parse(&packet[..n]) else {
                continue;
            };
            if header.frag != 0 {
                continue;
            }
            let payload = &packet[used..n];
            let len = payload.len().min(buf.len());
            buf[..len].copy_from_slice(&payload[..len]);
            return Ok((len, header.address));
        }
    }

    /// Resolves when the proxy closes the control connection, which ends the association.
    pub async fn closed(&mut self) {
        let mut scratch = [0u8; 256];
        // Control connections carry nothing after the reply; read until EOF or error.
        while let Ok(n) = self.control.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    }
}
