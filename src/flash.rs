//! Flash Cache: `POST /v1/cache/add`, `PUT /v1/cache/update`, `GET /v1/cache/get`,
//! `DELETE /v1/cache/delete`. Everything travels in headers (`ClientId`, `Authorization`,
//! `DataKey`, `ExpiresUtc` in; `RequestId`, `DataKey`, `Success`, `ResponseMessage`, `Count`,
//! `ExpiresUtc` out); the item is the JSON body. Errors have an empty body and say why in
//! `ResponseMessage` with `Success: false`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use ttlcask_engine::{Condition, Item, PutOptions, Store, WriteError};

use crate::faults::{self, DamagedReads};
use crate::http::{self, blocking, random_hex, read_body, BodyError, Resp, JSON};
use crate::namespace;
use crate::routes::{Handler, Route};
use crate::server::AppState;
use crate::time::{format_flash, parse_flash, parse_rfc3339, stored_expiry};

/// Attempts of an `update` that keeps the expiry when another writer changes the item.
const UPDATE_ATTEMPTS: usize = 8;

/// One Flash Cache reply: status plus the documented headers.
struct Reply {
    status: StatusCode,
    data_key: Option<String>,
    message: Cow<'static, str>,
    count: u32,
    expires_ms: Option<u64>,
    body: Option<Bytes>,
}

impl Reply {
    fn ok(status: StatusCode, message: &'static str, expires_ms: Option<u64>) -> Self {
        Self {
            status,
            data_key: None,
            message: Cow::Borrowed(message),
            count: 1,
            expires_ms,
            body: None,
        }
    }

    fn fail(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            data_key: None,
            message: message.into(),
            count: 0,
            expires_ms: None,
            body: None,
        }
    }

    fn into_response(self, data_key: Option<HeaderValue>) -> Resp {
        // Sized for every header at once: growing the map took a tenth of a get.
        let mut map = HeaderMap::with_capacity(8);
        let headers = &mut map;
        if self.body.is_some() {
            headers.insert(CONTENT_TYPE, http::content_type_value(JSON));
        }
        let success = self.status.is_success();
        headers.insert(REQUEST_ID, request_id());
        match self.data_key.as_deref() {
            Some(key) => set(headers, DATA_KEY, key),
            None => {
                if let Some(key) = data_key {
                    headers.insert(DATA_KEY, key);
                }
            }
        }
        headers.insert(
            SUCCESS,
            HeaderValue::from_static(if success { "true" } else { "false" }),
        );
        match self.message {
            Cow::Borrowed(m) => {
                // Shares the static text instead of copying it.
                if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from_static(m.as_bytes())) {
                    headers.insert(RESPONSE_MESSAGE, v);
                }
            }
            Cow::Owned(m) => set(headers, RESPONSE_MESSAGE, &m),
        }
        headers.insert(COUNT, HeaderValue::from(self.count));
        if let Some(ms) = self.expires_ms {
            set(headers, EXPIRES_UTC, &format_flash(ms));
        }
        // Without a body: `Content-Length: 0`, as `http::empty`.
        let mut resp = Response::new(crate::http::Body::full(self.body.unwrap_or_default()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = map;
        resp
    }
}

const CLIENT_ID: HeaderName = HeaderName::from_static("clientid");
const REQUEST_ID: HeaderName = HeaderName::from_static("requestid");
const DATA_KEY: HeaderName = HeaderName::from_static("datakey");
const SUCCESS: HeaderName = HeaderName::from_static("success");
const RESPONSE_MESSAGE: HeaderName = HeaderName::from_static("responsemessage");
const COUNT: HeaderName = HeaderName::from_static("count");
const EXPIRES_UTC: HeaderName = HeaderName::from_static("expiresutc");

/// `v1:req_` and 40 hex digits, unique per response: a random per-process prefix (96 bits)
/// and a counter (64 bits), so no system call per request.
fn request_id() -> HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| format!("v1:req_{}", random_hex(12)));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 47];
    id[..31].copy_from_slice(prefix.as_bytes());
    for (i, digit) in id[31..].iter_mut().enumerate() {
        *digit = DIGITS[((n >> (60 - 4 * i)) & 15) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("v1:req_"))
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &HeaderName) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Why the credentials are ambiguous, if they are: `ClientId` or `Authorization` sent twice,
/// or either holding two values (a comma list, as a proxy joins repeated lines). Refused
/// with 400 rather than resolved by picking one (DESIGN.md "Limits and bad input").
fn ambiguous_credentials(req: &Request<Incoming>) -> Option<&'static str> {
    let list = |v: Option<&HeaderValue>| v.is_some_and(|v| v.as_bytes().contains(&b','));
    match (
        http::single_header(req.headers(), &CLIENT_ID),
        http::single_header(req.headers(), &AUTHORIZATION),
    ) {
        (Err(_), _) => Some("Send one ClientId header, not several"),
        (_, Err(_)) => Some("Send one Authorization header (one API key), not several"),
        (Ok(id), _) if list(id) => Some("Send one ClientId, not a list"),
        (_, Ok(key)) if list(key) => Some("Send one API key in Authorization, not a list"),
        _ => None,
    }
}

/// A DataKey: 1 to `max` URL-safe characters (`A-Z a-z 0-9 - _ . ~`).
pub(crate) fn valid_data_key(key: &str, max: usize) -> bool {
    !key.is_empty()
        && key.len() <= max
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Whether `body` is a JSON text (RFC 8259): UTF-8, grammatical, and with no lone surrogate
/// escape (`"\ud800"`). Parsing into `IgnoredAny` alone checks the grammar but skips string
/// contents unread, so it let both through (found from outside, twelfth session). No tree
/// is built: the UTF-8 check and the escape scan are one pass each over at most
/// `flash_body_bytes`, and numbers stay unbounded as the grammar allows (`1e400`).
fn is_json_text(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && surrogates_paired(body)
}

/// In a grammatical JSON text (so every `\` starts an escape inside a string), whether each
/// `\uD800`–`\uDBFF` escape is followed by a `\uDC00`–`\uDFFF` one, and no low one stands alone.
fn surrogates_paired(json: &[u8]) -> bool {
    let unit = |at: usize| -> Option<u16> {
        let hex = json.get(at..at + 6)?.strip_prefix(b"\\u")?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut i = 0;
    while let Some(skip) = json
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        i += skip;
        match unit(i) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(unit(i + 6), Some(0xDC00..=0xDFFF)) {
                    return false;
                }
                i += 12;
            }
            Some(0xDC00..=0xDFFF) => return false,
            Some(_) => i += 6,
            // `\"`, `\\`, `\n`, …: the escaped character is never the start of another escape.
            None => i += 2,
        }
    }
    true
}

/// The request's `DataKey`, echoed as sent (trimmed) when it is visible ASCII.
fn echoed_data_key(req: &Request<Incoming>) -> Option<HeaderValue> {
    req.headers().get(&DATA_KEY).and_then(|v| {
        let trimmed = v.to_str().ok()?.trim();
        if trimmed.len() == v.len() {
            Some(v.clone())
        } else {
            HeaderValue::from_str(trimmed).ok()
        }
    })
}

/// Handles `/v1/cache/…`.
pub async fn handle(state: &AppState, req: Request<Incoming>, route: &Route) -> Resp {
    let data_key = echoed_data_key(&req);
    let reply = dispatch(state, req, route).await;
    reply.into_response(data_key)
}

/// A Flash error refused before dispatch (by the router): `Success: false` and the reason
/// in `ResponseMessage`.
pub fn refuse(req: &Request<Incoming>, status: StatusCode, reason: &'static str) -> Resp {
    Reply::fail(status, reason).into_response(echoed_data_key(req))
}

async fn dispatch(state: &AppState, req: Request<Incoming>, route: &Route) -> Reply {
    let op = match route.handler {
        Handler::FlashAdd => Op::Add,
        Handler::FlashUpdate => Op::Update,
        Handler::FlashGet => Op::Get,
        Handler::FlashDelete => Op::Delete,
        _ => {
            return Reply::fail(
                StatusCode::NOT_FOUND,
                "Unknown endpoint; use /v1/cache/add, update, get or delete",
            )
        }
    };
    if !route.allows(req.method()) {
        return Reply::fail(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("This endpoint accepts {} only", route.allow),
        );
    }
    let limits = &state.config.limits;
    if let Some(reason) = ambiguous_credentials(&req) {
        return Reply::fail(StatusCode::BAD_REQUEST, reason);
    }
    let (Some(client_id), Some(api_key)) = (header(&req, &CLIENT_ID), header(&req, &AUTHORIZATION))
    else {
        return Reply::fail(
            StatusCode::UNAUTHORIZED,
            "ClientId and Authorization headers are required",
        );
    };
    let api_key = api_key.strip_prefix("Bearer ").unwrap_or(api_key).trim();
    let Some(caller) = state.auth.flash(client_id, api_key) else {
        return Reply::fail(StatusCode::UNAUTHORIZED, "Invalid ClientId or API key");
    };
    let Ok(data_key) = http::single_header(req.headers(), &DATA_KEY) else {
        return Reply::fail(
            StatusCode::BAD_REQUEST,
            "Send one DataKey header, not several",
        );
    };
    let Some(key) = data_key
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
    else {
        return Reply::fail(StatusCode::BAD_REQUEST, "DataKey header is required");
    };
    if !valid_data_key(&key, limits.flash_key_bytes) {
        return Reply::fail(
            StatusCode::BAD_REQUEST,
            format!(
                "DataKey must be 1 to {} URL-safe characters (A-Z a-z 0-9 - _ . ~)",
                limits.flash_key_bytes
            ),
        );
    }
    let ns = namespace::flash(&caller.tenant, &caller.app);
    let store = state.store.clone();
    let now = store.now_ms();
    let max_ms = limits.flash_max_ttl_secs.saturating_mul(1000);
    let expires_header = match http::single_header(req.headers(), &EXPIRES_UTC) {
        Ok(value) => value,
        Err(_) => {
            return Reply::fail(
                StatusCode::BAD_REQUEST,
                "Send one ExpiresUtc header, not several",
            )
        }
    };
    let expires = match expires_header {
        Some(value) if matches!(op, Op::Add | Op::Update) => {
            // Bytes that are not text are a bad date, not an absent one.
            let text = value.to_str().map(str::trim).unwrap_or("");
            match parse_flash(text).or_else(|| parse_rfc3339(text)) {
                Some(ms) if ms <= now => {
                    return Reply::fail(StatusCode::BAD_REQUEST, "ExpiresUtc is in the past")
                }
                // Against the latest expiry a default could have stored (whole seconds,
                // rounded up): a client sends back the ExpiresUtc it was told. Found from
                // outside: the default, up to a second past 30 days, was refused so.
                Some(ms)
                    if stored_expiry(now.saturating_add(max_ms))
                        .is_some_and(|latest| ms > latest) =>
                {
                    return Reply::fail(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "ExpiresUtc is more than {} ahead",
                            span(limits.flash_max_ttl_secs)
                        ),
                    )
                }
                // Reported as stored: whole seconds, rounded up.
                // Past 2106 the engine keeps it as never (a `flash_max_ttl_secs` of
                // decades); reported as asked.
                Some(ms) => Some(stored_expiry(ms).unwrap_or(ms)),
                None => {
                    return Reply::fail(
                        StatusCode::BAD_REQUEST,
                        "ExpiresUtc must be dd/MM/yyyy HH:mm:ss (UTC) or RFC 3339",
                    )
                }
            }
        }
        _ => None,
    };
    let body = if matches!(op, Op::Add | Op::Update) {
        let budget = Some((&state.body_budget, caller.tenant.as_str()));
        match read_body(req, limits.flash_body_bytes, budget).await {
            Ok(b) => {
                if !is_json_text(&b) {
                    return Reply::fail(StatusCode::BAD_REQUEST, "The body must be valid JSON");
                }
                b
            }
            Err(BodyError::TooLarge(n)) => {
                return Reply::fail(
                    StatusCode::BAD_REQUEST,
                    format!("HTTP payloads are limited to {n} bytes"),
                )
            }
            Err(e) => return Reply::fail(e.status(), e.to_string()),
        }
    } else {
        Bytes::new()
    };
    let key_bytes = key.into_bytes();
    let done = match op {
        Op::Get => return get(state, ns, key_bytes).await,
        Op::Add => {
            let expires = expires.unwrap_or_else(|| {
                let latest = now.saturating_add(max_ms);
                stored_expiry(latest).unwrap_or(latest)
            });
            return add(state, ns, key_bytes, &body, expires).await;
        }
        Op::Update => {
            let damaged = state.damaged_reads.clone();
            blocking(&store, move |s| {
                update(s, &damaged, &ns, &key_bytes, &body, expires)
            })
            .await
        }
        Op::Delete => blocking(&store, move |s| delete(s, &ns, &key_bytes)).await,
    };
    done.unwrap_or_else(|e| Reply::fail(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// Inline when the engine can answer without the disk (see `http::get_item`).
async fn get(state: &AppState, ns: Vec<u8>, key: Vec<u8>) -> Reply {
    match http::get_item(state, &ns, &key).await {
        Ok(Ok(found)) => got(found),
        Ok(Err(e)) => Reply::fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Storage error: {e}"),
        ),
        Err(e) => Reply::fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Appended inline and acknowledged once durable (see `http::put_item`).
async fn add(state: &AppState, ns: Vec<u8>, key: Vec<u8>, body: &[u8], expires: u64) -> Reply {
    let options = PutOptions::expiring_at(expires);
    let stored = http::put_item(
        &state.store,
        ns.clone(),
        key.clone(),
        body.to_vec(),
        options,
        Some(Condition::Absent),
    )
    .await;
    match stored {
        Ok(Ok(Some(_))) => Reply::ok(StatusCode::CREATED, "Created successfully", Some(expires)),
        Ok(Ok(None)) => {
            let mut reply = Reply::fail(StatusCode::CONFLICT, "DataKey already exists");
            if let Ok(Ok(Some(item))) = http::get_item(state, &ns, &key).await {
                reply.expires_ms = item.expires_at_ms;
            }
            reply
        }
        Ok(Err(e)) => write_failed(&e),
        Err(e) => Reply::fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Update,
    Get,
    Delete,
}

/// A refused write in Flash's shape: 507 on a full disk, 400 over a limit, else 500.
fn write_failed(e: &WriteError) -> Reply {
    match faults::write_status(e) {
        StatusCode::INTERNAL_SERVER_ERROR => Reply::fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Storage error: {e}"),
        ),
        status => Reply::fail(status, e.to_string()),
    }
}

/// A damaged or lost record reads as absent, as in `get`.
fn read_item(
    s: &Store,
    damaged: &DamagedReads,
    ns: &[u8],
    key: &[u8],
) -> Result<Option<Item>, Reply> {
    damaged.as_miss(s.get(ns, key)).map_err(|e| {
        Reply::fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Storage error: {e}"),
        )
    })
}

fn update(
    s: &Store,
    damaged: &DamagedReads,
    ns: &[u8],
    key: &[u8],
    body: &[u8],
    expires: Option<u64>,
) -> Reply {
    for _ in 0..UPDATE_ATTEMPTS {
        let item = match read_item(s, damaged, ns, key) {
            Ok(Some(item)) => item,
            Ok(None) => return Reply::fail(StatusCode::NOT_FOUND, "DataKey not found"),
            Err(reply) => return reply,
        };
        let keep = expires.or(item.expires_at_ms);
        let options = PutOptions {
            expires_at_ms: keep,
            kind: item.kind,
            ..PutOptions::default()
        };
        match s.put_if(ns, key, body, options, Condition::VersionIs(item.version)) {
            Ok(Some(_)) => return Reply::ok(StatusCode::OK, "Updated successfully", keep),
            Ok(None) => continue,
            Err(e) => return write_failed(&e),
        }
    }
    Reply::fail(
        StatusCode::CONFLICT,
        "DataKey is being changed by other requests; try again",
    )
}

fn got(found: Option<Item>) -> Reply {
    match found {
        Some(item) => {
            let mut reply = Reply::ok(
                StatusCode::OK,
                "Object retrieved successfully",
                item.expires_at_ms,
            );
            reply.body = Some(item.value);
            reply
        }
        None => Reply::fail(StatusCode::NOT_FOUND, "DataKey not found"),
    }
}

fn delete(s: &Store, ns: &[u8], key: &[u8]) -> Reply {
    match s.delete(ns, key) {
        Ok(true) => Reply::ok(StatusCode::OK, "Deleted successfully", None),
        Ok(false) => Reply::fail(StatusCode::NOT_FOUND, "DataKey not found"),
        Err(e) => write_failed(&e),
    }
}

/// A span of seconds as the limit messages say it: whole days where it is some.
fn span(secs: u64) -> String {
    match secs {
        86_400 => "1 day".to_string(),
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        1 => "1 second".to_string(),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_needs_utf8_and_paired_surrogates() {
        for good in [
            &br#"{"a":"\ud83d\ude00"}"#[..],
            br#"{"a":"\\ud800"}"#,
            br#"["\u0041\n\"\\", 1e400, null]"#,
            "{\"caf\u{e9}\":\"\u{1f600}\"}".as_bytes(),
        ] {
            assert!(is_json_text(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"{\"a\":\"\xff\xfe\"}"[..],
            b"{\"\xc3\":1}",
            br#"{"value":"\ud800"}"#,
            br#"{"value":"\ud800x"}"#,
            br#"{"value":"\ud800\u0041"}"#,
            br#"{"value":"\udc00"}"#,
            br#"{"value":"\ude00\ud83d"}"#,
            br#"["\ud83d"]"#,
            b"{\"a\":",
        ] {
            assert!(!is_json_text(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_full_disk_is_507_in_flash_shape() {
        let e = WriteError::DiskFull("no space left on device".into());
        let resp = write_failed(&e).into_response(HeaderValue::from_str("k").ok());
        assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
        let h = resp.headers();
        assert_eq!(
            h.get(&SUCCESS).map(HeaderValue::as_bytes),
            Some(&b"false"[..])
        );
        assert_eq!(h.get(&COUNT).map(HeaderValue::as_bytes), Some(&b"0"[..]));
        assert_eq!(h.get(&DATA_KEY).map(HeaderValue::as_bytes), Some(&b"k"[..]));
        let message = h
            .get(&RESPONSE_MESSAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(message.contains("disk is full"), "{message}");
        let poisoned = write_failed(&WriteError::Poisoned("EIO".into())).into_response(None);
        assert_eq!(poisoned.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
