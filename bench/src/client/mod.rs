//! An MTProto proxy client, as a Telegram app behaves towards a proxy.
//!
//! | secret | on the wire |
//! |---|---|
//! | plain | obfuscated2 header keyed by the secret; abridged or intermediate inside (chosen) |
//! | `dd` | the same with padded intermediate |
//! | `ee` | a ClientHello keyed by the secret, the proxy's answer verified, then an optional ChangeCipherSpec and everything in ApplicationData records; padded intermediate inside |
//! | none ([`Target::Direct`]) | a keyless obfuscated2 header straight to a (fake) DC |
//!
//! The 64-byte header is sent together with the first frame, as tdlib does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mtgate_bench::client::{ClientConfig, MtprotoConnection, Target};
//! use mtgate_proto::mtproto::secret::ClientSecret;
//! let secret = ClientSecret::parse("ee0123456789abcdef0123456789abcdef6578616d706c652e636f6d")?;
//! let config = ClientConfig::new(Target::Proxy(secret));
//! let mut conn = MtprotoConnection::connect("127.0.0.1:4433".parse()?, &config).await?;
//! conn.echo(&[1, 2, 3, 4]).await?;
//! # Ok(()) }
//! ```

mod error;
mod fake_tls;
mod framed;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::{self, OpenSpec, ProtoTag};
use mtgate_proto::mtproto::secret::ClientSecret;
use mtgate_proto::mtproto::transport::DEFAULT_MAX_FRAME;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

pub use error::{ClientError, Stage};
pub use framed::{FrameReader, FrameWriter, MAX_CLIENT_PADDING, encode_frame};
pub use wire::{WireReader, WireWriter, Wrapping};

/// Whom the client talks to.
#[derive(Debug, Clone)]
pub enum Target {
    /// An MTProto proxy, with the secret from its link.
    Proxy(ClientSecret),
    /// A DC (or a fake one) directly: obfuscated2 without a key.
    Direct,
}

impl Target {
    /// A short name of the mode for reports: `plain`, `dd`, `ee` or `direct`. Never the key.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::Proxy(ClientSecret::Plain(_)) => "plain",
            Self::Proxy(ClientSecret::Padded(_)) => "dd",
            Self::Proxy(ClientSecret::FakeTls { .. }) => "ee",
            Self::Direct => "direct",
        }
    }
}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Proxy (with its secret) or direct.
    pub target: Target,
    /// The DC index put into the header.
    pub dc: DcId,
    /// The transport when the secret does not impose one (plain secrets and direct mode);
    /// `dd` and `ee` secrets always use padded intermediate.
    pub transport: ProtoTag,
    /// With fake TLS, send a ChangeCipherSpec record before the first data record.
    pub change_cipher_spec: bool,
    /// Deadline of each step that waits on the peer (connect, handshake, each read and write).
    pub timeout: Duration,
    /// Largest frame accepted from the peer.
    pub max_frame: usize,
}

impl ClientConfig {
    /// DC 2, intermediate for plain secrets, ChangeCipherSpec sent, 10 s deadlines.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            dc: DcId(2),
            transport: ProtoTag::Intermediate,
            change_cipher_spec: true,
            timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// The transport this configuration speaks inside the obfuscated stream.
    pub fn effective_transport(&self) -> ProtoTag {
        match &self.target {
            Target::Proxy(ClientSecret::Padded(_) | ClientSecret::FakeTls { .. }) => {
                ProtoTag::Padded
            }
            Target::Proxy(ClientSecret::Plain(_)) | Target::Direct => self.transport,
        }
    }
}

/// Whether `echoed` is what an echo of `sent` looks like after a round trip in `transport`.
///
/// In padded intermediate a receiver keeps `len & !3` bytes, so padding of 4 bytes or more
/// (tdlib pads with up to 15) survives as part of the payload: the echo is then `sent` plus up
/// to 12 trailing bytes. MTProto messages carry their own length, so Telegram ignores them.
pub fn is_echo_of(transport: ProtoTag, sent: &[u8], echoed: &[u8]) -> bool {
    match transport {
        ProtoTag::Padded => {
            echoed.starts_with(sent) && echoed.len() - sent.len() <= MAX_CLIENT_PADDING & !3
        }
        ProtoTag::Abridged | ProtoTag::Intermediate => echoed == sent,
    }
}

/// An established connection through a proxy (or straight to a DC).
#[derive(Debug)]
pub struct MtprotoConnection {
    reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
    transport: ProtoTag,
}

impl MtprotoConnection {
    /// Connects, runs fake TLS for `ee` secrets and prepares the obfuscated2 stream. The
    /// header itself leaves with the first frame (or [`MtprotoConnection::flush_header`]).
    pub async fn connect(addr: SocketAddr, config: &ClientConfig) -> Result<Self, ClientError> {
        let stream = timeout(config.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(Stage::Connect))?
            .map_err(ClientError::io(Stage::Connect))?;
        stream
            .set_nodelay(true)
            .map_err(ClientError::io(Stage::Connect))?;
        let (mut read_half, mut write_half) = stream.into_split();

        let (wrapping, leftover) = match &config.target {
            Target::Proxy(ClientSecret::FakeTls { secret, domain }) => {
                let leftover = fake_tls::handshake(
                    &mut read_half,
                    &mut write_half,
                    secret,
                    domain,
                    config.timeout,
                )
                .await?;
                let wrapping = Wrapping::Tls {
                    change_cipher_spec: config.change_cipher_spec,
                };
                (wrapping, leftover)
            }
            _ => (Wrapping::None, Vec::new()),
        };

        let transport = config.effective_transport();
        let secret = match &config.target {
            Target::Proxy(secret) => Some(secret.secret()),
            Target::Direct => None,
        };
        let opened = obfs2::open(
            &OpenSpec {
                tag: transport,
                dc: config.dc,
                secret,
                key_material: None,
            },
            |bytes| rand::fill(bytes),
        );
        let tls = wrapping != Wrapping::None;
        let writer = WireWriter::new(
            write_half,
            opened.encrypt,
            opened.header,
            wrapping,
            config.timeout,
        );
        let reader = WireReader::new(read_half, opened.decrypt, tls, leftover, config.timeout);
        Ok(Self {
            reader: FrameReader::new(reader, transport, config.max_frame),
            writer: FrameWriter::new(writer, transport),
            transport,
        })
    }

    /// The transport spoken inside the stream.
    pub fn transport(&self) -> ProtoTag {
        self.transport
    }

    /// Sends one payload (a non-empty multiple of 4 bytes).
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.writer.send(payload).await
    }

    /// Receives one payload.
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        self.reader.recv().await
    }

    /// Sends a payload and checks that it comes back (a fake DC's echo); see [`is_echo_of`].
    pub async fn echo(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.send_frame(payload).await?;
        let answer = self.recv_frame().await?;
        if !is_echo_of(self.transport, payload, &answer) {
            return Err(ClientError::EchoMismatch);
        }
        Ok(())
    }

    /// Sends the obfuscated2 header now, if no frame has carried it yet.
    pub async fn flush_header(&mut self) -> Result<(), ClientError> {
        self.writer.wire_mut().flush_header().await
    }

    /// The two directions, for running them in separate tasks.
    pub fn into_split(self) -> (FrameReader<OwnedReadHalf>, FrameWriter<OwnedWriteHalf>) {
        (self.reader, self.writer)
    }
}
