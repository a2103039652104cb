//! `mtgate telegram-config fetch --dir DIR`: downloads the proxy secret and `proxy-multi.conf`
//! that middle-proxy mode needs from core.telegram.org, checks them, and replaces the files
//! in `DIR` atomically. A download that does not parse leaves the last good file in place.
//!
//! This is the only place mtgate contacts Telegram's web site, and only when asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mtgate_client::DialOptions;
use mtgate_client::http_request;
use mtgate_proto::mtproto::middle::proxy_config::{MAX_FILE_LEN, ProxyConfig};
use mtgate_proto::mtproto::middle::secret::ProxySecret;
use rustls::pki_types::ServerName;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// Where Telegram publishes the files.
pub const HOST: &str = "core.telegram.org";

/// One file to fetch.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    /// Path on [`HOST`].
    pub path: &'static str,
    /// File name in the target directory.
    pub file: &'static str,
    /// What the body must be.
    pub kind: Kind,
}

/// How a download is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A proxy secret.
    Secret,
    /// A `proxy-multi.conf`.
    ProxyConfig,
}

/// The files, IPv4 list first.
pub const DOWNLOADS: [Download; 3] = [
    Download {
        path: "/getProxySecret",
        file: "proxy-secret",
        kind: Kind::Secret,
    },
    Download {
        path: "/getProxyConfig",
        file: "proxy-multi.conf",
        kind: Kind::ProxyConfig,
    },
    Download {
        path: "/getProxyConfigV6",
        file: "proxy-multi-v6.conf",
        kind: Kind::ProxyConfig,
    },
];

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the command: fetches every file (the IPv6 list only with `ipv6`).
pub fn fetch(dir: PathBuf, ipv6: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for download in DOWNLOADS
        .iter()
        .filter(|d| ipv6 || d.file != "proxy-multi-v6.conf")
    {
        let target = dir.join(download.file);
        let result = runtime
            .block_on(get(download.path))
            .and_then(|body| store(&target, &body, download.kind));
        match result {
            Ok(summary) => println!("{}: {summary}", target.display()),
            Err(e) => {
                eprintln!(
                    "{}: {e} (the previous file, if any, is kept)",
                    target.display()
                );
                ok = false;
            }
        }
    }
    if ok {
        println!(
            "Reload a running mtgate with SIGHUP to use them now (it also re-reads them daily)."
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn get(path: &str) -> Result<Vec<u8>, String> {
    let options = DialOptions {
        timeout: TIMEOUT,
        ..DialOptions::default()
    };
    let tcp = mtgate_client::connect(HOST, 443, &options)
        .await
        .map_err(|e| format!("cannot reach {HOST}: {e}"))?;
    let name = ServerName::try_from(HOST).map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(mtgate_client::default_tls_config());
    let tls = timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS: {e}"))?;
    let response = timeout(TIMEOUT, http_request::get(tls, HOST, path, MAX_FILE_LEN))
        .await
        .map_err(|_| "the download timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("https://{HOST}{path} answered {}", response.status));
    }
    Ok(response.body.to_vec())
}

/// Checks `body` and, if it is good, replaces `target` with it (write, sync, rename).
pub fn store(target: &Path, body: &[u8], kind: Kind) -> Result<String, String> {
    let summary = match kind {
        Kind::Secret => {
            let secret = ProxySecret::new(body.to_vec()).map_err(|e| e.to_string())?;
            format!("{secret:?}")
        }
        Kind::ProxyConfig => {
            let text = std::str::from_utf8(body).map_err(|_| "not text".to_owned())?;
            let config = ProxyConfig::parse(text).map_err(|e| e.to_string())?;
            format!(
                "{} clusters, default DC {}",
                config.clusters.len(),
                config.default_dc
            )
        }
    };
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write: {e}")
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_downloads_keep_the_last_good_file() {
        let dir = std::env::temp_dir().join(format!("mtgate-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("proxy-multi.conf");
        let good = b"default 2;\nproxy_for 2 149.154.161.144:8888;\n";
        assert!(
            store(&conf, good, Kind::ProxyConfig)
                .unwrap()
                .contains("1 clusters")
        );
        assert!(store(&conf, b"<html>blocked</html>", Kind::ProxyConfig).is_err());
        assert_eq!(std::fs::read(&conf).unwrap(), good);
        let secret = dir.join("proxy-secret");
        assert!(store(&secret, &[1; 8], Kind::Secret).is_err());
        assert!(!secret.exists());
        store(&secret, &[1; 128], Kind::Secret).unwrap();
        assert_eq!(std::fs::read(&secret).unwrap().len(), 128);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
