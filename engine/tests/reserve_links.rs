//! The space reserve's files are the store's own: a symbolic link put at their names from
//! outside is never written through, grown or cut (found from outside, fourteenth session:
//! `space-reserve.tmp` linked to a segment had the segment grown to the reserve's size and
//! cut to nothing at a roomy close, 21 of 60 acknowledged keys lost; a link to a file
//! outside the data directory emptied that file).

use std::path::Path;

use ttlcask_engine::{PutOptions, Store};

fn open(dir: &Path) -> Store {
    Store::builder()
        .segment_size(4 << 10)
        .open(dir)
        .expect("open")
}

/// Puts `k{i}` for each `i` of `keys`, 100-byte values.
fn put_range(store: &Store, keys: std::ops::Range<usize>) {
    for i in keys {
        store
            .put(
                b"ns",
                format!("k{i}").as_bytes(),
                &[b'v'; 100],
                PutOptions::default(),
            )
            .expect("put");
    }
}

#[test]
fn links_at_the_reserve_names_are_never_followed() {
    reserve_names_linked(|target, name| std::os::unix::fs::symlink(target, name));
}

/// A hard link is a regular file with another name: a `cp -al` backup gives every file of
/// the dir one, and one at a reserve name to a segment had the segment cut and emptied as
/// the reserve was (noticed in the fourteenth session). The store takes its own file
/// instead, and the reserve is made again under its name.
#[test]
fn hard_links_at_the_reserve_names_are_replaced_not_written() {
    reserve_names_linked(|target, name| std::fs::hard_link(target, name));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(open(&dir));
    let backup = tmp.path().join("backup.tmp");
    std::fs::hard_link(dir.join("space-reserve.tmp"), &backup).expect("link");
    let store = open(&dir);
    put_range(&store, 0..200);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    use std::os::unix::fs::MetadataExt;
    let reserve = std::fs::metadata(dir.join("space-reserve.tmp")).expect("reserve");
    assert_eq!(reserve.nlink(), 1, "the store made its own reserve file");
    assert!(reserve.len() > 0, "the reserve was made again");
    drop(store);
}

/// Puts links (made by `link(target, name)`) at both reserve names, one to a segment and
/// one to a file outside the dir, runs a store over them and checks that neither target
/// changed and every key reads right.
fn reserve_names_linked(link: impl Fn(&Path, &Path) -> std::io::Result<()>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let store = open(&dir);
    put_range(&store, 0..60);
    drop(store);
    let first_segment = dir.join("0000000001.seg");
    let segment_bytes = std::fs::read(&first_segment).expect("segment");
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"precious").expect("outside file");
    for name in ["space-reserve.tmp", "tombstone-reserve.tmp"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    link(&first_segment, &dir.join("space-reserve.tmp")).expect("link");
    link(&outside, &dir.join("tombstone-reserve.tmp")).expect("link");

    // An open, writes and deletes (rollovers, the background thread's reserve top-ups), a
    // compaction, and a close on a roomy disk (which gives the reserve's bytes back).
    let store = open(&dir);
    put_range(&store, 60..120);
    for i in (60..120).step_by(2) {
        store
            .delete(b"ns", format!("k{i}").as_bytes())
            .expect("delete");
    }
    std::thread::sleep(std::time::Duration::from_millis(1200));
    drop(store);

    assert_eq!(std::fs::read(&outside).expect("outside"), b"precious");
    assert_eq!(
        std::fs::read(&first_segment).expect("segment"),
        segment_bytes,
        "the segment behind the link changed"
    );
    let store = open(&dir);
    assert!(
        store.recovery_report().damaged.is_empty(),
        "{:?}",
        store.recovery_report()
    );
    for i in 0..120 {
        let got = store.get(b"ns", format!("k{i}").as_bytes()).expect("read");
        assert_eq!(got.is_some(), i < 60 || i % 2 == 1, "k{i}");
    }
}
