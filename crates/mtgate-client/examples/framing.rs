//! Length-prefixed packets through a proxy (PyRoxi's `send_packet`/`receive_packet`), with a
//! `tokio_util` codec: send packets to an echo server and read them back.
//!
//! ```sh
//! cargo run -p mtgate-client --example framing -- socks5://127.0.0.1:1080 127.0.0.1:7
//! ```

use std::error::Error;

use futures_util::{SinkExt, StreamExt};
use mtgate_client::{LengthPrefixed, Proxy};
use tokio_util::codec::Framed;

/// Sends `packets` through `proxy_url` to an echo server at `target`; returns what came back.
pub async fn run(
    proxy_url: &str,
    target: &str,
    packets: &[&[u8]],
) -> Result<Vec<Vec<u8>>, Box<dyn Error>> {
    let proxy: Proxy = proxy_url.parse()?;
    let stream = proxy.connect(target).await?;
    let mut framed = Framed::new(stream, LengthPrefixed::default());
    for packet in packets {
        framed.send(*packet).await?;
    }
    let mut back = Vec::new();
    while back.len() < packets.len() {
        let packet = framed.next().await.ok_or("stream ended early")??;
        back.push(packet.to_vec());
    }
    Ok(back)
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proxy, target] = args.as_slice() else {
        eprintln!("usage: framing PROXY_URL HOST:PORT(echo)");
        std::process::exit(64);
    };
    let big = vec![0x5a; 100_000];
    let back = run(proxy, target, &[b"hello", b"", &big]).await?;
    let sizes: Vec<usize> = back.iter().map(Vec::len).collect();
    println!("echoed packets of {sizes:?} bytes");
    Ok(())
}
