//! Authenticated clients through mtgate to a fake DC, in every mode, over IPv4 and IPv6.

mod common;

use common::*;
use mtgate_bench::client::is_echo_of;
use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::obfs2::ProtoTag;
use mtgate_proto::mtproto::secret::ClientSecret;

async fn echo_round_trips(fixture: &Fixture, secret: ClientSecret, transport: ProtoTag, ccs: bool) {
    for addr in [fixture.proxy, fixture.proxy_v6] {
        let mut config = client_config(secret.clone());
        config.transport = transport;
        config.change_cipher_spec = ccs;
        config.dc = DcId(-4);
        let mut conn = connect(addr, &config).await;
        let small: Vec<u8> = (0..64u8).collect();
        let large: Vec<u8> = (0..60_000u32).map(|i| (i * 7) as u8).collect();
        for payload in [&small, &large, &small] {
            conn.send_frame(payload).await.unwrap();
            let echoed = conn.recv_frame().await.unwrap();
            assert!(
                is_echo_of(conn.transport(), payload, &echoed),
                "{} via {addr}",
                secret_name(&secret)
            );
        }
        let seen = fixture.dc.stats().snapshot();
        assert_eq!(seen.last_dc, Some(DcId(-4)), "the DC index reaches the DC");
        assert_eq!(
            seen.last_transport,
            Some(conn.transport()),
            "the client's transport reaches the DC"
        );
    }
}

fn secret_name(s: &ClientSecret) -> &'static str {
    match s {
        ClientSecret::Plain(_) => "plain",
        ClientSecret::Padded(_) => "dd",
        ClientSecret::FakeTls { .. } => "ee",
    }
}

#[tokio::test]
async fn every_mode_echoes_through_to_the_dc() {
    let fixture = Fixture::start(Options::default()).await;
    echo_round_trips(
        &fixture,
        ClientSecret::Plain(key(ALICE)),
        ProtoTag::Abridged,
        true,
    )
    .await;
    echo_round_trips(
        &fixture,
        ClientSecret::Plain(key(BOB)),
        ProtoTag::Intermediate,
        true,
    )
    .await;
    echo_round_trips(
        &fixture,
        ClientSecret::Padded(key(ALICE)),
        ProtoTag::Padded,
        true,
    )
    .await;
    echo_round_trips(&fixture, ee(ALICE), ProtoTag::Padded, true).await;
    // TelethonFakeTLS sends no ChangeCipherSpec before its first record.
    echo_round_trips(&fixture, ee(BOB), ProtoTag::Padded, false).await;
}

#[tokio::test]
async fn without_fast_mode_the_proxy_reencrypts_both_ways() {
    let fixture = Fixture::start(Options {
        fast_mode: false,
        ..Options::default()
    })
    .await;
    echo_round_trips(&fixture, ee(ALICE), ProtoTag::Padded, true).await;
    echo_round_trips(
        &fixture,
        ClientSecret::Plain(key(ALICE)),
        ProtoTag::Intermediate,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_moving_large_frames_at_once_all_finish() {
    let fixture = Fixture::start(Options::default()).await;
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let addr = if i % 2 == 0 {
            fixture.proxy
        } else {
            fixture.proxy_v6
        };
        let secret = if i % 3 == 0 {
            ee(ALICE)
        } else {
            ClientSecret::Padded(key(ALICE))
        };
        tasks.push(tokio::spawn(async move {
            let conn = connect(addr, &client_config(secret)).await;
            let transport = conn.transport();
            let (mut reader, mut writer) = conn.into_split();
            let payload: Vec<u8> = (0..64_000u32).map(|b| (b ^ i) as u8).collect();
            let sent = payload.clone();
            // Write and read at once, as a real client does.
            let writing = tokio::spawn(async move {
                for _ in 0..8 {
                    writer.send(&sent).await.unwrap();
                }
                writer
            });
            for _ in 0..8 {
                let echoed = reader.recv().await.unwrap();
                assert!(is_echo_of(transport, &payload, &echoed));
            }
            drop(writing.await.unwrap());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn sessions_show_in_metrics_and_stats() {
    let fixture = Fixture::start(Options::default()).await;
    let mut conn = connect(fixture.proxy, &client_config(ee(ALICE))).await;
    conn.echo(&[1, 2, 3, 4]).await.unwrap();
    let metrics_addr = fixture.server.metrics_addr().unwrap();
    let metrics = http_get(metrics_addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(
            r#"mtgate_mtproto_sessions_total{listener="test",user="alice",mode="fake-tls"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("mtgate_telegram_dc_connect_seconds_bucket"));
    assert!(metrics.contains("process_resident_memory_bytes"));
    let stats = http_get(metrics_addr, "/stats").await;
    assert!(
        stats.contains("user.test.alice.sessions_open\t1"),
        "{stats}"
    );
    assert!(
        stats.contains("user.test.alice.sessions_total\t1"),
        "{stats}"
    );
    assert!(
        !metrics.contains(ALICE) && !stats.contains(ALICE),
        "secrets never appear"
    );
    assert!(
        http_get(metrics_addr, "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );
}

#[tokio::test]
async fn a_users_connection_limit_is_enforced() {
    let fixture = Fixture::start(Options::default()).await;
    // bob may have 2 connections at once.
    let mut first = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(BOB))),
    )
    .await;
    let mut second = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(BOB))),
    )
    .await;
    first.echo(&[1; 8]).await.unwrap();
    second.echo(&[2; 8]).await.unwrap();
    let mut third = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(BOB))),
    )
    .await;
    assert!(
        third.echo(&[3; 8]).await.is_err(),
        "a third connection is closed"
    );
    drop(first);
    let metrics = fixture.server.metrics_addr().unwrap();
    for _ in 0..100 {
        if http_get(metrics, "/stats")
            .await
            .contains("user.test.bob.sessions_open\t1\n")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut fourth = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(BOB))),
    )
    .await;
    fourth.echo(&[4; 8]).await.unwrap();
}

#[tokio::test]
async fn an_oversized_frame_closes_the_session() {
    let fixture = Fixture::start(Options::default()).await;
    let mut config = client_config(ClientSecret::Plain(key(ALICE)));
    config.transport = ProtoTag::Intermediate;
    let mut conn = connect(fixture.proxy, &config).await;
    conn.echo(&[9; 16]).await.unwrap();
    // max_frame is 64 KiB in the fixture.
    let big = vec![0u8; 128 * 1024];
    let _ = conn.send_frame(&big).await;
    assert!(
        conn.recv_frame().await.is_err(),
        "the proxy closes instead of relaying"
    );
    let metrics = http_get(fixture.server.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains(
            r#"mtgate_mtproto_session_errors_total{listener="test",reason="frame_too_large"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn reload_changes_users_without_dropping_sessions() {
    let fixture = Fixture::start(Options::default()).await;
    let mut alice = connect(fixture.proxy, &client_config(ee(ALICE))).await;
    alice.echo(&[1; 12]).await.unwrap();
    // The new configuration keeps bob only.
    let text = fixture
        .config_text(&Options::default())
        .replace(&format!("alice = \"{ALICE}\""), "");
    fixture.server.reload(config(&text));
    // Alice's open session goes on; a new connection with her secret is refused (masked).
    alice.echo(&[2; 12]).await.unwrap();
    let mut refused = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(ALICE))),
    )
    .await;
    assert!(refused.echo(&[3; 8]).await.is_err());
    let mut bob = connect(
        fixture.proxy,
        &client_config(ClientSecret::Padded(key(BOB))),
    )
    .await;
    bob.echo(&[4; 8]).await.unwrap();
}
