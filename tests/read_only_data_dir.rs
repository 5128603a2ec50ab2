//! A stopped data dir on a read-only file system: a snapshot mounted read-only, or a disk the
//! kernel remounted read-only after I/O errors, which is when an operator wants the data out.
//! `ttlcask export`, `stats` and `verify` work there; they failed at once, and a read-only
//! open had reported every key of the dir lost (each segment's read-write open failed with
//! `EROFS`). `ttlcask serve` cannot work there and says why, with exit 1.
//!
//! As root, on a tmpfs remounted read-only; skips LOUDLY (a line on stderr, then passes)
//! where it is not root or mounting is refused.

mod common;

use std::process::{Command, Output, Stdio};

/// Runs the binary without any `TTLCASK_*` setting of the caller's environment.
fn ttlcask(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ttlcask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn export_stats_and_verify_work_on_a_read_only_file_system() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(mnt) =
        common::tmpfs_or_skip("read_only_data_dir", &tmp.path().join("mnt"), "size=16m")
    else {
        return;
    };
    let dir = mnt.point.join("data");
    let dir_arg = dir.to_str().expect("utf-8 path");

    // 300 items of one Akka cache, through `import` into a stopped dir.
    let mut lines = String::from(
        r#"{"tenant":"ttorg","api":"akka","cache":"orders","description":"","expires_at_ms":null,"kind":0,"version":1}"#,
    );
    for i in 0..300 {
        let value = base64_of(format!("value {i}").repeat(20).as_bytes());
        lines.push_str(&format!(
            "\n{{\"tenant\":\"ttorg\",\"api\":\"akka\",\"cache\":\"orders\",\"key\":\"k{i:03}\",\"value\":\"{value}\",\"expires_at_ms\":null,\"kind\":0,\"version\":{}}}",
            i + 2
        ));
    }
    lines.push('\n');
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, &lines).expect("write import file");
    let out = ttlcask(&[
        "import",
        input.to_str().expect("utf-8"),
        "--data-dir",
        dir_arg,
    ]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    let before = ttlcask(&["export", "--data-dir", dir_arg, "--registry", "false"]);
    assert!(before.status.success(), "export: {}", text(&before.stderr));
    let exported = text(&before.stdout);
    assert_eq!(exported.lines().count(), 301, "{exported}");

    common::remount(&mnt, "ro").expect("remount read-only");

    let after = ttlcask(&["export", "--data-dir", dir_arg, "--registry", "false"]);
    assert!(after.status.success(), "export: {}", text(&after.stderr));
    assert_eq!(
        text(&after.stdout),
        exported,
        "export of the read-only dir differs"
    );

    let stats = ttlcask(&["stats", "--data-dir", dir_arg]);
    assert!(stats.status.success(), "stats: {}", text(&stats.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    assert_eq!(stats["items"], 300, "{stats}");
    assert_eq!(stats["lost_reads"], 0, "{stats}");

    let verify = ttlcask(&["verify", "--data-dir", dir_arg]);
    assert!(verify.status.success(), "verify: {}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("\"clean\": true"),
        "{}",
        text(&verify.stdout)
    );

    let serve = ttlcask(&[
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir_arg,
    ]);
    assert_eq!(
        serve.status.code(),
        Some(1),
        "serve: {}",
        text(&serve.stderr)
    );
    assert!(
        text(&serve.stderr).contains("Read-only file system"),
        "serve: {}",
        text(&serve.stderr)
    );
    common::remount(&mnt, "rw").expect("remount read-write");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
