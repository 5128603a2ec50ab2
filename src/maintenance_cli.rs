//! The terminal side of the maintenance commands: progress bars (indicatif, on stderr and
//! only on a terminal) around [`crate::maintenance`] and `ttlcask_engine::verify`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ttlcask_engine::Store;

use crate::admin_client::AdminClient;
use crate::maintenance::{self, ExportFilter, ImportReport};

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
    let report = report?;
    if report.damaged_ranges > 0 {
        eprintln!(
            "warning: compaction found {} damaged range(s); {} record(s) in them are lost (their keys read as misses), the intact ones were copied, and the damaged segments were moved aside as *.damaged (see `ttlcask verify`)",
            report.damaged_ranges, report.records_lost
        );
    }
    print_json(&maintenance::compaction_json(&report))
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
    // The server's own files, checked as the server checks them when it starts (the engine
    // knows nothing of them): found from outside, a damaged fence file or admin token
    // refused the start while verify said clean.
    let mut server_files = crate::admin::fence_file::check(dir);
    let token = dir.join(crate::cli::ADMIN_TOKEN_FILE);
    if let Err(e) = crate::server::read_admin_token(&token) {
        server_files.push(format!("the server refuses to start: {e}"));
    }
    for d in &server_files {
        eprintln!("damaged: {d}");
    }
    let damaged = report.damage.len() + server_files.len();
    print_json(&serde_json::json!({
        "segments": report.segments,
        "hints": report.hints,
        "records": report.records,
        "hint_records": report.hint_records,
        "bytes": report.bytes,
        "damaged": damaged,
        "clean": damaged == 0,
    }))?;
    if damaged == 0 {
        Ok(())
    } else if server_files.is_empty() {
        Err(format!(
            "{damaged} damaged place(s) in {}; the store cuts or skips them at open (see above)",
            dir.display()
        ))
    } else {
        Err(format!(
            "{damaged} damaged place(s) in {}; the store cuts or skips damaged records at open, and the server's files are repaired or refuse the start as said above",
            dir.display()
        ))
    }
}

/// Runs `write` into the output `path`, or into stdout.
///
/// A regular file (or a path that does not exist yet) is replaced atomically
/// ([`crate::atomic_file::write_streamed`]): a failed export leaves an earlier one as it was,
/// and no partial export looks complete. Anything else that exists (a device such as
/// `/dev/null`, a FIFO, or a symlink to one) is written into as it is: not fsynced (they
/// answer EINVAL) and never removed, whatever happens.
fn write_output<T>(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<T, String>,
) -> Result<T, String> {
    // `-o -` is standard output, as for most tools (it wrote a file named `-`).
    let Some(p) = path.filter(|p| *p != Path::new("-")) else {
        return write(&mut std::io::stdout().lock());
    };
    // An error of the writing itself (a full disk, say) names the output.
    let named = |e: String| {
        let shown = p.display().to_string();
        if e.contains(&shown) {
            e
        } else {
            format!("{e} (writing {shown})")
        }
    };
    // Follows symlinks: `/dev/stdout` is a link to a descriptor.
    let written = match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {
            // Replace the file a symlink names, not the link.
            let target =
                std::fs::canonicalize(p).map_err(|e| format!("cannot use {}: {e}", p.display()))?;
            crate::atomic_file::write_streamed(&target, write)
        }
        Ok(_) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let t = write(&mut out)?;
            out.flush()
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(format!(
                    "{} is a symlink to nothing; give the path it should name",
                    p.display()
                ));
            }
            crate::atomic_file::write_streamed(p, write)
        }
        Err(e) => Err(format!("cannot use {}: {e}", p.display())),
    };
    written.map_err(named)
}

/// `ttlcask export` on an open store.
///
/// # Errors
/// A message when reading or writing fails.
pub fn export(store: &Store, output: Option<&Path>, filter: &ExportFilter) -> Result<(), String> {
    let pb = bar(0, "exporting {wide_bar} {pos}/{len} caches {eta}");
    let report = write_output(output, |out| {
        maintenance::export(store, out, filter, |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })
    })?;
    pb.finish_and_clear();
    eprintln!("exported {} lines ({} items)", report.lines, report.items);
    if report.lost > 0 {
        eprintln!(
            "warning: {} keys were left out: their records are damaged or lost (see `ttlcask stats` and `ttlcask verify`)",
            report.lost
        );
    }
    if report.unplaced > 0 {
        eprintln!(
            "warning: {} Flash caches are in no slot: their tenant has no registry record, so no ClientId reaches them",
            report.unplaced
        );
    }
    Ok(())
}

/// `ttlcask export` through a running server's `GET /admin/export`, streamed.
///
/// # Errors
/// The server's refusal, a cut-short answer, or a failed write.
pub fn export_online(
    client: &AdminClient,
    output: Option<&Path>,
    filter: &ExportFilter,
) -> Result<(), String> {
    let pb = bar(0, "exporting {spinner} {bytes} {bytes_per_sec}");
    let bytes = write_output(output, |mut out| {
        client.export(filter, &mut out, |n| pb.set_position(n))
    })?;
    pb.finish_and_clear();
    eprintln!("exported {bytes} bytes");
    Ok(())
}

/// Opens the import's input: the file, or stdin; with its length when known.
fn open_input(input: Option<&Path>) -> Result<(Box<dyn BufRead>, u64), String> {
    match input {
        Some(p) => {
            let file =
                std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            Ok((Box::new(BufReader::new(file)), len))
        }
        None => Ok((Box::new(BufReader::new(std::io::stdin())), 0)),
    }
}

fn print_import(report: &ImportReport) -> Result<(), String> {
    print_json(&serde_json::to_value(report).map_err(|e| e.to_string())?)?;
    if report.kept > 0 {
        eprintln!(
            "{} items were kept as they were: the target holds the same or newer records of them (a delete counts as newer)",
            report.kept
        );
    }
    Ok(())
}

/// `ttlcask import` into an open store (a stopped data dir).
///
/// # Errors
/// The first bad line or failed batch; earlier batches stay written.
pub fn import(store: &Store, input: Option<&Path>, batch: usize) -> Result<(), String> {
    let (reader, len) = open_input(input)?;
    let pb = bar(len, "importing {wide_bar} {bytes}/{total_bytes} {eta}");
    let report = maintenance::import(store, reader, batch, |read| pb.set_position(read));
    pb.finish_and_clear();
    let report = report.map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())?;
    print_import(&report)
}

/// `ttlcask import` through a running server's `POST /admin/import`, streamed.
///
/// # Errors
/// The server's refusal (with what it did before), or a failed connection.
pub fn import_online(
    client: &AdminClient,
    input: Option<&Path>,
    batch: usize,
) -> Result<(), String> {
    let (mut reader, len) = open_input(input)?;
    let pb = bar(len, "importing {wide_bar} {bytes}/{total_bytes} {eta}");
    let report = client.import(&mut reader, batch, |sent| pb.set_position(sent));
    pb.finish_and_clear();
    print_import(&report?)
}
