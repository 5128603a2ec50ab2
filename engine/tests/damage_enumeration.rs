//! Damage enumeration on the simulated file system: a store of several small segments is
//! closed, then one byte of one file is flipped (or zeroed) at many offsets in turn, with and
//! without the hint files. Each image must open, and every key must read its newest
//! acknowledged value or fail with an error (lost to the damage; only the key of the one
//! damaged record), never an older value and never absent when
//! it exists. The damaged segment file must still be there, named in the recovery report
//! (or, when a valid hint let open skip the scan, in the error of the read that found it).
//! The strict policy refuses such a directory and names the damage.
//!
//! `TTLCASK_DAMAGE_STRIDE` (default 1 for small files) sets how many bytes apart the damaged
//! offsets are; the counts are printed.

mod damage_support;

use std::path::Path;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{FileSystem, OpenError, RecoveryPolicy};

use damage_support::*;

#[derive(Debug, Default)]
struct Tally {
    images: usize,
    lost_total: usize,
    lost_max: usize,
    images_with_loss: usize,
}

fn enumerate(with_hints: bool) -> Tally {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = image_with_hints(&fs, with_hints);
    let stride: usize = std::env::var("TTLCASK_DAMAGE_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut tally = Tally::default();
    let mut targets = files(&base, ".seg");
    assert!(targets.len() >= 3, "the workload spans several segments");
    targets.extend(files(&base, ".hint"));
    for name in &targets {
        let len = base.read(&Path::new(DIR).join(name)).expect("read").len();
        for at in (0..len).step_by(stride) {
            for zero in [false, true] {
                let image = base.crash_image_now(Torn::No);
                if !damage(&image, name, at, zero) {
                    continue;
                }
                let what = format!(
                    "{} byte {at} of {name} (hints {})",
                    if zero { "zeroed" } else { "flipped" },
                    if with_hints { "kept" } else { "deleted" }
                );
                let lost = check(&image, &model, &what);
                tally.images += 1;
                tally.lost_total += lost;
                tally.lost_max = tally.lost_max.max(lost);
                tally.images_with_loss += usize::from(lost > 0);
            }
        }
    }
    eprintln!(
        "damage (hints {}): {} images, {} lost a key; keys lost per image: max {}, mean {:.3}",
        if with_hints { "kept" } else { "deleted" },
        tally.images,
        tally.images_with_loss,
        tally.lost_max,
        tally.lost_total as f64 / tally.images.max(1) as f64
    );
    tally
}

#[test]
fn one_damaged_byte_costs_at_most_its_frame_without_hints() {
    let t = enumerate(false);
    assert!(t.images > 1000, "enumerated {} images", t.images);
    assert!(
        t.images_with_loss > 0,
        "damage to records must cost something"
    );
}

#[test]
fn one_damaged_byte_costs_at_most_its_frame_with_hints() {
    let t = enumerate(true);
    assert!(t.images > 1000, "enumerated {} images", t.images);
}

#[test]
fn strict_refuses_a_damaged_dir_and_names_the_damage() {
    let fs = SimFs::new();
    build(&fs);
    for h in files(&fs, ".hint") {
        fs.remove(&Path::new(DIR).join(h)).expect("remove hint");
    }
    let first = files(&fs, ".seg")[0].clone();
    assert!(damage(&fs, &first, 300, false));
    // Leftovers a salvaging open removes (a spare, a hint never renamed into place) stay
    // too: the refusal came first (a strict open used to remove them before refusing).
    for leftover in ["spare-segment.tmp", "0000000001.hint.tmp"] {
        let f = fs.create(&Path::new(DIR).join(leftover)).expect("create");
        f.write_at(b"left over", 0).expect("write");
    }
    let before: Vec<_> = files(&fs, "");
    match open(&fs, RecoveryPolicy::Strict) {
        Err(OpenError::Damaged(why)) => assert!(why.contains("segment 1"), "{why}"),
        other => panic!("strict open of a damaged dir: {other:?}"),
    }
    assert_eq!(files(&fs, ""), before, "a refused open changes nothing");
    assert!(open(&fs, RecoveryPolicy::Salvage).is_ok());
    assert_eq!(
        files(&fs, ".tmp"),
        Vec::<String>::new(),
        "a salvaging open removes them"
    );
}

/// A strict open reads hinted segments whole: one flipped byte in the middle of a segment
/// whose hint is sound passed a strict open unseen (the index is built from the hint), while
/// `verify` called the directory damaged (found from outside). An undamaged directory still
/// opens strictly, and a salvaging open of a damaged one keeps every other key.
#[test]
fn a_strict_open_finds_damage_inside_a_hinted_segment() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = fs.crash_image_now(Torn::No);
    let clean = base.crash_image_now(Torn::No);
    assert!(
        open(&clean, RecoveryPolicy::Strict).is_ok(),
        "an undamaged directory opens strictly"
    );
    let hints = files(&base, ".hint");
    assert!(hints.len() >= 3, "{hints:?}");
    for hint in hints {
        let name = hint.replace(".hint", ".seg");
        let image = base.crash_image_now(Torn::No);
        let bytes = image.read(&Path::new(DIR).join(&name)).expect("read");
        // Inside the first frame's entries, past its header.
        let at = first_frame(&bytes) + 40;
        assert!(damage(&image, &name, at, false));
        let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
        match open(&image, RecoveryPolicy::Strict) {
            Err(OpenError::Damaged(why)) => {
                assert!(why.contains(&format!("segment {id} ")), "{name}: {why}")
            }
            other => panic!("{name}: a strict open of a damaged hinted segment: {other:?}"),
        }
        check_with(
            &image,
            &model,
            &format!("byte {at} of {name} flipped, hint kept"),
            1,
        );
    }
}
