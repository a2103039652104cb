//! bcrypt passwords on the proxy listeners: hashes made by `htpasswd -B` and Python's `bcrypt`,
//! inline and in a users file, through SOCKS5 (RFC 1929) and HTTP (Basic); a cost over the cap
//! is refused when the config loads.

mod proxy_common;

use std::time::Duration;

use mtgate::config::{Config, Origin, SecretSource};
use mtgate_client::Proxy;
use mtgate_proto::mtproto::secret::Secret;
use proxy_common::{Echo, addr, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `htpasswd -nbB -C 10 alice 'correct horse battery'` (apache2-utils 2.4.71, Debian 12).
const ALICE_2Y: &str = "$2y$10$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO";
/// Python `bcrypt` 5.0.0: `bcrypt.hashpw(b'socks-secret', bcrypt.gensalt(rounds=4))`.
const CAROL_2B: &str = "$2b$04$lsbDlOgSQqLzcNgCQHdqUO.KD1Ag25VDbQhnGhYHnw5IZkHrE1QIS";

fn config(users_file: &str) -> String {
    format!(
        r#"
    [[socks5]]
    name = "socks"
    listen = ["127.0.0.1:0"]
    users_file = "{users_file}"
    rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
    [socks5.users]
    alice = "{ALICE_2Y}"

    [[http]]
    name = "web"
    listen = ["127.0.0.1:0"]
    connect_ports = ["1-65535"]
    rules = [{{ action = "allow", cidrs = ["127.0.0.0/8"] }}]
    [http.users]
    alice = "{ALICE_2Y}"
    "#
    )
}

async fn echo_through(proxy: &Proxy, target: std::net::SocketAddr) -> Result<Vec<u8>, String> {
    let connecting = tokio::time::timeout(Duration::from_secs(10), proxy.connect(target));
    let mut stream = connecting
        .await
        .map_err(|_| "no answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Ok(buf.to_vec())
}

#[tokio::test]
async fn bcrypt_users_log_in_over_socks5_and_http() {
    let echo = Echo::start().await;
    let dir = std::env::temp_dir().join(format!("mtgate-bcrypt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    std::fs::write(&file, format!("# from Python bcrypt\ncarol:{CAROL_2B}\n")).unwrap();
    let server = server(&config(file.to_str().unwrap())).await;
    let socks = addr(&server, "socks", false);
    let http = addr(&server, "web", false);
    let url = |scheme: &str, user: &str, pass: &str, at| {
        let pass = pass.replace(' ', "%20");
        format!("{scheme}://{user}:{pass}@{at}")
            .parse::<Proxy>()
            .unwrap()
    };

    let alice = url("socks5", "alice", "correct horse battery", socks);
    assert_eq!(echo_through(&alice, echo.v4).await.unwrap(), b"ping");
    // Again: answered from the remembered digest this time.
    assert_eq!(echo_through(&alice, echo.v4).await.unwrap(), b"ping");
    let carol = url("socks5", "carol", "socks-secret", socks);
    assert_eq!(echo_through(&carol, echo.v4).await.unwrap(), b"ping");
    let web = url("http", "alice", "correct horse battery", http);
    assert_eq!(echo_through(&web, echo.v4).await.unwrap(), b"ping");

    for wrong in [
        url("socks5", "alice", "correct horse batterY", socks),
        url("socks5", "carol", "correct horse battery", socks),
        url("socks5", "mallory", "correct horse battery", socks),
    ] {
        let err = echo_through(&wrong, echo.v4).await.unwrap_err();
        assert!(err.contains("rejected the credentials"), "{err}");
    }
    let err = echo_through(&url("http", "alice", "wrong", http), echo.v4)
        .await
        .unwrap_err();
    assert!(err.contains("407"), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(dir);
}

struct NoAuto;
impl SecretSource for NoAuto {
    fn auto_secret(&mut self, _: &str, _: &str) -> Result<Secret, String> {
        Err("none".into())
    }
}

#[test]
fn bcrypt_cost_above_the_cap_or_a_broken_hash_is_refused_at_load() {
    for (hash, says) in [
        (
            ALICE_2Y.replacen("$10$", "$15$", 1),
            "bcrypt cost 15 is above 14",
        ),
        (
            ALICE_2Y.replacen("$2y$", "$2x$", 1),
            "not a valid bcrypt hash",
        ),
        (ALICE_2Y[..59].to_owned(), "not a valid bcrypt hash"),
    ] {
        let text = format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n[[socks5]]\nlisten = [\"127.0.0.1:0\"]\n[socks5.users]\nalice = \"{hash}\"\n"
        );
        let err = Config::parse(&text, Origin::Embedded, &mut NoAuto).unwrap_err();
        assert_eq!(err.path, "socks5[0].users.alice.password", "{err}");
        assert!(err.message.contains(says), "{err}");
    }
}
