//! The `tcp` listener over upstream pools, in-process: balancing, PROXY headers, failover,
//! the admin API under load, and reloads.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{config, eventually, http_get, read_until_close};
use mtgate::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TOKEN: &str = "test-admin-token-0123456789";

/// A backend that says its name, then echoes; it records the first bytes of each connection
/// (to check PROXY headers).
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
    first_bytes: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    accepted: Arc<AtomicUsize>,
}

impl Backend {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first_bytes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (record, count) = (first_bytes.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let record = record.clone();
                connections.spawn(async move {
                    let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                    let mut buf = vec![0u8; 4096];
                    let mut first = true;
                    loop {
                        let read =
                            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf));
                        let n = match read.await {
                            Ok(Ok(n)) if n > 0 => n,
                            _ => break,
                        };
                        if first {
                            record.lock().unwrap().push(buf[..n].to_vec());
                            first = false;
                        }
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            task,
            first_bytes,
            accepted,
        }
    }

    /// Stops accepting and closes every connection: the port refuses from now on.
    fn kill(&self) {
        self.task.abort();
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

async fn start(pool: &str, tcp_extra: &str) -> (Server, SocketAddr) {
    let text = format!(
        r#"
        [metrics]
        listen = "127.0.0.1:0"
        [admin]
        listen = "127.0.0.1:0"
        token = "{TOKEN}"
        {pool}
        [[tcp]]
        name = "lb"
        listen = ["127.0.0.1:0"]
        pool = "web"
        {tcp_extra}
        "#
    );
    let server = Server::start(config(&text)).await.unwrap();
    let addr = server.local_addrs("lb")[0];
    (server, addr)
}

fn pool_toml(strategy: &str, backends: &[&Backend], extra: &str) -> String {
    let servers: Vec<String> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!(r#"{{ url = "tcp://{}", name = "b{i}" }}"#, b.addr))
        .collect();
    format!(
        "[[pool]]\nname = \"web\"\nstrategy = \"{strategy}\"\nservers = [{}]\n{extra}",
        servers.join(", ")
    )
}

/// Connects through the listener, reads the backend's name, checks an echo; returns the name.
async fn exchange(lb: SocketAddr) -> Result<String, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(lb).await.map_err(|e| e.to_string())?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.last() != Some(&b'\n') {
            match stream.read(&mut byte).await {
                Ok(1) => line.push(byte[0]),
                _ => return Err(format!("closed after {line:?}")),
            }
        }
        stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut echo = [0u8; 4];
        stream
            .read_exact(&mut echo)
            .await
            .map_err(|e| e.to_string())?;
        if &echo != b"ping" {
            return Err("bad echo".into());
        }
        Ok(String::from_utf8_lossy(&line).trim().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

/// An admin API request; returns the status and the body.
async fn admin(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(server.admin_addr().unwrap())
        .await
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = String::from_utf8(read_until_close(&mut stream).await).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn server_state(pools_json: &str, server: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(pools_json).unwrap();
    value["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == server)
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".into())
}

#[tokio::test]
async fn round_robin_spreads_evenly_and_relays_both_ways() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let (server, lb) = start(&pool_toml("round-robin", &refs, ""), "").await;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..30 {
        *counts.entry(exchange(lb).await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(counts.into_values().collect::<Vec<_>>(), [10, 10, 10]);
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains(r#"mtgate_pool_server_connects_total{pool="web",server="b0"} 10"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mtgate_pool_server_up{pool="web",server="b2"} 1"#));
    // Each exchange: "ping" up; the backend's name line ("a\n") and the echo down.
    for (direction, bytes) in [("client_to_upstream", 120), ("upstream_to_client", 180)] {
        let line =
            format!(r#"mtgate_tcp_bytes_total{{listener="lb",direction="{direction}"}} {bytes}"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn proxy_protocol_headers_reach_the_backend() {
    for (version, prefix) in [
        ("v1", &b"PROXY TCP4 127.0.0.1 127.0.0.1 "[..]),
        ("v2", &b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c"[..]),
    ] {
        let backend = Backend::start("a").await;
        let (server, lb) = start(
            &pool_toml("round-robin", &[&backend], ""),
            &format!("proxy_protocol = \"{version}\""),
        )
        .await;
        let mut stream = TcpStream::connect(lb).await.unwrap();
        let client_port = stream.local_addr().unwrap().port();
        let mut name = [0u8; 2];
        stream.read_exact(&mut name).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        eventually("the backend got the header", || {
            !backend.first_bytes.lock().unwrap().is_empty()
        })
        .await;
        let first = backend.first_bytes.lock().unwrap()[0].clone();
        assert!(first.starts_with(prefix), "{version}: {first:?}");
        match version {
            "v1" => {
                let text = String::from_utf8_lossy(&first).into_owned();
                assert!(
                    text.contains(&format!(" {client_port} {}\r\n", lb.port())),
                    "{text}"
                );
            }
            _ => assert_eq!(
                &first[24..28],
                &[
                    (client_port >> 8) as u8,
                    client_port as u8,
                    (lb.port() >> 8) as u8,
                    lb.port() as u8
                ]
            ),
        }
        server.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_dead_backend_is_ejected_and_clients_never_notice() {
    let backends = [Backend::start("a").await, Backend::start("b").await];
    let refs: Vec<&Backend> = backends.iter().collect();
    let pool = pool_toml(
        "round-robin",
        &refs,
        "[pool.ejection]\nconsecutive_failures = 2\nbase_time = \"30s\"",
    );
    let (server, lb) = start(&pool, "").await;
    backends[1].kill();
    for _ in 0..40 {
        assert_eq!(
            exchange(lb).await.unwrap(),
            "a",
            "retried before the first byte"
        );
    }
    let (status, body) = admin(&server, "GET", "/pools/web", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    assert_eq!(server_state(&body, "b1"), "ejected", "{body}");
    let (_, failures) = admin(&server, "GET", "/pools/web/failures", Some(TOKEN), "").await;
    let failures: serde_json::Value = serde_json::from_str(&failures).unwrap();
    assert_eq!(
        failures["total"], 2,
        "two refusals, then ejected: {failures}"
    );
    assert_eq!(failures["recent"][0]["server"], "b1");
    assert_eq!(failures["recent"][0]["kind"], "refused");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn admin_api_needs_the_token() {
    let backend = Backend::start("a").await;
    let (server, _) = start(&pool_toml("round-robin", &[&backend], ""), "").await;
    assert_eq!(admin(&server, "GET", "/pools", None, "").await.0, 401);
    assert_eq!(
        admin(&server, "GET", "/pools", Some("wrong-token-0123456789"), "")
            .await
            .0,
        401
    );
    let (status, body) = admin(&server, "GET", "/pools", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"strategy\": \"round-robin\""), "{body}");
    assert_eq!(
        admin(&server, "GET", "/pools/nope", Some(TOKEN), "")
            .await
            .0,
        404
    );
    assert_eq!(
        admin(
            &server,
            "POST",
            "/pools/web/servers",
            Some(TOKEN),
            "{\"url\": \"ftp://x\"}"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin(
            &server,
            "PUT",
            "/pools/web/servers/b0/weight",
            Some(TOKEN),
            "{\"weight\": 0}"
        )
        .await
        .0,
        400
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn admin_changes_under_load_fail_no_connection() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let (server, lb) = start(
        &pool_toml("round-robin", &[&backends[0], &backends[1]], ""),
        "",
    )
    .await;
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (failures, done) = (failures.clone(), done.clone());
        load.spawn(async move {
            for _ in 0..100 {
                match exchange(lb).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    let add = format!(
        r#"{{"url": "tcp://{}", "name": "b2", "weight": 2}}"#,
        backends[2].addr
    );
    assert_eq!(
        admin(&server, "POST", "/pools/web/servers", Some(TOKEN), &add)
            .await
            .0,
        201
    );
    assert_eq!(
        admin(&server, "POST", "/pools/web/servers", Some(TOKEN), &add)
            .await
            .0,
        409
    );
    assert_eq!(
        admin(
            &server,
            "PUT",
            "/pools/web/servers/b0/weight",
            Some(TOKEN),
            r#"{"weight": 3}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        admin(
            &server,
            "PUT",
            "/pools/web/servers/b1/state",
            Some(TOKEN),
            r#"{"state": "drain"}"#
        )
        .await
        .0,
        200
    );
    let (_, body) = admin(&server, "GET", "/pools/web", Some(TOKEN), "").await;
    assert_eq!(server_state(&body, "b1"), "draining");
    assert_eq!(
        admin(&server, "DELETE", "/pools/web/servers/b1", Some(TOKEN), "")
            .await
            .0,
        200
    );
    while load.join_next().await.is_some() {}
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert_eq!(done.load(Ordering::Relaxed), 400);
    assert!(backends[2].accepted() > 0, "the added server took traffic");
    let (_, body) = admin(&server, "GET", "/pools/web", Some(TOKEN), "").await;
    assert_eq!(
        server_state(&body, "b1"),
        "absent",
        "removed once drained: {body}"
    );
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains(r#"mtgate_pool_server_weight{pool="web",server="b0"} 3"#),
        "{metrics}"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn hash_keeps_a_client_address_on_one_backend() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let (server, lb) = start(&pool_toml("hash", &refs, ""), "").await;
    let first = exchange(lb).await.unwrap();
    for _ in 0..10 {
        assert_eq!(exchange(lb).await.unwrap(), first);
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reload_reconciles_the_pool_without_dropping_connections() {
    let backends = [Backend::start("a").await, Backend::start("b").await];
    let (server, lb) = start(&pool_toml("round-robin", &[&backends[0]], ""), "").await;
    let mut held = TcpStream::connect(lb).await.unwrap();
    let mut name = [0u8; 2];
    held.read_exact(&mut name).await.unwrap();
    assert_eq!(&name, b"a\n");
    let text = format!(
        r#"
        [metrics]
        listen = "127.0.0.1:0"
        [admin]
        listen = "127.0.0.1:0"
        token = "{TOKEN}"
        [[pool]]
        name = "web"
        servers = [{{ url = "tcp://{}", name = "b1" }}]
        [[tcp]]
        name = "lb"
        listen = ["127.0.0.1:0"]
        pool = "web"
        "#,
        backends[1].addr
    );
    server.reload(config(&text));
    for _ in 0..5 {
        assert_eq!(exchange(lb).await.unwrap(), "b");
    }
    // The connection opened before the reload still works.
    held.write_all(b"old").await.unwrap();
    let mut echo = [0u8; 3];
    held.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"old");
    server.shutdown(Duration::from_secs(1)).await;
}
