//! UDP streams over the multiplexer: datagram boundaries survive, oversize datagrams are
//! refused, and a receiver that does not read makes the sender drop instead of buffer.

use mtgate_proto::address::Address;
use mtgate_proto::tunnel::{INITIAL_WINDOW, MAX_DATA_LEN, Network, OpenTarget};

use super::stream::JSON_STREAM_BUFFER;
use super::tests::{LIMIT, exchange, pair, serve_echo, target};
use super::*;

fn udp_target() -> OpenTarget {
    OpenTarget {
        network: Network::Udp,
        address: Address::Socket(([127, 0, 0, 1], 53).into()),
    }
}

/// Opens a UDP stream from the gateway side; returns both ends (the agent's accepted).
async fn udp_pair(codec: Codec) -> (MuxStream, MuxStream, Mux, Mux, Incoming) {
    let ((gateway, _gin), (agent, mut ain)) = pair(codec, MuxConfig::default());
    let opening = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.open(udp_target()).await.unwrap() }
    });
    let Some(Inbound::Open(open)) = ain.next().await else {
        panic!("an OPEN");
    };
    assert_eq!(open.target().network, Network::Udp);
    let far = open.accept();
    let near = opening.await.unwrap();
    assert!(near.is_datagram() && far.is_datagram());
    (near, far, gateway, agent, ain)
}

#[tokio::test]
async fn datagrams_keep_their_boundaries_both_ways() {
    for codec in [Codec::Binary, Codec::AnyProxyJson] {
        // The handles keep the connection up.
        let (near, far, _gateway, _agent, _ain) = udp_pair(codec).await;
        let sizes = [1, 7, 1000, MAX_DATA_LEN];
        for size in sizes {
            let datagram = vec![size as u8; size];
            near.send_datagram(&datagram).unwrap().unwrap();
        }
        for size in sizes {
            let got = tokio::time::timeout(LIMIT, far.recv_datagram())
                .await
                .expect("a datagram in time")
                .unwrap()
                .unwrap();
            assert_eq!(got.len(), size, "{codec:?}");
            assert!(got.iter().all(|b| *b == size as u8));
        }
        // And back, so both directions carry datagrams.
        far.send_datagram(b"answer").unwrap().unwrap();
        let got = near.recv_datagram().await.unwrap().unwrap();
        assert_eq!(&got[..], b"answer");
        // Too big for one frame, or empty: dropped, never split.
        assert_eq!(
            near.send_datagram(&vec![0u8; MAX_DATA_LEN + 1]).unwrap(),
            Err(DatagramDrop::Size)
        );
        assert_eq!(near.send_datagram(&[]).unwrap(), Err(DatagramDrop::Size));
    }
}

#[tokio::test]
async fn a_receiver_that_does_not_read_makes_the_sender_drop_not_buffer() {
    let (near, far, gateway, _agent, _ain) = udp_pair(Codec::Binary).await;
    let datagram = vec![1u8; 1000];
    let (mut sent, mut dropped) = (0usize, 0usize);
    for _ in 0..1000 {
        match near.send_datagram(&datagram).unwrap() {
            Ok(()) => sent += 1,
            Err(DatagramDrop::Full) => dropped += 1,
            Err(other) => panic!("{other:?}"),
        }
        tokio::task::yield_now().await;
    }
    // The window bounds what travels unread: the rest was dropped here.
    assert!(sent * 1000 <= INITIAL_WINDOW as usize, "sent {sent}");
    assert!(dropped > 0);
    assert_eq!(gateway.stats().datagrams_dropped, dropped as u64);
    // Once the receiver reads, the window opens again.
    for _ in 0..sent {
        tokio::time::timeout(LIMIT, far.recv_datagram())
            .await
            .expect("a queued datagram")
            .unwrap()
            .unwrap();
    }
    let mut resumed = false;
    for _ in 0..200 {
        if near.send_datagram(&datagram).unwrap().is_ok() {
            resumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(resumed, "credit came back");
}

#[tokio::test]
async fn json_datagrams_are_dropped_rather_than_pausing_the_connection() {
    let (near, far, gateway, agent, ain) = udp_pair(Codec::AnyProxyJson).await;
    serve_echo(ain);
    let datagram = vec![2u8; 4000];
    for _ in 0..400 {
        let _ = near.send_datagram(&datagram).unwrap();
        tokio::task::yield_now().await;
    }
    // Another stream still works while the UDP stream's reader sleeps.
    let tcp = gateway.open(target(7)).await.unwrap();
    let back = tokio::time::timeout(LIMIT, exchange(tcp, b"still alive"))
        .await
        .expect("the connection is not paused");
    assert_eq!(back, b"still alive");
    let mut held = 0;
    while let Ok(Some(Ok(Some(d)))) =
        tokio::time::timeout(std::time::Duration::from_millis(200), far.recv_datagram())
            .await
            .map(Some)
    {
        held += d.len();
    }
    assert!(held <= JSON_STREAM_BUFFER, "held {held}");
    let dropped = gateway.stats().datagrams_dropped + agent.stats().datagrams_dropped;
    assert!(dropped > 0, "nothing was dropped");
}
