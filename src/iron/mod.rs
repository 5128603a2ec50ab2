//! IronCache REST v1 under `/1/projects/{Project ID}/…`, plus `/1/version` and `/version`.
//!
//! Every success is 200 with a JSON body (the real clients reject 201/202/204, see
//! `ironcache-clients.md`); errors are `{"msg": …}` with the document's status codes.
//! Paths are split on `/` first and each segment percent-decoded; `+` stays literal.

mod caches;
mod items;

use std::borrow::Cow;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use ttlcask_engine::WriteError;

use crate::faults;
use crate::http::{self, query_params, Resp};
use crate::namespace::IRON_PROJECT_LEN;
use crate::routes::{self, Handler};
use crate::server::AppState;

/// Value kind tag: the value was sent as a JSON string.
pub const KIND_STRING: u8 = 0;
/// Value kind tag: the value was sent as a JSON number.
pub const KIND_NUMBER: u8 = 1;

/// `{"msg": …}` with a status.
pub fn msg(status: StatusCode, text: &str) -> Resp {
    http::json(status, &json!({ "msg": text }))
}

/// What a project-scoped route needs.
pub struct Target<'a> {
    /// The tenant that owns the token.
    pub tenant: String,
    /// The project id, lower-cased.
    pub project: String,
    /// The server state.
    pub state: &'a AppState,
}

/// A route of the table with its parameters.
enum Op {
    Version,
    ListCaches,
    Cache(String),
    Clear(String),
    Item(String, String),
    Increment(String, String),
}

/// The route and project of `handler` for the (percent-decoded) segments `s`; `None` for
/// an empty cache name or key, as for a path no route has.
fn route(handler: Handler, s: &[&str]) -> Option<(Op, String)> {
    let at = |i: usize| s.get(i).map_or(String::new(), |v| v.to_string());
    let named = |i: usize| Some(at(i)).filter(|v| !v.is_empty());
    let route = match handler {
        Handler::IronVersion => return Some((Op::Version, String::new())),
        Handler::IronCaches => Op::ListCaches,
        Handler::IronCache => Op::Cache(named(4)?),
        Handler::IronClear => Op::Clear(named(4)?),
        Handler::IronItem => Op::Item(named(4)?, named(6)?),
        Handler::IronIncrement => Op::Increment(named(4)?, named(6)?),
        _ => return None,
    };
    Some((route, at(2)))
}

/// The request's token: from `Authorization: OAuth …` (or `Bearer …`), else `?oauth=`.
/// `Err` when it is ambiguous: two `Authorization` headers, `?oauth=` twice, or a header
/// token and a different `?oauth=` (DESIGN.md: refused, never resolved by picking one).
fn token(req: &Request<Incoming>) -> Result<Option<Cow<'_, str>>, &'static str> {
    let header = http::single_header(req.headers(), &hyper::header::AUTHORIZATION)
        .map_err(|_| "Send one Authorization header, not several")?
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            let (scheme, tok) = value.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer"))
                .then(|| tok.trim())
        });
    let query = req.uri().query();
    if query.is_none() {
        // The common case: no query string to look through.
        return Ok(header.map(Cow::Borrowed));
    }
    let mut in_query = query_params(query, "oauth");
    let (first, second) = (in_query.next(), in_query.next());
    if second.is_some() {
        return Err("Send the oauth query parameter once, not several times");
    }
    match (header, first) {
        (Some(h), Some(q)) if h != q => Err(
            "The token in the Authorization header and the oauth query parameter differ; send one",
        ),
        (Some(h), _) => Ok(Some(Cow::Borrowed(h))),
        (None, q) => Ok(q.map(Cow::Owned)),
    }
}

/// Handles `/1/…` and `/version`.
pub async fn handle(state: &AppState, req: Request<Incoming>, table: &routes::Route) -> Resp {
    let mut decoded = Vec::new();
    let Some(segs) = http::split_path(req.uri().path(), &mut decoded) else {
        return msg(
            StatusCode::BAD_REQUEST,
            "Path segments must be percent-encoded UTF-8 (`%` only before two hex digits)",
        );
    };
    let Some((route, project)) = route(table.handler, &segs) else {
        return msg(StatusCode::NOT_FOUND, "Not found");
    };
    let method = req.method().clone();
    if !table.allows(&method) {
        return msg(
            StatusCode::METHOD_NOT_ALLOWED,
            "Invalid HTTP method for this endpoint",
        );
    }
    if let Op::Version = route {
        return http::json(
            StatusCode::OK,
            &json!({ "version": env!("CARGO_PKG_VERSION") }),
        );
    }
    let token = match token(&req) {
        Ok(t) => t,
        Err(reason) => return msg(StatusCode::BAD_REQUEST, reason),
    };
    let Some(tenant) = token.and_then(|t| state.auth.iron(&t)) else {
        return msg(
            StatusCode::UNAUTHORIZED,
            "The OAuth token is either not provided or invalid",
        );
    };
    if project.len() != IRON_PROJECT_LEN || !project.bytes().all(|b| b.is_ascii_hexdigit()) {
        return msg(StatusCode::NOT_FOUND, "Project not found");
    }
    let target = Target {
        tenant,
        project: project.to_ascii_lowercase(),
        state,
    };
    let limits = &state.config.limits;
    let cache_ok = |c: &str| c.len() <= limits.iron_cache_name_bytes;
    let key_ok = |k: &str| k.len() <= limits.iron_key_bytes;
    match (&route, &method) {
        (Op::Cache(c) | Op::Clear(c) | Op::Item(c, _) | Op::Increment(c, _), _) if !cache_ok(c) => {
            return msg(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Cache name is longer than {} bytes",
                    limits.iron_cache_name_bytes
                ),
            )
        }
        (Op::Item(_, k) | Op::Increment(_, k), _) if !key_ok(k) => {
            return msg(
                StatusCode::BAD_REQUEST,
                &format!("Key is longer than {} bytes", limits.iron_key_bytes),
            )
        }
        _ => {}
    }
    let query = req.uri().query().map(str::to_string);
    match (route, method) {
        (Op::ListCaches, _) => caches::list(&target, query.as_deref()).await,
        (Op::Cache(c), Method::GET) => caches::info(&target, c).await,
        (Op::Cache(c), _) => caches::delete(&target, c).await,
        (Op::Clear(c), _) => caches::clear(&target, c).await,
        (Op::Item(c, k), Method::GET) => items::get(&target, c, k).await,
        (Op::Item(c, k), Method::PUT) => items::put(&target, c, k, req).await,
        (Op::Item(c, k), _) => items::delete(&target, c, k).await,
        (Op::Increment(c, k), _) => items::increment(&target, c, k, req).await,
        (Op::Version, _) => msg(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// Reads a JSON object body for a put or increment: the object, and the body's bytes.
pub async fn json_object(
    req: Request<Incoming>,
    limit: usize,
    budget: Option<(&std::sync::Arc<http::BodyBudget>, &str)>,
) -> Result<(serde_json::Map<String, serde_json::Value>, bytes::Bytes), Resp> {
    let body = match http::read_body(req, limit, budget).await {
        Ok(b) => b,
        Err(http::BodyError::TooLarge(n)) => {
            return Err(msg(
                StatusCode::BAD_REQUEST,
                &format!("Request body is larger than {n} bytes"),
            ))
        }
        Err(e) => return Err(msg(e.status(), &e.to_string())),
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(map)) => Ok((map, body)),
        Ok(_) => Err(msg(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object",
        )),
        Err(e) => Err(msg(StatusCode::BAD_REQUEST, &format!("Invalid JSON: {e}"))),
    }
}

/// A refused write as an IronCache error: 507 on a full disk, 400 over a limit, else 500.
pub fn write_error(e: &WriteError) -> Resp {
    match faults::write_status(e) {
        StatusCode::INTERNAL_SERVER_ERROR => storage_error(e),
        status => msg(status, &e.to_string()),
    }
}

/// A storage failure as an IronCache error.
pub fn storage_error(e: impl std::fmt::Display) -> Resp {
    msg(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("Storage error: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_full_disk_is_507_with_a_msg() {
        let resp = write_error(&WriteError::DiskFull("no space left on device".into()));
        assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let text = v["msg"].as_str().expect("msg");
        assert!(text.contains("disk is full"), "{text}");
        let poisoned = write_error(&WriteError::Poisoned("EIO".into()));
        assert_eq!(poisoned.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
