//! SOCKS5 BIND: the proxy listens, and one peer connects to it.

use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::address::Address;
use tokio::time::timeout;

use crate::chain::Chain;
use crate::connector::{self, ConnectOptions, Finish, Opened};
use crate::error::{ConnectError, Stage};
use crate::handshake::{self, HandshakeIo};
use crate::proxy::Proxy;
use crate::stream::ProxyStream;

/// A pending BIND: the proxy listens at [`BindListener::bound_addr`]; tell the peer to connect
/// there, then [`BindListener::accept`].
pub struct BindListener {
    opened: Opened,
    hops: Arc<[Proxy]>,
    bound: Address,
}

impl std::fmt::Debug for BindListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindListener")
            .field("bound", &self.bound)
            .finish()
    }
}

impl BindListener {
    pub(crate) async fn open(
        chain: &Chain,
        peer: Address,
        options: &ConnectOptions,
    ) -> Result<Self, ConnectError> {
        if !chain.hops().last().is_some_and(|p| p.kind().is_socks5()) {
            return Err(ConnectError::Unsupported(
                "BIND needs a SOCKS5 proxy as the last hop",
            ));
        }
        let mut opened =
            connector::open(chain.hops(), &peer, Finish::Bind, options, options.timeout).await?;
        let mut bound = opened.bound.take().unwrap_or_else(Address::unspecified);
        // A server listening on all interfaces reports zeros: the proxy's own address is
        // where peers reach it.
        if let (Address::Socket(addr), Some(hop)) = (&bound, chain.hops().last())
            && addr.ip().is_unspecified()
        {
            bound = Address::from_host(hop.host(), addr.port())?;
        }
        Ok(Self {
            opened,
            hops: chain.hops().into(),
            bound,
        })
    }

    /// Where the proxy listens for the peer.
    pub fn bound_addr(&self) -> &Address {
        &self.bound
    }

    /// Waits up to `wait` for the peer to connect; returns the stream to it and its address
    /// (the second BIND reply).
    pub async fn accept(self, wait: Duration) -> Result<(ProxyStream, Address), ConnectError> {
        let Self {
            mut opened, hops, ..
        } = self;
        let leftover = std::mem::take(&mut opened.leftover);
        let mut hs = HandshakeIo::new(&mut opened.transport, leftover);
        let peer = match timeout(wait, handshake::socks5_read_reply(&mut hs, Stage::Accept)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ConnectError::Timeout {
                    stage: Stage::Accept,
                    after: wait,
                });
            }
        };
        opened.leftover = hs.into_leftover();
        opened.bound = Some(peer.clone());
        Ok((opened.into_stream(hops, peer.clone()), peer))
    }
}
