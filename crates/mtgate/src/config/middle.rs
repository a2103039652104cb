//! Middle-proxy settings: which mode reaches Telegram, the ad tag, and `[telegram.middle]`
//! with the two files Telegram publishes (the proxy secret and `proxy-multi.conf`), read and
//! checked when the configuration is validated (and again on SIGHUP and on a timer).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtgate_proto::mtproto::middle::proxy_config::ProxyConfig;
use mtgate_proto::mtproto::middle::secret::ProxySecret;

use super::raw::RawMiddle;
use super::validate::ConfigError;

/// How a listener reaches Telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TelegramMode {
    /// Straight to the DCs (obfuscated2).
    #[default]
    Direct,
    /// Through Telegram's middle proxies (RPC protocol; carries the ad tag).
    Middle,
}

impl TelegramMode {
    /// Parses `"direct"` or `"middle"`.
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        match text {
            "direct" => Ok(Self::Direct),
            "middle" => Ok(Self::Middle),
            other => Err(ConfigError::new(
                path,
                format!("unknown mode {other:?}: use \"direct\" or \"middle\""),
            )),
        }
    }

    /// The name, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Middle => "middle",
        }
    }
}

/// A 16-byte ad tag (the proxy tag from @MTProxybot).
pub type AdTag = [u8; 16];

/// Parses an ad tag written as 32 hex digits.
pub fn parse_ad_tag(path: &str, text: &str) -> Result<AdTag, ConfigError> {
    let bytes = mtgate_proto::hex::decode(text.trim()).and_then(|b| <AdTag>::try_from(b).ok());
    bytes.ok_or_else(|| {
        ConfigError::new(
            path,
            "an ad tag is 32 hex digits (the proxy tag @MTProxybot gives)",
        )
    })
}

/// `[telegram.middle]`, validated, with both files loaded.
#[derive(Debug, Clone)]
pub struct MiddleConfig {
    /// The proxy secret.
    pub secret: ProxySecret,
    /// Where it was read from.
    pub secret_file: PathBuf,
    /// The middle proxies per DC.
    pub proxies: ProxyConfig,
    /// Where they were read from.
    pub config_file: PathBuf,
    /// Local → public address translations.
    pub nat: Vec<(IpAddr, IpAddr)>,
    /// Serve clients in direct mode while their DC's middle proxies are unreachable.
    pub fallback_to_direct: bool,
    /// Overrides of the per-proxy connection counts.
    pub min_connections: Option<u32>,
    /// See `min_connections`.
    pub max_connections: Option<u32>,
    /// Clients per middle-proxy connection at most.
    pub clients_per_connection: usize,
    /// Bytes queued towards one client at most.
    pub client_queue: usize,
    /// Keepalive interval.
    pub ping_interval: Duration,
    /// How often the files are read again.
    pub refresh_interval: Duration,
}

impl MiddleConfig {
    /// The public address for a local one (identity without a NAT mapping).
    pub fn translate(&self, local: IpAddr) -> IpAddr {
        let local = local.to_canonical();
        self.nat
            .iter()
            .find(|(l, _)| *l == local)
            .map_or(local, |(_, public)| *public)
    }

    /// Connections to keep and to open at most per middle proxy, given the file's values.
    pub fn connections(&self, file_min: u32, file_max: u32) -> (u32, u32) {
        let min = self.min_connections.unwrap_or(file_min);
        let max = self.max_connections.unwrap_or(file_max).max(min);
        (min, max)
    }

    /// Reads the two files again; the rest is kept.
    pub fn reload_files(&self) -> Result<Self, ConfigError> {
        Ok(Self {
            secret: read_secret("telegram.middle.proxy_secret_file", &self.secret_file)?,
            proxies: read_proxies("telegram.middle.proxy_config_file", &self.config_file)?,
            ..self.clone()
        })
    }
}

/// Validates `[telegram.middle]` and reads its files. Relative paths are taken from `base`
/// (the directory of the configuration file).
pub fn middle_config(raw: &RawMiddle, base: Option<&Path>) -> Result<MiddleConfig, ConfigError> {
    let at = "telegram.middle";
    let resolve = |p: &PathBuf| match base {
        Some(base) if p.is_relative() => base.join(p),
        _ => p.clone(),
    };
    let secret_file = raw.proxy_secret_file.as_ref().map(resolve).ok_or_else(|| {
        ConfigError::new(
            format!("{at}.proxy_secret_file"),
            format!("middle mode needs the proxy secret: {FETCH_HINT}"),
        )
    })?;
    let config_file = raw.proxy_config_file.as_ref().map(resolve).ok_or_else(|| {
        ConfigError::new(
            format!("{at}.proxy_config_file"),
            format!("middle mode needs proxy-multi.conf: {FETCH_HINT}"),
        )
    })?;
    let mut nat = Vec::with_capacity(raw.nat_info.len());
    for entry in &raw.nat_info {
        nat.push(parse_nat(&format!("{at}.nat_info"), entry)?);
    }
    if let (Some(min), Some(max)) = (raw.min_connections, raw.max_connections)
        && min > max
    {
        return Err(ConfigError::new(
            format!("{at}.max_connections"),
            "must not be below min_connections",
        ));
    }
    if raw.max_connections == Some(0) || raw.max_connections.is_some_and(|m| m > 1000) {
        return Err(ConfigError::new(
            format!("{at}.max_connections"),
            "must be in 1..=1000",
        ));
    }
    if raw.clients_per_connection == 0 {
        return Err(ConfigError::new(
            format!("{at}.clients_per_connection"),
            "must be at least 1",
        ));
    }
    let client_queue = raw.client_queue.bytes();
    if client_queue < 64 * 1024 {
        return Err(ConfigError::new(
            format!("{at}.client_queue"),
            "must be at least 64KiB (a client packet can be 1 MiB; 4MiB is the default)",
        ));
    }
    for (name, d) in [
        ("ping_interval", raw.ping_interval.0),
        ("refresh_interval", raw.refresh_interval.0),
    ] {
        if d < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{at}.{name}"),
                "must be at least 1s",
            ));
        }
    }
    Ok(MiddleConfig {
        secret: read_secret(&format!("{at}.proxy_secret_file"), &secret_file)?,
        secret_file,
        proxies: read_proxies(&format!("{at}.proxy_config_file"), &config_file)?,
        config_file,
        nat,
        fallback_to_direct: raw.fallback_to_direct,
        min_connections: raw.min_connections,
        max_connections: raw.max_connections,
        clients_per_connection: raw.clients_per_connection,
        client_queue,
        ping_interval: raw.ping_interval.0,
        refresh_interval: raw.refresh_interval.0,
    })
}

/// How to get both files.
pub const FETCH_HINT: &str = "`mtgate telegram-config fetch --dir DIR` downloads proxy-secret and proxy-multi.conf from core.telegram.org";

/// `local:public`, IPv4 (`10.0.0.5:203.0.113.7`) or bracketed IPv6.
fn parse_nat(path: &str, text: &str) -> Result<(IpAddr, IpAddr), ConfigError> {
    let err = || {
        ConfigError::new(
            path,
            format!(
                "{text:?}: write \"<local-ip>:<public-ip>\", e.g. \"10.0.0.5:203.0.113.7\" or \"[fd00::5]:[2001:db8::7]\""
            ),
        )
    };
    let ip = |s: &str| -> Option<IpAddr> {
        s.strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(s)
            .parse()
            .ok()
    };
    let (local, public) = if text.starts_with('[') {
        let end = text.find("]:").ok_or_else(err)?;
        (&text[..=end], &text[end + 2..])
    } else {
        text.split_once(':').ok_or_else(err)?
    };
    let (local, public) = (ip(local).ok_or_else(err)?, ip(public).ok_or_else(err)?);
    if local.is_ipv4() != public.is_ipv4() {
        return Err(ConfigError::new(
            path,
            format!("{text:?}: both addresses must be of one family"),
        ));
    }
    Ok((local, public))
}

fn read_secret(path: &str, file: &Path) -> Result<ProxySecret, ConfigError> {
    let bytes = std::fs::read(file)
        .map_err(|e| ConfigError::new(path, format!("cannot read {}: {e}", file.display())))?;
    ProxySecret::new(bytes).map_err(|e| ConfigError::new(path, format!("{}: {e}", file.display())))
}

fn read_proxies(path: &str, file: &Path) -> Result<ProxyConfig, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new(path, format!("cannot read {}: {e}", file.display())))?;
    ProxyConfig::parse(&text)
        .map_err(|e| ConfigError::new(path, format!("{}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_info_forms() {
        assert_eq!(
            parse_nat("x", "10.0.0.5:203.0.113.7").unwrap(),
            ("10.0.0.5".parse().unwrap(), "203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            parse_nat("x", "[fd00::5]:[2001:db8::7]").unwrap().1,
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        assert!(parse_nat("x", "10.0.0.5").is_err());
        assert!(parse_nat("x", "10.0.0.5:[2001:db8::7]").is_err());
    }

    struct NoAuto;
    impl crate::config::SecretSource for NoAuto {
        fn auto_secret(
            &mut self,
            _: &str,
            _: &str,
        ) -> Result<mtgate_proto::mtproto::secret::Secret, String> {
            Err("no".into())
        }
    }

    const LISTENER: &str = "[[mtproto]]\nlisten = [\"127.0.0.1:0\"]\nmodes = [\"padded\"]\n[mtproto.masking]\nenabled = false\n[mtproto.users]\nalice = \"0123456789abcdef0123456789abcdef\"\n";

    fn parse(text: &str, origin: crate::config::Origin) -> Result<crate::config::Config, String> {
        crate::config::Config::parse(text, origin, &mut NoAuto).map_err(|e| e.to_string())
    }

    #[test]
    fn middle_mode_says_what_is_missing_or_wrong() {
        let embedded = || crate::config::Origin::Embedded;
        let err = parse(
            &format!("[telegram]\nmode = \"middle\"\n{LISTENER}"),
            embedded(),
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "telegram.middle.proxy_secret_file: middle mode needs the proxy secret"
            ),
            "{err}"
        );
        assert!(err.contains("telegram-config fetch"), "{err}");
        let err = parse(
            &format!("[telegram]\nmode = \"relay\"\n{LISTENER}"),
            embedded(),
        )
        .unwrap_err();
        assert!(err.contains("use \"direct\" or \"middle\""), "{err}");
        let err = parse(
            &format!("[telegram]\nad_tag = \"xyz\"\n{LISTENER}"),
            embedded(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("telegram.ad_tag: an ad tag is 32 hex digits"),
            "{err}"
        );
        let http = LISTENER.replace("modes =", "http_transport = true\nmodes =");
        let err = parse(&http, embedded()).unwrap_err();
        assert!(
            err.starts_with(
                "mtproto[0].http_transport: MTProto over HTTP is served through middle proxies only"
            ),
            "{err}"
        );
    }

    #[test]
    fn files_are_read_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("mtgate-middle-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tg")).unwrap();
        std::fs::write(dir.join("tg/proxy-secret"), [7u8; 128]).unwrap();
        std::fs::write(
            dir.join("tg/proxy-multi.conf"),
            "proxy_for 2 10.0.0.1:8888;\n",
        )
        .unwrap();
        let text = format!(
            "[telegram]\nad_tag = \"00112233445566778899aabbccddeeff\"\n[telegram.middle]\nproxy_secret_file = \"tg/proxy-secret\"\nproxy_config_file = \"tg/proxy-multi.conf\"\nnat_info = [\"10.0.0.5:203.0.113.7\"]\n{}",
            LISTENER.replace("[mtproto.masking]", "mode = \"middle\"\n[mtproto.masking]")
        );
        let config = parse(&text, crate::config::Origin::File(dir.join("mtgate.toml"))).unwrap();
        assert_eq!(config.mtproto[0].mode, TelegramMode::Middle);
        assert_eq!(config.telegram.mode, TelegramMode::Direct);
        let middle = config.telegram.middle.unwrap();
        assert_eq!(middle.secret.as_bytes().len(), 128);
        assert_eq!(middle.proxies.clusters[0].dc, 2);
        assert_eq!(
            middle.translate("10.0.0.5".parse().unwrap()),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(middle.connections(4, 8), (4, 8));
        let err = parse(&text, crate::config::Origin::Embedded).unwrap_err();
        assert!(err.contains("cannot read tg/proxy-secret"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ad_tags_are_32_hex_digits() {
        assert_eq!(
            parse_ad_tag("x", "00112233445566778899aabbccddeeff").unwrap()[15],
            0xff
        );
        assert!(parse_ad_tag("x", "0011").is_err());
    }
}
