//! The store's fault state as an operator sees it: whether it takes writes ([`Health`]) and
//! what opening it found ([`RecoveryReport`]), rendered for the log at start, `/metrics`,
//! `ttlcask stats` (JSON) and the status page.

use std::fmt::Write as _;

use serde_json::{json, Value};
use ttlcask_engine::{Health, RecoveryReport, Store};

/// One snapshot of the fault state, taken when a page, a scrape or `stats` asks.
#[derive(Debug, Clone, Default)]
pub struct StorageState {
    /// Poisoned (with the reason) and disk-full flags.
    pub health: Health,
    /// What opening the store found, cut and kept.
    pub recovery: RecoveryReport,
    /// Reads of damaged or lost records that the server answered as misses.
    pub damaged_reads: u64,
}

impl StorageState {
    /// The state of `store` now; `damaged_reads` comes from the server's
    /// [`DamagedReads`](super::DamagedReads) (0 outside a server).
    pub fn of(store: &Store, damaged_reads: u64) -> Self {
        Self {
            health: store.health(),
            recovery: store.recovery_report(),
            damaged_reads,
        }
    }

    /// Prometheus samples: `ttlcask_disk_full`, `ttlcask_dir_not_writable`,
    /// `ttlcask_out_of_descriptors`, `ttlcask_poisoned`,
    /// `ttlcask_disk_waiting_milliseconds`,
    /// `ttlcask_damaged_reads_total`, `ttlcask_unreadable_pages_total` and the
    /// `ttlcask_recovery_*` gauges.
    pub fn write_prometheus(&self, o: &mut String) {
        let r = &self.recovery;
        let gauges: [(&str, &str, u64); 15] = [
            (
                "disk_full",
                "1 while the disk is full: writes get 507, reads and deletes go on.",
                u64::from(self.health.disk_full),
            ),
            (
                "dir_not_writable",
                "1 while the data dir refuses new files (permissions, a read-only mount): writes that need a new segment get 503, reads go on.",
                u64::from(self.health.dir_not_writable.is_some()),
            ),
            (
                "out_of_descriptors",
                "1 while the server has no file descriptor left for a new segment (its open-file limit): writes that need one get 503, reads go on.",
                u64::from(self.health.out_of_descriptors.is_some()),
            ),
            (
                "poisoned",
                "1 once an I/O failure poisoned the store: writes are refused until a restart.",
                u64::from(self.health.poisoned.is_some()),
            ),
            (
                "disk_waiting_milliseconds",
                "How long the write or fsync in progress has waited for the disk, once a second or more (a frozen file system, a stalled device: writes wait, reads go on); 0 otherwise.",
                self.health.disk_waiting_ms.unwrap_or(0),
            ),
            (
                "recovery_clean",
                "1 if opening the store found nothing damaged or unusable (a write torn by a crash, cut, and a blank segment a crash left, removed, are no damage).",
                u64::from(r.is_clean()),
            ),
            (
                "recovery_damaged_ranges",
                "Damaged byte ranges found in kept segments when the store was opened.",
                r.damaged.len() as u64,
            ),
            (
                "recovery_keys_lost",
                "Keys whose newest record lay in a damaged range (read as misses until rewritten).",
                r.keys_lost,
            ),
            (
                "recovery_records_salvaged",
                "Intact records read from damaged segments at open.",
                r.records_salvaged,
            ),
            (
                "recovery_bytes_cut",
                "Bytes cut off torn tails at open.",
                r.bytes_cut(),
            ),
            (
                "recovery_truncated_tails",
                "Torn tails cut at open.",
                r.truncated.len() as u64,
            ),
            (
                "recovery_ignored_files",
                "Files of the data dir that open could not use and left alone.",
                r.ignored_files.len() as u64,
            ),
            (
                "recovery_segments_scanned",
                "Segments read record by record at open (no usable hint file).",
                r.segments_scanned,
            ),
            (
                "recovery_segments_from_hints",
                "Segments indexed from their hint file at open.",
                r.segments_from_hints,
            ),
            ("recovery_records", "Records indexed at open.", r.records),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                o,
                "# HELP ttlcask_{name} {help}\n# TYPE ttlcask_{name} gauge\nttlcask_{name} {value}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP ttlcask_damaged_reads_total Reads that found a damaged or lost record and were answered as misses.\n# TYPE ttlcask_damaged_reads_total counter\nttlcask_damaged_reads_total {}",
            self.damaged_reads
        );
        let _ = writeln!(
            o,
            "# HELP ttlcask_unreadable_pages_total Pages of the store's files the disk could not read (or past the end of a file cut short), read as zeros instead: damage where the store reads them.\n# TYPE ttlcask_unreadable_pages_total counter\nttlcask_unreadable_pages_total {}",
            ttlcask_engine::unreadable_pages()
        );
    }

    /// `{"disk_full","dir_not_writable","out_of_descriptors","disk_waiting_ms","poisoned","recovery":{…}}`, merged into `ttlcask stats`.
    pub fn to_json(&self) -> Value {
        let r = &self.recovery;
        json!({
            "disk_full": self.health.disk_full,
            "dir_not_writable": self.health.dir_not_writable,
            "out_of_descriptors": self.health.out_of_descriptors,
            "disk_waiting_ms": self.health.disk_waiting_ms,
            "poisoned": self.health.poisoned,
            "recovery": {
                "clean": r.is_clean(),
                "segments_scanned": r.segments_scanned,
                "segments_from_hints": r.segments_from_hints,
                "records": r.records,
                "damaged": r.damaged.iter().map(|d| json!({
                    "segment": d.segment,
                    "offset": d.offset,
                    "len": d.len,
                    "records": d.records,
                    "problem": d.problem,
                })).collect::<Vec<_>>(),
                "keys_lost": r.keys_lost,
                "records_salvaged": r.records_salvaged,
                "bytes_cut": r.bytes_cut(),
                "truncated": r.truncated.iter().map(|&(segment, offset, bytes)| json!({
                    "segment": segment,
                    "offset": offset,
                    "bytes": bytes,
                })).collect::<Vec<_>>(),
                "ignored_files": r.ignored_files,
            },
        })
    }
}

fn segment_file(id: u32) -> String {
    format!("{id:010}.seg")
}

/// What recovery found, one line per damaged range, cut tail and ignored file, then a summary
/// line; empty when the report is clean.
pub fn recovery_lines(r: &RecoveryReport) -> Vec<String> {
    if r.is_clean() {
        return Vec::new();
    }
    let mut lines =
        Vec::with_capacity(r.damaged.len() + r.truncated.len() + r.ignored_files.len() + 1);
    for d in &r.damaged {
        let records = d.records.map_or_else(
            || "an unknown number of records".to_string(),
            |n| format!("{n} records"),
        );
        lines.push(format!(
            "recovery: damaged range in segment {} at offset {}, {} bytes ({records}): {}; the file is kept as evidence",
            segment_file(d.segment),
            d.offset,
            d.len,
            d.problem
        ));
    }
    for &(segment, offset, bytes) in &r.truncated {
        lines.push(format!(
            "recovery: cut segment {} at offset {offset}: {bytes} bytes of a torn or damaged tail dropped",
            segment_file(segment)
        ));
    }
    for file in &r.ignored_files {
        lines.push(format!("recovery: ignored file {file}"));
    }
    lines.push(format!(
        "recovery found damage: {} damaged ranges, {} keys lost (read as misses until written again), {} records salvaged, {} bytes cut from {} tails, {} files ignored; {} segments scanned, {} from hints, {} records indexed; run `ttlcask verify` on the data dir",
        r.damaged.len(),
        r.keys_lost,
        r.records_salvaged,
        r.bytes_cut(),
        r.truncated.len(),
        r.ignored_files.len(),
        r.segments_scanned,
        r.segments_from_hints,
        r.records
    ));
    lines
}

/// Logs the report as the server starts: each line of [`recovery_lines`] at warn, or one
/// info line when opening found nothing wrong.
pub fn log_recovery(r: &RecoveryReport) {
    let lines = recovery_lines(r);
    if lines.is_empty() {
        // What a crash leaves is no damage: said at info, once per place.
        for &(segment, offset, bytes) in &r.truncated {
            tracing::info!(
                "recovery: cut a write torn by a crash at the end of segment {} (offset {offset}, {bytes} bytes); it was never acknowledged",
                segment_file(segment)
            );
        }
        for file in &r.ignored_files {
            tracing::info!("recovery: {file}");
        }
        tracing::info!(
            segments_scanned = r.segments_scanned,
            segments_from_hints = r.segments_from_hints,
            records = r.records,
            "recovery: clean"
        );
    }
    for line in lines {
        tracing::warn!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttlcask_engine::DamagedRange;

    fn damaged() -> RecoveryReport {
        RecoveryReport {
            segments_scanned: 2,
            segments_from_hints: 1,
            records: 90,
            truncated: vec![(4, 1000, 24)],
            ignored_files: vec!["0000000009.seg: bad header".into()],
            damaged: vec![DamagedRange {
                segment: 2,
                offset: 4096,
                len: 512,
                records: Some(3),
                problem: "frame CRC mismatch".into(),
            }],
            keys_lost: 3,
            records_salvaged: 40,
        }
    }

    #[test]
    fn a_clean_report_has_no_warn_lines() {
        assert!(recovery_lines(&RecoveryReport::default()).is_empty());
    }

    // What an ordinary kill -9 leaves (a torn write cut, a blank segment removed) is no
    // damage: it was logged as "recovery found damage" and `ttlcask_recovery_clean` was 0
    // (found from outside, twelfth session).
    #[test]
    fn what_a_crash_leaves_is_no_damage() {
        let crash = RecoveryReport {
            truncated: vec![(313, 72, 65464)],
            ignored_files: vec![
                "/d/0000008760.seg: blank segment removed (its header never reached the disk)"
                    .into(),
            ],
            ..RecoveryReport::default()
        };
        assert!(crash.is_clean());
        assert!(recovery_lines(&crash).is_empty());
        let mut other = crash.clone();
        other
            .ignored_files
            .push("/d/0000000009.seg: bad header".into());
        assert!(!other.is_clean());
        assert_eq!(
            recovery_lines(&other).len(),
            4,
            "the tail, both files, the summary"
        );
    }

    #[test]
    fn one_line_per_finding_then_a_summary() {
        let lines = recovery_lines(&damaged());
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].contains(
            "segment 0000000002.seg at offset 4096, 512 bytes (3 records): frame CRC mismatch"
        ));
        assert!(lines[1].contains("cut segment 0000000004.seg at offset 1000: 24 bytes"));
        assert!(lines[2].contains("ignored file 0000000009.seg: bad header"));
        assert!(lines[3].starts_with("recovery found damage: 1 damaged ranges, 3 keys lost"));
        assert!(lines[3].contains("24 bytes cut from 1 tails, 1 files ignored"));
    }

    #[test]
    fn metrics_and_json_show_the_figures() {
        let state = StorageState {
            health: Health {
                poisoned: Some("fsync: EIO".into()),
                disk_full: true,
                dir_not_writable: None,
                out_of_descriptors: Some("Too many open files (os error 24)".into()),
                disk_waiting_ms: Some(2500),
            },
            recovery: damaged(),
            damaged_reads: 5,
        };
        let mut text = String::new();
        state.write_prometheus(&mut text);
        for expected in [
            "ttlcask_disk_full 1",
            "ttlcask_poisoned 1",
            "ttlcask_out_of_descriptors 1",
            "ttlcask_dir_not_writable 0",
            "ttlcask_disk_waiting_milliseconds 2500",
            "ttlcask_recovery_clean 0",
            "ttlcask_recovery_damaged_ranges 1",
            "ttlcask_recovery_keys_lost 3",
            "ttlcask_recovery_records_salvaged 40",
            "ttlcask_recovery_bytes_cut 24",
            "ttlcask_recovery_ignored_files 1",
            "ttlcask_damaged_reads_total 5",
            "ttlcask_unreadable_pages_total ",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        let v = state.to_json();
        assert_eq!(v["disk_full"], true);
        assert_eq!(v["poisoned"], "fsync: EIO");
        assert_eq!(v["disk_waiting_ms"], 2500);
        assert_eq!(v["out_of_descriptors"], "Too many open files (os error 24)");
        assert_eq!(v["recovery"]["clean"], false);
        assert_eq!(v["recovery"]["damaged"][0]["offset"], 4096);
        assert_eq!(v["recovery"]["bytes_cut"], 24);
    }
}
