//! A tiny MTProto proxy in direct mode, built from the proto crate's server side, so that the
//! client can be tested through a real proxy path: fake TLS or plain obfuscated2 in, a keyless
//! obfuscated2 stream out to the fake DC, bytes relayed both ways.

use std::net::SocketAddr;

use mtgate_proto::mtproto::faketls::client_hello;
use mtgate_proto::mtproto::faketls::record::{RecordReader, application_data_header};
use mtgate_proto::mtproto::faketls::server_hello::{self, ServerHelloSpec};
use mtgate_proto::mtproto::faketls::{RANDOM_LEN, RANDOM_OFFSET};
use mtgate_proto::mtproto::obfs2::{self, CtrStream, HEADER_LEN, OpenSpec};
use mtgate_proto::mtproto::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running test proxy; aborted on drop.
pub(crate) struct MiniProxy {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MiniProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `listen` and relays every client with `secret` to the DC at `dc`.
pub(crate) async fn start_proxy(listen: SocketAddr, secret: Secret, dc: SocketAddr) -> MiniProxy {
    let listener = TcpListener::bind(listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let secret = secret.clone();
            tokio::spawn(async move {
                // Errors end the connection; the client side of the test reports them.
                let _ = serve(stream, secret, dc).await;
            });
        }
    });
    MiniProxy { addr, task }
}

async fn serve(stream: TcpStream, secret: Secret, dc: SocketAddr) -> Result<(), BoxError> {
    let (mut client_rd, mut client_wr) = stream.into_split();
    let mut first = [0u8; 1];
    if client_rd.peek(&mut first).await? == 0 {
        return Err("closed before the first byte".into());
    }
    let tls = first[0] == 0x16;
    let mut inbound = ClientIn {
        io: client_rd,
        records: tls.then(RecordReader::new),
        raw_pending: Vec::new(),
        plain_pending: Vec::new(),
    };
    if tls {
        fake_tls_handshake(&mut inbound, &mut client_wr, &secret).await?;
    }
    let mut header = [0u8; HEADER_LEN];
    inbound.read_exact(&mut header).await?;
    let accepted = obfs2::accept(&header, std::slice::from_ref(&secret))?;

    let upstream = TcpStream::connect(dc).await?;
    let (dc_rd, mut dc_wr) = upstream.into_split();
    let opened = obfs2::open(
        &OpenSpec {
            tag: accepted.tag,
            dc: accepted.dc,
            secret: None,
            key_material: None,
        },
        |b| rand::fill(b),
    );
    dc_wr.write_all(&opened.header).await?;

    let up = relay_up(inbound, accepted.decrypt, dc_wr, opened.encrypt);
    let down = relay_down(dc_rd, opened.decrypt, client_wr, accepted.encrypt, tls);
    let (up, down) = tokio::join!(up, down);
    up.and(down)
}

/// Reads the ClientHello, checks it and answers.
async fn fake_tls_handshake(
    inbound: &mut ClientIn,
    out: &mut OwnedWriteHalf,
    secret: &Secret,
) -> Result<(), BoxError> {
    let mut raw = Vec::new();
    let (record, consumed) = loop {
        if let Some(assembled) = client_hello::assemble(&raw)? {
            break (assembled.record.into_owned(), assembled.consumed);
        }
        let mut chunk = [0u8; 2048];
        let n = inbound.io.read(&mut chunk).await?;
        if n == 0 {
            return Err("closed during the ClientHello".into());
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    client_hello::verify(&record, std::slice::from_ref(secret))?;
    let hello = client_hello::parse(&record)?;
    let mut client_random = [0u8; RANDOM_LEN];
    client_random.copy_from_slice(&record[RANDOM_OFFSET..RANDOM_OFFSET + RANDOM_LEN]);
    let mut key_share = [0u8; 32];
    rand::fill(&mut key_share);
    let mut application_data = vec![0u8; 1200];
    rand::fill(&mut application_data[..]);
    let mut answer = Vec::new();
    server_hello::build(
        secret,
        &ServerHelloSpec {
            client_random: &client_random,
            session_id: hello.session_id,
            cipher_suite: hello.cipher_suite,
            key_share,
            application_data: &application_data,
        },
        &mut answer,
    );
    out.write_all(&answer).await?;
    // Whatever followed the hello is already record data.
    inbound.raw_pending = raw.split_off(consumed);
    Ok(())
}

/// The client's byte stream with TLS records removed.
struct ClientIn {
    io: OwnedReadHalf,
    records: Option<RecordReader>,
    /// Received bytes not yet unwrapped (read together with the ClientHello).
    raw_pending: Vec<u8>,
    /// Unwrapped bytes read past the header.
    plain_pending: Vec<u8>,
}

impl ClientIn {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, BoxError> {
        if !self.plain_pending.is_empty() {
            let n = self.plain_pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.plain_pending[..n]);
            self.plain_pending.drain(..n);
            return Ok(n);
        }
        loop {
            let n = if self.raw_pending.is_empty() {
                self.io.read(buf).await?
            } else {
                let n = self.raw_pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.raw_pending[..n]);
                self.raw_pending.drain(..n);
                n
            };
            if n == 0 {
                return Ok(0);
            }
            let n = match &mut self.records {
                Some(records) => records.unwrap_in_place(&mut buf[..n])?,
                None => n,
            };
            if n > 0 {
                return Ok(n);
            }
        }
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), BoxError> {
        let mut chunk = vec![0u8; 32 * 1024];
        let mut have = 0;
        while have < buf.len() {
            let n = self.read(&mut chunk).await?;
            if n == 0 {
                return Err("closed during the header".into());
            }
            let take = n.min(buf.len() - have);
            buf[have..have + take].copy_from_slice(&chunk[..take]);
            have += take;
            // The rest belongs to the relay.
            self.plain_pending.extend_from_slice(&chunk[take..n]);
        }
        Ok(())
    }
}

async fn relay_up(
    mut inbound: ClientIn,
    mut decrypt: CtrStream,
    mut dc: OwnedWriteHalf,
    mut encrypt: CtrStream,
) -> Result<(), BoxError> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = inbound.read(&mut buf).await?;
        if n == 0 {
            dc.shutdown().await?;
            return Ok(());
        }
        decrypt.apply(&mut buf[..n]);
        encrypt.apply(&mut buf[..n]);
        dc.write_all(&buf[..n]).await?;
    }
}

async fn relay_down(
    mut dc: OwnedReadHalf,
    mut decrypt: CtrStream,
    mut client: OwnedWriteHalf,
    mut encrypt: CtrStream,
    tls: bool,
) -> Result<(), BoxError> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        let n = dc.read(&mut buf).await?;
        if n == 0 {
            client.shutdown().await?;
            return Ok(());
        }
        decrypt.apply(&mut buf[..n]);
        encrypt.apply(&mut buf[..n]);
        out.clear();
        if tls {
            out.extend_from_slice(&application_data_header(n));
        }
        out.extend_from_slice(&buf[..n]);
        client.write_all(&out).await?;
    }
}
