//! An authenticated client's session in middle-proxy mode.
//!
//! Unlike direct mode, the client's stream is not relayed byte for byte: each frame of its
//! transport is decoded (padding stripped), checked as the official proxy does, and sent as
//! one RPC_PROXY_REQ with the client's and the proxy's addresses, the flags of its
//! transport and the ad tag. What comes back for its connection id is framed again in its
//! transport (0..=3 padding bytes in padded intermediate), quick acks included; RPC_CLOSE_EXT
//! closes it. When it leaves, dropping the [`ClientLink`] sends RPC_CLOSE_CONN.

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_proto::mtproto::faketls::record::{self, MAX_SERVER_RECORD, RecordReader};
use mtgate_proto::mtproto::middle::message::{ProxyReq, check_client_packet, client_flags};
use mtgate_proto::mtproto::obfs2::{CtrStream, ProtoTag};
use mtgate_proto::mtproto::transport::{self, FrameError, MAX_SERVER_PADDING};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

use super::handshake::{Established, Mode};
use crate::config::AdTag;
use crate::relay::ConnEntry;
use crate::relay::pump::write_all;
use crate::telegram::middle::ClientLink;
use crate::telegram::middle::clients::ToClient;
use crate::telegram::middle::counters::Counters;

/// Bytes read from the client at once.
const READ_CHUNK: usize = 16 * 1024;

/// How a middle-mode session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client left, or idled out.
    Finished,
    /// Killed by the proxy (shutdown, memory pressure).
    Killed,
    /// The middle proxy closed the client, its connection died, or the client's queue
    /// overflowed.
    Middle(&'static str),
    /// The client broke a rule or its socket failed.
    Client(&'static str),
}

/// Everything the session needs besides the client socket.
#[derive(Debug)]
pub struct MiddleSession<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The proxy's public address as the client reached it.
    pub proxy: SocketAddr,
    /// The ad tag to send.
    pub ad_tag: Option<AdTag>,
    /// Largest client frame.
    pub max_frame: usize,
    /// Close after this long without traffic.
    pub idle_timeout: Duration,
    /// The registry entry (kill switch).
    pub entry: &'a ConnEntry,
    /// Bytes client → Telegram.
    pub up: &'a Counter,
    /// Bytes Telegram → client.
    pub down: &'a Counter,
}

struct Client<'a> {
    stream: &'a TcpStream,
    tag: ProtoTag,
    tls: bool,
    records: Option<RecordReader>,
    decrypt: CtrStream,
    encrypt: CtrStream,
    out: Vec<u8>,
    write_timeout: Duration,
}

/// Relays between the client and its middle-proxy connection until either ends.
pub async fn run(
    stream: &TcpStream,
    est: Established,
    mut link: ClientLink,
    s: MiddleSession<'_>,
) -> End {
    let Established {
        tag,
        mode,
        decrypt,
        encrypt,
        records,
        pending,
        ..
    } = est;
    let mut client = Client {
        stream,
        tag,
        tls: mode == Mode::FakeTls,
        records,
        decrypt,
        encrypt,
        out: Vec::new(),
        write_timeout: s.idle_timeout,
    };
    // What the client sent, decrypted, not yet forwarded. Emptied (and freed) between frames,
    // so that an idle client holds no buffer.
    let mut inbox = pending;
    // One timer and one kill-switch future for the whole session, not one per message.
    let idle = sleep_until(Instant::now() + s.idle_timeout);
    tokio::pin!(idle);
    let killed = s.entry.killed().cancelled();
    tokio::pin!(killed);
    loop {
        if let Err(end) = forward_frames(&mut inbox, tag, &mut link, &s).await {
            return end;
        }
        // A frame is never longer than max_frame; more undecoded bytes than that is abuse.
        if inbox.len() > s.max_frame + 8 {
            return End::Client("frame_too_large");
        }
        tokio::select! {
            readable = stream.readable() => {
                if readable.is_err() {
                    return End::Client("io");
                }
                match client.read(&mut inbox) {
                    Ok(true) => {
                        idle.as_mut().reset(Instant::now() + s.idle_timeout);
                        s.entry.touch();
                    }
                    Ok(false) => {}
                    Err(reason) => return reason,
                }
            }
            message = link.queue.recv() => {
                let result = match message {
                    Some(ToClient::Packet(p)) => {
                        s.down.inc_by(p.len() as u64);
                        client.send_packet(&p).await
                    }
                    Some(ToClient::QuickAck(token)) => client.send_quick_ack(token).await,
                    Some(ToClient::Close(reason)) => return End::Middle(reason.as_str()),
                    None => return End::Middle("middle_connection_lost"),
                };
                if let Err(reason) = result {
                    return End::Client(reason);
                }
                idle.as_mut().reset(Instant::now() + s.idle_timeout);
                s.entry.touch();
            }
            () = &mut idle => return End::Finished,
            () = &mut killed => return End::Killed,
        }
    }
}

/// Sends every whole frame in `inbox` to the middle proxy and drops it from `inbox`.
async fn forward_frames(
    inbox: &mut Vec<u8>,
    tag: ProtoTag,
    link: &mut ClientLink,
    s: &MiddleSession<'_>,
) -> Result<(), End> {
    let mut used = 0;
    loop {
        let decoded = transport::decode(tag, &inbox[used..], s.max_frame).map_err(|e| {
            End::Client(match e {
                FrameError::TooLarge { .. } => "frame_too_large",
                _ => "bad_frame",
            })
        })?;
        let Some((frame, n)) = decoded else { break };
        if let Err(e) = check_client_packet(frame.payload) {
            tracing::debug!(peer = %s.peer, error = %e, "client packet not forwarded");
            return Err(End::Client("bad_packet"));
        }
        let req = ProxyReq {
            flags: client_flags(tag, frame.quick_ack, frame.payload),
            conn_id: link.id,
            client: s.peer,
            proxy: s.proxy,
            ad_tag: s.ad_tag,
            http: None,
            payload: frame.payload,
        };
        s.up.inc_by(frame.payload.len() as u64);
        Counters::inc(&link.conn.counters.forwarded_queries);
        link.conn
            .send(req.encode(), s.idle_timeout)
            .await
            .map_err(|_| End::Middle("middle_send"))?;
        used += n;
    }
    if used == inbox.len() {
        *inbox = Vec::new();
    } else {
        inbox.drain(..used);
    }
    Ok(())
}

impl Client<'_> {
    /// Appends what the client sent, unwrapped and decrypted, to `inbox`. `Ok(false)`:
    /// nothing after all; `Err(End::Finished)`: the client closed.
    fn read(&mut self, inbox: &mut Vec<u8>) -> Result<bool, End> {
        let start = inbox.len();
        inbox.resize(start + READ_CHUNK, 0);
        let n = match self.stream.try_read(&mut inbox[start..]) {
            Ok(0) => return Err(End::Finished),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(_) => return Err(End::Client("io")),
        };
        let got = &mut inbox[start..start + n];
        let n = match &mut self.records {
            Some(records) => records
                .unwrap_in_place(got)
                .map_err(|_| End::Client("bad_tls_record"))?,
            None => n,
        };
        self.decrypt.apply(&mut inbox[start..start + n]);
        inbox.truncate(start + n);
        if inbox.is_empty() {
            *inbox = Vec::new();
        }
        // Zero bytes after unwrapping (a record header only) is not the end of the stream.
        Ok(n > 0)
    }

    async fn send_packet(&mut self, payload: &[u8]) -> Result<(), &'static str> {
        if payload.is_empty() || !payload.len().is_multiple_of(4) {
            return Err("bad_answer");
        }
        let mut padding = [0u8; MAX_SERVER_PADDING];
        let padding: &[u8] = if self.tag == ProtoTag::Padded {
            let padding = &mut padding[..crate::random::in_range(0..=MAX_SERVER_PADDING)];
            crate::random::fill(padding);
            padding
        } else {
            &[]
        };
        let mut plain = Vec::with_capacity(payload.len() + 8);
        transport::encode(self.tag, payload, false, padding, &mut plain);
        self.send(plain).await
    }

    async fn send_quick_ack(&mut self, token: u32) -> Result<(), &'static str> {
        self.send(transport::quick_ack_reply(self.tag, token).to_vec())
            .await
    }

    async fn send(&mut self, mut plain: Vec<u8>) -> Result<(), &'static str> {
        self.encrypt.apply(&mut plain);
        let bytes = if self.tls {
            self.out.clear();
            for piece in plain.chunks(MAX_SERVER_RECORD) {
                self.out
                    .extend_from_slice(&record::application_data_header(piece.len()));
                self.out.extend_from_slice(piece);
            }
            &self.out
        } else {
            &plain
        };
        let result = match timeout(self.write_timeout, write_all(self.stream, bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("io"),
            Err(_) => Err("write_timeout"),
        };
        // Idle clients keep no buffer.
        self.out = Vec::new();
        result
    }
}
