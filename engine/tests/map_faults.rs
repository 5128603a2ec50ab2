//! A segment page the kernel cannot read through the map (a failing disk's EIO, or a file
//! cut short under the store) raised SIGBUS and killed the process, at every restart too
//! (found from outside, seventeenth session). Now the page reads as zeros, which the
//! records' CRCs take for damage: the read fails, the process lives. Here the file is cut
//! short under an open store: reading past a file's end through a map is the same SIGBUS
//! as an unreadable block, without root or a failing device. Such a read error may pass:
//! nothing is judged lost from it (a compaction run keeps the segment, and once the file
//! is whole again a reopen reads every key).

use ttlcask_engine::{unreadable_pages, PutOptions, ReadError, Store};

#[test]
fn a_segment_cut_short_under_the_store_reads_as_damage_not_sigbus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = 200u32;
    let value = |i: u32| vec![(i % 251) as u8; 4000];
    {
        let store = Store::builder()
            .segment_size(4 << 20)
            .open(dir.path())
            .expect("open");
        for i in 0..keys {
            store
                .put(b"ns", &i.to_be_bytes(), &value(i), PutOptions::default())
                .expect("put");
        }
    }
    let store = Store::builder()
        .segment_size(4 << 20)
        .compaction_interval(None)
        .open(dir.path())
        .expect("reopen");
    // Every record of the sealed segment is mapped; cut its file to half.
    let segment = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .min()
        .expect("a segment");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open the segment");
    let whole = std::fs::read(&segment).expect("read the segment");
    file.set_len(whole.len() as u64 / 2).expect("cut");
    let before = unreadable_pages();
    let (mut read, mut damaged) = (0, 0);
    for i in 0..keys {
        match store.get(b"ns", &i.to_be_bytes()) {
            Ok(Some(item)) => {
                assert_eq!(&item.value[..], &value(i)[..], "key {i}");
                read += 1;
            }
            // The record across the cut reads zeros past the end with no fault: Corrupt.
            Err(ReadError::Unreadable { .. } | ReadError::Corrupt { .. }) => damaged += 1,
            other => panic!("key {i}: {other:?}"),
        }
    }
    assert!(read > keys / 4, "the first half reads: {read} of {keys}");
    assert!(
        damaged > keys / 4,
        "the cut half is damage: {damaged} of {keys}"
    );
    assert!(unreadable_pages() > before, "counted");
    // A compaction run does not take the zeros for damage: nothing marked lost, nothing
    // moved aside (found from outside: a passing read error lost keys for good).
    store.compact().expect("compact");
    drop(store);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("damaged")), "{names:?}");
    // The disk reads again: every key is there.
    std::fs::write(&segment, &whole).expect("restore");
    let store = Store::open(dir.path()).expect("reopen");
    for i in 0..keys {
        let item = store
            .get(b"ns", &i.to_be_bytes())
            .expect("read")
            .expect("there");
        assert_eq!(&item.value[..], &value(i)[..], "key {i}");
    }
}
