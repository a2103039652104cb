//! The multiplexer against itself over an in-memory pipe, and against a raw WebSocket peer
//! that misbehaves.

use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::{Frame as WsFrame, OpCode, Payload, WebSocket};
use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{ErrorCode, Frame, MAX_DATA_LEN, Network, OpenTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

pub(super) const LIMIT: Duration = Duration::from_secs(20);

pub(super) fn target(port: u16) -> OpenTarget {
    OpenTarget {
        network: Network::Tcp,
        address: Address::Socket(([127, 0, 0, 1], port).into()),
    }
}

pub(super) fn pair(codec: Codec, config: MuxConfig) -> ((Mux, Incoming), (Mux, Incoming)) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let gateway = WebSocket::after_handshake(a, fastwebsockets::Role::Server);
    let agent = WebSocket::after_handshake(b, fastwebsockets::Role::Client);
    (
        Mux::start(gateway, Role::Gateway, codec, config.clone()),
        Mux::start(agent, Role::Agent, codec, config),
    )
}

/// Serves every OPEN: port 7 echoes until FIN then FINs; port 9 refuses as forbidden.
pub(super) fn serve_echo(mut incoming: Incoming) {
    tokio::spawn(async move {
        while let Some(request) = incoming.next().await {
            let Inbound::Open(open) = request else {
                continue;
            };
            let port = match &open.target().address {
                Address::Socket(a) => a.port(),
                Address::Domain(_, p) => *p,
            };
            if port == 9 {
                open.reject(ErrorCode::ForbiddenHost, "not here");
                continue;
            }
            let mut stream = open.accept();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
                let _ = stream.shutdown().await;
                // Keep the stream until the peer is done with it too.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Writes `data`, half-closes, reads everything back (concurrently).
async fn round_trip(stream: MuxStream, data: Vec<u8>) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let mut back = Vec::new();
    rd.read_to_end(&mut back).await.unwrap();
    let _wr = writer.await.unwrap();
    back
}

#[tokio::test]
async fn bytes_round_trip_beyond_the_window_with_half_close() {
    {
        let codec = Codec::Binary;
        let ((gateway, _gin), (_agent, ain)) = pair(codec, MuxConfig::default());
        serve_echo(ain);
        let stream = gateway.open(target(7)).await.unwrap();
        let data = pattern(3 * 1024 * 1024 + 17);
        let back = tokio::time::timeout(LIMIT, round_trip(stream, data.clone()))
            .await
            .expect("round trip finished");
        assert_eq!(back.len(), data.len(), "{codec:?}");
        assert!(back == data, "{codec:?}: bytes differ");
    }
}

/// Writes `data` and reads the same length back, then closes: the JSON protocol's `close`
/// ends both directions at once, so it cannot half-close.
pub(super) async fn exchange(stream: MuxStream, data: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let sent = data.to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.unwrap();
        wr
    });
    let mut back = vec![0u8; data.len()];
    rd.read_exact(&mut back).await.unwrap();
    let mut stream = rd.unsplit(writer.await.unwrap());
    stream.shutdown().await.unwrap();
    back
}

#[tokio::test]
async fn json_streams_carry_bytes_and_close_both_ways_at_once() {
    let ((gateway, _gin), (_agent, ain)) = pair(Codec::AnyProxyJson, MuxConfig::default());
    serve_echo(ain);
    let data = pattern(1024 * 1024 + 5);
    let stream = gateway.open(target(7)).await.unwrap();
    let back = tokio::time::timeout(LIMIT, exchange(stream, &data))
        .await
        .expect("exchange finished");
    assert!(back == data, "bytes differ");
}

#[tokio::test]
async fn refusals_carry_their_code() {
    for codec in [Codec::Binary, Codec::AnyProxyJson] {
        let ((gateway, _gin), (_agent, ain)) = pair(codec, MuxConfig::default());
        serve_echo(ain);
        match gateway.open(target(9)).await {
            Err(OpenError::Refused { code, .. }) => {
                assert_eq!(code, ErrorCode::ForbiddenHost, "{codec:?}")
            }
            other => panic!("{codec:?}: {other:?}"),
        }
        assert_eq!(gateway.stats().open_failures, 1);
        // The connection is still good.
        let stream = gateway.open(target(7)).await.unwrap();
        assert_eq!(exchange(stream, b"ok").await, b"ok");
    }
}

#[tokio::test]
async fn a_slow_reader_holds_the_writer_to_the_window_and_loses_nothing() {
    let ((gateway, _gin), (agent, mut ain)) = pair(Codec::Binary, MuxConfig::default());
    let total = 8 * 1024 * 1024;
    let sender = tokio::spawn(async move {
        let Some(Inbound::Open(open)) = ain.next().await else {
            panic!("no open");
        };
        let mut stream = open.accept();
        stream.write_all(&pattern(total)).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    });
    let mut stream = gateway.open(target(7)).await.unwrap();
    // Nobody reads for a while: the agent may send at most the initial window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = agent.stats().bytes_out;
    assert!(
        sent <= u64::from(mtgate_proto::tunnel::INITIAL_WINDOW) + MAX_DATA_LEN as u64,
        "sent {sent} bytes without credit"
    );
    let mut back = Vec::new();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("read everything");
    assert!(back == pattern(total));
    stream.shutdown().await.unwrap();
    sender.await.unwrap();
}

#[tokio::test]
async fn a_bulk_stream_does_not_starve_a_small_one() {
    let ((gateway, _gin), (_agent, ain)) = pair(Codec::Binary, MuxConfig::default());
    serve_echo(ain);
    let bulk = gateway.open(target(7)).await.unwrap();
    let (mut bulk_rd, mut bulk_wr) = tokio::io::split(bulk);
    let stop = tokio_util::sync::CancellationToken::new();
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let chunk = pattern(64 * 1024);
            while !stop.is_cancelled() {
                if bulk_wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            bulk_wr
        })
    };
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = bulk_rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut small = gateway.open(target(7)).await.unwrap();
    for _ in 0..50 {
        let mut echo = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(2), async {
            small.write_all(&[7u8; 64]).await.unwrap();
            small.read_exact(&mut echo).await.unwrap();
        })
        .await
        .expect("small request answered while the bulk stream runs");
        assert_eq!(echo, [7u8; 64]);
    }
    stop.cancel();
    drop(flood.await);
    drain.abort();
}

#[tokio::test]
async fn a_thousand_streams_at_once() {
    let ((gateway, _gin), (_agent, ain)) = pair(Codec::Binary, MuxConfig::default());
    serve_echo(ain);
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            let stream = gateway.open(target(7)).await.unwrap();
            let data = i.to_be_bytes().repeat(100);
            assert_eq!(round_trip(stream, data.clone()).await, data);
        }));
    }
    tokio::time::timeout(LIMIT, async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("all streams done");
    assert_eq!(gateway.stats().streams_total, 1000);
    // Finished streams are forgotten on both sides.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gateway.stats().open_streams, 0);
}

#[tokio::test]
async fn dropping_an_unfinished_stream_resets_it() {
    let ((gateway, _gin), (_agent, mut ain)) = pair(Codec::Binary, MuxConfig::default());
    let opened = gateway.open(target(7));
    let accepted = async {
        let Some(Inbound::Open(open)) = ain.next().await else {
            panic!("no open");
        };
        open.accept()
    };
    let (stream, mut far) = tokio::join!(opened, accepted);
    drop(stream.unwrap());
    let mut buf = [0u8; 8];
    let err = far.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn losing_the_connection_fails_streams_and_opens() {
    let ((gateway, _gin), (agent, ain)) = pair(Codec::Binary, MuxConfig::default());
    serve_echo(ain);
    let mut stream = gateway.open(target(7)).await.unwrap();
    agent.close();
    tokio::time::timeout(LIMIT, gateway.closed())
        .await
        .expect("gateway saw the close");
    let mut buf = [0u8; 8];
    assert!(stream.read(&mut buf).await.is_err());
    assert_eq!(
        gateway.open(target(7)).await.unwrap_err(),
        OpenError::Closed
    );
}

#[tokio::test]
async fn go_away_refuses_new_streams_and_lets_old_ones_finish() {
    let ((gateway, _gin), (agent, ain)) = pair(Codec::Binary, MuxConfig::default());
    serve_echo(ain);
    let old = gateway.open(target(7)).await.unwrap();
    agent.go_away();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(gateway.is_closing());
    assert_eq!(
        gateway.open(target(7)).await.unwrap_err(),
        OpenError::Closed
    );
    assert_eq!(round_trip(old, b"still here".to_vec()).await, b"still here");
}

#[tokio::test]
async fn listen_requests_reach_the_gateway_and_get_answers() {
    let ((_gateway, mut gin), (agent, _ain)) = pair(Codec::Binary, MuxConfig::default());
    tokio::spawn(async move {
        while let Some(Inbound::Listen(request)) = gin.next().await {
            if request.port() == 2222 {
                assert_eq!(request.target(), &Address::Domain("db".into(), 5432));
                request.answer(Ok(()));
            } else {
                request.answer(Err((ErrorCode::ForbiddenHost, "port not allowed".into())));
            }
        }
    });
    agent
        .listen(Network::Tcp, 2222, Address::Domain("db".into(), 5432))
        .await
        .unwrap();
    let refused = agent
        .listen(Network::Tcp, 80, Address::Domain("db".into(), 5432))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        ListenError::Refused {
            code: ErrorCode::ForbiddenHost,
            ..
        }
    ));
}

#[tokio::test]
async fn the_inbound_stream_limit_answers_rate_limited() {
    let config = MuxConfig {
        max_inbound_streams: 2,
        ..MuxConfig::default()
    };
    let ((gateway, _gin), (_agent, ain)) = pair(Codec::Binary, config);
    serve_echo(ain);
    let _a = gateway.open(target(7)).await.unwrap();
    let _b = gateway.open(target(7)).await.unwrap();
    match gateway.open(target(7)).await {
        Err(OpenError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RateLimited),
        other => panic!("{other:?}"),
    }
}

/// A gateway mux facing a raw WebSocket client the test drives by hand.
fn gateway_with_raw_peer(config: MuxConfig) -> (Mux, Incoming, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let gateway = WebSocket::after_handshake(a, fastwebsockets::Role::Server);
    let (mux, incoming) = Mux::start(gateway, Role::Gateway, Codec::Binary, config);
    let mut raw = WebSocket::after_handshake(b, fastwebsockets::Role::Client);
    // The mux may be gone by the time its close frame is read: do not answer it.
    raw.set_auto_close(false);
    (mux, incoming, raw)
}

async fn close_code(raw: &mut WebSocket<DuplexStream>) -> u16 {
    tokio::time::timeout(LIMIT, async {
        loop {
            let frame = raw.read_frame().await.expect("a close frame");
            if frame.opcode == OpCode::Close {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    })
    .await
    .expect("closed in time")
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_the_connection() {
    let cases: [(Vec<u8>, OpCode, u16); 3] = [
        (vec![0x7f, 0, 0, 0, 0, 1], OpCode::Binary, 1002),
        (b"{\"type\":\"auth\"}".to_vec(), OpCode::Text, 1003),
        (vec![0u8; 64 * 1024], OpCode::Binary, 1009),
    ];
    for (payload, opcode, expected) in cases {
        let (mux, _incoming, mut raw) = gateway_with_raw_peer(MuxConfig::default());
        raw.write_frame(WsFrame::new(true, opcode, None, Payload::Owned(payload)))
            .await
            .unwrap();
        assert_eq!(close_code(&mut raw).await, expected);
        tokio::time::timeout(LIMIT, mux.closed()).await.unwrap();
    }
}

#[tokio::test]
async fn data_beyond_the_window_resets_the_stream() {
    let (mux, mut incoming, mut raw) = gateway_with_raw_peer(MuxConfig::default());
    let open = Frame::Open {
        stream: 1,
        target: target(7),
    };
    raw.write_frame(WsFrame::binary(Payload::Bytes(BytesMut::from(
        &open.to_bytes()[..],
    ))))
    .await
    .unwrap();
    let Some(Inbound::Open(open)) = incoming.next().await else {
        panic!("no open");
    };
    let _stream = open.accept();
    // 9 × 32 KiB > 256 KiB: the ninth frame breaks the window.
    for _ in 0..9 {
        let data = Frame::Data {
            stream: 1,
            payload: vec![0u8; MAX_DATA_LEN].into(),
        };
        raw.write_frame(WsFrame::binary(Payload::Bytes(BytesMut::from(
            &data.to_bytes()[..],
        ))))
        .await
        .unwrap();
    }
    let reset = tokio::time::timeout(LIMIT, async {
        loop {
            let frame = raw.read_frame().await.unwrap();
            if frame.opcode != OpCode::Binary {
                continue;
            }
            let frame = Frame::decode(frame.payload.to_vec().into()).unwrap();
            if let Frame::Rst { code, .. } = frame {
                return code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reset, ErrorCode::FlowControl);
    assert!(!mux.is_closing());
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_dropped() {
    let config = MuxConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(200),
        ..MuxConfig::default()
    };
    // The raw peer never reads, so it never answers the pings.
    let (mux, _incoming, _raw) = gateway_with_raw_peer(config);
    tokio::time::timeout(Duration::from_secs(5), mux.closed())
        .await
        .expect("dead peer detected");
}

#[tokio::test]
async fn pings_measure_the_round_trip() {
    let config = MuxConfig {
        ping_interval: Duration::from_millis(50),
        ..MuxConfig::default()
    };
    let ((gateway, _gin), (_agent, _ain)) = pair(Codec::Binary, config);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gateway.stats().rtt.is_some());
    assert!(!gateway.is_closing());
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_before_closing() {
    let ((gateway, _gin), (agent, mut ain)) = pair(Codec::Binary, MuxConfig::default());
    let opened = gateway.open(target(7));
    let accepted = async {
        let Some(Inbound::Open(open)) = ain.next().await else {
            panic!("no open");
        };
        open.accept()
    };
    let (near, far) = tokio::join!(opened, accepted);
    let (mut near, mut far) = (near.unwrap(), far);
    near.shutdown().await.unwrap();
    // The agent writes its last bytes and FIN, then shuts the connection down at once.
    far.write_all(b"last words").await.unwrap();
    far.shutdown().await.unwrap();
    agent.shutdown(Duration::from_secs(2)).await;
    let mut back = Vec::new();
    tokio::time::timeout(LIMIT, near.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"last words");
    tokio::time::timeout(LIMIT, gateway.closed()).await.unwrap();
}
