//! Admin writes on a full disk answer 507, as the data APIs do (found from outside, twelfth
//! session: `credential create` and `/admin/fence` answered 500 "No space left on device").
//! - tenant and credential records: the store on the engine's `SimFs` with no room left;
//! - the fence file: a real 64 KiB tmpfs holding the fence files, filled, as root; skips
//!   LOUDLY (a line on stderr, then passes) where it is not root or mounting is refused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{start_on, start_with, TestServer, DOC_NOW_MS, SAMPLE_JWT};
use ttlcask::Config;
use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, ManualClock, Store};

const TOKEN: &str = "admin-disk-full-token";
const BEARER: (&str, &str) = ("Authorization", "Bearer admin-disk-full-token");

/// `config` with the admin endpoint on, its token written in `dir` (a real directory).
fn with_admin(mut config: Config, dir: &Path) -> Config {
    std::fs::write(dir.join("admin.token"), TOKEN).expect("token");
    config.admin_token_path = Some(dir.join("admin.token"));
    config
}

#[tokio::test]
async fn tenant_and_credential_create_answer_507_on_a_full_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let config = with_admin(Config::new(true), tmp.path());
    let s = start_with(store, "/data".as_ref(), config, clock).await;
    let r = s
        .req("POST", "/admin/tenants", &[BEARER], br#"{"name":"acme"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // No room: fill the active segment with the smallest writes until one is refused.
    fs.set_capacity(Some(fs.used()));
    let auth = format!("Bearer {SAMPLE_JWT}");
    let akka = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    let filled = {
        let mut filled = false;
        for i in 0..10_000 {
            let r = s.req("POST", &format!("/c/f{i:04}"), &akka, b"v").await;
            if r.status == 507 {
                filled = true;
                break;
            }
            assert_eq!(r.status, 201, "{}", r.text());
        }
        filled
    };
    assert!(filled, "the simulated disk never filled");

    let tenant = s
        .req("POST", "/admin/tenants", &[BEARER], br#"{"name":"beta"}"#)
        .await;
    assert_eq!(tenant.status, 507, "{}", tenant.text());
    assert!(tenant.text().contains("disk is full"), "{}", tenant.text());
    let body = br#"{"tenant":"acme","api":"akka"}"#;
    let credential = s.req("POST", "/admin/credentials", &[BEARER], body).await;
    assert_eq!(credential.status, 507, "{}", credential.text());
    assert!(
        credential.text().contains("disk is full"),
        "{}",
        credential.text()
    );
    let listed = s.req("GET", "/admin/tenants", &[BEARER], b"").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    s.stop().await.expect("stop");
}

/// Fills the file system holding `dir` (bounded: at most its 64 KiB plus one write).
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    for _ in 0..1024 {
        if file.write_all(&[0u8; 4096]).is_err() {
            return filler;
        }
    }
    panic!("a 64 KiB tmpfs took 4 MiB");
}

async fn fence(s: &TestServer, method: &str, slot: u16) -> common::Resp {
    let path = format!("/admin/fence?slot={slot}");
    s.req(method, &path, &[BEARER], b"").await
}

#[tokio::test]
async fn a_fence_that_cannot_be_written_answers_507_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt =
        match common::tmpfs_or_skip("admin_disk_full fence", &tmp.path().join("mnt"), "size=64k") {
            Some(m) => m,
            None => return,
        };
    // The store in a directory of its own; the server's own files on the small tmpfs.
    let store_dir = tmp.path().join("store");
    let mut config = with_admin(Config::new(true), &mnt.point);
    config.data_dir = Some(mnt.point.clone());
    let s = start_on(&store_dir, config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    assert_eq!(fence(&s, "POST", 5).await.status, 200);

    let filler = fill(&mnt.point);
    for (method, slot) in [("POST", 6), ("DELETE", 5)] {
        let r = fence(&s, method, slot).await;
        assert_eq!(r.status, 507, "{method} {slot}: {}", r.text());
        assert!(r.text().contains("fences.json"), "{}", r.text());
    }
    let fenced = s.req("GET", "/admin/fence", &[BEARER], b"").await.json();
    assert_eq!(fenced["fenced"], serde_json::json!([5]), "nothing changed");

    std::fs::remove_file(&filler).expect("free the disk");
    assert_eq!(fence(&s, "POST", 6).await.status, 200);
    s.stop().await.expect("stop");
    drop(mnt);
}

/// No `admin.token` on a full disk: the server starts all the same, with the admin endpoint
/// off, so that the APIs serve reads and the deletes that free space; a start once there is
/// room writes the token. Found from outside (fourteenth session): the start failed with
/// "cannot write admin token … No space left on device".
#[tokio::test]
async fn a_token_that_cannot_be_written_for_space_leaves_the_admin_endpoint_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt =
        match common::tmpfs_or_skip("admin_disk_full token", &tmp.path().join("mnt"), "size=64k") {
            Some(m) => m,
            None => return,
        };
    let store_dir = tmp.path().join("store");
    let token = mnt.point.join("admin.token");
    let config = || {
        let mut config = Config::new(true);
        config.admin_token_path = Some(token.clone());
        config
    };
    let filler = fill(&mnt.point);
    let s = start_on(&store_dir, config(), ManualClock::new(DOC_NOW_MS), |_| {}).await;
    assert_eq!(s.req("GET", "/healthz", &[], b"").await.status, 200);
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let put = s
        .req(
            "POST",
            "/c/k",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/octet-stream"),
            ],
            b"v",
        )
        .await;
    assert_eq!(put.status, 201, "the store's own disk has room");
    let admin = s.req("GET", "/admin/stats", &[BEARER], b"").await;
    assert_eq!(admin.status, 404, "{}", admin.text());
    s.stop().await.expect("stop");

    std::fs::remove_file(&filler).expect("free the disk");
    let s = start_on(&store_dir, config(), ManualClock::new(DOC_NOW_MS), |_| {}).await;
    // (Answered once the token is written: it comes before the first connection.)
    assert_eq!(s.req("GET", "/healthz", &[], b"").await.status, 200);
    let written = std::fs::read_to_string(&token).expect("a token once there is room");
    let auth = format!("Bearer {}", written.trim());
    assert_eq!(
        s.req("GET", "/admin/stats", &[("Authorization", &auth)], b"")
            .await
            .status,
        200
    );
    s.stop().await.expect("stop");
    drop(mnt);
}
