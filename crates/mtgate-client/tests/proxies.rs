//! Connecting through each proxy kind, chains, UDP and BIND, against in-process proxies.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mtgate_client::{Address, Chain, ConnectError, ConnectOptions, Kind, Proxy, Stage};
use mtgate_proto::socks5::Reply;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn creds() -> Option<(String, String)> {
    Some(("alice".into(), "pa:ss@word".into()))
}

#[tokio::test]
async fn socks5_with_and_without_auth() {
    let echo = echo_server().await;
    let open = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let proxy: Proxy = open.url("socks5").parse().unwrap();
    let mut stream = proxy.connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
    assert_eq!(stream.info().bytes_written, 4);
    assert_eq!(stream.info().bytes_read, 4);
    assert_eq!(stream.info().peer_addr, Some(open.addr));
    assert!(stream.info().bound_addr.is_some());

    let locked = spawn_proxy(Mode::Socks5 { auth: creds() }).await;
    let url = format!("socks5://alice:pa%3Ass%40word@{}", locked.addr);
    let mut stream = url.parse::<Proxy>().unwrap().connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"pong").await, b"pong");
}

#[tokio::test]
async fn socks5_wrong_or_missing_credentials() {
    let echo = echo_server().await;
    let locked = spawn_proxy(Mode::Socks5 { auth: creds() }).await;
    let wrong: Proxy = format!("socks5://alice:nope@{}", locked.addr)
        .parse()
        .unwrap();
    let err = wrong.connect(echo).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::AuthFailed { status: 1 }),
        "{err}"
    );
    assert!(err.is_auth_failure());
    assert_eq!(err.stage(), Stage::Auth);
    let anonymous: Proxy = locked.url("socks5").parse().unwrap();
    let err = anonymous.connect(echo).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoAcceptableMethod), "{err}");
}

#[tokio::test]
async fn socks5_reports_reply_codes() {
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let err = proxy
        .url("socks5")
        .parse::<Proxy>()
        .unwrap()
        .connect(closed_port().await)
        .await
        .unwrap_err();
    assert_eq!(err.socks5_reply(), Some(Reply::ConnectionRefused));
    assert_eq!(err.blame(), mtgate_client::Blame::Target);
    assert!(err.is_retry_safe());
}

#[tokio::test]
async fn dns_is_resolved_where_the_scheme_says() {
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let target = ("localhost", echo.port());
    let remote: Proxy = proxy.url("socks5h").parse().unwrap();
    remote.connect(target).await.unwrap();
    let local: Proxy = proxy.url("socks5").parse().unwrap();
    local.connect(target).await.unwrap();
    let seen = proxy.requested();
    assert_eq!(seen[0], Address::Domain("localhost".into(), echo.port()));
    assert!(
        matches!(seen[1], Address::Socket(a) if a.ip().is_loopback()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn socks4_and_socks4a() {
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Socks4).await;
    let four: Proxy = format!("socks4://bob@{}", proxy.addr).parse().unwrap();
    let mut s = four.connect(("localhost", echo.port())).await.unwrap();
    assert_eq!(round_trip(&mut s, b"4").await, b"4");
    let four_a: Proxy = proxy.url("socks4a").parse().unwrap();
    let mut s = four_a.connect(("localhost", echo.port())).await.unwrap();
    assert_eq!(round_trip(&mut s, b"4a").await, b"4a");
    let seen = proxy.requested();
    assert_eq!(seen[0], Address::Socket(echo));
    assert_eq!(seen[1], Address::Domain("localhost".into(), echo.port()));
    let err = four.connect("[::1]:80").await.unwrap_err();
    assert!(matches!(err, ConnectError::Unsupported(_)));
    assert!(!err.is_retry_safe());
}

#[tokio::test]
async fn http_connect_with_challenge_and_credentials() {
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Http {
        auth: creds(),
        early: Vec::new(),
    })
    .await;
    let anonymous: Proxy = proxy.url("http").parse().unwrap();
    let err = anonymous.connect(echo).await.unwrap_err();
    match &err {
        ConnectError::Http {
            status: 407,
            challenge: Some(c),
            ..
        } => assert_eq!(c, "Basic realm=\"fake\""),
        other => panic!("expected a 407, got {other}"),
    }
    assert!(err.is_auth_failure());
    let authed = anonymous.with_credentials("alice", "pa:ss@word");
    let mut s = authed.connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut s, b"through http").await, b"through http");
}

#[tokio::test]
async fn no_byte_is_lost_when_the_server_speaks_first() {
    // The proxy writes the target's first bytes in the same segment as its 200, and the target
    // itself greets first too.
    let banner = banner_server(b"220 hello from the target\r\n").await;
    let proxy = spawn_proxy(Mode::Http {
        auth: None,
        early: b"EARLY:".to_vec(),
    })
    .await;
    let p: Proxy = proxy.url("http").parse().unwrap();
    let mut stream = p.connect(banner).await.unwrap();
    let expected = b"EARLY:220 hello from the target\r\n";
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, expected);
    assert_eq!(round_trip(&mut stream, b"more").await, b"more");
}

#[tokio::test]
async fn socks5_target_speaking_first_is_kept() {
    let banner = banner_server(b"SSH-2.0-test\r\n").await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let p: Proxy = proxy.url("socks5").parse().unwrap();
    let mut stream = p.connect(banner).await.unwrap();
    let mut got = [0u8; 14];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"SSH-2.0-test\r\n");
}

#[tokio::test]
async fn ipv6_proxy_and_target() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        return; // no IPv6 loopback here
    };
    drop(listener);
    let proxy = spawn_proxy_on("[::1]:0", Mode::Socks5 { auth: None }).await;
    let echo = echo_server().await;
    let p: Proxy = format!("socks5h://[::1]:{}", proxy.addr.port())
        .parse()
        .unwrap();
    assert_eq!(p.host(), "::1");
    let mut s = p.connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut s, b"v6").await, b"v6");
}

#[tokio::test]
async fn chains_of_mixed_kinds_report_their_hops() {
    let echo = echo_server().await;
    let a = spawn_proxy(Mode::Socks5 { auth: creds() }).await;
    let b = spawn_proxy(Mode::Http {
        auth: None,
        early: Vec::new(),
    })
    .await;
    let c = spawn_proxy(Mode::Socks4).await;
    let chain = Chain::from_urls(&[
        format!("socks5h://alice:pa%3Ass%40word@{}", a.addr),
        b.url("http"),
        c.url("socks4a"),
    ])
    .unwrap();
    let mut s = chain.connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut s, b"three hops").await, b"three hops");
    let hops: Vec<String> = s.info().hops.iter().map(|h| h.to_string()).collect();
    assert_eq!(hops.len(), 3);
    assert!(
        hops[0].contains(":***@"),
        "password must be redacted: {hops:?}"
    );
    assert_eq!(s.info().peer_addr, Some(a.addr));
    // Each proxy saw the next hop as its target.
    assert_eq!(a.requested(), [Address::Socket(b.addr)]);
    assert_eq!(b.requested(), [Address::Socket(c.addr)]);
    assert_eq!(c.requested(), [Address::Socket(echo)]);
}

#[tokio::test]
async fn chain_errors_name_the_hop() {
    let a = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let b = spawn_proxy(Mode::Http {
        auth: creds(),
        early: Vec::new(),
    })
    .await;
    let chain = Chain::new([
        a.url("socks5").parse::<Proxy>().unwrap(),
        b.url("http").parse().unwrap(),
    ]);
    let err = chain.connect(echo_server().await).await.unwrap_err();
    assert!(matches!(err, ConnectError::Hop { index: 1, .. }), "{err}");
    assert_eq!(err.http_status(), Some(407));
}

#[tokio::test]
async fn direct_chain_connects_straight() {
    let echo = echo_server().await;
    let mut s = Chain::direct().connect(echo).await.unwrap();
    assert!(s.info().hops.is_empty());
    assert_eq!(round_trip(&mut s, b"direct").await, b"direct");
}

#[tokio::test]
async fn udp_associate_relays_datagrams() {
    let echo = udp_echo().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: creds() }).await;
    let p: Proxy = format!("socks5://alice:pa%3Ass%40word@{}", proxy.addr)
        .parse()
        .unwrap();
    let udp = Chain::from(p)
        .udp_associate(&ConnectOptions::default())
        .await
        .unwrap();
    for payload in [&b"first"[..], b"second"] {
        udp.send_to(payload, echo).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], payload);
        assert_eq!(from, Address::Socket(echo));
    }
    let http: Proxy = spawn_proxy(Mode::Http {
        auth: None,
        early: Vec::new(),
    })
    .await
    .url("http")
    .parse()
    .unwrap();
    let err = Chain::from(http)
        .udp_associate(&ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unsupported(_)));
}

#[tokio::test]
async fn bind_accepts_one_peer() {
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let p: Proxy = proxy.url("socks5").parse().unwrap();
    let listener = Chain::from(p)
        .bind(Address::unspecified(), &ConnectOptions::default())
        .await
        .unwrap();
    let Address::Socket(bound) = listener.bound_addr().clone() else {
        panic!("bound to a name")
    };
    let peer = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(bound).await.unwrap();
        s.write_all(b"from peer").await.unwrap();
        s.local_addr().unwrap()
    });
    let (mut stream, from) = listener.accept(Duration::from_secs(5)).await.unwrap();
    let mut got = [0u8; 9];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"from peer");
    assert_eq!(from, Address::Socket(peer.await.unwrap()));
}

#[tokio::test]
async fn https_proxy_over_tls() {
    let echo = echo_server().await;
    let (acceptor, client_config) = tls_pair();
    let proxy = spawn_tls_http_proxy(acceptor).await;
    let options = ConnectOptions {
        tls: Some(client_config),
        ..ConnectOptions::default()
    };
    let p = Proxy::new(Kind::Https, "localhost", proxy.port());
    let mut s = p.connect_with(echo, &options).await.unwrap();
    assert_eq!(round_trip(&mut s, b"inside tls").await, b"inside tls");
    // Without the test CA the certificate is refused at the TLS stage.
    let err = p.connect(echo).await.unwrap_err();
    assert_eq!(err.stage(), Stage::Tls, "{err}");
    // An https hop in the middle of a chain: TLS inside the first tunnel.
    let first = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let chain = Chain::new([first.url("socks5h").parse::<Proxy>().unwrap(), p.clone()]);
    let mut s = chain.connect_with(echo, &options).await.unwrap();
    assert_eq!(round_trip(&mut s, b"tls in tunnel").await, b"tls in tunnel");
}

fn tls_pair() -> (tokio_rustls::TlsAcceptor, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        Arc::new(client),
    )
}

/// An HTTP CONNECT proxy behind TLS: terminates TLS, then relays to a plain fake proxy.
async fn spawn_tls_http_proxy(acceptor: tokio_rustls::TlsAcceptor) -> std::net::SocketAddr {
    let inner = spawn_proxy(Mode::Http {
        auth: None,
        early: Vec::new(),
    })
    .await;
    let inner_addr = inner.addr;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = inner;
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = tokio::net::TcpStream::connect(inner_addr).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn bridge_copies_both_ways_and_maps_exit_codes() {
    use mtgate_client::bridge::{bridge, connect_exit_code, exit_code};
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let chain = Chain::from(proxy.url("socks5").parse::<Proxy>().unwrap());
    let input: &[u8] = b"stdin bytes";
    let mut output = Vec::new();
    let outcome = bridge(&chain, echo, &ConnectOptions::default(), input, &mut output).await;
    assert_eq!(exit_code(&outcome), 0);
    let moved = outcome.unwrap();
    assert_eq!((moved.sent, moved.received), (11, 11));
    assert_eq!(output, b"stdin bytes");

    let locked = spawn_proxy(Mode::Socks5 { auth: creds() }).await;
    let wrong = Chain::from(
        format!("socks5://alice:bad@{}", locked.addr)
            .parse::<Proxy>()
            .unwrap(),
    );
    let outcome = bridge(
        &wrong,
        echo,
        &ConnectOptions::default(),
        &b""[..],
        Vec::new(),
    )
    .await;
    assert_eq!(exit_code(&outcome), 77);
    let err = chain.connect(closed_port().await).await.unwrap_err();
    assert_eq!(
        connect_exit_code(&err),
        68,
        "target refused through the proxy"
    );
    let four = spawn_proxy(Mode::Socks4).await;
    let socks4: Proxy = four.url("socks4").parse().unwrap();
    let err = socks4.connect("[::1]:80").await.unwrap_err();
    assert_eq!(
        connect_exit_code(&err),
        64,
        "IPv6 over SOCKS4 is a usage error"
    );
}

#[tokio::test]
async fn bridge_ends_when_the_target_closes_even_if_input_stays_open() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"bye").await.unwrap();
    });
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let chain = Chain::from(proxy.url("socks5").parse::<Proxy>().unwrap());
    let (_keep_open, input) = tokio::io::duplex(64);
    let mut output = Vec::new();
    let options = ConnectOptions::default();
    let bridged = mtgate_client::bridge(&chain, target, &options, input, &mut output);
    let moved = tokio::time::timeout(Duration::from_secs(5), bridged)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((moved.received, output.as_slice()), (3, &b"bye"[..]));
}

#[tokio::test]
async fn into_tcp_hands_over_the_socket_and_the_early_bytes() {
    let banner = banner_server(b"hi").await;
    let proxy = spawn_proxy(Mode::Http {
        auth: None,
        early: b"early-".to_vec(),
    })
    .await;
    let p: Proxy = proxy.url("http").parse().unwrap();
    let stream = p.connect(banner).await.unwrap();
    let mut tunnel = stream.into_tcp().unwrap();
    // The proxy's early bytes came with the reply; the banner may have too.
    let mut seen = tunnel.prefix.to_vec();
    while seen.len() < 8 {
        let mut buf = [0u8; 8];
        let n = tunnel.tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(seen, b"early-hi");
    // TLS streams stay streams.
    let (acceptor, client_config) = tls_pair();
    let tls_proxy = spawn_tls_http_proxy(acceptor).await;
    let options = ConnectOptions {
        tls: Some(client_config),
        ..ConnectOptions::default()
    };
    let https = Proxy::new(Kind::Https, "localhost", tls_proxy.port());
    let stream = https.connect_with(banner, &options).await.unwrap();
    assert!(stream.into_tcp().is_err());
}

#[tokio::test]
async fn proxy_named_localhost_is_reached_over_any_of_its_addresses() {
    // `localhost` may resolve to ::1 first while the proxy listens on 127.0.0.1 only (the
    // tokio-socks #66 case): every address is tried.
    let echo = echo_server().await;
    let proxy = spawn_proxy(Mode::Socks5 { auth: None }).await;
    let p: Proxy = format!("socks5://localhost:{}", proxy.addr.port())
        .parse()
        .unwrap();
    let mut s = p.connect(echo).await.unwrap();
    assert_eq!(round_trip(&mut s, b"lh").await, b"lh");
    assert_eq!(s.info().peer_addr, Some(proxy.addr));
}
