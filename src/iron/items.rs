//! IronCache item calls: put (with `expires_in`, `add`, `replace`, `cas`), get, delete,
//! increment.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};
use ttlcask_engine::{Condition, IncrementError, PutOptions};

use super::{json_object, msg, storage_error, write_error, Target, KIND_NUMBER, KIND_STRING};
use crate::http::{self, blocking, with_body, Resp, JSON};
use crate::namespace;
use crate::time::{format_rfc3339, stored_expiry};

/// `expires` of an item that never expires, as the real service answered.
pub const NEVER_EXPIRES: &str = "9999-01-01T00:00:00Z";

/// What a put asks for, validated.
struct PutRequest {
    value: Vec<u8>,
    kind: u8,
    expires_in: Option<u64>,
    condition: Option<Condition>,
}

/// The answer to a put whose conditions cannot all hold: `add` wants the item missing,
/// `replace` and `cas` want it there. Each is a condition the put must meet, so together
/// nothing is stored (`cas` used to stand in for `add`, and the put overwrote the item it
/// said it would not: found from outside; with `replace`, `add` stood in).
const NEVER_BOTH: &str =
    "Not stored: add (the item must not exist) and replace or cas (it must) cannot both hold.";

/// `body` as parsed, and `bytes` as sent (a number's value is kept as written).
/// `Err` is the answer, given without touching the store.
fn parse_put(body: &Map<String, Value>, bytes: &[u8], t: &Target<'_>) -> Result<PutRequest, Resp> {
    let limits = &t.state.config.limits;
    let (value, kind) = match body.get("value") {
        None | Some(Value::Null) => {
            return Err(msg(StatusCode::NOT_ACCEPTABLE, "value is required"))
        }
        Some(Value::String(s)) => (s.clone().into_bytes(), KIND_STRING),
        // The number as it was written: serde_json reads it as an i64, u64 or f64, so
        // 123456789012345678901234567890 came back as 1.2345678901234568e29, 1e3 as 1000.0.
        Some(Value::Number(n)) => match value_literal(bytes) {
            Some(literal) => (literal.as_bytes().to_vec(), KIND_NUMBER),
            None => (n.to_string().into_bytes(), KIND_NUMBER),
        },
        Some(_) => {
            return Err(msg(
                StatusCode::BAD_REQUEST,
                "value must be a string or a number",
            ))
        }
    };
    if value.len() > limits.iron_value_bytes {
        return Err(msg(
            StatusCode::BAD_REQUEST,
            &format!("value is larger than {} bytes", limits.iron_value_bytes),
        ));
    }
    let expires_in = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => None,
            Some(secs) if secs <= limits.iron_max_expires_in => Some(secs),
            _ => {
                return Err(msg(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "expires_in must be an integer from 0 to {}",
                        limits.iron_max_expires_in
                    ),
                ))
            }
        },
        Some(_) => {
            return Err(msg(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expires_in must be an integer from 0 to {}",
                    limits.iron_max_expires_in
                ),
            ))
        }
    };
    let flag = |name: &str| match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(msg(
            StatusCode::BAD_REQUEST,
            &format!("{name} must be true or false"),
        )),
    };
    let (add, replace) = (flag("add")?, flag("replace")?);
    let cas = match body.get("cas") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64()),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse::<u64>().ok())
        }
        Some(_) => Some(None),
    };
    let condition = match cas {
        Some(None) => {
            return Err(msg(
                StatusCode::BAD_REQUEST,
                "cas must be an unsigned integer, as a number or a string of digits",
            ))
        }
        _ if add && (replace || cas.is_some()) => return Err(msg(StatusCode::OK, NEVER_BOTH)),
        Some(Some(v)) => Some(Condition::VersionIs(v)),
        None if add => Some(Condition::Absent),
        None if replace => Some(Condition::Present),
        None => None,
    };
    Ok(PutRequest {
        value,
        kind,
        expires_in,
        condition,
    })
}

/// The `value` member of a JSON object `body` as written, if it is there once.
fn value_literal(body: &[u8]) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Only<'a> {
        #[serde(borrow)]
        value: Option<&'a serde_json::value::RawValue>,
    }
    let only: Only<'_> = serde_json::from_slice(body).ok()?;
    only.value.map(|v| v.get().trim())
}

/// Whether `text` is one JSON number literal (what a number value is stored as).
fn is_number_literal(text: &str) -> bool {
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok()
}

/// `PUT …/items/{k}`.
pub async fn put(t: &Target<'_>, cache: String, key: String, req: Request<Incoming>) -> Resp {
    let body = match json_object(
        req,
        t.state.config.limits.iron_body_bytes,
        Some((&t.state.body_budget, t.tenant.as_str())),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (body, bytes) = body;
    let put = match parse_put(&body, &bytes, t) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    let store = &t.state.store;
    let options = PutOptions {
        expires_at_ms: put
            .expires_in
            .and_then(|secs| stored_expiry(store.now_ms().saturating_add(secs * 1000))),
        kind: put.kind,
        ..PutOptions::default()
    };
    let condition = put.condition;
    let result = http::put_item(store, ns, key.into_bytes(), put.value, options, condition)
        .await
        .map(|r| r.map(|stored| (stored, condition)));
    match result {
        Ok(Ok((Some(_), _))) => msg(StatusCode::OK, "Stored."),
        Ok(Ok((None, Some(Condition::Absent)))) => {
            msg(StatusCode::OK, "Not stored: the item exists already (add).")
        }
        Ok(Ok((None, Some(Condition::Present)))) => msg(
            StatusCode::OK,
            "Not stored: the item does not exist (replace).",
        ),
        Ok(Ok((None, _))) => msg(StatusCode::OK, "Not stored: cas does not match."),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// The body of a found item, in the real service's field order:
/// `{"cache","key","value","cas","flags","expires"}`. Written by hand: serde_json escapes a
/// string byte by byte, which was a tenth of an item GET.
fn item_body(cache: &str, key: &str, item: &ttlcask_engine::Item) -> Vec<u8> {
    // Values are almost always valid UTF-8: check that first (much faster than the lossy
    // decoder, which is needed only when it fails).
    let text = match std::str::from_utf8(&item.value) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&item.value),
    };
    let mut out = Vec::with_capacity(96 + cache.len() + key.len() + text.len());
    out.extend_from_slice(b"{\"cache\":");
    http::push_json_str(&mut out, cache);
    out.extend_from_slice(b",\"key\":");
    http::push_json_str(&mut out, key);
    out.extend_from_slice(b",\"value\":");
    // A number comes back as a number, as it was sent.
    if item.kind == KIND_NUMBER && is_number_literal(&text) {
        out.extend_from_slice(text.as_bytes());
    } else {
        http::push_json_str(&mut out, &text);
    }
    out.extend_from_slice(b",\"cas\":");
    out.extend_from_slice(item.version.to_string().as_bytes());
    out.extend_from_slice(b",\"flags\":0,\"expires\":");
    match item.expires_at_ms {
        Some(ms) => http::push_json_str(&mut out, &format_rfc3339(ms)),
        None => http::push_json_str(&mut out, NEVER_EXPIRES),
    }
    out.push(b'}');
    out
}

/// `GET …/items/{k}`.
pub async fn get(t: &Target<'_>, cache: String, key: String) -> Resp {
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    match http::get_item(t.state, &ns, key.as_bytes()).await {
        Ok(Ok(Some(item))) => with_body(StatusCode::OK, JSON, item_body(&cache, &key, &item)),
        Ok(Ok(None)) => msg(StatusCode::NOT_FOUND, "Item not found"),
        Ok(Err(e)) => storage_error(e),
        Err(e) => storage_error(e),
    }
}

/// `DELETE …/items/{k}`.
pub async fn delete(t: &Target<'_>, cache: String, key: String) -> Resp {
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    match blocking(&t.state.store, move |s| s.delete(&ns, key.as_bytes())).await {
        Ok(Ok(true)) => msg(StatusCode::OK, "Deleted."),
        Ok(Ok(false)) => msg(StatusCode::NOT_FOUND, "Item not found"),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `POST …/items/{k}/increment` with `{"amount": n}`.
pub async fn increment(t: &Target<'_>, cache: String, key: String, req: Request<Incoming>) -> Resp {
    let body = match json_object(
        req,
        t.state.config.limits.iron_body_bytes,
        Some((&t.state.body_budget, t.tenant.as_str())),
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (body, _) = body;
    let amount = match body.get("amount") {
        None | Some(Value::Null) => return msg(StatusCode::NOT_ACCEPTABLE, "amount is required"),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) => a,
            None => return msg(StatusCode::BAD_REQUEST, "amount must be an integer"),
        },
        Some(_) => return msg(StatusCode::BAD_REQUEST, "amount must be an integer"),
    };
    let ns = namespace::iron_cache(&t.tenant, &t.project, &cache);
    let options = PutOptions {
        expires_at_ms: None,
        kind: KIND_NUMBER,
        ..PutOptions::default()
    };
    match blocking(&t.state.store, move |s| {
        s.increment(&ns, key.as_bytes(), amount, options)
    })
    .await
    {
        Ok(Ok(value)) => http::json(StatusCode::OK, &json!({ "msg": "Added", "value": value })),
        Ok(Err(IncrementError::NotAnInteger)) => msg(
            StatusCode::BAD_REQUEST,
            "Cannot increment or decrement non-numeric value",
        ),
        Ok(Err(IncrementError::Overflow)) => msg(
            StatusCode::BAD_REQUEST,
            "The result would overflow a 64-bit integer",
        ),
        Ok(Err(IncrementError::Write(e))) => write_error(&e),
        Ok(Err(IncrementError::Read(e))) => {
            // Counted and logged like a damaged get; the engine decides what an increment of
            // a lost value does, so this answer is only for an engine that refuses it.
            t.state.damaged_reads.absorb(&e);
            storage_error(e)
        }
        Ok(Err(e)) => storage_error(e),
        Err(e) => storage_error(e),
    }
}
