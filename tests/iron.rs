//! IronCache over real HTTP: every endpoint of the document, then DESIGN.md's decisions
//! (200 + JSON for every success, exact messages, cas as a number, expires sentinel,
//! numbers stay numbers, conditions, limits, paths, auth, tenants, TTL).

mod common;

use common::{start_dev, start_on, TestServer, DOC_NOW_MS};
use serde_json::{json, Value};
use ttlcask::auth::registry::{create_credential, create_tenant, Api};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

const TOKEN: &str = "abc4c7c627376858";
const PROJECT: &str = "4ccf2c5da3c0f1a4d1000011";

fn p(rest: &str) -> String {
    format!("/1/projects/{PROJECT}/{rest}")
}

async fn iron(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> common::Resp {
    let auth = format!("OAuth {TOKEN}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    s.req(
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await
}

fn assert_json(r: &common::Resp, status: u16, expected: Value) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.json(), expected, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_endpoints_replay() {
    let (s, _dir) = start_dev().await;
    // Put (the document's request: replace on a missing item stores nothing, still 200).
    let r = iron(
        &s,
        "PUT",
        &p("caches/c1/items/k1"),
        Some(json!({"value": "This is my cache item.", "expires_in": 86400, "replace": true})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["msg"], "Stored.");
    let r = iron(&s, "GET", &p("caches/c1/items/k1"), None).await;
    assert_json(&r, 404, json!({"msg": "Item not found"}));

    let r = iron(
        &s,
        "PUT",
        &p("caches/c1/items/k1"),
        Some(json!({"value": "This is my cache item.", "expires_in": 86400})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    let r = iron(
        &s,
        "PUT",
        &p("caches/c1/items/k1"),
        Some(json!({"value": "This is my cache item.", "expires_in": 86400, "replace": true})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));

    // Get.
    let r = iron(&s, "GET", &p("caches/c1/items/k1"), None).await;
    assert_eq!(r.status, 200);
    let item = r.json();
    assert_eq!(item["cache"], "c1");
    assert_eq!(item["key"], "k1");
    assert_eq!(item["value"], "This is my cache item.");
    assert!(item["cas"].is_u64(), "cas is a JSON number: {item}");
    assert_eq!(item["flags"], 0);
    assert_eq!(item["expires"], "2026-03-12T09:38:52Z");
    let keys: Vec<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["cache", "key", "value", "cas", "flags", "expires"]);

    // Increment (document: amount 10 → "Added").
    let r = iron(
        &s,
        "PUT",
        &p("caches/c1/items/n"),
        Some(json!({"value": 122})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    let r = iron(
        &s,
        "POST",
        &p("caches/c1/items/n/increment"),
        Some(json!({"amount": 10})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Added", "value": 132}));
    let r = iron(&s, "GET", &p("caches/c1/items/n"), None).await;
    assert_eq!(r.json()["value"], json!(132), "a number stays a number");

    // List, info.
    let r = iron(&s, "GET", &p("caches"), None).await;
    assert_eq!(r.status, 200);
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["project_id"], PROJECT);
    assert_eq!(list[0]["name"], "c1");
    assert_eq!(list[0]["id"].as_str().map(str::len), Some(24));
    let r = iron(&s, "GET", &p("caches/c1"), None).await;
    assert_json(&r, 200, json!({"size": 2}));

    // Delete item.
    let r = iron(&s, "DELETE", &p("caches/c1/items/k1"), None).await;
    assert_json(&r, 200, json!({"msg": "Deleted."}));
    let r = iron(&s, "DELETE", &p("caches/c1/items/k1"), None).await;
    assert_json(&r, 404, json!({"msg": "Item not found"}));

    // Clear: the cache stays with size 0.
    let r = iron(&s, "POST", &p("caches/c1/clear"), None).await;
    assert_json(&r, 200, json!({"msg": "Cleared."}));
    let r = iron(&s, "GET", &p("caches/c1"), None).await;
    assert_json(&r, 200, json!({"size": 0}));

    // Delete cache: gone afterwards.
    let r = iron(&s, "DELETE", &p("caches/c1"), None).await;
    assert_json(&r, 200, json!({"msg": "Deleted."}));
    for (m, path) in [
        ("GET", p("caches/c1")),
        ("POST", p("caches/c1/clear")),
        ("DELETE", p("caches/c1")),
    ] {
        let r = iron(&s, m, &path, None).await;
        assert_eq!(r.status, 404, "{m} {path}");
        assert!(r.json()["msg"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_rules() {
    let (s, _dir) = start_dev().await;
    let r = iron(
        &s,
        "POST",
        &p("caches/fresh/items/counter/increment"),
        Some(json!({"amount": 5})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Added", "value": 5}));
    let r = iron(
        &s,
        "POST",
        &p("caches/fresh/items/counter/increment"),
        Some(json!({"amount": -7})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Added", "value": -2}));
    let r = iron(&s, "GET", &p("caches/fresh/items/counter"), None).await;
    assert_eq!(r.json()["value"], json!(-2));

    let r = iron(
        &s,
        "PUT",
        &p("caches/fresh/items/text"),
        Some(json!({"value": "hello"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = iron(
        &s,
        "POST",
        &p("caches/fresh/items/text/increment"),
        Some(json!({"amount": 1})),
    )
    .await;
    assert_json(
        &r,
        400,
        json!({"msg": "Cannot increment or decrement non-numeric value"}),
    );
    let r = iron(&s, "GET", &p("caches/fresh/items/text"), None).await;
    assert_eq!(r.json()["value"], "hello");

    let r = iron(
        &s,
        "POST",
        &p("caches/fresh/items/counter/increment"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 406);
    let r = iron(
        &s,
        "POST",
        &p("caches/fresh/items/counter/increment"),
        Some(json!({"amount": 1.5})),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_validation_and_conditions() {
    let (s, _dir) = start_dev().await;
    let item = p("caches/c/items/k");
    let r = iron(&s, "PUT", &item, Some(json!({"expires_in": 10}))).await;
    assert_eq!(r.status, 406, "missing value");
    for bad in [
        json!({"value": true}),
        json!({"value": {"a": 1}}),
        json!({"value": [1]}),
        json!({"value": "x", "expires_in": 2_592_001}),
        json!({"value": "x", "expires_in": -1}),
        json!({"value": "x", "cas": "abc"}),
        // Issue 11: wrong types were ignored (an add-only write overwrote) or guessed.
        json!({"value": "x", "add": "yes"}),
        json!({"value": "x", "add": 1}),
        json!({"value": "x", "replace": 1}),
        json!({"value": "x", "replace": "true"}),
        json!({"value": "x", "expires_in": "60"}),
        json!({"value": "x", "expires_in": 1.5}),
        json!({"value": "x", "expires_in": true}),
        json!({"value": "x", "cas": "+1"}),
        json!({"value": "x", "cas": " 1"}),
        json!({"value": "x", "cas": ""}),
        json!({"value": "x", "cas": -1}),
        json!({"value": "x", "cas": 1.5}),
        json!({"value": "x", "cas": true}),
    ] {
        let r = iron(&s, "PUT", &item, Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["msg"].is_string());
    }
    let r = s
        .req(
            "PUT",
            &item,
            &[("Authorization", "OAuth abc4c7c627376858")],
            b"{not json",
        )
        .await;
    assert_eq!(r.status, 400);
    let r = iron(&s, "GET", &item, None).await;
    assert_eq!(r.status, 404, "nothing stored by bad puts");

    // Unknown fields ignored; expires_in 0 means never.
    let r = iron(
        &s,
        "PUT",
        &item,
        Some(
            json!({"value": "v1", "expires_in": 0, "oauth": TOKEN, "cache_name": "c", "flags": 3}),
        ),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    let got = iron(&s, "GET", &item, None).await.json();
    assert_eq!(got["expires"], "9999-01-01T00:00:00Z");
    let cas = got["cas"].as_u64().expect("cas");

    // add on an existing key: 200, not stored; a wrong-typed add is 400, not an overwrite.
    let r = iron(&s, "PUT", &item, Some(json!({"value": "v2", "add": true}))).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["msg"], "Stored.");
    let r = iron(&s, "PUT", &item, Some(json!({"value": "v2", "add": "yes"}))).await;
    assert_eq!(r.status, 400, "{r:?}");
    // false and null are booleans' "no": a plain put.
    let r = iron(
        &s,
        "PUT",
        &p("caches/c/items/plain"),
        Some(json!({"value": "p", "add": false, "replace": null})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    // cas mismatch, as a number and as a string.
    for wrong in [json!(cas + 1000), json!((cas + 1000).to_string())] {
        let r = iron(&s, "PUT", &item, Some(json!({"value": "v3", "cas": wrong}))).await;
        assert_eq!(r.status, 200);
        assert_ne!(r.json()["msg"], "Stored.");
    }
    assert_eq!(iron(&s, "GET", &item, None).await.json()["value"], "v1");
    // cas match as a string (IronSharp sends it so).
    let r = iron(
        &s,
        "PUT",
        &item,
        Some(json!({"value": "v4", "cas": cas.to_string()})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    let got = iron(&s, "GET", &item, None).await.json();
    assert_eq!(got["value"], "v4");
    let cas4 = got["cas"].as_u64().expect("cas");
    assert!(cas4 > cas, "cas changes on every write");
    // add with a matching cas or with replace: add wants the item missing, cas and replace
    // want it there, so nothing is stored, the item there or not (cas overwrote it).
    for (key, extra) in [
        ("caches/c/items/k", json!({"cas": cas4})),
        ("caches/c/items/k", json!({"replace": true})),
        ("caches/c/items/never", json!({"replace": true})),
        ("caches/c/items/never", json!({"cas": 1})),
    ] {
        let mut body = json!({"value": "both", "add": true});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let r = iron(&s, "PUT", &p(key), Some(body.clone())).await;
        assert_eq!(r.status, 200, "{body}: {r:?}");
        assert!(
            r.json()["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("Not stored")),
            "{body}: {r:?}"
        );
    }
    assert_eq!(iron(&s, "GET", &item, None).await.json()["value"], "v4");
    let r = iron(&s, "GET", &p("caches/c/items/never"), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    // add on a missing key stores.
    let r = iron(
        &s,
        "PUT",
        &p("caches/c/items/new"),
        Some(json!({"value": 1.5, "add": true})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    assert_eq!(
        iron(&s, "GET", &p("caches/c/items/new"), None).await.json()["value"],
        json!(1.5)
    );

    // Limits: key 250 bytes, value 1 MiB.
    let long_key = "k".repeat(251);
    let r = iron(
        &s,
        "PUT",
        &p(&format!("caches/c/items/{long_key}")),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(r.status, 400);
    let ok_key = "k".repeat(250);
    let r = iron(
        &s,
        "PUT",
        &p(&format!("caches/c/items/{ok_key}")),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = iron(
        &s,
        "PUT",
        &item,
        Some(json!({"value": "v".repeat((1 << 20) + 1)})),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_with_the_store_clock() {
    let (s, _dir) = start_dev().await;
    let r = iron(
        &s,
        "PUT",
        &p("caches/t/items/short"),
        Some(json!({"value": "x", "expires_in": 10})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        iron(&s, "GET", &p("caches/t/items/short"), None)
            .await
            .json()["expires"],
        "2026-03-11T09:39:02Z"
    );
    s.clock.advance_ms(9_000);
    assert_eq!(
        iron(&s, "GET", &p("caches/t/items/short"), None)
            .await
            .status,
        200
    );
    s.clock.advance_ms(2_000);
    assert_eq!(
        iron(&s, "GET", &p("caches/t/items/short"), None)
            .await
            .status,
        404
    );
}

// Issue 11: the expiry reads back as set, in whole seconds, never early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_at_a_non_whole_second_reads_back_rounded_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS + 345);
    let s = start_on(dir.path(), Config::new(true), clock, |_| {}).await;
    let item = p("caches/t/items/k");
    let r = iron(
        &s,
        "PUT",
        &item,
        Some(json!({"value": "x", "expires_in": 10})),
    )
    .await;
    assert_json(&r, 200, json!({"msg": "Stored."}));
    // 09:38:52.345 + 10 s = 09:39:02.345, stored (and shown) as 09:39:03.
    let expires = iron(&s, "GET", &item, None).await.json()["expires"].clone();
    assert_eq!(expires, "2026-03-11T09:39:03Z");
    s.clock.advance_ms(10_000);
    let r = iron(&s, "GET", &item, None).await;
    assert_eq!(
        r.json()["expires"],
        expires,
        "live past its 10 s, until the second shown"
    );
    s.clock.advance_ms(655);
    assert_eq!(iron(&s, "GET", &item, None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_paging_version_and_auth() {
    let (s, _dir) = start_dev().await;
    // Percent-decoding per segment; `+` stays literal; UTF-8 works; %2F is part of a key.
    let r = iron(
        &s,
        "PUT",
        &p("caches/my%20cache/items/a+b%2Fc"),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = iron(&s, "GET", &p("caches/my%20cache/items/a+b%2Fc"), None)
        .await
        .json();
    assert_eq!(got["cache"], "my cache");
    assert_eq!(got["key"], "a+b/c");
    assert_eq!(
        iron(&s, "GET", &p("caches/my%20cache/items/a%20b%2Fc"), None)
            .await
            .status,
        404
    );
    let r = iron(
        &s,
        "PUT",
        &p("caches/%E5%90%8D%E5%89%8D/items/%E9%8D%B51"),
        Some(json!({"value": "utf"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = iron(
        &s,
        "GET",
        &p("caches/%E5%90%8D%E5%89%8D/items/%E9%8D%B51"),
        None,
    )
    .await
    .json();
    assert_eq!(
        (got["cache"].as_str(), got["key"].as_str()),
        (Some("名前"), Some("鍵1"))
    );

    // Paging: 35 caches, default 30 per page.
    for i in 0..33 {
        let r = iron(
            &s,
            "PUT",
            &p(&format!("caches/page{i:02}/items/k")),
            Some(json!({"value": "x"})),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let first = iron(&s, "GET", &p("caches"), None).await.json();
    assert_eq!(first.as_array().map(Vec::len), Some(30));
    let second = iron(&s, "GET", &p("caches?page=1"), None).await.json();
    assert_eq!(second.as_array().map(Vec::len), Some(5));
    let small = iron(&s, "GET", &p("caches?per_page=2&page=1&unknown=1"), None)
        .await
        .json();
    assert_eq!(small.as_array().map(Vec::len), Some(2));
    assert_eq!(
        iron(&s, "GET", &p("caches?per_page=101"), None)
            .await
            .status,
        400
    );

    // Version needs no credentials.
    for path in ["/1/version", "/version"] {
        let r = s.req("GET", path, &[], b"").await;
        assert_eq!(r.status, 200);
        assert!(r.json()["version"].is_string());
    }

    // Token in the query string.
    let r = s
        .req(
            "GET",
            &format!("{}?oauth={TOKEN}", p("caches/page00/items/k")),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    // Missing or wrong token: 401, nothing stored.
    for auth in [None, Some("OAuth wrong"), Some("Basic abc4c7c627376858")] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = s
            .req("PUT", &p("caches/x/items/y"), &headers, br#"{"value":"v"}"#)
            .await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.json()["msg"].is_string());
    }
    assert_eq!(iron(&s, "GET", &p("caches/x"), None).await.status, 404);
    // Unknown project id shape, route, method.
    let r = iron(&s, "GET", "/1/projects/not-a-project/caches", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(iron(&s, "GET", &p("nope"), None).await.status, 404);
    assert_eq!(iron(&s, "POST", &p("caches"), None).await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_projects_are_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tokens = Vec::new();
    let s = start_on(
        dir.path(),
        Config::new(false),
        ManualClock::new(DOC_NOW_MS),
        |store| {
            for t in ["alpha", "beta"] {
                create_tenant(store, t).expect("tenant");
                tokens.push(
                    create_credential(store, t, Api::Iron, None, None)
                        .expect("cred")
                        .secret,
                );
            }
        },
    )
    .await;
    let put = |i: usize, project: &'static str, value: &'static str| {
        let auth = format!("OAuth {}", tokens[i]);
        let addr = s.addr;
        async move {
            common::request(
                addr,
                "PUT",
                &format!("/1/projects/{project}/caches/c/items/k"),
                &[("Authorization", &auth)],
                json!({"value": value}).to_string().as_bytes(),
            )
            .await
        }
    };
    let get = |i: usize, project: &'static str| {
        let auth = format!("OAuth {}", tokens[i]);
        let addr = s.addr;
        async move {
            common::request(
                addr,
                "GET",
                &format!("/1/projects/{project}/caches/c/items/k"),
                &[("Authorization", &auth)],
                b"",
            )
            .await
        }
    };
    let other = "aaaaaaaaaaaaaaaaaaaaaaaa";
    assert_eq!(put(0, PROJECT, "alpha").await.status, 200);
    assert_eq!(
        get(1, PROJECT).await.status,
        404,
        "beta does not see alpha's project"
    );
    assert_eq!(
        get(0, other).await.status,
        404,
        "another project of the same tenant is separate"
    );
    assert_eq!(put(1, PROJECT, "beta").await.status, 200);
    assert_eq!(get(0, PROJECT).await.json()["value"], "alpha");
    assert_eq!(get(1, PROJECT).await.json()["value"], "beta");
    // The project ids a real token may use (README): any 24 hex digits, in either case.
    assert_eq!(
        get(0, "4CCF2C5DA3C0F1A4D1000011").await.json()["value"],
        "alpha",
        "case does not matter"
    );
    assert_eq!(
        put(0, "0123456789abcdef01234567", "fresh").await.status,
        200
    );
    for bad in [
        "4ccf2c5da3c0f1a4d100001",
        "4ccf2c5da3c0f1a4d1000011a",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "myproject",
    ] {
        let r = put(0, bad, "x").await;
        assert_eq!(r.status, 404, "{bad}");
        assert_eq!(r.json(), json!({"msg": "Project not found"}), "{bad}");
    }
    let r = s
        .req(
            "GET",
            &p("caches"),
            &[("Authorization", "OAuth abc4c7c627376858")],
            b"",
        )
        .await;
    assert_eq!(r.status, 401, "the sample token needs --dev");
}

/// A number comes back as it was written: serde_json read it as an f64, so
/// 123456789012345678901234567890 came back as 1.2345678901234568e29 and 1e3 as 1000.0
/// (found from outside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_come_back_as_written() {
    let (s, _dir) = common::start_dev().await;
    let auth = format!("OAuth {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    for (i, literal) in [
        "123456789012345678901234567890",
        "1e3",
        "-0.50",
        "7",
        "2.5E-3",
    ]
    .iter()
    .enumerate()
    {
        let item = p(&format!("caches/n/items/k{i}"));
        let body = format!("{{\"value\": {literal} , \"expires_in\": 60}}");
        let r = s.req("PUT", &item, &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{literal}: {r:?}");
        let got = s.req("GET", &item, &headers, b"").await;
        assert!(
            got.text().contains(&format!("\"value\":{literal},")),
            "{literal}: {}",
            got.text()
        );
        assert!(got.json()["value"].is_number(), "{}", got.text());
    }
    // Increments still take integers only, and make integers.
    let r = s
        .req(
            "POST",
            &p("caches/n/items/k3/increment"),
            &headers,
            br#"{"amount": 5}"#,
        )
        .await;
    assert_eq!(r.json()["value"], 12, "{}", r.text());
}
