//! The client and the fake DC against each other, directly and through a tiny proxy built
//! from the proto crate's server side, on IPv4 and IPv6 loopback.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_bench::client::{ClientConfig, ClientError, MtprotoConnection, Target, is_echo_of};
use mtgate_bench::fake_dc::{EchoMode, FakeDc, FakeDcConfig, FakeDcHandle};
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::{self, OpenSpec, ProtoTag};
use mtgate_proto::mtproto::secret::{ClientSecret, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: [u8; 16] = *b"0123456789abcdef";

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

async fn fake_dc(listen: SocketAddr, mode: EchoMode) -> FakeDcHandle {
    let config = FakeDcConfig {
        mode,
        ..FakeDcConfig::default()
    };
    FakeDc::bind_with(&[listen], config).await.unwrap().spawn()
}

fn config(target: Target, transport: ProtoTag, dc: i16) -> ClientConfig {
    ClientConfig {
        dc: DcId(dc),
        transport,
        timeout: Duration::from_secs(5),
        ..ClientConfig::new(target)
    }
}

/// Payloads that exercise the short and long abridged forms and reads split across frames.
fn payloads() -> Vec<Vec<u8>> {
    [4usize, 40, 4 * 0x7e, 4 * 0x7f, 40_000]
        .iter()
        .map(|&len| (0..len).map(|i| (i * 7 + len) as u8).collect())
        .collect()
}

async fn exchange(conn: &mut MtprotoConnection) {
    for payload in payloads() {
        conn.echo(&payload).await.unwrap();
    }
    // Pipelined: several frames out before any answer is read.
    let burst: Vec<Vec<u8>> = (1..=5).map(|i| vec![i as u8; i * 4]).collect();
    for payload in &burst {
        conn.send_frame(payload).await.unwrap();
    }
    for payload in &burst {
        let echoed = conn.recv_frame().await.unwrap();
        assert!(is_echo_of(conn.transport(), payload, &echoed));
    }
}

#[tokio::test]
async fn direct_client_and_fake_dc_agree_on_every_transport_v4_and_v6() {
    for listen in [v4(), v6()] {
        let dc = fake_dc(listen, EchoMode::Frames).await;
        let addr = dc.local_addrs()[0];
        for (i, tag) in ProtoTag::ALL.into_iter().enumerate() {
            let dc_index = -(i as i16) - 1;
            let mut conn = MtprotoConnection::connect(addr, &config(Target::Direct, tag, dc_index))
                .await
                .unwrap();
            assert_eq!(conn.transport(), tag);
            exchange(&mut conn).await;
            let stats = dc.stats().snapshot();
            assert_eq!(stats.last_transport, Some(tag), "{listen}");
            assert_eq!(stats.last_dc, Some(DcId(dc_index)));
        }
        let stats = dc.stats().snapshot();
        assert_eq!(stats.connections_accepted, 3);
        assert_eq!(stats.frames_echoed, 3 * (5 + 5));
        assert_eq!(stats.headers_rejected + stats.sessions_failed, 0);
        dc.stop().await;
    }
}

#[tokio::test]
async fn every_secret_kind_goes_through_a_proxy_v4_and_v6() {
    let key = Secret::from_bytes(KEY);
    let secrets = [
        (ClientSecret::Plain(key.clone()), ProtoTag::Abridged, true),
        (
            ClientSecret::Plain(key.clone()),
            ProtoTag::Intermediate,
            true,
        ),
        (ClientSecret::Padded(key.clone()), ProtoTag::Padded, true),
        (fake_tls(&key), ProtoTag::Padded, true),
        (fake_tls(&key), ProtoTag::Padded, false),
    ];
    for listen in [v4(), v6()] {
        let dc = fake_dc(listen, EchoMode::Frames).await;
        let proxy = support::start_proxy(listen, key.clone(), dc.local_addrs()[0]).await;
        for (secret, expected, ccs) in &secrets {
            let mut config = config(Target::Proxy(secret.clone()), ProtoTag::Abridged, 4);
            if *expected == ProtoTag::Intermediate {
                config.transport = ProtoTag::Intermediate;
            }
            config.change_cipher_spec = *ccs;
            let mut conn = MtprotoConnection::connect(proxy.addr, &config)
                .await
                .unwrap();
            assert_eq!(conn.transport(), *expected);
            exchange(&mut conn).await;
            assert_eq!(dc.stats().snapshot().last_transport, Some(*expected));
            assert_eq!(dc.stats().snapshot().last_dc, Some(DcId(4)));
        }
        assert_eq!(dc.stats().snapshot().connections_accepted, 5);
        dc.stop().await;
    }
}

fn fake_tls(key: &Secret) -> ClientSecret {
    ClientSecret::FakeTls {
        secret: key.clone(),
        domain: "example.com".into(),
    }
}

#[tokio::test]
async fn a_wrong_secret_is_caught_by_the_fake_tls_check() {
    let dc = fake_dc(v4(), EchoMode::Frames).await;
    let proxy = support::start_proxy(v4(), Secret::from_bytes(KEY), dc.local_addrs()[0]).await;
    let wrong = fake_tls(&Secret::from_bytes([9; 16]));
    let result = MtprotoConnection::connect(
        proxy.addr,
        &config(Target::Proxy(wrong), ProtoTag::Padded, 2),
    )
    .await;
    // The test proxy closes on a bad hello instead of masking.
    assert!(matches!(result, Err(ClientError::Closed(_))), "{result:?}");
}

#[tokio::test]
async fn raw_echo_returns_the_byte_stream_unparsed() {
    let dc = fake_dc(v6(), EchoMode::Raw).await;
    let conn = MtprotoConnection::connect(
        dc.local_addrs()[0],
        &config(Target::Direct, ProtoTag::Intermediate, 2),
    )
    .await
    .unwrap();
    let (reader, writer) = conn.into_split();
    let (mut reader, _) = reader.into_wire();
    let mut writer = writer.into_wire();
    // Not a frame: raw mode must not care.
    let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    writer.write(&sent).await.unwrap();
    let mut got = vec![0u8; sent.len()];
    let mut have = 0;
    while have < got.len() {
        let n = reader.read(&mut got[have..]).await.unwrap();
        assert!(n > 0);
        have += n;
    }
    assert_eq!(got, sent);
    assert_eq!(dc.stats().snapshot().bytes_echoed, sent.len() as u64);
    assert_eq!(dc.stats().snapshot().frames_echoed, 0);
}

#[tokio::test]
async fn the_fake_dc_refuses_unknown_tags_and_oversized_frames() {
    let config = FakeDcConfig {
        max_frame: 1024,
        ..FakeDcConfig::default()
    };
    let dc = FakeDc::bind_with(&[v4()], config).await.unwrap().spawn();
    let addr = dc.local_addrs()[0];

    // 64 random bytes: the decrypted tag is (almost surely) not a transport.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0x42; 64]).await.unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(garbage.read(&mut byte).await.unwrap(), 0, "closed");
    assert_eq!(dc.stats().snapshot().headers_rejected, 1);

    // A well-formed header, then a frame larger than the cap.
    let opened = obfs2::open(
        &OpenSpec {
            tag: ProtoTag::Intermediate,
            dc: DcId(1),
            secret: None,
            key_material: None,
        },
        |b| rand::fill(b),
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut frame = 2048u32.to_le_bytes().to_vec();
    let mut encrypt = opened.encrypt;
    encrypt.apply(&mut frame);
    stream.write_all(&opened.header).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    assert_eq!(stream.read(&mut byte).await.unwrap(), 0, "closed");
    assert_eq!(dc.stats().snapshot().sessions_failed, 1);
    dc.stop().await;
}

#[tokio::test]
async fn stopping_closes_open_connections() {
    let dc = fake_dc(v4(), EchoMode::Frames).await;
    let mut conn = MtprotoConnection::connect(
        dc.local_addrs()[0],
        &config(Target::Direct, ProtoTag::Padded, 2),
    )
    .await
    .unwrap();
    conn.echo(&[1, 2, 3, 4]).await.unwrap();
    assert_eq!(dc.stats().snapshot().connections_open, 1);
    let stats = std::sync::Arc::clone(dc.stats());
    dc.stop().await;
    assert_eq!(stats.snapshot().connections_open, 0);
    assert!(matches!(
        conn.recv_frame().await,
        Err(ClientError::Closed(_) | ClientError::Io { .. })
    ));
}
