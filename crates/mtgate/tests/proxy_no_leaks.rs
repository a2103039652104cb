//! Nothing outlives a proxy connection: after successes, refusals, malformed input, timeouts,
//! HTTP keep-alive, CONNECT and UDP associations, descriptors and tasks return to where they
//! were. (Alone in its test binary, so no other test's sockets change the count.)

mod proxy_common;

use std::time::Duration;

use mtgate_client::{Chain, ConnectOptions, Proxy};
use proxy_common::{Echo, HttpOrigin, addr, connect, curl, run, server, udp_echo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let echo = Echo::start().await;
    let origin = HttpOrigin::start().await;
    let udp = udp_echo().await;
    let server = server(
        r#"
        [[mixed]]
        name = "m"
        listen = ["127.0.0.1:0"]
        handshake_timeout = "500ms"
        connect_ports = ["1024-65535"]
        rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
        "#,
    )
    .await;
    let proxy = addr(&server, "m", false);
    // Warm up lazily created state (metric families, the blocking pool).
    let p: Proxy = format!("socks5h://{proxy}").parse().unwrap();
    drop(p.connect(echo.v4).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (fds_before, tasks_before) = (open_fds(), alive_tasks());

    for round in 0..3 {
        // Tunnels that carry bytes.
        for url in [
            format!("socks5h://{proxy}"),
            format!("http://{proxy}"),
            format!("socks4://{proxy}"),
        ] {
            let p: Proxy = url.parse().unwrap();
            let mut s = p.connect(echo.v4).await.unwrap();
            s.write_all(b"leak?").await.unwrap();
            let mut back = [0u8; 5];
            s.read_exact(&mut back).await.unwrap();
        }
        // Refusals: refused port, default policy, malformed, silence (timeout).
        let p: Proxy = format!("socks5://{proxy}").parse().unwrap();
        assert!(p.connect("127.0.0.1:1").await.is_err());
        assert!(p.connect("10.255.255.1:80").await.is_err());
        for junk in [
            &b"\x05\x00"[..],
            b"\x05\x01\x00\x05\x09\x00\x01",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x01\x02",
        ] {
            let mut s = connect(proxy).await;
            let _ = s.write_all(junk).await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut sink)).await;
        }
        let _silent = connect(proxy).await;
        // UDP association.
        let chain = Chain::from(format!("socks5://{proxy}").parse::<Proxy>().unwrap());
        let datagrams = chain
            .udp_associate(&ConnectOptions::default())
            .await
            .unwrap();
        datagrams.send_to(&[round], udp).await.unwrap();
        let mut buf = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(5), datagrams.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        drop(datagrams);
        // HTTP keep-alive and CONNECT through curl, when present.
        if let Some(mut c) = curl() {
            let url = format!("http://127.0.0.1:{}/", origin.v4.port());
            c.args(["-x", &format!("http://{proxy}"), &url, &url]);
            assert_eq!(run(c).await.0, 0);
            let mut c = curl().unwrap();
            c.args(["-p", "-x", &format!("http://{proxy}"), &url]);
            assert_eq!(run(c).await.0, 0);
        }
    }

    // Everything settles back (the silent client meets the handshake timeout).
    let mut settled = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if open_fds() <= fds_before && alive_tasks() <= tasks_before {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "fds {} → {}, tasks {} → {}",
        fds_before,
        open_fds(),
        tasks_before,
        alive_tasks()
    );
    server.shutdown(Duration::from_secs(1)).await;
}
