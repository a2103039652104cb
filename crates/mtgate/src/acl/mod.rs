//! Who may go where: allow/deny rules by destination host, address, port and command, and the
//! safe default that keeps a proxy from reaching the network it runs in.
//!
//! A request is checked against the user's rules, then the listener's, in order; the first
//! rule whose every condition holds decides. When none does, the default applies: public
//! addresses are allowed, and loopback, private, link-local (cloud metadata at
//! 169.254.169.254), unique-local and other special ranges are refused ([`special`]).
//!
//! Checks happen after DNS resolution, on every address a name resolves to, and the proxy
//! connects only to the addresses that passed: a name that resolves to 127.0.0.1 is refused
//! like 127.0.0.1 itself, and the answer cannot change between the check and the connect.

pub mod special;

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;

/// What a request asks the proxy to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Open a TCP connection (SOCKS CONNECT, HTTP CONNECT and forwarded HTTP requests).
    Connect,
    /// Accept one inbound TCP connection (SOCKS5 BIND).
    Bind,
    /// Relay UDP datagrams (SOCKS5 UDP ASSOCIATE); checked per destination.
    Udp,
}

impl Command {
    /// The name used in the config, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Bind => "bind",
            Self::Udp => "udp",
        }
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "connect" => Some(Self::Connect),
            "bind" => Some(Self::Bind),
            "udp" => Some(Self::Udp),
            _ => None,
        }
    }
}

/// A rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the request through (also to special addresses).
    Allow,
    /// Refuse it (SOCKS reply `02`, HTTP 403).
    Deny,
}

/// A destination host pattern: an exact name, `*.suffix` (the suffix and every name under
/// it), or `*` (anything). Names compare case-insensitively, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Any host.
    Any,
    /// Exactly this name.
    Exact(String),
    /// This name and its subdomains.
    Suffix(String),
}

impl HostPattern {
    /// Parses `example.com`, `*.example.com` or `*`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = normalise(text);
        if text == "*" {
            return Some(Self::Any);
        }
        let (suffix, body) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let valid = !body.is_empty()
            && body.len() <= 253
            && !body.contains('*')
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
        match (valid, suffix) {
            (false, _) => None,
            (true, true) => Some(Self::Suffix(body.to_owned())),
            (true, false) => Some(Self::Exact(body.to_owned())),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => host == name,
            Self::Suffix(suffix) => {
                host == suffix
                    || (host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
            }
        }
    }
}

/// Lowercase, no trailing dot, no IPv6 brackets.
fn normalise(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// One rule: every non-empty condition must hold (within a condition, any entry may match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The verdict when the rule matches.
    pub action: Action,
    /// Destination host patterns (the requested name, or the IP literal as text).
    pub hosts: Vec<HostPattern>,
    /// Destination networks (checked on each resolved address).
    pub cidrs: Vec<IpNet>,
    /// Destination port ranges.
    pub ports: Vec<RangeInclusive<u16>>,
    /// Commands.
    pub commands: Vec<Command>,
}

/// A request as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The host as requested: a domain name or an IP literal's text.
    pub host: &'a str,
    /// The address about to be used: resolved, or the literal; `None` when an upstream
    /// proxy resolves the name.
    pub ip: Option<IpAddr>,
    /// The destination port.
    pub port: u16,
    /// The command.
    pub command: Command,
}

impl Rule {
    fn matches(&self, d: &Destination<'_>, host: &str) -> bool {
        let hosts = self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(host));
        let cidrs = self.cidrs.is_empty()
            || d.ip
                .map(|ip| ip.to_canonical())
                .is_some_and(|ip| self.cidrs.iter().any(|n| n.contains(&ip)));
        let ports = self.ports.is_empty() || self.ports.iter().any(|r| r.contains(&d.port));
        let commands = self.commands.is_empty() || self.commands.contains(&d.command);
        hosts && cidrs && ports && commands
    }
}

/// The decision on one destination, and why (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A rule allowed it.
    Allowed,
    /// Nothing matched and the address is public (or will be resolved upstream).
    AllowedByDefault,
    /// A rule denied it.
    Denied,
    /// Nothing matched and the address is special (loopback, private, link-local…).
    SpecialAddress,
}

impl Verdict {
    /// Whether the request may go on.
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::AllowedByDefault)
    }

    /// A reason code for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Allowed | Self::AllowedByDefault => "ok",
            Self::Denied => "denied_by_rule",
            Self::SpecialAddress => "denied_special_address",
        }
    }
}

/// Checks `destination` against each rule list in turn, then the default.
pub fn check(rule_lists: &[&[Rule]], destination: &Destination<'_>) -> Verdict {
    let host = normalise(destination.host);
    let first = rule_lists
        .iter()
        .flat_map(|rules| rules.iter())
        .find(|rule| rule.matches(destination, &host));
    match first.map(|r| r.action) {
        Some(Action::Allow) => Verdict::Allowed,
        Some(Action::Deny) => Verdict::Denied,
        None => match destination.ip {
            Some(ip) if special::is_special(ip) => Verdict::SpecialAddress,
            _ => Verdict::AllowedByDefault,
        },
    }
}

/// Whether the rules refuse a name before it is resolved: the first rule that either matches
/// without looking at an address or needs one decides; only a deny is final here. Refusing
/// early keeps names the rules forbid out of DNS and answers them with `02`, not `04`.
pub fn denied_before_resolution(rule_lists: &[&[Rule]], destination: &Destination<'_>) -> bool {
    let host = normalise(destination.host);
    let first = rule_lists
        .iter()
        .flat_map(|rules| rules.iter())
        .find(|rule| !rule.cidrs.is_empty() || rule.matches(destination, &host));
    first.is_some_and(|rule| rule.cidrs.is_empty() && rule.action == Action::Deny)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_denied_before_resolution_only_when_no_address_rule_comes_first() {
        let deny_name = Rule {
            hosts: vec![HostPattern::parse("*.blocked.test").unwrap()],
            ..rule(Action::Deny)
        };
        let allow_net = Rule {
            cidrs: vec!["127.0.0.0/8".parse().unwrap()],
            ..rule(Action::Allow)
        };
        let d = dest("a.blocked.test", None, 80);
        assert!(denied_before_resolution(
            &[std::slice::from_ref(&deny_name)],
            &d
        ));
        assert!(!denied_before_resolution(
            &[&[allow_net.clone(), deny_name.clone()]],
            &d
        ));
        assert!(denied_before_resolution(&[&[deny_name], &[allow_net]], &d));
        assert!(!denied_before_resolution(&[&[]], &d));
    }

    fn rule(action: Action) -> Rule {
        Rule {
            action,
            hosts: vec![],
            cidrs: vec![],
            ports: vec![],
            commands: vec![],
        }
    }

    fn dest(host: &str, ip: Option<&str>, port: u16) -> Destination<'static> {
        Destination {
            host: Box::leak(host.to_owned().into_boxed_str()),
            ip: ip.map(|i| i.parse().unwrap()),
            port,
            command: Command::Connect,
        }
    }

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("*.Example.COM.").unwrap();
        assert!(p.matches("example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("badexample.com"));
        let e = HostPattern::parse("example.com").unwrap();
        assert!(!e.matches("a.example.com"));
        assert!(HostPattern::parse("a*.com").is_none());
        assert!(HostPattern::parse("").is_none());
        assert_eq!(HostPattern::parse("*"), Some(HostPattern::Any));
        assert!(HostPattern::parse("[::1]").unwrap().matches("::1"));
    }

    #[test]
    fn default_refuses_special_addresses_only() {
        assert_eq!(
            check(&[], &dest("x", Some("127.0.0.1"), 80)),
            Verdict::SpecialAddress
        );
        assert_eq!(
            check(&[], &dest("metadata", Some("169.254.169.254"), 80)),
            Verdict::SpecialAddress
        );
        assert_eq!(
            check(&[], &dest("x", Some("::ffff:10.1.2.3"), 80)),
            Verdict::SpecialAddress
        );
        assert_eq!(
            check(&[], &dest("x", Some("93.184.216.34"), 80)),
            Verdict::AllowedByDefault
        );
        assert_eq!(check(&[], &dest("x", None, 80)), Verdict::AllowedByDefault);
    }

    #[test]
    fn first_match_wins_user_rules_first() {
        let mut allow_lo = rule(Action::Allow);
        allow_lo.cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        allow_lo.ports = vec![8000..=9000];
        let mut deny_port = rule(Action::Deny);
        deny_port.ports = vec![8080..=8080];
        let user = [deny_port];
        let listener = [allow_lo];
        let lists: [&[Rule]; 2] = [&user, &listener];
        assert_eq!(
            check(&lists, &dest("localhost", Some("127.0.0.1"), 8080)),
            Verdict::Denied
        );
        assert_eq!(
            check(&lists, &dest("localhost", Some("127.0.0.1"), 8081)),
            Verdict::Allowed
        );
        assert_eq!(
            check(&lists, &dest("localhost", Some("127.0.0.1"), 22)),
            Verdict::SpecialAddress
        );
        // An address rule never matches a name resolved upstream.
        assert_eq!(
            check(&lists, &dest("localhost", None, 8081)),
            Verdict::AllowedByDefault
        );
    }

    #[test]
    fn commands_and_hosts() {
        let mut deny_udp = rule(Action::Deny);
        deny_udp.commands = vec![Command::Udp];
        let mut deny_host = rule(Action::Deny);
        deny_host.hosts = vec![HostPattern::parse("*.blocked.test").unwrap()];
        let rules = [deny_udp, deny_host];
        let mut d = dest("ok.test", Some("93.184.216.34"), 53);
        assert!(check(&[&rules], &d).is_allowed());
        d.command = Command::Udp;
        assert_eq!(check(&[&rules], &d), Verdict::Denied);
        assert_eq!(
            check(
                &[&rules],
                &dest("WWW.Blocked.Test.", Some("93.184.216.34"), 80)
            ),
            Verdict::Denied
        );
    }
}
