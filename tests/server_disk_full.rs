//! A full disk simulated by the engine's `SimFs` (a capacity the store fills through the
//! API): each API refuses writes with 507 in its own error shape, nothing of them is
//! stored, reads go on, `/healthz` stays 200 with `"disk_full": true`, and writes are taken
//! again without a restart once the disk has room. The 507 mapping of each API is also
//! pinned by unit tests (`faults`, `flash`, `iron`, `akka`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start_with, TestServer, DOC_NOW_MS, SAMPLE_JWT};
use ttlcask::Config;
use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, ManualClock, Store};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");
const IRON_ITEMS: &str = "/1/projects/4ccf2c5da3c0f1a4d1000011/caches/c/items";
const IRON_AUTH: (&str, &str) = ("Authorization", "OAuth abc4c7c627376858");
const FLASH_CLIENT: (&str, &str) = (
    "ClientId",
    "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1",
);
const FLASH_KEY: (&str, &str) = (
    "Authorization",
    "v1:api_c1c9676fc333043a298551158a22ce64a2796d54",
);

fn akka_auth() -> String {
    format!("Bearer {SAMPLE_JWT}")
}

async fn start() -> (TestServer, SimFs) {
    let fs = SimFs::new();
    let clock = ManualClock::new(DOC_NOW_MS);
    let store = Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(64 << 10)
        .compaction_interval(None)
        .clock(clock.clone())
        .open("/data")
        .expect("open a store on SimFs");
    let server = start_with(store, "/data".as_ref(), Config::new(true), clock).await;
    (server, fs)
}

fn assert_507_text(what: &str, r: &common::Resp) {
    assert_eq!(r.status, 507, "{what}: {}", r.text());
    assert!(r.text().contains("disk is full"), "{what}: {}", r.text());
}

#[tokio::test]
async fn every_api_answers_507_on_a_full_disk_and_recovers_without_restart() {
    let (s, fs) = start().await;
    let auth = akka_auth();
    let akka = ("Authorization", auth.as_str());
    assert_eq!(
        s.req("POST", "/c/old", &[akka, OCTET], b"v").await.status,
        201
    );
    let iron_old = format!("{IRON_ITEMS}/old");
    assert_eq!(
        s.req("PUT", &iron_old, &[IRON_AUTH], br#"{"value":1}"#)
            .await
            .status,
        200
    );
    let flash_old = s
        .req(
            "POST",
            "/v1/cache/add",
            &[FLASH_CLIENT, FLASH_KEY, ("DataKey", "old")],
            b"{}",
        )
        .await;
    assert_eq!(flash_old.status, 201);

    // No room for another segment: fill the active one with the smallest writes until one
    // is refused. Every write below is larger, so none of them fits either.
    fs.set_capacity(Some(fs.used()));
    let mut filled = false;
    for i in 0..10_000 {
        let r = s
            .req("POST", &format!("/c/f{i:04}"), &[akka, OCTET], b"v")
            .await;
        if r.status == 507 {
            filled = true;
            break;
        }
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert!(filled, "the simulated disk never filled");

    // Akka: binary, binary with a TTL, JSON /set, batch: plain-text reason.
    assert_507_text(
        "akka binary",
        &s.req("POST", "/c/newitem", &[akka, OCTET], b"v").await,
    );
    assert_507_text(
        "akka binary ttl",
        &s.req("POST", "/c/newitem/60", &[akka, OCTET], b"v").await,
    );
    let set = br#"{"cacheName":"c","key":"newitem","value":"dg=="}"#;
    assert_507_text("akka /set", &s.req("POST", "/set", &[akka], set).await);
    let batch = br#"{"cacheRequests":[{"cacheName":"c","key":"b1","value":"dg=="}]}"#;
    assert_507_text("akka batch", &s.req("POST", "/batch", &[akka], batch).await);
    // IronCache: put and increment, {"msg"}.
    for (method, path, body) in [
        ("PUT", format!("{IRON_ITEMS}/new"), &br#"{"value":"x"}"#[..]),
        (
            "POST",
            format!("{iron_old}/increment"),
            &br#"{"amount":1}"#[..],
        ),
    ] {
        let r = s.req(method, &path, &[IRON_AUTH], body).await;
        assert_eq!(r.status, 507, "iron {method} {path}: {}", r.text());
        let msg = r.json()["msg"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("disk is full"), "{msg}");
    }
    // Flash: add and update, Success false and the reason in ResponseMessage.
    for (method, path, key) in [
        ("POST", "/v1/cache/add", "new"),
        ("PUT", "/v1/cache/update", "old"),
    ] {
        let r = s
            .req(
                method,
                path,
                &[FLASH_CLIENT, FLASH_KEY, ("DataKey", key)],
                b"{\"a\":1}",
            )
            .await;
        assert_eq!(r.status, 507, "flash {path}");
        assert_eq!(r.header("Success"), Some("false"));
        assert!(r
            .header("ResponseMessage")
            .is_some_and(|m| m.contains("disk is full")));
    }

    // Nothing of the refused writes is there; reads go on; the health check stays 200.
    assert_eq!(s.req("GET", "/c/newitem", &[akka], b"").await.status, 404);
    assert_eq!(s.req("GET", "/c/b1", &[akka], b"").await.status, 404);
    assert_eq!(s.req("GET", "/c/old", &[akka], b"").await.status, 200);
    let iron = s.req("GET", &iron_old, &[IRON_AUTH], b"").await;
    assert_eq!(
        iron.json()["value"],
        1,
        "the refused increment changed nothing"
    );
    let health = s.req("GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["disk_full"], true);
    let metrics = s.req("GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("ttlcask_disk_full 1"), "{metrics}");
    assert!(metrics.contains("status=\"507\""), "{metrics}");

    // Space comes back: writes are taken again without a restart (the engine notices).
    fs.set_capacity(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.req("POST", "/c/newitem", &[akka, OCTET], b"v").await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 507, "{}", r.text());
        assert!(Instant::now() < deadline, "writes still refused after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = s.req("GET", "/healthz", &[], b"").await;
    assert_eq!(
        (health.status, health.json()["disk_full"].clone()),
        (200, false.into())
    );
}
