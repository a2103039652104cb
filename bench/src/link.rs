//! Secrets as people paste them, and the rule that load goes to loopback only.
//!
//! Accepted: a bare secret (hex or base64url, plain / `dd` / `ee`), or a whole link
//! (`tg://proxy?server=…&port=…&secret=…`, `https://t.me/proxy?…`) from which only the
//! `secret` parameter is taken.

use std::net::SocketAddr;

use mtgate_proto::mtproto::secret::{ClientSecret, SecretError};

/// Why a link or target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A link without a `secret` parameter.
    #[error("the link has no secret parameter")]
    NoSecret,
    /// The secret itself is malformed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A target that is not on this machine.
    #[error("{0} is not a loopback address; load goes to 127.0.0.0/8 or ::1 only")]
    NotLoopback(SocketAddr),
}

/// Parses a secret given bare or inside a proxy link.
pub fn parse_secret(text: &str) -> Result<ClientSecret, LinkError> {
    let text = text.trim();
    let Some((_, query)) = text.split_once('?') else {
        return Ok(ClientSecret::parse(text)?);
    };
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "secret")
        .map(|(_, value)| percent_decode(value))
        .ok_or(LinkError::NoSecret)?;
    Ok(ClientSecret::parse(&value)?)
}

/// Refuses any target outside loopback: load runs never leave the machine.
pub fn ensure_loopback(addr: SocketAddr) -> Result<SocketAddr, LinkError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(LinkError::NotLoopback(addr))
    }
}

/// Decodes `%XX` escapes (a base64 secret's `=` may arrive as `%3D`); anything else is kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn takes_bare_secrets_and_links() {
        assert!(matches!(parse_secret(KEY).unwrap(), ClientSecret::Plain(_)));
        let dd = format!("tg://proxy?server=127.0.0.1&port=443&secret=dd{KEY}");
        assert!(matches!(
            parse_secret(&dd).unwrap(),
            ClientSecret::Padded(_)
        ));
        let ee = ClientSecret::FakeTls {
            secret: ClientSecret::parse(KEY).unwrap().secret().clone(),
            domain: "example.com".into(),
        };
        let link = format!(
            "https://t.me/proxy?server=::1&secret={}&port=1",
            ee.to_base64url()
        );
        assert_eq!(parse_secret(&link).unwrap(), ee);
        let escaped = format!("tg://proxy?secret={}%3D", ee.to_base64url());
        assert_eq!(parse_secret(&escaped).unwrap(), ee);
        assert_eq!(
            parse_secret("tg://proxy?server=x&port=1"),
            Err(LinkError::NoSecret)
        );
        assert!(parse_secret("tg://proxy?secret=zz").is_err());
    }

    #[test]
    fn only_loopback_targets() {
        assert!(ensure_loopback("127.0.0.1:1".parse().unwrap()).is_ok());
        assert!(ensure_loopback("[::1]:1".parse().unwrap()).is_ok());
        assert!(ensure_loopback("10.0.0.1:1".parse().unwrap()).is_err());
        assert!(ensure_loopback("[2001:db8::1]:1".parse().unwrap()).is_err());
    }
}
