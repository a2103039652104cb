//! The official `mtproto-proxy` command line, mapped onto an mtgate configuration.
//!
//! ```text
//! mtproto-proxy -u nobody -p 8888 -H 443 -S <secret> -P <tag> --aes-pwd proxy-secret proxy-multi.conf -M 1
//! ```
//!
//! | official | mtgate |
//! |---|---|
//! | `-u USER` | `server.user` |
//! | `-p PORT`, `--http-stats` | `/stats` and `/metrics` on `127.0.0.1:PORT` |
//! | `-H PORT[,PORT…]` | one listener on `[::]:PORT` (IPv4 and IPv6) per port; `--address` picks the address |
//! | `-S SECRET` (repeatable) | users `secret1`, `secret2`, … |
//! | `-P TAG` | `telegram.ad_tag` |
//! | `--aes-pwd FILE` and the positional `proxy-multi.conf` | `telegram.middle.*_file`, `telegram.mode = "middle"` |
//! | `-M N` | `server.workers` (runtime threads, not processes: statistics and replay protection stay shared) |
//! | `-C N` | `limits.max_connections` (per worker, as the official counts) |
//! | `--nat-info L:G` (repeatable) | `telegram.middle.nat_info` |
//! | `-D DOMAIN` (repeatable) | fake TLS only, with those cover domains, masking to `DOMAIN:443` |
//! | `-R` | only padded (`dd`) and fake-TLS clients |
//! | `-W N`, `-T N`, `-b N`, `-6`, `-v` | accepted; no effect (see [`IGNORED`]) |
//! | `-l FILE` | `server.log_file` |
//!
//! The result is TOML text, validated like any configuration file; `--print-config` shows
//! it, a starting point for moving to a file.

use std::fmt::Write;

/// Options accepted for compatibility that change nothing, with the reason.
pub const IGNORED: &[(&str, &str)] = &[
    ("-W", "window clamp: the kernel's TCP autotuning is used"),
    (
        "--window-clamp",
        "window clamp: the kernel's TCP autotuning is used",
    ),
    (
        "-T",
        "ping interval: set telegram.middle.ping_interval in a file",
    ),
    (
        "--ping-interval",
        "ping interval: set telegram.middle.ping_interval in a file",
    ),
    ("-b", "backlog: mtgate always uses 4096"),
    ("--backlog", "backlog: mtgate always uses 4096"),
    ("-6", "IPv6: listeners always serve IPv6 and IPv4"),
    ("-v", "verbosity: set RUST_LOG, e.g. RUST_LOG=debug"),
    (
        "--verbosity",
        "verbosity: set RUST_LOG, e.g. RUST_LOG=debug",
    ),
    (
        "--http-stats",
        "statistics are always served on the -p port",
    ),
];

/// Options of the official proxy mtgate refuses, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "-d",
        "mtgate does not daemonize: run it under systemd (see docs) or another supervisor",
    ),
    (
        "--daemonize",
        "mtgate does not daemonize: run it under systemd (see docs) or another supervisor",
    ),
    (
        "--allow-skip-dh",
        "not supported: clients always run the full key exchange through mtgate",
    ),
    (
        "-r",
        "the `-r` replication options of the official engine are not supported",
    ),
    (
        "--msg-buffers-size",
        "buffer sizes: set limits.buffered_bytes in a configuration file",
    ),
];

/// A mistake on the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Official {
    /// `-u`.
    pub user: Option<String>,
    /// `-p`.
    pub stats_port: Option<u16>,
    /// `-H`.
    pub ports: Vec<u16>,
    /// `--address`.
    pub address: Option<String>,
    /// `-S`, 32 hex digits each.
    pub secrets: Vec<String>,
    /// `-P`.
    pub ad_tag: Option<String>,
    /// `--aes-pwd`.
    pub aes_pwd: Option<String>,
    /// The positional `proxy-multi.conf`.
    pub proxy_config: Option<String>,
    /// `-M`.
    pub workers: Option<usize>,
    /// `-C`.
    pub max_connections: Option<usize>,
    /// `--nat-info`.
    pub nat_info: Vec<String>,
    /// `-D`.
    pub domains: Vec<String>,
    /// `-R`.
    pub padded_only: bool,
    /// `-l`.
    pub log_file: Option<String>,
    /// `--print-config` (mtgate's own): print the TOML and exit.
    pub print_config: bool,
    /// Ignored options met, for a warning each.
    pub ignored: Vec<&'static str>,
}

/// The usage text.
pub const USAGE: &str = "\
usage: mtproto-proxy [-u USER] [-p STATS_PORT] -H PORT[,PORT...] -S SECRET [-S SECRET...]
                     [-P AD_TAG] [-M WORKERS] [-C MAX_CONNECTIONS] [--nat-info LOCAL:PUBLIC]
                     [-D DOMAIN] [-R] [-l LOG_FILE] [--address ADDR] [--print-config]
                     --aes-pwd proxy-secret proxy-multi.conf
The official MTProxy command line, run by mtgate in middle-proxy mode.";

impl Official {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, UsageError> {
        let mut o = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // `--opt=value` and `--opt value` are both accepted.
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, UsageError> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| UsageError(format!("{name} needs {what}")))
            };
            match name.as_str() {
                "-u" | "--user" => o.user = Some(value("a user name")?),
                "-p" | "--port" => o.stats_port = Some(number(&name, &value("a port")?)?),
                "-H" | "--http-ports" => {
                    for port in value("a port list")?.split(',') {
                        o.ports.push(number(&name, port)?);
                    }
                }
                "--address" => o.address = Some(value("an address")?),
                "-S" | "--mtproto-secret" => {
                    let secret = value("a secret")?;
                    if secret.len() != 32 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(UsageError(format!(
                            "{name}: a secret is 32 hex digits (`mtgate secret` makes one), without a dd or ee prefix"
                        )));
                    }
                    o.secrets.push(secret);
                }
                "-P" | "--proxy-tag" => o.ad_tag = Some(value("the proxy tag")?),
                "--aes-pwd" => o.aes_pwd = Some(value("the proxy-secret file")?),
                "-M" | "--slaves" => {
                    let n: usize = number(&name, &value("a count")?)?;
                    o.workers = (n > 0).then_some(n);
                }
                "-C" | "--max-special-connections" => {
                    o.max_connections = Some(number(&name, &value("a count")?)?);
                }
                "--nat-info" => o.nat_info.push(value("LOCAL:PUBLIC")?),
                "-D" | "--domain" => o.domains.push(value("a domain")?),
                "-R" | "--random-padding-only" => o.padded_only = true,
                "-l" | "--log" => o.log_file = Some(value("a file")?),
                "--print-config" => o.print_config = true,
                "-h" | "--help" => return Err(UsageError(USAGE.into())),
                other => {
                    if let Some((flag, _)) = IGNORED.iter().find(|(f, _)| *f == other) {
                        // Flags that take a value swallow it.
                        if !matches!(*flag, "-6" | "-v" | "--verbosity" | "--http-stats")
                            && inline.is_none()
                        {
                            args.next();
                        }
                        o.ignored.push(flag);
                    } else if let Some((_, why)) = UNSUPPORTED.iter().find(|(f, _)| *f == other) {
                        return Err(UsageError(format!("{other}: {why}")));
                    } else if other.starts_with('-') {
                        return Err(UsageError(format!("unknown option {other}\n{USAGE}")));
                    } else if o.proxy_config.is_none() {
                        o.proxy_config = Some(other.to_owned());
                    } else {
                        return Err(UsageError(format!(
                            "unexpected argument {other:?}: only one proxy-multi.conf"
                        )));
                    }
                }
            }
        }
        if o.ports.is_empty() {
            return Err(UsageError(format!(
                "-H PORT is required (the port clients connect to)\n{USAGE}"
            )));
        }
        if o.secrets.is_empty() {
            return Err(UsageError(format!(
                "-S SECRET is required (32 hex digits; `mtgate secret` makes one)\n{USAGE}"
            )));
        }
        if o.aes_pwd.is_none() || o.proxy_config.is_none() {
            return Err(UsageError(format!(
                "--aes-pwd proxy-secret and proxy-multi.conf are required (from https://core.telegram.org/getProxySecret and /getProxyConfig, or `mtgate telegram-config fetch`)\n{USAGE}"
            )));
        }
        Ok(o)
    }

    /// The equivalent mtgate configuration.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let q = |s: &str| toml_string(s);
        t.push_str("# Generated from the official mtproto-proxy command line.\n[server]\n");
        if let Some(user) = &self.user {
            let _ = writeln!(t, "user = {}", q(user));
        }
        if let Some(workers) = self.workers {
            let _ = writeln!(t, "workers = {workers}");
        }
        if let Some(log) = &self.log_file {
            let _ = writeln!(t, "log_file = {}", q(log));
        }
        t.push_str("\n[metrics]\n");
        match self.stats_port {
            Some(port) => {
                let _ = writeln!(t, "listen = \"127.0.0.1:{port}\"");
            }
            None => t.push_str("enabled = false\n"),
        }
        if let Some(max) = self.max_connections {
            let total = max.saturating_mul(self.workers.unwrap_or(1)).max(1);
            let _ = writeln!(t, "\n[limits]\nmax_connections = {total}");
        }
        t.push_str("\n[telegram]\nmode = \"middle\"\n");
        if let Some(tag) = &self.ad_tag {
            let _ = writeln!(t, "ad_tag = {}", q(tag));
        }
        t.push_str("\n[telegram.middle]\n");
        let _ = writeln!(
            t,
            "proxy_secret_file = {}",
            q(self.aes_pwd.as_deref().unwrap_or(""))
        );
        let _ = writeln!(
            t,
            "proxy_config_file = {}",
            q(self.proxy_config.as_deref().unwrap_or(""))
        );
        if !self.nat_info.is_empty() {
            let list: Vec<_> = self.nat_info.iter().map(|n| q(n)).collect();
            let _ = writeln!(t, "nat_info = [{}]", list.join(", "));
        }
        let modes = if !self.domains.is_empty() {
            // As the official proxy: with a domain, only fake-TLS clients are served.
            "[\"fake-tls\"]"
        } else if self.padded_only {
            "[\"padded\"]"
        } else {
            "[\"classic\", \"padded\"]"
        };
        for port in &self.ports {
            let host = match &self.address {
                Some(a) if a.contains(':') && !a.starts_with('[') => format!("[{a}]"),
                Some(a) => a.clone(),
                None => "[::]".into(),
            };
            let _ = writeln!(
                t,
                "\n[[mtproto]]\nname = \"port-{port}\"\nlisten = [\"{host}:{port}\"]\nmodes = {modes}"
            );
            if self.domains.is_empty() {
                t.push_str("[mtproto.masking]\nenabled = false\n");
            } else {
                let list: Vec<_> = self.domains.iter().map(|d| q(d)).collect();
                let _ = writeln!(t, "[mtproto.fake_tls]\ndomains = [{}]", list.join(", "));
            }
            t.push_str("[mtproto.users]\n");
            for (n, secret) in self.secrets.iter().enumerate() {
                let _ = writeln!(t, "secret{} = \"{secret}\"", n + 1);
            }
        }
        t
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, UsageError> {
    text.trim()
        .parse()
        .map_err(|_| UsageError(format!("{flag} {text:?}: a number expected")))
}

fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Official, UsageError> {
        Official::parse(line.split_whitespace().map(String::from))
    }

    const S1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_readme_command_line() {
        let o = parse(&format!(
            "-u nobody -p 8888 -H 443,8443 -S {S1} -P 00112233445566778899aabbccddeeff --aes-pwd proxy-secret proxy-multi.conf -M 2 -C 1000 --nat-info 10.0.0.5:203.0.113.7 --http-stats -W 65536 -6"
        ))
        .unwrap();
        assert_eq!(o.user.as_deref(), Some("nobody"));
        assert_eq!(o.stats_port, Some(8888));
        assert_eq!(o.ports, [443, 8443]);
        assert_eq!(o.workers, Some(2));
        assert_eq!(o.proxy_config.as_deref(), Some("proxy-multi.conf"));
        assert_eq!(o.ignored, ["--http-stats", "-W", "-6"]);
        let toml = o.to_toml();
        assert!(toml.contains("max_connections = 2000"), "{toml}");
        assert!(toml.contains("listen = \"127.0.0.1:8888\""));
        assert!(toml.contains("listen = [\"[::]:8443\"]"));
        assert!(toml.contains(&format!("secret1 = \"{S1}\"")));
        let raw = crate::config::parse_raw(&toml).unwrap();
        assert_eq!(raw.mtproto.len(), 2);
    }

    #[test]
    fn domains_mean_fake_tls_only() {
        let o = parse(&format!(
            "-H 443 -S {S1} -D www.example.com --aes-pwd s c --address 127.0.0.1 --print-config"
        ))
        .unwrap();
        assert!(o.print_config);
        let toml = o.to_toml();
        assert!(toml.contains("modes = [\"fake-tls\"]"));
        assert!(toml.contains("domains = [\"www.example.com\"]"));
        assert!(toml.contains("listen = [\"127.0.0.1:443\"]"));
    }

    #[test]
    fn clear_messages_for_mistakes_and_legacy_flags() {
        let err = |line: &str| parse(line).unwrap_err().0;
        assert!(err(&format!("-H 443 -S {S1} --aes-pwd s c -d")).contains("does not daemonize"));
        assert!(
            err(&format!("-H 443 -S {S1} --aes-pwd s c --frobnicate"))
                .contains("unknown option --frobnicate")
        );
        assert!(err(&format!("-S {S1} --aes-pwd s c")).contains("-H PORT is required"));
        assert!(err("-H 443 --aes-pwd s c").contains("-S SECRET is required"));
        assert!(err(&format!("-H 443 -S {S1}")).contains("--aes-pwd"));
        assert!(err("-H 443 -S dd0123 --aes-pwd s c").contains("32 hex digits"));
        assert!(
            !err("-H 443 -S dd0123 --aes-pwd s c").contains("dd0123"),
            "secrets are not echoed"
        );
        assert!(
            err(&format!("-H 443 -S {S1} --aes-pwd s c d")).contains("only one proxy-multi.conf")
        );
        assert!(err("-H x").contains("a number expected"));
    }
}
