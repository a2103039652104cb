//! Proxy URLs: `scheme://[user[:password]@]host[:port][/]`.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::{Credentials, Kind, Proxy};

/// Why a proxy URL was refused. Messages never include the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    /// No `scheme://`.
    #[error("missing scheme (expected e.g. socks5h://host:port)")]
    MissingScheme,
    /// A scheme other than socks4, socks4a, socks5, socks5h, http, https.
    #[error("unsupported proxy scheme {0:?}")]
    UnsupportedScheme(String),
    /// No host.
    #[error("missing host")]
    MissingHost,
    /// A host that is not a name or an IP literal.
    #[error("invalid host")]
    InvalidHost,
    /// A port that is not a number in 1..=65535.
    #[error("invalid port")]
    InvalidPort,
    /// A path, query or fragment; proxies have none.
    #[error("unexpected path, query or fragment")]
    UnexpectedPath,
    /// User-info that is not valid percent-encoded UTF-8.
    #[error("invalid percent-encoding in credentials")]
    BadCredentials,
}

/// Characters escaped in user-info when printing a URL.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn decode(part: &str) -> Result<String, ProxyUrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ProxyUrlError::BadCredentials)
}

pub(super) fn parse(input: &str) -> Result<Proxy, ProxyUrlError> {
    let input = input.trim();
    let (scheme, rest) = input
        .split_once("://")
        .ok_or(ProxyUrlError::MissingScheme)?;
    let kind = Kind::from_scheme(scheme)
        .ok_or_else(|| ProxyUrlError::UnsupportedScheme(scheme.to_owned()))?;
    // The authority ends at the first '/', '?' or '#'; only a lone trailing '/' may follow.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !(tail.is_empty() || tail == "/") {
        return Err(ProxyUrlError::UnexpectedPath);
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let credentials = userinfo
        .map(|info| {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            Ok::<_, ProxyUrlError>(Credentials {
                username: decode(user)?,
                password: decode(pass)?,
            })
        })
        .transpose()?;
    let (host, port) = split_host_port(hostport)?;
    let port = match port {
        None => kind.default_port(),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>()
        {
            Ok(p) if p != 0 => p,
            _ => return Err(ProxyUrlError::InvalidPort),
        },
        Some(_) => return Err(ProxyUrlError::InvalidPort),
    };
    let mut proxy = Proxy::new(kind, host, port);
    proxy.credentials = credentials;
    Ok(proxy)
}

fn split_host_port(hostport: &str) -> Result<(String, Option<&str>), ProxyUrlError> {
    if hostport.is_empty() {
        return Err(ProxyUrlError::MissingHost);
    }
    if let Some(rest) = hostport.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(ProxyUrlError::InvalidHost)?;
        let ip: std::net::Ipv6Addr = literal.parse().map_err(|_| ProxyUrlError::InvalidHost)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(ProxyUrlError::InvalidHost)?),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err(ProxyUrlError::MissingHost);
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.len() > 255 || !host.chars().all(valid) {
        return Err(ProxyUrlError::InvalidHost);
    }
    Ok((host.to_ascii_lowercase(), port))
}

pub(super) fn format(proxy: &Proxy, with_password: bool) -> String {
    let mut out = format!("{}://", proxy.kind.scheme());
    if let Some(creds) = &proxy.credentials {
        out.extend(utf8_percent_encode(&creds.username, USERINFO));
        if !creds.password.is_empty() {
            out.push(':');
            if with_password {
                out.extend(utf8_percent_encode(&creds.password, USERINFO));
            } else {
                out.push_str("***");
            }
        }
        out.push('@');
    }
    if proxy.host.contains(':') {
        out.push_str(&format!("[{}]", proxy.host));
    } else {
        out.push_str(&proxy.host);
    }
    out.push_str(&format!(":{}", proxy.port));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_every_scheme_with_defaults() {
        let cases = [
            ("socks4://h", Kind::Socks4, 1080),
            ("socks4a://h:1", Kind::Socks4a, 1),
            ("SOCKS5://h", Kind::Socks5, 1080),
            ("socks5h://h/", Kind::Socks5h, 1080),
            ("http://h", Kind::Http, 80),
            ("https://h", Kind::Https, 443),
        ];
        for (url, kind, port) in cases {
            let proxy: Proxy = url.parse().unwrap();
            assert_eq!(
                (proxy.kind(), proxy.host(), proxy.port()),
                (kind, "h", port),
                "{url}"
            );
        }
    }

    #[test]
    fn decodes_credentials_and_ipv6() {
        let proxy: Proxy = "socks5h://us%40er:p%3Ass%2Fw@[::1]:1081".parse().unwrap();
        let creds = proxy.credentials().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("us@er", "p:ss/w")
        );
        assert_eq!(proxy.host(), "::1");
        assert_eq!(proxy.port(), 1081);
        assert_eq!(proxy.to_string(), "socks5h://us%40er:***@[::1]:1081");
        assert_eq!(
            proxy.to_url_with_password(),
            "socks5h://us%40er:p%3Ass%2Fw@[::1]:1081"
        );
        assert!(!format!("{proxy:?}").contains("p:ss"));
        // An '@' inside the password is allowed unescaped: the last '@' ends user-info.
        let proxy: Proxy = "http://u:a@b@h:8080".parse().unwrap();
        assert_eq!(proxy.credentials().unwrap().password, "a@b");
    }

    #[test]
    fn rejects_bad_urls() {
        use ProxyUrlError::*;
        let cases = [
            ("h:1080", MissingScheme),
            ("ftp://h", UnsupportedScheme("ftp".into())),
            ("socks5://", MissingHost),
            ("socks5://:1080", MissingHost),
            ("socks5://h:0", InvalidPort),
            ("socks5://h:99999", InvalidPort),
            ("socks5://h:+1", InvalidPort),
            ("socks5://[::1", InvalidHost),
            ("socks5://[zz]:1", InvalidHost),
            ("socks5://::1:1080", InvalidHost),
            ("socks5://h:1/path", UnexpectedPath),
            ("socks5://h:1?x", UnexpectedPath),
            ("socks5://u:%ff@h", BadCredentials),
        ];
        for (url, expected) in cases {
            assert_eq!(url.parse::<Proxy>(), Err(expected), "{url}");
        }
    }

    fn arb_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Socks4),
            Just(Kind::Socks4a),
            Just(Kind::Socks5),
            Just(Kind::Socks5h),
            Just(Kind::Http),
            Just(Kind::Https),
        ]
    }

    fn arb_host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,3}",
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
            any::<std::net::Ipv6Addr>().prop_map(|ip| ip.to_string()),
        ]
    }

    proptest! {
        #[test]
        fn urls_round_trip(
            kind in arb_kind(),
            host in arb_host(),
            port in 1u16..,
            creds in proptest::option::of(("\\PC{1,20}", "\\PC{0,20}")),
        ) {
            let mut proxy = Proxy::new(kind, host, port);
            if let Some((user, pass)) = creds {
                proxy = proxy.with_credentials(user, pass);
            }
            let url = proxy.to_url_with_password();
            prop_assert_eq!(url.parse::<Proxy>(), Ok(proxy));
        }

        #[test]
        fn parser_never_panics(input in "\\PC{0,80}") {
            let _ = input.parse::<Proxy>();
        }
    }
}
