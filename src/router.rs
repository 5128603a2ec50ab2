//! The one place that decides which API a request belongs to. Precedence (DESIGN.md):
//! Flash Cache `/v1/cache/…`, IronCache `/1/…` and `/version`, the service routes
//! (`/healthz`, `/metrics`, `/openapi.json`, `/admin/…`, `/`), then Akka Cache.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::http::{with_body, Resp, TEXT};
use crate::server::AppState;
use crate::{admin, akka, flash, iron};

/// Names that the service and the other APIs own at the first path segment; Akka refuses
/// them as cacheNames so that `/{cacheName}/{key}` can never shadow or be shadowed.
pub const RESERVED_FIRST_SEGMENTS: &[&str] = &[
    "v1",
    "1",
    "version",
    "healthz",
    "metrics",
    "openapi.json",
    "admin",
    "cacheName",
    "batch",
    "get",
    "set",
    "list",
];

/// Routes one request and logs it at debug level.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Resp {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = route(&state, req, &path).await;
    tracing::debug!(%method, path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

async fn route(state: &Arc<AppState>, req: Request<Incoming>, path: &str) -> Resp {
    let mut raw = path.strip_prefix('/').unwrap_or(path).split('/');
    let first = raw.next().unwrap_or("");
    let second = raw.next();
    match (first, second) {
        ("v1", Some("cache")) => flash::handle(state, req).await,
        ("1", _) | ("version", None) => iron::handle(state, req).await,
        ("healthz", None) => service(&req, StatusCode::OK, "ok\n"),
        ("metrics", None) | ("openapi.json", None) => service(
            &req,
            StatusCode::NOT_FOUND,
            "not available in this version\n",
        ),
        ("admin", _) => admin::handle(state, req).await,
        ("", None) => service(
            &req,
            StatusCode::OK,
            concat!("ttlcask ", env!("CARGO_PKG_VERSION"), "\n"),
        ),
        _ => akka::handle(state, req).await,
    }
}

fn service(req: &Request<Incoming>, status: StatusCode, body: &'static str) -> Resp {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return with_body(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
    }
    with_body(status, TEXT, body)
}
