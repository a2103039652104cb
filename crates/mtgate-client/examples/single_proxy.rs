//! One proxy: `GET /` from an HTTP server through it, and what the connection knows.
//!
//! ```sh
//! cargo run -p mtgate-client --example single_proxy -- socks5h://user:pass@127.0.0.1:1080 example.com:80
//! ```

use std::error::Error;
use std::time::Duration;

use mtgate_client::http_request;
use mtgate_client::{ConnectOptions, Proxy};

/// Fetches `/` from `target` through `proxy_url`; returns the status line and the connection
/// summary.
pub async fn run(proxy_url: &str, target: &str) -> Result<String, Box<dyn Error>> {
    let proxy: Proxy = proxy_url.parse()?;
    let options = ConnectOptions::with_timeout(Duration::from_secs(5));
    let stream = proxy.connect_with(target, &options).await?;
    let info = stream.info();
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let response = http_request::get(stream, host, "/", 1024 * 1024).await?;
    Ok(format!(
        "HTTP {} ({} body bytes) via {} from {:?} to {:?} in {:?}",
        response.status,
        response.body.len(),
        proxy,
        info.local_addr,
        info.peer_addr,
        info.connect_time
    ))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proxy, target] = args.as_slice() else {
        eprintln!("usage: single_proxy PROXY_URL HOST:PORT");
        std::process::exit(64);
    };
    println!("{}", run(proxy, target).await?);
    Ok(())
}
