//! Damage at and before the end of a sealed segment: zeroed tails, segments cut short or
//! zeroed whole, damage in the middle and at the end of a hinted segment. Each is reported,
//! never taken for the pre-allocated tail of a segment being appended to, and the keys the
//! hint names in the lost range are lost, never served older values.

mod damage_support;

use std::path::Path;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{FileSystem, OpenError, PutOptions, ReadError, RecoveryPolicy};

use damage_support::*;

/// Zeros over the last frames of a sealed segment, through to its end, look like the
/// pre-allocated tail of a segment being appended to; without the seal log its last records
/// vanished unreported (and the values they had overwritten came back: found by an outside
/// test). The seal log names the length the segment was sealed with: the damage is
/// reported, the file kept whole, a strict open refuses.
#[test]
fn a_zeroed_tail_of_a_sealed_segment_is_reported_not_cut() {
    let fs = SimFs::new();
    let model = build(&fs);
    for with_hints in [false, true] {
        let base = image_with_hints(&fs, with_hints);
        for name in files(&base, ".seg") {
            let image = base.crash_image_now(Torn::No);
            let path = Path::new(DIR).join(&name);
            let mut bytes = image.read(&path).expect("read");
            let len = bytes.len();
            // From the start of its last frame to the end.
            let last = last_frame(&bytes);
            bytes[last..].fill(0);
            overwrite(&image, &path, &bytes);
            let what = format!("{name} zeroed from {last} (hints kept: {with_hints})");
            match open(&image, RecoveryPolicy::Strict) {
                Err(OpenError::Damaged(_)) => {}
                other => panic!("{what}: a strict open: {other:?}"),
            }
            let store = open(&image, RecoveryPolicy::Salvage).expect("open");
            let report = store.recovery_report();
            let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
            assert!(
                report
                    .damaged
                    .iter()
                    .any(|d| d.segment == id && d.offset == last as u64),
                "{what}: {report:?}"
            );
            assert!(report.truncated.is_empty(), "{what}: {report:?}");
            drop(store);
            assert_eq!(
                image.read(&path).expect("read").len(),
                len,
                "{what}: the damaged file is kept whole"
            );
            if with_hints {
                // The hint indexed the zeroed records: they are marked lost and taken out
                // of the index, so that their keys read as lost (counted), never older.
                let lost = check_with(&image, &model, &what, 3);
                let store = open(&image, RecoveryPolicy::Salvage).expect("open");
                let report = store.recovery_report();
                let range = report
                    .damaged
                    .iter()
                    .find(|d| d.segment == id && d.offset == last as u64)
                    .expect("the range");
                assert!(
                    range.records.is_some_and(|n| n >= 1),
                    "{what}: the hint's records there are counted: {report:?}"
                );
                assert_eq!(range.len, (len - last) as u64, "{what}: {report:?}");
                assert!(report.keys_lost >= 1, "{what}: {report:?}");
                assert_eq!(lost as u64, report.keys_lost, "{what}: {report:?}");
                for (ns, key) in model.keys() {
                    if let Err(ReadError::Corrupt { .. }) = store.get(ns, key) {
                        panic!(
                            "{what}: {} reads as corrupt: the hint's record in the damaged range is still indexed",
                            String::from_utf8_lossy(key)
                        );
                    }
                }
                // Compaction moves the segment aside with its hint: the next open still
                // knows those keys lost (the evidence's bytes end in zeros, which say
                // nothing), and none reads an older value.
                store.compact().expect("compact");
                drop(store);
                assert!(
                    files(&image, ".damaged-hint").contains(&name.replace(".seg", ".damaged-hint")),
                    "{what}: {:?}",
                    files(&image, "")
                );
                // Every hint left is a live segment's: the compacted ones' went with them.
                let segs = files(&image, ".seg");
                for hint in files(&image, ".hint") {
                    assert!(
                        segs.contains(&hint.replace(".hint", ".seg")),
                        "{what}: {hint} outlived its segment: {:?}",
                        files(&image, "")
                    );
                }
                let after = check_with(&image, &model, &format!("{what}, compacted"), 3);
                assert_eq!(after, lost, "{what}: the same keys lost after compaction");
                let store = open(&image, RecoveryPolicy::Salvage).expect("open");
                let report = store.recovery_report();
                assert_eq!(
                    records_known(&report, id, 0),
                    lost as u64,
                    "{what}, compacted: {report:?}"
                );
            }
        }
    }
}

/// Damage in the middle of a hinted segment as well as zeros over its end: the range
/// reported runs from the first damage to the end, but only the records the scan did not
/// find intact in it are marked lost; the intact ones between keep their keys (found by
/// review: every record after the first damage was taken out of the index).
#[test]
fn a_hinted_segment_damaged_in_the_middle_and_at_the_end_keeps_its_intact_records() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = image_with_hints(&fs, true);
    let mut tried = 0;
    for name in files(&base, ".seg") {
        let image = base.crash_image_now(Torn::No);
        let path = Path::new(DIR).join(&name);
        let mut bytes = image.read(&path).expect("read");
        let frames = frame_starts(&bytes);
        if frames.len() < 6 {
            continue;
        }
        tried += 1;
        // A byte in the second frame's body, and everything from the last frame on.
        bytes[frames[1] + 40] ^= 0x55;
        let last = frames[frames.len() - 1];
        bytes[last..].fill(0);
        overwrite(&image, &path, &bytes);
        let what = format!("{name}: frame 2 and the tail from {last} damaged, hint kept");
        // The second frame's record and the last frame's (at most the batch's three).
        check_with(&image, &model, &what, 4);
    }
    assert!(tried > 0, "no segment had frames enough");
}

/// A tombstone in the zeroed tail of a hinted segment: the hint holds all of it, so the
/// key stays deleted (neither lost nor its older value back).
#[test]
fn a_tombstone_in_a_damaged_tail_stays_a_tombstone_from_the_hint() {
    let fs = SimFs::new();
    let store = open(&fs, RecoveryPolicy::Salvage).expect("open");
    store
        .put(b"ns", b"gone", b"the old value", PutOptions::default())
        .expect("put");
    for i in 0..5 {
        store
            .put(
                b"ns",
                format!("x{i}").as_bytes(),
                b"kept",
                PutOptions::default(),
            )
            .expect("put");
    }
    store.delete(b"ns", b"gone").expect("delete");
    drop(store);
    let image = fs.crash_image_now(Torn::No);
    let name = files(&image, ".seg")
        .into_iter()
        .find(|n| files(&image, ".hint").contains(&n.replace(".seg", ".hint")))
        .expect("a hinted segment");
    let path = Path::new(DIR).join(&name);
    let mut bytes = image.read(&path).expect("read");
    let last = last_frame(&bytes);
    bytes[last..].fill(0);
    overwrite(&image, &path, &bytes);
    let store = open(&image, RecoveryPolicy::Salvage).expect("open");
    assert!(
        !store.recovery_report().damaged.is_empty(),
        "{:?}",
        store.recovery_report()
    );
    assert_eq!(store.get(b"ns", b"gone").expect("deleted, not lost"), None);
    for i in 0..5 {
        let v = store.get(b"ns", format!("x{i}").as_bytes()).expect("read");
        assert_eq!(v.map(|v| v.value.to_vec()), Some(b"kept".to_vec()));
    }
}

/// A sealed segment with its header and its last frames zeroed, its hint kept: the hint
/// cannot index it (its header is gone; the segment is scanned with a header rebuilt from
/// its frames), but the records it names in the zeroed tail are marked lost, so that their
/// keys read as lost and never as the older values they had overwritten (left in the ninth
/// session's note: they came back).
#[test]
fn a_segment_zeroed_at_both_ends_loses_the_keys_its_hint_names_in_the_tail() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = image_with_hints(&fs, true);
    for name in files(&base, ".seg") {
        let image = base.crash_image_now(Torn::No);
        let path = Path::new(DIR).join(&name);
        let mut bytes = image.read(&path).expect("read");
        let header_len = first_frame(&bytes);
        let last = last_frame(&bytes);
        if last == header_len {
            continue; // one frame: nothing would be left to rebuild the header from
        }
        bytes[..header_len].fill(0);
        bytes[last..].fill(0);
        overwrite(&image, &path, &bytes);
        let what = format!("{name}: header and the tail from {last} zeroed, hint kept");
        // The last frame holds at most the batch's three records.
        let lost = check_with(&image, &model, &what, 3);
        let store = open(&image, RecoveryPolicy::Salvage).expect("open");
        let report = store.recovery_report();
        assert_eq!(lost as u64, report.keys_lost, "{what}: {report:?}");
        // The range counts the hint's records in it, no more (those of its intact frames
        // would be superseded by themselves, and the count would lie).
        let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
        assert_eq!(
            records_known(&report, id, 1),
            lost as u64,
            "{what}: {report:?}"
        );
    }
}

/// A sealed segment cut short inside its last frame, its hint kept: the hint (which names a
/// longer segment) is not used to index it, but the records it names past the file's end are
/// marked lost, so that their keys read as errors and never as the older values they had
/// overwritten (found by an outside test: the stale hint was dropped, and they did).
#[test]
fn a_sealed_segment_cut_short_loses_only_the_keys_its_hint_names_past_the_end() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = fs.crash_image_now(Torn::No);
    for name in files(&base, ".seg") {
        let image = base.crash_image_now(Torn::No);
        let path = Path::new(DIR).join(&name);
        let bytes = image.read(&path).expect("read");
        let last = last_frame(&bytes);
        let f = image.open(&path).expect("open file");
        f.set_len(last as u64 + 10).expect("cut");
        f.sync().expect("sync");
        let what = format!("{name} cut at {}", last + 10);
        // The last frame holds at most the batch's three records.
        let lost = check_with(&image, &model, &what, 3);
        assert!(lost >= 1, "{what}: the cut frame's keys read as lost");
        let store = open(&image, RecoveryPolicy::Salvage).expect("open");
        let report = store.recovery_report();
        let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
        assert!(
            report.damaged.iter().any(|d| d.segment == id
                && d.offset == last as u64 + 10
                && d.len == (bytes.len() - last - 10) as u64),
            "{what}: the range the hint names past the cut: {report:?}"
        );
        assert!(
            report.keys_lost <= 3,
            "{what}: only the cut frame's keys are marked lost: {report:?}"
        );
    }
}

/// A sealed segment zeroed whole, or cut to nothing, is not a blank segment to remove (the
/// seal log says it held data): it is kept and reported, and its hint names the keys it
/// lost, which read as errors, never as the older values they had overwritten (found by an
/// outside test: open removed the file, even under the strict policy, and 76 keys read
/// older values). The next open finds it the same way.
#[test]
fn a_sealed_segment_zeroed_whole_or_cut_to_nothing_is_kept_and_its_keys_lost() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = fs.crash_image_now(Torn::No);
    for name in files(&base, ".seg") {
        for zeroed in [true, false] {
            let image = base.crash_image_now(Torn::No);
            let path = Path::new(DIR).join(&name);
            let len = image.read(&path).expect("read").len();
            let f = image.open(&path).expect("open file");
            if zeroed {
                f.write_at(&vec![0; len], 0).expect("zero");
            } else {
                f.set_len(0).expect("cut");
            }
            f.sync().expect("sync");
            let what = format!("{name} {}", if zeroed { "zeroed" } else { "cut to 0" });
            match open(&image, RecoveryPolicy::Strict) {
                Err(OpenError::Damaged(_)) => {}
                other => panic!("{what}: a strict open: {other:?}"),
            }
            for _ in 0..2 {
                check_with(&image, &model, &what, 100);
                assert!(
                    files(&image, ".seg").contains(&name),
                    "{what}: the file is kept"
                );
            }
        }
    }
}
