//! Abuse of the server over raw TCP, malformed requests: malformed HTTP, bad UTF-8, path
//! tricks, huge batches, deep JSON, missing or repeated `Host` headers, odd request-target
//! forms, transfer codings and repeated data keys. Each case checks its documented error,
//! that nothing was stored, and that the server still answers `/healthz`.

mod abuse_support;
mod common;

use common::SAMPLE_JWT;
use serde_json::json;

use abuse_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_and_invalid_utf8() {
    let a = start().await;
    for bytes in [
        &b"HELLO\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let r = send_raw(a.s.addr, bytes).await;
        assert!(
            r.as_ref().is_none_or(|r| r.status == 400),
            "{:?}: {r:?}",
            String::from_utf8_lossy(bytes)
        );
        alive(&a).await;
    }
    // Invalid UTF-8 in a header value: the Flash DataKey is refused (400).
    let mut raw = format!(
        "POST /v1/cache/add HTTP/1.1\r\nHost: x\r\nClientId: {FLASH_ID}\r\nAuthorization: {FLASH_KEY}\r\nContent-Length: 2\r\nConnection: close\r\nDataKey: k"
    )
    .into_bytes();
    raw.extend_from_slice(b"\xff\xfe\r\n\r\n{}");
    let r = send_raw(a.s.addr, &raw).await.expect("answer");
    assert_eq!(r.status, 400, "{r:?}");
    // Invalid UTF-8 after percent-decoding, overlong UTF-8 for '/', and a `%` that is no
    // escape (stored under its literal name, `c%zz` and `c%25zz` were one cache: found from
    // outside), in each API.
    let iron_put = |key: &str| format!("/1/projects/{P}/caches/c/items/{key}");
    for key in ["%FF", "%C0%AF", "a%E2%82", "k%zz", "k%", "k%2", "k%g0"] {
        let r = req(
            &a,
            "PUT",
            &iron_put(key),
            &[("Authorization", IRON)],
            br#"{"value":"v"}"#,
        )
        .await;
        assert_eq!(r.status, 400, "iron {key}: {r:?}");
        let bearer = format!("Bearer {SAMPLE_JWT}");
        let r = req(
            &a,
            "POST",
            &format!("/c/{key}"),
            &[("Authorization", &bearer)],
            b"v",
        )
        .await;
        assert_eq!(r.status, 400, "akka {key}: {r:?}");
    }
    assert_eq!(
        iron_get(&a, IRON, "c").await.status,
        404,
        "no IronCache cache was created"
    );
    alive(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_and_percent_encoding_tricks() {
    let a = start().await;
    let iron = |rest: &str| format!("/1/projects/{P}/caches/{rest}");
    // A `..` segment is a name like any other, and never reaches another project.
    let other = "ffffffffffffffffffffffff";
    let r = req(
        &a,
        "PUT",
        &iron(&format!("../../projects/{other}/caches/c/items/k")),
        &[("Authorization", IRON)],
        br#"{"value":"v"}"#,
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = req(
        &a,
        "GET",
        &format!("/1/projects/{other}/caches/c/items/k"),
        &[("Authorization", IRON)],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "nothing stored in the other project");
    // `%2F` is part of a key, not a separator: stored under "a/b", not reachable as a/b.
    let r = req(
        &a,
        "PUT",
        &iron("c/items/a%2Fb"),
        &[("Authorization", IRON)],
        br#"{"value":"slash"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(iron_get(&a, IRON, "c/items/a/b").await.status, 404);
    let r = iron_get(&a, IRON, "c/items/a%2Fb").await;
    assert_eq!((r.status, r.json()["key"].clone()), (200, json!("a/b")));
    // `%00` in keys and names.
    let r = req(&a, "POST", "/v1/cache/add", &flash_headers("a%00b"), b"{}").await;
    assert_eq!(r.status, 400, "Flash DataKey must be URL-safe: {r:?}");
    let r = req(&a, "POST", "/v1/cache/add", &flash_headers("../etc"), b"{}").await;
    assert_eq!(r.status, 400, "Flash DataKey must be URL-safe: {r:?}");
    // Akka: `..` and encoded separators never reach a reserved route or another cache.
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let ah = [("Authorization", bearer.as_str())];
    let r = req(&a, "POST", "/c/..%2F..%2Fhealthz", &ah, b"v").await;
    assert_eq!(r.status, 201, "a key with slashes is a key: {r:?}");
    let r = akka_get(&a, "/c/..%2F..%2Fhealthz").await;
    assert_eq!(r.body, b"v");
    let r = req(&a, "POST", "/healthz%2F/k", &ah, b"v").await;
    assert!(matches!(r.status, 201 | 400), "{r:?}");
    // A percent-encoded reserved name (`v1`) is not a cacheName: refused, nothing stored.
    let r = req(&a, "POST", "/%76%31/k", &ah, b"v").await;
    assert!(matches!(r.status, 400 | 404), "{r:?}");
    assert_eq!(akka_get(&a, "/%76%31/k").await.status, 404);
    let r = req(&a, "GET", "/v1/cache/get", &flash_headers("k"), b"").await;
    assert_eq!(r.status, 404, "nothing reached Flash: {r:?}");
    alive(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batches_and_deeply_nested_json() {
    let a = start().await;
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let h = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let items: Vec<_> = (0..1001)
        .map(|i| json!({"cacheName": "c", "key": format!("k{i}"), "value": "dg=="}))
        .collect();
    let r = req(
        &a,
        "POST",
        "/batch",
        &h,
        json!(items).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "1001 items: {r:?}");
    assert_eq!(akka_get(&a, "/c/k0").await.status, 404, "nothing stored");

    let deep = "[".repeat(100_000);
    for path in ["/batch", "/batch/get", "/set", "/cacheName"] {
        let r = req(&a, "POST", path, &h, deep.as_bytes()).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    let r = req(
        &a,
        "POST",
        "/v1/cache/add",
        &flash_headers("deep"),
        "[".repeat(4000).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let iron_deep = format!("{{\"value\":{}}}", "[".repeat(100_000));
    let r = req(
        &a,
        "PUT",
        &format!("/1/projects/{P}/caches/c/items/deep"),
        &[("Authorization", IRON)],
        iron_deep.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(iron_get(&a, IRON, "c/items/deep").await.status, 404);
    alive(&a).await;
}

/// `line` (method and target) as `version`, with `headers`, then the given `Host` lines.
fn with_hosts(
    line: &str,
    version: &str,
    headers: &[(&str, &str)],
    hosts: &[&str],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{line} {version}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    for h in hosts {
        out.push_str(&format!("Host: {h}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

// RFC 9112 §3.2: issue 11 found all of these answered 200 (and stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_is_required_once_and_valid() {
    let a = start().await;
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let iron_item = format!("/1/projects/{P}/caches/c/items/host");
    let writes: [(&str, String, Headers, &[u8]); 4] = [
        (
            "flash",
            "POST /v1/cache/add".into(),
            flash_headers("host"),
            b"{}",
        ),
        (
            "iron",
            format!("PUT {iron_item}"),
            vec![("Authorization", IRON)],
            br#"{"value":"v"}"#,
        ),
        (
            "akka",
            "POST /c/host".into(),
            vec![("Authorization", &bearer)],
            b"v",
        ),
        ("service", "GET /healthz".into(), vec![], b""),
    ];
    let bad_hosts: [&[&str]; 8] = [
        &[],
        &["x", "x"],
        &["x", "y"],
        &["a b"],
        &["user@x"],
        &["x:port"],
        &["[::1"],
        &["x/y"],
    ];
    let send = |line: &str, version: &str, headers: &[(&str, &str)], hosts: &[&str], body| {
        let bytes = with_hosts(line, version, headers, hosts, body);
        async move { send_raw(a.s.addr, &bytes).await.expect("answer") }
    };
    for (api, line, headers, body) in &writes {
        for hosts in bad_hosts {
            let r = send(line, "HTTP/1.1", headers, hosts, body).await;
            assert_eq!(r.status, 400, "{api} HTTP/1.1 Host {hosts:?}: {r:?}");
            match *api {
                "flash" => assert_eq!(r.header("Success"), Some("false"), "{r:?}"),
                "iron" => assert!(r.json()["msg"].as_str().is_some_and(|m| m.contains("Host"))),
                "akka" => {
                    assert!(r.text().contains("Host"), "{r:?}");
                    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
                }
                _ => assert!(r.text().contains("Host"), "{r:?}"),
            }
        }
        // Two Host lines are refused in HTTP/1.0 too.
        let r = send(line, "HTTP/1.0", headers, &["x", "y"], body).await;
        assert_eq!(r.status, 400, "{api} HTTP/1.0 two Hosts: {r:?}");
    }
    // Nothing of the refused writes was stored.
    let r = req(&a, "GET", "/v1/cache/get", &flash_headers("host"), b"").await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = req(&a, "GET", &iron_item, &[("Authorization", IRON)], b"").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(akka_get(&a, "/c/host").await.status, 404);
    for (api, line, headers, body) in &writes {
        // HTTP/1.0 may omit Host.
        let r = send(line, "HTTP/1.0", headers, &[], body).await;
        assert!(r.status < 300, "{api} HTTP/1.0 without Host: {r:?}");
        // A valid Host of each form (Flash's add answers 409 once the item exists).
        for host in ["localhost:9001", "[::1]:9001", "127.0.0.1", "cache.example"] {
            let r = send(line, "HTTP/1.1", headers, &[host], body).await;
            assert!(
                matches!(r.status, 200..=299 | 409),
                "{api} Host {host:?}: {r:?}"
            );
        }
    }
    alive(&a).await;
}

// Found from outside (eleventh session): HEAD answered 405 on most GET routes, request
// targets not in origin form were routed (`GET healthz` served the status page), a
// transfer coding other than chunked was ignored (the body stored still coded), and two
// DataKey headers were resolved by taking the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_target_forms_transfer_codings_and_repeated_data_keys() {
    let a = start().await;
    let iron_item = format!("/1/projects/{P}/caches/h/items/k");
    let r = req(
        &a,
        "PUT",
        &iron_item,
        &[("Authorization", IRON)],
        br#"{"value":"v"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = req(
        &a,
        "POST",
        "/cacheName",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        br#"{"cacheName":"h"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    // HEAD on every kind of GET route: the GET's status and headers, no body; the
    // connection stays usable (a second request on it is answered). An empty answer says
    // `Content-Length: 0` too (HEAD of a missing Flash key said no length at all).
    let flash = [
        ("ClientId", FLASH_ID),
        ("Authorization", FLASH_KEY),
        ("DataKey", "missing"),
    ];
    // (path, headers, the GET's status)
    let gets = [
        (iron_item.clone(), vec![("Authorization", IRON)], 200),
        (
            format!("/1/projects/{P}/caches/h"),
            vec![("Authorization", IRON)],
            200,
        ),
        ("/1/version".into(), vec![], 200),
        ("/cacheName/h".into(), vec![("Authorization", &bearer)], 200),
        (
            "/cacheName/list".into(),
            vec![("Authorization", &bearer)],
            200,
        ),
        ("/v1/cache/get".into(), flash.to_vec(), 404),
        ("/h/missing".into(), vec![("Authorization", &bearer)], 404),
    ];
    for (path, headers, status) in &gets {
        let get = req(&a, "GET", path, headers, b"").await;
        assert_eq!(get.status, *status, "GET {path}: {get:?}");
        let mut two = String::new();
        for (i, method) in ["HEAD", "GET"].iter().enumerate() {
            two.push_str(&format!("{method} {path} HTTP/1.1\r\nHost: x\r\n"));
            for (name, value) in headers {
                two.push_str(&format!("{name}: {value}\r\n"));
            }
            if i == 1 {
                two.push_str("Connection: close\r\n");
            }
            two.push_str("\r\n");
        }
        let answer = common::raw_bytes(a.s.addr, two.as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "HEAD {path}: {head}"
        );
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .expect("content-length");
        assert_eq!(length, get.body.len().to_string(), "HEAD {path}");
        assert!(
            rest.starts_with(&format!("HTTP/1.1 {status}")),
            "HEAD {path} sent a body: {rest:?}"
        );
    }
    // A GET route's 405 lists HEAD.
    let r = req(&a, "POST", &iron_item, &[("Authorization", IRON)], b"").await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("Allow"), Some("GET, HEAD, PUT, DELETE"));
    // Request targets: only the origin and absolute forms.
    for (line, status) in [
        ("GET healthz", 400),
        ("GET 127.0.0.1:9 ", 400),
        ("GET *", 400),
        ("GET http://x/healthz", 200),
        ("GET /healthz", 200),
    ] {
        let bytes = with_hosts(line.trim_end(), "HTTP/1.1", &[], &["x"], b"");
        let r = send_raw(a.s.addr, &bytes).await.expect("answer");
        assert_eq!(r.status, status, "{line}: {r:?}");
    }
    // Transfer codings: chunked alone is taken; gzip (or any other) is refused, and nothing
    // is stored.
    // The refused requests do not ask to close: the server must close, and say so.
    let chunked = |coding: &str, key: &str| {
        let close = if coding == "chunked" {
            "Connection: close\r\n"
        } else {
            ""
        };
        format!(
            "PUT /1/projects/{P}/caches/h/items/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: {IRON}\r\n{close}Transfer-Encoding: {coding}\r\n\r\ne\r\n{{\"value\":\"te\"}}\r\n0\r\n\r\n"
        )
    };
    let r = send_raw(a.s.addr, chunked("chunked", "te1").as_bytes())
        .await
        .expect("answer");
    assert_eq!(r.status, 200, "{r:?}");
    for coding in ["gzip, chunked", "identity, chunked", "x-custom,chunked"] {
        let r = send_raw(a.s.addr, chunked(coding, "te2").as_bytes())
            .await
            .expect("answer");
        assert_eq!(r.status, 501, "{coding}: {r:?}");
        // The body is left unread, so the connection closes, and says so (twelfth
        // session's note: it closed without saying).
        assert_eq!(r.header("Connection"), Some("close"), "{coding}: {r:?}");
    }
    // Two Content-Type headers: which one the client meant is a guess, so 400 and nothing
    // stored (the first one won before).
    let r = req(
        &a,
        "POST",
        "/ct/two",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/octet-stream"),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("Content-Type"), "{r:?}");
    assert_eq!(akka_get(&a, "/ct/two").await.status, 404, "nothing stored");
    // The same Content-Type twice (a curl script's repeated -H) is no guess: taken.
    let r = req(
        &a,
        "POST",
        "/ct/same",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/octet-stream"),
            ("Content-Type", "application/octet-stream"),
        ],
        b"same",
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(akka_get(&a, "/ct/same").await.body, b"same");
    let te2 = format!("/1/projects/{P}/caches/h/items/te2");
    assert_eq!(
        req(&a, "GET", &te2, &[("Authorization", IRON)], b"")
            .await
            .status,
        404
    );
    // Two DataKey headers: refused, nothing deleted.
    let r = req(&a, "POST", "/v1/cache/add", &flash_headers("dup1"), b"{}").await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut two = flash_headers("dup1");
    two.push(("DataKey", "dup2"));
    let r = req(&a, "DELETE", "/v1/cache/delete", &two, b"").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.header("ResponseMessage")
            .is_some_and(|m| m.contains("DataKey")),
        "{r:?}"
    );
    let r = req(&a, "GET", "/v1/cache/get", &flash_headers("dup1"), b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    alive(&a).await;
}
