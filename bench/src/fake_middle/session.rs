//! One connection of the fake middle proxy.

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_proto::mtproto::middle::consts::{CRYPTO_AES, flag, handshake_flag};
use mtgate_proto::mtproto::middle::crypto::{ConnectionKeys, KeyMaterial};
use mtgate_proto::mtproto::middle::frame::Checksum;
use mtgate_proto::mtproto::middle::handshake::{Handshake, Nonce, ProcessId};
use mtgate_proto::mtproto::middle::message::{MeMessage, ProxyControl, ProxyReq};
use mtgate_proto::mtproto::middle::stream::{Opener, Sealer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{CLOSE_ME, ERROR_ME, FakeMiddleConfig, FakeMiddleStats, HttpSeen, Request};

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("closed by the proxy")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
}

fn protocol(e: impl std::fmt::Display) -> SessionError {
    SessionError::Protocol(e.to_string())
}

struct Conn {
    stream: TcpStream,
    opener: Opener,
    sealer: Sealer,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    async fn next(&mut self, wait: Duration) -> Result<Vec<u8>, SessionError> {
        loop {
            if let Some(p) = self.opener.next_payload().map_err(protocol)? {
                return Ok(p);
            }
            let n = timeout(wait, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| SessionError::Timeout)??;
            if n == 0 {
                return Err(SessionError::Closed);
            }
            self.opener.feed(&self.buf[..n]);
        }
    }

    async fn send(&mut self, parts: &[&[u8]]) -> Result<(), SessionError> {
        self.out.clear();
        self.sealer.seal(parts, &mut self.out);
        timeout(Duration::from_secs(10), self.stream.write_all(&self.out))
            .await
            .map_err(|_| SessionError::Timeout)??;
        Ok(())
    }
}

pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    connection: usize,
    config: &FakeMiddleConfig,
    stats: &FakeMiddleStats,
) -> Result<(), SessionError> {
    let local = stream.local_addr()?;
    let mut conn = Conn {
        stream,
        opener: Opener::new(config.max_frame),
        sealer: Sealer::new(),
        buf: vec![0; 64 * 1024],
        out: Vec::new(),
    };
    let handshake = async {
        let theirs =
            Nonce::decode(&conn.next(config.handshake_timeout).await?).map_err(protocol)?;
        if theirs.key_select != config.secret.key_select() || theirs.schema != CRYPTO_AES {
            return Err(protocol("wrong key selector or crypto schema"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let ours = Nonce::aes(config.secret.key_select(), now, rand::random());
        conn.send(&[&ours.encode()]).await?;
        let keys = ConnectionKeys::for_middle_proxy(&KeyMaterial {
            nonce_srv: ours.nonce,
            nonce_clt: theirs.nonce,
            clt_ts: theirs.timestamp,
            srv: local,
            clt: peer,
            secret: config.secret.as_bytes(),
        })
        .map_err(protocol)?;
        conn.opener.start_decryption(keys.read.decryptor());
        conn.sealer.start_encryption(keys.write.encryptor());
        let hello =
            Handshake::decode(&conn.next(config.handshake_timeout).await?).map_err(protocol)?;
        let asked = hello.flags & handshake_flag::CRC32C != 0;
        let agreed = asked && config.crc32c;
        let answer = Handshake {
            flags: if agreed { handshake_flag::CRC32C } else { 0 },
            sender: ProcessId(*b"FAKEMIDDLEME"),
            peer: hello.sender,
        };
        conn.send(&[&answer.encode()]).await?;
        if agreed {
            conn.opener.set_checksum(Checksum::Crc32c);
            conn.sealer.set_checksum(Checksum::Crc32c);
        }
        let mut seen = stats.lock();
        seen.crc32c_asked += usize::from(asked);
        seen.crc32c_used += usize::from(agreed);
        Ok::<(), SessionError>(())
    };
    if let Err(e) = handshake.await {
        stats.lock().refused += 1;
        return Err(e);
    }
    stats.lock().handshakes += 1;
    // Middle proxies ping too; the proxy must answer.
    let mut ping = Vec::new();
    MeMessage::Ping { id: 0x5eed }.encode(&mut ping);
    conn.send(&[&ping]).await?;

    loop {
        let payload = conn.next(config.idle_timeout).await?;
        if let Some(control) = ProxyControl::decode(&payload).map_err(protocol)? {
            match control {
                ProxyControl::CloseConn { conn_id } => stats.lock().closed.push(conn_id),
                ProxyControl::Ping { id } => {
                    stats.lock().pings += 1;
                    conn.send(&[&ProxyControl::Pong { id }.encode()]).await?;
                }
                ProxyControl::Pong { id } => {
                    if id == 0x5eed {
                        stats.lock().pongs += 1;
                    }
                }
            }
            continue;
        }
        let req = ProxyReq::decode(&payload).map_err(protocol)?;
        stats.lock().requests.push(Request {
            connection,
            conn_id: req.conn_id,
            flags: req.flags,
            client: req.client,
            proxy: req.proxy,
            ad_tag: req.ad_tag,
            http: req.http.map(|h| HttpSeen {
                origin: h.origin.to_vec(),
                referer: h.referer.to_vec(),
                user_agent: h.user_agent.to_vec(),
            }),
            len: req.payload.len(),
        });
        let mut answer = Vec::with_capacity(16 + req.payload.len());
        if req.flags & flag::QUICKACK != 0 && req.payload.len() >= 4 {
            let confirm = u32::from_le_bytes(req.payload[..4].try_into().expect("4 bytes"));
            MeMessage::SimpleAck {
                conn_id: req.conn_id,
                confirm,
            }
            .encode(&mut answer);
            conn.send(&[&answer]).await?;
            answer.clear();
        }
        let error = (-429i32).to_le_bytes();
        let message = if req.payload.get(8..16) == Some(ERROR_ME) {
            MeMessage::ProxyAns {
                flags: 0x10,
                conn_id: req.conn_id,
                payload: &error,
            }
        } else if req.payload.get(8..16) == Some(CLOSE_ME) {
            MeMessage::CloseExt {
                conn_id: req.conn_id,
            }
        } else {
            MeMessage::ProxyAns {
                flags: 0,
                conn_id: req.conn_id,
                payload: req.payload,
            }
        };
        message.encode(&mut answer);
        conn.send(&[&answer]).await?;
    }
}
