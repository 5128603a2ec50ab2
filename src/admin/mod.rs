//! The admin endpoint (`/admin/…`): tenants and credentials on a running server, protected
//! by the bearer token the server keeps in `<data-dir>/admin.token` (mode 0600).
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/admin/tenants` | | `[TenantRecord]` |
//! | POST | `/admin/tenants` | `{"name", "flash_client_id"?}` | 201 `TenantRecord` |
//! | GET | `/admin/credentials[?tenant=]` | | `[CredentialRecord]` (no secrets) |
//! | GET | `/admin/credentials?revoked=true` (`&tenant=`) | | `[[id, {"revoked_ms","tenant"}]]`: the records revoked credentials keep |
//! | POST | `/admin/credentials` | `{"tenant","api","app"?}` | 201 `NewCredential` (secret shown once) |
//! | DELETE | `/admin/credentials/{id}` | | 200 `{"revoked": id}` |
//! | GET | `/admin/stats` | | engine stats, disk full, poisoned, recovery report (as `ttlcask stats`); `items` split into `cache_items` and `registry_items` (tenant and credential records); `server_instance`, random per start |
//! | POST | `/admin/compact` | | 200 compaction report |
//! | GET | `/admin/export[?tenant=&slot=A..B&registry=]` | | JSON lines, streamed (as `ttlcask export`) |
//! | POST | `/admin/import[?batch=N]` | JSON lines, streamed, any length | 200 `ImportReport` |
//! | GET | `/admin/fence` | | `{"fenced": [slot]}` |
//! | POST | `/admin/fence?slot=A..B` | | `{"fenced": [slot]}`: refuse writes to these slots |
//! | DELETE | `/admin/fence?slot=A..B` | | `{"fenced": [slot]}`: accept them again |
//! | POST | `/admin/drop?slot=A..B` | | `{"dropped": namespaces}`; 409 unless all are fenced |
//!
//! Errors are `{"error": "…"}` (an import's also carry `"report"`: what it did before).
//! Export and import are in [`transfer`]. The same operations on a stopped data dir are in
//! [`crate::auth::registry`].

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::auth::constant_time_eq;
use crate::auth::registry::{self, Api, RegistryError};
use crate::faults::StorageState;
use crate::http::{self, blocking, query_param, Resp};
use crate::namespace::{SYSTEM_CREDENTIALS, SYSTEM_TENANTS};
use crate::server::AppState;

pub mod fence;
pub mod fence_file;
mod slots;
mod transfer;

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Resp {
    http::json(status, &json!({ "error": message.to_string() }))
}

fn registry_error(e: &RegistryError) -> Resp {
    let status = match e {
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RegistryError::Conflict(_) => StatusCode::CONFLICT,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        RegistryError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
    };
    error(status, e)
}

#[derive(Deserialize)]
struct NewTenant {
    name: String,
    #[serde(default)]
    flash_client_id: Option<String>,
}

#[derive(Deserialize)]
struct NewCredential {
    tenant: String,
    api: String,
    #[serde(default)]
    app: Option<String>,
}

/// Why a request with more than one `Authorization` header is refused (400): which one the
/// client meant is a guess (DESIGN.md: ambiguous credentials are never resolved by picking
/// one).
pub const SEVERAL_AUTHORIZATIONS: &str = "send one Authorization header, not several";

/// Whether `headers` carry the admin token `expected` (`Authorization: Bearer <token>`,
/// compared in constant time).
///
/// # Errors
/// More than one `Authorization` header.
pub fn holds_admin_token(
    headers: &hyper::HeaderMap,
    expected: &str,
) -> Result<bool, http::Repeated> {
    let given = http::single_header(headers, &hyper::header::AUTHORIZATION)?
        .and_then(|v| v.to_str().ok())
        .and_then(http::bearer_token)
        .unwrap_or("");
    Ok(constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

/// Handles `/admin/…`.
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Resp {
    let Some(expected) = state.admin_token.as_deref() else {
        return error(StatusCode::NOT_FOUND, "the admin endpoint is off");
    };
    let Ok(holds) = holds_admin_token(req.headers(), expected) else {
        return error(StatusCode::BAD_REQUEST, SEVERAL_AUTHORIZATIONS);
    };
    if !holds {
        return error(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required (see <data-dir>/admin.token)",
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let limit = state.config.limits.admin_body_bytes;
    if let Err(e) = check_params(&method, &path, query.as_deref()) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    match (method, path.as_str()) {
        (Method::GET, "/admin/tenants") => {
            let list: Vec<_> = match state.auth.registry().read() {
                Ok(r) => r.tenants().cloned().collect(),
                Err(p) => p.into_inner().tenants().cloned().collect(),
            };
            http::json(StatusCode::OK, &list)
        }
        (Method::POST, "/admin/tenants") => {
            let body: NewTenant = match parse(state, req, limit).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match blocking(&state.store, move |s| {
                registry::create_tenant_with(s, &body.name, body.flash_client_id.as_deref())
            })
            .await
            {
                Ok(Ok(t)) => {
                    if let Ok(mut r) = state.auth.registry().write() {
                        r.upsert_tenant(t.clone());
                    }
                    http::json(StatusCode::CREATED, &t)
                }
                Ok(Err(e)) => registry_error(&e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (Method::GET, "/admin/credentials")
            if query_param(query.as_deref(), "revoked").as_deref() == Some("true") =>
        {
            // The records revoked credentials keep (with their ids), for `cluster move` to
            // copy into a new node with the others: without them an older export imported
            // there brought a revoked credential back (found from outside). `tenant=`
            // narrows them as it narrows the live ones (it was ignored).
            let tenant = query_param(query.as_deref(), "tenant");
            match blocking(&state.store, registry::revoked_records).await {
                Ok(Ok(list)) => {
                    let list = registry::of_tenant(list, tenant.as_deref());
                    http::json(StatusCode::OK, &list)
                }
                Ok(Err(e)) => registry_error(&e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (Method::GET, "/admin/credentials") => {
            let tenant = query_param(query.as_deref(), "tenant");
            let list: Vec<_> = match state.auth.registry().read() {
                Ok(r) => r.credentials(tenant.as_deref()).cloned().collect(),
                Err(p) => p
                    .into_inner()
                    .credentials(tenant.as_deref())
                    .cloned()
                    .collect(),
            };
            http::json(StatusCode::OK, &list)
        }
        (Method::POST, "/admin/credentials") => {
            let body: NewCredential = match parse(state, req, limit).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let api: Api = match body.api.parse() {
                Ok(a) => a,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let akka = state.config.akka.clone();
            let dev = state.config.dev;
            let created = blocking(&state.store, move |s| {
                // A `--dev` server verifies the documents' sample secret, so it signs with it
                // when no secret of its own is configured.
                let secret = akka
                    .hs256_secret
                    .as_deref()
                    .or(dev.then_some(crate::auth::DEV_AKKA_SECRET));
                let signer = secret.map(|k| (k, akka.issuer.as_str()));
                registry::create_credential(s, &body.tenant, api, body.app.as_deref(), signer)
            })
            .await;
            match created {
                Ok(Ok(c)) => {
                    if let Ok(mut r) = state.auth.registry().write() {
                        r.upsert_credential(c.credential.clone());
                    }
                    http::json(StatusCode::CREATED, &c)
                }
                Ok(Err(e)) => registry_error(&e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (Method::DELETE, p) if p.starts_with("/admin/credentials/") => {
            let id = p.trim_start_matches("/admin/credentials/").to_string();
            let i = id.clone();
            match blocking(&state.store, move |s| registry::revoke_credential(s, &i)).await {
                Ok(Ok(())) => {
                    if let Ok(mut r) = state.auth.registry().write() {
                        r.remove_credential(&id);
                    }
                    http::json(StatusCode::OK, &json!({ "revoked": id }))
                }
                Ok(Err(e)) => registry_error(&e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (Method::GET, "/admin/stats") => {
            let damaged_reads = state.damaged_reads.count();
            let instance = state.instance.clone();
            let stats = blocking(&state.store, move |s| {
                let mut v =
                    crate::maintenance::stats_json(&s.stats(), &StorageState::of(s, damaged_reads));
                // `items` counts the tenant and credential records too (found from outside:
                // a node with no cache item showed 4 in `cluster status`); these don't.
                let registry: u64 = [SYSTEM_TENANTS, SYSTEM_CREDENTIALS]
                    .iter()
                    .filter_map(|ns| s.namespace(ns))
                    .map(|n| n.items)
                    .sum();
                let items = v["items"].as_u64().unwrap_or(0);
                if let Some(out) = v.as_object_mut() {
                    out.insert("registry_items".into(), json!(registry));
                    out.insert("cache_items".into(), json!(items.saturating_sub(registry)));
                    out.insert("server_instance".into(), json!(instance));
                }
                v
            });
            match stats.await {
                Ok(v) => http::json(StatusCode::OK, &v),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        (Method::POST, "/admin/compact") => match blocking(&state.store, |s| s.compact()).await {
            Ok(Ok(r)) => http::json(StatusCode::OK, &crate::maintenance::compaction_json(&r)),
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        (Method::GET, "/admin/export") => transfer::export(state, query.as_deref()),
        (Method::POST, "/admin/import") => transfer::import(state, req, query.as_deref()).await,
        (Method::GET, "/admin/fence") => slots::fenced(state),
        (Method::POST, "/admin/fence") => slots::fence(state, query.as_deref(), true).await,
        (Method::DELETE, "/admin/fence") => slots::fence(state, query.as_deref(), false).await,
        (Method::POST, "/admin/drop") => slots::drop(state, query.as_deref()).await,
        (_, p) => match allowed_methods(p) {
            // RFC 9110: a known resource asked with another method is 405 with `Allow`.
            Some(allow) => {
                let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                resp.headers_mut()
                    .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
                resp
            }
            None => error(StatusCode::NOT_FOUND, "unknown admin route"),
        },
    }
}

/// The methods an admin path accepts (the table at the top of this module). HEAD is served
/// wherever GET is (by the router), so it is named beside it (found from outside: HEAD
/// answered 200 and `Allow` left it out).
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/admin/tenants" | "/admin/credentials" => Some("GET, HEAD, POST"),
        "/admin/stats" | "/admin/export" => Some("GET, HEAD"),
        "/admin/compact" | "/admin/import" | "/admin/drop" => Some("POST"),
        "/admin/fence" => Some("GET, HEAD, POST, DELETE"),
        p if p.starts_with("/admin/credentials/") => Some("DELETE"),
        _ => None,
    }
}

/// Refuses query parameters a route does not take, given twice, or with a value it cannot
/// use (found from outside: `?tenant=a%20b`, `?revoked=maybe` and `drop?slot=331&x=1` were
/// answered as if absent). `/admin/export` and `/admin/import` check their own.
/// A route unknown, or asked with a method it does not take, is left to its 404 or 405.
fn check_params(method: &Method, path: &str, query: Option<&str>) -> Result<(), String> {
    let known =
        allowed_methods(path).is_some_and(|allow| allow.split(", ").any(|m| m == method.as_str()));
    if !known {
        return Ok(());
    }
    let takes: &[&str] = match (method, path) {
        (&Method::GET, "/admin/credentials") => &["tenant", "revoked"],
        (&Method::POST | &Method::DELETE, "/admin/fence") | (&Method::POST, "/admin/drop") => {
            &["slot"]
        }
        (&Method::GET, "/admin/export") | (&Method::POST, "/admin/import") => return Ok(()),
        _ => &[],
    };
    http::check_param_names(query, takes).map_err(|p| match (p, takes) {
        (http::ParamProblem::Unknown(name), []) => {
            format!("{path} takes no query parameter ({name:?} given)")
        }
        (http::ParamProblem::Unknown(name), _) => format!(
            "unknown parameter {name:?}: {path} takes {}",
            takes.join("=, ") + "="
        ),
        (http::ParamProblem::Repeated(name), _) => format!("{name}= is given twice"),
    })?;
    if let Some(t) = http::query_param(query, "tenant") {
        if !crate::namespace::valid_tenant(&t) {
            return Err(format!("invalid tenant name {t:?}"));
        }
    }
    match http::query_param(query, "revoked").as_deref() {
        None | Some("true" | "false") => Ok(()),
        Some(v) => Err(format!("revoked={v:?}: use true or false")),
    }
}

async fn parse<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Resp> {
    let idle = state.body_budget.idle_timeout();
    let body = http::read_unbudgeted_body(req, limit, idle)
        .await
        .map_err(|e| match e {
            http::BodyError::Stalled(_) => error(StatusCode::REQUEST_TIMEOUT, e),
            e => error(StatusCode::BAD_REQUEST, e),
        })?;
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}
