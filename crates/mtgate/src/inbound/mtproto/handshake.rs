//! The client side of a connection, from its first byte to an established obfuscated2 stream:
//! detection (fake TLS, obfuscated2, or the HTTP transport where served), authentication against every user's secret, the clock
//! and replay checks, and the fake-TLS answer.
//!
//! Every byte read is kept in `received` until the proxy answers, so that a refused peer can be
//! relayed to the cover site with exactly what it sent.

use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::faketls::client_hello::{self, HelloError};
use mtgate_proto::mtproto::faketls::record::RecordReader;
use mtgate_proto::mtproto::faketls::server_hello::{self, ServerHelloSpec};
use mtgate_proto::mtproto::http;
use mtgate_proto::mtproto::obfs2::{self, CtrStream, ProtoTag, StreamKey};
use mtgate_proto::mtproto::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reason::{Reason, Refusal};
use super::replay::Replays;
use crate::config::{MtprotoListener, UnknownSni};

/// The client's mode, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain secret: abridged or intermediate.
    Classic,
    /// `dd`: padded intermediate.
    Padded,
    /// `ee`: fake TLS.
    FakeTls,
}

impl Mode {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Padded => "padded",
            Self::FakeTls => "fake-tls",
        }
    }
}

/// What the first bytes of a connection turned out to be.
#[derive(Debug)]
pub enum Accepted {
    /// An authenticated obfuscated2 client (fake TLS or not).
    Mtproto(Box<Established>),
    /// A request of the HTTP transport (`POST /api…`), on a listener that serves it; the
    /// bytes read so far are its start.
    Http,
}

/// An authenticated client.
#[derive(Debug)]
pub struct Established {
    /// Index of the user in the listener's user list.
    pub user: usize,
    /// Mode.
    pub mode: Mode,
    /// Transport inside the stream.
    pub tag: ProtoTag,
    /// DC the client asked for.
    pub dc: DcId,
    /// Decrypts what the client sends.
    pub decrypt: CtrStream,
    /// Encrypts towards the client.
    pub encrypt: CtrStream,
    /// Key of `encrypt` (fast mode hands it to the DC).
    pub encrypt_key: StreamKey,
    /// The TLS record reader's state, for fake-TLS clients.
    pub records: Option<RecordReader>,
    /// Client bytes that arrived after the header, already decrypted.
    pub pending: Vec<u8>,
}

/// Everything the handshake consults.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeContext<'a> {
    /// The listener's settings.
    pub config: &'a MtprotoListener,
    /// Users' secrets, in the order of `config.users`.
    pub secrets: &'a [Secret],
    /// Anti-replay caches.
    pub replays: &'a Replays,
    /// Unix time, seconds.
    pub now: u64,
}

const TLS_PREFIX: [u8; 3] = [0x16, 0x03, 0x01];
/// Bytes a fake-TLS hello may take, with record headers.
const HELLO_CAP: usize = client_hello::MAX_HELLO_LEN + 5 * client_hello::MAX_HELLO_RECORDS + 4;
/// Raw bytes read after the fake-TLS answer before the inner header must be complete.
const INNER_CAP: usize = 64 * 1024;

/// Runs the handshake. The caller applies the deadline.
pub async fn run(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    ctx: HandshakeContext<'_>,
) -> Result<Accepted, Refusal> {
    let modes = ctx.config.modes;
    while received.len() < TLS_PREFIX.len() {
        read_more(stream, received, HELLO_CAP).await?;
        if looks_like_text_protocol(received) {
            return text_protocol(stream, received, ctx).await;
        }
    }
    if received.starts_with(&TLS_PREFIX) && modes.fake_tls {
        return fake_tls(stream, received, ctx).await.map(Accepted::Mtproto);
    }
    if !modes.classic && !modes.padded {
        return Err(Refusal {
            reason: Reason::ModeDisabled,
            answered: false,
            detail: Some("not fake TLS".into()),
        });
    }
    while received.len() < obfs2::HEADER_LEN {
        read_more(stream, received, HELLO_CAP).await?;
        if looks_like_text_protocol(received) {
            return text_protocol(stream, received, ctx).await;
        }
    }
    obfuscated2(received, ctx).map(Accepted::Mtproto)
}

/// A peer speaking a text protocol: the HTTP transport when the listener serves it and the
/// request is `POST /api…` or `OPTIONS /api…`; anything else is refused (and so goes to the
/// cover site with exactly the bytes it sent, as without the HTTP transport).
async fn text_protocol(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    ctx: HandshakeContext<'_>,
) -> Result<Accepted, Refusal> {
    if ctx.config.http_transport {
        loop {
            match http::is_api_request(received) {
                Some(true) => return Ok(Accepted::Http),
                Some(false) => break,
                None => read_more(stream, received, HELLO_CAP).await?,
            }
        }
    }
    Err(Reason::OtherProtocol.into())
}

fn obfuscated2(received: &[u8], ctx: HandshakeContext<'_>) -> Result<Box<Established>, Refusal> {
    let header: &[u8; obfs2::HEADER_LEN] =
        received[..obfs2::HEADER_LEN].try_into().expect("64 bytes");
    let accepted =
        obfs2::accept(header, ctx.secrets).map_err(|_| Refusal::from(Reason::BadSecret))?;
    let (mode, allowed) = match accepted.tag {
        ProtoTag::Padded => (Mode::Padded, ctx.config.modes.padded),
        ProtoTag::Abridged | ProtoTag::Intermediate => (Mode::Classic, ctx.config.modes.classic),
    };
    if !allowed {
        return Err(Refusal {
            reason: Reason::ModeDisabled,
            answered: false,
            detail: Some(mode.as_str().into()),
        });
    }
    if !ctx.replays.obfs2_first_seen(&accepted.replay_key, ctx.now) {
        return Err(Reason::Replay.into());
    }
    let mut decrypt = accepted.decrypt;
    let mut pending = received[obfs2::HEADER_LEN..].to_vec();
    decrypt.apply(&mut pending);
    Ok(Box::new(Established {
        user: accepted.user,
        mode,
        tag: accepted.tag,
        dc: accepted.dc,
        decrypt,
        encrypt: accepted.encrypt,
        encrypt_key: accepted.encrypt_key,
        records: None,
        pending,
    }))
}

async fn fake_tls(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    ctx: HandshakeContext<'_>,
) -> Result<Box<Established>, Refusal> {
    let assembled = loop {
        match client_hello::assemble(received) {
            Ok(Some(a)) => break a,
            Ok(None) => read_more(stream, received, HELLO_CAP).await?,
            Err(HelloError::TooLarge) => return Err(Reason::TooLarge.into()),
            Err(_) => return Err(Reason::MalformedHello.into()),
        }
    };
    let hello = client_hello::parse(&assembled.record)
        .map_err(|_| Refusal::from(Reason::MalformedHello))?;
    let tls = &ctx.config.fake_tls;
    let sni_known = hello
        .sni
        .is_some_and(|sni| tls.domains.iter().any(|d| d.eq_ignore_ascii_case(sni)));
    if !sni_known && tls.unknown_sni == UnknownSni::Mask {
        return Err(Refusal {
            reason: Reason::UnknownSni,
            answered: false,
            detail: hello.sni.map(|s| format!("sni={s:?}")),
        });
    }
    let verified = client_hello::verify(&assembled.record, ctx.secrets)
        .map_err(|_| Refusal::from(Reason::BadDigest))?;
    if let Err(HelloError::ClockSkew(delta)) = tls.skew.check(verified.timestamp, ctx.now) {
        return Err(Refusal {
            reason: Reason::ClockSkew,
            answered: false,
            detail: Some(format!("client clock off by {delta} s")),
        });
    }
    if !ctx.replays.tls_first_seen(&hello.random, ctx.now) {
        return Err(Reason::Replay.into());
    }

    let answer = answer(&ctx.secrets[verified.user], &hello, &tls.answer_size);
    let answered = |reason: Reason| Refusal {
        reason,
        answered: true,
        detail: None,
    };
    stream
        .write_all(&answer)
        .await
        .map_err(|_| answered(Reason::Io))?;

    // From here on the client speaks in ApplicationData records. Collect the inner header.
    let mut records = RecordReader::new();
    let mut inner = received.split_off(assembled.consumed);
    received.clear();
    let mut payload_len = records
        .unwrap_in_place(&mut inner)
        .map_err(|_| answered(Reason::BadInnerStream))?;
    inner.truncate(payload_len);
    let mut raw = Vec::new();
    while payload_len < obfs2::HEADER_LEN {
        raw.clear();
        read_more(stream, &mut raw, INNER_CAP)
            .await
            .map_err(|r| answered(r.reason))?;
        let n = records
            .unwrap_in_place(&mut raw)
            .map_err(|_| answered(Reason::BadInnerStream))?;
        inner.extend_from_slice(&raw[..n]);
        payload_len = inner.len();
        if payload_len > INNER_CAP {
            return Err(answered(Reason::TooLarge));
        }
    }
    let header: &[u8; obfs2::HEADER_LEN] = inner[..obfs2::HEADER_LEN].try_into().expect("64 bytes");
    let user_secret = std::slice::from_ref(&ctx.secrets[verified.user]);
    let accepted =
        obfs2::accept(header, user_secret).map_err(|_| answered(Reason::BadInnerStream))?;
    if accepted.tag != ProtoTag::Padded {
        return Err(Refusal {
            reason: Reason::BadInnerStream,
            answered: true,
            detail: Some(format!("inner transport {}", accepted.tag.name())),
        });
    }
    let mut decrypt = accepted.decrypt;
    let mut pending = inner.split_off(obfs2::HEADER_LEN);
    decrypt.apply(&mut pending);
    Ok(Box::new(Established {
        user: verified.user,
        mode: Mode::FakeTls,
        tag: accepted.tag,
        dc: accepted.dc,
        decrypt,
        encrypt: accepted.encrypt,
        encrypt_key: accepted.encrypt_key,
        records: Some(records),
        pending,
    }))
}

/// ServerHello + ChangeCipherSpec + one ApplicationData record of a random size.
fn answer(
    secret: &Secret,
    hello: &client_hello::ClientHello<'_>,
    sizes: &std::ops::RangeInclusive<usize>,
) -> Vec<u8> {
    let mut scalar = [0u8; 32];
    crate::random::fill(&mut scalar);
    let key_share =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(scalar)).to_bytes();
    let mut application_data = vec![0u8; crate::random::in_range(sizes.clone())];
    crate::random::fill(&mut application_data);
    let spec = ServerHelloSpec {
        client_random: &hello.random,
        session_id: hello.session_id,
        cipher_suite: hello.cipher_suite,
        key_share,
        application_data: &application_data,
    };
    let mut out = Vec::with_capacity(200 + application_data.len());
    server_hello::build(secret, &spec, &mut out);
    out
}

/// Reads more bytes into `buf`, refusing past `cap` bytes.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, cap: usize) -> Result<(), Refusal> {
    if buf.len() >= cap {
        return Err(Reason::TooLarge.into());
    }
    // Grow geometrically from a small start: most handshakes need a few hundred bytes, and
    // every byte reserved here is a byte of heap churn per connection.
    buf.reserve((cap - buf.len()).min(buf.len().max(512)));
    let room = buf.capacity().min(cap) - buf.len();
    let mut limited = (&mut *stream).take(room as u64);
    match limited.read_buf(buf).await {
        Ok(0) => Err(Reason::Closed.into()),
        Ok(_) => Ok(()),
        Err(_) => Err(Reason::Io.into()),
    }
}

/// Whether the first bytes are those of a text protocol: MTProto clients never start so, and
/// answering such probes at once (through the cover site) is what a web server would do.
fn looks_like_text_protocol(received: &[u8]) -> bool {
    const STARTS: [&[u8; 4]; 8] = [
        b"GET ", b"POST", b"HEAD", b"OPTI", b"PUT ", b"DELE", b"CONN", b"PRI ",
    ];
    received.len() >= 4 && STARTS.iter().any(|s| received.starts_with(&s[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_protocols_are_recognised() {
        assert!(looks_like_text_protocol(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_text_protocol(b"PRI * HTTP/2.0"));
        assert!(!looks_like_text_protocol(b"GE"));
        assert!(!looks_like_text_protocol(&[0x16, 0x03, 0x01, 0x02, 0x00]));
    }
}
