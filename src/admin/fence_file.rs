//! The fence file: its format, its two copies, and what a node does when one is damaged or
//! gone ([`load`]); `ttlcask verify` runs the same decision ([`check`]), so the two agree.
//!
//! A node that loses its fences accepts writes to slots it gave away (a stale route writes
//! there, and the write is lost to the slot's owner), so the file checks itself and is kept
//! twice: `<data-dir>/fences.json` and `<data-dir>/fences.copy.json`, the same bytes, each
//! replaced atomically, the first before the second. Format (one line of JSON):
//!
//! | field     | type        | meaning                                                        |
//! |-----------|-------------|----------------------------------------------------------------|
//! | `version` | integer     | format version, [`VERSION`]                                    |
//! | `slots`   | `[u16]`     | the fenced slots, ascending, each below 1024                   |
//! | `crc32`   | integer     | CRC-32 (IEEE) of `slots` written as compact JSON (`[3,4,717]`) |
//!
//! e.g. `{"version":1,"slots":[3,4,717],"crc32":1124305167}`. Version 0 is the plain list
//! (`[3,4,717]`) that releases before the checksum wrote: it is still read (no checksum to
//! check), and both copies are rewritten in version 1 when the node starts.
//!
//! What [`load`] does (found from outside, twelfth session: one flipped digit moved a fence
//! and a deleted file lifted every fence, in silence):
//! - both copies check: their union (they differ only after a crash or a failed write
//!   between the two, and keeping the fences of both is never less safe);
//! - one checks, the other is missing or damaged: that one, with a warning, and the other is
//!   rewritten;
//! - neither checks, or one is damaged and the other missing: the node refuses to start,
//!   naming the files and what to do. It does not start with every slot fenced instead: that
//!   node would look healthy while answering every write with the 503 of a moving slot, and
//!   the operator would have to name its fences anyway;
//! - both missing: no fences (a node that never had any). Deleting both copies lifts every
//!   fence: the one case this file cannot tell from a new node.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::slot::SLOTS;

/// The fence file inside the data directory.
pub const FENCE_FILE: &str = "fences.json";
/// Its second copy.
pub const FENCE_COPY: &str = "fences.copy.json";
/// The format version written.
pub const VERSION: u32 = 1;

/// Version 1, as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Versioned {
    version: u32,
    slots: Vec<u16>,
    crc32: u32,
}

fn crc_of(slots: &[u16]) -> Result<u32, String> {
    let json = serde_json::to_vec(slots).map_err(|e| e.to_string())?;
    Ok(crc32fast::hash(&json))
}

/// The bytes of a fence file holding `slots`.
///
/// # Errors
/// Only if JSON encoding fails.
pub fn encode(slots: &BTreeSet<u16>) -> Result<Vec<u8>, String> {
    let list: Vec<u16> = slots.iter().copied().collect();
    let file = Versioned {
        version: VERSION,
        crc32: crc_of(&list)?,
        slots: list,
    };
    let mut bytes = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A decoded fence file: its slots, and whether it was the old plain list (no checksum).
///
/// # Errors
/// What is wrong with the bytes (they do not parse, the checksum does not match, a slot is
/// out of range, a newer format).
pub fn decode(bytes: &[u8]) -> Result<(BTreeSet<u16>, bool), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_string())?;
    let trimmed = text.trim_start();
    let (slots, plain) = if trimmed.starts_with('[') {
        let list: Vec<u16> =
            serde_json::from_str(trimmed).map_err(|e| format!("it does not parse ({e})"))?;
        (list, true)
    } else {
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| format!("it does not parse ({e})"))?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if let Some(v) = version.filter(|&v| v > u64::from(VERSION)) {
            return Err(format!(
                "it is in format version {v}, written by a newer ttlcask (this one reads versions up to {VERSION})"
            ));
        }
        let file: Versioned = serde_json::from_value(value)
            .map_err(|e| format!("it does not parse as format version {VERSION} ({e})"))?;
        if file.version != VERSION {
            return Err(format!("unknown format version {}", file.version));
        }
        if crc_of(&file.slots)? != file.crc32 {
            return Err("its checksum does not match its slots".into());
        }
        (file.slots, false)
    };
    if let Some(bad) = slots.iter().find(|&&s| s >= SLOTS) {
        return Err(format!("slot {bad} is out of range (0..{})", SLOTS - 1));
    }
    Ok((slots.into_iter().collect(), plain))
}

/// One copy, as read.
enum Copy {
    Missing,
    Valid { slots: BTreeSet<u16>, plain: bool },
    Damaged(String),
}

fn read(path: &Path) -> Copy {
    // Only a regular file: a FIFO there would block the start (and `verify`) for good.
    match ttlcask_engine::read_regular(path) {
        Ok(bytes) => match decode(&bytes) {
            Ok((slots, plain)) => Copy::Valid { slots, plain },
            Err(why) => Copy::Damaged(why),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Copy::Missing,
        Err(e) => Copy::Damaged(format!("it cannot be read ({e})")),
    }
}

/// What [`load`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The fenced slots.
    pub slots: BTreeSet<u16>,
    /// What was wrong with a copy and is repaired by rewriting both (a warning each).
    pub problems: Vec<String>,
    /// Both copies must be written (a problem, or the old format).
    pub rewrite: bool,
}

/// The two copies' paths in `dir`.
pub fn paths(dir: &Path) -> [PathBuf; 2] {
    [dir.join(FENCE_FILE), dir.join(FENCE_COPY)]
}

/// Reads the fences kept in `dir` (see the module doc for each case). Changes nothing.
///
/// # Errors
/// Neither copy can be trusted: a message naming the files and what to do.
pub fn load(dir: &Path) -> Result<Loaded, String> {
    let [main, copy] = paths(dir);
    let (a, b) = (read(&main), read(&copy));
    let mut loaded = Loaded::default();
    match (a, b) {
        (Copy::Missing, Copy::Missing) => {}
        (
            Copy::Valid { slots, plain },
            Copy::Valid {
                slots: other,
                plain: other_plain,
            },
        ) => {
            if slots != other {
                let why = if plain || other_plain {
                    "a plain list has no checksum: a hand edit, or damage"
                } else {
                    "a write between them was cut short"
                };
                loaded.problems.push(format!(
                    "{} and {} name different slots ({why}); the node keeps the fences of both",
                    main.display(),
                    copy.display()
                ));
            }
            loaded.rewrite = plain || other_plain || slots != other;
            loaded.slots = slots.union(&other).copied().collect();
        }
        (Copy::Valid { slots, plain }, bad) => {
            // A plain list with no copy is a data dir of an older release: upgraded quietly.
            if !(plain && matches!(bad, Copy::Missing)) {
                loaded.problems.push(one_bad(&copy, &bad, &main));
            }
            loaded.rewrite = true;
            loaded.slots = slots;
        }
        (bad, Copy::Valid { slots, .. }) => {
            loaded.problems.push(one_bad(&main, &bad, &copy));
            loaded.rewrite = true;
            loaded.slots = slots;
        }
        (a, b) => {
            return Err(format!(
                "{}: {}, and {}: {}. This node cannot know which slots it gave away to other nodes, so it does not start (it would accept writes to slots another node owns now). To fix: write the slots this node does not own (those the cluster's write map gives to other nodes) into {} as a JSON list such as [0,1,2] ([] if it owns every slot), and start it again; both copies are then written again with a checksum",
                main.display(),
                why(&a),
                copy.display(),
                why(&b),
                main.display()
            ))
        }
    }
    Ok(loaded)
}

fn one_bad(bad_path: &Path, bad: &Copy, good: &Path) -> String {
    format!(
        "{}: {}; the fences are read from {}, and both are written again from them",
        bad_path.display(),
        why(bad),
        good.display()
    )
}

fn why(copy: &Copy) -> String {
    match copy {
        Copy::Missing => "it is missing".into(),
        Copy::Damaged(why) => why.clone(),
        Copy::Valid { .. } => "it checks".into(),
    }
}

/// Writes `slots` to both copies in `dir`, the first one first. Where the second cannot be
/// written, the first is written back to `in_force`, the fences the node keeps then: a
/// change reported as failed must not take effect at the next start, which reads the first
/// copy alone when the second is damaged (found from outside: a lift answered 500, "the
/// fences in force are as they were", and the restart lifted them).
///
/// # Errors
/// The I/O error (its kind kept: a full disk is 507), naming the file.
pub fn write(dir: &Path, slots: &BTreeSet<u16>, in_force: &BTreeSet<u16>) -> std::io::Result<()> {
    let bytes = encode(slots).map_err(std::io::Error::other)?;
    let [main, copy] = paths(dir);
    crate::atomic_file::write(&main, &bytes)?;
    if let Err(e) = crate::atomic_file::write(&copy, &bytes) {
        if slots != in_force {
            let restored = encode(in_force)
                .map_err(std::io::Error::other)
                .and_then(|old| crate::atomic_file::write(&main, &old));
            if let Err(r) = restored {
                tracing::error!(
                    "fences: {} holds a change that was refused, and cannot be written back ({r}); the next start reads it",
                    main.display()
                );
            }
        }
        return Err(e);
    }
    Ok(())
}

/// `ttlcask verify`'s check: what is wrong with the fence files of `dir` (empty: nothing),
/// by the same decision as [`load`], which the server makes at start.
pub fn check(dir: &Path) -> Vec<String> {
    match load(dir) {
        Ok(loaded) => loaded
            .problems
            .into_iter()
            .map(|p| format!("{p} when the server starts"))
            .collect(),
        Err(refused) => vec![format!("the server refuses to start: {refused}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(slots: &[u16]) -> BTreeSet<u16> {
        slots.iter().copied().collect()
    }

    #[test]
    fn round_trip_and_the_old_plain_list() -> Result<(), String> {
        let slots = set(&[3, 4, 717]);
        assert_eq!(decode(&encode(&slots)?)?, (slots.clone(), false));
        assert_eq!(decode(b"[3,4,717]")?, (slots, true));
        assert_eq!(decode(b"[]")?, (set(&[]), true));
        Ok(())
    }

    /// Found from outside, twelfth session: `[717]` → `[711]` moved the fence in silence.
    #[test]
    fn a_flipped_digit_or_a_cut_fails_the_check() -> Result<(), String> {
        let good = String::from_utf8(encode(&set(&[717]))?).map_err(|e| e.to_string())?;
        let flipped = good.replacen("717", "711", 1);
        assert!(decode(flipped.as_bytes()).is_err_and(|e| e.contains("checksum does not match")));
        let crc_flipped = good.replacen("\"crc32\":", "\"crc32\":1", 1);
        assert!(decode(crc_flipped.as_bytes()).is_err());
        assert!(decode(&good.as_bytes()[..good.len() / 2]).is_err());
        assert!(decode(b"").is_err());
        assert!(decode(b"\xff\xfe").is_err());
        assert!(decode(b"[1024]").is_err_and(|e| e.contains("out of range")));
        let newer = br#"{"version":2,"slots":[],"crc32":0,"more":1}"#;
        assert!(decode(newer).is_err_and(|e| e.contains("newer ttlcask")));
        Ok(())
    }

    /// A change whose second copy cannot be written is refused, and the first copy is
    /// written back, so the next start keeps the fences in force (found from outside: with
    /// the copy made a directory, a lift reported as failed took effect at the restart).
    #[test]
    fn a_change_whose_copy_cannot_be_written_leaves_the_next_start_as_it_was() -> Result<(), String>
    {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let [_, copy] = paths(dir.path());
        let fenced = set(&[5, 6, 7]);
        write(dir.path(), &fenced, &set(&[])).map_err(|e| e.to_string())?;
        std::fs::remove_file(&copy).map_err(|e| e.to_string())?;
        std::fs::create_dir(&copy).map_err(|e| e.to_string())?;
        for change in [set(&[]), set(&[5, 6, 7, 9])] {
            assert!(write(dir.path(), &change, &fenced).is_err(), "{change:?}");
            let loaded = load(dir.path())?;
            assert_eq!(loaded.slots, fenced, "after a refused change to {change:?}");
        }
        Ok(())
    }

    #[test]
    fn one_good_copy_is_enough_and_none_refuses() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let [main, copy] = paths(dir.path());
        assert_eq!(load(dir.path())?, Loaded::default(), "a new node");

        write(dir.path(), &set(&[717]), &set(&[])).map_err(|e| e.to_string())?;
        assert_eq!(load(dir.path())?.slots, set(&[717]));
        assert!(check(dir.path()).is_empty());

        // Deleted: the copy keeps the fence, and both load and verify say so.
        std::fs::remove_file(&main).map_err(|e| e.to_string())?;
        let loaded = load(dir.path())?;
        assert_eq!((loaded.slots, loaded.rewrite), (set(&[717]), true));
        assert!(loaded.problems[0].contains("it is missing"));
        assert_eq!(check(dir.path()).len(), 1);

        // A flipped digit in one copy: the other one's fences.
        write(dir.path(), &set(&[717]), &set(&[])).map_err(|e| e.to_string())?;
        let flipped = std::fs::read_to_string(&copy)
            .map_err(|e| e.to_string())?
            .replacen("717", "711", 1);
        std::fs::write(&copy, flipped).map_err(|e| e.to_string())?;
        assert_eq!(load(dir.path())?.slots, set(&[717]));

        // Damaged and missing: refused, naming both files.
        std::fs::remove_file(&main).map_err(|e| e.to_string())?;
        let refused = load(dir.path()).expect_err("nothing to trust");
        assert!(refused.contains(FENCE_FILE) && refused.contains(FENCE_COPY));
        assert!(check(dir.path())[0].contains("refuses to start"));

        // The operator's way out: a plain list in fences.json.
        std::fs::write(&main, "[717]").map_err(|e| e.to_string())?;
        assert_eq!(load(dir.path())?.slots, set(&[717]));
        Ok(())
    }

    #[test]
    fn copies_that_differ_keep_both_fences_and_an_old_dir_upgrades_quietly() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let [main, copy] = paths(dir.path());
        std::fs::write(&main, "[1,2]").map_err(|e| e.to_string())?;
        let old = load(dir.path())?;
        assert_eq!(old.slots, set(&[1, 2]));
        assert!(old.rewrite && old.problems.is_empty(), "{old:?}");

        std::fs::write(&copy, encode(&set(&[2, 3]))?).map_err(|e| e.to_string())?;
        let both = load(dir.path())?;
        assert_eq!(both.slots, set(&[1, 2, 3]));
        assert!(both.problems[0].contains("plain list"), "{both:?}");

        std::fs::write(&main, encode(&set(&[1, 2]))?).map_err(|e| e.to_string())?;
        let cut = load(dir.path())?;
        assert_eq!(cut.slots, set(&[1, 2, 3]));
        assert!(cut.problems[0].contains("cut short"), "{cut:?}");
        Ok(())
    }
}
