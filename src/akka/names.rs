//! `/cacheName…`: create/update a cacheName with a description, get it, list all, list its
//! keys, flush its items, delete it. A cacheName exists while its engine namespace does; its
//! description lives in the tenant's description namespace.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use ttlcask_engine::{PutOptions, Store, WriteError};

use super::{bad_request, storage_error, write_error, Ctx};
use crate::http::{self, blocking, empty, Resp};
use crate::namespace;

#[derive(Deserialize)]
struct CacheNameCreate {
    #[serde(default, rename = "cacheName")]
    cache_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Serialize)]
struct CacheNameEntry {
    #[serde(rename = "cacheName")]
    cache_name: String,
    description: String,
}

fn missing(name: &str) -> Resp {
    bad_request(format!("cacheName {name} does not exist"))
}

fn description(s: &Store, tenant: &str, name: &str) -> String {
    s.get(&namespace::akka_descriptions(tenant), name.as_bytes())
        .ok()
        .flatten()
        .map(|i| String::from_utf8_lossy(&i.value).into_owned())
        .unwrap_or_default()
}

async fn parse(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<(String, String), Resp> {
    let body: CacheNameCreate = ctx.json_body(req).await?;
    let name = body.cache_name.unwrap_or_default();
    ctx.check_cache_name(&name).map_err(bad_request)?;
    Ok((name, body.description.unwrap_or_default()))
}

/// `POST /cacheName`: create or update (201).
pub async fn create(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let (name, desc) = match parse(ctx, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let tenant = ctx.caller.tenant().to_string();
    let ns = ctx.ns(&name);
    let result = blocking(&ctx.state.store, move |s| -> Result<(), WriteError> {
        s.put(
            &namespace::akka_descriptions(&tenant),
            name.as_bytes(),
            desc.as_bytes(),
            PutOptions::default(),
        )?;
        s.create_namespace(&ns)?;
        Ok(())
    })
    .await;
    match result {
        Ok(Ok(())) => empty(StatusCode::CREATED),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `PUT /cacheName`: update the description of an existing name (202).
pub async fn update(ctx: &Ctx<'_>, req: Request<Incoming>) -> Resp {
    let (name, desc) = match parse(ctx, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let tenant = ctx.caller.tenant().to_string();
    let ns = ctx.ns(&name);
    let n = name.clone();
    let result = blocking(&ctx.state.store, move |s| -> Result<bool, WriteError> {
        if s.namespace(&ns).is_none() {
            return Ok(false);
        }
        s.put(
            &namespace::akka_descriptions(&tenant),
            n.as_bytes(),
            desc.as_bytes(),
            PutOptions::default(),
        )?;
        Ok(true)
    })
    .await;
    match result {
        Ok(Ok(true)) => empty(StatusCode::ACCEPTED),
        Ok(Ok(false)) => missing(&name),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `GET /cacheName/list`: the bare array of names and descriptions.
pub async fn list(ctx: &Ctx<'_>) -> Resp {
    let tenant = ctx.caller.tenant().to_string();
    let listed = blocking(&ctx.state.store, move |s| {
        let prefix = namespace::akka_prefix(&tenant);
        s.namespaces(&prefix)
            .into_iter()
            .map(|info| {
                let name = String::from_utf8_lossy(&info.name[prefix.len()..]).into_owned();
                CacheNameEntry {
                    description: description(s, &tenant, &name),
                    cache_name: name,
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

/// `GET /cacheName/{c}`.
pub async fn get(ctx: &Ctx<'_>, name: String) -> Resp {
    if let Err(reason) = ctx.check_cache_name(&name) {
        return bad_request(reason);
    }
    let tenant = ctx.caller.tenant().to_string();
    let ns = ctx.ns(&name);
    let n = name.clone();
    let found = blocking(&ctx.state.store, move |s| {
        s.namespace(&ns).map(|_| description(s, &tenant, &n))
    })
    .await;
    match found {
        Ok(Some(desc)) => http::json(
            StatusCode::OK,
            &json!({ "cacheName": name, "description": desc, "deleted": false }),
        ),
        Ok(None) => missing(&name),
        Err(e) => storage_error(e),
    }
}

/// `GET /cacheName/{c}/keys`: live keys, sorted.
pub async fn keys(ctx: &Ctx<'_>, name: String) -> Resp {
    if let Err(reason) = ctx.check_cache_name(&name) {
        return bad_request(reason);
    }
    let ns = ctx.ns(&name);
    let found = blocking(&ctx.state.store, move |s| {
        s.namespace(&ns)?;
        let mut keys: Vec<String> = s
            .keys(&ns)
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect();
        keys.sort_unstable();
        Some(keys)
    })
    .await;
    match found {
        Ok(Some(keys)) => http::json(StatusCode::OK, &json!({ "cacheName": name, "keys": keys })),
        Ok(None) => missing(&name),
        Err(e) => storage_error(e),
    }
}

/// `PUT /cacheName/{c}/flush`: remove every item, keep the name (202).
pub async fn flush(ctx: &Ctx<'_>, name: String) -> Resp {
    if let Err(reason) = ctx.check_cache_name(&name) {
        return bad_request(reason);
    }
    let ns = ctx.ns(&name);
    match blocking(&ctx.state.store, move |s| s.clear_namespace(&ns)).await {
        Ok(Ok(true)) => empty(StatusCode::ACCEPTED),
        Ok(Ok(false)) => missing(&name),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /cacheName/{c}`: remove the name and its items (202).
pub async fn delete(ctx: &Ctx<'_>, name: String) -> Resp {
    if let Err(reason) = ctx.check_cache_name(&name) {
        return bad_request(reason);
    }
    let tenant = ctx.caller.tenant().to_string();
    let ns = ctx.ns(&name);
    let n = name.clone();
    let result = blocking(&ctx.state.store, move |s| -> Result<bool, WriteError> {
        if !s.drop_namespace(&ns)? {
            return Ok(false);
        }
        s.delete(&namespace::akka_descriptions(&tenant), n.as_bytes())?;
        Ok(true)
    })
    .await;
    match result {
        Ok(Ok(true)) => empty(StatusCode::ACCEPTED),
        Ok(Ok(false)) => missing(&name),
        Ok(Err(e)) => write_error(&e),
        Err(e) => storage_error(e),
    }
}
