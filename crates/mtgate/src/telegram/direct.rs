//! Direct mode: dial the DC and open a keyless obfuscated2 stream to it.

use std::time::Duration;

use std::net::SocketAddr;

use mtgate_client::{ConnectError, DialOptions, InFlight, Pool, Stage, connect_addrs};
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::{self, CtrStream, OpenSpec, ProtoTag, StreamKey};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::DcTable;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{DcFailureLabels, DcLabels};

/// A connection to a DC, ready for the relay.
#[derive(Debug)]
pub struct DcConnection {
    /// The socket.
    pub stream: TcpStream,
    /// The 64-byte header to send first.
    pub header: [u8; obfs2::HEADER_LEN],
    /// Encrypts client bytes for the DC (positioned after the header).
    pub encrypt: CtrStream,
    /// Decrypts the DC's bytes; `None` in fast mode, where they already suit the client.
    pub decrypt: Option<CtrStream>,
    /// Through an upstream pool: the member's in-flight count, to hold while `stream` lives.
    pub in_flight: Option<InFlight>,
}

/// How to open the DC side.
#[derive(Debug, Clone)]
pub struct DcRequest<'a> {
    /// The DC the client asked for.
    pub dc: DcId,
    /// The client's transport, passed on so the DC speaks the same framing.
    pub tag: ProtoTag,
    /// In fast mode, the key the proxy encrypts towards the client with.
    pub fast_mode_key: Option<&'a StreamKey>,
    /// Try IPv6 first.
    pub prefer_ipv6: bool,
    /// Budget for the connection.
    pub timeout: Duration,
    /// The upstream pool to go through (`telegram.upstream_pool`); `None` dials directly.
    pub via: Option<&'a Pool>,
}

/// Connects to the DC for `request.dc` and prepares the obfuscated2 header.
pub async fn connect(
    table: &DcTable,
    request: &DcRequest<'_>,
    metrics: &Metrics,
) -> Result<DcConnection, ConnectError> {
    let (addrs, fallback) = table.resolve(request.dc);
    if fallback {
        tracing::debug!(dc = request.dc.0, "unknown DC index, using the default DC");
    }
    let options = DialOptions {
        timeout: request.timeout,
        prefer_ipv6: request.prefer_ipv6,
        keepalive: Some(Duration::from_secs(60)),
        ..DialOptions::default()
    };
    let started = Instant::now();
    let dialed = match request.via {
        Some(pool) => connect_via(pool, &addrs, &options)
            .await
            .map(|(stream, held)| (stream, Some(held))),
        None => connect_addrs(&addrs, &options).await.map(|s| (s, None)),
    };
    let (stream, in_flight) = match dialed {
        Ok(stream) => stream,
        Err(e) => {
            metrics
                .dc_connect_failures
                .get_or_create(&DcFailureLabels {
                    dc: request.dc.0,
                    reason: e.reason(),
                })
                .inc();
            return Err(e);
        }
    };
    metrics
        .dc_connect_seconds
        .get_or_create(&DcLabels { dc: request.dc.0 })
        .observe(started.elapsed().as_secs_f64());
    let spec = OpenSpec {
        tag: request.tag,
        dc: request.dc,
        secret: None,
        key_material: request.fast_mode_key.map(StreamKey::mirrored),
    };
    let opened = obfs2::open(&spec, crate::random::fill);
    Ok(DcConnection {
        stream,
        header: opened.header,
        encrypt: opened.encrypt,
        decrypt: request.fast_mode_key.is_none().then_some(opened.decrypt),
        in_flight,
    })
}

/// Connects to the first of `addrs` (preferred family first) that a member of `pool` reaches,
/// within `options.timeout` for all of them. The pool does its own retries and ejection.
async fn connect_via(
    pool: &Pool,
    addrs: &[SocketAddr],
    options: &DialOptions,
) -> Result<(TcpStream, InFlight), ConnectError> {
    let mut ordered = addrs.to_vec();
    ordered.sort_by_key(|a| a.is_ipv6() != options.prefer_ipv6);
    let attempt = async {
        let mut last = ConnectError::NoAddresses {
            host: "the DC".to_owned(),
        };
        for addr in ordered {
            match pool.connect(addr).await {
                // A DC never speaks first, so nothing can be left behind by the proxy.
                Ok(stream) => match stream.into_tcp() {
                    Ok(tunnel) if tunnel.prefix.is_empty() => {
                        let (tcp, _, held) = tunnel.into_parts();
                        let _ = tcp.set_nodelay(true);
                        return Ok((tcp, held));
                    }
                    _ => {
                        last = ConnectError::Protocol {
                            stage: Stage::Request,
                            detail: "the upstream sent bytes before the client did, or needs TLS"
                                .to_owned(),
                        };
                    }
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    tokio::time::timeout(options.timeout, attempt)
        .await
        .unwrap_or(Err(ConnectError::Timeout {
            stage: Stage::Connect,
            after: options.timeout,
        }))
}
