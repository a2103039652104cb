//! UDP through a SOCKS5 proxy: send a datagram and wait for the answer.
//!
//! ```sh
//! cargo run -p mtgate-client --example udp -- socks5://127.0.0.1:1080 127.0.0.1:5353 hello
//! ```

use std::error::Error;
use std::time::Duration;

use mtgate_client::{Address, Chain, ConnectOptions, Proxy};

/// Sends `payload` to `target` through `proxy_url`'s UDP relay; returns the answer and who
/// sent it.
pub async fn run(
    proxy_url: &str,
    target: &str,
    payload: &[u8],
) -> Result<(Vec<u8>, Address), Box<dyn Error>> {
    let proxy: Proxy = proxy_url.parse()?;
    let udp = Chain::from(proxy)
        .udp_associate(&ConnectOptions::default())
        .await?;
    udp.send_to(payload, target).await?;
    let mut buf = vec![0u8; 65_535];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf)).await??;
    buf.truncate(n);
    Ok((buf, from))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proxy, target, payload] = args.as_slice() else {
        eprintln!("usage: udp PROXY_URL HOST:PORT PAYLOAD");
        std::process::exit(64);
    };
    let (answer, from) = run(proxy, target, payload.as_bytes()).await?;
    println!(
        "{} bytes from {from}: {}",
        answer.len(),
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}
