//! mtgate-client against tokio-socks through real SOCKS5 servers: connect latency, bulk
//! throughput, and pool overhead against a single proxy. Run by `bench/client/run.sh`, which
//! starts the servers and sets:
//!
//! - `MTGATE_BENCH_PROXIES`: `name=host:port[=user:password]` entries separated by commas,
//! - `MTGATE_BENCH_CONNECTS` (default 400) and `MTGATE_BENCH_MIB` (default 256).
//!
//! Everything runs on one current-thread runtime so both clients get the same CPU share; the
//! targets are in-process servers on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use mtgate_client::pool::Strategy;
use mtgate_client::{ConnectOptions, Pool, Proxy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

struct Target {
    name: String,
    addr: SocketAddr,
    creds: Option<(String, String)>,
}

impl Target {
    fn proxy(&self) -> Proxy {
        let proxy = Proxy::new(
            mtgate_client::Kind::Socks5,
            self.addr.ip().to_string(),
            self.addr.port(),
        );
        match &self.creds {
            Some((u, p)) => proxy.with_credentials(u.clone(), p.clone()),
            None => proxy,
        }
    }

    async fn tokio_socks(&self, target: SocketAddr) -> tokio_socks::tcp::Socks5Stream<TcpStream> {
        match &self.creds {
            Some((u, p)) => {
                tokio_socks::tcp::Socks5Stream::connect_with_password(self.addr, target, u, p).await
            }
            None => tokio_socks::tcp::Socks5Stream::connect(self.addr, target).await,
        }
        .expect("tokio-socks connect")
    }
}

/// Accepts and holds connections until the client closes (connect latency target).
async fn hold_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// Reads 8 bytes of length, then that many bytes, then answers one byte (throughput target).
async fn sink_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let Ok(len) = s.read_u64().await else { return };
                let mut left = len;
                let mut buf = vec![0u8; 256 * 1024];
                while left > 0 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left = left.saturating_sub(n as u64),
                    }
                }
                let _ = s.write_all(b"k").await;
            });
        }
    });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    format!(
        "p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.9).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    )
}

async fn upload<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: u64) -> f64 {
    let chunk = vec![0x42u8; 64 * 1024];
    let started = Instant::now();
    stream.write_u64(bytes).await.unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).await.unwrap();
        left -= n as u64;
    }
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).await.unwrap();
    bytes as f64 / started.elapsed().as_secs_f64() / (1024.0 * 1024.0)
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let spec = match std::env::var("MTGATE_BENCH_PROXIES") {
        Ok(spec) => spec,
        Err(_) => {
            eprintln!("MTGATE_BENCH_PROXIES is not set: run bench/client/run.sh");
            return;
        }
    };
    let targets: Vec<Target> = spec
        .split(',')
        .map(|entry| {
            let mut parts = entry.splitn(3, '=');
            let name = parts.next().unwrap().to_owned();
            let addr = parts.next().unwrap().parse().unwrap();
            let creds = parts.next().map(|c| {
                let (u, p) = c.split_once(':').unwrap();
                (u.to_owned(), p.to_owned())
            });
            Target { name, addr, creds }
        })
        .collect();
    let connects = env_num("MTGATE_BENCH_CONNECTS", 400) as usize;
    let mib = env_num("MTGATE_BENCH_MIB", 256);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(targets, connects, mib));
}

async fn run(targets: Vec<Target>, connects: usize, mib: u64) {
    let hold = hold_server().await;
    let sink = sink_server().await;
    let options = ConnectOptions::default();
    println!(
        "# mtgate-client vs tokio-socks {connects} connects, {mib} MiB uploads; loopback, current-thread runtime"
    );
    for t in &targets {
        let proxy = t.proxy();
        // Warm up both paths (and the proxy's process pool, for dante).
        for _ in 0..20 {
            drop(proxy.connect_with(hold, &options).await.unwrap());
            drop(t.tokio_socks(hold).await);
        }
        // The same socket options as tokio-socks (no TCP_NODELAY, no keepalive), to separate
        // the cost of those system calls from the client itself.
        let bare = ConnectOptions {
            dial: mtgate_client::DialOptions {
                nodelay: false,
                keepalive: None,
                ..Default::default()
            },
            ..ConnectOptions::default()
        };
        let (mut ours, mut ours_bare, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..connects {
            // Rotate who goes first, so no client always follows another's teardown.
            for turn in 0..3 {
                let started = Instant::now();
                match (i + turn) % 3 {
                    0 => {
                        let s = proxy.connect_with(hold, &options).await.unwrap();
                        ours.push(started.elapsed());
                        drop(s);
                    }
                    1 => {
                        let s = proxy.connect_with(hold, &bare).await.unwrap();
                        ours_bare.push(started.elapsed());
                        drop(s);
                    }
                    _ => {
                        let s = t.tokio_socks(hold).await;
                        theirs.push(started.elapsed());
                        drop(s);
                    }
                }
            }
        }
        println!("{:<12} connect  mtgate-client  {}", t.name, summary(ours));
        println!(
            "{:<12} connect  (same sockopts){}",
            t.name,
            summary(ours_bare)
        );
        println!("{:<12} connect  tokio-socks    {}", t.name, summary(theirs));
        let bytes = mib * 1024 * 1024;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..5 {
            if i % 2 == 0 {
                ours.push(upload(proxy.connect_with(sink, &options).await.unwrap(), bytes).await);
                theirs.push(upload(t.tokio_socks(sink).await, bytes).await);
            } else {
                theirs.push(upload(t.tokio_socks(sink).await, bytes).await);
                ours.push(upload(proxy.connect_with(sink, &options).await.unwrap(), bytes).await);
            }
        }
        let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{:<12} upload   mtgate-client  median {:>7.0} MiB/s  best {:>7.0} MiB/s",
            t.name,
            median(&mut ours.clone()),
            best(&ours)
        );
        println!(
            "{:<12} upload   tokio-socks    median {:>7.0} MiB/s  best {:>7.0} MiB/s",
            t.name,
            median(&mut theirs.clone()),
            best(&theirs)
        );
    }
    // Pool overhead: the same proxy alone, in a pool of one, and three times in a round-robin pool.
    let t = &targets[0];
    let proxy = t.proxy();
    let single = Pool::builder().proxy(proxy.clone()).build();
    let triple = Pool::builder()
        .strategy(Strategy::RoundRobin)
        .proxy(proxy.clone())
        .proxy(proxy.clone())
        .proxy(proxy.clone())
        .build();
    let (mut alone, mut one, mut three) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..connects {
        let started = Instant::now();
        drop(proxy.connect_with(hold, &options).await.unwrap());
        alone.push(started.elapsed());
        let started = Instant::now();
        drop(single.connect(hold).await.unwrap());
        one.push(started.elapsed());
        let started = Instant::now();
        drop(triple.connect(hold).await.unwrap());
        three.push(started.elapsed());
    }
    println!("{:<12} pool     proxy alone    {}", t.name, summary(alone));
    println!("{:<12} pool     pool of 1      {}", t.name, summary(one));
    println!("{:<12} pool     pool of 3 (rr) {}", t.name, summary(three));
}
