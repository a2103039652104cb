//! Middle-proxy mode end to end: clients → mtgate → fake middle proxies → echo. The fake
//! checks the protocol (nonces, keys, handshake, framing, CBC) and records what each
//! RPC_PROXY_REQ carried, so the tests assert the ad tag, the flags and the addresses.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mtgate::server::Server;
use mtgate_bench::client::{ClientConfig, is_echo_of};
use mtgate_bench::fake_middle::{
    CLOSE_ME, ERROR_ME, FakeMiddle, FakeMiddleConfig, FakeMiddleStats, Seen,
};
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::middle::consts::{flag, unencrypted};
use mtgate_proto::mtproto::middle::secret::ProxySecret;
use mtgate_proto::mtproto::obfs2::ProtoTag;
use mtgate_proto::mtproto::secret::ClientSecret;
use mtgate_proto::mtproto::transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GLOBAL_TAG: &str = "00112233445566778899aabbccddeeff";
const BOB_TAG: &str = "ffeeddccbbaa99887766554433221100";

fn proxy_secret() -> ProxySecret {
    ProxySecret::new((0..128u32).map(|i| (i * 13 + 5) as u8).collect()).unwrap()
}

fn tag(hex: &str) -> [u8; 16] {
    mtgate_proto::hex::decode(hex).unwrap().try_into().unwrap()
}

/// Variations of [`MiddleFixture`].
struct Opts<'a> {
    idle_timeout: &'a str,
    /// Extra lines of `[telegram.middle]`.
    middle: &'a str,
    /// Extra lines of the `[[mtproto]]` listener.
    listener: &'a str,
    /// Whether the DC 2 middle proxy agrees to CRC32C.
    crc32c: bool,
    /// The lines of `[mtproto.masking]`.
    masking: String,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Self {
            idle_timeout: "10s",
            middle: "",
            listener: "",
            crc32c: true,
            masking: "enabled = false".into(),
        }
    }
}

/// Two fake middle proxies (DC 2 and DC 4) and mtgate in middle mode in front of them.
struct MiddleFixture {
    server: Server,
    me2: Option<FakeMiddle>,
    me2_addr: SocketAddr,
    me2_stats: Arc<FakeMiddleStats>,
    me4: FakeMiddle,
    proxy: SocketAddr,
    proxy_v6: SocketAddr,
    dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("mtgate-middle-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl MiddleFixture {
    async fn start(name: &str) -> Self {
        Self::start_with(name, "10s", "").await
    }

    async fn start_with(name: &str, idle_timeout: &str, middle: &str) -> Self {
        Self::start_opts(
            name,
            Opts {
                idle_timeout,
                middle,
                ..Opts::default()
            },
        )
        .await
    }

    async fn start_opts(name: &str, opts: Opts<'_>) -> Self {
        let Opts {
            idle_timeout,
            middle,
            listener,
            crc32c,
            masking,
        } = opts;
        let mut me2_config = FakeMiddleConfig::new(proxy_secret());
        me2_config.crc32c = crc32c;
        let me2 = FakeMiddle::start("127.0.0.1:0".parse().unwrap(), me2_config)
            .await
            .unwrap();
        let me4 = FakeMiddle::start(
            "127.0.0.1:0".parse().unwrap(),
            FakeMiddleConfig::new(proxy_secret()),
        )
        .await
        .unwrap();
        let dir = temp_dir(name);
        let secret_file = dir.0.join("proxy-secret");
        let conf_file = dir.0.join("proxy-multi.conf");
        std::fs::write(&secret_file, proxy_secret().as_bytes()).unwrap();
        std::fs::write(
            &conf_file,
            format!(
                "# test\ndefault 2;\nproxy_for 2 {me2};\nproxy_for -2 {me2};\nproxy_for 4 {me4};\n",
                me2 = me2.addr(),
                me4 = me4.addr()
            ),
        )
        .unwrap();
        let text = format!(
            r#"
            [metrics]
            listen = "127.0.0.1:0"
            [telegram]
            mode = "middle"
            ad_tag = "{GLOBAL_TAG}"
            connect_timeout = "3s"
            [telegram.middle]
            proxy_secret_file = "{secret}"
            proxy_config_file = "{conf}"
            min_connections = 1
            max_connections = 2
            ping_interval = "1s"
            {middle}
            [[mtproto]]
            name = "test"
            listen = ["127.0.0.1:0", "[::1]:0"]
            modes = ["classic", "padded", "fake-tls"]
            idle_timeout = "{idle_timeout}"
            {listener}
            [mtproto.fake_tls]
            domains = ["{DOMAIN}"]
            [mtproto.masking]
            {masking}
            [mtproto.users]
            alice = "{ALICE}"
            bob = {{ secret = "{BOB}", ad_tag = "{BOB_TAG}" }}
            "#,
            secret = secret_file.display(),
            conf = conf_file.display(),
        );
        std::fs::write(dir.0.join("config.toml"), &text).unwrap();
        let server = Server::start(config(&text)).await.unwrap();
        let addrs = server.local_addrs("test");
        Self {
            proxy: *addrs.iter().find(|a| a.is_ipv4()).unwrap(),
            proxy_v6: *addrs.iter().find(|a| a.is_ipv6()).unwrap(),
            server,
            me2_addr: me2.addr(),
            me2_stats: me2.stats().clone(),
            me2: Some(me2),
            me4,
            dir,
        }
    }

    fn seen2(&self) -> Seen {
        self.me2_stats.snapshot()
    }
}

fn client(secret: ClientSecret, transport: ProtoTag, dc: i16) -> ClientConfig {
    let mut config = client_config(secret);
    config.transport = transport;
    config.dc = DcId(dc);
    config
}

/// An encrypted-looking MTProto packet (non-zero auth_key_id, ≥ 56 bytes).
fn packet(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7) ^ seed | 1)
        .collect()
}

fn transport_flag(t: ProtoTag) -> u32 {
    match t {
        ProtoTag::Abridged => flag::ABRIDGED,
        ProtoTag::Intermediate => flag::INTERMEDIATE,
        ProtoTag::Padded => flag::INTERMEDIATE | flag::PAD,
    }
}

#[tokio::test]
async fn every_mode_echoes_with_the_ad_tag_flags_and_addresses() {
    let f = MiddleFixture::start("modes").await;
    let cases = [
        (
            ClientSecret::Plain(key(ALICE)),
            ProtoTag::Abridged,
            GLOBAL_TAG,
        ),
        (
            ClientSecret::Plain(key(BOB)),
            ProtoTag::Intermediate,
            BOB_TAG,
        ),
        (
            ClientSecret::Padded(key(ALICE)),
            ProtoTag::Padded,
            GLOBAL_TAG,
        ),
        (ee(BOB), ProtoTag::Padded, BOB_TAG),
    ];
    for (secret, transport, expected_tag) in cases {
        for addr in [f.proxy, f.proxy_v6] {
            let before = f.seen2().requests.len();
            let conn = connect(addr, &client(secret.clone(), transport, 2)).await;
            let (mut reader, mut writer) = conn.into_split();
            let client_addr = writer.wire_mut().get_ref().local_addr().unwrap();
            for payload in [packet(64, 1), packet(40_000, 2), packet(56, 3)] {
                writer.send(&payload).await.unwrap();
                let echoed = reader.recv().await.unwrap();
                assert!(
                    is_echo_of(transport, &payload, &echoed),
                    "{transport:?} via {addr}"
                );
            }
            let seen = f.seen2();
            let reqs = &seen.requests[before..];
            assert_eq!(reqs.len(), 3);
            for r in reqs {
                assert_eq!(r.ad_tag, Some(tag(expected_tag)));
                assert_eq!(
                    r.flags,
                    flag::MAGIC | flag::EXTMODE2 | flag::HAS_AD_TAG | transport_flag(transport),
                    "{:#x}",
                    r.flags
                );
                assert_eq!(r.client, canonical(client_addr));
                assert_eq!(r.proxy, canonical(addr));
                assert_eq!(r.conn_id, reqs[0].conn_id);
            }
            // Transport padding is cut to a multiple of 4, as the official proxy does (a
            // client's 4..=15 padding bytes are then part of the message, which MTProto
            // ignores).
            let extra = reqs[0].len - 64;
            assert!(extra == 0 || (transport == ProtoTag::Padded && extra <= 12));
        }
    }
    // DC 4 has its own middle proxy; unknown DCs go to the default (2).
    let mut conn = connect(
        f.proxy,
        &client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 4),
    )
    .await;
    conn.echo(&packet(64, 9)).await.unwrap();
    assert_eq!(f.me4.stats().snapshot().requests.len(), 1);
    let before = f.seen2().requests.len();
    let mut conn = connect(
        f.proxy,
        &client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 99),
    )
    .await;
    conn.echo(&packet(64, 9)).await.unwrap();
    assert_eq!(f.seen2().requests.len(), before + 1);
    // DC -2 (media) lists the same middle proxy as DC 2 and rides the same connections.
    let mut conn = connect(
        f.proxy,
        &client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, -2),
    )
    .await;
    conn.echo(&packet(64, 9)).await.unwrap();
    assert_eq!(f.seen2().requests.len(), before + 2);
    // Many clients, few connections: at most max_connections = 2 per middle proxy.
    assert!(f.seen2().handshakes <= 2, "{:?}", f.seen2().handshakes);
    drop(f.server);
}

#[tokio::test]
async fn crc32c_is_asked_for_and_crc32_kept_when_refused() {
    for crc32c in [true, false] {
        let f = MiddleFixture::start_opts(
            if crc32c { "crc32c" } else { "crc32" },
            Opts {
                crc32c,
                ..Opts::default()
            },
        )
        .await;
        let cfg = client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2);
        let mut conn = connect(f.proxy, &cfg).await;
        for seed in 0..3 {
            conn.echo(&packet(4000, seed)).await.unwrap();
        }
        let seen = f.seen2();
        assert!(seen.handshakes >= 1);
        assert_eq!(seen.crc32c_asked, seen.handshakes, "mtgate always asks");
        let expected = if crc32c { seen.handshakes } else { 0 };
        assert_eq!(seen.crc32c_used, expected, "crc32c agreed: {crc32c}");
        assert_eq!(seen.requests.len(), 3);
    }
}

/// Sends `request` and reads one answer: status, head, body (by its Content-length).
async fn http_exchange(stream: &mut TcpStream, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    stream.write_all(request).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(got[..end + 4].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return Some((status, head, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

fn post(path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 149.154.167.51:80\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test]
async fn mtproto_over_http_is_forwarded_with_the_query_info() {
    let website = Website::start().await;
    let f = MiddleFixture::start_opts(
        "http",
        Opts {
            listener: "http_transport = true",
            masking: format!(
                "enabled = true\nhost = \"127.0.0.1\"\nport = {}",
                website.addr.port()
            ),
            ..Opts::default()
        },
    )
    .await;
    // Two queries on one keep-alive connection, each under an id of its own.
    let mut stream = TcpStream::connect(f.proxy).await.unwrap();
    let client_addr = stream.local_addr().unwrap();
    let extra = "Origin: https://web.example\r\nUser-Agent: test/1\r\nConnection: keep-alive\r\n";
    let mut ids = Vec::new();
    for seed in [1, 2] {
        let payload = packet(4000, seed);
        let (status, head, body) = http_exchange(&mut stream, &post("/api", extra, &payload))
            .await
            .expect("an answer");
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
        assert!(head.ends_with(&format!("Content-length: {}\r\n\r\n", payload.len())));
        assert_eq!(body, payload);
        let r = f.seen2().requests.last().cloned().unwrap();
        assert_eq!(
            r.flags,
            flag::HTTP_CLIENT | flag::HAS_AD_TAG,
            "{:#x}",
            r.flags
        );
        assert_eq!(r.ad_tag, Some(tag(GLOBAL_TAG)));
        assert_eq!(r.client, client_addr);
        assert_eq!(r.proxy, f.proxy);
        let http = r.http.expect("TL_HTTP_QUERY_INFO");
        assert_eq!(http.origin, b"https://web.example");
        assert_eq!(http.referer, b"");
        assert_eq!(http.user_agent, b"test/1");
        ids.push(r.conn_id);
    }
    assert_ne!(ids[0], ids[1]);
    // Each id is released once answered.
    eventually("RPC_CLOSE_CONN for both", || {
        let closed = f.seen2().closed;
        ids.iter().all(|id| closed.contains(id))
    })
    .await;
    // The key exchange goes unencrypted (flag 2), CORS for /apiw, close on request.
    let mut req_pq = vec![0u8; 40];
    req_pq[16..20].copy_from_slice(&20u32.to_le_bytes());
    req_pq[20..24].copy_from_slice(&unencrypted::REQ_PQ_MULTI.to_le_bytes());
    let mut stream = TcpStream::connect(f.proxy).await.unwrap();
    let (status, head, body) = http_exchange(
        &mut stream,
        &post("/apiw", "Connection: close\r\n", &req_pq),
    )
    .await
    .unwrap();
    assert_eq!((status, body), (200, req_pq.clone()));
    assert!(
        head.contains("Access-Control-Allow-Origin: *\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(read_until_close(&mut stream).await.is_empty());
    let r = f.seen2().requests.last().cloned().unwrap();
    assert_eq!(
        r.flags,
        flag::HTTP_CLIENT | flag::HAS_AD_TAG | flag::NOT_ENCRYPTED
    );
    // A transport error from Telegram becomes its HTTP status.
    let mut error_me = packet(64, 3);
    error_me[8..16].copy_from_slice(ERROR_ME);
    let mut stream = TcpStream::connect(f.proxy).await.unwrap();
    let (status, _, _) = http_exchange(&mut stream, &post("/api", "", &error_me))
        .await
        .unwrap();
    assert_eq!(status, 429);
    assert!(read_until_close(&mut stream).await.is_empty());
    // A CORS preflight.
    let mut stream = TcpStream::connect(f.proxy).await.unwrap();
    let (status, head, body) =
        http_exchange(&mut stream, b"OPTIONS /apiw HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    assert_eq!((status, body.len()), (200, 0));
    assert!(head.contains("Access-Control-Allow-Methods: POST, OPTIONS\r\n"));

    // Refusals: a clean status and a close, never a panic.
    let before = f.seen2().requests.len();
    let mut forbidden = req_pq.clone();
    forbidden[20..24].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (post("/api", "", &[1, 2, 3, 4, 5, 6]), 404),
        (post("/api", "", &forbidden), 404),
        (post("/api", "", &[7; 20]), 404),
        (post("/api/0123456789", "", &packet(64, 1)), 414),
        (
            b"POST /api HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            501,
        ),
        (b"POST /api HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
        (
            format!("POST /api HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)).into_bytes(),
            431,
        ),
    ];
    for (request, expected) in cases {
        let mut stream = TcpStream::connect(f.proxy).await.unwrap();
        let (status, _, _) = http_exchange(&mut stream, &request)
            .await
            .unwrap_or_else(|| panic!("an answer to {:?}", String::from_utf8_lossy(&request)));
        assert_eq!(status, expected, "{:?}", String::from_utf8_lossy(&request));
        assert!(read_until_close(&mut stream).await.is_empty());
    }
    assert_eq!(
        f.seen2().requests.len(),
        before,
        "nothing refused was forwarded"
    );

    // Other HTTP still goes to the cover site, byte for byte.
    for request in [
        &b"GET / HTTP/1.1\r\nHost: cover\r\n\r\n"[..],
        b"POST /login HTTP/1.1\r\nHost: cover\r\nContent-Length: 0\r\n\r\n",
    ] {
        let n = website.connections();
        let mut stream = TcpStream::connect(f.proxy).await.unwrap();
        stream.write_all(request).await.unwrap();
        let answer = read_until_close(&mut stream).await;
        assert_eq!(answer, WEBSITE_BANNER);
        assert_eq!(website.connection(n).await, request);
    }

    // The stats page counts queries under the official key names.
    let stats = http_get(f.server.metrics_addr().unwrap(), "/stats").await;
    let value = |key: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .unwrap_or_else(|| panic!("{key} missing"))
            .parse()
            .unwrap()
    };
    assert!(value("http_queries") >= 4);
    assert!(value("http_bad_headers") >= 3);
    assert_eq!(value("pending_http_queries"), 0);
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[tokio::test]
async fn only_the_key_exchange_goes_unencrypted() {
    let f = MiddleFixture::start("unencrypted").await;
    let cfg = client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2);
    let mut req_pq = vec![0u8; 40];
    req_pq[16..20].copy_from_slice(&20u32.to_le_bytes());
    req_pq[20..24].copy_from_slice(&unencrypted::REQ_PQ_MULTI.to_le_bytes());
    let mut conn = connect(f.proxy, &cfg).await;
    conn.echo(&req_pq).await.unwrap();
    let last = f.seen2().requests.last().cloned().unwrap();
    assert_ne!(last.flags & flag::NOT_ENCRYPTED, 0);

    let mut other = req_pq.clone();
    other[20..24].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    let mut conn = connect(f.proxy, &cfg).await;
    conn.send_frame(&other).await.unwrap();
    assert!(
        conn.recv_frame().await.is_err(),
        "the proxy closes the client"
    );
}

#[tokio::test]
async fn quick_acks_and_close_propagation() {
    let f = MiddleFixture::start("acks").await;
    for transport in [ProtoTag::Abridged, ProtoTag::Intermediate, ProtoTag::Padded] {
        let secret = if transport == ProtoTag::Padded {
            ClientSecret::Padded(key(ALICE))
        } else {
            ClientSecret::Plain(key(ALICE))
        };
        let conn = connect(f.proxy, &client(secret, transport, 2)).await;
        let (reader, writer) = conn.into_split();
        let (mut rd, _) = reader.into_wire();
        let mut wr = writer.into_wire();
        let payload = packet(64, 5);
        let mut frame = Vec::new();
        transport::encode(transport, &payload, true, &[], &mut frame);
        wr.write(&frame).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 4
            || transport::decode(transport, &got[4..], 1 << 20)
                .unwrap()
                .is_none()
        {
            let n = rd.read(&mut buf).await.unwrap();
            assert_ne!(n, 0);
            got.extend_from_slice(&buf[..n]);
        }
        let token = u32::from_le_bytes(payload[..4].try_into().unwrap());
        assert_eq!(
            got[..4],
            transport::quick_ack_reply(transport, token),
            "{transport:?}"
        );
        let (frame, _) = transport::decode(transport, &got[4..], 1 << 20)
            .unwrap()
            .unwrap();
        assert!(is_echo_of(transport, &payload, frame.payload));
        let last = f.seen2().requests.last().cloned().unwrap();
        assert_ne!(last.flags & flag::QUICKACK, 0);
    }

    // RPC_CLOSE_EXT from the middle proxy closes the client.
    let cfg = client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2);
    let mut conn = connect(f.proxy, &cfg).await;
    let mut close_me = packet(64, 7);
    close_me[8..16].copy_from_slice(CLOSE_ME);
    conn.send_frame(&close_me).await.unwrap();
    assert!(conn.recv_frame().await.is_err(), "closed on RPC_CLOSE_EXT");

    // A client leaving is announced with RPC_CLOSE_CONN.
    let mut conn = connect(f.proxy, &cfg).await;
    conn.echo(&packet(64, 8)).await.unwrap();
    let id = f.seen2().requests.last().unwrap().conn_id;
    drop(conn);
    eventually("RPC_CLOSE_CONN", || f.seen2().closed.contains(&id)).await;
    // Keepalive pings flow both ways.
    eventually("RPC_PING", || f.seen2().pings > 0).await;
    eventually("RPC_PONG", || f.seen2().pongs > 0).await;

    // The stats page uses the official proxy's key names.
    let stats = http_get(f.server.metrics_addr().unwrap(), "/stats").await;
    let value = |key: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("tot_forwarded_simple_acks"), 3);
    assert_eq!(value("tot_forwarded_queries"), 5);
    assert!(value("tot_forwarded_responses") >= 4);
    // Pools open at start for every middle proxy (DC 2 and -2 share one, DC 4 has its own),
    // min_connections = 1 each.
    assert_eq!(value("ready_outbound_connections"), 2);
    assert_eq!(value("ext_connections_created"), 5);
    let metrics = http_get(f.server.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains("mtgate_middle_forwarded_simple_acks_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("mtgate_middle_connections 2"));
}

#[tokio::test]
async fn a_middle_proxy_restart_reconnects_and_spares_other_connections() {
    let mut f = MiddleFixture::start("restart").await;
    let plain = || ClientSecret::Plain(key(ALICE));
    let mut on2 = connect(f.proxy, &client(plain(), ProtoTag::Intermediate, 2)).await;
    let mut on4 = connect(f.proxy, &client(plain(), ProtoTag::Intermediate, 4)).await;
    on2.echo(&packet(64, 1)).await.unwrap();
    on4.echo(&packet(64, 2)).await.unwrap();

    f.me2.take().unwrap().stop().await;
    assert!(
        on2.recv_frame().await.is_err(),
        "a client of the lost connection is closed"
    );
    on4.echo(&packet(64, 3)).await.unwrap();

    let me2 = FakeMiddle::start_with_stats(
        f.me2_addr,
        FakeMiddleConfig::new(proxy_secret()),
        f.me2_stats.clone(),
    )
    .await
    .unwrap();
    let handshakes = f.seen2().handshakes;
    eventually("reconnection", || f.seen2().handshakes > handshakes).await;
    let mut again = connect(f.proxy, &client(plain(), ProtoTag::Intermediate, 2)).await;
    again.echo(&packet(64, 4)).await.unwrap();
    on4.echo(&packet(64, 5)).await.unwrap();
    assert_eq!(
        f.me4.stats().snapshot().handshakes,
        1,
        "DC 4's connection survived"
    );
    drop(me2);
}

#[tokio::test]
async fn without_a_middle_proxy_clients_fall_back_to_direct_if_allowed() {
    let dc = mtgate_bench::fake_dc::FakeDc::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .spawn();
    let dir = temp_dir("fallback");
    let secret_file = dir.0.join("proxy-secret");
    let conf_file = dir.0.join("proxy-multi.conf");
    std::fs::write(&secret_file, proxy_secret().as_bytes()).unwrap();
    // Nothing listens on port 9 of loopback.
    std::fs::write(&conf_file, "proxy_for 2 127.0.0.1:9;\n").unwrap();
    let text = format!(
        r#"
        [metrics]
        enabled = false
        [telegram]
        connect_timeout = "1s"
        dc_overrides = {{ "2" = ["{dc}"] }}
        [telegram.middle]
        proxy_secret_file = "{secret}"
        proxy_config_file = "{conf}"
        fallback_to_direct = true
        [[mtproto]]
        name = "test"
        mode = "middle"
        listen = ["127.0.0.1:0"]
        modes = ["classic"]
        [mtproto.masking]
        enabled = false
        [mtproto.users]
        alice = "{ALICE}"
        "#,
        dc = dc.local_addrs()[0],
        secret = secret_file.display(),
        conf = conf_file.display(),
    );
    let server = Server::start(config(&text)).await.unwrap();
    let proxy = server.local_addrs("test")[0];
    let mut conn = connect(
        proxy,
        &client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2),
    )
    .await;
    conn.echo(&packet(64, 1)).await.unwrap();
    assert_eq!(dc.stats().snapshot().last_dc, Some(DcId(2)));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_reload_moves_a_dc_to_new_middle_proxies_over_ipv6() {
    let f = MiddleFixture::start("reload").await;
    let plain = || ClientSecret::Plain(key(ALICE));
    let mut old = connect(f.proxy, &client(plain(), ProtoTag::Intermediate, 2)).await;
    old.echo(&packet(64, 1)).await.unwrap();

    let me6 = FakeMiddle::start(
        "[::1]:0".parse().unwrap(),
        FakeMiddleConfig::new(proxy_secret()),
    )
    .await
    .unwrap();
    let conf = f.dir.0.join("proxy-multi.conf");
    std::fs::write(
        &conf,
        format!(
            "default 2;\nproxy_for 2 {};\nproxy_for 4 {};\n",
            me6.addr(),
            f.me4.addr()
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(f.dir.0.join("config.toml")).unwrap();
    f.server.reload(config(&text));

    // New clients of DC 2 go to the new middle proxy, over IPv6 (its keys use the IPv6
    // addresses); the client already on the old one stays.
    let mut new = connect(f.proxy, &client(plain(), ProtoTag::Intermediate, 2)).await;
    new.echo(&packet(64, 2)).await.unwrap();
    let seen6 = me6.stats().snapshot();
    assert_eq!((seen6.handshakes, seen6.refused), (1, 0));
    assert_eq!(seen6.requests.len(), 1);
    old.echo(&packet(64, 3)).await.unwrap();
    assert_eq!(f.seen2().requests.len(), 2);
}

#[tokio::test]
async fn idle_clients_leave_the_table_and_the_middle_proxy_is_told() {
    let f = MiddleFixture::start_with("idle", "1s", "").await;
    let mut conn = connect(
        f.proxy,
        &client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2),
    )
    .await;
    conn.echo(&packet(64, 1)).await.unwrap();
    let id = f.seen2().requests.last().unwrap().conn_id;
    assert!(
        conn.recv_frame().await.is_err(),
        "closed after the idle timeout"
    );
    eventually("RPC_CLOSE_CONN", || f.seen2().closed.contains(&id)).await;
    let stats = http_get(f.server.metrics_addr().unwrap(), "/stats").await;
    assert!(stats.contains("ext_connections\t0"), "{stats}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_without_stalling_its_connection() {
    let f = MiddleFixture::start_with("slow", "30s", "client_queue = \"64KiB\"").await;
    let cfg = client(ClientSecret::Plain(key(ALICE)), ProtoTag::Intermediate, 2);
    let mut fast = connect(f.proxy, &cfg).await;
    fast.echo(&packet(64, 1)).await.unwrap();
    let fast_id = f.seen2().requests.last().unwrap().conn_id;

    // The slow client sends a lot and reads nothing: once the socket buffers are full, its
    // answers pile up in its queue until it overflows.
    let slow = connect(f.proxy, &cfg).await;
    let (_reader, mut writer) = slow.into_split();
    let flood = tokio::spawn(async move {
        let big = packet(60_000, 2);
        for _ in 0..2_000 {
            if writer.send(&big).await.is_err() {
                return;
            }
        }
    });
    eventually("the slow client's RPC_CLOSE_CONN", || {
        let seen = f.seen2();
        let slow_id = seen
            .requests
            .iter()
            .map(|r| r.conn_id)
            .find(|id| *id != fast_id);
        slow_id.is_some_and(|id| seen.closed.contains(&id))
    })
    .await;
    // Both were on the one connection, which still serves the other client.
    let seen = f.seen2();
    assert!(seen.requests.iter().all(|r| r.connection == 0));
    fast.echo(&packet(64, 3)).await.unwrap();
    flood.abort();
    let metrics = http_get(f.server.metrics_addr().unwrap(), "/metrics").await;
    assert!(metrics.contains("client_queue_overflow"), "{metrics}");
}
