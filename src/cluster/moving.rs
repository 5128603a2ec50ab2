//! `cluster move --slots A..B --to NODE`: moves slots online.
//!
//! 0. The new node must hold the tenant and credential records the old ones hold: copied
//!    into a node that has none, or the move refuses (`registry::before_move`).
//! 1. Pause: the write map points the slots at `paused` (file first, then the runtime API);
//!    reads still reach the old node.
//! 2. Fence each old node for its slots (it refuses their writes, and waits for the writes
//!    it admitted before), so nothing lands there after the export.
//! 3. Fence the new node on the slots and drop what it holds of them: it owns none of them,
//!    so anything it holds is stale (a half copy of a run that stopped, or one an undo could
//!    not drop while it was down). Export the slots from each old node into the new one through
//!    the admin API (versions and expiries kept; an import never overwrites a newer record,
//!    so it can run again; it goes in over the new node's clears and drops, which can be
//!    newer by that node's counter than what the owner wrote since).
//! 4. Lift any fence the new node has on the slots, point both maps at it (files, then
//!    runtime), so a reload keeps the new owner.
//! 5. Fence and drop the slots on every other node.
//!
//! A failure between the pause and the switch leaves the slots' writes paused (503), and its
//! message says so and which command ends it.
//!
//! The map files are the record of progress: a re-run reads the owners from the read map,
//! so after a crash at any step it repeats the unfinished steps (each is idempotent) and
//! every acknowledged write is on the old node (fenced, not yet dropped) or the new one.
//!
//! One move at a time: a run holds an exclusive `flock` on `<write map>.lock` from before it
//! reads the maps until it returns, and a second run refuses at once. Two at once each
//! dropped the slots everywhere but on their own target, the other's included (found from
//! outside). The kernel releases the lock when its process dies, so a crashed run never
//! blocks the re-run that finishes it.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{IsTerminal as _, Write as _};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::maps::SlotMap;
use super::{runtime, ClusterFile, PAUSED};
use crate::maintenance::ExportFilter;

/// What a move did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct MoveReport {
    /// Slots that changed owner in this run.
    pub moved_slots: usize,
    /// Items imported into the new node.
    pub imported: u64,
    /// Caches dropped from other nodes.
    pub dropped: u64,
    /// Of `imported`, items stored with new versions: the new node had dropped their caches
    /// when it gave the slots away, after the versions the owner wrote since.
    pub renumbered: u64,
    /// Tenant and credential records copied into the new node, which had none.
    pub registry_records_copied: usize,
}

/// Contiguous ranges of sorted slots.
pub fn ranges(slots: &[u16]) -> Vec<RangeInclusive<u16>> {
    let mut out: Vec<RangeInclusive<u16>> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some(r) if *r.end() + 1 == s => *r = *r.start()..=s,
            _ => out.push(s..=s),
        }
    }
    out
}

/// Shows the step starting now: the bar's message, or a line on stderr.
fn step(bar: &ProgressBar, lines: bool, msg: impl Into<std::borrow::Cow<'static, str>>) {
    let msg = msg.into();
    if lines {
        eprintln!("ttlcask: cluster move: {msg}");
    }
    bar.set_message(msg);
}

/// The lock file of moves on the maps whose write map is `write_map`.
pub fn lock_path(write_map: &Path) -> PathBuf {
    let mut name = write_map.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the move lock, or says who holds it. The returned file holds the lock until dropped
/// (or until the process dies); its text says which run holds it, for the refusal of another.
///
/// # Errors
/// Another move holds the lock, or the lock file cannot be opened.
pub fn lock(write_map: &Path, what: &str) -> Result<File, String> {
    let path = lock_path(write_map);
    let io = |e: std::io::Error| format!("cannot take the move lock {}: {e}", path.display());
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(format!(
                "another `cluster move` is running (it holds the lock {}{}); nothing was changed: wait for it to finish, then run this command again if it is still needed",
                path.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(": {holder}")
                }
            ));
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Best effort: the lock, not this text, is what keeps another run out.
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "pid {} {what}", std::process::id()));
    Ok(file)
}

fn q(r: &RangeInclusive<u16>) -> String {
    format!("slot={}..{}", r.start(), r.end())
}

/// Moves `slots` to node `to`; `show_progress` draws a bar on stderr.
///
/// # Errors
/// A message naming the step and node; re-run the same command to finish.
/// Refuses a move whose target is the same server as one of its sources under another
/// address (`127.0.0.1:P` and `localhost:P`, or two addresses of one host): the copy would
/// import into the source itself and the drop then delete the slots' items from it (found
/// from outside: the move said it moved, and the items were gone). Told by the
/// `server_instance` each server draws at its start (a node without it is not compared).
///
/// # Errors
/// One of `sources` is `target`'s server, or a node cannot be asked.
pub fn one_server_each(target: &super::Node, sources: &[&super::Node]) -> Result<(), String> {
    let instance = |node: &super::Node| -> Result<Option<String>, String> {
        let stats = node.call("GET", "/admin/stats", None)?;
        Ok(stats["server_instance"].as_str().map(str::to_string))
    };
    let Some(target_instance) = instance(target)? else {
        return Ok(());
    };
    for source in sources {
        if instance(source)?.as_deref() == Some(target_instance.as_str()) {
            return Err(format!(
                "nodes {:?} ({}) and {:?} ({}) are one server (the same one answers at both addresses): a slot moved between them would be dropped from it; give each node of the cluster file its own server",
                source.name, source.address, target.name, target.address
            ));
        }
    }
    Ok(())
}

pub fn run(
    file: &ClusterFile,
    slots: RangeInclusive<u16>,
    to: &str,
    show_progress: bool,
) -> Result<MoveReport, String> {
    let target = file.node(to)?;
    // Held until this function returns: the maps are read under it.
    let _lock = lock(
        &file.write_map,
        &format!("moving slots {}..{} to {to}", slots.start(), slots.end()),
    )?;
    let mut read = SlotMap::read(&file.read_map)?;
    let mut write = SlotMap::read(&file.write_map)?;
    let mut sources: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for s in slots.clone() {
        let owner = read.get(s);
        if owner == PAUSED {
            return Err(format!(
                "slot {s} has no owner in the read map; fix {}",
                file.read_map.display()
            ));
        }
        if owner != to {
            file.node(owner)?;
            sources.entry(owner.to_string()).or_default().push(s);
        }
    }
    let moving: Vec<u16> = sources.values().flatten().copied().collect();
    // Before anything is paused: Flash and IronCache credentials are checked on the node a
    // request lands on (found from outside: a move to a node added without them exited 0,
    // and every client of the moved slots got 401).
    let owners: Vec<&super::Node> = sources
        .keys()
        .map(|n| file.node(n))
        .collect::<Result<_, _>>()?;
    one_server_each(target, &owners)?;
    let registry_records_copied = super::registry::before_move(target, &owners)?;
    // A terminal gets a bar; anything else (a log, a supervising script) one line per step.
    let lines = show_progress && !std::io::stderr().is_terminal();
    let bar = if show_progress && !lines {
        ProgressBar::new(1 + 2 * sources.len() as u64 + file.nodes.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = MoveReport {
        moved_slots: moving.len(),
        registry_records_copied,
        ..MoveReport::default()
    };

    // From the pause until both maps name `to`, a failure leaves the slots' writes paused:
    // the error says so, and how to end it (a failed move said nothing: found from outside).
    let paused = |e: String| {
        if moving.is_empty() {
            return e;
        }
        let list: Vec<String> = ranges(&moving)
            .iter()
            .map(|r| format!("{}..{}", r.start(), r.end()))
            .collect();
        format!(
            "{e}\nWrites to slots {} stay paused (HAProxy answers them 503; reads go on) until a move of them finishes: fix the cause and run `ttlcask cluster move` again with --slots {}..{} --to {to} (or --to another node).",
            list.join(", "),
            slots.start(),
            slots.end()
        )
    };
    let mut pause_copy_switch = || -> Result<(), String> {
        step(&bar, lines, "pausing writes");
        if !moving.is_empty() {
            for &s in &moving {
                write.set(s..=s, PAUSED);
            }
            write.write(&file.write_map)?;
            runtime::set_map(&file.haproxy_socket, &file.write_map, &moving, PAUSED)?;
        }
        bar.inc(1);

        // The new node owns none of the moving slots (reads and writes of them go to their
        // owners), so nothing it holds of them is current: a copy half-made by a run that
        // stopped, or one an undo could not drop while the node was down (keys deleted on
        // the owner since would come back: found from outside). It is fenced on them (a
        // drop needs a fence, and the switch lifts it) and drops them before the copy,
        // fenced before or not. The copy then goes in over its drops (newer, by its own
        // counter, than what the owner wrote since).
        for r in ranges(&moving) {
            step(
                &bar,
                lines,
                format!("dropping what {to} holds of {} before the copy", q(&r)),
            );
            target.call("POST", &format!("/admin/fence?{}", q(&r)), None)?;
            target.call("POST", &format!("/admin/drop?{}", q(&r)), None)?;
        }

        for (name, list) in &sources {
            let source = file.node(name)?;
            for r in ranges(list) {
                step(&bar, lines, format!("fencing {} on {name}", q(&r)));
                source.call("POST", &format!("/admin/fence?{}", q(&r)), None)?;
            }
            bar.inc(1);
            for r in ranges(list) {
                step(
                    &bar,
                    lines,
                    format!("copying {} from {name} to {to}", q(&r)),
                );
                let copied = copy(source, target, r)?;
                report.imported += copied.imported;
                report.renumbered += copied.renumbered;
            }
            bar.inc(1);
        }

        step(&bar, lines, format!("switching the maps to {to}"));
        target.call("DELETE", &format!("/admin/fence?{}", q(&slots)), None)?;
        read.set(slots.clone(), to);
        write.set(slots.clone(), to);
        read.write(&file.read_map)?;
        write.write(&file.write_map)?;
        let all: Vec<u16> = slots.clone().collect();
        runtime::set_map(&file.haproxy_socket, &file.read_map, &all, to)?;
        runtime::set_map(&file.haproxy_socket, &file.write_map, &all, to)?;
        bar.inc(1);
        Ok(())
    };
    pause_copy_switch().map_err(paused)?;

    let mut missed = Vec::new();
    for node in file.nodes.iter().filter(|n| n.name != to) {
        step(
            &bar,
            lines,
            format!("dropping the old copies on {}", node.name),
        );
        let dropped = node
            .call("POST", &format!("/admin/fence?{}", q(&slots)), None)
            .and_then(|_| node.call("POST", &format!("/admin/drop?{}", q(&slots)), None));
        match dropped {
            Ok(v) => {
                report.dropped += v
                    .get("dropped")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            }
            Err(e) => missed.push(e),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !missed.is_empty() {
        return Err(format!(
            "the slots now live on {to}, but old copies could not be dropped (run the move again once the node is back): {}",
            missed.join("; ")
        ));
    }
    Ok(report)
}

/// Streams one range from `source`'s export into `target`'s import, over the target's
/// clears and drops (the source is the owner).
fn copy(
    source: &super::Node,
    target: &super::Node,
    r: RangeInclusive<u16>,
) -> Result<crate::maintenance::ImportReport, String> {
    let (mut reader, mut writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let exporter = source.client()?;
    let filter = ExportFilter {
        tenant: None,
        slots: Some(r),
        registry: Some(false),
    };
    let name = source.name.clone();
    let export = std::thread::spawn(move || {
        let done = exporter.export(&filter, &mut writer, |_| {});
        drop(writer);
        done.map_err(|e| format!("export from node {name}: {e}"))
    });
    let imported = target
        .client()?
        .import_over_clears(&mut reader, 1000, |_| {})
        .map_err(|e| format!("import into node {}: {e}", target.name));
    drop(reader);
    let exported = export
        .join()
        .map_err(|_| "the export thread panicked".to_string())?;
    exported?;
    imported
}

#[cfg(test)]
mod tests {
    /// A second taker of the move lock is refused at once with a message naming the lock
    /// and the run holding it; once the first lets go (as a dead process does), it is free.
    #[test]
    fn the_move_lock_lets_one_move_run() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let map = dir.path().join("write.map");
        let first = super::lock(&map, "moving slots 0..9 to node2")?;
        let refused = super::lock(&map, "moving slots 5..20 to node3")
            .err()
            .ok_or("a second move took the lock")?;
        let lock = super::lock_path(&map);
        assert!(
            refused.contains("another `cluster move` is running"),
            "{refused}"
        );
        assert!(refused.contains(&lock.display().to_string()), "{refused}");
        assert!(refused.contains("moving slots 0..9 to node2"), "{refused}");
        drop(first);
        super::lock(&map, "moving slots 5..20 to node3").map(drop)
    }
}
