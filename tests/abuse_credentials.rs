//! Abuse of the server over raw TCP, credentials: forged JWTs, one tenant's credentials on
//! another's project or cache, and ambiguous credentials. Each case checks its documented
//! error, that nothing was stored, and that the server still answers `/healthz`.

mod abuse_support;
mod common;

use common::SAMPLE_JWT;
use serde_json::json;

use abuse_support::*;

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
    let cases: [(&str, String, Headers); 5] = [
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
        (
            // `%61` is an escaped `a`: the same name (found from outside: the first one won).
            "?oauth= and ?o%61uth=, different",
            format!("{item}?oauth=abc4c7c627376858&o%61uth=ffff"),
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
    // A percent-encoded parameter name is the same name (it was ignored: 401).
    let escaped = format!("{item}?o%61uth=abc4c7c627376858");
    let r = req(&a, "GET", &escaped, &[], b"").await;
    assert_eq!(r.status, 200, "?o%61uth=: {r:?}");

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
