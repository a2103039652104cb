//! The admin API's routes. Bodies and answers are JSON.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /pools` | every pool with its servers' live state |
//! | `GET /pools/{pool}` | one pool |
//! | `GET /pools/{pool}/failures` | its recent failed attempts and health checks |
//! | `POST /pools/{pool}/servers` | adds a server: `{"url": "tcp://…", "name": …, "weight": …, "backup": …, "max_connections": …}` |
//! | `DELETE /pools/{pool}/servers/{name}` | drains the server, then removes it |
//! | `PUT /pools/{pool}/servers/{name}/state` | `{"state": "ready" \| "drain" \| "disabled"}` |
//! | `PUT /pools/{pool}/servers/{name}/weight` | `{"weight": 3}` |
//! | `GET /gateways` | every tunnel gateway with its agents, groups and counters |
//! | `GET /gateways/{name}` | one gateway |
//!
//! Server names go in paths percent-encoded where needed (`socks5:%2F%2F127.0.0.1:1080`).

use std::time::{Duration, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode, header};
use mtgate_client::pool::{MemberState, MemberStats};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::pool::PoolServer;
use crate::config::raw_pool::RawPoolServer;
use crate::outbound::PoolEntry;
use crate::server::Shared;

/// Dispatches one request.
pub fn route(method: &Method, path: &str, body: &[u8], shared: &Shared) -> Response<Full<Bytes>> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["pools"]) => {
            let pools: Vec<Value> = shared.pools.all().iter().map(|p| pool_json(p)).collect();
            ok(json!({ "pools": pools }))
        }
        (&Method::GET, ["websockets"]) => ok(shared.websocket.to_json()),
        (&Method::GET, ["gateways"]) => {
            let gateways: Vec<Value> = shared.gateways.all().map(|g| g.to_json()).collect();
            ok(json!({ "gateways": gateways }))
        }
        (&Method::GET, ["gateways", name]) => match shared.gateways.get(name) {
            Some(registry) => ok(registry.to_json()),
            None => error(StatusCode::NOT_FOUND, "no such gateway"),
        },
        (&Method::GET, ["pools", pool]) => with_pool(shared, pool, |p| ok(pool_json(p))),
        (&Method::GET, ["pools", pool, "failures"]) => {
            with_pool(shared, pool, |p| ok(failures_json(p)))
        }
        (&Method::POST, ["pools", pool, "servers"]) => {
            with_pool(shared, pool, |p| add_server(p, body))
        }
        (&Method::DELETE, ["pools", pool, "servers", name]) => with_pool(shared, pool, |p| {
            if p.pool.remove_after_drain(name) {
                tracing::info!(
                    pool = p.config.name,
                    server = name,
                    "admin: server draining for removal"
                );
                ok(json!({ "removed": name, "draining": true }))
            } else {
                error(StatusCode::NOT_FOUND, "no such server")
            }
        }),
        (&Method::PUT, ["pools", pool, "servers", name, "state"]) => {
            with_pool(shared, pool, |p| set_state(p, name, body))
        }
        (&Method::PUT, ["pools", pool, "servers", name, "weight"]) => {
            with_pool(shared, pool, |p| set_weight(p, name, body))
        }
        (_, ["pools", ..]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "no such route for this method",
        ),
        _ => error(StatusCode::NOT_FOUND, "no such route; see GET /pools"),
    }
}

fn with_pool(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&PoolEntry) -> Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    match shared.pools.get(name) {
        Some(entry) => f(&entry),
        None => error(StatusCode::NOT_FOUND, "no such pool"),
    }
}

fn add_server(entry: &PoolEntry, body: &[u8]) -> Response<Full<Bytes>> {
    let raw: RawPoolServer = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad server: {e}")),
    };
    let server = match PoolServer::parse("server", &raw, entry.config.tls.as_ref()) {
        Ok(server) => server,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if entry.pool.member_names().contains(&server.name) {
        return error(StatusCode::CONFLICT, "a server with that name exists");
    }
    tracing::info!(
        pool = entry.config.name,
        server = server.name,
        "admin: server added"
    );
    entry.pool.add(server.upstream());
    let mut response = ok(json!({ "added": server.name }));
    *response.status_mut() = StatusCode::CREATED;
    response
}

fn set_state(entry: &PoolEntry, name: &str, body: &[u8]) -> Response<Full<Bytes>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        state: String,
    }
    let Ok(Body { state }) = serde_json::from_slice(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"state\": \"ready\" | \"drain\" | \"disabled\"}",
        );
    };
    let pool = &entry.pool;
    let found = match state.as_str() {
        "ready" => pool.set_enabled(name, true) && pool.set_draining(name, false),
        "drain" => pool.set_enabled(name, true) && pool.set_draining(name, true),
        "disabled" => pool.set_enabled(name, false),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "state is \"ready\", \"drain\" or \"disabled\"",
            );
        }
    };
    if !found {
        return error(StatusCode::NOT_FOUND, "no such server");
    }
    tracing::info!(
        pool = entry.config.name,
        server = name,
        state,
        "admin: server state set"
    );
    ok(json!({ "server": name, "state": state }))
}

fn set_weight(entry: &PoolEntry, name: &str, body: &[u8]) -> Response<Full<Bytes>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        weight: u32,
    }
    let weight = match serde_json::from_slice::<Body>(body) {
        Ok(Body { weight }) if (1..=1_000_000).contains(&weight) => weight,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected {\"weight\": 1..=1000000}",
            );
        }
    };
    if !entry.pool.set_weight(name, weight) {
        return error(StatusCode::NOT_FOUND, "no such server");
    }
    tracing::info!(
        pool = entry.config.name,
        server = name,
        weight,
        "admin: weight set"
    );
    ok(json!({ "server": name, "weight": weight }))
}

/// A pool as JSON.
pub fn pool_json(entry: &PoolEntry) -> Value {
    let (_, failures) = entry.pool.recent_failures();
    let servers: Vec<Value> = entry.pool.stats().iter().map(server_json).collect();
    json!({
        "name": entry.config.name,
        "strategy": entry.config.strategy.name(),
        "health_checks": entry.config.health.is_some(),
        "failures_total": failures,
        "servers": servers,
    })
}

fn server_json(s: &MemberStats) -> Value {
    let ejected_for = match s.state {
        MemberState::Ejected { remaining } => Some(millis(remaining)),
        _ => None,
    };
    json!({
        "name": s.name,
        "state": s.state.name(),
        "ejected_for_ms": ejected_for,
        "weight": s.weight,
        "effective_weight": s.effective_weight,
        "backup": s.backup,
        "max_connections": s.max_connections,
        "in_flight": s.in_flight,
        "successes": s.successes,
        "failures": s.failures,
        "consecutive_failures": s.consecutive_failures,
        "times_ejected": s.times_ejected,
        "ewma_latency_ms": s.ewma_latency.map(|d| d.as_secs_f64() * 1000.0),
        "last_error": s.last_error,
    })
}

fn failures_json(entry: &PoolEntry) -> Value {
    let (records, total) = entry.pool.recent_failures();
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "at_unix_ms": r.at.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0),
                "server": r.member,
                "stage": r.stage,
                "kind": r.kind,
                "attempt": r.attempt,
            })
        })
        .collect();
    json!({ "pool": entry.config.name, "total": total, "recent": records })
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn ok(value: Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, &value)
}

/// An error answer: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, &json!({ "error": message }))
}

fn respond(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Decodes `%XX` escapes; invalid escapes stay as written.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("127.0.0.1%3A8080"), "127.0.0.1:8080");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
