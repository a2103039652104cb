//! A chain of proxies of any kinds: send a line to an echo server and read it back.
//!
//! ```sh
//! cargo run -p mtgate-client --example chain -- http://127.0.0.1:8888 socks5://127.0.0.1:1080 127.0.0.1:7
//! ```

use std::error::Error;
use std::time::Duration;

use mtgate_client::{Chain, ConnectOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes a line through `urls` to `target`; returns the echo and the hops used.
pub async fn run(urls: &[String], target: &str) -> Result<(String, Vec<String>), Box<dyn Error>> {
    let chain = Chain::from_urls(urls)?;
    let options = ConnectOptions::with_timeout(Duration::from_secs(5));
    let mut stream = chain.connect_with(target, &options).await?;
    let line = b"hello through the chain\n";
    stream.write_all(line).await?;
    let mut echo = vec![0u8; line.len()];
    stream.read_exact(&mut echo).await?;
    let hops = stream.info().hops.iter().map(|h| h.to_string()).collect();
    Ok((String::from_utf8(echo)?, hops))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.pop().filter(|_| !args.is_empty()) else {
        eprintln!("usage: chain PROXY_URL [PROXY_URL ...] HOST:PORT");
        std::process::exit(64);
    };
    let (echo, hops) = run(&args, &target).await?;
    println!("echo: {}", echo.trim_end());
    println!("hops: {}", hops.join(" -> "));
    Ok(())
}
