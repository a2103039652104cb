//! Header rules of a forward proxy: the hop-by-hop scrub (RFC 9110 §7.6.1), request-smuggling
//! defences (RFC 9112 §6), and `Via`.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Version};

/// Headers that concern one hop only, beyond those `Connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Comma-separated tokens of every value of `name`, lowercased.
pub fn tokens(headers: &HeaderMap, name: impl header::AsHeaderName + Clone) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` and `Upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && tokens(headers, header::CONNECTION)
            .iter()
            .any(|t| t == "upgrade")
}

/// Removes hop-by-hop headers: those named in `Connection` (and `Proxy-Connection`), and the
/// fixed list. With `keep_upgrade`, `Upgrade` stays and `Connection: upgrade` is set again.
pub fn scrub(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut named = tokens(headers, header::CONNECTION);
    named.extend(tokens(headers, "proxy-connection"));
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        if keep_upgrade && name == "upgrade" {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Why a request's framing is refused (each answered with 400).
pub fn check_framing<B>(request: &Request<B>) -> Result<(), &'static str> {
    let headers = request.headers();
    let te = tokens(headers, header::TRANSFER_ENCODING);
    let has_te = headers.contains_key(header::TRANSFER_ENCODING);
    if has_te && headers.contains_key(header::CONTENT_LENGTH) {
        return Err("content_length_with_transfer_encoding");
    }
    if has_te && request.version() == Version::HTTP_10 {
        return Err("transfer_encoding_on_http10");
    }
    if has_te && te != ["chunked"] {
        return Err("unsupported_transfer_coding");
    }
    let lengths: Vec<&[u8]> = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let valid = lengths
        .iter()
        .all(|v| !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit));
    if !valid || lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err("bad_content_length");
    }
    Ok(())
}

/// Appends this proxy to `Via`.
pub fn add_via(headers: &mut HeaderMap, version: Version) {
    let token = match version {
        Version::HTTP_10 => "1.0 mtgate",
        _ => "1.1 mtgate",
    };
    headers.append(header::VIA, HeaderValue::from_static(token));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().version(version).uri("http://x/");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn scrubs_every_hop_by_hop_header() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-authenticate", "Basic"),
            ("x-kept", "yes"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        scrub(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn keeps_upgrade_when_asked() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade, keep-alive".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(wants_upgrade(&h));
        scrub(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn smuggling_patterns() {
        let v11 = Version::HTTP_11;
        assert!(check_framing(&request(v11, &[("content-length", "5")])).is_ok());
        assert!(check_framing(&request(v11, &[("transfer-encoding", "chunked")])).is_ok());
        let bad = [
            request(
                v11,
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
            ),
            request(Version::HTTP_10, &[("transfer-encoding", "chunked")]),
            request(v11, &[("transfer-encoding", "gzip, chunked")]),
            request(
                v11,
                &[
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
            ),
            request(v11, &[("transfer-encoding", "identity")]),
            request(v11, &[("content-length", "5"), ("content-length", "6")]),
            request(v11, &[("content-length", "-1")]),
        ];
        for r in bad {
            assert!(check_framing(&r).is_err(), "{:?}", r.headers());
        }
    }
}
