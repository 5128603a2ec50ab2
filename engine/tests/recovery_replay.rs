//! What replay rebuilds beside the items, detail by detail: namespaces whose create was
//! lost, clears and drops across a reopen, and each recovered segment's expiry and whether it
//! holds puts. Each test pins a behaviour that a mutation of `recovery/` would break without
//! failing the broader suites (see "Mutation testing" in ARCHITECTURE.md).

mod recovery_support;

use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    BatchOutcome, Durability, FileSystem, ManualClock, PutOptions, ReadError, Store, WriteBatch,
};

use recovery_support::*;

/// Flips a byte of the first record of `ns` whose bytes contain `marker`, in the only
/// segment with data, with hints removed (so the segment is scanned).
fn damage_record(fs: &SimFs, marker: &[u8]) {
    remove_hints(fs);
    for seg in files(fs, ".seg") {
        let mut bytes = fs.read(&path(&seg)).expect("read");
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            bytes[at] ^= 0x20;
            rewrite(fs, &seg, &bytes);
            return;
        }
    }
    panic!("marker not found");
}

/// The namespace's create record is lost to damage, a clear after it survived, and so did a
/// put after the clear: the namespace still exists and the put reads back.
#[test]
fn items_after_a_clear_survive_the_loss_of_their_namespaces_create() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        // The create and the first put share a frame.
        store
            .put(b"lost-create", b"k", b"before", PutOptions::default())
            .expect("put");
        assert!(store.clear_namespace(b"lost-create").expect("clear"));
        store
            .put(b"lost-create", b"j", b"after", PutOptions::default())
            .expect("put");
    }
    // The create record is the first record naming the namespace.
    damage_record(&fs, b"lost-create");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].records, Some(1), "{report:?}");
    assert_eq!(
        store
            .get(b"lost-create", b"j")
            .expect("j reads")
            .map(|i| i.value.to_vec()),
        Some(b"after".to_vec()),
        "an intact put after the clear is not lost with the create: {report:?}"
    );
    assert!(store.namespace(b"lost-create").is_some());
    assert_eq!(store.get(b"lost-create", b"k").expect("read"), None);
    // Compaction copies the damaged segment's intact records out and keeps the damage as
    // evidence: the namespace and its put survive that and another opening.
    let compaction = store.compact().expect("compact");
    assert_eq!(
        (compaction.segments_rewritten, compaction.damaged_ranges),
        (1, 1),
        "{compaction:?}"
    );
    drop(store);
    let store = open(&fs);
    assert_eq!(
        store
            .get(b"lost-create", b"j")
            .expect("j reads")
            .map(|i| i.value.to_vec()),
        Some(b"after".to_vec()),
        "after compaction and reopening: {:?}",
        store.recovery_report()
    );
}

/// A clear of one namespace makes moot the lost records of that namespace only.
#[test]
fn a_clear_of_another_namespace_does_not_make_a_lost_key_moot() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"other", b"a", b"1", PutOptions::default())
            .expect("put");
        store
            .put(b"mine", b"k", b"old-value", PutOptions::default())
            .expect("put");
        store
            .put(b"mine", b"k", b"new-value", PutOptions::default())
            .expect("put");
        assert!(store.clear_namespace(b"other").expect("clear"));
    }
    damage_record(&fs, b"new-value");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.keys_lost, 1, "{report:?}");
    assert!(
        matches!(store.get(b"mine", b"k"), Err(ReadError::Lost { .. })),
        "the newest record of k is lost: never answer the older value"
    );
}

/// A namespace whose create is lost and of which no item survived is not rebuilt, even if
/// a clear of it survived: a lost mark does not say whether the lost record created or
/// dropped the namespace, and only surviving items prove that it still exists.
#[test]
fn a_namespace_whose_create_is_lost_and_no_item_survived_is_not_listed() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"kept", b"a", b"1", PutOptions::default())
            .expect("put");
        assert!(store.create_namespace(b"only-created").expect("create"));
        assert!(store.clear_namespace(b"only-created").expect("clear"));
    }
    damage_record(&fs, b"only-created");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].records, Some(1), "{report:?}");
    assert!(store.namespace(b"only-created").is_none());
    assert!(store.namespace(b"kept").is_some());
}

fn open_at(fs: &SimFs, clock: &ManualClock) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .clock(clock.clone())
        .open(DIR)
        .expect("open")
}

/// Recovery notes, per segment, the latest expiry of its puts and whether it holds puts at
/// all: a segment of expired puts whose only older neighbour holds no put is deleted
/// without being read, and a later segment of puts that never expire is kept.
#[test]
fn recovered_segments_know_their_expiry_and_that_they_hold_no_puts() {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open_at(&fs, &clock);
        assert!(store.create_namespace(b"ns").expect("create"));
    }
    {
        let store = open_at(&fs, &clock);
        for i in 0..5u32 {
            store
                .put(
                    b"ns",
                    &i.to_le_bytes(),
                    b"short-lived",
                    PutOptions::expiring_at(2_000_000),
                )
                .expect("put");
        }
    }
    {
        // A segment of puts that never expire: never "wholly expired".
        let store = open_at(&fs, &clock);
        store
            .put(b"ns", b"forever", b"v", PutOptions::default())
            .expect("put");
    }
    for with_hints in [true, false] {
        let image = fs.crash_image_now(Torn::No);
        if !with_hints {
            remove_hints(&image);
        }
        let clock = ManualClock::new(3_000_000);
        let store = open_at(&image, &clock);
        let report = store.compact().expect("compact");
        assert_eq!(
            report.segments_deleted_unread, 1,
            "hints {with_hints}: {report:?}"
        );
        assert_eq!(
            store.keys(b"ns").collect::<Vec<_>>(),
            vec![b"forever".to_vec()]
        );
    }
}

/// A segment of expired puts is not deleted unread while an older segment holds a put of
/// the same key: the older value would come back.
#[test]
fn recovered_segments_that_hold_puts_block_the_unread_deletion_of_newer_expired_ones() {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open_at(&fs, &clock);
        store
            .put(b"ns", b"k", b"old-value", PutOptions::default())
            .expect("put");
        // Live neighbours keep this segment from being worth rewriting.
        for i in 0..20u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 100], PutOptions::default())
                .expect("put");
        }
    }
    {
        let store = open_at(&fs, &clock);
        store
            .put(
                b"ns",
                b"k",
                b"new-value",
                PutOptions::expiring_at(2_000_000),
            )
            .expect("put");
    }
    clock.set_ms(3_000_000);
    let store = open_at(&fs, &clock);
    let report = store.compact_dead_over(0.9).expect("compact");
    assert_eq!(report.segments_deleted_unread, 0, "{report:?}");
    assert_eq!(store.get(b"ns", b"k").expect("read"), None);
    // The puts that never expire are all still there.
    assert_eq!(store.keys(b"ns").count(), 20);
    drop(store);
    let store = open_at(&fs, &clock);
    assert_eq!(
        store.get(b"ns", b"k").expect("read"),
        None,
        "the expired value hid the older one, and still does"
    );
}

/// A namespace dropped before a reopen still refuses imports at or below the drop's
/// version: replay would hide them, so acknowledging one would lose it at the next open.
#[test]
fn a_drop_before_a_reopen_still_refuses_older_imports() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"gone", b"k", b"v", PutOptions::default())
            .expect("put");
        assert!(store.drop_namespace(b"gone").expect("drop"));
    }
    let store = open(&fs);
    let mut batch = WriteBatch::new();
    batch.import(b"gone", b"k", b"old", PutOptions::default(), 2);
    let outcome = store.write_batch(batch).expect("batch");
    assert!(
        matches!(outcome[..], [BatchOutcome::Kept { .. }]),
        "{outcome:?}"
    );
    drop(store);
    let store = open(&fs);
    assert_eq!(store.get(b"gone", b"k").expect("read"), None);
}
