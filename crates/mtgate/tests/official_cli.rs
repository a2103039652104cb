//! The official `mtproto-proxy` command line runs a working proxy: `mtgate mtproto-proxy …`
//! and the binary invoked as `mtproto-proxy`, in front of a fake middle proxy.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use mtgate_bench::fake_middle::{FakeMiddle, FakeMiddleConfig};
use mtgate_proto::mtproto::middle::secret::ProxySecret;
use mtgate_proto::mtproto::secret::ClientSecret;

const BIN: &str = env!("CARGO_BIN_EXE_mtgate");
const TAG: &str = "0123456789abcdef0123456789abcdef";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtgate-official-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(program: &std::path::Path, args: &[&str], dir: &std::path::Path) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .env("MTGATE_STATE_DIR", dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, needle: &str) -> String {
        for _ in 0..100 {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a `listening … addr=[::]:PORT` log line.
fn port_of(line: &str) -> u16 {
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .unwrap();
    let addr = addr.trim_matches(|c: char| c == '"' || c == '\u{1b}');
    addr.parse::<SocketAddr>().unwrap().port()
}

fn files(dir: &std::path::Path, me: SocketAddr) -> (String, String) {
    let secret = ProxySecret::new(vec![0x42; 128]).unwrap();
    let secret_file = dir.join("proxy-secret");
    let conf_file = dir.join("proxy-multi.conf");
    std::fs::write(&secret_file, secret.as_bytes()).unwrap();
    std::fs::write(&conf_file, format!("default 2;\nproxy_for 2 {me};\n")).unwrap();
    (
        secret_file.to_str().unwrap().to_owned(),
        conf_file.to_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_command_line_runs_a_middle_proxy() {
    let dir = temp_dir("run");
    let me = FakeMiddle::start(
        "127.0.0.1:0".parse().unwrap(),
        FakeMiddleConfig::new(ProxySecret::new(vec![0x42; 128]).unwrap()),
    )
    .await
    .unwrap();
    let (secret_file, conf_file) = files(&dir, me.addr());
    let args = [
        "mtproto-proxy",
        "-p",
        "0",
        "-H",
        "0",
        "-S",
        ALICE,
        "-S",
        BOB,
        "-P",
        TAG,
        "--aes-pwd",
        &secret_file,
        &conf_file,
        "-M",
        "2",
        "-C",
        "1000",
        "--nat-info",
        "127.0.0.1:127.0.0.1",
        "--http-stats",
        "-W",
        "65536",
    ];
    let mut running = Running::start(BIN.as_ref(), &args, &dir);
    running.wait_for("-W is accepted and ignored");
    let port = port_of(&running.wait_for("listening"));
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for secret in [ALICE, BOB] {
        let mut conn = connect(proxy, &client_config(ClientSecret::Padded(key(secret)))).await;
        let payload: Vec<u8> = (1..=64).collect();
        conn.echo(&payload).await.unwrap();
    }
    let seen = me.stats().snapshot();
    assert_eq!(seen.requests.len(), 2);
    let tag: [u8; 16] = mtgate_proto::hex::decode(TAG).unwrap().try_into().unwrap();
    assert!(seen.requests.iter().all(|r| r.ad_tag == Some(tag)));
}

#[test]
fn invoked_as_mtproto_proxy_it_takes_the_official_options() {
    let dir = temp_dir("argv0");
    let link = dir.join("mtproto-proxy");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link)
        .args([
            "-H",
            "443",
            "-S",
            ALICE,
            "-D",
            "www.example.com",
            "--aes-pwd",
            "proxy-secret",
            "proxy-multi.conf",
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(toml.contains("mode = \"middle\""), "{toml}");
    assert!(toml.contains("modes = [\"fake-tls\"]"), "{toml}");

    let out = Command::new(&link)
        .args(["-H", "443", "-S", ALICE, "--aes-pwd", "s", "c", "-d"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("does not daemonize"), "{err}");
}

#[test]
fn the_middle_proxy_example_is_valid() {
    let dir = temp_dir("example");
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/middle-proxy.toml");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&example)
        .env("MTGATE_STATE_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
