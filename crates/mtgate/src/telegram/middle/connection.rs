//! One connection to a middle proxy: the handshake (nonces, keys, RPC_HANDSHAKE), then a
//! writer that frames what clients send (and pings every `ping_interval`) and a reader that
//! hands what arrives to the clients by connection id.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::mtproto::middle::consts::{CRYPTO_AES, handshake_flag};
use mtgate_proto::mtproto::middle::crypto::{ConnectionKeys, KeyMaterial};
use mtgate_proto::mtproto::middle::frame::Checksum;
use mtgate_proto::mtproto::middle::handshake::{Handshake, Nonce, ProcessId};
use mtgate_proto::mtproto::middle::message::{MeMessage, ProxyControl};
use mtgate_proto::mtproto::middle::stream::{Opener, Sealer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::MiddleError;
use super::clients::{Clients, Delivery};
use super::counters::Counters;
use crate::config::MiddleConfig;

/// Largest frame accepted from a middle proxy: a client packet (1 MiB) with its header.
const MAX_FRAME: usize = 2 << 20;

/// Frames waiting for the writer at most; senders wait beyond that.
const OUTBOX: usize = 1024;

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// A live connection to a middle proxy, shared by the clients multiplexed over it.
#[derive(Debug)]
pub struct MeConnection {
    /// The middle proxy.
    pub endpoint: SocketAddr,
    /// This proxy's public address on the connection (the NAT-translated local address).
    pub public: SocketAddr,
    /// The frame checksum agreed in the handshake.
    pub checksum: Checksum,
    /// Its clients.
    pub clients: Clients,
    /// The server's totals.
    pub counters: Arc<Counters>,
    out: mpsc::Sender<Vec<u8>>,
    closed: CancellationToken,
}

impl MeConnection {
    /// Queues one message (an encoded RPC payload) for the middle proxy, waiting at most
    /// `wait` for room.
    pub async fn send(&self, payload: Vec<u8>, wait: Duration) -> Result<(), MiddleError> {
        match timeout(wait, self.out.send(payload)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MiddleError::Closed),
            Err(_) => Err(MiddleError::Timeout("send")),
        }
    }

    /// Tells the middle proxy a client left, without waiting.
    pub fn send_close_conn(&self, conn_id: u64) {
        let message = ProxyControl::CloseConn { conn_id }.encode().to_vec();
        if let Err(mpsc::error::TrySendError::Full(message)) = self.out.try_send(message) {
            let out = self.out.clone();
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(10), out.send(message)).await;
            });
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Fires when the connection ends.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }
}

/// A connection whose handshake is done, ready to [`Established::run`].
#[derive(Debug)]
pub struct Established {
    /// The shared handle.
    pub conn: Arc<MeConnection>,
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    opener: Opener,
    sealer: Sealer,
    outbox: mpsc::Receiver<Vec<u8>>,
    ping_interval: Duration,
}

/// Connects to `endpoint` and runs the handshake, all within `budget`.
pub async fn open(
    endpoint: SocketAddr,
    config: &MiddleConfig,
    counters: Arc<Counters>,
    budget: Duration,
) -> Result<Established, MiddleError> {
    timeout(budget, open_inner(endpoint, config, counters))
        .await
        .map_err(|_| MiddleError::Timeout("handshake"))?
}

async fn open_inner(
    endpoint: SocketAddr,
    config: &MiddleConfig,
    counters: Arc<Counters>,
) -> Result<Established, MiddleError> {
    let mut stream = TcpStream::connect(endpoint)
        .await
        .map_err(MiddleError::Connect)?;
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
    let local = stream.local_addr().map_err(MiddleError::Connect)?;
    let public = SocketAddr::new(config.translate(local.ip()), local.port());
    let secret = &config.secret;

    let mut sealer = Sealer::new();
    let mut opener = Opener::new(MAX_FRAME);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();

    let ours = Nonce::aes(secret.key_select(), unix_now(), rand::random());
    sealer.seal(&[&ours.encode()], &mut out);
    stream.write_all(&out).await.map_err(MiddleError::Io)?;
    let theirs = Nonce::decode(&read_payload(&mut stream, &mut opener, &mut buf).await?)
        .map_err(|e| MiddleError::Protocol(format!("nonce: {e}")))?;
    if theirs.key_select != secret.key_select() {
        return Err(MiddleError::Protocol(
            "the middle proxy holds another proxy secret (key selector differs): refresh proxy-secret".into(),
        ));
    }
    if theirs.schema != CRYPTO_AES {
        return Err(MiddleError::Protocol(format!(
            "unsupported crypto schema {}",
            theirs.schema
        )));
    }
    let keys = ConnectionKeys::for_proxy(&KeyMaterial {
        nonce_srv: theirs.nonce,
        nonce_clt: ours.nonce,
        clt_ts: ours.timestamp,
        srv: endpoint,
        clt: public,
        secret: secret.as_bytes(),
    })
    .map_err(|e| MiddleError::Protocol(e.to_string()))?;
    sealer.start_encryption(keys.write.encryptor());
    opener.start_decryption(keys.read.decryptor());

    // Like the official proxy, ask for CRC32C (cheaper with SSE 4.2); a middle proxy that
    // does not set the flag in its answer keeps CRC32.
    let hello = Handshake {
        flags: handshake_flag::CRC32C,
        sender: process_id(public),
        peer: ProcessId([0; 12]),
    };
    out.clear();
    sealer.seal(&[&hello.encode()], &mut out);
    stream.write_all(&out).await.map_err(MiddleError::Io)?;
    let answer = Handshake::decode(&read_payload(&mut stream, &mut opener, &mut buf).await?)
        .map_err(|e| {
            MiddleError::Protocol(format!(
                "handshake: {e} (wrong keys? check nat_info and the proxy secret)"
            ))
        })?;
    if answer.peer != hello.sender {
        return Err(MiddleError::Protocol(
            "handshake answer names another peer".into(),
        ));
    }
    let checksum = if answer.flags & handshake_flag::CRC32C != 0 {
        Checksum::Crc32c
    } else {
        Checksum::Crc32
    };
    sealer.set_checksum(checksum);
    opener.set_checksum(checksum);
    tracing::debug!(%endpoint, ?checksum, "middle-proxy handshake done");

    let (read, write) = stream.into_split();
    let (tx, outbox) = mpsc::channel(OUTBOX);
    let conn = Arc::new(MeConnection {
        endpoint,
        public,
        checksum,
        clients: Clients::new(config.clients_per_connection, config.client_queue),
        counters,
        out: tx,
        closed: CancellationToken::new(),
    });
    Ok(Established {
        conn,
        read,
        write,
        opener,
        sealer,
        outbox,
        ping_interval: config.ping_interval,
    })
}

impl Established {
    /// Serves the connection until it fails or `stop` fires; then its clients are dropped.
    pub async fn run(self, stop: &CancellationToken) -> Result<(), MiddleError> {
        let Self {
            conn,
            read,
            write,
            opener,
            sealer,
            outbox,
            ping_interval,
        } = self;
        let result = tokio::select! {
            r = writer(write, sealer, outbox, ping_interval) => r,
            r = reader(read, opener, &conn, ping_interval) => r,
            () = stop.cancelled() => Ok(()),
        };
        conn.closed.cancel();
        conn.clients.clear();
        result
    }
}

async fn writer(
    mut write: OwnedWriteHalf,
    mut sealer: Sealer,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    ping_interval: Duration,
) -> Result<(), MiddleError> {
    let mut ping = tokio::time::interval(ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut batch = Vec::with_capacity(64);
    let mut out = Vec::new();
    let write_budget = ping_interval * 3;
    loop {
        tokio::select! {
            n = outbox.recv_many(&mut batch, 64) => {
                if n == 0 {
                    return Ok(());
                }
                for payload in batch.drain(..) {
                    sealer.seal(&[&payload], &mut out);
                }
            }
            _ = ping.tick() => {
                let id = rand::random();
                sealer.seal(&[&ProxyControl::Ping { id }.encode()], &mut out);
            }
        }
        timeout(write_budget, write.write_all(&out))
            .await
            .map_err(|_| MiddleError::Timeout("write"))?
            .map_err(MiddleError::Io)?;
        out.clear();
        if out.capacity() > 1 << 20 {
            out = Vec::new();
        }
    }
}

async fn reader(
    mut read: OwnedReadHalf,
    mut opener: Opener,
    conn: &MeConnection,
    ping_interval: Duration,
) -> Result<(), MiddleError> {
    let mut buf = vec![0u8; READ_CHUNK];
    // Our pings are answered, so a healthy middle proxy is never silent this long.
    let silence = ping_interval * 3;
    loop {
        let n = timeout(silence, read.read(&mut buf))
            .await
            .map_err(|_| MiddleError::Timeout("silent"))?
            .map_err(MiddleError::Io)?;
        if n == 0 {
            return Err(MiddleError::Closed);
        }
        opener.feed(&buf[..n]);
        while let Some(payload) = opener
            .next_payload()
            .map_err(|e| MiddleError::Protocol(e.to_string()))?
        {
            dispatch(conn, &payload);
        }
    }
}

fn dispatch(conn: &MeConnection, payload: &[u8]) {
    let message = match MeMessage::decode(payload) {
        Ok(m) => m,
        Err(e) => {
            // Unknown messages are skipped, as the official proxy does.
            tracing::debug!(endpoint = %conn.endpoint, error = %e, "unexpected message from the middle proxy");
            return;
        }
    };
    match message {
        MeMessage::ProxyAns {
            conn_id, payload, ..
        } => match conn.clients.deliver(conn_id, payload.to_vec()) {
            Delivery::Queued => Counters::inc(&conn.counters.forwarded_responses),
            Delivery::Unknown => Counters::inc(&conn.counters.dropped_responses),
            Delivery::Overflowed => {
                Counters::inc(&conn.counters.dropped_responses);
                tracing::debug!(endpoint = %conn.endpoint, "client too slow: queue overflowed, closed");
                conn.send_close_conn(conn_id);
            }
        },
        MeMessage::SimpleAck { conn_id, confirm } => {
            Counters::inc(&conn.counters.forwarded_simple_acks);
            conn.clients.quick_ack(conn_id, confirm);
        }
        MeMessage::CloseExt { conn_id } => conn.clients.close(conn_id),
        MeMessage::Ping { id } => {
            // Never wait here: the writer may itself be waiting for the middle proxy, which
            // may be waiting for us to read. A pong dropped on a full outbox is retried by the
            // next ping.
            let _ = conn
                .out
                .try_send(ProxyControl::Pong { id }.encode().to_vec());
        }
        MeMessage::Pong { .. } => {}
    }
}

async fn read_payload(
    stream: &mut TcpStream,
    opener: &mut Opener,
    buf: &mut [u8],
) -> Result<Vec<u8>, MiddleError> {
    loop {
        if let Some(p) = opener
            .next_payload()
            .map_err(|e| MiddleError::Protocol(e.to_string()))?
        {
            return Ok(p);
        }
        let n = stream.read(buf).await.map_err(MiddleError::Io)?;
        if n == 0 {
            return Err(MiddleError::Closed);
        }
        opener.feed(&buf[..n]);
    }
}

fn process_id(public: SocketAddr) -> ProcessId {
    let ip = match public.ip() {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(_) => [0; 4],
    };
    ProcessId::new(
        ip,
        public.port(),
        std::process::id() as u16,
        unix_now() as i32,
    )
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
