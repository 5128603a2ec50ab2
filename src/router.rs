//! Serves a request by its row of the route table ([`crate::routes`], which holds every
//! route and their precedence): the API or service handler that row names, then metrics,
//! `Allow` on a 405, and the log line.
//!
//! Every request is counted in [`crate::metrics`] and logged once at debug level with its
//! request id (the client's `X-Request-Id` if it sent exactly one, echoed back; else a
//! generated one); a 5xx answer is also logged at warn with the same id.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    RETRY_AFTER, TRANSFER_ENCODING,
};
use hyper::{Method, Request, StatusCode, Version};

use crate::config::MetricsAccess;
use crate::faults;
use crate::http::{blocking, with_body, Resp, JSON, TEXT};
use crate::routes::{self, Api, Handler};
use crate::server::AppState;
use crate::{admin, akka, flash, iron, metrics, status};

/// The OpenAPI 3 document of the three dialects and the service routes.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` when it sent exactly one and it is short printable ASCII,
/// spaces included (it is echoed back; one with a space was not, though the README promised
/// printable ASCII). Two are taken as none, like an invalid one: neither is echoed and the log
/// gets a generated id. The first was used silently (found from outside, twelfth session);
/// a 400 would refuse a request for a header that only labels it, which a proxy may add to.
fn given_request_id(req: &Request<Incoming>) -> Option<HeaderValue> {
    let mut ids = req.headers().get_all(&REQUEST_ID_HEADER).iter();
    let (Some(id), None) = (ids.next(), ids.next()) else {
        return None;
    };
    let v = id.as_bytes();
    (!v.is_empty() && v.len() <= 128 && v.iter().all(|&b| b == b' ' || b.is_ascii_graphic()))
        .then(|| id.clone())
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
pub async fn serve(state: Arc<AppState>, mut req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    if method == Method::HEAD {
        // Answered as GET (RFC 9110 section 9.3.2); hyper sends the head without the body,
        // as it knows the request's own method.
        *req.method_mut() = Method::GET;
    }
    // A `Uri` clone shares its bytes: the path outlives the request without a copy.
    let uri = req.uri().clone();
    let path = uri.path();
    let given_id = given_request_id(&req);
    let route_index = routes::classify(path);
    let has_body = !hyper::body::Body::is_end_stream(req.body());
    let mut resp = match request_problem(&req) {
        None => match state.fences.admit(&req) {
            Ok(_write) => {
                // Whether a handler read the request's body to its end (`http::read_body`
                // says so): a refusal that left it unread closes the connection, and must
                // say so. A task-local flag: a request extension cost an allocated map per
                // request with a body (800 of a durable POST's 31,000 instructions).
                let (mut resp, read) = if has_body {
                    crate::http::BODY_READ
                        .scope(std::cell::Cell::new(false), async {
                            let resp = route(&state, req, route_index, peer).await;
                            (resp, crate::http::BODY_READ.with(std::cell::Cell::get))
                        })
                        .await
                } else {
                    (route(&state, req, route_index, peer).await, true)
                };
                if !read && (resp.status().is_client_error() || resp.status().is_server_error()) {
                    // Refused before its body was read (found from outside: a keep-alive
                    // client's next request met a closed connection; RFC 9112 section 9.6).
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
            Err(refused) => refused,
        },
        Some((status, reason)) => {
            let mut resp = refuse(&state, &req, routes::get(route_index).api, status, reason);
            if !hyper::body::Body::is_end_stream(req.body()) {
                // The body is left unread: the connection cannot carry another request, and
                // RFC 9112 section 9.6 asks the server to say so.
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    };
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    state.metrics.record(route_index, &method, status, elapsed);
    // 501 (a transfer coding), 503 (the body budget, a passing state) and 507 (a full disk,
    // shown by `/healthz` and the gauges) are the client's or the disk's state, not a
    // failure of the server: logged at warn, every write refused on a full disk fed the log
    // on that disk (found from outside).
    let failed = status >= 500 && !matches!(status, 501 | 503 | 507);
    if failed || tracing::enabled!(tracing::Level::DEBUG) {
        let id = match &given_id {
            Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            None => generated_request_id(),
        };
        let (api, route_label) = metrics::ROUTES[route_index];
        tracing::debug!(request_id = %id, %peer, %method, path, api, status, elapsed_us = elapsed.as_micros() as u64, "request");
        if failed {
            tracing::warn!(request_id = %id, %method, route = route_label, api, status, "request failed with a server error");
        }
    }
    let api_route = matches!(metrics::ROUTES[route_index].0, "flash" | "iron" | "akka");
    if status == 503 && api_route && !resp.headers().contains_key(RETRY_AFTER) {
        // An API's 503 is a passing state (the body budget is busy): say when to come back.
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == 405 && !resp.headers().contains_key(ALLOW) {
        // RFC 9110: a 405 lists what the resource does accept.
        let allow = routes::get(route_index).allow;
        if !allow.is_empty() {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
    }
    if let Some(id) = given_id {
        resp.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    if method == Method::HEAD && !resp.headers().contains_key(CONTENT_LENGTH) {
        // The GET's length (RFC 9110 section 8.6): hyper gives a HEAD answer the length of a
        // body it knows, but none at all for an empty one, where the GET says 0 (found from
        // outside: HEAD of a missing Flash key).
        if let Some(len) = hyper::body::Body::size_hint(resp.body()).exact() {
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    resp
}

async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    route_index: usize,
    peer: SocketAddr,
) -> Resp {
    let route = routes::get(route_index);
    match (route.api, route.handler) {
        (Api::Flash, _) => flash::handle(state, req, route).await,
        (Api::Iron, _) => iron::handle(state, req, route).await,
        (Api::Akka, _) => akka::handle(state, req, route).await,
        (Api::Admin, _) => admin::handle(state, req).await,
        (Api::Service, _) if !route.allows(req.method()) => {
            with_body(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n")
        }
        (Api::Service, Handler::Healthz) => no_store(faults::healthz(&state.store.health())),
        (Api::Service, Handler::OpenApi) => with_body(StatusCode::OK, JSON, OPENAPI_JSON),
        (Api::Service, Handler::Metrics) => {
            if let Err(r) = operator_access(state, &req, peer) {
                return r;
            }
            let st = state.clone();
            match blocking(&state.store, move |s| metrics::scrape(&st, s)).await {
                Ok(text) => no_store(with_body(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                )),
                Err(e) => with_body(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e),
            }
        }
        (Api::Service, _) => {
            if let Err(r) = operator_access(state, &req, peer) {
                return r;
            }
            let st = state.clone();
            match blocking(&state.store, move |s| status::page(&st, s)).await {
                Ok(html) => no_store(with_body(StatusCode::OK, "text/html; charset=utf-8", html)),
                Err(e) => with_body(StatusCode::INTERNAL_SERVER_ERROR, TEXT, e),
            }
        }
    }
}

/// What makes the request one this server refuses before routing it, and the status.
fn request_problem(req: &Request<Incoming>) -> Option<(StatusCode, &'static str)> {
    let bad = |reason| (StatusCode::BAD_REQUEST, reason);
    host_problem(req)
        .or_else(|| target_problem(req))
        .or_else(|| crate::admin::fence::misrouted(req).then_some(MISROUTED))
        .map(bad)
        .or_else(|| body_problem(req))
}

/// Why a request the cluster's proxy routed by another slot than this node reads is refused.
const MISROUTED: &str = "the cluster proxy routed this request by another slot than its shard key is in (an Akka JWT must spell its claim \"org\" plainly, with no JSON escape; a Flash ClientId must come once), so it would reach a node that does not own its data";

/// What is wrong with how the request's body is described, if anything: a transfer coding
/// other than `chunked` (hyper decodes `chunked` and leaves any other to the application;
/// stored as it came, a gzip-coded body would be kept compressed) is 501, as RFC 9112
/// section 6.1 asks of a coding the server does not understand; `chunked` more than once, and
/// two different `Content-Type` headers, are 400 (RFC 9110 section 8.3 allows one
/// `Content-Type`; which one the client meant is a guess). The same `Content-Type` line
/// twice (a curl script's `-H` repeated; the Akka document's Batch Get example) is taken:
/// it was refused too, which a script that works against other servers does not expect
/// (found from outside).
fn body_problem(req: &Request<Incoming>) -> Option<(StatusCode, &'static str)> {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        // No body (a request with Transfer-Encoding has one to read): no header lookup on
        // the GET path.
        return None;
    }
    if crate::http::agreed_header(req.headers(), &CONTENT_TYPE).is_err() {
        return Some((
            StatusCode::BAD_REQUEST,
            "two different Content-Type headers (RFC 9110 section 8.3)",
        ));
    }
    let mut chunked = 0;
    for coding in req
        .headers()
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
    {
        if !coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Some((
                StatusCode::NOT_IMPLEMENTED,
                "the only transfer coding this server takes is chunked (RFC 9112 section 6.1)",
            ));
        }
        chunked += 1;
    }
    // hyper decodes one layer; a body said to be chunked twice would be stored with the
    // second layer's framing in it (or, sent chunked once, read otherwise than a proxy
    // in front that decodes both reads it).
    (chunked > 1).then_some((
        StatusCode::BAD_REQUEST,
        "chunked more than once (RFC 9112 section 6.1: a sender must not apply chunked twice)",
    ))
}

/// Why the request's `Host` breaks RFC 9112 §3.2, if it does: an HTTP/1.1 request without
/// one (HTTP/1.0 may omit it), more than one, or a value that is not `uri-host [":" port]`.
fn host_problem(req: &Request<Incoming>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() >= Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("more than one Host header (RFC 9112 section 3.2)"),
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            Some("the Host header is not a valid host[:port] (RFC 9112 section 3.2)")
        }
        (Some(_), None) => None,
    }
}

/// Why the request-target is not one this server takes (RFC 9112 section 3.2): the
/// authority form is CONNECT's, the asterisk form OPTIONS's; only the origin form
/// (`/path?query`) and the absolute form (`http://host/path`) name a resource here.
fn target_problem(req: &Request<Incoming>) -> Option<&'static str> {
    let uri = req.uri();
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Some("the request-target must start with / (RFC 9112 section 3.2)");
    }
    if uri.path() == "*" && req.method() != Method::OPTIONS {
        return Some("the request-target * is for OPTIONS only (RFC 9112 section 3.2.4)");
    }
    None
}

/// `uri-host [":" port]` of RFC 3986: a bracketed IPv6 (or IPvFuture) literal, or a reg-name
/// (which covers IPv4 addresses), then optional digits. An empty value is valid (RFC 9112
/// allows it when the target has no authority).
fn valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let (host, rest) = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let (inside, rest) = (&literal[..end], &literal[end + 1..]);
        let ok = match inside.first() {
            Some(b'v' | b'V') => {
                inside.len() > 1
                    && inside[1..]
                        .iter()
                        .all(|&b| unreserved(b) || sub_delim(b) || b == b':')
            }
            _ => std::str::from_utf8(inside).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
        };
        if !ok {
            return false;
        }
        (&[][..], rest)
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        value.split_at(end)
    };
    let reg_name_ok = {
        let mut i = 0;
        let mut ok = true;
        while i < host.len() && ok {
            match host[i] {
                b'%' => {
                    ok = host
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                    i += 3;
                }
                b => {
                    ok = REG_NAME[usize::from(b)];
                    i += 1;
                }
            }
        }
        ok
    };
    let port_ok = match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    reg_name_ok && port_ok
}

/// The bytes a reg-name holds as they are (`unreserved` and `sub-delims`), by value: a
/// table lookup per byte where the two tests took about 20 instructions (a `Host` header's
/// check was 300 of an Akka GET's instructions).
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = unreserved(b as u8) || sub_delim(b as u8);
        b += 1;
    }
    table
};

const fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// A 400 before routing, in the error shape of the API the path belongs to.
fn refuse(
    state: &AppState,
    req: &Request<Incoming>,
    api: Api,
    status: StatusCode,
    reason: &'static str,
) -> Resp {
    match api {
        Api::Flash => flash::refuse(req, status, reason),
        Api::Iron => iron::msg(status, reason),
        Api::Akka => akka::refuse(state, status, reason),
        Api::Admin => admin::error(status, reason),
        Api::Service => with_body(status, TEXT, format!("{reason}\n")),
    }
}

fn no_store(mut resp: Resp) -> Resp {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `/metrics` and the status page: loopback clients or the admin token (`local`, the
/// default), the admin token only (`token`), or everyone (`public`).
fn operator_access(
    state: &AppState,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<(), Resp> {
    // Two Authorization headers are 400 here too, as in the admin API: the first one
    // decided (found from outside).
    let has_token = match state.admin_token.as_deref() {
        Some(expected) => {
            crate::admin::holds_admin_token(req.headers(), expected).map_err(|_| {
                with_body(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    format!("{}\n", crate::admin::SEVERAL_AUTHORIZATIONS),
                )
            })?
        }
        None => false,
    };
    let allowed = match state.config.metrics_access {
        MetricsAccess::Public => true,
        // Canonical: a dual-stack listener (`[::]`) sees 127.0.0.1 as `::ffff:127.0.0.1`,
        // which is not loopback as an IPv6 address (found from outside).
        MetricsAccess::Local => has_token || peer.ip().to_canonical().is_loopback(),
        MetricsAccess::Token => has_token,
    };
    if allowed {
        Ok(())
    } else if state.config.metrics_access == MetricsAccess::Token {
        // Found from outside: the message offered a loopback client, which `token` refuses.
        Err(with_body(
            StatusCode::UNAUTHORIZED,
            TEXT,
            "this page needs the admin token (Authorization: Bearer <data-dir>/admin.token); see metrics_access\n",
        ))
    } else {
        Err(with_body(
            StatusCode::UNAUTHORIZED,
            TEXT,
            "this page needs the admin token (Authorization: Bearer <data-dir>/admin.token) or a loopback client; see metrics_access\n",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn host_values() {
        for ok in [
            "",
            "localhost",
            "localhost:9001",
            "127.0.0.1:9001",
            "[::1]:9001",
            "[::1]",
            "[v1.fe80::a+en1]",
            "cache.example.com",
            "a%41b",
            "host:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "a b",
            "user@host",
            "host:90a",
            "host:1:2",
            "[::1",
            "[nope]:1",
            "[::1]x",
            "a/b",
            "a%4",
            "a%zz",
            "h\u{e9}",
            "\"x\"",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?}");
        }
        assert!(!valid_host(b"a\xffb"));
    }
}
