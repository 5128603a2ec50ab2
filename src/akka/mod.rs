//! Akka Cache: cacheName management, binary and JSON (base64) items, and batches, behind a
//! bearer JWT whose `org` is the tenant. Successes follow the document's Responses sections;
//! errors are 400 with a plain-text reason, 401 for credentials, 507 (plain text) for a write
//! refused on a full disk. Every response carries the
//! configured `Access-Control-Allow-Origin` (default `*`).

mod batch;
mod items;
mod names;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use ttlcask_engine::WriteError;

use crate::auth::AkkaCaller;
use crate::faults;
use crate::http::{self, read_body, with_body, Resp, TEXT};
use crate::namespace;
use crate::routes::{self, Handler, RESERVED_FIRST_SEGMENTS};
use crate::server::AppState;

/// A plain-text error (the Akka runtime's shape).
pub fn bad_request(reason: impl Into<String>) -> Resp {
    with_body(StatusCode::BAD_REQUEST, TEXT, reason.into())
}

/// A body that could not be read, as plain text with its status (503 when the budget is
/// busy: the router adds `Retry-After`; 408 when it stalled; else 400).
pub fn body_error(e: &crate::http::BodyError) -> Resp {
    with_body(e.status(), TEXT, e.to_string())
}

/// 503 with a plain-text reason (the router adds `Retry-After`).
pub fn unavailable(reason: impl Into<String>) -> Resp {
    with_body(StatusCode::SERVICE_UNAVAILABLE, TEXT, reason.into())
}

/// A storage failure.
pub fn storage_error(e: impl std::fmt::Display) -> Resp {
    with_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        TEXT,
        format!("storage error: {e}"),
    )
}

/// A refused write as plain text: 507 on a full disk, 400 over a limit, else 500.
pub fn write_error(e: &WriteError) -> Resp {
    match faults::write_status(e) {
        StatusCode::INTERNAL_SERVER_ERROR => storage_error(e),
        status => with_body(status, TEXT, e.to_string()),
    }
}

/// What a handler needs: the state and the verified caller.
pub struct Ctx<'a> {
    /// Server state.
    pub state: &'a AppState,
    /// The caller.
    pub caller: AkkaCaller,
}

impl Ctx<'_> {
    /// The engine namespace of `cache_name` for this tenant.
    pub fn ns(&self, cache_name: &str) -> Vec<u8> {
        namespace::akka_cache(self.caller.tenant(), cache_name)
    }

    /// Checks a cacheName; `Err` holds the reason.
    pub fn check_cache_name(&self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("cacheName is required".into());
        }
        if name.len() > self.state.config.limits.akka_name_bytes {
            return Err(format!(
                "cacheName is longer than {} bytes",
                self.state.config.limits.akka_name_bytes
            ));
        }
        if RESERVED_FIRST_SEGMENTS.contains(&name) {
            return Err(format!(
                "cacheName {name:?} is reserved by another route; choose another name"
            ));
        }
        Ok(())
    }

    /// Checks a key; `Err` holds the reason.
    pub fn check_key(&self, key: &str) -> Result<(), String> {
        if key.is_empty() {
            return Err("key is required".into());
        }
        if key.len() > self.state.config.limits.akka_name_bytes {
            return Err(format!(
                "key is longer than {} bytes",
                self.state.config.limits.akka_name_bytes
            ));
        }
        Ok(())
    }

    /// The expiry of a write with `ttl_seconds` (≤ 0 or absent: none), as it is stored.
    pub fn expiry(&self, ttl_seconds: Option<i64>) -> Option<u64> {
        let ttl = u64::try_from(ttl_seconds?).ok().filter(|&t| t > 0)?;
        let at = self
            .state
            .store
            .now_ms()
            .saturating_add(ttl.saturating_mul(1000));
        crate::time::stored_expiry(at)
    }

    /// `Err(reason)` when the tenant's quota refuses writes (only when quotas are on).
    pub async fn check_quota(&self) -> Result<(), String> {
        let akka = &self.state.config.akka;
        if !akka.quota_enabled {
            return Ok(());
        }
        let level = self.caller.service_level().unwrap_or("free");
        let limit = match level {
            "free" => Some(akka.free_max_bytes),
            "gatling" => akka.gatling_max_bytes,
            other => {
                return Err(format!(
                    "Invalid Service Level ({other}) found in the JWT Token"
                ))
            }
        };
        let Some(limit) = limit else { return Ok(()) };
        let prefix = namespace::akka_prefix(self.caller.tenant());
        let used = http::blocking(&self.state.store, move |s| {
            s.namespaces(&prefix)
                .iter()
                .map(|n| n.live_bytes)
                .sum::<u64>()
        })
        .await?;
        if used > limit {
            return Err(
                "You've exceeded maximum allow bytes cached for your account level.".into(),
            );
        }
        Ok(())
    }

    /// Reads and parses a JSON body.
    pub async fn json_body<T: DeserializeOwned>(&self, req: Request<Incoming>) -> Result<T, Resp> {
        let limit = self.state.config.limits.akka_json_body_bytes;
        let budget = Some((&self.state.body_budget, self.caller.tenant()));
        let body = match read_body(req, limit, budget).await {
            Ok(b) => b,
            Err(e) => return Err(body_error(&e)),
        };
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
    }
}

enum Route<'a> {
    NameCreate,
    NameUpdate,
    NameList,
    NameGet(&'a str),
    NameDelete(&'a str),
    NameKeys(&'a str),
    NameFlush(&'a str),
    Set,
    JsonGet(&'a str, &'a str),
    BatchCreate,
    BatchGet,
    BatchDelete,
    Get(&'a str, &'a str),
    Post(&'a str, &'a str, Option<&'a str>),
    Delete(&'a str, &'a str),
}

/// The call that `method` on the table's route `table` makes with the (percent-decoded)
/// segments `s`. `Err(true)` for a method the route does not take, `Err(false)` for no route.
fn route<'a>(table: &routes::Route, method: &Method, s: &[&'a str]) -> Result<Route<'a>, bool> {
    let handler = table.handler;
    if handler == Handler::NotFound {
        return Err(false);
    }
    if !table.allows(method) {
        return Err(true);
    }
    let at = |i: usize| s.get(i).copied().unwrap_or("");
    // A percent-encoded reserved name (`/%76%31/k`) is not a cacheName either.
    if matches!(handler, Handler::AkkaItem | Handler::AkkaItemTtl)
        && s.first()
            .is_some_and(|c| RESERVED_FIRST_SEGMENTS.contains(c))
    {
        return Err(false);
    }
    let m = method.clone();
    Ok(match (handler, m) {
        (Handler::AkkaNames, Method::POST) => Route::NameCreate,
        (Handler::AkkaNames, _) => Route::NameUpdate,
        (Handler::AkkaNameList, _) => Route::NameList,
        (Handler::AkkaName, Method::GET) => Route::NameGet(at(1)),
        (Handler::AkkaName, _) => Route::NameDelete(at(1)),
        (Handler::AkkaNameKeys, _) => Route::NameKeys(at(1)),
        (Handler::AkkaNameFlush, _) => Route::NameFlush(at(1)),
        (Handler::AkkaSet, _) => Route::Set,
        (Handler::AkkaJsonGet, _) => Route::JsonGet(at(1), at(2)),
        (Handler::AkkaBatch, Method::POST) => Route::BatchCreate,
        (Handler::AkkaBatch, _) => Route::BatchDelete,
        (Handler::AkkaBatchGet, _) => Route::BatchGet,
        (Handler::AkkaItem, Method::POST) => Route::Post(at(0), at(1), None),
        (Handler::AkkaItem, Method::DELETE) => Route::Delete(at(0), at(1)),
        (Handler::AkkaItem, _) => Route::Get(at(0), at(1)),
        (Handler::AkkaItemTtl, _) => Route::Post(at(0), at(1), Some(at(2))),
        _ => return Err(false),
    })
}

/// Handles every path no other API or service route claimed.
pub async fn handle(state: &AppState, req: Request<Incoming>, table: &routes::Route) -> Resp {
    let resp = dispatch(state, req, table).await;
    with_cors(state, resp)
}

/// A plain-text error refused before dispatch (by the router), with the CORS header.
pub fn refuse(state: &AppState, status: StatusCode, reason: &'static str) -> Resp {
    with_cors(state, with_body(status, TEXT, reason))
}

fn with_cors(state: &AppState, mut resp: Resp) -> Resp {
    let origin = &state.config.akka.cors_allow_origin;
    let value = match origin.as_str() {
        "" => None,
        "*" => Some(HeaderValue::from_static("*")),
        other => HeaderValue::from_str(other).ok(),
    };
    if let Some(v) = value {
        resp.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp
}

async fn dispatch(state: &AppState, req: Request<Incoming>, table: &routes::Route) -> Resp {
    if req.method() == Method::OPTIONS {
        let mut resp = http::empty(StatusCode::NO_CONTENT);
        let h = resp.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("Authorization, Content-Type"),
        );
        return resp;
    }
    // The segments borrow the path of a `Uri` clone (its bytes are shared, not copied), as
    // the handlers that read a body take the request.
    let uri = req.uri().clone();
    let mut decoded = Vec::new();
    let Some(segs) = http::split_path(uri.path(), &mut decoded) else {
        return bad_request(
            "path segments must be percent-encoded UTF-8 (`%` only before two hex digits)",
        );
    };
    let route = match route(table, req.method(), &segs) {
        Ok(r) => r,
        Err(true) => return with_body(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed"),
        Err(false) => return with_body(StatusCode::NOT_FOUND, TEXT, "not found"),
    };
    let Ok(authorization) = http::single_header(req.headers(), &hyper::header::AUTHORIZATION)
    else {
        return bad_request("send one Authorization header, not several");
    };
    let token = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(http::bearer_token);
    let Some(token) = token else {
        return with_body(StatusCode::UNAUTHORIZED, TEXT, "a bearer token is required");
    };
    let caller = match state.auth.akka(token) {
        Ok(c) => c,
        Err(reason) => return with_body(StatusCode::UNAUTHORIZED, TEXT, reason),
    };
    let ctx = Ctx { state, caller };
    match route {
        Route::NameCreate => names::create(&ctx, req).await,
        Route::NameUpdate => names::update(&ctx, req).await,
        Route::NameList => names::list(&ctx).await,
        Route::NameGet(c) => names::get(&ctx, c.to_owned()).await,
        Route::NameDelete(c) => names::delete(&ctx, c.to_owned()).await,
        Route::NameKeys(c) => names::keys(&ctx, c.to_owned()).await,
        Route::NameFlush(c) => names::flush(&ctx, c.to_owned()).await,
        Route::Set => items::set(&ctx, req).await,
        Route::JsonGet(c, k) => items::json_get(&ctx, c.to_owned(), k.to_owned()).await,
        Route::BatchCreate => batch::create(&ctx, req).await,
        Route::BatchGet => batch::get(&ctx, req).await,
        Route::BatchDelete => batch::delete(&ctx, req).await,
        Route::Get(c, k) => items::binary_get(&ctx, c, k).await,
        Route::Post(c, k, ttl) => {
            items::binary_post(
                &ctx,
                c.to_owned(),
                k.to_owned(),
                ttl.map(str::to_owned),
                req,
            )
            .await
        }
        Route::Delete(c, k) => items::delete(&ctx, c.to_owned(), k.to_owned()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_full_disk_is_507_with_a_plain_text_reason() {
        let resp = write_error(&WriteError::DiskFull("no space left on device".into()));
        assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(
            resp.headers()
                .get(hyper::header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            Some(TEXT.as_bytes())
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("disk is full"), "{text}");
        let too_large = write_error(&WriteError::TooLarge {
            what: "value",
            size: 2,
            limit: 1,
        });
        assert_eq!(too_large.status(), StatusCode::BAD_REQUEST);
    }
}
