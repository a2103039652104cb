use super::*;

fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/proxy-multi/");
    let mut out: Vec<(String, String)> = std::fs::read_dir(format!("{dir}{kind}"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

#[test]
fn every_valid_fixture_parses() {
    for (name, text) in fixtures("valid") {
        let config = ProxyConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!config.clusters.is_empty(), "{name}");
    }
}

#[test]
fn every_invalid_fixture_says_what_and_where() {
    for (name, text) in fixtures("invalid") {
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{name} has no `# error:` line"));
        let error = ProxyConfig::parse(&text).expect_err(&name).to_string();
        assert!(
            error.contains(expected),
            "{name}: {error:?} should contain {expected:?}"
        );
    }
}

#[test]
fn telegram_file_lookup_and_default() {
    let text = fixtures("valid")
        .into_iter()
        .find(|(n, _)| n == "telegram.conf")
        .unwrap()
        .1;
    let config = ProxyConfig::parse(&text).unwrap();
    assert_eq!(config.default_dc, 2);
    assert_eq!(config.clusters.len(), 10);
    let dc2 = config.cluster(2).unwrap();
    assert_eq!(dc2.endpoints.len(), 2);
    assert_eq!(
        dc2.endpoints[1].addr,
        "149.154.161.145:8888".parse().unwrap()
    );
    assert_eq!(
        (
            dc2.endpoints[0].min_connections,
            dc2.endpoints[0].max_connections
        ),
        (4, 8)
    );
    assert_eq!(config.cluster(-4).unwrap().dc, -4);
    // Unknown indexes use the default cluster.
    assert_eq!(config.cluster(10_002).unwrap().dc, 2);
    assert_eq!(config.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn options_apply_to_later_proxies() {
    let text = "timeout 500; min_connections 1; max_connections 2;\n\
                proxy 10.0.0.1:8888;\n\
                proxy_for 7 10.0.0.2 : 8888 ;\n\
                max_connections 16;\n\
                proxy_for\n -7\n [::1]:443;";
    let config = ProxyConfig::parse(text).unwrap();
    assert_eq!(config.timeout, Duration::from_millis(500));
    assert_eq!(config.clusters[0].dc, 0);
    assert_eq!(config.clusters[1].endpoints[0].max_connections, 2);
    let media = config.cluster(-7).unwrap();
    assert_eq!(media.endpoints[0].addr, "[::1]:443".parse().unwrap());
    assert_eq!(media.endpoints[0].max_connections, 16);
    // No `default`: index 0, which `proxy` serves.
    assert_eq!(config.cluster(99).unwrap().dc, 0);
}

#[test]
fn without_a_default_cluster_unknown_indexes_have_none() {
    let config = ProxyConfig::parse("proxy_for 1 10.0.0.1:1;").unwrap();
    assert!(config.cluster(2).is_none());
}

#[test]
fn oversized_files_are_refused() {
    let text = "#".repeat(MAX_FILE_LEN + 1);
    assert!(ProxyConfig::parse(&text).is_err());
}
