//! What peers that fail the handshake see: the cover website (which receives exactly the bytes
//! they sent) or, with masking off, silence until the deadline.

mod common;

use std::time::Duration;

use common::*;
use mtgate_proto::mtproto::faketls::client_hello::{self, HelloSpec};
use mtgate_proto::mtproto::faketls::server_hello;
use mtgate_proto::mtproto::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn hello(secret: &Secret, domain: &str, unix_time: u32) -> Vec<u8> {
    let mut session_id = [0u8; 32];
    rand::fill(&mut session_id);
    client_hello::build(
        secret,
        &HelloSpec {
            domain,
            unix_time,
            session_id,
            key_share: [9; 32],
        },
    )
}

/// Sends `bytes`, then reads what comes back until the proxy closes.
async fn probe(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_close(&mut stream).await
}

async fn failures(fixture: &Fixture, reason: &str) -> bool {
    let metrics = http_get(fixture.server.metrics_addr().unwrap(), "/metrics").await;
    metrics.contains(&format!(
        r#"mtgate_mtproto_handshake_failures_total{{listener="test",reason="{reason}"}}"#
    ))
}

#[tokio::test]
async fn a_wrong_secret_is_relayed_to_the_cover_site_byte_for_byte() {
    let fixture = Fixture::start(Options::default()).await;
    let mut garbage = [0u8; 64];
    rand::fill(&mut garbage);
    garbage[0] = 0x42;
    let answer = probe(fixture.proxy, &garbage).await;
    assert_eq!(answer, WEBSITE_BANNER, "the peer sees the website's answer");
    assert_eq!(
        fixture.website.connection(0).await,
        garbage,
        "the website got exactly the probe"
    );
    assert!(failures(&fixture, "bad_secret").await);
}

#[tokio::test]
async fn an_http_probe_gets_the_website_at_once() {
    let fixture = Fixture::start(Options {
        handshake_timeout: "30s",
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: cover.example\r\n\r\n";
    assert_eq!(probe(fixture.proxy_v6, request).await, WEBSITE_BANNER);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for the handshake deadline"
    );
    assert_eq!(fixture.website.connection(0).await, request);
    assert!(failures(&fixture, "other_protocol").await);
}

#[tokio::test]
async fn a_hello_with_a_wrong_key_or_domain_is_masked() {
    let fixture = Fixture::start(Options::default()).await;
    let wrong_key = hello(&Secret::from_bytes([3; 16]), DOMAIN, unix_now());
    assert_eq!(probe(fixture.proxy, &wrong_key).await, WEBSITE_BANNER);
    assert_eq!(fixture.website.connection(0).await, wrong_key);
    let wrong_domain = hello(&key(ALICE), "other.example", unix_now());
    assert_eq!(probe(fixture.proxy, &wrong_domain).await, WEBSITE_BANNER);
    assert_eq!(fixture.website.connection(1).await, wrong_domain);
    assert!(failures(&fixture, "bad_digest").await);
    assert!(failures(&fixture, "unknown_sni").await);
}

#[tokio::test]
async fn a_skewed_clock_is_masked() {
    let fixture = Fixture::start(Options::default()).await;
    for unix_time in [unix_now() - 3600, unix_now() + 60] {
        let skewed = hello(&key(ALICE), DOMAIN, unix_time);
        assert_eq!(probe(fixture.proxy, &skewed).await, WEBSITE_BANNER);
    }
    assert_eq!(fixture.website.connections(), 2);
    assert!(failures(&fixture, "clock_skew").await);
}

#[tokio::test]
async fn a_replayed_hello_is_masked() {
    let fixture = Fixture::start(Options::default()).await;
    let first = hello(&key(ALICE), DOMAIN, unix_now());
    let mut stream = TcpStream::connect(fixture.proxy).await.unwrap();
    stream.write_all(&first).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let random: [u8; 32] = first[11..43].try_into().unwrap();
    let len = server_hello::answer_len(&answer[..n]).unwrap().unwrap();
    let mut got = answer[..n].to_vec();
    while got.len() < len {
        let m = stream.read(&mut answer).await.unwrap();
        assert!(m > 0);
        got.extend_from_slice(&answer[..m]);
    }
    server_hello::verify(&key(ALICE), &random, &got[..len])
        .expect("a genuine answer the first time");
    // A censor replays the same hello: it sees the website, not a fake-TLS answer.
    assert_eq!(probe(fixture.proxy, &first).await, WEBSITE_BANNER);
    assert_eq!(fixture.website.connection(0).await, first);
    assert!(failures(&fixture, "replay").await);
}

#[tokio::test]
async fn a_replayed_obfuscated2_header_is_masked() {
    let fixture = Fixture::start(Options::default()).await;
    // Record what a real client sends first: its 64-byte header and first frame.
    let capture = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let capture_addr = capture.local_addr().unwrap();
    let recorder = tokio::spawn(async move {
        let (mut s, _) = capture.accept().await.unwrap();
        let mut buf = vec![0u8; 64 + 4 + 8];
        s.read_exact(&mut buf).await.unwrap();
        buf
    });
    // Intermediate transport: no random padding, so the frame is exactly 4 + 8 bytes.
    let secret = mtgate_proto::mtproto::secret::ClientSecret::Plain(key(ALICE));
    let mut config = client_config(secret);
    config.transport = mtgate_proto::mtproto::obfs2::ProtoTag::Intermediate;
    let mut capture_conn = mtgate_bench::client::MtprotoConnection::connect(capture_addr, &config)
        .await
        .unwrap();
    capture_conn.send_frame(&[5; 8]).await.unwrap();
    let recorded = recorder.await.unwrap();
    // The first time the proxy accepts it (and forwards to the DC)…
    let mut real = TcpStream::connect(fixture.proxy).await.unwrap();
    real.write_all(&recorded).await.unwrap();
    eventually("the DC to see the replayed frame", || {
        fixture.dc.stats().snapshot().frames_echoed == 1
    })
    .await;
    // …the second time it is a replay.
    let mut replayed = recorded.clone();
    replayed.truncate(64);
    assert_eq!(probe(fixture.proxy, &replayed).await, WEBSITE_BANNER);
    assert!(failures(&fixture, "replay").await);
}

#[tokio::test]
async fn a_slow_client_is_masked_at_the_deadline_with_what_it_sent() {
    let fixture = Fixture::start(Options {
        handshake_timeout: "1s",
        ..Options::default()
    })
    .await;
    let mut stream = TcpStream::connect(fixture.proxy).await.unwrap();
    let started = Instant::now();
    let drip = b"\x16\x03\x01\x02";
    for byte in drip {
        stream.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let answer = read_until_close(&mut stream).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(answer, WEBSITE_BANNER);
    assert_eq!(fixture.website.connection(0).await, drip);
    assert!(failures(&fixture, "timeout").await);
}

#[tokio::test]
async fn a_truncated_header_goes_to_the_website_with_its_half_close() {
    let fixture = Fixture::start(Options::default()).await;
    let mut stream = TcpStream::connect(fixture.proxy).await.unwrap();
    stream.write_all(&[0x11; 30]).await.unwrap();
    stream.shutdown().await.unwrap();
    // The website sees the 30 bytes and the end of the stream, and its answer comes back.
    assert_eq!(read_until_close(&mut stream).await, WEBSITE_BANNER);
    assert_eq!(fixture.website.connection(0).await, [0x11; 30]);
    assert!(failures(&fixture, "closed").await);
}

#[tokio::test]
async fn with_masking_off_a_probe_gets_silence_until_the_deadline() {
    let fixture = Fixture::start(Options {
        masking: false,
        handshake_timeout: "1s",
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let answer = probe(fixture.proxy, &[0x42; 64]).await;
    assert!(answer.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held until the deadline"
    );
    assert_eq!(fixture.website.connections(), 0);
}

#[tokio::test]
async fn a_mode_that_is_off_is_masked() {
    let fixture = Fixture::start(Options {
        modes: r#"["fake-tls"]"#,
        ..Options::default()
    })
    .await;
    let secret = mtgate_proto::mtproto::secret::ClientSecret::Padded(key(ALICE));
    let mut conn = connect(fixture.proxy, &client_config(secret)).await;
    assert!(conn.echo(&[1; 8]).await.is_err());
    eventually("the website to get the connection", || {
        fixture.website.connections() == 1
    })
    .await;
    assert!(failures(&fixture, "mode_disabled").await);
}

#[tokio::test]
async fn oversized_garbage_that_looks_like_tls_is_masked() {
    let fixture = Fixture::start(Options::default()).await;
    // A handshake record announcing a 60 KB hello.
    let mut big = vec![0x16, 0x03, 0x01, 0xea, 0x60, 0x01, 0x00, 0xea, 0x5c];
    big.resize(2000, 0);
    assert_eq!(probe(fixture.proxy, &big).await, WEBSITE_BANNER);
    assert!(failures(&fixture, "too_large").await);
}
