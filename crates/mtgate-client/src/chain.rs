//! Chains: a list of proxies, each reached through the ones before it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::address::Address;

use crate::bind::BindListener;
use crate::connector::{self, ConnectOptions, Finish};
use crate::error::ConnectError;
use crate::proxy::{Proxy, ProxyUrlError};
use crate::stream::ProxyStream;
use crate::target::IntoTarget;
use crate::udp::Socks5Datagram;

/// Proxies used in order: the first is dialled, each next one is reached through the tunnel of
/// the previous, and the last one connects to the target. Any kinds can be mixed, including
/// `https://` hops (TLS inside the tunnel). An empty chain connects directly.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Chain {
    hops: Arc<[Proxy]>,
}

impl Chain {
    /// A chain through `hops`, in order.
    pub fn new(hops: impl IntoIterator<Item = Proxy>) -> Self {
        Self {
            hops: hops.into_iter().collect(),
        }
    }

    /// The empty chain: connections go straight to the target.
    pub fn direct() -> Self {
        Self::default()
    }

    /// Parses each URL in order.
    pub fn from_urls<S: AsRef<str>>(urls: &[S]) -> Result<Self, ProxyUrlError> {
        let hops = urls
            .iter()
            .map(|u| u.as_ref().parse())
            .collect::<Result<Vec<Proxy>, _>>()?;
        Ok(Self::new(hops))
    }

    /// The hops.
    pub fn hops(&self) -> &[Proxy] {
        &self.hops
    }

    /// Whether the chain has no hop.
    pub fn is_direct(&self) -> bool {
        self.hops.is_empty()
    }

    /// Connects to `target` with default options.
    pub async fn connect(&self, target: impl IntoTarget) -> Result<ProxyStream, ConnectError> {
        self.connect_with(target, &ConnectOptions::default()).await
    }

    /// Connects to `target` within `options.timeout`, covering every hop. Errors of a chain of
    /// two or more hops come wrapped in [`ConnectError::Hop`] naming the failing hop.
    pub async fn connect_with(
        &self,
        target: impl IntoTarget,
        options: &ConnectOptions,
    ) -> Result<ProxyStream, ConnectError> {
        let target = target.into_target()?;
        self.connect_within(&target, options, options.timeout).await
    }

    /// [`Chain::connect_with`] within `budget` instead of `options.timeout`.
    pub(crate) async fn connect_within(
        &self,
        target: &Address,
        options: &ConnectOptions,
        budget: Duration,
    ) -> Result<ProxyStream, ConnectError> {
        let opened = connector::open(&self.hops, target, Finish::Connect, options, budget).await?;
        Ok(opened.into_stream(self.hops.clone(), target.clone()))
    }

    /// Asks the last hop (a SOCKS5 proxy) to listen for one connection from `peer` (SOCKS5
    /// BIND). `peer` is the address the connection is expected from; many servers accept
    /// zeros.
    pub async fn bind(
        &self,
        peer: impl IntoTarget,
        options: &ConnectOptions,
    ) -> Result<BindListener, ConnectError> {
        BindListener::open(self, peer.into_target()?, options).await
    }

    /// Opens a UDP association with the last hop (a SOCKS5 proxy). Datagrams go from a local
    /// UDP socket straight to the relay address the proxy names, so with several hops that
    /// address must be reachable from here.
    pub async fn udp_associate(
        &self,
        options: &ConnectOptions,
    ) -> Result<Socks5Datagram, ConnectError> {
        Socks5Datagram::associate(self, options).await
    }
}

impl From<Proxy> for Chain {
    fn from(proxy: Proxy) -> Self {
        Self::new([proxy])
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hops.is_empty() {
            return f.write_str("direct");
        }
        for (i, hop) in self.hops.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{hop}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({self})")
    }
}

impl Proxy {
    /// Connects to `target` through this proxy with default options.
    pub async fn connect(&self, target: impl IntoTarget) -> Result<ProxyStream, ConnectError> {
        Chain::from(self.clone()).connect(target).await
    }

    /// Connects to `target` through this proxy.
    pub async fn connect_with(
        &self,
        target: impl IntoTarget,
        options: &ConnectOptions,
    ) -> Result<ProxyStream, ConnectError> {
        Chain::from(self.clone())
            .connect_with(target, options)
            .await
    }
}
