//! `LOCK` deleted while a store runs (found from outside): a second store made a new `LOCK`,
//! locked it and opened the same directory, two writers destroying each other's data. The
//! directory itself is locked too now, and cannot be deleted from under the store.

use ttlcask_engine::{OpenError, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_second_store_is_refused_after_lock_is_deleted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = Store::open(dir.path())?;
    std::fs::remove_file(dir.path().join("LOCK"))?;
    let err = Store::open(dir.path()).expect_err("a second open must fail");
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // A read-only open of a directory without `LOCK` takes no lock, as before.
    std::fs::remove_file(dir.path().join("LOCK"))?;
    drop(Store::builder().read_only(true).open(dir.path())?);
    drop(first);
    Store::open(dir.path())?;
    Ok(())
}
