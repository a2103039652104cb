//! Proxies that misbehave: silent at each stage, closing mid-handshake, answering garbage.
//! Every failure must come back typed, within the one deadline, naming the stage.

mod support;

use std::time::Duration;

use mtgate_client::{Chain, ConnectError, ConnectOptions, Kind, Proxy, Stage};
use support::*;
use tokio::time::Instant;

const BUDGET: Duration = Duration::from_millis(300);

fn options() -> ConnectOptions {
    ConnectOptions::with_timeout(BUDGET)
}

/// Connects and checks the error is a timeout at `stage`, reported within the budget.
async fn expect_timeout(chain: Chain, stage: Stage) -> ConnectError {
    let target = echo_server().await;
    let started = Instant::now();
    let err = chain.connect_with(target, &options()).await.unwrap_err();
    let took = started.elapsed();
    match err.root() {
        ConnectError::Timeout { stage: s, after } => {
            assert_eq!((*s, *after), (stage, BUDGET), "{err}");
        }
        other => panic!("expected a timeout at {stage:?}, got {other}"),
    }
    assert!(took >= BUDGET && took < BUDGET * 4, "took {took:?}");
    assert!(err.is_retry_safe());
    err
}

fn proxy(scheme: &str, p: &FakeProxy) -> Chain {
    Chain::from(p.url(scheme).parse::<Proxy>().unwrap())
}

#[tokio::test]
async fn silent_proxies_time_out_at_the_first_exchange() {
    let silent = spawn_proxy(Mode::Silent).await;
    expect_timeout(proxy("socks5", &silent), Stage::Negotiate).await;
    expect_timeout(proxy("socks4a", &silent), Stage::Request).await;
    expect_timeout(proxy("http", &silent), Stage::Request).await;
    let https = Chain::from(Proxy::new(Kind::Https, "localhost", silent.addr.port()));
    expect_timeout(https, Stage::Tls).await;
}

#[tokio::test]
async fn stalls_after_negotiation_are_reported_per_stage() {
    let auth = spawn_proxy(Mode::StallInAuth).await;
    let with_creds = Chain::from(
        format!("socks5://u:p@{}", auth.addr)
            .parse::<Proxy>()
            .unwrap(),
    );
    expect_timeout(with_creds, Stage::Auth).await;
    let request = spawn_proxy(Mode::StallAfterGreeting).await;
    expect_timeout(proxy("socks5h", &request), Stage::Request).await;
}

#[tokio::test]
async fn one_deadline_covers_the_whole_chain() {
    let first = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let second = spawn_proxy(Mode::Silent).await;
    let chain = Chain::from_urls(&[first.url("socks5"), second.url("socks5")]).unwrap();
    let err = expect_timeout(chain, Stage::Negotiate).await;
    assert!(matches!(err, ConnectError::Hop { index: 1, .. }), "{err}");
}

#[tokio::test]
async fn connect_stage_timeout_when_the_accept_queue_is_full() {
    // A listener that never accepts, with a tiny backlog filled by earlier connections: the
    // kernel drops further SYNs, so the next connect hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let chain = Chain::from(Proxy::new(Kind::Socks5, "127.0.0.1", addr.port()));
    expect_timeout(chain, Stage::Connect).await;
}

#[tokio::test]
async fn closing_mid_handshake_is_reported() {
    // The greeting is 3 bytes; the proxy reads them and closes.
    let closing = spawn_proxy(Mode::CloseAfter(3)).await;
    let err = proxy("socks5", &closing)
        .connect_with(echo_server().await, &options())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Closed {
                stage: Stage::Negotiate
            }
        ),
        "{err}"
    );
    assert_eq!(err.reason(), "closed");
    // An HTTP proxy closing after part of the request: closed or reset, at the request stage.
    let closing = spawn_proxy(Mode::CloseAfter(8)).await;
    let err = proxy("http", &closing)
        .connect_with(echo_server().await, &options())
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Stage::Request, "{err}");
    assert!(matches!(err.reason(), "closed" | "reset"), "{err}");
}

#[tokio::test]
async fn garbage_replies_are_protocol_errors() {
    let cases = [
        (
            "socks5",
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            Stage::Negotiate,
        ),
        ("socks5", vec![5, 0x09], Stage::Negotiate),
        (
            "socks4",
            vec![0x47, 0x45, 0x54, 0x20, 0, 0, 0, 0],
            Stage::Request,
        ),
        (
            "http",
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
            Stage::Request,
        ),
    ];
    for (scheme, reply, stage) in cases {
        let bad = spawn_proxy(Mode::Garbage(reply.clone())).await;
        let err = proxy(scheme, &bad)
            .connect_with(echo_server().await, &options())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Protocol { stage: s, .. } if s == stage),
            "{scheme} {reply:?}: {err}"
        );
        assert_eq!(err.blame(), mtgate_client::Blame::Proxy);
    }
}

#[tokio::test]
async fn refused_proxy_is_an_io_error_at_connect() {
    let closed = closed_port().await;
    let chain = Chain::from(Proxy::new(Kind::Socks5h, "127.0.0.1", closed.port()));
    let err = chain
        .connect_with(echo_server().await, &options())
        .await
        .unwrap_err();
    assert_eq!(
        (err.stage(), err.reason()),
        (Stage::Connect, "refused"),
        "{err}"
    );
    assert_eq!(mtgate_client::bridge::connect_exit_code(&err), 69);
}
