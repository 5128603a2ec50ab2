//! Batches: `POST /batch` (create), `POST /batch/get`, `DELETE /batch`. Valid items of a
//! create or delete go to the engine as one `WriteBatch` (one record, one fsync); every item
//! gets its own `success`, in request order.

use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use ttlcask_engine::{BatchOutcome, Item, ReadError, WriteBatch};

use super::items::{CacheRequest, GetResult, Write, BASE64};
use super::{bad_request, storage_error, write_error, Ctx};
use crate::http::{self, blocking, Resp};

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "cacheRequests")]
    cache_requests: Vec<CacheRequest>,
}

#[derive(Deserialize)]
struct KeyRef {
    #[serde(default, rename = "cacheName")]
    cache_name: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
struct KeysBody {
    #[serde(rename = "getCachedBatch")]
    get_cached_batch: Vec<KeyRef>,
}

#[derive(Serialize)]
struct ItemResult {
    #[serde(rename = "cacheName")]
    cache_name: String,
    key: String,
    success: bool,
}

#[derive(Serialize)]
struct CreateResponse {
    complete: bool,
    results: Vec<ItemResult>,
}

#[derive(Serialize)]
struct GetResponse {
    complete: bool,
    results: Vec<GetResult>,
}

#[derive(Serialize)]
struct DeleteResponse {
    success: bool,
    #[serde(rename = "cacheDeleteResponses")]
    cache_delete_responses: Vec<ItemResult>,
}

fn too_many(ctx: &Ctx<'_>, n: usize) -> Option<Resp> {
    let max = ctx.state.config.limits.akka_batch_items;
    (n > max).then(|| bad_request(format!("a batch holds at most {max} items, got {n}")))
}

/// `POST /batch`.
pub async fn create(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let body: CreateBody = match ctx.json_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = too_many(ctx, body.cache_requests.len()) {
        return r;
    }
    let mut names = Vec::with_capacity(body.cache_requests.len());
    let mut writes: Vec<Option<Write>> = Vec::with_capacity(body.cache_requests.len());
    for request in body.cache_requests {
        names.push((
            request.cache_name.clone().unwrap_or_default(),
            request.key.clone().unwrap_or_default(),
        ));
        match request.validate(ctx) {
            Ok(w) => writes.push(Some(w)),
            // Bad base64 makes the body undecodable: the whole batch is refused.
            Err((true, reason)) => return bad_request(reason),
            Err((false, _)) => writes.push(None),
        }
    }
    if ctx.check_quota().await.is_err() {
        let results = names
            .into_iter()
            .map(|(cache_name, key)| ItemResult {
                cache_name,
                key,
                success: false,
            })
            .collect();
        return http::json(
            StatusCode::OK,
            &CreateResponse {
                complete: false,
                results,
            },
        );
    }
    let mut batch = WriteBatch::new();
    for w in writes.iter().flatten() {
        batch.put(
            &ctx.ns(&w.cache_name),
            w.key.as_bytes(),
            &w.value,
            w.options,
        );
    }
    if !batch.is_empty() {
        match blocking(&ctx.state.store, move |s| s.write_batch(batch)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return write_error(&e),
            Err(e) => return storage_error(e),
        }
    }
    if writes.iter().all(Option::is_some) {
        return http::json(
            StatusCode::OK,
            &CreateResponse {
                complete: true,
                results: Vec::new(),
            },
        );
    }
    let results = names
        .into_iter()
        .zip(&writes)
        .map(|((cache_name, key), w)| ItemResult {
            cache_name,
            key,
            success: w.is_some(),
        })
        .collect();
    http::json(
        StatusCode::OK,
        &CreateResponse {
            complete: false,
            results,
        },
    )
}

fn valid_refs(ctx: &Ctx<'_>, refs: Vec<KeyRef>) -> Vec<(String, String, bool)> {
    refs.into_iter()
        .map(|r| {
            let c = r.cache_name.unwrap_or_default();
            let k = r.key.unwrap_or_default();
            let ok = ctx.check_cache_name(&c).is_ok() && ctx.check_key(&k).is_ok();
            (c, k, ok)
        })
        .collect()
}

/// `POST /batch/get`.
pub async fn get(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let body: KeysBody = match ctx.json_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = too_many(ctx, body.get_cached_batch.len()) {
        return r;
    }
    let refs: Vec<_> = valid_refs(ctx, body.get_cached_batch)
        .into_iter()
        .map(|(c, k, ok)| (ctx.ns(&c), c, k, ok))
        .collect();
    let damaged = ctx.state.damaged_reads.clone();
    let results = blocking(&ctx.state.store, move |s| {
        let mut found: Vec<Option<Item>> = vec![None; refs.len()];
        // The valid keys of each cache, read together (`get_many` overlaps their lookups).
        let mut by_cache: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (i, (ns, _, _, ok)) in refs.iter().enumerate() {
            if *ok {
                by_cache.entry(ns).or_default().push(i);
            }
        }
        for (ns, at) in by_cache {
            let keys: Vec<&[u8]> = at.iter().map(|&i| refs[i].2.as_bytes()).collect();
            for (i, read) in at.into_iter().zip(s.get_many(ns, &keys)) {
                // A damaged or lost record is a miss, as in a single get.
                found[i] = damaged.as_miss(read)?;
            }
        }
        Ok::<_, ReadError>(
            refs.into_iter()
                .zip(found)
                .map(|((_, cache_name, key, _), item)| GetResult {
                    success: item.is_some(),
                    value: item.map(|i| BASE64.encode(&i.value)).unwrap_or_default(),
                    cache_name,
                    key,
                })
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match results {
        Ok(Ok(results)) => {
            // Always 200: each item is a lookup, counted here.
            let hits = results.iter().filter(|r| r.success).count() as u64;
            ctx.state.metrics.lookups(hits, results.len() as u64 - hits);
            http::json(
                StatusCode::OK,
                &GetResponse {
                    complete: true,
                    results,
                },
            )
        }
        Ok(Err(e)) => storage_error(e),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /batch`.
pub async fn delete(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let body: KeysBody = match ctx.json_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = too_many(ctx, body.get_cached_batch.len()) {
        return r;
    }
    let refs = valid_refs(ctx, body.get_cached_batch);
    let mut batch = WriteBatch::new();
    for (c, k, _) in refs.iter().filter(|r| r.2) {
        batch.delete(&ctx.ns(c), k.as_bytes());
    }
    let outcomes = if batch.is_empty() {
        Vec::new()
    } else {
        match blocking(&ctx.state.store, move |s| s.write_batch(batch)).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return write_error(&e),
            Err(e) => return storage_error(e),
        }
    };
    let mut outcomes = outcomes.into_iter();
    let results: Vec<ItemResult> = refs
        .into_iter()
        .map(|(cache_name, key, ok)| ItemResult {
            success: ok && outcomes.next() == Some(BatchOutcome::Deleted),
            cache_name,
            key,
        })
        .collect();
    http::json(
        StatusCode::OK,
        &DeleteResponse {
            success: results.iter().all(|r| r.success),
            cache_delete_responses: results,
        },
    )
}
