//! The one place that decides which API a request belongs to. Precedence (DESIGN.md):
//! Flash Cache `/v1/cache/…`, IronCache `/1/…` and `/version`, the service routes
//! (`/healthz`, `/metrics`, `/openapi.json`, `/admin/…`, `/`), then Akka Cache.
//!
//! Every request is counted in [`crate::metrics`] and logged once at debug level with its
//! request id (the client's `X-Request-Id` if it sent one, echoed back; else a generated
//! one); a 5xx answer is also logged at warn with the same id.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ALLOW, CACHE_CONTROL};
use hyper::{Method, Request, StatusCode};

use crate::config::MetricsAccess;
use crate::faults::{self, StorageState};
use crate::http::{blocking, with_body, Resp, JSON, TEXT};
use crate::server::AppState;
use crate::{admin, akka, flash, iron, metrics, status};

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

/// The OpenAPI 3 document of the three dialects and the service routes.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` when it is short printable ASCII (it is echoed back).
fn given_request_id(req: &Request<Incoming>) -> Option<HeaderValue> {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 128 && v.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
}

/// A generated request id: a per-process random prefix and a counter (unique, and made only
/// when a log line needs it).
fn generated_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| crate::http::random_hex(4));
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The client's address, put in the request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Routes one request, counts it and logs it. Without a [`PeerAddr`] extension the client
/// counts as remote.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Resp {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
    serve(state, req, peer).await
}

/// [`handle`] for a request from `peer`, as the accept loop calls it (an extension would
/// allocate a map per request).
pub async fn serve(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // A `Uri` clone shares its bytes: the path outlives the request without a copy.
    let uri = req.uri().clone();
    let path = uri.path();
    let given_id = given_request_id(&req);
    let route_index = metrics::classify(path);
    let mut resp = route(&state, req, path, peer).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    state.metrics.record(route_index, &method, status, elapsed);
    if status >= 500 || tracing::enabled!(tracing::Level::DEBUG) {
        let id = match &given_id {
            Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            None => generated_request_id(),
        };
        let (api, route_label) = metrics::ROUTES[route_index];
        tracing::debug!(request_id = %id, %peer, %method, path, api, status, elapsed_us = elapsed.as_micros() as u64, "request");
        if status >= 500 {
            tracing::warn!(request_id = %id, %method, route = route_label, api, status, "request failed with a server error");
        }
    }
    if status == 405 && !resp.headers().contains_key(ALLOW) {
        // RFC 9110: a 405 lists what the resource does accept.
        if let Some(allow) = metrics::allowed_methods(route_index) {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
    }
    if let Some(id) = given_id {
        resp.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    resp
}

async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    path: &str,
    peer: SocketAddr,
) -> Resp {
    let mut raw = path.strip_prefix('/').unwrap_or(path).split('/');
    let first = raw.next().unwrap_or("");
    let second = raw.next();
    match (first, second) {
        ("v1", Some("cache")) => flash::handle(state, req).await,
        ("1", _) | ("version", None) => iron::handle(state, req).await,
        ("healthz", None) => match get_only(&req) {
            Ok(()) => no_store(faults::healthz(&state.store.health())),
            Err(r) => r,
        },
        ("openapi.json", None) => service(&req, StatusCode::OK, JSON, OPENAPI_JSON),
        ("metrics", None) => {
            if let Err(r) = get_only(&req).and_then(|()| operator_access(state, &req, peer)) {
                return r;
            }
            let metrics = state.metrics.clone();
            let damaged_reads = state.damaged_reads.clone();
            let text = blocking(&state.store, move |s| {
                let mut text = metrics.render(&s.stats());
                StorageState::of(s, damaged_reads.count()).write_prometheus(&mut text);
                text
            });
            match text.await {
                Ok(text) => no_store(with_body(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                )),
                Err(e) => with_body(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e),
            }
        }
        ("admin", _) => admin::handle(state, req).await,
        ("", None) => {
            if let Err(r) = get_only(&req).and_then(|()| operator_access(state, &req, peer)) {
                return r;
            }
            let metrics = state.metrics.clone();
            let damaged_reads = state.damaged_reads.clone();
            let page = blocking(&state.store, move |s| {
                let (hits, misses) = metrics.hit_miss();
                status::render(&status::Snapshot {
                    stats: s.stats(),
                    storage: StorageState::of(s, damaged_reads.count()),
                    namespaces: s.namespaces(b"T"),
                    uptime: metrics.uptime(),
                    hits,
                    misses,
                    open_connections: metrics.open_connections(),
                    now_ms: s.now_ms(),
                })
            })
            .await;
            match page {
                Ok(html) => no_store(with_body(StatusCode::OK, "text/html; charset=utf-8", html)),
                Err(e) => with_body(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e),
            }
        }
        _ => akka::handle(state, req).await,
    }
}

fn no_store(mut resp: Resp) -> Resp {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn get_only(req: &Request<Incoming>) -> Result<(), Resp> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(with_body(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n",
        ));
    }
    Ok(())
}

/// `/metrics` and the status page: loopback clients or the admin token (`local`, the
/// default), the admin token only (`token`), or everyone (`public`).
fn operator_access(
    state: &AppState,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<(), Resp> {
    let has_token = state.admin_token.as_deref().is_some_and(|expected| {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        crate::auth::constant_time_eq(given.trim().as_bytes(), expected.as_bytes())
    });
    let allowed = match state.config.metrics_access {
        MetricsAccess::Public => true,
        MetricsAccess::Local => has_token || peer.ip().is_loopback(),
        MetricsAccess::Token => has_token,
    };
    if allowed {
        Ok(())
    } else {
        Err(with_body(
            StatusCode::UNAUTHORIZED,
            TEXT,
            "this page needs the admin token (Authorization: Bearer <data-dir>/admin.token) or a loopback client; see metrics_access\n",
        ))
    }
}

fn service(
    req: &Request<Incoming>,
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Resp {
    if let Err(r) = get_only(req) {
        return r;
    }
    with_body(status, content_type, body)
}
