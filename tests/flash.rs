//! Flash Cache over real HTTP: the document's four examples replayed, then each decision of
//! DESIGN.md (conflicts, misses, ExpiresUtc, limits, DataKey rules, auth, tenants).

mod common;

use common::{assert_request_id, start_dev, start_on, TestServer, DOC_NOW_MS};
use ttlcask::auth::registry::{create_credential, create_tenant, Api};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

const CLIENT_ID: &str = "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1";
const API_KEY: &str = "v1:api_c1c9676fc333043a298551158a22ce64a2796d54";
const DOC_KEY: &str = "campaign-qr-56G_new";
const DOC_EXPIRES: &str = "10/04/2026 09:38:52";

fn creds(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ClientId", CLIENT_ID.to_string()),
        ("Authorization", API_KEY.to_string()),
        ("DataKey", key.to_string()),
    ]
}

async fn call(
    s: &TestServer,
    method: &str,
    op: &str,
    headers: &[(&str, String)],
    body: &str,
) -> common::Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    s.req(method, &format!("/v1/cache/{op}"), &h, body.as_bytes())
        .await
}

fn assert_flash(resp: &common::Resp, status: u16, success: bool, message: &str, count: &str) {
    assert_eq!(resp.status, status, "{resp:?}");
    assert_request_id(resp);
    assert_eq!(
        resp.header("Success"),
        Some(if success { "true" } else { "false" }),
        "{resp:?}"
    );
    assert_eq!(resp.header("ResponseMessage"), Some(message), "{resp:?}");
    assert_eq!(resp.header("Count"), Some(count), "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_examples_replay() {
    let (s, _dir) = start_dev().await;
    let add_body = r#"{
  "Campaign":
  {
    "Name": "QR Code",
    "ID": "qr-56G_new",
    "Owner": "Natasha"
  }
}"#;
    let r = call(&s, "POST", "add", &creds(DOC_KEY), add_body).await;
    assert_flash(&r, 201, true, "Created successfully", "1");
    assert_eq!(r.header("DataKey"), Some(DOC_KEY));
    assert_eq!(r.header("ExpiresUtc"), Some(DOC_EXPIRES));

    let update_body = add_body.replace("Natasha", "Anastasia");
    let r = call(&s, "PUT", "update", &creds(DOC_KEY), &update_body).await;
    assert_flash(&r, 200, true, "Updated successfully", "1");
    assert_eq!(r.header("DataKey"), Some(DOC_KEY));
    assert_eq!(
        r.header("ExpiresUtc"),
        Some(DOC_EXPIRES),
        "update without ExpiresUtc keeps it"
    );

    let r = call(&s, "GET", "get", &creds(DOC_KEY), "").await;
    assert_flash(&r, 200, true, "Object retrieved successfully", "1");
    assert_eq!(r.header("ExpiresUtc"), Some(DOC_EXPIRES));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.text(), update_body);

    let r = call(&s, "DELETE", "delete", &creds(DOC_KEY), "").await;
    assert_flash(&r, 200, true, "Deleted successfully", "1");
    assert_eq!(r.header("DataKey"), Some(DOC_KEY));
    assert_eq!(r.header("ExpiresUtc"), None);

    let r = call(&s, "GET", "get", &creds(DOC_KEY), "").await;
    assert_flash(&r, 404, false, "DataKey not found", "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_misses() {
    let (s, _dir) = start_dev().await;
    let r = call(&s, "POST", "add", &creds("k1"), r#"{"a":1}"#).await;
    assert_eq!(r.status, 201);
    let r = call(&s, "POST", "add", &creds("k1"), r#"{"a":2}"#).await;
    assert_flash(&r, 409, false, "DataKey already exists", "0");
    assert_eq!(
        r.header("ExpiresUtc"),
        Some(DOC_EXPIRES),
        "the existing item's expiry"
    );
    let r = call(&s, "GET", "get", &creds("k1"), "").await;
    assert_eq!(r.text(), r#"{"a":1}"#, "a rejected add stores nothing");

    for (method, op) in [("PUT", "update"), ("GET", "get"), ("DELETE", "delete")] {
        let r = call(&s, method, op, &creds("missing"), r#"{"a":1}"#).await;
        assert_flash(&r, 404, false, "DataKey not found", "0");
        assert_eq!(r.header("DataKey"), Some("missing"));
    }
    let r = call(&s, "GET", "get", &creds("missing"), "").await;
    assert_eq!(r.status, 404, "update of a missing key did not create it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_utc_rules_and_ttl() {
    let (s, _dir) = start_dev().await;
    let mut h = creds("exp");
    h.push(("ExpiresUtc", "12/03/2026 09:38:52".to_string()));
    let r = call(&s, "POST", "add", &h, "{}").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("ExpiresUtc"), Some("12/03/2026 09:38:52"));

    let mut h = creds("rfc");
    h.push(("ExpiresUtc", "2026-03-20T00:00:00Z".to_string()));
    let r = call(&s, "POST", "add", &h, "{}").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("ExpiresUtc"), Some("20/03/2026 00:00:00"));

    for bad in [
        "10/03/2026 09:38:52",
        "12/04/2026 09:38:53",
        "2026/03/12",
        "31/02/2026 00:00:00",
        "",
        "tomorrow",
    ] {
        let mut h = creds("bad");
        h.push(("ExpiresUtc", bad.to_string()));
        let r = call(&s, "POST", "add", &h, "{}").await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert_eq!(r.header("Success"), Some("false"));
        let r = call(&s, "GET", "get", &creds("bad"), "").await;
        assert_eq!(r.status, 404, "{bad} stored nothing");
    }

    // Issue 11: bytes that are not UTF-8 were taken as no ExpiresUtc (30 days). And two
    // ExpiresUtc headers are ambiguous.
    for (method, op, key) in [("POST", "add", "bad"), ("PUT", "update", "exp")] {
        let mut raw = common::request_bytes(
            s.addr,
            method,
            &format!("/v1/cache/{op}"),
            &[
                ("ClientId", CLIENT_ID),
                ("Authorization", API_KEY),
                ("DataKey", key),
            ],
            b"{}",
        );
        let at = raw.windows(2).position(|w| w == b"\r\n").expect("line") + 2;
        let header = b"ExpiresUtc: 12/03/2026 \xff\xfe:00:00\r\n";
        raw.splice(at..at, header.iter().copied());
        let r = common::raw(s.addr, &raw).await;
        assert_eq!(r.status, 400, "{op} with non-UTF-8 ExpiresUtc: {r:?}");
        assert_eq!(r.header("Success"), Some("false"));
        assert!(r
            .header("ResponseMessage")
            .is_some_and(|m| m.contains("ExpiresUtc")));
        let mut h = creds(key);
        h.push(("ExpiresUtc", "12/03/2026 09:38:52".to_string()));
        h.push(("ExpiresUtc", "12/03/2026 10:38:52".to_string()));
        let r = call(&s, method, op, &h, "{}").await;
        assert_eq!(r.status, 400, "{op} with two ExpiresUtc: {r:?}");
    }
    let r = call(&s, "GET", "get", &creds("bad"), "").await;
    assert_eq!(r.status, 404, "stored nothing");

    // Update with a new expiry moves it.
    let mut h = creds("exp");
    h.push(("ExpiresUtc", "2026-03-13T00:00:00Z".to_string()));
    let r = call(&s, "PUT", "update", &h, r#"{"v":2}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ExpiresUtc"), Some("13/03/2026 00:00:00"));

    // Time passes: the first item expires, the RFC 3339 one does not yet.
    s.clock.advance_ms(3 * 86_400_000);
    let r = call(&s, "GET", "get", &creds("exp"), "").await;
    assert_eq!(r.status, 404, "expired");
    let r = call(&s, "GET", "get", &creds("rfc"), "").await;
    assert_eq!(r.status, 200);
    let r = call(&s, "POST", "add", &creds("exp"), r#"{"again":true}"#).await;
    assert_eq!(r.status, 201, "an expired key can be added again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_key_limits() {
    let (s, _dir) = start_dev().await;
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000));
    let r = call(&s, "POST", "add", &creds("big"), &big).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("Success"), Some("false"));

    // Exactly 5000 bytes is fine.
    let fits = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000 - 8));
    assert_eq!(fits.len(), 5000);
    let r = call(&s, "POST", "add", &creds("fits"), &fits).await;
    assert_eq!(r.status, 201, "{r:?}");

    // A chunked body without Content-Length is counted too.
    let chunk = "a".repeat(6000);
    let raw = format!(
        "POST /v1/cache/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\nClientId: {CLIENT_ID}\r\nAuthorization: {API_KEY}\r\nDataKey: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let r = common::raw(s.addr, raw.as_bytes()).await;
    assert_eq!(r.status, 400, "{r:?}");

    for body in ["not json", "", "{\"a\":"] {
        let r = call(&s, "POST", "add", &creds("badjson"), body).await;
        assert_eq!(r.status, 400, "{body:?}");
        assert_eq!(
            r.header("ResponseMessage"),
            Some("The body must be valid JSON")
        );
    }
    for key in ["has space", "a/b", "ä", &"k".repeat(257)] {
        let r = call(&s, "POST", "add", &creds(key), "{}").await;
        assert_eq!(r.status, 400, "{key:?}");
    }
    let r = call(&s, "POST", "add", &creds(&"k".repeat(256)), "{}").await;
    assert_eq!(r.status, 201, "256 characters are allowed");
    let r = call(&s, "POST", "add", &creds("A-z_0.9~"), "{}").await;
    assert_eq!(r.status, 201);
    let no_key = vec![
        ("ClientId", CLIENT_ID.to_string()),
        ("Authorization", API_KEY.to_string()),
    ];
    let r = call(&s, "POST", "add", &no_key, "{}").await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_routes_and_methods() {
    let (s, _dir) = start_dev().await;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("DataKey", "k".into())],
        vec![("ClientId", CLIENT_ID.into()), ("DataKey", "k".into())],
        vec![
            ("ClientId", CLIENT_ID.into()),
            ("Authorization", "v1:api_wrong".into()),
            ("DataKey", "k".into()),
        ],
        vec![
            (
                "ClientId",
                "v1:uid_0000000000000000000000000000000000000000".into(),
            ),
            ("Authorization", API_KEY.into()),
            ("DataKey", "k".into()),
        ],
    ];
    for h in cases {
        let r = call(&s, "POST", "add", &h, "{}").await;
        assert_eq!(r.status, 401, "{h:?}");
        assert_eq!(r.header("Success"), Some("false"));
    }
    let r = call(&s, "GET", "get", &creds("k"), "").await;
    assert_eq!(r.status, 404, "nothing was stored by the refused calls");

    let r = call(&s, "GET", "add", &creds("k"), "").await;
    assert_eq!(r.status, 405);
    let r = call(&s, "POST", "nope", &creds("k"), "{}").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_refused_outside_dev_and_tenants_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keys = Vec::new();
    let s = start_on(
        dir.path(),
        Config::new(false),
        ManualClock::new(DOC_NOW_MS),
        |store| {
            for t in ["alpha", "beta"] {
                create_tenant(store, t).expect("tenant");
                let c = create_credential(store, t, Api::Flash, Some("promo"), None)
                    .expect("credential");
                keys.push((c.client_id.expect("client id"), c.secret));
            }
        },
    )
    .await;
    let r = call(&s, "POST", "add", &creds("k"), "{}").await;
    assert_eq!(r.status, 401, "sample credentials need --dev");

    let with = |i: usize, key: &str| -> Vec<(&'static str, String)> {
        vec![
            ("ClientId", keys[i].0.clone()),
            ("Authorization", keys[i].1.clone()),
            ("DataKey", key.to_string()),
        ]
    };
    let r = call(&s, "POST", "add", &with(0, "same"), r#"{"owner":"alpha"}"#).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = call(&s, "GET", "get", &with(1, "same"), "").await;
    assert_eq!(r.status, 404, "beta cannot read alpha's item");
    let r = call(&s, "POST", "add", &with(1, "same"), r#"{"owner":"beta"}"#).await;
    assert_eq!(r.status, 201);
    let r = call(&s, "GET", "get", &with(0, "same"), "").await;
    assert_eq!(r.text(), r#"{"owner":"alpha"}"#);
    let r = call(&s, "GET", "get", &with(1, "same"), "").await;
    assert_eq!(r.text(), r#"{"owner":"beta"}"#);

    // A key with the other tenant's ClientId is refused.
    let mut mixed = with(0, "same");
    mixed[0].1 = keys[1].0.clone();
    let r = call(&s, "GET", "get", &mixed, "").await;
    assert_eq!(r.status, 401);
}

// Issue 11: at a non-whole second, add answered 16:41:55 while the stored expiry (rounded
// up to whole seconds) read back 16:41:56. A response reports the expiry stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_expiry_is_the_stored_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS + 345);
    let s = start_on(dir.path(), Config::new(true), clock, |_| {}).await;
    let expires = |r: &common::Resp| r.header("ExpiresUtc").map(str::to_string);
    // Default 30 days: 09:38:52.345 + 30 days is stored as 09:38:53.
    let added = call(&s, "POST", "add", &creds("default"), "{}").await;
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(expires(&added).as_deref(), Some("10/04/2026 09:38:53"));
    let got = call(&s, "GET", "get", &creds("default"), "").await;
    assert_eq!(expires(&got), expires(&added));
    // A fractional RFC 3339 expiry rounds up the same way, on add and on update.
    let mut h = creds("fraction");
    h.push(("ExpiresUtc", "2026-03-20T00:00:00.250Z".to_string()));
    let added = call(&s, "POST", "add", &h, "{}").await;
    assert_eq!(expires(&added).as_deref(), Some("20/03/2026 00:00:01"));
    let got = call(&s, "GET", "get", &creds("fraction"), "").await;
    assert_eq!(expires(&got), expires(&added));
    let mut h = creds("fraction");
    h.push(("ExpiresUtc", "2026-03-21T00:00:00.001Z".to_string()));
    let updated = call(&s, "PUT", "update", &h, "{}").await;
    assert_eq!(expires(&updated).as_deref(), Some("21/03/2026 00:00:01"));
    let got = call(&s, "GET", "get", &creds("fraction"), "").await;
    assert_eq!(expires(&got), expires(&updated));
    // An update without ExpiresUtc keeps (and reports) the stored expiry.
    let updated = call(&s, "PUT", "update", &creds("default"), "{}").await;
    assert_eq!(expires(&updated).as_deref(), Some("10/04/2026 09:38:53"));
    // Sent back, the default expiry (0.655 s past 30 days) is taken, on update and on add
    // (found from outside, thirteenth session: 400 "more than 30 days ahead"); a second
    // later than that is refused.
    for (method, op, app) in [("PUT", "update", "default"), ("POST", "add", "again")] {
        let mut h = creds(app);
        h.push(("ExpiresUtc", "10/04/2026 09:38:53".to_string()));
        let r = call(&s, method, op, &h, "{}").await;
        assert!(r.status == 200 || r.status == 201, "{op}: {r:?}");
        assert_eq!(expires(&r).as_deref(), Some("10/04/2026 09:38:53"));
    }
    let mut h = creds("later");
    h.push(("ExpiresUtc", "10/04/2026 09:38:54".to_string()));
    let r = call(&s, "POST", "add", &h, "{}").await;
    assert_flash(&r, 400, false, "ExpiresUtc is more than 30 days ahead", "0");
}

// Found from outside (twelfth session): bodies with invalid UTF-8 inside a string or a lone
// surrogate escape were stored (201) and served as application/json, which IronCache and Akka
// refuse and JSON parsers cannot read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_json_text_are_refused() {
    let (s, _dir) = start_dev().await;
    let bad: [&[u8]; 4] = [
        b"{\"a\":\"\xff\xfe\"}",
        br#"{"value":"\ud800"}"#,
        br#"{"value":"\udc00"}"#,
        br#"{"value":"\ud800\u0041"}"#,
    ];
    for (i, body) in bad.into_iter().enumerate() {
        let headers = creds(&format!("bad{i}"));
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for (method, op) in [("POST", "add"), ("PUT", "update")] {
            let r = s.req(method, &format!("/v1/cache/{op}"), &h, body).await;
            assert_flash(&r, 400, false, "The body must be valid JSON", "0");
        }
        let r = call(&s, "GET", "get", &headers, "").await;
        assert_eq!(r.status, 404, "nothing stored: {r:?}");
    }
    // A surrogate pair, an escaped backslash before `ud800` and UTF-8 are JSON text.
    let good = r#"{"a":"\ud83d\ude00","b":"\\ud800","c":"café"}"#;
    let r = call(&s, "POST", "add", &creds("good"), good).await;
    assert_eq!(r.status, 201, "{r:?}");
}
