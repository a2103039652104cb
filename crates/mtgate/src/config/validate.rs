//! Turns a [`RawConfig`] into a [`Config`], or says precisely what is wrong and where.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtgate_proto::mtproto::dc::DcId;
use mtgate_proto::mtproto::faketls::client_hello::SkewPolicy;
use mtgate_proto::mtproto::secret::{self, Secret};

use super::middle::{self, TelegramMode};
use super::proxy::ProxyKind;
use super::raw::{RawConfig, RawMtproto, RawSkew, RawUser};
use super::{
    Config, FakeTls, Limits, Masking, Modes, MtprotoListener, Origin, Replay, ServerConfig,
    TelegramConfig, UnknownSni, User,
};

/// A configuration mistake: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if .path.is_empty() { String::new() } else { format!("{}: ", .path) })]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `mtproto[0].users.alice`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Adds the line and column of a TOML syntax or type error.
    pub(crate) fn at_toml(mut self, err: &toml::de::Error, text: &str) -> Self {
        if let Some(span) = err.span() {
            let line = text[..span.start].matches('\n').count() + 1;
            self.path = format!("line {line}");
        }
        self
    }
}

/// Supplies secrets written as "auto": generated once, then kept.
pub trait SecretSource {
    /// The secret of `user` on `listener`, creating it if needed.
    fn auto_secret(&mut self, listener: &str, user: &str) -> Result<Secret, String>;
}

/// Checks every field and builds the validated configuration.
pub fn validate(
    raw: RawConfig,
    origin: Origin,
    secrets: &mut dyn SecretSource,
) -> Result<Config, ConfigError> {
    let server = ServerConfig {
        user: raw.server.user,
        group: raw.server.group,
        state_dir: raw
            .server
            .state_dir
            .unwrap_or_else(crate::state::default_dir),
        log_file: raw.server.log_file,
        log_level: raw.server.log_level,
        shutdown_grace: raw.server.shutdown_grace.0,
        workers: raw.server.workers,
    };
    if server.workers == Some(0) {
        return Err(ConfigError::new("server.workers", "must be at least 1"));
    }
    let metrics = match raw.metrics.enabled {
        false => None,
        true => Some(parse_addr("metrics.listen", &raw.metrics.listen)?),
    };
    let limits = Limits {
        max_connections: raw.limits.max_connections,
        buffer_size: raw.limits.buffer_size.bytes(),
        buffered_bytes: raw.limits.buffered_bytes.bytes(),
    };
    if limits.max_connections == 0 {
        return Err(ConfigError::new(
            "limits.max_connections",
            "must be at least 1",
        ));
    }
    if !(MIN_BUFFER..=MAX_BUFFER).contains(&limits.buffer_size) {
        return Err(ConfigError::new(
            "limits.buffer_size",
            format!("must be between {MIN_BUFFER} and {MAX_BUFFER} bytes"),
        ));
    }
    if limits.buffered_bytes < limits.buffer_size * 4 {
        return Err(ConfigError::new(
            "limits.buffered_bytes",
            "must hold at least four relay buffers",
        ));
    }

    let mode = match &raw.telegram.mode {
        Some(text) => TelegramMode::parse("telegram.mode", text)?,
        None => TelegramMode::Direct,
    };
    let mut telegram = TelegramConfig {
        prefer_ipv6: raw.telegram.prefer_ipv6,
        connect_timeout: positive("telegram.connect_timeout", raw.telegram.connect_timeout.0)?,
        default_dc: DcId(raw.telegram.default_dc),
        dc_overrides: dc_overrides(&raw.telegram.dc_overrides)?,
        mode,
        ad_tag: raw
            .telegram
            .ad_tag
            .as_deref()
            .map(|t| middle::parse_ad_tag("telegram.ad_tag", t))
            .transpose()?,
        middle: None,
        upstream_pool: raw.telegram.upstream_pool.clone(),
    };
    if telegram.default_dc.0 <= 0 {
        return Err(ConfigError::new(
            "telegram.default_dc",
            "must be a positive DC number",
        ));
    }

    let proxy_count = raw.socks5.len() + raw.http.len() + raw.mixed.len();
    if raw.mtproto.is_empty()
        && raw.tcp.is_empty()
        && raw.websocket.is_empty()
        && raw.gateway.is_empty()
        && proxy_count == 0
    {
        return Err(ConfigError::new(
            "",
            "no listener is configured: add an [[mtproto]], [[socks5]], [[http]], [[mixed]], [[tcp]], [[websocket]] or [[gateway]] section",
        ));
    }
    let pools = super::pool::pools(raw.pool)?;
    let tcp = super::pool::tcp_listeners(raw.tcp, &pools)?;
    let admin = super::pool::admin(raw.admin)?;
    let websocket = super::websocket::websocket_listeners(raw.websocket, &pools)?;
    let gateway = super::gateway::gateway_listeners(raw.gateway)?;
    let mut names = HashSet::new();
    let mut bound = HashSet::new();
    let mut mtproto = Vec::with_capacity(raw.mtproto.len());
    for (i, listener) in raw.mtproto.into_iter().enumerate() {
        let default_name = if i == 0 {
            "mtproto".to_owned()
        } else {
            format!("mtproto-{}", i + 1)
        };
        let name = listener.name.clone().unwrap_or(default_name);
        let at = format!("mtproto[{i}]");
        check_name(&format!("{at}.name"), &name)?;
        if !names.insert(name.clone()) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{name:?} is used twice"),
            ));
        }
        let l = mtproto_listener(&at, name, listener, telegram.mode, secrets)?;
        for addr in &l.listen {
            if !bound.insert(*addr) {
                return Err(ConfigError::new(
                    format!("{at}.listen"),
                    format!("{addr} is used twice"),
                ));
            }
        }
        mtproto.push(l);
    }
    let others = tcp.iter().map(|l| ("tcp", &l.name, &l.listen));
    let others = others.chain(websocket.iter().map(|l| ("websocket", &l.name, &l.listen)));
    let others = others.chain(gateway.iter().map(|l| ("gateway", &l.name, &l.listen)));
    for (i, (kind, name, listen)) in others.enumerate() {
        let i = match kind {
            "tcp" => i,
            "websocket" => i - tcp.len(),
            _ => i - tcp.len() - websocket.len(),
        };
        if !names.insert(name.clone()) {
            return Err(ConfigError::new(
                format!("{kind}[{i}].name"),
                format!("{name:?} is used twice"),
            ));
        }
        for addr in listen {
            if !bound.insert(*addr) {
                return Err(ConfigError::new(
                    format!("{kind}[{i}].listen"),
                    format!("{addr} is used twice"),
                ));
            }
        }
    }
    let mut proxies = Vec::with_capacity(proxy_count);
    for (kind, list) in [
        (ProxyKind::Socks5, raw.socks5),
        (ProxyKind::Http, raw.http),
        (ProxyKind::Mixed, raw.mixed),
    ] {
        proxies.extend(super::validate_proxy::listeners(
            kind, list, &mut names, &mut bound,
        )?);
    }
    for listener in &proxies {
        let named = std::iter::once(&listener.upstream)
            .chain(listener.users.iter().map(|u| &u.upstream))
            .filter_map(|u| match u {
                Some(super::proxy::UpstreamConfig::Pool(name)) => Some(name),
                _ => None,
            });
        for name in named {
            super::pool::find_pool(&format!("{}.upstream_pool", listener.name), name, &pools)?;
        }
    }
    super::gateway::check_proxy_routes(&proxies, &gateway)?;
    if let Some(name) = &telegram.upstream_pool {
        super::pool::check_telegram_pool(name, &pools)?;
        if let Some(l) = mtproto.iter().find(|l| l.mode == TelegramMode::Middle) {
            return Err(ConfigError::new(
                "telegram.upstream_pool",
                format!(
                    "listener {:?} runs in middle mode, and middle-proxy connections cannot go through upstream proxies: their keys are derived from the address the middle proxy sees, which only a direct connection knows",
                    l.name
                ),
            ));
        }
    }
    if mtproto.iter().any(|l| l.mode == TelegramMode::Middle) {
        let base = match &origin {
            Origin::File(path) => path.parent(),
            _ => None,
        };
        telegram.middle = Some(Arc::new(middle::middle_config(&raw.telegram.middle, base)?));
    } else if telegram.ad_tag.is_some() {
        tracing::warn!(
            "telegram.ad_tag is set but no listener runs in middle mode: the ad tag needs mode = \"middle\""
        );
    }
    Ok(Config {
        origin,
        server,
        metrics,
        limits,
        telegram,
        mtproto,
        pools,
        tcp,
        admin,
        proxies,
        websocket,
        gateway,
    })
}

const MIN_BUFFER: usize = 16 * 1024 + 64;
const MAX_BUFFER: usize = 1 << 20;
const MIN_FRAME: usize = 1024;

fn mtproto_listener(
    at: &str,
    name: String,
    raw: RawMtproto,
    default_mode: TelegramMode,
    secrets: &mut dyn SecretSource,
) -> Result<MtprotoListener, ConfigError> {
    let mode = match &raw.mode {
        Some(text) => TelegramMode::parse(&format!("{at}.mode"), text)?,
        None => default_mode,
    };
    let listen = listen_addrs(at, &raw.listen)?;
    if raw.http_transport && mode != TelegramMode::Middle {
        return Err(ConfigError::new(
            format!("{at}.http_transport"),
            "MTProto over HTTP is served through middle proxies only: set mode = \"middle\"",
        ));
    }

    let mut modes = Modes::default();
    for mode in &raw.modes {
        match mode.as_str() {
            "classic" => modes.classic = true,
            "padded" => modes.padded = true,
            "fake-tls" => modes.fake_tls = true,
            other => {
                return Err(ConfigError::new(
                    format!("{at}.modes"),
                    format!("unknown mode {other:?}; use \"classic\", \"padded\" or \"fake-tls\""),
                ));
            }
        }
    }
    if modes == Modes::default() {
        return Err(ConfigError::new(
            format!("{at}.modes"),
            "enable at least one mode",
        ));
    }

    let fake_tls = fake_tls(at, &raw, modes)?;
    let masking = masking(at, &raw, &fake_tls)?;
    let replay = Replay {
        capacity: raw.replay.capacity,
        tls_window: match (raw.replay.window, fake_tls.skew) {
            (Some(w), _) => w.0.as_secs(),
            (None, SkewPolicy::Window { ahead, behind }) => u64::from(ahead) + u64::from(behind),
            // Without a clock check, remember fingerprints as long as the official proxy does.
            (None, SkewPolicy::Ignore) => 2 * 24 * 3600,
        },
    };

    if raw.users.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.users"),
            "add at least one user",
        ));
    }
    let mut users = Vec::with_capacity(raw.users.len());
    for (user_name, entry) in raw.users {
        let path = format!("{at}.users.{user_name}");
        check_name(&path, &user_name)?;
        let (text, max_connections, ad_tag) = match entry {
            RawUser::Secret(text) => (text, None, None),
            RawUser::Table(t) => (t.secret, t.max_connections, t.ad_tag),
        };
        let ad_tag = ad_tag
            .map(|t| middle::parse_ad_tag(&format!("{path}.ad_tag"), &t))
            .transpose()?;
        let secret = if text == "auto" {
            secrets
                .auto_secret(&name, &user_name)
                .map_err(|e| ConfigError::new(&path, e))?
        } else {
            Secret::from_hex(&text).map_err(|e| {
                ConfigError::new(
                    &path,
                    format!("{e}: write 32 hex digits (generate with `mtgate secret`) or \"auto\""),
                )
            })?
        };
        if users.iter().any(|u: &User| u.secret == secret) {
            return Err(ConfigError::new(&path, "two users have the same secret"));
        }
        if max_connections == Some(0) {
            return Err(ConfigError::new(
                format!("{path}.max_connections"),
                "must be at least 1",
            ));
        }
        users.push(User {
            name: user_name,
            secret,
            max_connections,
            ad_tag,
        });
    }

    let max_frame = raw.max_frame.bytes();
    if max_frame < MIN_FRAME {
        return Err(ConfigError::new(
            format!("{at}.max_frame"),
            format!("must be at least {MIN_FRAME}"),
        ));
    }
    Ok(MtprotoListener {
        name,
        listen,
        modes,
        mode,
        public_host: raw.public_host,
        public_port: raw.public_port,
        fast_mode: raw.fast_mode,
        http_transport: raw.http_transport,
        max_connections: raw.max_connections,
        handshake_timeout: positive(&format!("{at}.handshake_timeout"), raw.handshake_timeout.0)?,
        idle_timeout: positive(&format!("{at}.idle_timeout"), raw.idle_timeout.0)?,
        max_frame,
        fake_tls,
        masking,
        replay,
        users,
    })
}

fn fake_tls(at: &str, raw: &RawMtproto, modes: Modes) -> Result<FakeTls, ConfigError> {
    let path = format!("{at}.fake_tls");
    for domain in &raw.fake_tls.domains {
        secret::validate_domain(domain.as_bytes())
            .map_err(|e| ConfigError::new(format!("{path}.domains"), format!("{domain:?}: {e}")))?;
    }
    if modes.fake_tls && raw.fake_tls.domains.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.domains"),
            "the fake-tls mode needs a cover domain, e.g. domains = [\"www.example.com\"]",
        ));
    }
    let skew = match &raw.fake_tls.clock_skew {
        None => SkewPolicy::OFFICIAL,
        Some(RawSkew::Keyword(k)) if k == "ignore" => SkewPolicy::Ignore,
        Some(RawSkew::Keyword(k)) => {
            return Err(ConfigError::new(
                format!("{path}.clock_skew"),
                format!("{k:?}: write \"ignore\" or {{ ahead = \"3s\", behind = \"10m\" }}"),
            ));
        }
        Some(RawSkew::Window { ahead, behind }) => SkewPolicy::Window {
            ahead: u32::try_from(ahead.0.as_secs()).unwrap_or(u32::MAX),
            behind: u32::try_from(behind.0.as_secs()).unwrap_or(u32::MAX),
        },
    };
    let unknown_sni = match raw.fake_tls.unknown_sni.as_deref() {
        None | Some("mask") => UnknownSni::Mask,
        Some("accept") => UnknownSni::Accept,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{path}.unknown_sni"),
                format!("{other:?}: use \"mask\" or \"accept\""),
            ));
        }
    };
    let [min, max] = raw.fake_tls.answer_size.unwrap_or([2500, 3620]);
    if min == 0 || min > max || max > 16_384 {
        return Err(ConfigError::new(
            format!("{path}.answer_size"),
            "write [min, max] with 0 < min <= max <= 16384",
        ));
    }
    Ok(FakeTls {
        domains: raw.fake_tls.domains.clone(),
        skew,
        unknown_sni,
        answer_size: min..=max,
    })
}

fn masking(at: &str, raw: &RawMtproto, fake_tls: &FakeTls) -> Result<Option<Masking>, ConfigError> {
    let m = &raw.masking;
    if !m.enabled {
        return Ok(None);
    }
    let Some(host) = m.host.clone().or_else(|| fake_tls.domains.first().cloned()) else {
        return Err(ConfigError::new(
            format!("{at}.masking"),
            "masking needs a host: set masking.host, add a fake_tls domain, or set enabled = false",
        ));
    };
    if host.is_empty() || m.port == 0 {
        return Err(ConfigError::new(
            format!("{at}.masking"),
            "host and port must not be empty",
        ));
    }
    Ok(Some(Masking {
        host,
        port: m.port,
        connect_timeout: positive(
            &format!("{at}.masking.connect_timeout"),
            m.connect_timeout.0,
        )?,
        max_duration: positive(&format!("{at}.masking.max_duration"), m.max_duration.0)?,
        max_bytes: m.max_bytes.0,
    }))
}

fn dc_overrides(
    raw: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<HashMap<i16, Vec<SocketAddr>>, ConfigError> {
    let mut out = HashMap::new();
    for (key, addrs) in raw {
        let path = format!("telegram.dc_overrides.{key}");
        let dc: i16 = key.parse().ok().filter(|d| *d != 0).ok_or_else(|| {
            ConfigError::new(
                &path,
                "the key must be a DC index such as \"2\", \"-2\" or \"10002\"",
            )
        })?;
        if addrs.is_empty() {
            return Err(ConfigError::new(&path, "list at least one address"));
        }
        let parsed = addrs
            .iter()
            .map(|a| parse_addr(&path, a))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(dc, parsed);
    }
    Ok(out)
}

/// A listener's `listen` list: at least one address, each valid.
pub(crate) fn listen_addrs(at: &str, raw: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.listen"),
            "needs at least one address",
        ));
    }
    raw.iter()
        .map(|a| parse_addr(&format!("{at}.listen"), a))
        .collect()
}

pub(crate) fn parse_addr(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::new(
            path,
            format!("{text:?} is not an address; write e.g. \"0.0.0.0:443\" or \"[::]:443\""),
        )
    })
}

pub(crate) fn positive(path: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::new(path, "must be longer than zero"))
    } else {
        Ok(d)
    }
}

pub(crate) fn check_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            path,
            format!("{name:?}: names use 1..=64 of A-Z a-z 0-9 - _ ."),
        ))
    }
}
