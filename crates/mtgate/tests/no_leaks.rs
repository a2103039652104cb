//! Nothing outlives its connection: descriptors, tasks and buffers return to where they were.
//! (Alone in its test binary, so no other test's sockets change the descriptor count.)

mod common;

use std::time::Duration;

use common::*;
use mtgate_proto::mtproto::obfs2::ProtoTag;
use mtgate_proto::mtproto::secret::ClientSecret;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_socket_or_task_outlives_its_connection() {
    let fixture = Fixture::start(Options {
        handshake_timeout: "1s",
        ..Options::default()
    })
    .await;
    let metrics = fixture.server.metrics_addr().unwrap();
    let _ = http_get(metrics, "/stats").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (fds_before, tasks_before) = (open_fds(), alive_tasks());

    let mut work = Vec::new();
    for i in 0..12u8 {
        let addr = if i % 2 == 0 {
            fixture.proxy
        } else {
            fixture.proxy_v6
        };
        work.push(tokio::spawn(async move {
            let secret = match i % 3 {
                0 => ee(ALICE),
                1 => ClientSecret::Padded(key(ALICE)),
                _ => ClientSecret::Plain(key(ALICE)),
            };
            let mut conn = connect(addr, &client_config(secret)).await;
            conn.echo(&[i; 64]).await.unwrap();
        }));
    }
    for probe in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x42; 64][..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2][..],
        &[7; 20][..],
    ] {
        let addr = fixture.proxy;
        let probe = probe.to_vec();
        work.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&probe).await.unwrap();
            let _ = read_until_close(&mut s).await;
        }));
    }
    // A client that connects and never speaks, and one that sends an oversized frame.
    let silent = TcpStream::connect(fixture.proxy).await.unwrap();
    let mut config = client_config(ClientSecret::Plain(key(ALICE)));
    config.transport = ProtoTag::Intermediate;
    let mut oversized = connect(fixture.proxy, &config).await;
    let _ = oversized.send_frame(&vec![0; 100 * 1024]).await;
    for w in work {
        w.await.unwrap();
    }
    drop(oversized);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(silent);

    let shared = fixture.server.shared().clone();
    eventually("every connection to end", || {
        shared.conns.is_empty() && shared.gate.open() == 0
    })
    .await;
    eventually("the fake DC to see every connection end", || {
        fixture.dc.stats().snapshot().connections_open == 0
    })
    .await;
    eventually("descriptors back to where they were", || {
        open_fds() == fds_before
    })
    .await;
    eventually("tasks back to where they were", || {
        alive_tasks() <= tasks_before
    })
    .await;
    assert_eq!(shared.pool.held(), 0, "no relay buffer is held");
}
