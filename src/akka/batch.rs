//! Batches: `POST /batch` (create), `POST /batch/get`, `DELETE /batch`. Valid items of a
//! create or delete go to the engine as one `WriteBatch` (one record, one fsync); every item
//! gets its own `success`, in request order.

use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use ttlcask_engine::{BatchOutcome, Item, ReadError, WriteBatch};

use super::items::{CacheRequest, Write, BASE64};
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
    let (store, damaged, metrics) = (
        ctx.state.store.clone(),
        ctx.state.damaged_reads.clone(),
        ctx.state.metrics.clone(),
    );
    let (answer, answered) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut out = Answer::new(answer);
        out.buf
            .extend_from_slice(br#"{"complete":true,"results":["#);
        let (mut hits, mut misses) = (0, 0);
        // Keys read together: 1 at first, doubled up to GET_STEP while a step's values stay
        // small, so that a batch of large values holds one at a time.
        let (mut at, mut step_len) = (0, 1);
        while at < refs.len() {
            let step = &refs[at..(at + step_len).min(refs.len())];
            let found = match read_step(&store, &damaged, step) {
                Ok(found) => found,
                Err(e) => return out.fail(e),
            };
            let bytes: usize = found.iter().flatten().map(|i| i.value.len()).sum();
            step_len = if bytes <= WHOLE_UP_TO {
                (step_len * 2).min(GET_STEP)
            } else {
                1
            };
            for ((_, cache_name, key, _), item) in step.iter().zip(found) {
                if at > 0 {
                    out.buf.push(b',');
                }
                at += 1;
                hits += u64::from(item.is_some());
                misses += u64::from(item.is_none());
                // As serde writes a `GetResult`, with the value's base64 written a piece at a
                // time (each a multiple of 3 bytes, so the pieces join into the whole).
                out.buf.extend_from_slice(br#"{"cacheName":"#);
                http::push_json_str(&mut out.buf, cache_name);
                out.buf.extend_from_slice(br#","key":"#);
                http::push_json_str(&mut out.buf, key);
                out.buf.extend_from_slice(if item.is_some() {
                    br#","success":true,"value":""#
                } else {
                    br#","success":false,"value":""#
                });
                for piece in item.iter().flat_map(|i| i.value.chunks(BASE64_PIECE)) {
                    let start = out.buf.len();
                    let len = base64::encoded_len(piece.len(), true).unwrap_or(0);
                    out.buf.resize(start + len, 0);
                    let written = BASE64
                        .encode_slice(piece, &mut out.buf[start..])
                        .unwrap_or(0);
                    out.buf.truncate(start + written);
                    if !out.flush(false) {
                        return;
                    }
                }
                out.buf.extend_from_slice(br#""}"#);
                if !out.flush(false) {
                    return;
                }
            }
        }
        // Always 200: each item is a lookup, counted here.
        metrics.lookups(hits, misses);
        out.buf.extend_from_slice(b"]}");
        out.flush(true);
    });
    match answered.await {
        Ok(Answered::Whole(body)) => http::with_body(StatusCode::OK, http::JSON, body),
        Ok(Answered::Streamed(body)) => {
            let mut resp = hyper::Response::new(body);
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(http::JSON),
            );
            resp
        }
        Ok(Answered::Failed(e)) => storage_error(e),
        Err(e) => storage_error(format!("internal task failed: {e}")),
    }
}

/// Items of a batch get read, and their answers written, at a time (`get_many` takes 16
/// keys at a time).
const GET_STEP: usize = 16;
/// Bytes of a value base64-encoded at a time into a batch get's answer (a multiple of 3).
const BASE64_PIECE: usize = 3 << 18;

/// An answer up to this size is sent whole (with its length, and a 500 if a read fails);
/// a larger one is streamed as it is written, in chunks of about this size, a few ahead of
/// the client. Found from outside: answers were built whole, and 20 asks for one 8 MiB
/// value made the server hold 1 GB (the 1,000 the item limit allows: some 30 GB).
const WHOLE_UP_TO: usize = 1 << 20;
/// Chunks a streamed answer may run ahead of the client.
const CHUNKS_AHEAD: usize = 4;

/// What a batch get's reading task hands the handler: the answer, or its stream.
enum Answered {
    Whole(Vec<u8>),
    Streamed(http::Body),
    Failed(ReadError),
}

/// A batch get's answer being written: in `buf` until it outgrows [`WHOLE_UP_TO`], then
/// sent chunk by chunk.
struct Answer {
    buf: Vec<u8>,
    handler: Option<tokio::sync::oneshot::Sender<Answered>>,
    stream: Option<tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>>,
}

impl Answer {
    fn new(handler: tokio::sync::oneshot::Sender<Answered>) -> Self {
        Self {
            buf: Vec::new(),
            handler: Some(handler),
            stream: None,
        }
    }

    /// Sends what is written once it makes a chunk (`done`: all of it, the end); false if
    /// the client went away.
    fn flush(&mut self, done: bool) -> bool {
        if self.stream.is_none() {
            if done {
                if let Some(h) = self.handler.take() {
                    let _ = h.send(Answered::Whole(std::mem::take(&mut self.buf)));
                }
                return true;
            }
            if self.buf.len() < WHOLE_UP_TO {
                return true;
            }
            let (tx, body) = http::Body::channel(CHUNKS_AHEAD);
            self.stream = Some(tx);
            if let Some(h) = self.handler.take() {
                if h.send(Answered::Streamed(body)).is_err() {
                    return false;
                }
            }
        }
        if !done && self.buf.len() < WHOLE_UP_TO {
            return true;
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.buf));
        self.stream
            .as_ref()
            .is_some_and(|tx| tx.blocking_send(Ok(chunk)).is_ok())
    }

    /// A read failed: a 500 if nothing was sent yet, else the stream is cut short (the
    /// client sees an answer that never ends, never a complete wrong one).
    fn fail(mut self, e: ReadError) {
        if let Some(h) = self.handler.take() {
            let _ = h.send(Answered::Failed(e));
        } else if let Some(tx) = &self.stream {
            tracing::warn!(error = %e, "batch get failed; the answer is cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    }
}

/// The items of one step of a batch get, in its order: each cache's valid keys read together
/// (`get_many` overlaps their lookups); a damaged or lost record is a miss, as in a single
/// get.
fn read_step(
    store: &ttlcask_engine::Store,
    damaged: &crate::faults::DamagedReads,
    step: &[(Vec<u8>, String, String, bool)],
) -> Result<Vec<Option<Item>>, ReadError> {
    let mut found: Vec<Option<Item>> = vec![None; step.len()];
    let mut by_cache: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, (ns, _, _, ok)) in step.iter().enumerate() {
        if *ok {
            by_cache.entry(ns).or_default().push(i);
        }
    }
    for (ns, at) in by_cache {
        let keys: Vec<&[u8]> = at.iter().map(|&i| step[i].2.as_bytes()).collect();
        for (i, read) in at.into_iter().zip(store.get_many(ns, &keys)) {
            found[i] = damaged.as_miss(read)?;
        }
    }
    Ok(found)
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
