//! `/admin/fence` and `/admin/drop`: what `cluster move` asks of a node that gives slots
//! away. A fence makes the node refuse writes to the slots ([`super::fence`]); a drop
//! deletes their caches, and only fenced slots can be dropped, so that a typo in a range
//! never deletes data the node still serves.

use std::ops::RangeInclusive;

use hyper::StatusCode;
use serde_json::json;

use super::error;
use crate::auth::registry::Registry;
use crate::http::{self, blocking, query_param, Resp};
use crate::namespace::{self, Parsed};
use crate::server::AppState;
use crate::slot::{self, ClientIds};

fn range(query: Option<&str>) -> Result<RangeInclusive<u16>, Resp> {
    let text = query_param(query, "slot")
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "give slot=A..B or slot=A"))?;
    slot::parse_range(&text).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

/// `GET /admin/fence`.
pub fn fenced(state: &AppState) -> Resp {
    http::json(StatusCode::OK, &json!({ "fenced": state.fences.list() }))
}

/// `POST` (`on`) or `DELETE /admin/fence?slot=A..B`.
pub async fn fence(state: &AppState, query: Option<&str>, on: bool) -> Resp {
    let range = match range(query) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.fences.set(range, on) {
        Ok(list) => {
            if on && !state.fences.drain().await {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "fenced, but writes admitted before the fence are still running; retry",
                );
            }
            http::json(StatusCode::OK, &json!({ "fenced": list }))
        }
        // Found from outside, twelfth session: a full disk answered 500.
        Err(e) => error(
            crate::faults::io_status(&e),
            format!("{e}; the fences in force are as they were"),
        ),
    }
}

/// `POST /admin/drop?slot=A..B`: drops every cache whose slot is in the range.
pub async fn drop(state: &AppState, query: Option<&str>) -> Resp {
    let range = match range(query) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Some(open) = range.clone().find(|&s| !state.fences.contains(s)) {
        return error(
            StatusCode::CONFLICT,
            format!("slot {open} is not fenced; fence the range first (POST /admin/fence)"),
        );
    }
    // After every import running now: one of a move killed during its copy can still be
    // applying batches of these slots.
    let _alone = state.transfers.write().await;
    let dropped = blocking(&state.store, move |store| {
        let client_ids =
            ClientIds::from_registry(&Registry::load(store).map_err(|e| e.to_string())?);
        let mut dropped = 0u64;
        for info in store.namespaces(b"") {
            let Some(parsed) = namespace::parse(&info.name) else {
                continue;
            };
            if matches!(parsed, Parsed::SystemTenants | Parsed::SystemCredentials) {
                continue;
            }
            if slot::of_namespace(&parsed, &client_ids).is_some_and(|s| range.contains(&s))
                && store
                    .drop_namespace(&info.name)
                    .map_err(|e| e.to_string())?
            {
                dropped += 1;
            }
        }
        Ok::<_, String>(dropped)
    })
    .await;
    match dropped {
        Ok(Ok(n)) => http::json(StatusCode::OK, &json!({ "dropped": n })),
        Ok(Err(e)) | Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
