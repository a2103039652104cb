//! The `mtgate` binary as an operator uses it: the embedded default, check-config, link,
//! SIGHUP reload, SIGUSR1 log reopening, SIGTERM shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use mtgate_bench::fake_dc::FakeDc;
use mtgate_proto::mtproto::secret::ClientSecret;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_mtgate");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `mtgate` whose stdout and stderr lines are collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], state_dir: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env("MTGATE_STATE_DIR", state_dir)
            .env("RUST_LOG", "info")
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

    /// Waits (up to 10 s) for a line containing `needle` and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        // Up to 10 s: 100 waits of at most 100 ms for the next line.
        for _ in 0..100 {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"));
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn stop(&mut self) -> i32 {
        self.signal(Signal::SIGTERM);
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("mtgate did not stop on SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a proxy running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_embedded_default_prints_links_that_survive_a_restart() {
    let state = temp_dir("default");
    let mut first = Running::start(&["run"], &state);
    let link = first.wait_for("tg://proxy?server=");
    first.wait_for("listening");
    assert!(link.contains("&port=8443&secret=ee"), "{link}");
    assert!(
        first
            .wait_for("https://t.me/proxy?server=")
            .contains("&port=8443&secret=ee")
    );
    first.wait_for("secret=dd");
    assert_eq!(first.stop(), 0);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(state.join("state.toml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the state file is private");
    let mut second = Running::start(&["run"], &state);
    assert_eq!(
        second.wait_for("tg://proxy?server="),
        link,
        "same secret after a restart"
    );
    assert_eq!(second.stop(), 0);
}

#[test]
fn check_config_accepts_good_files_and_points_at_mistakes() {
    let dir = temp_dir("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, format!("[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"padded\"]\n[mtproto.masking]\nenabled = false\n[mtproto.users]\nalice = \"{ALICE}\"\n")).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let cases = [
        (
            "[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodez = []\n",
            "unknown field `modez`",
        ),
        (
            "[[mtproto]]\nlisten = [\"nope\"]\n[mtproto.users]\na = \"auto\"\n",
            "mtproto[0].listen",
        ),
        (
            "[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"padded\"]\n[mtproto.masking]\nenabled = false\n[mtproto.users]\na = \"0011\"\n",
            "mtproto[0].users.a",
        ),
        (
            "[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"fake-tls\"]\n[mtproto.users]\na = \"auto\"\n",
            "fake_tls.domains",
        ),
        ("[server]\nshutdown_grace = \"soon\"\n", "invalid duration"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let bad = dir.join(format!("bad{i}.toml"));
        std::fs::write(&bad, text).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", bad.to_str().unwrap()])
            .env("MTGATE_STATE_DIR", &dir)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expected),
            "case {i}: expected {expected:?} in {err}"
        );
    }
    assert!(
        !dir.join("state.toml").exists(),
        "check-config writes nothing"
    );
}

#[test]
fn link_prints_every_form_and_a_qr_code() {
    let dir = temp_dir("link");
    let file = dir.join("link.toml");
    std::fs::write(
        &file,
        format!(
            "[[mtproto]]\nlisten = [\"[::]:443\"]\nmodes = [\"classic\", \"padded\", \"fake-tls\"]\npublic_host = \"proxy.example.net\"\n[mtproto.fake_tls]\ndomains = [\"{DOMAIN}\"]\n[mtproto.users]\nalice = \"{ALICE}\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["link", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let ee_hex = ClientSecret::FakeTls {
        secret: key(ALICE),
        domain: DOMAIN.into(),
    }
    .to_hex();
    assert!(
        text.contains(&format!(
            "tg://proxy?server=proxy.example.net&port=443&secret={ee_hex}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("secret=dd{ALICE}")));
    assert!(text.contains(&format!("secret={ALICE}")));
    assert!(
        text.contains('▀') || text.contains('▄'),
        "a QR code is drawn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_users_and_sigusr1_reopens_the_log() {
    let dir = temp_dir("reload");
    let dc = FakeDc::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .spawn();
    let dc_addr = dc.local_addrs()[0];
    let file = dir.join("mtgate.toml");
    let log = dir.join("mtgate.log");
    let write_config = |users: &str| {
        std::fs::write(
            &file,
            format!(
                "[server]\nlog_file = \"{}\"\nshutdown_grace = \"1s\"\n[metrics]\nenabled = false\n[telegram]\ndc_overrides = {{ \"2\" = [\"{dc_addr}\"] }}\n[[mtproto]]\nname = \"main\"\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"padded\"]\n[mtproto.masking]\nenabled = false\n[mtproto.users]\n{users}\n",
                log.display()
            ),
        )
        .unwrap();
    };
    write_config(&format!("alice = \"{ALICE}\""));
    let mut running = Running::start(&["run", "--config", file.to_str().unwrap()], &dir);
    running.wait_for("tg://proxy");
    // Logs go to the file; find the port there.
    let addr = wait_for_log(&log, "listener=\"main\" addr=").await;
    let mut alice = connect(addr, &client_config(ClientSecret::Padded(key(ALICE)))).await;
    alice.echo(&[1; 8]).await.unwrap();

    write_config(&format!("alice = \"{ALICE}\"\nbob = \"{BOB}\""));
    running.signal(Signal::SIGHUP);
    wait_for_log(&log, "configuration reloaded").await;
    let mut bob = connect(addr, &client_config(ClientSecret::Padded(key(BOB)))).await;
    bob.echo(&[2; 8]).await.unwrap();
    alice.echo(&[3; 8]).await.unwrap();

    // logrotate moves the file away, then asks for a reopen.
    std::fs::rename(&log, dir.join("mtgate.log.1")).unwrap();
    running.signal(Signal::SIGUSR1);
    wait_for_log(&log, "log file reopened").await;

    // A broken file keeps the running configuration.
    std::fs::write(&file, "[[mtproto]]\nlisten = 5\n").unwrap();
    running.signal(Signal::SIGHUP);
    wait_for_log(&log, "reload failed").await;
    bob.echo(&[4; 8]).await.unwrap();
    assert_eq!(running.stop(), 0);
    let all = std::fs::read_to_string(dir.join("mtgate.log.1")).unwrap()
        + &std::fs::read_to_string(&log).unwrap();
    assert!(
        !all.contains(ALICE) && !all.contains(BOB),
        "secrets never reach the log"
    );
}

/// Waits for a log line containing `needle`; returns the address after `addr=` if any.
async fn wait_for_log(log: &Path, needle: &str) -> SocketAddr {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(log)
            && let Some(line) = text.lines().find(|l| l.contains(needle))
        {
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok());
            return addr.unwrap_or_else(|| "0.0.0.0:0".parse().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {needle:?} in {}", log.display());
}

#[test]
fn privileges_are_dropped_after_binding() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let dir = temp_dir("privdrop");
    let file = dir.join("mtgate.toml");
    std::fs::write(
        &file,
        format!("[metrics]\nenabled = false\n[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"padded\"]\n[mtproto.masking]\nenabled = false\n[mtproto.users]\na = \"{ALICE}\"\n"),
    )
    .unwrap();
    let mut running = Running::start(
        &[
            "run",
            "--config",
            file.to_str().unwrap(),
            "--user",
            "nobody",
        ],
        &dir,
    );
    running.wait_for("dropped privileges");
    let status = std::fs::read_to_string(format!("/proc/{}/status", running.child.id())).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace()
            .skip(1)
            .all(|u| u == nobody.to_string()),
        "{uids}"
    );
    assert_eq!(running.stop(), 0);
}

#[test]
fn the_examples_and_the_embedded_default_are_valid() {
    let dir = temp_dir("examples");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && !path.to_string_lossy().contains("agent")
        {
            let mut check = Command::new(BIN);
            check
                .arg("check-config")
                .arg(&path)
                .env("MTGATE_STATE_DIR", &dir);
            if path.ends_with("gateway.toml") {
                // As the example says: make its certificate pair first, where it looks.
                let made = Command::new(BIN)
                    .args(["cert", "--name", "gateway.example"])
                    .args([
                        "--out-cert",
                        "gateway-cert.pem",
                        "--out-key",
                        "gateway-key.pem",
                    ])
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(made.status.success(), "{made:?}");
                check.current_dir(&dir);
            }
            let out = check.output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
    let default = Command::new(BIN).arg("default-config").output().unwrap();
    let file = dir.join("default.toml");
    std::fs::write(&file, default.stdout).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .env("MTGATE_STATE_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
