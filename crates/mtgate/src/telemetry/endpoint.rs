//! The HTTP endpoint for `/metrics` (Prometheus text format) and `/stats` (plain text; the
//! server's, the agent has none). It is unauthenticated, so it listens on loopback unless
//! configured otherwise.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::stats::StatsPage;

/// Scrapers served at once; more wait in the accept queue.
const MAX_CLIENTS: usize = 32;

/// Serves the endpoint until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    page: Option<StatsPage>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some((stream, _)) = crate::listener::accept_until(&listener, &stop, "metrics").await
        else {
            return;
        };
        let registry = registry.clone();
        let page = page.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let response = respond(&request, &registry, &page);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

fn respond(
    request: &Request<Incoming>,
    registry: &Registry,
    page: &Option<StatsPage>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let mut body = String::with_capacity(16 * 1024);
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "encoding failed\n".into(),
                ),
            }
        }
        "/stats" => match page {
            Some(page) => text(StatusCode::OK, "text/plain; charset=utf-8", page.render()),
            None => not_found(),
        },
        "/" if page.is_some() => text(
            StatusCode::OK,
            "text/plain",
            "mtgate: see /metrics and /stats\n".into(),
        ),
        "/" => text(
            StatusCode::OK,
            "text/plain",
            "mtgate: see /metrics\n".into(),
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
