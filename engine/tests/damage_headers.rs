//! Damage at the start of a segment: a zeroed or misdirected header or first block, and a
//! header naming another segment. The records that can be read are kept, the keys the hint
//! names where nothing reads are lost, and no key ever reads an older value.

mod damage_support;

use std::path::Path;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{FileSystem, OpenError, RecoveryPolicy};

use damage_support::*;

/// A segment whose header (both copies) is zeroed is neither a blank segment to remove nor
/// a file to ignore: its records may be the newest of their keys (removing it brought
/// overwritten values back). Open reads its frames with a header rebuilt from them (the
/// salt solved from their CRCs) and reports the damage; a strict open refuses.
#[test]
fn a_zeroed_segment_header_is_reported_and_its_records_kept() {
    let fs = SimFs::new();
    let model = build(&fs);
    for with_hints in [true, false] {
        let base = image_with_hints(&fs, with_hints);
        for name in files(&base, ".seg") {
            let image = base.crash_image_now(Torn::No);
            let path = Path::new(DIR).join(&name);
            let mut bytes = image.read(&path).expect("read");
            let header_len = first_frame(&bytes);
            bytes[..header_len].fill(0);
            overwrite(&image, &path, &bytes);
            let what = format!("header of {name} zeroed (hints kept: {with_hints})");
            match open(&image, RecoveryPolicy::Strict) {
                Err(OpenError::Damaged(why)) => assert!(why.contains("header"), "{what}: {why}"),
                other => panic!("{what}: a strict open: {other:?}"),
            }
            let lost = check(&image, &model, &what);
            assert_eq!(lost, 0, "{what}: every record of the segment is read");
            let store = open(&image, RecoveryPolicy::Salvage).expect("open");
            let report = store.recovery_report();
            let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
            assert!(
                report
                    .damaged
                    .iter()
                    .any(|d| d.segment == id && d.offset == 0),
                "{what}: {report:?}"
            );
            // Marked damaged: compaction copies its records out and moves it aside.
            store.compact().expect("compact");
            let evidence = name.replace(".seg", ".damaged");
            assert!(
                files(&image, ".damaged").contains(&evidence),
                "{what}: {:?}",
                files(&image, "")
            );
            drop(store);
            check(&image, &model, &format!("{what}, compacted"));
        }
    }
    // The header and the first frame's magic: the header is rebuilt from a later frame, and
    // the first frame (its trailer checks) costs only its own keys, known.
    let image = fs.crash_image_now(Torn::No);
    let name = files(&image, ".seg")[0].clone();
    let path = Path::new(DIR).join(&name);
    let mut bytes = image.read(&path).expect("read");
    let header_len = first_frame(&bytes);
    bytes[..header_len + 4].fill(0);
    overwrite(&image, &path, &bytes);
    check_with(&image, &model, "header and first magic zeroed", 3);
    let store = open(&image, RecoveryPolicy::Salvage).expect("open");
    assert!(store.recovery_report().segments_scanned >= 1);
    assert!(
        store.recovery_report().records >= 10,
        "{:?}",
        store.recovery_report()
    );
}

/// A sealed, hinted segment whose header and first frame read back as zeros (a lost first
/// block): the header is rebuilt from the frames that follow, and the records the intact
/// hint names in the zeroed frame are lost, never read as the older values they had
/// overwritten (found from outside, twelfth session: 13 keys did, until a compaction).
#[test]
fn a_zeroed_first_block_loses_the_keys_its_hint_names_there() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = image_with_hints(&fs, true);
    let mut checked = 0;
    for name in files(&base, ".seg") {
        let image = base.crash_image_now(Torn::No);
        let path = Path::new(DIR).join(&name);
        let mut bytes = image.read(&path).expect("read");
        let starts = frame_starts(&bytes);
        let Some(&second) = starts.get(1) else {
            continue; // one frame: nothing would be left to rebuild the header from
        };
        bytes[..second].fill(0);
        overwrite(&image, &path, &bytes);
        let what = format!("{name}: header and first frame zeroed, hint kept");
        // The first frame holds at most the batch's three records.
        check_with(&image, &model, &what, 3);
        checked += 1;
    }
    assert!(checked >= 2, "{checked} segments");
}

/// A sealed segment whose header is another segment's (a misdirected write): damaged, read
/// with a header rebuilt from its own frames, every intact record kept (found from
/// outside, twelfth session: the file was ignored whole, its keys read older values or
/// vanished, and the report said no key was lost).
#[test]
fn a_header_naming_another_segment_is_rebuilt_and_the_records_kept() {
    let fs = SimFs::new();
    let model = build(&fs);
    for with_hints in [true, false] {
        let base = image_with_hints(&fs, with_hints);
        let names = files(&base, ".seg");
        for pair in names.windows(2) {
            let image = base.crash_image_now(Torn::No);
            let donor = image.read(&Path::new(DIR).join(&pair[0])).expect("read");
            let path = Path::new(DIR).join(&pair[1]);
            let mut bytes = image.read(&path).expect("read");
            let header = first_frame(&bytes);
            bytes[..header].copy_from_slice(&donor[..header]);
            overwrite(&image, &path, &bytes);
            let what = format!("{}: header of {} (hints: {with_hints})", pair[1], pair[0]);
            assert_eq!(check_with(&image, &model, &what, 0), 0, "{what}");
            let store = open(&image, RecoveryPolicy::Salvage).expect("open");
            let id: u32 = pair[1].trim_end_matches(".seg").parse().expect("id");
            let report = store.recovery_report();
            assert!(
                report
                    .damaged
                    .iter()
                    .any(|d| d.segment == id && d.offset == 0),
                "{what}: {report:?}"
            );
            drop(store);
            assert!(
                open(&image, RecoveryPolicy::Strict).is_err(),
                "{what}: strict opened it"
            );
        }
    }
}

/// A sealed segment whose first block is another segment's (header and frames: a
/// misdirected block write, within one opening of the store, so the frames check): the
/// records the hint names where the other segment's frames now stand are lost, never read
/// as the older values those frames hold (found from outside, twelfth session: one key
/// read an older value, three vanished, `keys_lost` 0).
#[test]
fn a_misdirected_first_block_loses_the_keys_its_hint_names_there() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = image_with_hints(&fs, true);
    let names = files(&base, ".seg");
    let mut checked = 0;
    for pair in names.windows(2) {
        let image = base.crash_image_now(Torn::No);
        let donor = image.read(&Path::new(DIR).join(&pair[0])).expect("read");
        let path = Path::new(DIR).join(&pair[1]);
        let mut bytes = image.read(&path).expect("read");
        // The donor's header and first frames, over as many bytes of this one (a block
        // holds several).
        let Some(&end) = frame_starts(&donor).get(3) else {
            continue;
        };
        if end >= bytes.len() {
            continue;
        }
        bytes[..end].copy_from_slice(&donor[..end]);
        overwrite(&image, &path, &bytes);
        let what = format!("{}: first {end} bytes of {}", pair[1], pair[0]);
        // The overwritten range held a few records of this segment.
        check_with(&image, &model, &what, 12);
        assert!(
            open(&image, RecoveryPolicy::Strict).is_err(),
            "{what}: strict opened it"
        );
        checked += 1;
    }
    assert!(checked >= 2, "{checked} segments");
}

/// The segment being appended to when the process died (its unused tail still zeros), its
/// header then zeroed: the salvage open reads it with a header rebuilt from its frames and
/// keeps every record, as for a sealed one. Found from outside (fourteenth session): the
/// open cut the segment and wrote its hint, then failed with `BadHeader` (the server did
/// not start; a second start did).
#[test]
fn a_zeroed_header_of_the_segment_being_written_is_rebuilt() {
    let fs = SimFs::new();
    let store = ttlcask_engine::Store::builder()
        .file_system(std::sync::Arc::new(fs.clone()))
        .segment_size(64 << 10)
        .open(DIR)
        .expect("open");
    for i in 0..30 {
        store
            .put(
                b"ns",
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                ttlcask_engine::PutOptions::default(),
            )
            .expect("put");
    }
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    let name = files(&image, ".seg").last().cloned().expect("a segment");
    let path = Path::new(DIR).join(&name);
    let mut bytes = image.read(&path).expect("read");
    let header_len = first_frame(&bytes);
    bytes[..header_len].fill(0);
    overwrite(&image, &path, &bytes);
    for round in ["first open", "second open"] {
        let store =
            open(&image, RecoveryPolicy::Salvage).unwrap_or_else(|e| panic!("{round}: {e}"));
        for i in 0..30 {
            let got = store
                .get(b"ns", format!("k{i}").as_bytes())
                .expect("read")
                .map(|item| item.value.to_vec());
            assert_eq!(got, Some(format!("v{i}").into_bytes()), "{round}: k{i}");
        }
    }
}

/// One byte of a sealed segment's header zeroed or flipped: the header reads from its other
/// copy and every record is kept, but the damage is reported, by `verify` and by the open
/// (a strict open refuses), and never passes for a clean store. Found from outside
/// (fourteenth session): `verify` said clean and the recovery report was clean.
#[test]
fn one_damaged_copy_of_a_segment_header_is_reported_and_nothing_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let open_dir = |policy: RecoveryPolicy| {
        ttlcask_engine::Store::builder()
            .segment_size(4096)
            .recovery_policy(policy)
            .open(&dir)
    };
    {
        let store = open_dir(RecoveryPolicy::Salvage).expect("open");
        for i in 0..60 {
            store
                .put(
                    b"ns",
                    format!("k{i}").as_bytes(),
                    &[b'v'; 100],
                    ttlcask_engine::PutOptions::default(),
                )
                .expect("put");
        }
    }
    let path = dir.join("0000000002.seg");
    let original = std::fs::read(&path).expect("segment");
    for (at, byte) in [(0, 0x00), (8, 0x00), (40, 0xFF), (71, 0x5A)] {
        let mut bytes = original.clone();
        if bytes[at] == byte {
            bytes[at] ^= 0x01;
        } else {
            bytes[at] = byte;
        }
        std::fs::write(&path, &bytes).expect("damage");
        let what = format!("header byte {at} changed");
        let verified = ttlcask_engine::verify(&dir).expect("verify");
        assert!(!verified.damage.is_empty(), "{what}: verify says clean");
        match open_dir(RecoveryPolicy::Strict) {
            Err(OpenError::Damaged(_)) => {}
            other => panic!("{what}: a strict open: {other:?}"),
        }
        let store = open_dir(RecoveryPolicy::Salvage).expect("open");
        let report = store.recovery_report();
        assert!(
            report
                .damaged
                .iter()
                .any(|d| d.segment == 2 && d.offset < 72),
            "{what}: {report:?}"
        );
        for i in 0..60 {
            assert!(
                store
                    .get(b"ns", format!("k{i}").as_bytes())
                    .expect("read")
                    .is_some(),
                "{what}: k{i}"
            );
        }
        drop(store);
        std::fs::write(&path, &original).expect("restore");
    }
}
