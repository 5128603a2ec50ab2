//! Replays the request fuzz targets' seed corpus (`fuzz/corpus/{flash,iron,akka}_request/`)
//! through the same harness the fuzzer runs (`ttlcask::fuzzing::request`), so `cargo test`
//! on stable checks every seed and every crash input saved there.

use std::path::Path;

use ttlcask::fuzzing::{request, Dialect};

fn replay(target: &str, dialect: Dialect) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{} holds too few seeds", dir.display());
    for path in files {
        let bytes = std::fs::read(&path).expect("read seed");
        if let Err(panic) = std::panic::catch_unwind(|| request(dialect, &bytes)) {
            panic!("{}: {panic:?}", path.display());
        }
    }
}

#[test]
fn flash_request_corpus() {
    replay("flash_request", Dialect::Flash);
}

#[test]
fn iron_request_corpus() {
    replay("iron_request", Dialect::Iron);
}

#[test]
fn akka_request_corpus() {
    replay("akka_request", Dialect::Akka);
}
