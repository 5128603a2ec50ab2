//! The fence file checks itself, and `ttlcask verify` agrees with the start (found from
//! outside, twelfth session: one flipped digit in `fences.json` moved a fence so that a write
//! to the fenced slot was accepted, a deleted file lifted every fence in silence, and
//! `verify` said clean of a truncated file that refused the start).

mod common;

use std::path::Path;
use std::process::Command;

use common::{start_on, TestServer, DOC_NOW_MS};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

const PROJECT: &str = "4ccf2c5da3c0f1a4d1000011";
const IRON_AUTH: (&str, &str) = ("Authorization", "OAuth abc4c7c627376858");

fn slot() -> u16 {
    ttlcask::slot::of_key(PROJECT.as_bytes())
}

fn config(dir: &Path) -> Config {
    let mut config = Config::new(true);
    config.data_dir = Some(dir.to_path_buf());
    config.admin_token_path = Some(dir.join("admin.token"));
    config
}

async fn start(dir: &Path) -> TestServer {
    start_on(dir, config(dir), ManualClock::new(DOC_NOW_MS), |_| {}).await
}

/// The status of a write to the project's slot.
async fn write(s: &TestServer) -> u16 {
    let path = format!("/1/projects/{PROJECT}/caches/c/items/k");
    s.req("PUT", &path, &[IRON_AUTH], br#"{"value":"x"}"#)
        .await
        .status
}

/// `ttlcask verify`: whether it said clean, and its standard error.
fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["verify", "--data-dir"])
        .arg(dir)
        .env_remove("TTLCASK_DATA_DIR")
        .output()
        .expect("run ttlcask verify");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_damaged_or_deleted_fence_file_keeps_the_fence_or_refuses_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fences = dir.join("fences.json");
    std::fs::write(dir.join("admin.token"), "fence-test-token").expect("token");
    let bearer = "Bearer fence-test-token";
    let s = start(dir).await;
    let fence = format!("/admin/fence?slot={0}..{0}", slot());
    let r = s
        .req("POST", &fence, &[("Authorization", bearer)], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(write(&s).await, 503);
    s.stop().await.expect("stop");
    assert!(verify(dir).0, "{}", verify(dir).1);

    // One flipped digit of the slot: verify says so, and the fence stays where it was.
    let text = std::fs::read_to_string(&fences).expect("read");
    let moved = format!("[{}]", (slot() + 1) % 1024);
    let flipped = text.replacen(&format!("[{}]", slot()), &moved, 1);
    assert_ne!(flipped, text);
    std::fs::write(&fences, flipped).expect("flip");
    let (clean, said) = verify(dir);
    assert!(!clean && said.contains("fences.json"), "{said}");
    let s = start(dir).await;
    assert_eq!(write(&s).await, 503, "the fence moved");
    s.stop().await.expect("stop");
    assert!(
        verify(dir).0,
        "written again at the start: {}",
        verify(dir).1
    );

    // Deleted: the same.
    std::fs::remove_file(&fences).expect("delete");
    let (clean, said) = verify(dir);
    assert!(
        !clean && said.contains("fences.json: it is missing"),
        "{said}"
    );
    let s = start(dir).await;
    assert_eq!(write(&s).await, 503, "the fence was lifted");
    s.stop().await.expect("stop");

    // Nothing left to trust: verify and the start both refuse, naming the file.
    for name in ["fences.json", "fences.copy.json"] {
        std::fs::write(dir.join(name), b"{\"vers").expect("truncate");
    }
    let (clean, said) = verify(dir);
    assert!(!clean && said.contains("refuses to start"), "{said}");
    let s = start(dir).await;
    let refused = s.stop().await.expect_err("started without its fences");
    let refused = refused.to_string();
    assert!(
        refused.contains("fences.json") && refused.contains("JSON list"),
        "{refused}"
    );

    // The way out the message gives: the plain list.
    std::fs::write(&fences, format!("[{}]", slot())).expect("write");
    let s = start(dir).await;
    assert_eq!(write(&s).await, 503);
    s.stop().await.expect("stop");
    assert!(verify(dir).0, "{}", verify(dir).1);
}
