//! The agent config: defaults, and a clear message naming the key for every mistake.

use std::time::Duration;

use mtgate_proto::address::Address;

use super::config::{AgentConfig, Credentials, GatewayUrl};
use crate::tunnel::mux::Codec;

const BASE: &str = r#"
gateway = "ws://127.0.0.1:8443/ws"
username = "group-a"
password = "s3cret-pass"
"#;

fn parse(extra: &str) -> Result<AgentConfig, crate::config::ConfigError> {
    AgentConfig::parse(&format!("{BASE}{extra}"))
}

/// The error for `text`: its key path and message.
fn error(text: &str) -> (String, String) {
    let e = AgentConfig::parse(text).expect_err(text);
    (e.path, e.message)
}

#[test]
fn defaults() {
    let c = parse("client_id = \"edge-1\"").unwrap();
    assert_eq!(c.gateway.path, "/ws");
    assert!(c.tls.is_none());
    assert_eq!(c.client_id, "edge-1");
    assert_eq!(c.replicas, 1);
    assert_eq!(c.max_concurrent_conns, 1024);
    assert_eq!(c.codec, Codec::Binary);
    assert_eq!(c.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.ping_interval, Duration::from_secs(25));
    assert!(c.open_ports.is_empty());
    assert!(matches!(c.credentials, Credentials::Basic { .. }));
    // The client id defaults to the host name.
    assert!(!parse("").unwrap().client_id.is_empty());
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let c = parse("").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret-pass"), "{shown}");
    let t = AgentConfig::parse("gateway = \"ws://[::1]:9/\"\ntoken = \"tok-abcdefghijklmnop\"")
        .unwrap();
    assert!(!format!("{t:?}").contains("tok-abc"));
    assert!(matches!(t.credentials, Credentials::Bearer(_)));
}

#[test]
fn everything_set() {
    let c = parse(
        r#"
client_id = "edge-1"
group = "group-a"
replicas = 3
max_concurrent_conns = 10
protocol = "mtgate-tunnel-v1"
allowed_hosts = ["*.corp.test", "10.0.0.0/8:443"]
forbidden_hosts = ["*:22"]
allow_private = true
connect_timeout = "3s"
ping_interval = "20s"
pong_timeout = "5s"
drain_timeout = "1m"
idle_timeout = "2m"
log_level = "debug"

[[open_ports]]
remote_port = 2222
local_host = "localhost"
local_port = 22
"#,
    )
    .unwrap();
    assert_eq!(c.replicas, 3);
    assert_eq!(c.group.as_deref(), Some("group-a"));
    assert_eq!(c.open_ports[0].remote_port, 2222);
    assert_eq!(
        c.open_ports[0].local,
        Address::Domain("localhost".into(), 22)
    );
    assert!(
        c.policy
            .is_own_target(&Address::Domain("localhost".into(), 22))
    );
    assert_eq!(c.drain_timeout, Duration::from_secs(60));
}

#[test]
fn gateway_urls() {
    let u = GatewayUrl::parse("wss://gw.example.com/tunnel?v=1").unwrap();
    assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/tunnel?v=1"));
    assert_eq!(u.authority(), "gw.example.com");
    let u = GatewayUrl::parse("ws://[::1]:8080").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 8080, "/")
    );
    assert_eq!(u.authority(), "[::1]:8080");
    assert!(u.is_loopback());
    for bad in [
        "https://gw.example.com/",
        "wss://user:pw@gw.example.com/",
        "wss://gw.example.com:0/",
        "wss://gw.example.com:99999/",
        "wss://:443/",
        "wss://::1/",
        "wss://gw example.com/",
    ] {
        assert!(GatewayUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_mistake_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "gateway = \"http://x/\"\ntoken = \"t\"",
            "gateway",
            "wss://",
        ),
        (
            "gateway = \"ws://gw.example.com/\"\ntoken = \"t\"",
            "gateway",
            "insecure_plain",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"",
            "username",
            "needs credentials",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\nusername = \"u\"",
            "password",
            "without a password",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\npassword = \"p\"",
            "username",
            "without a username",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\nusername = \"a:b\"\npassword = \"p\"",
            "username",
            "':'",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\nusername = \"u\"\npassword = \"\"",
            "password",
            "empty",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\nusername = \"u\"\npassword = \"p\"\ntoken = \"t\"",
            "token",
            "not both",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"a b\"",
            "token",
            "spaces",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nprotocol = \"v2\"",
            "protocol",
            "expected",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nprotocol = \"anyproxy-json\"",
            "protocol",
            "username and password",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nca_file = \"/nonexistent\"",
            "gateway",
            "wss://",
        ),
        (
            "gateway = \"wss://127.0.0.1/\"\ntoken = \"t\"\nca_file = \"/nonexistent/ca.pem\"",
            "ca_file",
            "/nonexistent/ca.pem",
        ),
        (
            "gateway = \"wss://127.0.0.1/\"\nclient_cert = \"/nonexistent/c.pem\"",
            "client_key",
            "without client_key",
        ),
        (
            "gateway = \"wss://127.0.0.1/\"\nclient_key = \"/nonexistent/k.pem\"",
            "client_cert",
            "without client_cert",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nclient_id = \"a b\"",
            "client_id",
            "visible ASCII",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\ngroup = \"\"",
            "group",
            "visible ASCII",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nreplicas = 0",
            "replicas",
            "1 to 64",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nreplicas = 65",
            "replicas",
            "1 to 64",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nmax_concurrent_conns = 0",
            "max_concurrent_conns",
            "at least 1",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nforbidden_hosts = [\"ok\", \"a*b\"]",
            "forbidden_hosts[1]",
            "\"a*b\"",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nallowed_hosts = [\"h:0-99999\"]",
            "allowed_hosts[0]",
            "port",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nconnect_timeout = \"0s\"",
            "connect_timeout",
            "longer than 0s",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nping_interval = \"0s\"",
            "ping_interval",
            "longer than 0s",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\npong_timeout = \"0s\"",
            "pong_timeout",
            "longer than 0s",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nidle_timeout = \"0s\"",
            "idle_timeout",
            "longer than 0s",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nlog_level = \"[\"",
            "log_level",
            "tracing directive",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\n[[open_ports]]\nremote_port = 0\nlocal_host = \"h\"\nlocal_port = 1",
            "open_ports[0].remote_port",
            "1 to 65535",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\n[[open_ports]]\nremote_port = 1\nlocal_host = \"h\"\nlocal_port = 0",
            "open_ports[0].local_port",
            "1 to 65535",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\n[[open_ports]]\nremote_port = 1\nlocal_host = \"a b\"\nlocal_port = 1",
            "open_ports[0].local_host",
            "invalid host",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\n[[open_ports]]\nremote_port = 1\nlocal_host = \"h\"\nlocal_port = 1\nprotocol = \"sctp\"",
            "open_ports[0].protocol",
            "expected \"tcp\" or \"udp\"",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\n[[open_ports]]\nremote_port = 1\nlocal_host = \"h\"\nlocal_port = 1\n[[open_ports]]\nremote_port = 1\nlocal_host = \"h\"\nlocal_port = 2",
            "open_ports[1].remote_port",
            "twice",
        ),
        (
            "gateway = \"ws://127.0.0.1/\"\nusername = \"u\"\npassword = \"p\"\nprotocol = \"anyproxy-json\"\n[[open_ports]]\nremote_port = 1\nlocal_host = \"h\"\nlocal_port = 1",
            "open_ports",
            "anyproxy-json",
        ),
    ];
    for (text, key, words) in cases {
        let (path, message) = error(text);
        assert_eq!(&path, key, "{text}\n→ {path}: {message}");
        assert!(message.contains(words), "{text}\n→ {path}: {message}");
    }
}

#[test]
fn unknown_keys_and_bad_types_give_the_line() {
    let (path, message) = error("gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\nreplica = 2\n");
    assert_eq!(path, "line 3");
    assert!(message.contains("replica"), "{message}");
    let (path, message) =
        error("gateway = \"ws://127.0.0.1/\"\ntoken = \"t\"\ndrain_timeout = \"soon\"\n");
    assert_eq!(path, "line 3");
    assert!(message.contains("invalid duration"), "{message}");
    let (_, message) = error("token = \"t\"\n");
    assert!(message.contains("gateway"), "{message}");
}

#[test]
fn plain_ws_elsewhere_needs_insecure_plain() {
    let c = AgentConfig::parse(
        "gateway = \"ws://gw.internal.test:8080/ws\"\ntoken = \"t\"\ninsecure_plain = true",
    )
    .unwrap();
    assert!(c.tls.is_none());
}

#[test]
fn wss_uses_the_roots_or_a_pinned_ca() {
    let c = AgentConfig::parse("gateway = \"wss://gw.example.com/ws\"\ntoken = \"t\"").unwrap();
    assert!(c.tls.is_some());
    let dir = std::env::temp_dir().join(format!("mtgate-agent-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    let text = format!(
        "gateway = \"wss://gw.example.com/ws\"\ntoken = \"t\"\nca_file = {:?}",
        path.display().to_string()
    );
    assert!(AgentConfig::parse(&text).unwrap().tls.is_some());
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let text = format!(
        "gateway = \"wss://gw.example.com/ws\"\ntoken = \"t\"\nca_file = {:?}",
        empty.display().to_string()
    );
    let (path, message) = error(&text);
    assert_eq!(path, "ca_file");
    assert!(message.contains("no certificate"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shipped_example_is_valid_and_shows_the_defaults() {
    let text = include_str!("../../../../../examples/agent.toml");
    let example = AgentConfig::parse(text).unwrap();
    assert!(example.tls.is_some());
    // Apart from the example gateway and credentials, it spells out the defaults.
    let minimal = AgentConfig::parse(
        "gateway = \"wss://gateway.example.com:8443/ws\"\nusername = \"group-a\"\n\
         password = \"change-me\"",
    )
    .unwrap();
    assert_eq!(format!("{example:?}"), format!("{minimal:?}"));
}

#[test]
fn metrics_listen_is_an_address_or_absent() {
    let base = "gateway = \"ws://127.0.0.1:1/\"\ntoken = \"t\"\n";
    assert_eq!(AgentConfig::parse(base).unwrap().metrics_listen, None);
    let with = AgentConfig::parse(&format!("{base}metrics_listen = \"[::1]:9465\"\n")).unwrap();
    assert_eq!(with.metrics_listen, Some("[::1]:9465".parse().unwrap()));
    let bad = AgentConfig::parse(&format!("{base}metrics_listen = \"localhost\"\n"));
    let message = bad.unwrap_err().to_string();
    assert!(message.contains("metrics_listen"), "{message}");
}
