//! `ttlcask stats`, `compact`, `verify`, `export` and `import` on stopped data dirs, run as
//! the real binary.

use std::process::Command;

use ttlcask_engine::{PutOptions, Store};

fn ttlcask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(args)
        .output()
        .expect("run ttlcask")
}

#[test]
fn maintenance_commands_work_on_a_stopped_data_dir() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let (da, db) = (a.path().join("data"), b.path().join("data"));
    {
        let store = Store::open(&da).expect("open");
        let ns = ttlcask::namespace::akka_cache("ttorg", "orders");
        for i in 0..20u32 {
            store
                .put(
                    &ns,
                    format!("k{i}").as_bytes(),
                    &[i as u8; 50],
                    PutOptions::default(),
                )
                .expect("put");
        }
    }
    let da_s = da.to_str().expect("utf-8 path");
    let stats = ttlcask(&["stats", "--data-dir", da_s]);
    assert!(stats.status.success(), "{stats:?}");
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("json");
    assert_eq!(v["items"], 20);

    let compact = ttlcask(&["compact", "--data-dir", da_s]);
    assert!(compact.status.success(), "{compact:?}");

    let verify = ttlcask(&["verify", "--data-dir", da_s]);
    assert!(verify.status.success(), "{verify:?}");

    let dump = a.path().join("dump.jsonl");
    let export = ttlcask(&[
        "export",
        "--data-dir",
        da_s,
        "-o",
        dump.to_str().expect("utf-8"),
    ]);
    assert!(export.status.success(), "{export:?}");
    let import = ttlcask(&[
        "import",
        "--data-dir",
        db.to_str().expect("utf-8"),
        "-i",
        dump.to_str().expect("utf-8"),
        "--batch",
        "7",
    ]);
    assert!(import.status.success(), "{import:?}");
    let again = b.path().join("again.jsonl");
    let export2 = ttlcask(&[
        "export",
        "--data-dir",
        db.to_str().expect("utf-8"),
        "-o",
        again.to_str().expect("utf-8"),
    ]);
    assert!(export2.status.success(), "{export2:?}");
    assert_eq!(
        std::fs::read(&dump).expect("dump"),
        std::fs::read(&again).expect("again"),
        "export → import → export round-trips exactly"
    );

    // Damage one byte of a segment: verify reports it and exits non-zero, changing nothing.
    let seg = std::fs::read_dir(&db)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = bytes.len() - 30;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).expect("write");
    let verify = ttlcask(&["verify", "--data-dir", db.to_str().expect("utf-8")]);
    assert!(!verify.status.success(), "{verify:?}");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("damaged"));
    assert_eq!(
        std::fs::read(&seg).expect("read"),
        bytes,
        "verify is read-only"
    );
}
