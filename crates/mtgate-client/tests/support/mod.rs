//! Small in-process proxies and targets for the tests, built on the `mtgate-proto` server-side
//! codecs (the same ones mtgate's listeners use).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use mtgate_proto::address::Address;
use mtgate_proto::http1::{Limits, RequestHead, ResponseHead, parse_basic};
use mtgate_proto::{socks4, socks5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What a fake proxy does with each connection.
#[derive(Clone, Debug)]
pub enum Mode {
    /// SOCKS5 (CONNECT, BIND, UDP ASSOCIATE), optionally with user/password.
    Socks5 { auth: Option<(String, String)> },
    /// SOCKS4/4a CONNECT.
    Socks4,
    /// HTTP CONNECT, optionally with Basic auth; `early` is written in the same segment as the
    /// 200, standing for a server that speaks first.
    Http {
        auth: Option<(String, String)>,
        early: Vec<u8>,
    },
    /// Accepts and never answers.
    Silent,
    /// Reads `n` bytes, then closes.
    CloseAfter(usize),
    /// Reads something, answers these bytes, keeps the connection open.
    Garbage(Vec<u8>),
    /// SOCKS5 that answers the greeting (NO_AUTH) and then never answers the request.
    StallAfterGreeting,
    /// SOCKS5 that asks for user/password and never answers it.
    StallInAuth,
}

/// A running fake proxy.
pub struct FakeProxy {
    pub addr: SocketAddr,
    /// Targets requested, as the proxy saw them (domain or IP).
    pub requests: Arc<Mutex<Vec<Address>>>,
    /// When false, new connections are closed at once.
    pub healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProxy {
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn requested(&self) -> Vec<Address> {
        self.requests.lock().unwrap().clone()
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

pub async fn spawn_proxy(mode: Mode) -> FakeProxy {
    spawn_proxy_on("127.0.0.1:0", mode).await
}

pub async fn spawn_proxy_on(bind: &str, mode: Mode) -> FakeProxy {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let healthy = Arc::new(AtomicBool::new(true));
    let (log, health) = (requests.clone(), healthy.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            if !health.load(Ordering::SeqCst) {
                drop(stream);
                continue;
            }
            let (mode, log) = (mode.clone(), log.clone());
            tokio::spawn(async move {
                let _ = serve(stream, mode, log).await;
            });
        }
    });
    FakeProxy {
        addr,
        requests,
        healthy,
        task,
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Reads until `parse` completes; returns the message, leaving extra bytes in `buf`.
pub async fn read_msg<S, T, E>(
    stream: &mut S,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Res<T>
where
    S: AsyncRead + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    loop {
        if let Some((msg, used)) = parse(buf)? {
            let _ = buf.split_to(used);
            return Ok(msg);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err("eof".into());
        }
    }
}

async fn dial(target: &Address) -> std::io::Result<TcpStream> {
    TcpStream::connect((target.host().as_str(), target.port())).await
}

async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    mut upstream: TcpStream,
    early: &[u8],
) -> Res<()> {
    upstream.write_all(early).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn serve(mut s: TcpStream, mode: Mode, log: Arc<Mutex<Vec<Address>>>) -> Res<()> {
    let mut buf = BytesMut::new();
    match mode {
        Mode::Silent => {
            let mut sink = [0u8; 1024];
            while s.read(&mut sink).await? > 0 {}
        }
        Mode::CloseAfter(n) => {
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).await?;
        }
        Mode::Garbage(bytes) => {
            let _ = s.read_buf(&mut buf).await?;
            s.write_all(&bytes).await?;
            let mut sink = [0u8; 1024];
            while s.read(&mut sink).await? > 0 {}
        }
        Mode::StallAfterGreeting | Mode::StallInAuth => {
            read_msg(&mut s, &mut buf, socks5::Greeting::parse).await?;
            let method = if matches!(mode, Mode::StallInAuth) {
                socks5::Method::USER_PASS
            } else {
                socks5::Method::NO_AUTH
            };
            s.write_all(&[5, method.as_u8()]).await?;
            let mut sink = [0u8; 1024];
            while s.read(&mut sink).await? > 0 {}
        }
        Mode::Socks4 => {
            let req = read_msg(&mut s, &mut buf, socks4::Request::parse).await?;
            let target = match req.host {
                socks4::Host::Ip(ip) => Address::Socket(SocketAddr::new(ip.into(), req.port)),
                socks4::Host::Domain(name) => Address::Domain(name, req.port),
            };
            log.lock().unwrap().push(target.clone());
            let upstream = dial(&target).await;
            let code = if upstream.is_ok() {
                socks4::ReplyCode::Granted
            } else {
                socks4::ReplyCode::Rejected
            };
            let mut out = Vec::new();
            socks4::Reply::new(code).write_to_buf(&mut out);
            s.write_all(&out).await?;
            relay(s, upstream?, &buf).await?;
        }
        Mode::Http { auth, early } => {
            let head = read_msg(&mut s, &mut buf, |b| {
                RequestHead::parse(b, &Limits::default())
            })
            .await?;
            if let Some((user, pass)) = auth {
                let ok = head
                    .headers
                    .get("proxy-authorization")
                    .and_then(parse_basic)
                    .is_some_and(|c| {
                        c.username == user.as_bytes() && c.password == pass.as_bytes()
                    });
                if !ok {
                    let mut out = Vec::new();
                    ResponseHead::proxy_auth_required("fake").write_to_buf(&mut out);
                    s.write_all(&out).await?;
                    return Ok(());
                }
            }
            let target = head.connect_target()?;
            log.lock().unwrap().push(target.clone());
            let Ok(upstream) = dial(&target).await else {
                s.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    .await?;
                return Ok(());
            };
            let mut out = Vec::new();
            ResponseHead::connection_established().write_to_buf(&mut out);
            out.extend_from_slice(&early);
            s.write_all(&out).await?;
            relay(s, upstream, &buf).await?;
        }
        Mode::Socks5 { auth } => serve_socks5(s, buf, auth, log).await?,
    }
    Ok(())
}

async fn serve_socks5(
    mut s: TcpStream,
    mut buf: BytesMut,
    auth: Option<(String, String)>,
    log: Arc<Mutex<Vec<Address>>>,
) -> Res<()> {
    use socks5::{Command, Method, Reply, Request, Response, UserPassRequest, UserPassResponse};
    let greeting = read_msg(&mut s, &mut buf, socks5::Greeting::parse).await?;
    let wanted = if auth.is_some() {
        Method::USER_PASS
    } else {
        Method::NO_AUTH
    };
    let method = greeting.select(&[wanted]);
    let mut out = Vec::new();
    socks5::MethodSelection { method }.write_to_buf(&mut out);
    s.write_all(&out).await?;
    if method == Method::NO_ACCEPTABLE {
        return Ok(());
    }
    if let Some((user, pass)) = auth {
        let creds = read_msg(&mut s, &mut buf, UserPassRequest::parse).await?;
        let ok = creds.username == user.as_bytes() && creds.password == pass.as_bytes();
        let mut out = Vec::new();
        if ok {
            UserPassResponse::SUCCESS
        } else {
            UserPassResponse::FAILURE
        }
        .write_to_buf(&mut out);
        s.write_all(&out).await?;
        if !ok {
            return Ok(());
        }
    }
    let request = read_msg(&mut s, &mut buf, Request::parse).await?;
    log.lock().unwrap().push(request.address.clone());
    match request.command {
        Command::Connect => match dial(&request.address).await {
            Ok(upstream) => {
                let bound = upstream.local_addr()?;
                reply(&mut s, Response::new(Reply::Succeeded, bound.into())).await?;
                relay(s, upstream, &buf).await?;
            }
            Err(e) => reply(&mut s, Response::failure(Reply::from_io_error(&e))).await?,
        },
        Command::Bind => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            reply(
                &mut s,
                Response::new(Reply::Succeeded, listener.local_addr()?.into()),
            )
            .await?;
            let (peer, peer_addr) = listener.accept().await?;
            reply(&mut s, Response::new(Reply::Succeeded, peer_addr.into())).await?;
            relay(s, peer, &buf).await?;
        }
        Command::UdpAssociate => {
            let udp = UdpSocket::bind("127.0.0.1:0").await?;
            reply(
                &mut s,
                Response::new(Reply::Succeeded, udp.local_addr()?.into()),
            )
            .await?;
            udp_relay(s, udp).await?;
        }
    }
    Ok(())
}

async fn reply(s: &mut TcpStream, response: socks5::Response) -> std::io::Result<()> {
    let mut out = Vec::new();
    response.write_to_buf(&mut out);
    s.write_all(&out).await
}

/// Relays datagrams until the control connection closes.
async fn udp_relay(mut control: TcpStream, udp: UdpSocket) -> Res<()> {
    let outside = UdpSocket::bind("127.0.0.1:0").await?;
    let mut client: Option<SocketAddr> = None;
    let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            r = control.read(&mut sink) => { if r.unwrap_or(0) == 0 { return Ok(()) } }
            r = udp.recv_from(&mut a) => {
                let (n, from) = r?;
                client = Some(from);
                let Ok(Some((header, used))) = socks5::UdpHeader::parse(&a[..n]) else { continue };
                if header.frag != 0 { continue }
                let dest = (header.address.host(), header.address.port());
                outside.send_to(&a[used..n], (dest.0.as_str(), dest.1)).await?;
            }
            r = outside.recv_from(&mut b) => {
                let (n, from) = r?;
                let Some(client) = client else { continue };
                let mut packet = Vec::new();
                socks5::UdpHeader::new(from.into()).write_to_buf(&mut packet);
                packet.extend_from_slice(&b[..n]);
                udp.send_to(&packet, client).await?;
            }
        }
    }
}

/// A TCP echo server.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that greets first with `banner`, then echoes.
pub async fn banner_server(banner: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner).await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A UDP echo server.
pub async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A port with nothing listening.
pub async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `data` and reads the same number of bytes back.
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}
