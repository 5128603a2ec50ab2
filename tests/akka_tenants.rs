//! Akka Cache over real HTTP, JWTs and tenants: DESIGN.md's JWT checks, tenants isolated
//! with their quotas, tenants taken from tokens (any org in dev, registered ones only when so
//! configured), and the credentials a dev server mints.

mod akka_support;
mod common;

use common::{start_dev, start_on, TestServer, DOC_NOW_MS, SAMPLE_JWT};
use serde_json::json;
use ttlcask::auth::jwt::mint_hs256;
use ttlcask::auth::registry::create_tenant;
use ttlcask::config::DEFAULT_AKKA_ISSUER;
use ttlcask::Config;
use ttlcask_engine::ManualClock;

use akka_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_checks() {
    let (s, _dir) = start_dev().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let iss = DEFAULT_AKKA_ISSUER;
    let refused = [
        ("missing", None),
        ("not a jwt", Some("Bearer abc".to_string())),
        ("basic scheme", Some(format!("Basic {SAMPLE_JWT}"))),
        ("alg none", Some("Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmcifQ.".to_string())),
        ("wrong key", Some(format!("Bearer {}", token(json!({"iss": iss, "org": "ttorg"}), "other-secret")))),
        ("wrong issuer", Some(format!("Bearer {}", token(json!({"iss": "https://evil", "org": "ttorg"}), "your-256-bit-secret")))),
        ("no issuer", Some(format!("Bearer {}", token(json!({"org": "ttorg"}), "your-256-bit-secret")))),
        ("no org", Some(format!("Bearer {}", token(json!({"iss": iss}), "your-256-bit-secret")))),
        ("expired", Some(format!("Bearer {}", token(json!({"iss": iss, "org": "ttorg", "exp": now - 10}), "your-256-bit-secret")))),
        ("not yet valid", Some(format!("Bearer {}", token(json!({"iss": iss, "org": "ttorg", "nbf": now + 3600}), "your-256-bit-secret")))),
        ("org not a tenant name", Some(format!("Bearer {}", token(json!({"iss": iss, "org": "no body"}), "your-256-bit-secret")))),
        ("org too long", Some(format!("Bearer {}", token(json!({"iss": iss, "org": "o".repeat(65)}), "your-256-bit-secret")))),
        ("org not a string", Some(format!("Bearer {}", token(json!({"iss": iss, "org": 7}), "your-256-bit-secret")))),
    ];
    for (why, auth) in refused {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = s.req("POST", "/c/k", &headers, b"v").await;
        assert_eq!(r.status, 401, "{why}: {r:?}");
        if why.starts_with("org not a tenant") || why.starts_with("org too long") {
            assert!(
                r.text().contains("a tenant name is 1 to 64 of"),
                "{why}: {r:?}"
            );
        }
    }
    let r = s
        .req("GET", "/c/k", &[("Authorization", &bearer())], b"")
        .await;
    assert_eq!(r.status, 404, "refused writes stored nothing");
    let fresh = token(
        json!({"iss": iss, "org": "ttorg", "exp": now + 3600, "nbf": now - 10}),
        "your-256-bit-secret",
    );
    let r = s
        .req(
            "POST",
            "/c/k",
            &[("Authorization", &format!("Bearer {fresh}"))],
            b"v",
        )
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_quota_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(false);
    config.akka.hs256_secret = Some("prod-secret".into());
    config.akka.quota_enabled = true;
    config.akka.free_max_bytes = 10;
    config.akka.cors_allow_origin = "*".into();
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |store| {
        create_tenant(store, "tt").expect("tenant");
        create_tenant(store, "ttorg").expect("tenant");
    })
    .await;
    let tt = format!(
        "Bearer {}",
        token(
            json!({"iss": DEFAULT_AKKA_ISSUER, "org": "tt"}),
            "prod-secret"
        )
    );
    // A token minted with a ttlcask jti is valid only while its credential exists.
    let minted = format!(
        "Bearer {}",
        mint_hs256("prod-secret", DEFAULT_AKKA_ISSUER, "tt", "a").expect("sign")
    );
    let r = s
        .req("GET", "/orgc/k", &[("Authorization", &minted)], b"")
        .await;
    assert_eq!(r.status, 401);
    let ttorg = format!(
        "Bearer {}",
        token(
            json!({"iss": DEFAULT_AKKA_ISSUER, "org": "ttorg", "serviceLevel": "gatling"}),
            "prod-secret"
        )
    );
    let r = s
        .req("POST", "/c/k", &[("Authorization", &bearer())], b"v")
        .await;
    assert_eq!(r.status, 401, "the sample secret needs --dev");
    // Upstream concatenated org+cache: ("tt","orgc") collided with ("ttorg","c").
    let r = s
        .req("POST", "/orgc/k", &[("Authorization", &tt)], b"tt's")
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .req("GET", "/c/k", &[("Authorization", &ttorg)], b"")
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .req("POST", "/c/k", &[("Authorization", &ttorg)], b"ttorg's")
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .req("GET", "/orgc/k", &[("Authorization", &tt)], b"")
        .await;
    assert_eq!(r.text(), "tt's");
    let r = s
        .req("GET", "/cacheName/list", &[("Authorization", &ttorg)], b"")
        .await;
    assert_eq!(r.json(), json!([{"cacheName": "c", "description": ""}]));

    // Quota (free = 10 bytes here): the write that crosses is accepted, the next refused.
    let r = s
        .req(
            "POST",
            "/orgc/big",
            &[("Authorization", &tt)],
            b"0123456789",
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .req("POST", "/orgc/more", &[("Authorization", &tt)], b"x")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "You've exceeded maximum allow bytes cached for your account level."
    );
    let r = s
        .req(
            "POST",
            "/batch",
            &[("Authorization", &tt)],
            br#"{"cacheRequests":[{"cacheName":"orgc","key":"b","value":"YQ=="}]}"#,
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"complete": false, "results": [{"cacheName": "orgc", "key": "b", "success": false}]})
    );
    // gatling is unlimited; an unknown level is refused.
    let r = s
        .req("POST", "/c/big", &[("Authorization", &ttorg)], &[b'x'; 100])
        .await;
    assert_eq!(r.status, 201);
    let odd = format!(
        "Bearer {}",
        token(
            json!({"iss": DEFAULT_AKKA_ISSUER, "org": "ttorg", "serviceLevel": "platinum"}),
            "prod-secret"
        )
    );
    let r = s
        .req("POST", "/c/k2", &[("Authorization", &odd)], b"x")
        .await;
    assert_eq!(
        r.text(),
        "Invalid Service Level (platinum) found in the JWT Token"
    );
}

/// A server with the HS256 key `prod-secret` and no `--dev`, `registered_only` as given,
/// tenant `alpha` registered.
async fn token_tenants_server(registered_only: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(false);
    config.akka.hs256_secret = Some("prod-secret".into());
    config.akka.registered_tenants_only = registered_only;
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |store| {
        create_tenant(store, "alpha").expect("tenant");
    })
    .await;
    (s, dir)
}

fn org_token(org: &str) -> String {
    format!(
        "Bearer {}",
        token(
            json!({"iss": DEFAULT_AKKA_ISSUER, "org": org}),
            "prod-secret"
        )
    )
}

// Issue 11: a verified JWT for an org never registered answered 401 "unknown tenant", even in
// --dev. The token's issuer is the authority on orgs, as upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_come_from_tokens_and_stay_apart() {
    let (s, dir) = token_tenants_server(false).await;
    // beta and gamma were never registered; alpha was. Same key for all three.
    let (alpha, beta, gamma) = (org_token("alpha"), org_token("beta"), org_token("gamma"));
    let call = |method: &'static str, path: &'static str, auth: &String, body: &'static [u8]| {
        let auth = auth.clone();
        let s = &s;
        async move { s.req(method, path, &[("Authorization", &auth)], body).await }
    };
    assert_eq!(call("POST", "/c/k", &beta, b"beta's").await.status, 201);
    let r = call(
        "POST",
        "/cacheName",
        &beta,
        br#"{"cacheName":"d","description":"b"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    // Neither sees the other's caches or items.
    for other in [&alpha, &gamma] {
        assert_eq!(call("GET", "/c/k", other, b"").await.status, 404);
        assert_eq!(
            call("GET", "/cacheName/list", other, b"").await.json(),
            json!([])
        );
        assert_eq!(call("GET", "/cacheName/c", other, b"").await.status, 400);
        assert_eq!(
            call("GET", "/cacheName/d/keys", other, b"").await.status,
            400
        );
        assert_eq!(call("DELETE", "/c/k", other, b"").await.status, 400);
        let r = call("GET", "/get/c/k", other, b"").await;
        assert_eq!(r.json()["success"], false);
        let r = call(
            "POST",
            "/batch/get",
            other,
            br#"{"getCachedBatch":[{"cacheName":"c","key":"k"}]}"#,
        )
        .await;
        assert_eq!(r.json()["results"][0]["success"], false, "{r:?}");
    }
    assert_eq!(call("POST", "/c/k", &gamma, b"gamma's").await.status, 201);
    assert_eq!(
        call("PUT", "/cacheName/c/flush", &gamma, b"").await.status,
        202
    );
    assert_eq!(call("GET", "/c/k", &beta, b"").await.text(), "beta's");
    assert_eq!(
        call("GET", "/cacheName/list", &beta, b"").await.json(),
        json!([{"cacheName": "c", "description": ""}, {"cacheName": "d", "description": "b"}])
    );
    assert_eq!(call("GET", "/c/k", &alpha, b"").await.status, 404);
    // A tenant seen only in tokens gets no registry record.
    s.stop().await.expect("stop");
    let store = common::open_store(dir.path(), &ManualClock::new(DOC_NOW_MS));
    let registry = ttlcask::auth::Registry::load(&store).expect("registry");
    let names: Vec<_> = registry.tenants().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["alpha"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_accepts_any_org_signed_with_the_sample_secret() {
    let (s, _dir) = start_dev().await;
    let stranger = format!(
        "Bearer {}",
        token(
            json!({"iss": DEFAULT_AKKA_ISSUER, "org": "stranger"}),
            "your-256-bit-secret"
        )
    );
    let r = s
        .req("POST", "/c/k", &[("Authorization", &stranger)], b"s")
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .req("GET", "/c/k", &[("Authorization", &bearer())], b"")
        .await;
    assert_eq!(r.status, 404, "ttorg does not see stranger's item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_tenants_only_refuses_unregistered_orgs() {
    let (s, _dir) = token_tenants_server(true).await;
    let r = s
        .req(
            "POST",
            "/c/k",
            &[("Authorization", &org_token("alpha"))],
            b"a",
        )
        .await;
    assert_eq!(r.status, 201, "a registered org works: {r:?}");
    let r = s
        .req(
            "POST",
            "/c/k",
            &[("Authorization", &org_token("beta"))],
            b"b",
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.text().contains("registered_tenants_only"), "{r:?}");
    let r = s
        .req(
            "GET",
            "/c/k",
            &[("Authorization", &org_token("alpha"))],
            b"",
        )
        .await;
    assert_eq!(r.text(), "a", "beta's refused write stored nothing");
}

// A `--dev` server verifies tokens signed with the documents' sample secret, so with no
// secret of its own it mints Akka credentials with that one (it answered 400 "configure
// [akka] hs256_secret" before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_mints_akka_credentials_it_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.admin_token_path = Some(dir.path().join("admin.token"));
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    assert_eq!(s.req("GET", "/healthz", &[], b"").await.status, 200);
    let admin = format!(
        "Bearer {}",
        std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("token")
            .trim()
    );
    let auth = [("Authorization", admin.as_str())];
    let r = s
        .req("POST", "/admin/tenants", &auth, br#"{"name":"zed"}"#)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .req(
            "POST",
            "/admin/credentials",
            &auth,
            br#"{"tenant":"zed","api":"akka"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let minted = format!("Bearer {}", r.json()["secret"].as_str().expect("secret"));
    let mine = [("Authorization", minted.as_str())];
    assert_eq!(s.req("POST", "/c/k", &mine, b"zed's").await.status, 201);
    let r = s.req("GET", "/c/k", &mine, b"").await;
    assert_eq!((r.status, r.text()), (200, "zed's".to_string()), "{r:?}");
    // The sample token's org does not see it.
    assert_eq!(
        s.req("GET", "/c/k", &[("Authorization", &bearer())], b"")
            .await
            .status,
        404
    );
}
