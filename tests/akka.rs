//! Akka Cache over real HTTP: every curl example of the document replayed with the sample
//! JWT (and the README's block of them, in its order, as written), then DESIGN.md's decisions (statuses from the Responses sections, cacheName
//! lifecycle, batch shapes, TTL, content type, CORS). JWT checks and tenants: `akka_tenants.rs`.

mod akka_support;
mod common;

use common::{start_dev, SAMPLE_JWT};
use serde_json::{json, Value};

use akka_support::*;

const JSON: Option<&str> = Some("application/json");

const OCTET: Option<&str> = Some("application/octet-stream");

fn assert_empty(r: &common::Resp, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("Content-Length"), Some("0"), "{r:?}");
    assert!(r.body.is_empty());
}

fn assert_json(r: &common::Resp, expected: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.text(), expected, "exact body");
    assert_eq!(
        r.header("Content-Length"),
        Some(expected.len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_examples_replay() {
    let (s, _dir) = start_dev().await;
    // Cache Name Post.
    let r = akka(
        &s,
        "POST",
        "/cacheName",
        JSON,
        r#"{"cacheName":"cache1", "description":"This is our first test"}"#,
    )
    .await;
    assert_empty(&r, 201);
    // Cache Name Get (the transcript's exact 77-byte body).
    let r = akka(&s, "GET", "/cacheName/cache1", JSON, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"cache1","description":"This is our first test","deleted":false}"#,
    );
    // Cache Name Put.
    let r = akka(
        &s,
        "PUT",
        "/cacheName",
        JSON,
        r#"{"cacheName":"cache1", "description":"This is our first test modified"}"#,
    )
    .await;
    assert_empty(&r, 202);
    let r = akka(&s, "GET", "/cacheName/cache1", JSON, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"cache1","description":"This is our first test modified","deleted":false}"#,
    );

    // Cache Create with TTL (binary), Cache Create (binary).
    let r = akka(
        &s,
        "POST",
        "/cache1/key1/30",
        OCTET,
        "This is our first test",
    )
    .await;
    assert_empty(&r, 201);
    let r = akka(&s, "POST", "/cache1/key2", OCTET, "This is our second test").await;
    assert_empty(&r, 201);
    // Cache Get (JSON): the transcript's exact body.
    let r = akka(&s, "GET", "/get/cache1/key2", None, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"cache1","key":"key2","success":true,"value":"VGhpcyBpcyBvdXIgc2Vjb25kIHRlc3Q="}"#,
    );
    // Cache Set (JSON).
    let r = akka(
        &s,
        "POST",
        "/set",
        JSON,
        r#"{"cacheName":"cache1", "key":"key1", "value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiBvbmU="}"#,
    )
    .await;
    assert_empty(&r, 201);

    // Cache Get (binary) as in the transcript: key32 = payload32.
    let r = akka(&s, "POST", "/cache1/key32", OCTET, "payload32").await;
    assert_empty(&r, 201);
    let r = akka(&s, "POST", "/cache1/key31", OCTET, "payload31").await;
    assert_empty(&r, 201);
    let r = akka(&s, "GET", "/cache1/key32", None, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("Content-Length"), Some("9"));
    assert_eq!(r.text(), "payload32");

    // Cache Name Get Keys.
    let r = akka(&s, "GET", "/cacheName/cache1/keys", JSON, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"cache1","keys":["key1","key2","key31","key32"]}"#,
    );

    // Cache Delete.
    let r = akka(&s, "DELETE", "/cache1/key31", None, "").await;
    assert_empty(&r, 202);

    // Batch Create: the transcript's exact reply.
    let batch = r#"{ "cacheRequests" : [{"cacheName":"cache1", "key":"key1", "value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiBvbmU="}, {"cacheName":"cache1", "key":"key2", "value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiB0d28="}, {"cacheName":"cache1", "key":"key3", "value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiB0aHJlZQ=="}, {"cacheName":"cache1", "key":"key2", "value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiB0d28="}]}"#;
    let r = akka(&s, "POST", "/batch", JSON, batch).await;
    assert_json(&r, r#"{"complete":true,"results":[]}"#);
    // Batch Get: the transcript's exact 327-byte reply.
    let get = r#"{"getCachedBatch" : [{"cacheName":"cache1", "key":"key3"}, {"cacheName":"cache1", "key":"key2"},  {"cacheName":"cache1", "key":"key1"}]}"#;
    let r = akka(&s, "POST", "/batch/get", JSON, get).await;
    assert_json(
        &r,
        r#"{"complete":true,"results":[{"cacheName":"cache1","key":"key3","success":true,"value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiB0aHJlZQ=="},{"cacheName":"cache1","key":"key2","success":true,"value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiB0d28="},{"cacheName":"cache1","key":"key1","success":true,"value":"dGhpcyBpcyB0aGUgcGF5bG9hZCBvZiBvbmU="}]}"#,
    );
    // The document's Batch Get command as curl sends it (README: its two -d bodies joined with
    // `&`, its Content-Type header twice): the invalid JSON is what is refused, not the
    // repeated header (it was, found from outside).
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = s
        .req(
            "POST",
            "/batch/get",
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
                ("Content-Type", "application/json"),
            ],
            format!("{get}&{get}").as_bytes(),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().starts_with("invalid JSON body"), "{r:?}");
    // Batch Delete: as the transcript, without the org prefix it leaked.
    let del = r#"{"getCachedBatch" : [{"cacheName":"cache1", "key":"key3"}, {"cacheName":"cache1", "key":"key2"}]}"#;
    let r = akka(&s, "DELETE", "/batch", JSON, del).await;
    assert_json(
        &r,
        r#"{"success":true,"cacheDeleteResponses":[{"cacheName":"cache1","key":"key3","success":true},{"cacheName":"cache1","key":"key2","success":true}]}"#,
    );

    // Cache Name List.
    let r = akka(&s, "GET", "/cacheName/list", None, "").await;
    assert_json(
        &r,
        r#"[{"cacheName":"cache1","description":"This is our first test modified"}]"#,
    );

    // Cache Name Flush: items gone, name stays.
    let r = akka(&s, "PUT", "/cacheName/cache1/flush", JSON, "").await;
    assert_empty(&r, 202);
    let r = akka(&s, "GET", "/cacheName/cache1/keys", JSON, "").await;
    assert_json(&r, r#"{"cacheName":"cache1","keys":[]}"#);
    let r = akka(&s, "GET", "/cacheName/cache1", JSON, "").await;
    assert_eq!(r.status, 200);

    // Cache Name Delete (Responses section: 202).
    let r = akka(&s, "DELETE", "/cacheName/cache1", None, "").await;
    assert_empty(&r, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_name_lifecycle() {
    let (s, _dir) = start_dev().await;
    for (method, path) in [
        ("GET", "/cacheName/ghost"),
        ("GET", "/cacheName/ghost/keys"),
        ("PUT", "/cacheName/ghost/flush"),
        ("DELETE", "/cacheName/ghost"),
    ] {
        let r = akka(&s, method, path, None, "").await;
        assert_eq!(r.status, 400, "{method} {path}");
        assert!(r
            .header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain"));
        assert!(
            !r.text().contains("ttorg"),
            "no org prefix leaks: {}",
            r.text()
        );
    }
    let r = akka(
        &s,
        "PUT",
        "/cacheName",
        JSON,
        r#"{"cacheName":"ghost","description":"d"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "PUT of an unknown name");

    // Writing creates the name with an empty description.
    assert_empty(&akka(&s, "POST", "/auto/k", OCTET, "v").await, 201);
    let r = akka(&s, "GET", "/cacheName/auto", None, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"auto","description":"","deleted":false}"#,
    );

    // Delete: the name and its items are gone; POST brings it back empty.
    assert_empty(&akka(&s, "DELETE", "/cacheName/auto", None, "").await, 202);
    assert_eq!(
        akka(&s, "GET", "/cacheName/auto", None, "").await.status,
        400
    );
    assert_eq!(
        akka(&s, "DELETE", "/cacheName/auto", None, "").await.status,
        400
    );
    assert_empty(
        &akka(&s, "POST", "/cacheName", JSON, r#"{"cacheName":"auto"}"#).await,
        201,
    );
    let r = akka(&s, "GET", "/cacheName/auto/keys", None, "").await;
    assert_json(&r, r#"{"cacheName":"auto","keys":[]}"#);
    assert_eq!(akka(&s, "GET", "/auto/k", None, "").await.status, 404);

    // Names that collide with other routes, empty and missing names.
    for name in [
        "list",
        "v1",
        "1",
        "healthz",
        "admin",
        "batch",
        "cacheName",
        "version",
    ] {
        let r = akka(
            &s,
            "POST",
            "/cacheName",
            JSON,
            &json!({"cacheName": name}).to_string(),
        )
        .await;
        assert_eq!(r.status, 400, "{name}");
    }
    for body in [r#"{"cacheName":""}"#, r#"{"description":"x"}"#, "not json"] {
        assert_eq!(
            akka(&s, "POST", "/cacheName", JSON, body).await.status,
            400,
            "{body}"
        );
    }
    let r = akka(&s, "GET", "/cacheName/list", None, "").await;
    assert_json(&r, r#"[{"cacheName":"auto","description":""}]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_misses_ttl_and_content_type() {
    let (s, _dir) = start_dev().await;
    let r = akka(&s, "GET", "/c/missing", None, "").await;
    assert_empty(&r, 404);
    let r = akka(&s, "GET", "/get/c/missing", None, "").await;
    assert_json(
        &r,
        r#"{"cacheName":"c","key":"missing","success":false,"value":""}"#,
    );
    let r = akka(&s, "DELETE", "/c/missing", None, "").await;
    assert_eq!(r.status, 400);

    // Content types: anything but octet-stream is refused; none is taken as octet-stream.
    let r = akka(
        &s,
        "POST",
        "/c/k",
        Some("application/x-www-form-urlencoded"),
        "v",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "This service only accepts application/octet-stream"
    );
    assert_eq!(
        akka(&s, "GET", "/c/k", None, "").await.status,
        404,
        "nothing stored"
    );
    assert_empty(&akka(&s, "POST", "/c/k", None, "raw").await, 201);
    assert_eq!(akka(&s, "GET", "/c/k", None, "").await.text(), "raw");

    // TTL: positive expires, 0 / negative / absent mean never; a write without TTL clears it.
    assert_empty(&akka(&s, "POST", "/c/t10/10", OCTET, "a").await, 201);
    assert_empty(&akka(&s, "POST", "/c/t0/0", OCTET, "b").await, 201);
    assert_empty(&akka(&s, "POST", "/c/tneg/-5", OCTET, "c").await, 201);
    assert_empty(
        &akka(
            &s,
            "POST",
            "/set",
            JSON,
            r#"{"cacheName":"c","key":"j10","value":"YQ==","ttlSeconds":10}"#,
        )
        .await,
        201,
    );
    assert_empty(
        &akka(
            &s,
            "POST",
            "/set",
            JSON,
            r#"{"cacheName":"c","key":"j0","value":"YQ==","ttlSeconds":0}"#,
        )
        .await,
        201,
    );
    assert_empty(&akka(&s, "POST", "/c/cleared/10", OCTET, "d").await, 201);
    assert_empty(&akka(&s, "POST", "/c/cleared", OCTET, "e").await, 201);
    assert_eq!(akka(&s, "POST", "/c/bad/ten", OCTET, "x").await.status, 400);
    s.clock.advance_ms(11_000);
    for (key, alive) in [
        ("t10", false),
        ("t0", true),
        ("tneg", true),
        ("j10", false),
        ("j0", true),
        ("cleared", true),
    ] {
        assert_eq!(
            akka(&s, "GET", &format!("/c/{key}"), None, "").await.status == 200,
            alive,
            "{key}"
        );
    }
    let keys = akka(&s, "GET", "/cacheName/c/keys", None, "").await.json();
    assert_eq!(
        keys["keys"],
        json!(["cleared", "j0", "k", "t0", "tneg"]),
        "expired keys are not listed"
    );

    // JSON set: missing value is empty, bad base64 and missing names are 400, unknown fields ignored.
    assert_empty(
        &akka(
            &s,
            "POST",
            "/set",
            JSON,
            r#"{"cacheName":"c","key":"empty","extra":1}"#,
        )
        .await,
        201,
    );
    let r = akka(&s, "GET", "/c/empty", None, "").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    for body in [
        r#"{"cacheName":"c","key":"x","value":"!!!"}"#,
        r#"{"key":"x","value":"YQ=="}"#,
        r#"{"cacheName":"c","value":"YQ=="}"#,
        r#"{"cacheName":"c","key":"","value":"YQ=="}"#,
        "[1]",
        // ttlSeconds must be an integer (issue 11).
        r#"{"cacheName":"c","key":"x","value":"YQ==","ttlSeconds":"10"}"#,
        r#"{"cacheName":"c","key":"x","value":"YQ==","ttlSeconds":1.5}"#,
        r#"{"cacheName":"c","key":"x","value":"YQ==","ttlSeconds":true}"#,
        r#"{"cacheName":"c","key":"x","value":"YQ==","ttlSeconds":[10]}"#,
    ] {
        let r = akka(&s, "POST", "/set", JSON, body).await;
        assert_eq!(r.status, 400, "{body}");
        if body.contains("ttlSeconds") {
            assert!(r.text().contains("ttlSeconds must be an integer"), "{r:?}");
        }
    }
    assert_eq!(akka(&s, "GET", "/c/x", None, "").await.status, 404);
    // The binary route takes the ttlSeconds the JSON routes take, up to u64::MAX (found from
    // outside: it refused those above i64::MAX); one more is not an integer it can hold.
    let r = akka(&s, "POST", "/c/huge/18446744073709551615", OCTET, "v").await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = akka(&s, "POST", "/c/huge/18446744073709551616", OCTET, "v").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("at most 18446744073709551615"), "{r:?}");
    // Nor what a JSON integer is not (`/set` refuses them).
    for ttl in ["+5", "05", "-", "5a", "%2B5"] {
        let r = akka(&s, "POST", &format!("/c/odd/{ttl}"), OCTET, "v").await;
        assert_eq!(r.status, 400, "{ttl}: {r:?}");
    }
    // In a batch, a wrong type refuses the whole body: nothing of it is stored.
    let batch = r#"{"cacheRequests":[{"cacheName":"c","key":"x","value":"YQ=="},{"cacheName":"c","key":"y","value":"YQ==","ttlSeconds":"5"}]}"#;
    assert_eq!(akka(&s, "POST", "/batch", JSON, batch).await.status, 400);
    assert_eq!(akka(&s, "GET", "/c/x", None, "").await.status, 404);
    assert_eq!(akka(&s, "POST", "/c/x/1.5", OCTET, "v").await.status, 400);
    // null is absent: no expiry.
    let r = akka(
        &s,
        "POST",
        "/set",
        JSON,
        r#"{"cacheName":"c","key":"nullttl","value":"YQ==","ttlSeconds":null}"#,
    )
    .await;
    assert_empty(&r, 201);

    // Unknown route and wrong method.
    assert_eq!(akka(&s, "GET", "/a/b/c/d", None, "").await.status, 404);
    assert_eq!(akka(&s, "PUT", "/c/k", None, "").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_failures_are_listed_in_order() {
    let (s, _dir) = start_dev().await;
    let body = json!({"cacheRequests": [
        {"cacheName": "b", "key": "ok1", "value": "MQ=="},
        {"cacheName": "", "key": "nameless", "value": "Mg=="},
        {"cacheName": "b", "key": "ok2", "value": "Mw==", "ttlSeconds": 5},
        {"cacheName": "list", "key": "reserved", "value": "NA=="}
    ]});
    let r = akka(&s, "POST", "/batch", JSON, &body.to_string()).await;
    assert_json(
        &r,
        r#"{"complete":false,"results":[{"cacheName":"b","key":"ok1","success":true},{"cacheName":"","key":"nameless","success":false},{"cacheName":"b","key":"ok2","success":true},{"cacheName":"list","key":"reserved","success":false}]}"#,
    );
    assert_eq!(akka(&s, "GET", "/b/ok2", None, "").await.text(), "3");

    // One bad base64 value refuses the whole batch.
    let bad = json!({"cacheRequests": [{"cacheName": "b", "key": "n1", "value": "MQ=="}, {"cacheName": "b", "key": "n2", "value": "%%%"}]});
    assert_eq!(
        akka(&s, "POST", "/batch", JSON, &bad.to_string())
            .await
            .status,
        400
    );
    assert_eq!(akka(&s, "GET", "/b/n1", None, "").await.status, 404);
    assert_eq!(
        akka(&s, "POST", "/batch", JSON, r#"{"nothing":[]}"#)
            .await
            .status,
        400
    );
    let r = akka(&s, "POST", "/batch", JSON, r#"{"cacheRequests":[]}"#).await;
    assert_json(&r, r#"{"complete":true,"results":[]}"#);

    let get = json!({"getCachedBatch": [{"cacheName": "b", "key": "ok1"}, {"cacheName": "b", "key": "nope"}, {"cacheName": "zz", "key": "ok1"}]});
    let r = akka(&s, "POST", "/batch/get", JSON, &get.to_string()).await;
    assert_json(
        &r,
        r#"{"complete":true,"results":[{"cacheName":"b","key":"ok1","success":true,"value":"MQ=="},{"cacheName":"b","key":"nope","success":false,"value":""},{"cacheName":"zz","key":"ok1","success":false,"value":""}]}"#,
    );
    // Keys of two caches interleaved (each cache's keys are read together): every result
    // in request order, a key asked twice answered twice.
    let two = json!({"cacheRequests": [{"cacheName": "c", "key": "ok1", "value": "OQ=="}]});
    let r = akka(&s, "POST", "/batch", JSON, &two.to_string()).await;
    assert_json(&r, r#"{"complete":true,"results":[]}"#);
    let get = json!({"getCachedBatch": [{"cacheName": "c", "key": "ok1"}, {"cacheName": "b", "key": "ok2"}, {"cacheName": "", "key": "ok1"}, {"cacheName": "b", "key": "ok1"}, {"cacheName": "c", "key": "ok1"}]});
    let r = akka(&s, "POST", "/batch/get", JSON, &get.to_string()).await;
    assert_json(
        &r,
        r#"{"complete":true,"results":[{"cacheName":"c","key":"ok1","success":true,"value":"OQ=="},{"cacheName":"b","key":"ok2","success":true,"value":"Mw=="},{"cacheName":"","key":"ok1","success":false,"value":""},{"cacheName":"b","key":"ok1","success":true,"value":"MQ=="},{"cacheName":"c","key":"ok1","success":true,"value":"OQ=="}]}"#,
    );

    let del = json!({"getCachedBatch": [{"cacheName": "b", "key": "ok1"}, {"cacheName": "b", "key": "nope"}]});
    let r = akka(&s, "DELETE", "/batch", JSON, &del.to_string()).await;
    assert_json(
        &r,
        r#"{"success":false,"cacheDeleteResponses":[{"cacheName":"b","key":"ok1","success":true},{"cacheName":"b","key":"nope","success":false}]}"#,
    );
    assert_eq!(akka(&s, "GET", "/b/ok1", None, "").await.status, 404);
}

// Found from outside (thirteenth session): a batch get's answer was built whole in memory,
// so 20 asks for one 8 MiB value made the server hold about 1 GB. An answer over 1 MiB is
// now streamed as it is read (16 items at a time, a few chunks ahead of the client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_get_answer_is_streamed_and_whole() {
    use base64::Engine as _;
    let (s, _dir) = start_dev().await;
    let value: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    let auth = bearer();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    assert_eq!(s.req("POST", "/big/k", &headers, &value).await.status, 201);
    let asks: Vec<Value> = (0..40)
        .map(|i| json!({"cacheName": "big", "key": if i % 7 == 3 { "nope" } else { "k" }}))
        .collect();
    let body = json!({ "getCachedBatch": asks }).to_string();
    let r = akka(&s, "POST", "/batch/get", JSON, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "streamed: {:?}",
        r.header("content-length")
    );
    let answer = r.json();
    assert_eq!(answer["complete"], true);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 40);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
    for (i, r) in results.iter().enumerate() {
        let hit = i % 7 != 3;
        assert_eq!(r["success"], hit, "item {i}");
        assert_eq!(
            r["value"].as_str(),
            Some(if hit { encoded.as_str() } else { "" }),
            "item {i}"
        );
    }
    // A 4 MiB value goes out a piece at a time (found from outside: each answer item was
    // one chunk, and the server held about the whole answer): no chunk near its 5.6 MB of
    // base64, and the answer still whole.
    let large: Vec<u8> = (0..(4usize << 20)).map(|i| (i % 253) as u8).collect();
    assert_eq!(
        s.req("POST", "/big/large", &headers, &large).await.status,
        201
    );
    let asks: Vec<Value> = (0..6)
        .map(|_| json!({"cacheName": "big", "key": "large"}))
        .collect();
    let body = json!({ "getCachedBatch": asks }).to_string();
    let request = format!(
        "POST /batch/get HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = common::raw_bytes(s.addr, request.as_bytes()).await;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let (mut rest, mut biggest) = (&raw[head_end..], 0);
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).expect("hex"), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        biggest = biggest.max(size);
        rest = &rest[end + 2 + size + 2..];
    }
    assert!(biggest < 3 << 20, "a chunk of {biggest} bytes");
    let answer: Value =
        serde_json::from_slice(&common::dechunk(&raw[head_end..]).expect("a whole chunked answer"))
            .expect("json");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&large);
    for r in answer["results"].as_array().expect("results") {
        assert_eq!(r["value"].as_str(), Some(encoded.as_str()));
    }
    // A small answer is sent whole, with its length.
    let small = json!({"getCachedBatch": [{"cacheName": "big", "key": "nope"}]}).to_string();
    let r = akka(&s, "POST", "/batch/get", JSON, &small).await;
    assert!(r.header("content-length").is_some(), "{r:?}");
}

/// Splits one shell command line into words: whitespace separates, '…' and "…" quote
/// (enough for the README's curl lines, which use no escapes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line}");
    words.extend(word);
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_order_of_the_akka_document_examples() {
    // The README promises that its block of the document's commands works as written on a
    // fresh --dev server: run each line as curl would send it and check the status it states.
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let block = readme
        .split("<!-- tests/akka.rs (readme_order_of_the_akka_document_examples) runs the next block. -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README's block of Akka examples");
    let jwt = block
        .lines()
        .find_map(|l| l.strip_prefix("JWT="))
        .expect("JWT= line");
    assert_eq!(jwt, SAMPLE_JWT, "the document's sample token");
    let (s, _dir) = start_dev().await;
    let mut ran = 0;
    for line in block.lines().filter(|l| l.starts_with("curl ")) {
        let (command, comment) = line.split_once(" # ").expect("a status comment");
        let expected: u16 = comment
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .expect("status");
        let words = shell_words(command);
        let (mut method, mut path, mut body) = (None, None, None::<String>);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut args = words.iter().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-i" => {}
                "-X" => method = args.next().cloned(),
                "-d" => body = args.next().cloned(),
                "-H" => {
                    let h = args.next().expect("-H value").replace("$JWT", jwt);
                    let (name, value) = h.split_once(':').expect("header");
                    headers.push((name.to_string(), value.trim().to_string()));
                }
                url => {
                    let p = url
                        .strip_prefix("http://127.0.0.1:9001")
                        .unwrap_or_else(|| panic!("unexpected argument {url} in {line}"));
                    path = Some(p.to_string());
                }
            }
        }
        // As curl does: -d means POST unless -X says otherwise, and a form type unless given.
        let method =
            method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_string());
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let path = path.expect("a URL");
        let r = s
            .req(
                &method,
                &path,
                &headers,
                body.unwrap_or_default().as_bytes(),
            )
            .await;
        assert_eq!(r.status, expected, "{line}\n{r:?}");
        ran += 1;
    }
    assert_eq!(ran, 18, "every line of the block ran");
}
