//! Abuse of the server over raw TCP: oversized and chunked bodies, slow-loris headers, idle
//! connections beyond the cap, malformed HTTP, bad UTF-8, path tricks, huge batches, deep
//! JSON, forged JWTs and cross-tenant credentials. Each case checks its documented error,
//! that nothing was stored, and that the server still answers `/healthz`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{start_on, Resp, TestServer, DOC_NOW_MS, SAMPLE_JWT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ttlcask::auth::registry::{create_credential, create_tenant, Api};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

const P: &str = "0123456789abcdef01234567";
const IRON: &str = "OAuth abc4c7c627376858";
const FLASH_ID: &str = "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1";
const FLASH_KEY: &str = "v1:api_c1c9676fc333043a298551158a22ce64a2796d54";
const ISSUER: &str = "https://session.firebase.google.com/akka-cache";
const BOUND: Duration = Duration::from_secs(20);

struct Abuse {
    s: TestServer,
    _dir: tempfile::TempDir,
    /// tenant `acme`: an IronCache token and an Akka JWT.
    acme_iron: String,
    acme_jwt: String,
}

async fn start() -> Abuse {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.limits.max_connections = 4;
    config.limits.header_read_timeout_ms = 300;
    config.limits.body_idle_timeout_ms = 1000;
    config.limits.akka_value_bytes = 4096;
    config.akka.hs256_secret = Some("acme-secret".into());
    let mut creds = Vec::new();
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |store| {
        create_tenant(store, "acme").expect("tenant");
        let iron = create_credential(store, "acme", Api::Iron, None, None).expect("iron");
        creds.push(iron.secret);
        let akka = create_credential(
            store,
            "acme",
            Api::Akka,
            None,
            Some(("acme-secret", ISSUER)),
        )
        .expect("akka");
        creds.push(akka.secret);
    })
    .await;
    Abuse {
        s,
        _dir: dir,
        acme_iron: format!("OAuth {}", creds[0]),
        acme_jwt: format!("Bearer {}", creds[1]),
    }
}

/// Sends `bytes` and reads until the server closes; a server that stops reading early
/// (a refused body) must not fail the test. `None` when it closed without an answer.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Resp> {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(bytes).await;
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(BOUND, run)
        .await
        .expect("server answers in time");
    (!buf.is_empty()).then(|| common::parse(&buf))
}

async fn req(a: &Abuse, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let bytes = common::request_bytes(a.s.addr, method, path, headers, body);
    send_raw(a.s.addr, &bytes).await.expect("an answer")
}

/// The server still serves other clients.
async fn alive(a: &Abuse) {
    let r = a.s.req("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "healthz after abuse: {r:?}");
}

async fn iron_get(a: &Abuse, auth: &str, path: &str) -> Resp {
    req(
        a,
        "GET",
        &format!("/1/projects/{P}/caches/{path}"),
        &[("Authorization", auth)],
        b"",
    )
    .await
}

async fn akka_get(a: &Abuse, path: &str) -> Resp {
    let bearer = format!("Bearer {SAMPLE_JWT}");
    req(a, "GET", path, &[("Authorization", &bearer)], b"").await
}

fn flash_headers(key: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("ClientId", FLASH_ID),
        ("Authorization", FLASH_KEY),
        ("DataKey", key),
    ]
}

/// A chunked request whose body is `total` bytes of `fill`, in 1 KiB chunks.
fn chunked(head: &str, total: usize, fill: u8) -> Vec<u8> {
    let mut out =
        format!("{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    let mut left = total;
    while left > 0 {
        let n = left.min(1024);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(fill, n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_with_and_without_content_length() {
    let a = start().await;
    // Flash: 5000 bytes is the documented limit.
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(5000));
    let r = req(
        &a,
        "POST",
        "/v1/cache/add",
        &flash_headers("big"),
        big.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let head = format!(
        "POST /v1/cache/add HTTP/1.1\r\nHost: x\r\nClientId: {FLASH_ID}\r\nAuthorization: {FLASH_KEY}\r\nDataKey: big\r\n"
    );
    let r = send_raw(a.s.addr, &chunked(&head, 6000, b' '))
        .await
        .expect("answer");
    assert_eq!(r.status, 400, "chunked Flash body over the limit: {r:?}");
    let r = req(&a, "GET", "/v1/cache/get", &flash_headers("big"), b"").await;
    assert_eq!(r.status, 404, "nothing stored");
    alive(&a).await;

    // Akka binary value over the configured 4096 bytes, declared and chunked.
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let h = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    let r = req(&a, "POST", "/c/big", &h, &[7u8; 4097]).await;
    assert_eq!(r.status, 400, "{r:?}");
    let head = format!(
        "POST /c/big HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/octet-stream\r\n"
    );
    let r = send_raw(a.s.addr, &chunked(&head, 64 << 10, 7))
        .await
        .expect("answer");
    assert_eq!(r.status, 400, "chunked Akka body over the limit: {r:?}");
    assert_eq!(akka_get(&a, "/c/big").await.status, 404, "nothing stored");
    // One chunk that declares 256 MiB, 8 KiB of it sent and the connection held open: its
    // bytes are counted as they come, so the answer is 400 at the limit, not 408 after the
    // idle timeout (found from outside, twelfth session: hyper shows no chunk-size line, so
    // a chunk whose bytes never come still waits for that timeout; ARCHITECTURE.md).
    let mut one_chunk =
        format!("{head}Transfer-Encoding: chunked\r\n\r\n10000000\r\n").into_bytes();
    one_chunk.extend([7u8; 8192]);
    let r = send_raw(a.s.addr, &one_chunk).await.expect("answer");
    assert_eq!(r.status, 400, "a declared-huge chunk over the limit: {r:?}");
    alive(&a).await;

    // IronCache: a declared Content-Length far over the limit is refused before reading.
    let head = format!(
        "PUT /1/projects/{P}/caches/c/items/big HTTP/1.1\r\nHost: x\r\nAuthorization: {IRON}\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n{{\"value\":\""
    );
    let r = send_raw(a.s.addr, head.as_bytes()).await.expect("answer");
    assert_eq!(r.status, 400, "{r:?}");
    let value = json!({ "value": "v".repeat(1 << 20 | 1) }).to_string();
    let r = req(
        &a,
        "PUT",
        &format!("/1/projects/{P}/caches/c/items/big"),
        &[("Authorization", IRON)],
        value.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "value over 1 MiB: {r:?}");
    assert_eq!(iron_get(&a, IRON, "c/items/big").await.status, 404);
    alive(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_idle_connections_beyond_the_cap() {
    let a = start().await;
    // Headers dribbled slower than the 300 ms header timeout: the server hangs up.
    let mut slow = TcpStream::connect(a.s.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let dribble = async {
        for _ in 0..200 {
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return true;
            }
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {} // a 408 answer, then the close
                Err(_) => {}
            }
        }
        false
    };
    assert!(
        tokio::time::timeout(BOUND, dribble).await.unwrap_or(false),
        "a slow-loris connection is closed"
    );
    alive(&a).await;

    // Twice the connection cap of idle connections: the server still serves requests
    // (idle ones time out), and after they go.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(a.s.addr).await.expect("connect"));
    }
    alive(&a).await;
    drop(idle);
    for _ in 0..8 {
        alive(&a).await;
    }
}

/// Sends a `/healthz` request on `conn` and reads its whole response; `false` if the
/// server closed the connection instead.
async fn healthz_on(conn: &mut TcpStream) -> bool {
    if conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a content-length");
            if got.len() >= end + 4 + len {
                assert!(head.starts_with("http/1.1 200"), "{head}");
                return true;
            }
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_gets_the_header_timeout_anew_after_each_response() {
    let a = start().await;
    let timeout = Duration::from_millis(300);
    let mut conn = TcpStream::connect(a.s.addr).await.expect("connect");
    // Requests half a timeout apart, for four timeouts in all: each is served.
    for i in 0..8 {
        assert!(healthz_on(&mut conn).await, "request {i} is served");
        tokio::time::sleep(timeout / 2).await;
    }
    // Then idle after a response: closed, but not before the timeout.
    assert!(healthz_on(&mut conn).await);
    let idle = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(BOUND, conn.read(&mut byte))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not {read:?}");
    assert!(
        idle.elapsed() >= timeout,
        "closed after {:?}, before the timeout",
        idle.elapsed()
    );
    alive(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_after_100_continue_is_not_cut_off_by_the_header_timeout() {
    let a = start().await;
    let timeout = Duration::from_millis(300);
    let mut conn = TcpStream::connect(a.s.addr).await.expect("connect");
    let body = [b'u'; 500];
    let head = format!(
        "POST /c/slow-upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SAMPLE_JWT}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    let mut got = vec![0u8; 25];
    tokio::time::timeout(BOUND, conn.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("100 Continue");
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // The body in five parts, four timeouts in all: the request is in flight, never cut off.
    for part in body.chunks(100) {
        tokio::time::sleep(timeout).await;
        conn.write_all(part).await.expect("a part of the body");
    }
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(BOUND, conn.read_exact(&mut answer))
        .await
        .expect("in time")
        .expect("the answer");
    assert_eq!(
        &answer,
        b"HTTP/1.1 201",
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    alive(&a).await;
}

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
    // Invalid UTF-8 after percent-decoding, and overlong UTF-8 for '/', in each API.
    let iron_put = |key: &str| format!("/1/projects/{P}/caches/c/items/{key}");
    for key in ["%FF", "%C0%AF", "a%E2%82"] {
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

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hs(alg: jsonwebtoken::Algorithm, claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jwts_are_refused() {
    let a = start().await;
    let claims = json!({"iss": ISSUER, "org": "ttorg"});
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let cases = [
        ("alg none", unsigned),
        (
            "HS384",
            hs(
                jsonwebtoken::Algorithm::HS384,
                claims.clone(),
                "your-256-bit-secret",
            ),
        ),
        (
            "wrong key",
            hs(
                jsonwebtoken::Algorithm::HS256,
                claims.clone(),
                "not-the-secret",
            ),
        ),
        (
            "expired",
            hs(
                jsonwebtoken::Algorithm::HS256,
                json!({"iss": ISSUER, "org": "ttorg", "exp": 1_000_000_000u64}),
                "your-256-bit-secret",
            ),
        ),
        (
            "missing org",
            hs(
                jsonwebtoken::Algorithm::HS256,
                json!({"iss": ISSUER}),
                "your-256-bit-secret",
            ),
        ),
        (
            "org that is no tenant name",
            hs(
                jsonwebtoken::Algorithm::HS256,
                json!({"iss": ISSUER, "org": "../ttorg"}),
                "your-256-bit-secret",
            ),
        ),
        (
            "wrong issuer",
            hs(
                jsonwebtoken::Algorithm::HS256,
                json!({"iss": "https://evil", "org": "ttorg"}),
                "your-256-bit-secret",
            ),
        ),
        ("garbage", "a.b.c".to_string()),
    ];
    // Issue 11: these were taken as if the claim were absent. Time claims are NumericDates.
    let time_claims = [
        ("exp negative", json!({"exp": -1})),
        ("exp a string", json!({"exp": "9999999999"})),
        ("exp true", json!({"exp": true})),
        ("exp empty", json!({"exp": ""})),
        ("exp null", json!({"exp": null})),
        ("nbf a string", json!({"nbf": "0"})),
        ("nbf beyond u64", json!({"nbf": 1e300})),
        ("iat a string", json!({"iat": "yesterday"})),
        ("iat false", json!({"iat": false})),
    ];
    let cases = cases
        .into_iter()
        .chain(time_claims.into_iter().map(|(what, extra)| {
            let mut claims = json!({"iss": ISSUER, "org": "ttorg"});
            for (k, v) in extra.as_object().expect("object") {
                claims[k] = v.clone();
            }
            (
                what,
                hs(
                    jsonwebtoken::Algorithm::HS256,
                    claims,
                    "your-256-bit-secret",
                ),
            )
        }));
    for (what, token) in cases {
        let bearer = format!("Bearer {token}");
        let h = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/octet-stream"),
        ];
        let r = req(&a, "POST", "/jwt/k", &h, b"forged").await;
        assert_eq!(r.status, 401, "{what}: {r:?}");
        alive(&a).await;
    }
    assert_eq!(akka_get(&a, "/jwt/k").await.status, 404, "nothing stored");
    // Numbers of every kind are fine: whole or fractional, a past nbf, any iat.
    let fine = json!({"iss": ISSUER, "org": "ttorg", "exp": 4e9, "nbf": 1.5, "iat": -3});
    let bearer = format!(
        "Bearer {}",
        hs(jsonwebtoken::Algorithm::HS256, fine, "your-256-bit-secret")
    );
    let r = req(&a, "GET", "/jwt/k", &[("Authorization", &bearer)], b"").await;
    assert_eq!(r.status, 404, "numeric time claims verify: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_of_one_tenant_on_anothers_project_or_cache() {
    let a = start().await;
    // ttorg stores in project P and Akka cache c.
    let r = req(
        &a,
        "PUT",
        &format!("/1/projects/{P}/caches/c/items/k"),
        &[("Authorization", IRON)],
        br#"{"value":"ttorg"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = req(&a, "POST", "/c/k", &[("Authorization", &bearer)], b"ttorg").await;
    assert_eq!(r.status, 201);

    // acme's credentials on the same project id and cacheName see nothing of ttorg's.
    assert_eq!(iron_get(&a, &a.acme_iron, "c/items/k").await.status, 404);
    assert_eq!(iron_get(&a, &a.acme_iron, "c").await.status, 404);
    let r = req(
        &a,
        "POST",
        &format!("/1/projects/{P}/caches/c/clear"),
        &[("Authorization", &a.acme_iron)],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "acme cannot clear ttorg's cache: {r:?}");
    let r = req(
        &a,
        "DELETE",
        &format!("/1/projects/{P}/caches/c/items/k"),
        &[("Authorization", &a.acme_iron)],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let ah = [("Authorization", a.acme_jwt.as_str())];
    assert_eq!(req(&a, "GET", "/c/k", &ah, b"").await.status, 404);
    assert_eq!(req(&a, "GET", "/cacheName/c", &ah, b"").await.status, 400);
    assert_eq!(
        req(&a, "DELETE", "/cacheName/c", &ah, b"").await.status,
        400
    );
    assert_eq!(req(&a, "DELETE", "/c/k", &ah, b"").await.status, 400);
    // A Flash API key with another tenant's ClientId is refused.
    let client = "v1:uid_ffffffffffffffffffffffffffffffffffffffff";
    let r = req(
        &a,
        "GET",
        "/v1/cache/get",
        &[
            ("ClientId", client),
            ("Authorization", FLASH_KEY),
            ("DataKey", "k"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");

    // ttorg's items are untouched.
    let r = iron_get(&a, IRON, "c/items/k").await;
    assert_eq!(r.json()["value"], "ttorg");
    assert_eq!(akka_get(&a, "/c/k").await.body, b"ttorg");
    alive(&a).await;
}

/// Request headers, as name and value.
type Headers<'a> = Vec<(&'a str, &'a str)>;

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

// Issue 11: each of these picked one credential and answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_credentials_are_refused_not_resolved() {
    let a = start().await;
    let other_key = "v1:api_ffffffffffffffffffffffffffffffffffffffff";
    let other_id = "v1:uid_ffffffffffffffffffffffffffffffffffffffff";
    let two_keys = format!("{FLASH_KEY}, {other_key}");
    let flash_cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "two Authorization",
            vec![("Authorization", FLASH_KEY), ("Authorization", other_key)],
        ),
        (
            "two identical Authorization",
            vec![("Authorization", FLASH_KEY), ("Authorization", FLASH_KEY)],
        ),
        (
            "two ClientId",
            vec![("ClientId", FLASH_ID), ("ClientId", other_id)],
        ),
        (
            "two API keys in one header",
            vec![("Authorization", &two_keys)],
        ),
        (
            "two ClientIds in one header",
            vec![("ClientId", "v1:uid_a, v1:uid_b")],
        ),
    ];
    for (what, creds) in flash_cases {
        let mut headers = vec![("DataKey", "amb")];
        if !creds.iter().any(|(n, _)| *n == "ClientId") {
            headers.push(("ClientId", FLASH_ID));
        }
        if !creds.iter().any(|(n, _)| *n == "Authorization") {
            headers.push(("Authorization", FLASH_KEY));
        }
        headers.extend(creds);
        let r = req(&a, "POST", "/v1/cache/add", &headers, b"{}").await;
        assert_eq!(r.status, 400, "flash {what}: {r:?}");
        assert_eq!(r.header("Success"), Some("false"));
        assert!(r
            .header("ResponseMessage")
            .is_some_and(|m| m.contains("one")));
    }
    let mut wrong = flash_headers("amb");
    wrong[1] = ("Authorization", other_key);
    let r = req(&a, "POST", "/v1/cache/add", &wrong, b"{}").await;
    assert_eq!(r.status, 401, "a wrong key stays 401: {r:?}");
    let r = req(&a, "GET", "/v1/cache/get", &flash_headers("amb"), b"").await;
    assert_eq!(r.status, 404, "nothing stored: {r:?}");

    // IronCache: header and query.
    let item = format!("/1/projects/{P}/caches/c/items/amb");
    let wrong_iron = "OAuth ffffffffffffffffffffffffffffffff";
    let cases: [(&str, String, Headers); 4] = [
        (
            "two Authorization",
            item.clone(),
            vec![("Authorization", IRON), ("Authorization", wrong_iron)],
        ),
        (
            "header and a different ?oauth=",
            format!("{item}?oauth=ffffffffffffffff"),
            vec![("Authorization", IRON)],
        ),
        (
            "?oauth= twice",
            format!("{item}?oauth=abc4c7c627376858&oauth=abc4c7c627376858"),
            vec![],
        ),
        (
            "?oauth= twice, different",
            format!("{item}?oauth=abc4c7c627376858&oauth=ffff"),
            vec![],
        ),
    ];
    for (what, path, headers) in cases {
        let r = req(&a, "PUT", &path, &headers, br#"{"value":"v"}"#).await;
        assert_eq!(r.status, 400, "iron {what}: {r:?}");
        assert!(r.json()["msg"].is_string(), "{r:?}");
    }
    let r = req(&a, "GET", &item, &[("Authorization", IRON)], b"").await;
    assert_eq!(r.status, 404, "nothing stored: {r:?}");
    let r = req(&a, "GET", &item, &[("Authorization", wrong_iron)], b"").await;
    assert_eq!(r.status, 401, "a wrong token stays 401: {r:?}");
    let same = format!("{item}?oauth=abc4c7c627376858");
    let r = req(
        &a,
        "PUT",
        &same,
        &[("Authorization", IRON)],
        br#"{"value":"v"}"#,
    )
    .await;
    assert_eq!(
        r.status, 200,
        "the same token twice is not ambiguous: {r:?}"
    );

    // Akka: two bearer tokens, the first valid.
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = req(
        &a,
        "POST",
        "/c/amb",
        &[
            ("Authorization", &bearer),
            ("Authorization", "Bearer x.y.z"),
        ],
        b"v",
    )
    .await;
    assert_eq!(r.status, 400, "akka two Authorization: {r:?}");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(akka_get(&a, "/c/amb").await.status, 404, "nothing stored");
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
    // connection stays usable (a second request on it is answered).
    let gets: [(String, Vec<(&str, &str)>); 5] = [
        (iron_item.clone(), vec![("Authorization", IRON)]),
        (
            format!("/1/projects/{P}/caches/h"),
            vec![("Authorization", IRON)],
        ),
        ("/1/version".into(), vec![]),
        ("/cacheName/h".into(), vec![("Authorization", &bearer)]),
        ("/cacheName/list".into(), vec![("Authorization", &bearer)]),
    ];
    for (path, headers) in &gets {
        let get = req(&a, "GET", path, headers, b"").await;
        assert_eq!(get.status, 200, "GET {path}: {get:?}");
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
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
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
            rest.starts_with("HTTP/1.1 200"),
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

// Found from outside (eleventh session): a body that stopped arriving held its connection
// (and its share of the body budget) for as long as the client kept the socket open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408_and_its_connection_closed() {
    let a = start().await;
    let idle = Duration::from_millis(1000);
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let iron_put = format!(
        "PUT /1/projects/{P}/caches/stall/items/k HTTP/1.1\r\nHost: x\r\nAuthorization: {IRON}\r\n"
    );
    let stalls = [
        (
            "iron, declared length",
            format!("{iron_put}Content-Length: 100\r\n\r\n{{\"value\":"),
        ),
        (
            "iron, chunked",
            format!("{iron_put}Transfer-Encoding: chunked\r\n\r\n9\r\n{{\"value\":\r\n"),
        ),
        (
            "akka, declared length",
            format!("POST /stall/k HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\npart"),
        ),
    ];
    for (what, bytes) in stalls {
        let mut conn = TcpStream::connect(a.s.addr).await.expect("connect");
        conn.write_all(bytes.as_bytes()).await.expect("write");
        let waiting = std::time::Instant::now();
        let mut buf = Vec::new();
        tokio::time::timeout(BOUND, conn.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer, the connection is still open"))
            .expect("read");
        let r = common::parse(&buf);
        assert_eq!(r.status, 408, "{what}: {r:?}");
        assert!(
            waiting.elapsed() >= idle,
            "{what}: answered after {:?}",
            waiting.elapsed()
        );
    }
    // Nothing was stored.
    let r = req(
        &a,
        "GET",
        &format!("/1/projects/{P}/caches/stall/items/k"),
        &[("Authorization", IRON)],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(akka_get(&a, "/stall/k").await.status, 404);
    alive(&a).await;
}
