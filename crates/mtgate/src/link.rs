//! Links users share: `tg://proxy?…` and `https://t.me/proxy?…`, and their QR codes.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use mtgate_proto::mtproto::secret::ClientSecret;
use qrcodegen::{QrCode, QrCodeEcc};

use crate::config::MtprotoListener;

/// One shareable proxy link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyLink {
    /// The user it belongs to.
    pub user: String,
    /// "fake-tls", "padded" or "classic"; for fake TLS, also "hex" or "base64".
    pub label: String,
    /// The secret as written in the link.
    pub secret: String,
    /// `tg://proxy?server=…&port=…&secret=…`.
    pub tg: String,
    /// `https://t.me/proxy?server=…&port=…&secret=…`.
    pub https: String,
}

/// Where clients should connect: the configured public host, else the listen address if it is
/// a specific one, else this host's outgoing address (found without sending anything).
pub fn public_endpoint(listener: &MtprotoListener, bound: Option<SocketAddr>) -> (String, u16) {
    let addr = bound.or_else(|| listener.listen.first().copied());
    let port = listener
        .public_port
        .or(addr.map(|a| a.port()))
        .unwrap_or(443);
    if let Some(host) = &listener.public_host {
        return (host.clone(), port);
    }
    let host = match addr.map(|a| a.ip()) {
        Some(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => outgoing_address().map_or_else(|| "SERVER_IP".to_owned(), |ip| ip.to_string()),
    };
    (host, port)
}

/// The source address the routing table picks for the outside world. A UDP `connect` only
/// consults the routing table; no packet leaves the host.
fn outgoing_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Every link of every user of a listener: fake TLS first (hex and base64url), then padded,
/// then classic, as the listener's modes allow.
pub fn links(listener: &MtprotoListener, host: &str, port: u16) -> Vec<ProxyLink> {
    let mut out = Vec::new();
    for user in &listener.users {
        let mut forms: Vec<(String, String)> = Vec::new();
        if listener.modes.fake_tls
            && let Some(domain) = listener.fake_tls.domains.first()
        {
            let secret = ClientSecret::FakeTls {
                secret: user.secret.clone(),
                domain: domain.clone(),
            };
            forms.push(("fake-tls (hex)".into(), secret.to_hex()));
            forms.push(("fake-tls (base64)".into(), secret.to_base64url()));
        }
        if listener.modes.padded {
            forms.push((
                "padded".into(),
                ClientSecret::Padded(user.secret.clone()).to_hex(),
            ));
        }
        if listener.modes.classic {
            forms.push((
                "classic".into(),
                ClientSecret::Plain(user.secret.clone()).to_hex(),
            ));
        }
        for (label, secret) in forms {
            let query = format!("server={host}&port={port}&secret={secret}");
            out.push(ProxyLink {
                user: user.name.clone(),
                label,
                tg: format!("tg://proxy?{query}"),
                https: format!("https://t.me/proxy?{query}"),
                secret,
            });
        }
    }
    out
}

/// A QR code of `text` drawn with Unicode half blocks: light modules are drawn, dark ones are
/// left as the terminal's background, so it scans on a dark terminal.
pub fn qr_code(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Low).ok()?;
    let quiet = 2;
    let size = qr.size();
    let light = |x: i32, y: i32| !qr.get_module(x, y);
    let mut out = String::new();
    let mut y = -quiet;
    while y < size + quiet {
        for x in -quiet..size + quiet {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Origin, SecretSource};
    use mtgate_proto::mtproto::secret::Secret;

    struct Fixed;
    impl SecretSource for Fixed {
        fn auto_secret(&mut self, _: &str, _: &str) -> Result<Secret, String> {
            Ok(Secret::from_bytes([0x11; 16]))
        }
    }

    #[test]
    fn links_for_every_mode() {
        let text = r#"
            [[mtproto]]
            listen = ["[::]:8443"]
            modes = ["classic", "padded", "fake-tls"]
            public_host = "proxy.example.net"
            [mtproto.fake_tls]
            domains = ["example.com"]
            [mtproto.users]
            alice = "auto"
        "#;
        let config = Config::parse(text, Origin::Embedded, &mut Fixed).unwrap();
        let listener = &config.mtproto[0];
        let (host, port) = public_endpoint(listener, None);
        assert_eq!((host.as_str(), port), ("proxy.example.net", 8443));
        let links = links(listener, &host, port);
        assert_eq!(links.len(), 4);
        let key = "11".repeat(16);
        assert_eq!(
            links[0].tg,
            format!(
                "tg://proxy?server=proxy.example.net&port=8443&secret=ee{key}{}",
                "6578616d706c652e636f6d"
            )
        );
        assert!(
            links[1].secret.starts_with('7'),
            "base64url ee secrets start with 7"
        );
        assert_eq!(
            ClientSecret::parse(&links[1].secret).unwrap(),
            ClientSecret::parse(&links[0].secret).unwrap()
        );
        assert_eq!(
            links[2].https,
            format!("https://t.me/proxy?server=proxy.example.net&port=8443&secret=dd{key}")
        );
        assert_eq!(links[3].secret, key);
    }

    #[test]
    fn qr_codes_render() {
        let qr = qr_code("tg://proxy?server=1.2.3.4&port=443&secret=dd00").unwrap();
        let rows: Vec<&str> = qr.lines().collect();
        assert!(rows.len() > 10);
        assert!(
            rows.iter()
                .all(|r| r.chars().count() == rows[0].chars().count())
        );
    }
}
