//! The terminal side of the maintenance commands: progress bars (indicatif, on stderr and
//! only on a terminal) around [`crate::maintenance`] and `ttlcask_engine::verify`.

use std::io::{BufReader, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ttlcask_engine::Store;

use crate::maintenance;

fn bar(total: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `ttlcask stats`: the JSON on stdout, and on stderr a warning for each thing an operator
/// must act on (a full disk, a poisoned store, damage found by recovery, damaged reads).
///
/// # Errors
/// When the JSON cannot be written.
pub fn print_stats(v: &serde_json::Value) -> Result<(), String> {
    print_json(v)?;
    for w in stats_warnings(v) {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// The warnings [`print_stats`] prints, from the stats JSON.
pub fn stats_warnings(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reason) = v["poisoned"].as_str() {
        out.push(format!(
            "the store is poisoned ({reason}): writes are refused until the server restarts"
        ));
    }
    if v["disk_full"] == true {
        out.push(
            "the disk is full: writes get 507 until space is freed (deletes still work)".into(),
        );
    }
    let r = &v["recovery"];
    if r["clean"] == false {
        out.push(format!(
            "opening the store found damage: {} damaged ranges, {} keys lost, {} records salvaged, {} bytes cut, {} files ignored; run `ttlcask verify`",
            r["damaged"].as_array().map_or(0, Vec::len),
            r["keys_lost"],
            r["records_salvaged"],
            r["bytes_cut"],
            r["ignored_files"].as_array().map_or(0, Vec::len),
        ));
    }
    if v["damaged_reads"].as_u64().is_some_and(|n| n > 0) {
        out.push(format!(
            "{} reads found damaged or lost records and were answered as misses",
            v["damaged_reads"]
        ));
    }
    out
}

/// `ttlcask compact` on an open store.
///
/// # Errors
/// The compaction's error.
pub fn compact(store: &Store) -> Result<(), String> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("compacting");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let report = store.compact().map_err(|e| e.to_string());
    spinner.finish_and_clear();
    print_json(&maintenance::compaction_json(&report?))
}

/// `ttlcask verify DIR`: read-only; fails (exit 1) when damage is found.
///
/// # Errors
/// A summary of the damage, or the I/O error that stopped the check.
pub fn verify(dir: &Path) -> Result<(), String> {
    let pb = bar(0, "verifying {wide_bar} {bytes}/{total_bytes} {eta}");
    let report = ttlcask_engine::verify_with_progress(dir, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
    .map_err(|e| format!("cannot verify {}: {e}", dir.display()))?;
    pb.finish_and_clear();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for d in &report.damage {
        eprintln!("damaged: {d}");
    }
    print_json(&serde_json::json!({
        "segments": report.segments,
        "hints": report.hints,
        "records": report.records,
        "bytes": report.bytes,
        "damaged": report.damage.len(),
        "clean": report.is_clean(),
    }))?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!(
            "{} damaged place(s) in {}; the store cuts or skips them at open (see above)",
            report.damage.len(),
            dir.display()
        ))
    }
}

/// Writes `bytes` to `path`, or stdout.
///
/// # Errors
/// A message naming the file.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), String> {
    match path {
        Some(p) => {
            std::fs::write(p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|e| e.to_string()),
    }
}

/// `ttlcask export` on an open store.
///
/// # Errors
/// A message when reading or writing fails.
pub fn export(store: &Store, output: Option<&Path>) -> Result<(), String> {
    let pb = bar(0, "exporting {wide_bar} {pos}/{len} caches {eta}");
    let mut progress = |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let report = match output {
        Some(p) => {
            let file = std::fs::File::create(p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = maintenance::export(store, &mut out, &mut progress)?;
            out.into_inner()
                .map_err(|e| e.to_string())?
                .sync_all()
                .map_err(|e| e.to_string())?;
            n
        }
        None => maintenance::export(store, &mut std::io::stdout().lock(), &mut progress)?,
    };
    pb.finish_and_clear();
    eprintln!("exported {} lines", report.lines);
    if report.lost > 0 {
        eprintln!(
            "warning: {} keys were left out: their records are damaged or lost (see `ttlcask stats` and `ttlcask verify`)",
            report.lost
        );
    }
    Ok(())
}

/// `ttlcask import` into a stopped data dir.
///
/// # Errors
/// The first bad line or failed batch; earlier batches stay written.
pub fn import(dir: &Path, input: Option<&Path>, batch: usize) -> Result<(), String> {
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    let report = match input {
        Some(p) => {
            let file =
                std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let pb = bar(len, "importing {wide_bar} {bytes}/{total_bytes} {eta}");
            let r = maintenance::import(&store, BufReader::new(file), batch, |read| {
                pb.set_position(read)
            });
            pb.finish_and_clear();
            r?
        }
        None => maintenance::import(&store, std::io::stdin().lock(), batch, |_| {})?,
    };
    store.sync().map_err(|e| e.to_string())?;
    print_json(&serde_json::to_value(&report).map_err(|e| e.to_string())?)
}
