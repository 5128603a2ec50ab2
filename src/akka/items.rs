//! Single items: binary `GET`/`POST`/`DELETE /{cacheName}/{key}[/{ttlSeconds}]`, and the JSON
//! (base64) `GET /get/{cacheName}/{key}` and `POST /set`.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use ttlcask_engine::PutOptions;

use super::{bad_request, storage_error, write_error, Ctx};
use crate::http::{self, blocking, empty, read_body, with_body, Resp};

/// Standard base64; padding optional on input, always written on output.
pub const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `{"cacheName","key","success","value"}` of JSON get and batch get.
#[derive(Serialize)]
pub struct GetResult {
    #[serde(rename = "cacheName")]
    pub cache_name: String,
    pub key: String,
    pub success: bool,
    pub value: String,
}

/// A JSON item write (`/set` and each batch item).
#[derive(Deserialize)]
pub struct CacheRequest {
    #[serde(default, rename = "cacheName")]
    pub cache_name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, rename = "ttlSeconds", deserialize_with = "ttl_seconds")]
    pub ttl_seconds: Option<i64>,
}

/// Why a `ttlSeconds` is refused: it says the bound, which an integer above it passes
/// (found from outside: "must be an integer" for an integer).
const TTL_NOT_AN_INTEGER: &str =
    "ttlSeconds must be an integer number of seconds, at most 18446744073709551615 (0 or less: no expiry)";

/// `ttlSeconds`: an integer (above `i64::MAX` is as good as never), or null; any other
/// type is refused, never ignored (DESIGN.md "Limits and bad input").
fn ttl_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => {
            Ok(Some(n.as_i64().unwrap_or(i64::MAX)))
        }
        _ => Err(serde::de::Error::custom(TTL_NOT_AN_INTEGER)),
    }
}

/// A validated write.
pub struct Write {
    pub cache_name: String,
    pub key: String,
    pub value: Vec<u8>,
    pub options: PutOptions,
}

impl CacheRequest {
    /// Validates names, decodes the value (`Err(true)`: bad base64, which fails a whole
    /// request), and computes the expiry.
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Write, (bool, String)> {
        let cache_name = self.cache_name.unwrap_or_default();
        let key = self.key.unwrap_or_default();
        let value = BASE64
            .decode(self.value.unwrap_or_default())
            .map_err(|e| (true, format!("value is not valid base64: {e}")))?;
        ctx.check_cache_name(&cache_name).map_err(|r| (false, r))?;
        ctx.check_key(&key).map_err(|r| (false, r))?;
        let limit = ctx.state.config.limits.akka_value_bytes;
        if value.len() > limit {
            return Err((false, format!("value is larger than {limit} bytes")));
        }
        Ok(Write {
            options: PutOptions {
                expires_at_ms: ctx.expiry(self.ttl_seconds),
                kind: 0,
                ..PutOptions::default()
            },
            cache_name,
            key,
            value,
        })
    }
}

async fn store_one(ctx: &Ctx<'_>, w: Write) -> Resp {
    if let Err(reason) = ctx.check_quota().await {
        return bad_request(reason);
    }
    let ns = ctx.ns(&w.cache_name);
    let value = w.value.to_vec();
    match http::put_item(
        &ctx.state.store,
        ns,
        w.key.into_bytes(),
        value,
        w.options,
        None,
    )
    .await
    {
        Ok(Ok(_)) => empty(StatusCode::CREATED),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

fn check_names(ctx: &Ctx<'_>, cache_name: &str, key: &str) -> Result<(), Resp> {
    ctx.check_cache_name(cache_name).map_err(bad_request)?;
    ctx.check_key(key).map_err(bad_request)
}

/// `GET /{c}/{k}`: the raw value, or 404 with an empty body.
pub async fn binary_get(ctx: &Ctx<'_>, cache_name: &str, key: &str) -> Resp {
    if let Err(r) = check_names(ctx, cache_name, key) {
        return r;
    }
    let ns = ctx.ns(cache_name);
    match http::get_item(ctx.state, &ns, key.as_bytes()).await {
        Ok(Ok(Some(item))) => with_body(StatusCode::OK, http::OCTET_STREAM, item.value),
        Ok(Ok(None)) => empty(StatusCode::NOT_FOUND),
        Ok(Err(e)) => storage_error(e),
        Err(e) => storage_error(e),
    }
}

/// `POST /{c}/{k}[/{ttlSeconds}]` with an `application/octet-stream` body (201).
pub async fn binary_post(
    ctx: &Ctx<'_>,
    cache_name: String,
    key: String,
    ttl: Option<String>,
    req: Request<Incoming>,
) -> Resp {
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !media.eq_ignore_ascii_case("application/octet-stream") {
            return bad_request("This service only accepts application/octet-stream");
        }
    }
    if let Err(r) = check_names(ctx, &cache_name, &key) {
        return r;
    }
    // As the JSON routes take it: a JSON integer (no `+`, no leading zero), above
    // `i64::MAX` (up to `u64::MAX`) as good as never. Found from outside: this route refused
    // what `/set` and `/batch` took, and took `+5` and `05`, which they refuse.
    let ttl_seconds = match ttl.as_deref().map(|t| {
        let digits = t.strip_prefix('-').unwrap_or(t);
        let json_integer = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !json_integer {
            return Err(());
        }
        t.parse::<i64>()
            .or_else(|_| t.parse::<u64>().map(|_| i64::MAX))
            .map_err(|_| ())
    }) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return bad_request(TTL_NOT_AN_INTEGER),
    };
    let limit = ctx.state.config.limits.akka_value_bytes;
    let budget = Some((&ctx.state.body_budget, ctx.caller.tenant()));
    let value = match read_body(req, limit, budget).await {
        Ok(b) => b.to_vec(),
        Err(e) => return super::body_error(&e),
    };
    let write = Write {
        options: PutOptions {
            expires_at_ms: ctx.expiry(ttl_seconds),
            kind: 0,
            ..PutOptions::default()
        },
        cache_name,
        key,
        value,
    };
    store_one(ctx, write).await
}

/// `DELETE /{c}/{k}` (202; 400 when there is no such item).
pub async fn delete(ctx: &Ctx<'_>, cache_name: String, key: String) -> Resp {
    if let Err(r) = check_names(ctx, &cache_name, &key) {
        return r;
    }
    let ns = ctx.ns(&cache_name);
    let k = key.clone();
    match blocking(&ctx.state.store, move |s| s.delete(&ns, k.as_bytes())).await {
        Ok(Ok(true)) => empty(StatusCode::ACCEPTED),
        Ok(Ok(false)) => bad_request(format!(
            "No cached object for key {key} in cacheName {cache_name}"
        )),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `GET /get/{c}/{k}`: always 200; `success: false` and an empty value when missing.
pub async fn json_get(ctx: &Ctx<'_>, cache_name: String, key: String) -> Resp {
    if let Err(r) = check_names(ctx, &cache_name, &key) {
        return r;
    }
    let ns = ctx.ns(&cache_name);
    match http::get_item(ctx.state, &ns, key.as_bytes()).await {
        Ok(Ok(found)) => {
            // Always 200, so the router cannot tell a hit from a miss: count it here.
            let hit = u64::from(found.is_some());
            ctx.state.metrics.lookups(hit, 1 - hit);
            http::json(
                StatusCode::OK,
                &GetResult {
                    cache_name,
                    key,
                    success: found.is_some(),
                    value: found.map(|i| BASE64.encode(&i.value)).unwrap_or_default(),
                },
            )
        }
        Ok(Err(e)) => storage_error(e),
        Err(e) => storage_error(e),
    }
}

/// `POST /set` with a base64 value (201).
pub async fn set(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let request: CacheRequest = match ctx.json_body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match request.validate(ctx) {
        Ok(write) => store_one(ctx, write).await,
        Err((_, reason)) => bad_request(reason),
    }
}
