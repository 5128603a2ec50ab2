//! IronCache cache-level calls: list (paged), info, clear, delete.

use hyper::StatusCode;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{msg, storage_error, write_error, Target};
use crate::http::{self, blocking, query_param, Resp};
use crate::namespace;

const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;
const MAX_PAGE: usize = 100;

#[derive(Serialize)]
struct CacheEntry {
    id: String,
    project_id: String,
    name: String,
}

fn page_param(query: Option<&str>, name: &str, default: usize, max: usize) -> Result<usize, Resp> {
    match query_param(query, name) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(msg(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{name} must be an integer from 0 to {max}{}",
                    if name == "per_page" {
                        " (0: the default, 30)"
                    } else {
                        ""
                    }
                ),
            )),
        },
    }
}

/// `GET /1/projects/{p}/caches?page=&per_page=`.
pub async fn list(t: &Target<'_>, query: Option<&str>) -> Resp {
    let page = match page_param(query, "page", 0, MAX_PAGE) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let per_page = match page_param(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE) {
        Ok(0) => DEFAULT_PER_PAGE,
        Ok(n) => n,
        Err(r) => return r,
    };
    let prefix = namespace::iron_project(&t.tenant, &t.project);
    let project = t.project.clone();
    let listed = blocking(&t.state.store, move |s| {
        s.namespaces(&prefix)
            .into_iter()
            .skip(page * per_page)
            .take(per_page)
            .map(|info| {
                let name = String::from_utf8_lossy(&info.name[prefix.len()..]).into_owned();
                let digest = Sha256::digest(&info.name);
                CacheEntry {
                    id: http::hex(&digest[..12]),
                    project_id: project.clone(),
                    name,
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    match listed {
        Ok(entries) => http::json(StatusCode::OK, &entries),
        Err(e) => storage_error(e),
    }
}

/// `GET /1/projects/{p}/caches/{c}`: `{"size": N}`.
pub async fn info(t: &Target<'_>, cache: String) -> Resp {
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    match blocking(&t.state.store, move |s| s.namespace(&ns)).await {
        Ok(Some(info)) => http::json(StatusCode::OK, &json!({ "size": info.items })),
        Ok(None) => msg(StatusCode::NOT_FOUND, "Cache not found"),
        Err(e) => storage_error(e),
    }
}

/// `POST /1/projects/{p}/caches/{c}/clear`.
pub async fn clear(t: &Target<'_>, cache: String) -> Resp {
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    match blocking(&t.state.store, move |s| s.clear_namespace(&ns)).await {
        Ok(Ok(true)) => msg(StatusCode::OK, "Cleared."),
        Ok(Ok(false)) => msg(StatusCode::NOT_FOUND, "Cache not found"),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /1/projects/{p}/caches/{c}`.
pub async fn delete(t: &Target<'_>, cache: String) -> Resp {
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    match blocking(&t.state.store, move |s| s.drop_namespace(&ns)).await {
        Ok(Ok(true)) => msg(StatusCode::OK, "Deleted."),
        Ok(Ok(false)) => msg(StatusCode::NOT_FOUND, "Cache not found"),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}
