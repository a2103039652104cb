//! Which targets the agent reaches: `forbidden_hosts`, `allowed_hosts` and the special-address
//! default, compiled once into [`crate::acl`] rules (no regex, no per-OPEN parsing).
//!
//! An entry is a host part with an optional port part:
//!
//! | entry | matches |
//! |---|---|
//! | `example.com` | that name (case-insensitive, trailing dot ignored) |
//! | `*.example.com` | `example.com` and every name under it |
//! | `10.0.0.0/8`, `fd00::/8`, `192.0.2.7` | addresses in the network (checked on resolved addresses) |
//! | `host:80`, `10.0.0.0/8:443`, `[fd00::/8]:443` | the same, on that port only |
//! | `*:22`, `host:8000-9000` | any host on port 22; a port range |
//!
//! The decision, per resolved address: a `forbidden_hosts` entry refuses; then an
//! `allowed_hosts` entry allows; then, when `allowed_hosts` is not empty, everything else is
//! refused; otherwise special addresses (loopback, RFC 1918, link-local 169.254.0.0/16, ULA,
//! unspecified, CGNAT, multicast, reserved: [`crate::acl::special`]) are refused unless
//! `allow_private` is set, and public ones are allowed. A name is also checked before it is
//! resolved, so a forbidden name never reaches DNS. The agent connects only to the resolved
//! addresses that passed, so a name that resolves to 127.0.0.1 is refused like 127.0.0.1.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use mtgate_proto::address::Address;

use crate::acl::{self, Action, Command, Destination, HostPattern, Rule, Verdict};

/// Why a target is refused (for logs and the OPEN_ERR reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A `forbidden_hosts` entry matched.
    Forbidden,
    /// `allowed_hosts` is set and nothing in it matched.
    NotAllowed,
    /// A special address (loopback, private…) without `allow_private` or an allow entry.
    Private,
}

impl Refusal {
    /// A short reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Forbidden => "target matches forbidden_hosts",
            Self::NotAllowed => "target is not in allowed_hosts",
            Self::Private => "private or special address (set allow_private or allowed_hosts)",
        }
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    forbidden: Vec<Rule>,
    allowed: Vec<Rule>,
    allow_private: bool,
    own: Vec<Address>,
}

impl Policy {
    /// Compiles the lists. `own` are this agent's `open_ports` local targets, always allowed.
    /// Errors are `(key, index, message)`.
    pub fn new(
        forbidden: &[String],
        allowed: &[String],
        allow_private: bool,
        own: Vec<Address>,
    ) -> Result<Self, (&'static str, usize, String)> {
        let compile = |key: &'static str, list: &[String], action| {
            list.iter()
                .enumerate()
                .map(|(i, entry)| parse_entry(entry, action).map_err(|e| (key, i, e)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            forbidden: compile("forbidden_hosts", forbidden, Action::Deny)?,
            allowed: compile("allowed_hosts", allowed, Action::Allow)?,
            allow_private,
            own,
        })
    }

    /// Whether `target` is one of this agent's own `open_ports` targets (exempt from rules).
    pub fn is_own_target(&self, target: &Address) -> bool {
        self.own.iter().any(|own| match (own, target) {
            (Address::Domain(a, p), Address::Domain(b, q)) => p == q && a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        })
    }

    /// The check on a name before it is resolved: only a `forbidden_hosts` name entry that no
    /// address entry precedes refuses here.
    pub fn refuses_name(&self, host: &str, port: u16) -> Option<Refusal> {
        let destination = Destination {
            host,
            ip: None,
            port,
            command: Command::Connect,
        };
        acl::denied_before_resolution(&[&self.forbidden], &destination)
            .then_some(Refusal::Forbidden)
    }

    /// The check on one address `host` resolved to (or an IP literal, then `host` is its text).
    pub fn check(&self, host: &str, ip: IpAddr, port: u16) -> Result<(), Refusal> {
        let destination = Destination {
            host,
            ip: Some(ip),
            port,
            command: Command::Connect,
        };
        match acl::check(&[&self.forbidden, &self.allowed], &destination) {
            Verdict::Allowed => Ok(()),
            Verdict::Denied => Err(Refusal::Forbidden),
            _ if !self.allowed.is_empty() => Err(Refusal::NotAllowed),
            Verdict::SpecialAddress if !self.allow_private => Err(Refusal::Private),
            Verdict::SpecialAddress | Verdict::AllowedByDefault => Ok(()),
        }
    }
}

/// Parses one list entry into a rule (see the module docs for the forms).
pub fn parse_entry(entry: &str, action: Action) -> Result<Rule, String> {
    let text = entry.trim();
    let (host, ports) = split_ports(text).ok_or_else(|| bad(entry, "invalid port or range"))?;
    let mut rule = Rule {
        action,
        hosts: vec![],
        cidrs: vec![],
        ports: ports.into_iter().collect(),
        commands: vec![],
    };
    if let Ok(net) = host.parse::<IpNet>() {
        rule.cidrs.push(net.trunc());
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        rule.cidrs.push(IpNet::from(ip.to_canonical()));
    } else {
        match HostPattern::parse(host) {
            Some(HostPattern::Any) if rule.ports.is_empty() => {
                return Err(bad(
                    entry,
                    "`*` alone would match everything; write `*:PORT`",
                ));
            }
            Some(pattern) => rule.hosts.push(pattern),
            None => {
                return Err(bad(
                    entry,
                    "expected a name, *.suffix, an IP address or a CIDR network, optionally \
                     followed by :PORT or :LOW-HIGH",
                ));
            }
        }
    }
    Ok(rule)
}

fn bad(entry: &str, why: &str) -> String {
    format!("{entry:?}: {why}")
}

/// Splits `host[:ports]`. Brackets delimit an IPv6 host (or network) that has a port;
/// unbracketed text with several colons is an IPv6 host without a port.
fn split_ports(text: &str) -> Option<(&str, Option<RangeInclusive<u16>>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(port_range(after.strip_prefix(':')?)?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, ports)) if !host.contains(':') => Some((host, Some(port_range(ports)?))),
        _ => Some((text, None)),
    }
}

fn port_range(text: &str) -> Option<RangeInclusive<u16>> {
    if text == "*" {
        return Some(0..=u16::MAX);
    }
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (low, high) = (low.parse::<u16>().ok()?, high.parse::<u16>().ok()?);
    (low <= high).then_some(low..=high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(forbidden: &[&str], allowed: &[&str], allow_private: bool) -> Policy {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Policy::new(&own(forbidden), &own(allowed), allow_private, vec![]).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn default_refuses_special_addresses_and_allows_public_ones() {
        let p = policy(&[], &[], false);
        for special in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "fd00::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(
                p.check("x", ip(special), 80),
                Err(Refusal::Private),
                "{special}"
            );
        }
        assert_eq!(p.check("x", ip("93.184.216.34"), 443), Ok(()));
        assert_eq!(p.check("x", ip("2606:4700::1111"), 443), Ok(()));
        let open = policy(&[], &[], true);
        assert_eq!(open.check("x", ip("127.0.0.1"), 80), Ok(()));
    }

    #[test]
    fn exact_suffix_cidr_and_port_entries() {
        let p = policy(
            &[
                "blocked.test",
                "*.evil.test",
                "93.184.216.0/24",
                "1.1.1.1:53",
                "*:22",
                "[2606:4700::/32]:443",
                "8.8.8.8:1000-2000",
            ],
            &[],
            false,
        );
        let public = ip("9.9.9.9");
        assert_eq!(
            p.check("BLOCKED.test.", public, 80),
            Err(Refusal::Forbidden)
        );
        assert_eq!(p.check("a.blocked.test", public, 80), Ok(()));
        assert_eq!(p.check("evil.test", public, 80), Err(Refusal::Forbidden));
        assert_eq!(
            p.check("x.y.evil.test", public, 80),
            Err(Refusal::Forbidden)
        );
        assert_eq!(p.check("notevil.test", public, 80), Ok(()));
        assert_eq!(
            p.check("x", ip("93.184.216.34"), 80),
            Err(Refusal::Forbidden)
        );
        assert_eq!(p.check("x", ip("1.1.1.1"), 53), Err(Refusal::Forbidden));
        assert_eq!(p.check("x", ip("1.1.1.1"), 443), Ok(()));
        assert_eq!(p.check("x", public, 22), Err(Refusal::Forbidden));
        assert_eq!(
            p.check("x", ip("2606:4700::1"), 443),
            Err(Refusal::Forbidden)
        );
        assert_eq!(p.check("x", ip("2606:4700::1"), 80), Ok(()));
        assert_eq!(p.check("x", ip("8.8.8.8"), 1500), Err(Refusal::Forbidden));
        assert_eq!(p.check("x", ip("8.8.8.8"), 2001), Ok(()));
    }

    #[test]
    fn allowed_hosts_is_an_allow_list_and_opens_special_addresses() {
        let p = policy(
            &["127.0.0.1:6379"],
            &["127.0.0.0/8", "*.corp.test:443"],
            false,
        );
        assert_eq!(p.check("localhost", ip("127.0.0.1"), 8080), Ok(()));
        assert_eq!(
            p.check("localhost", ip("127.0.0.1"), 6379),
            Err(Refusal::Forbidden),
            "forbidden wins over allowed"
        );
        assert_eq!(p.check("git.corp.test", ip("10.0.0.5"), 443), Ok(()));
        assert_eq!(
            p.check("git.corp.test", ip("10.0.0.5"), 80),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            p.check("example.com", ip("93.184.216.34"), 443),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn names_are_refused_before_resolution() {
        let p = policy(&["*.internal.test", "10.0.0.0/8"], &[], false);
        assert_eq!(
            p.refuses_name("db.internal.test", 5432),
            Some(Refusal::Forbidden)
        );
        assert_eq!(p.refuses_name("example.com", 80), None);
        // An address entry first: the decision waits for the resolved address.
        let q = policy(&["10.0.0.0/8", "*.internal.test"], &[], false);
        assert_eq!(q.refuses_name("db.internal.test", 5432), None);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_on_its_address() {
        let p = policy(&[], &[], false);
        let addrs = mtgate_client::resolve("localhost", 80, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!addrs.is_empty());
        assert_eq!(p.refuses_name("localhost", 80), None);
        for addr in addrs {
            assert_eq!(
                p.check("localhost", addr.ip(), 80),
                Err(Refusal::Private),
                "{addr}"
            );
        }
        let allowed = policy(&[], &["localhost"], false);
        assert_eq!(allowed.check("localhost", ip("127.0.0.1"), 80), Ok(()));
    }

    #[test]
    fn own_open_port_targets_are_recognised() {
        let own = vec![Address::Domain("LocalHost".into(), 8080)];
        let p = Policy::new(&[], &[], false, own).unwrap();
        assert!(p.is_own_target(&Address::Domain("localhost".into(), 8080)));
        assert!(!p.is_own_target(&Address::Domain("localhost".into(), 8081)));
    }

    #[test]
    fn invalid_entries_are_explained() {
        for entry in [
            "",
            "*",
            "a*.test",
            "host:99999",
            "host:9-1",
            "[::1",
            "10.0.0.0/33:x",
            "bad host",
        ] {
            let err = parse_entry(entry, Action::Deny).unwrap_err();
            assert!(err.starts_with(&format!("{entry:?}")), "{err}");
        }
        let err = Policy::new(&[], &["ok.test".into(), "x:y".into()], false, vec![]).unwrap_err();
        assert_eq!((err.0, err.1), ("allowed_hosts", 1));
        assert!(parse_entry("::1", Action::Deny).unwrap().cidrs.len() == 1);
        assert!(parse_entry("[::1]:22", Action::Deny).unwrap().ports == vec![22..=22]);
    }
}
