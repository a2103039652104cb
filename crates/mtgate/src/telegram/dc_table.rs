//! Telegram's DC addresses, with per-index overrides from the config.
//!
//! Lookup for a DC index `i` (as the client sent it): the override for `i`; for a media index
//! `-n`, then the override for `n`; then the built-in table of its environment (production,
//! media, test, CDN 203); an index nothing knows falls back to the default DC of the same
//! environment, again override first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mtgate_proto::mtproto::dc::{DcId, DcKind, TEST_DC_OFFSET};

use crate::config::TelegramConfig;

const PORT: u16 = 443;

#[rustfmt::skip]
const PRODUCTION: &[(u16, Ipv4Addr, Ipv6Addr)] = &[
    (1,   Ipv4Addr::new(149, 154, 175, 50),  Ipv6Addr::new(0x2001, 0x0b28, 0xf23d, 0xf001, 0, 0, 0, 0xa)),
    (2,   Ipv4Addr::new(149, 154, 167, 51),  Ipv6Addr::new(0x2001, 0x067c, 0x04e8, 0xf002, 0, 0, 0, 0xa)),
    (3,   Ipv4Addr::new(149, 154, 175, 100), Ipv6Addr::new(0x2001, 0x0b28, 0xf23d, 0xf003, 0, 0, 0, 0xa)),
    (4,   Ipv4Addr::new(149, 154, 167, 91),  Ipv6Addr::new(0x2001, 0x067c, 0x04e8, 0xf004, 0, 0, 0, 0xa)),
    (5,   Ipv4Addr::new(149, 154, 171, 5),   Ipv6Addr::new(0x2001, 0x0b28, 0xf23f, 0xf005, 0, 0, 0, 0xa)),
    (203, Ipv4Addr::new(91, 105, 192, 100),  Ipv6Addr::new(0x2a0a, 0xf280, 0x0203, 0x000a, 0x5000, 0, 0, 0x100)),
];

#[rustfmt::skip]
const MEDIA: &[(u16, Ipv4Addr, Ipv6Addr)] = &[
    (2, Ipv4Addr::new(149, 154, 167, 151), Ipv6Addr::new(0x2001, 0x067c, 0x04e8, 0xf002, 0, 0, 0, 0xb)),
    (4, Ipv4Addr::new(149, 154, 164, 250), Ipv6Addr::new(0x2001, 0x067c, 0x04e8, 0xf004, 0, 0, 0, 0xb)),
];

#[rustfmt::skip]
const TEST: &[(u16, Ipv4Addr, Ipv6Addr)] = &[
    (1, Ipv4Addr::new(149, 154, 175, 10),  Ipv6Addr::new(0x2001, 0x0b28, 0xf23d, 0xf001, 0, 0, 0, 0xe)),
    (2, Ipv4Addr::new(149, 154, 167, 40),  Ipv6Addr::new(0x2001, 0x067c, 0x04e8, 0xf002, 0, 0, 0, 0xe)),
    (3, Ipv4Addr::new(149, 154, 175, 117), Ipv6Addr::new(0x2001, 0x0b28, 0xf23d, 0xf003, 0, 0, 0, 0xe)),
];

/// Where each DC index leads.
#[derive(Debug, Clone)]
pub struct DcTable {
    overrides: HashMap<i16, Vec<SocketAddr>>,
    default_dc: u16,
}

impl DcTable {
    /// The built-in table with the config's overrides and default.
    pub fn new(config: &TelegramConfig) -> Self {
        Self {
            overrides: config.dc_overrides.clone(),
            default_dc: config.default_dc.number(),
        }
    }

    /// The addresses to dial for `dc`, and whether the default DC stood in for an unknown one.
    pub fn resolve(&self, dc: DcId) -> (Vec<SocketAddr>, bool) {
        if let Some(addrs) = self.known(dc) {
            return (addrs, false);
        }
        let fallback = match dc.kind() {
            DcKind::Test => DcId(self.default_dc as i16 + TEST_DC_OFFSET),
            DcKind::Media | DcKind::Production => DcId(self.default_dc as i16),
        };
        (self.known(fallback).unwrap_or_default(), true)
    }

    fn known(&self, dc: DcId) -> Option<Vec<SocketAddr>> {
        if let Some(addrs) = self.overrides.get(&dc.0) {
            return Some(addrs.clone());
        }
        let number = dc.number();
        match dc.kind() {
            DcKind::Media => self
                .overrides
                .get(&(number as i16))
                .cloned()
                .or_else(|| table(MEDIA, number))
                .or_else(|| table(PRODUCTION, number)),
            DcKind::Test => table(TEST, number),
            DcKind::Production => table(PRODUCTION, number),
        }
    }
}

fn table(rows: &[(u16, Ipv4Addr, Ipv6Addr)], number: u16) -> Option<Vec<SocketAddr>> {
    rows.iter()
        .find(|(n, _, _)| *n == number)
        .map(|(_, v4, v6)| {
            vec![
                SocketAddr::new(IpAddr::V4(*v4), PORT),
                SocketAddr::new(IpAddr::V6(*v6), PORT),
            ]
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table_with(overrides: &[(i16, &str)]) -> DcTable {
        let config = TelegramConfig {
            prefer_ipv6: false,
            connect_timeout: Duration::from_secs(1),
            default_dc: DcId(2),
            dc_overrides: overrides
                .iter()
                .map(|(k, v)| (*k, vec![v.parse().unwrap()]))
                .collect(),
            mode: crate::config::TelegramMode::Direct,
            ad_tag: None,
            middle: None,
            upstream_pool: None,
        };
        DcTable::new(&config)
    }

    #[test]
    fn built_in_tables() {
        let t = table_with(&[]);
        let (addrs, fallback) = t.resolve(DcId(4));
        assert!(!fallback);
        assert_eq!(addrs[0], "149.154.167.91:443".parse().unwrap());
        assert_eq!(addrs[1], "[2001:67c:4e8:f004::a]:443".parse().unwrap());
        assert_eq!(
            t.resolve(DcId(-2)).0[0],
            "149.154.167.151:443".parse().unwrap()
        );
        assert_eq!(
            t.resolve(DcId(-3)).0[0],
            "149.154.175.100:443".parse().unwrap(),
            "media without a media entry"
        );
        assert_eq!(
            t.resolve(DcId(10003)).0[0],
            "149.154.175.117:443".parse().unwrap()
        );
        assert_eq!(
            t.resolve(DcId(203)).0[0],
            "91.105.192.100:443".parse().unwrap()
        );
        let (addrs, fallback) = t.resolve(DcId(9));
        assert!(fallback);
        assert_eq!(addrs[0], "149.154.167.51:443".parse().unwrap());
        assert_eq!(
            t.resolve(DcId(10009)).0[0],
            "149.154.167.40:443".parse().unwrap()
        );
    }

    #[test]
    fn overrides_win_and_media_uses_the_plain_override() {
        let t = table_with(&[(2, "127.0.0.1:4000"), (10001, "[::1]:4001")]);
        assert_eq!(
            t.resolve(DcId(2)).0,
            vec!["127.0.0.1:4000".parse().unwrap()]
        );
        assert_eq!(
            t.resolve(DcId(-2)).0,
            vec!["127.0.0.1:4000".parse().unwrap()]
        );
        assert_eq!(
            t.resolve(DcId(10001)).0,
            vec!["[::1]:4001".parse().unwrap()]
        );
        // Unknown DCs fall back to the (overridden) default.
        assert_eq!(
            t.resolve(DcId(77)),
            (vec!["127.0.0.1:4000".parse().unwrap()], true)
        );
    }
}
