//! MTProto over HTTP: Telegram's HTTP transport, which the official proxy serves on its client
//! ports in middle-proxy mode.
//!
//! A client sends `POST /api HTTP/1.1` whose body is one MTProto message, and the body of the
//! answer is the reply. There is no proxy secret and no obfuscation: the message itself is
//! encrypted (or is one of the unencrypted key-exchange calls). What the official proxy does
//! (TelegramMessenger/MTProxy `mtproto/mtproto-proxy.c`, `hts_execute`, `process_http_query`,
//! `http_send_message`) and this module follows:
//!
//! - only `POST` with a body and `OPTIONS` without one are served, others get 501 and the
//!   connection closes; a body of [`MAX_BODY`] bytes or more gets 413; a request target longer
//!   than [`MAX_TARGET`] gets 414; a path (before `?`) not starting with `/api`, or a body that
//!   is not a whole number of 32-bit words, gets 404;
//! - `/apiw…` adds CORS headers to the answer (for web clients); `OPTIONS` is answered
//!   `200` with an empty body;
//! - the `Origin`, `Referer` and `User-Agent` headers (at most [`MAX_INFO_VALUE`] bytes each)
//!   travel to the middle proxy in TL_HTTP_QUERY_INFO;
//! - an answer that is a transport error (a lone negative code such as −429) becomes that
//!   HTTP status, and the connection closes;
//! - the answer is `200 OK`, `application/octet-stream`, `no-store`, with `Content-length`
//!   last (clients such as Telethon read the body right after that line), and keeps the
//!   connection open when the request asked for it (HTTP/1.1 by default, HTTP/1.0 with
//!   `Connection: keep-alive`).
//!
//! [`parse`] is incremental like the other parsers of this crate: `Ok(None)` until the head
//! and the whole body are in the buffer.

use crate::http1::{self, Limits, RequestHead};

/// Largest body, exclusive (the official `MAX_POST_SIZE`).
pub const MAX_BODY: usize = 262_144 * 4 - 4096;

/// Longest request target (the official limit on the URI).
pub const MAX_TARGET: usize = 14;

/// Longest `Origin`, `Referer` or `User-Agent` value passed on; longer ones are cut.
pub const MAX_INFO_VALUE: usize = 1023;

/// The bytes a request of this transport starts with.
const STARTS: [&[u8]; 2] = [b"POST /api", b"OPTIONS /api"];

/// Whether `buf` is the start of a request for this transport (`POST /api…` or
/// `OPTIONS /api…`): `None` while too few bytes arrived to tell.
pub fn is_api_request(buf: &[u8]) -> Option<bool> {
    let mut undecided = false;
    for start in STARTS {
        let n = buf.len().min(start.len());
        if buf[..n] == start[..n] {
            if n == start.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    if undecided { None } else { Some(false) }
}

/// The method of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `POST`: one MTProto message.
    Post,
    /// `OPTIONS`: a CORS preflight.
    Options,
}

/// One request, head and body complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// POST or OPTIONS.
    pub method: Method,
    /// The path was `/apiw…`: answer with CORS headers.
    pub cors: bool,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// `Origin`, cut to [`MAX_INFO_VALUE`].
    pub origin: Vec<u8>,
    /// `Referer`, cut to [`MAX_INFO_VALUE`].
    pub referer: Vec<u8>,
    /// `User-Agent`, cut to [`MAX_INFO_VALUE`].
    pub user_agent: Vec<u8>,
    /// The MTProto message (empty for OPTIONS).
    pub body: &'a [u8],
    /// Bytes of `buf` the request took, head and body.
    pub consumed: usize,
}

/// Why a request is refused, with the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The head is not HTTP/1.x or too large.
    #[error("bad request head: {0}")]
    Head(#[from] http1::Error),
    /// Neither `POST` with a body nor `OPTIONS` without one.
    #[error("method or body not served")]
    NotImplemented,
    /// The request target is longer than [`MAX_TARGET`].
    #[error("request target too long")]
    TargetTooLong,
    /// Not `/api…`, or a body that is not a whole number of words.
    #[error("not an MTProto query")]
    NotFound,
    /// The body is [`MAX_BODY`] bytes or more.
    #[error("body too large")]
    BodyTooLarge,
    /// `Content-Length` is not a number, or given twice with different values.
    #[error("bad Content-Length")]
    BadLength,
}

impl QueryError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Head(e) => e.as_status(),
            Self::NotImplemented => 501,
            Self::TargetTooLong => 414,
            Self::NotFound => 404,
            Self::BodyTooLarge => 413,
            Self::BadLength => 400,
        }
    }
}

/// Parses one request at the start of `buf`; `Ok(None)` until its head and body are there.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<Query<'a>>, QueryError> {
    let Some((head, head_len)) = RequestHead::parse(buf, limits)? else {
        return Ok(None);
    };
    let length = content_length(&head)?;
    let chunked = head.headers.get("transfer-encoding").is_some();
    let method = match (head.method.as_str(), length) {
        ("POST", Some(n)) if n > 0 && !chunked => Method::Post,
        ("OPTIONS", None | Some(0)) if !chunked => Method::Options,
        _ => return Err(QueryError::NotImplemented),
    };
    let length = length.unwrap_or(0);
    if length >= MAX_BODY {
        return Err(QueryError::BodyTooLarge);
    }
    if head.target.len() > MAX_TARGET {
        return Err(QueryError::TargetTooLong);
    }
    let path = head.target.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/api") else {
        return Err(QueryError::NotFound);
    };
    if !length.is_multiple_of(4) {
        return Err(QueryError::NotFound);
    }
    let Some(body) = buf.get(head_len..head_len + length) else {
        return Ok(None);
    };
    let info = |name: &str| {
        let value = head.headers.get(name).unwrap_or_default();
        value[..value.len().min(MAX_INFO_VALUE)].to_vec()
    };
    Ok(Some(Query {
        method,
        cors: rest.starts_with('w'),
        keep_alive: keep_alive(&head),
        origin: info("origin"),
        referer: info("referer"),
        user_agent: info("user-agent"),
        body,
        consumed: head_len + length,
    }))
}

fn content_length(head: &RequestHead) -> Result<Option<usize>, QueryError> {
    let mut length = None;
    for value in head.headers.get_all("content-length") {
        let n = std::str::from_utf8(value)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<usize>().ok())
            .ok_or(QueryError::BadLength)?;
        if length.is_some_and(|l| l != n) {
            return Err(QueryError::BadLength);
        }
        length = Some(n);
    }
    Ok(length)
}

fn keep_alive(head: &RequestHead) -> bool {
    let has = |token: &str| {
        head.headers.get_all("connection").any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if head.version == 0 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

const CORS: &str = "Access-Control-Allow-Origin: *\r\n\
    Access-Control-Allow-Methods: POST, OPTIONS\r\n\
    Access-Control-Allow-Headers: origin, content-type\r\n\
    Access-Control-Max-Age: 1728000\r\n";

fn connection(keep_alive: bool) -> &'static str {
    if keep_alive { "keep-alive" } else { "close" }
}

/// Appends the head of the answer to a query whose reply is `body_len` bytes; the reply
/// follows it.
pub fn write_answer_head(body_len: usize, keep_alive: bool, cors: bool, out: &mut Vec<u8>) {
    let text = format!(
        "HTTP/1.1 200 OK\r\nConnection: {}\r\nContent-type: application/octet-stream\r\n\
         Pragma: no-cache\r\nCache-control: no-store\r\n{}Content-length: {body_len}\r\n\r\n",
        connection(keep_alive),
        if cors { CORS } else { "" },
    );
    out.extend_from_slice(text.as_bytes());
}

/// Appends the answer to an `OPTIONS` query.
pub fn write_options_answer(keep_alive: bool, cors: bool, out: &mut Vec<u8>) {
    let text = format!(
        "HTTP/1.1 200 OK\r\nConnection: {}\r\nContent-type: text/plain\r\nPragma: no-cache\r\n\
         Cache-control: no-store\r\n{}Content-length: 0\r\n\r\n",
        connection(keep_alive),
        if cors { CORS } else { "" },
    );
    out.extend_from_slice(text.as_bytes());
}

/// The HTTP status for an answer that is a transport error: MTProto answers an error with
/// a lone negative 32-bit code (−404, −429…), which the official proxy turns into that status
/// (it sees the middle proxy's flag 0x10; no MTProto message is 4 bytes long, so the length
/// says the same).
pub fn transport_error(answer: &[u8]) -> Option<u16> {
    let code: [u8; 4] = answer.try_into().ok()?;
    let status = i32::from_le_bytes(code).checked_neg()?;
    u16::try_from(status)
        .ok()
        .filter(|s| (400..600).contains(s))
}

/// Appends an error answer with `status`; the connection closes after it.
pub fn write_error(status: u16, out: &mut Vec<u8>) {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-type: text/plain\r\n\
         Content-length: 0\r\n\r\n"
    );
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
