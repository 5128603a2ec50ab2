use super::*;

#[test]
fn the_largest_frame_ends_at_the_last_32_bit_offset() {
    let largest = u32::MAX as usize - SEGMENT_HEADER_LEN;
    assert!(check_frame_len(largest).is_ok());
    assert!(check_frame_len(1).is_ok());
    match check_frame_len(largest + 1) {
        Err(WriteError::TooLarge { what, size, limit }) => {
            assert_eq!((what, size, limit), ("write", largest + 1, largest));
        }
        other => panic!("{other:?}"),
    }
}

/// The writer encodes a frame for the segment it goes into: the entries of a batch name
/// their namespace three times, then by id, and leave out their horizon (the segment's
/// id). Read back from the file by the scan that recovery uses.
#[test]
fn a_batch_is_written_with_interned_namespaces_and_implied_horizons() {
    use crate::format::NsKind;
    use crate::fs::FileSystem;
    let fs = crate::sim::SimFs::new();
    let dir = std::path::Path::new("/batch");
    let store = crate::Store::builder()
        .file_system(std::sync::Arc::new(fs.clone()))
        .compaction_interval(None)
        .open(dir)
        .expect("open");
    let mut batch = crate::WriteBatch::new();
    for i in 0..6u8 {
        batch.put(b"ns", &[i], b"value", PutOptions::default());
    }
    store.write_batch(batch).expect("batch");
    drop(store);
    let mut shapes = Vec::new();
    for name in fs.list(dir).expect("list") {
        if !name.ends_with(".seg") {
            continue;
        }
        let bytes = fs.read(&dir.join(&name)).expect("read");
        let header = format::decode_segment_header(&bytes).expect("header");
        let scanned = crate::scan::scan(&bytes, &header, false);
        assert!(scanned.is_clean());
        for (_, e) in scanned.records.iter().filter(|(_, e)| e.meta.op == Op::Put) {
            assert_eq!((e.namespace, e.meta.horizon), (&b"ns"[..], header.id));
            shapes.push((e.ns_kind(), e.implied_horizon));
        }
    }
    // The namespace's create entry comes first in the frame: the puts are its 2nd to
    // 7th entries.
    assert_eq!(
        shapes,
        [
            (NsKind::Define, true),
            (NsKind::Define, true),
            (NsKind::ById, true),
            (NsKind::ById, true),
            (NsKind::ById, true),
            (NsKind::ById, true),
        ]
    );
}

/// An increment reads the record the index names only if it is that key's indexed
/// version: a hint that points the newest version at an older record of the same key
/// (rewritten with a valid CRC) gets an error, never the older value plus one.
#[test]
fn an_increment_never_adds_to_a_record_of_another_version() {
    let fs = crate::sim::SimFs::new();
    let dir = std::path::Path::new("/writer");
    let open = || {
        crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .segment_size(4096)
            .durability(Durability::Always)
            .compaction_interval(None)
            .open(dir)
            .expect("open")
    };
    {
        let store = open();
        store
            .put(b"ns", b"n", b"1", PutOptions::default())
            .expect("put");
        store
            .put(b"ns", b"n", b"5", PutOptions::default())
            .expect("put");
        // Last in the hint, intact: the open looks at a hint's first and last records, and
        // scans the segment where either is another record than its hint names.
        store
            .put(b"ns", b"z", b"0", PutOptions::default())
            .expect("put");
    }
    crate::hint::rewrite_the_hint(&fs, dir, |entries, _| {
        let puts: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].key == b"n")
            .collect();
        assert_eq!(puts.len(), 2, "both puts of n are in the hint");
        // The newer put's offset becomes the older one's.
        entries[puts[1]].offset = entries[puts[0]].offset;
    });

    let store = open();
    assert_eq!(store.recovery_report().segments_from_hints, 1);
    assert!(
        store.get(b"ns", b"n").is_err(),
        "the record is not version 2's"
    );
    assert!(
        store
            .increment(b"ns", b"n", 1, PutOptions::default())
            .is_err(),
        "an increment must not add to the older value"
    );
}

/// Segment id → (file length, data length) of every sealed segment.
fn sealed_lengths(store: &crate::Store, fs: &crate::sim::SimFs) -> Vec<(u32, u64, u64)> {
    use crate::fs::FileSystem;
    let st = store.inner().state.read();
    st.segments
        .iter()
        .filter(|(_, s)| s.sealed)
        .map(|(&id, s)| {
            let path = s.segment.path.clone();
            let len = fs.read(&path).expect("read").len() as u64;
            (id, len, s.data_len)
        })
        .collect()
}

/// A rollover leaves cutting the sealed segment's tail to the background thread, which
/// does it once nudged; a reopen then finds every segment cut, with its hint.
#[test]
fn the_background_thread_cuts_what_a_rollover_sealed() {
    let fs = crate::sim::SimFs::new();
    let open = || {
        crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .durability(crate::Durability::Never)
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            // A background thread, and no compaction while the test runs.
            .compaction_interval(Some(std::time::Duration::from_secs(3600)))
            .open("/trim")
            .expect("open")
    };
    let store = open();
    assert!(store.inner().runs_background());
    for i in 0..60u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
            .expect("put");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sealed = loop {
        // The flag first: a cut clears it only once the file is cut, so lengths read
        // after it are never older than it.
        let pending = store
            .inner()
            .state
            .read()
            .segments
            .values()
            .any(|s| s.untrimmed);
        let sealed = sealed_lengths(&store, &fs);
        if !pending || std::time::Instant::now() > deadline {
            break sealed;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(sealed.len() >= 3, "{sealed:?}");
    for (id, file_len, data_len) in &sealed {
        assert_eq!(file_len, data_len, "segment {id} was not cut");
    }
    drop(store);
    let store = open();
    let report = store.recovery_report();
    assert_eq!(report.segments_scanned, 0, "{report:?}");
    assert!(report.truncated.is_empty(), "{report:?}");
    for i in 0..60u32 {
        let item = store
            .get(b"ns", &i.to_le_bytes())
            .expect("get")
            .expect("item");
        assert_eq!(&item.value[..], &[7; 300]);
    }
}

/// A segment sealed but not yet cut gets no hint (a hint names the file's length, so a
/// reopen would find it stale and scan the segment); once cut, it gets one.
#[test]
fn an_uncut_segment_waits_for_its_hint() {
    use crate::fs::FileSystem;
    let fs = crate::sim::SimFs::new();
    let store = crate::Store::builder()
        .file_system(std::sync::Arc::new(fs.clone()))
        .durability(crate::Durability::Never)
        .segment_size(crate::options::MIN_SEGMENT_SIZE)
        .compaction_interval(None)
        .open("/uncut")
        .expect("open");
    for i in 0..30u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
            .expect("put");
    }
    // Without a background thread (no timed compaction, no spares under `Never`) a
    // rollover cuts at once.
    assert!(!store.inner().runs_background());
    let sealed = sealed_lengths(&store, &fs);
    assert!(sealed.len() >= 2, "{sealed:?}");
    for (id, file_len, data_len) in &sealed {
        assert_eq!(file_len, data_len, "segment {id} was left uncut");
    }
    assert!(!store
        .inner()
        .state
        .read()
        .segments
        .values()
        .any(|s| s.untrimmed));
    // Mark one as a rollover with a background thread would have left it, its file
    // padded back to its old length.
    let (id, path, data_len) = {
        let mut st = store.inner().state.write();
        let (&id, slot) = st
            .segments
            .iter_mut()
            .find(|(_, s)| s.sealed)
            .expect("a sealed segment");
        slot.untrimmed = true;
        (id, slot.segment.path.clone(), slot.data_len)
    };
    fs.open(&path)
        .expect("open segment")
        .set_len(data_len + 512)
        .expect("pad");
    let hint = std::path::Path::new("/uncut").join(crate::segment::hint_file_name(id));
    store.inner().write_missing_hints().expect("hints");
    assert!(fs.read(&hint).is_err(), "an uncut segment got a hint");
    // A cut that fails leaves the segment uncut, for the next try, and poisons nothing.
    fs.fail_writes(Some(std::io::ErrorKind::Other));
    assert!(store.inner().trim_sealed().is_err());
    fs.fail_writes(None);
    assert!(store.inner().state.read().segments[&id].untrimmed);
    let stats = store.stats();
    assert_eq!((stats.uncut_segments, stats.failed_cuts), (1, 1));
    store
        .put(b"ns", b"after", b"ok", PutOptions::default())
        .expect("a failed cut poisons nothing");
    store.inner().trim_sealed().expect("trim");
    assert_eq!(fs.read(&path).expect("read").len() as u64, data_len);
    assert!(!store.inner().state.read().segments[&id].untrimmed);
    let stats = store.stats();
    assert_eq!((stats.uncut_segments, stats.failed_cuts), (0, 1));
    store.inner().write_missing_hints().expect("hints");
    assert!(fs.read(&hint).is_ok(), "a cut segment got no hint");
}
/// A durable store's segment sealed but left uncut (as a rollover leaves it for the
/// background thread) ends its data with the seal frame. In the image a crash before the
/// cut leaves, damage to its last data frame is salvaged and reported, as in a cut
/// segment, never cut away as a write torn in flight; undamaged, it reopens whole.
#[test]
fn an_uncut_sealed_segment_ends_its_data_with_a_seal_frame() {
    use crate::fs::FileSystem;
    let fs = crate::sim::SimFs::new();
    let dir = std::path::Path::new("/sealframe");
    let open = |fs: &crate::sim::SimFs| {
        crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .durability(Durability::Always)
            // No background thread, so that nothing cuts the segment under the test.
            .spare_segments(false)
            .compaction_interval(None)
            .open(dir)
            .expect("open")
    };
    let store = open(&fs);
    assert!(!store.inner().runs_background());
    for i in 0..5u32 {
        store
            .put(
                b"ns",
                &i.to_le_bytes(),
                &[i as u8; 100],
                PutOptions::default(),
            )
            .expect("put");
    }
    let (path, data_len, last_frame) = {
        let w = store.inner().writer.lock();
        let bytes = fs.read(&w.active.path).expect("read");
        let scanned = crate::scan::scan(&bytes, &w.active.header, true);
        let (last, _) = *scanned.records.last().expect("records");
        let data_len = w.write_pos;
        store
            .inner()
            .seal_segment(&w.active, data_len, true, Trim::Later)
            .expect("seal");
        // The record's entry starts a frame header's length into its frame.
        (w.active.path.clone(), data_len, last - FRAME_HEADER_LEN)
    };
    let image = fs.crash_image_now(crate::sim::Torn::No);
    drop(store);
    let bytes = image.read(&path).expect("read");
    let seal = format::seal_frame(&format::decode_segment_header(&bytes).expect("header"))
        .expect("format 2");
    let seal_end = data_len as usize + seal.len();
    assert_eq!(&bytes[data_len as usize..seal_end], &seal[..]);
    assert!(bytes.len() > seal_end, "the segment was cut");
    assert!(bytes[seal_end..].iter().all(|&b| b == 0));

    let reopened = |image: &crate::sim::SimFs| {
        let store = open(image);
        for i in 0..5u32 {
            let item = store
                .get(b"ns", &i.to_le_bytes())
                .expect("get")
                .expect("item");
            assert_eq!(&item.value[..], &[i as u8; 100]);
        }
        store.recovery_report()
    };
    let clean = image.crash_image_now(crate::sim::Torn::No);
    let report = reopened(&clean);
    assert!(report.damaged.is_empty(), "{report:?}");
    assert!(report.truncated.is_empty(), "{report:?}");
    // Cut where the data ends, before the seal frame.
    assert_eq!(clean.read(&path).expect("read").len() as u64, data_len);

    // One byte of the last frame's header: the frame is salvaged, and reported.
    let damaged = image.crash_image_now(crate::sim::Torn::No);
    let mut bytes = damaged.read(&path).expect("read");
    bytes[last_frame + 5] ^= 0x40;
    let f = damaged.open(&path).expect("open");
    f.write_at(&bytes, 0).expect("write");
    f.sync().expect("sync");
    let report = reopened(&damaged);
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].offset, last_frame as u64, "{report:?}");
    assert!(report.truncated.is_empty(), "{report:?}");

    // Its header and its trailer: nothing of the frame checks, and it is reported as
    // damage, kept byte for byte, not cut as a torn tail.
    let damaged = image.crash_image_now(crate::sim::Torn::No);
    let mut bytes = damaged.read(&path).expect("read");
    bytes[last_frame + 5] ^= 0x40;
    bytes[data_len as usize - 1] ^= 0x40;
    let f = damaged.open(&path).expect("open");
    f.write_at(&bytes, 0).expect("write");
    f.sync().expect("sync");
    let store = open(&damaged);
    let report = store.recovery_report();
    assert!(report.truncated.is_empty(), "{report:?}");
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].offset, last_frame as u64, "{report:?}");
    drop(store);
    let kept = damaged.read(&path).expect("read");
    assert_eq!(kept[..data_len as usize], bytes[..data_len as usize]);
}
/// The seal frame is written only where it fits before the segment's end; where it
/// does not, the segment is cut at once instead of left for later.
#[test]
fn a_seal_frame_needs_room_else_the_segment_is_cut_at_once() {
    use crate::fs::FileSystem;
    for (short, fits) in [(0u64, true), (1, false), (32, false)] {
        let fs = crate::sim::SimFs::new();
        let store = crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .durability(Durability::Always)
            .spare_segments(false)
            .compaction_interval(None)
            .open("/room")
            .expect("open");
        let w = store.inner().writer.lock();
        let seal = format::seal_frame(&w.active.header).expect("format 2");
        let capacity = w.active.capacity();
        // Data ending `short` bytes too late for the seal frame to fit.
        let data_len = capacity - seal.len() as u64 + short;
        store
            .inner()
            .seal_segment(&w.active, data_len, true, Trim::Later)
            .expect("seal");
        let bytes = fs.read(&w.active.path).expect("read");
        let untrimmed = store.inner().state.read().segments[&w.active.id].untrimmed;
        if fits {
            assert_eq!(bytes.len() as u64, capacity);
            assert_eq!(&bytes[data_len as usize..], &seal[..]);
            assert!(untrimmed);
        } else {
            assert_eq!(bytes.len() as u64, data_len.min(capacity), "cut at once");
            assert!(!untrimmed, "short {short}");
        }
        drop(w);
    }
}
/// A clean close leaves every segment of a `never` store on disk (its rollovers synced
/// nothing) and in the seal log: the power-cut image right after the close holds every
/// put, and the next open finds nothing to sync.
#[test]
fn a_clean_close_of_a_never_store_syncs_and_logs_every_segment() {
    let fs = crate::sim::SimFs::new();
    let open = |fs: &crate::sim::SimFs| {
        crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .durability(Durability::Never)
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            .compaction_interval(None)
            .open("/never")
            .expect("open")
    };
    let store = open(&fs);
    for i in 0..60u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
            .expect("put");
    }
    assert!(store.stats().segments >= 4);
    drop(store);
    let image = fs.crash_image_now(crate::sim::Torn::No);
    let logged =
        crate::seals::read(&image, std::path::Path::new("/never")).expect("read the seal log");
    let store = open(&image);
    for i in 0..60u32 {
        let item = store.get(b"ns", &i.to_le_bytes()).expect("get");
        assert!(
            item.is_some(),
            "put {i} lost to a power cut after a clean close"
        );
    }
    let sealed = store.inner().state.read().segments.len() - 1;
    assert_eq!(
        logged.lengths.len(),
        sealed,
        "every segment in the seal log"
    );
}
/// A data dir from before the seal log (no `seals.log`) gets one at its next open, naming
/// every segment with its length.
#[test]
fn an_open_logs_every_segment_of_a_dir_without_a_seal_log() {
    use crate::fs::FileSystem;
    let fs = crate::sim::SimFs::new();
    let dir = std::path::Path::new("/old");
    let open = || {
        crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            .compaction_interval(None)
            .open(dir)
            .expect("open")
    };
    let store = open();
    for i in 0..40u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
            .expect("put");
    }
    drop(store);
    fs.remove(&dir.join(crate::seals::SEALS_FILE))
        .expect("remove the seal log");
    let store = open();
    let lengths: std::collections::BTreeMap<u32, u64> = store
        .inner()
        .state
        .read()
        .segments
        .iter()
        .filter(|(_, s)| s.sealed)
        .map(|(&id, s)| (id, s.data_len))
        .collect();
    assert!(lengths.len() >= 3, "{lengths:?}");
    let logged = crate::seals::read(&fs, dir).expect("read the seal log");
    let logged: std::collections::BTreeMap<u32, u64> = logged.lengths.into_iter().collect();
    assert_eq!(logged, lengths);
}
