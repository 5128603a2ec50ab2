//! The printed report: one markdown table of every store's figures with ttlcask's ratios to
//! the same-run peers, the raw disk limits, and each DESIGN.md / issue 6 target marked met
//! or missed.

use std::fmt::Write;

use crate::workload::{Figures, RawLimits};
use crate::{KEY_LEN, VALUE_LEN};

const MIB: f64 = 1024.0 * 1024.0;

/// Whether a larger figure is better (rates) or a smaller one (times, sizes).
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    label: String,
    unit: &'static str,
    better: Better,
    get: fn(&Figures) -> Option<f64>,
}

fn row(label: &str, unit: &'static str, better: Better, get: fn(&Figures) -> Option<f64>) -> Row {
    Row {
        label: label.to_string(),
        unit,
        better,
        get,
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// ttlcask's advantage over `peer`: > 1 means ttlcask is better, whichever way is better.
fn advantage(better: Better, ttl: f64, peer: f64) -> f64 {
    match better {
        Better::Higher => ttl / peer,
        Better::Lower => peer / ttl,
    }
}

fn best_peer<'a>(
    peers: impl Iterator<Item = &'a Figures>,
    better: Better,
    get: fn(&Figures) -> Option<f64>,
) -> Option<(&'static str, f64)> {
    peers
        .filter_map(|f| get(f).map(|v| (f.name, v)))
        .filter(|(_, v)| *v > 0.0)
        .reduce(|a, b| {
            let b_wins = match better {
                Better::Higher => b.1 > a.1,
                Better::Lower => b.1 < a.1,
            };
            if b_wins {
                b
            } else {
                a
            }
        })
}

/// Renders the whole report. `all[0]` must be ttlcask; the others are its peers.
pub fn render(all: &[Figures], raw: &RawLimits, keys: u64, threads: usize) -> String {
    let mut out = String::new();
    let Some(ttl) = all.iter().find(|f| f.name == "ttlcask") else {
        return "ttlcask was not measured\n".into();
    };
    let peers = || all.iter().filter(|f| f.name != "ttlcask");
    let lmdb = all.iter().find(|f| f.name == "lmdb");

    let rows = [
        row("bulk load", "keys/s", Better::Higher, |f| Some(f.bulk_load)),
        row("reopen (open + first read)", "s", Better::Lower, |f| {
            Some(f.reopen_secs)
        }),
        row(
            "reopen, files dropped from the page cache",
            "s",
            Better::Lower,
            |f| Some(f.reopen_cold_secs),
        ),
        row("random reads, 1 thread", "reads/s", Better::Higher, |f| {
            Some(f.reads_1)
        }),
        row("random reads, 2 threads", "reads/s", Better::Higher, |f| {
            Some(f.reads_2)
        }),
        row(
            "random reads, 1 thread, 16 keys per call (batched read; none in peers)",
            "reads/s",
            Better::Higher,
            |f| f.reads_batched,
        ),
        row(
            "random reads, 2 threads ÷ 1 thread",
            "×",
            Better::Higher,
            |f| Some(f.reads_2 / f.reads_1.max(1e-9)),
        ),
        row(
            "random reads, 1 thread, during paced durable writes",
            "reads/s",
            Better::Higher,
            |f| Some(f.reads_during_writes),
        ),
        row(
            "  the same ÷ its read-only rate (1 thread)",
            "×",
            Better::Higher,
            |f| Some(f.reads_during_writes / f.reads_1.max(1e-9)),
        ),
        row(
            "  paced durable writes achieved meanwhile",
            "writes/s",
            Better::Higher,
            |f| Some(f.paced_writes),
        ),
        row(
            "durable writes, 1 thread",
            "writes/s",
            Better::Higher,
            |f| Some(f.durable_1),
        ),
        row(
            &format!("durable writes, {threads} threads"),
            "writes/s",
            Better::Higher,
            |f| Some(f.durable_64),
        ),
        row(
            "removals (N/2, one transaction)",
            "keys/s",
            Better::Higher,
            |f| Some(f.removals),
        ),
        row("disk after bulk load", "MiB", Better::Lower, |f| {
            Some(f.disk_after_load as f64 / MIB)
        }),
        row("disk after 50% overwrites", "MiB", Better::Lower, |f| {
            Some(f.disk_after_overwrites as f64 / MIB)
        }),
        row("disk after compaction", "MiB", Better::Lower, |f| {
            f.disk_after_compaction.map(|b| b as f64 / MIB)
        }),
        row(
            "disk after compaction ÷ live data",
            "×",
            Better::Lower,
            |f| {
                f.disk_after_compaction
                    .map(|b| b as f64 / f.live_bytes.max(1) as f64)
            },
        ),
        row("heap held after reopen, per key", "B", Better::Lower, |f| {
            Some(f.heap_per_key)
        }),
    ];

    let _ = writeln!(
        out,
        "N = {keys} keys of {KEY_LEN} B, values of {VALUE_LEN} B. Ratios are ttlcask's advantage \
         (> 1 = ttlcask better: its rate ÷ the peer's, or the peer's time or size ÷ ttlcask's).\n"
    );
    let mut header = String::from("| benchmark | unit |");
    let mut rule = String::from("|---|---|");
    for f in all {
        let _ = write!(header, " {} |", f.name);
        rule.push_str("---:|");
    }
    header.push_str(" ttlcask ÷ best peer | ttlcask ÷ lmdb |");
    rule.push_str("---:|---:|");
    let _ = writeln!(out, "{header}\n{rule}");
    for r in &rows {
        let mut line = format!("| {} | {} |", r.label, r.unit);
        for f in all {
            let cell = (r.get)(f).map_or("n/a".to_string(), fmt_num);
            let _ = write!(line, " {cell} |");
        }
        let ttl_v = (r.get)(ttl);
        let vs_best = match (ttl_v, best_peer(peers(), r.better, r.get)) {
            (Some(t), Some((name, p))) if t > 0.0 => {
                format!("{:.2}× ({name})", advantage(r.better, t, p))
            }
            _ => "n/a".into(),
        };
        let vs_lmdb = match (ttl_v, lmdb.and_then(|l| (r.get)(l))) {
            (Some(t), Some(p)) if t > 0.0 && p > 0.0 => {
                format!("{:.2}×", advantage(r.better, t, p))
            }
            _ => "n/a".into(),
        };
        let _ = writeln!(line, " {vs_best} | {vs_lmdb} |");
        out.push_str(&line);
    }

    let bulk_bytes = ttl.bulk_load * (KEY_LEN + VALUE_LEN) as f64;
    let _ = writeln!(
        out,
        "\nRaw limits of the data directory's disk, same run: sequential write {:.0} MiB/s \
         (1 MiB writes, then fdatasync); single writer {:.0} fdatasync/s (200-byte pwrite into a \
         file pre-sized with set_len, as ttlcask's active segment, then fdatasync), {:.0} \
         fdatasync/s into blocks written beforehand.",
        raw.seq_write / MIB,
        raw.fdatasync_rate,
        raw.fdatasync_rate_prewritten
    );
    let _ = writeln!(
        out,
        "ttlcask: bulk load {:.0} MiB/s of key+value bytes; {} acknowledged writes per fsync \
         with {threads} threads; index estimate (`stats().index_bytes`) {} B/key; hint files read \
         in {}.\n",
        bulk_bytes / MIB,
        ttl.writes_per_fsync
            .map_or("n/a".into(), |w| format!("{w:.1}")),
        ttl.index_per_key
            .map_or("n/a".into(), |b| format!("{b:.1}")),
        ttl.hint_read_secs
            .map_or("n/a".into(), |s| format!("{:.3} s", s)),
    );
    if let (Some(b), Some(l)) = (ttl.reads_batched, lmdb) {
        // Not a target (DESIGN's are point reads, and LMDB has no batched read): what a caller
        // with many keys at hand gets.
        let _ = writeln!(
            out,
            "ttlcask's batched reads (16 keys per `get_many`) ÷ its point reads: {:.2}×; ÷ LMDB's \
             point reads: {:.2}×.\n",
            b / ttl.reads_1.max(1e-9),
            b / l.reads_1.max(1e-9)
        );
    }

    // Targets.
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    let mut vs_peer = |label: &str,
                       get: fn(&Figures) -> Option<f64>,
                       better: Better,
                       only: Option<&[&str]>,
                       need: f64| {
        let pool = peers().filter(|f| only.is_none_or(|o| o.contains(&f.name)));
        if let (Some(t), Some((name, p))) = (get(ttl), best_peer(pool, better, get)) {
            let a = advantage(better, t, p);
            targets.push((
                label.to_string(),
                format!("{a:.2}× {name} (need ≥ {need}×)"),
                a >= need,
            ));
        }
    };
    vs_peer(
        "random reads, 1 thread ≥ 2× best peer (LMDB per DESIGN)",
        |f| Some(f.reads_1),
        Better::Higher,
        None,
        2.0,
    );
    vs_peer(
        "random reads, 2 threads ≥ 2× best peer (LMDB per DESIGN)",
        |f| Some(f.reads_2),
        Better::Higher,
        None,
        2.0,
    );
    vs_peer(
        "random reads during paced durable writes ≥ 2× LMDB (issue 13)",
        |f| Some(f.reads_during_writes),
        Better::Higher,
        Some(&["lmdb"]),
        2.0,
    );
    vs_peer(
        "bulk load ≥ 2× LMDB (DESIGN)",
        |f| Some(f.bulk_load),
        Better::Higher,
        Some(&["lmdb"]),
        2.0,
    );
    vs_peer(
        "bulk load ≥ 2× faster of redb, fjall (issue 6)",
        |f| Some(f.bulk_load),
        Better::Higher,
        Some(&["redb", "fjall"]),
        2.0,
    );
    vs_peer(
        &format!("durable writes, {threads} threads ≥ 10× best peer"),
        |f| Some(f.durable_64),
        Better::Higher,
        None,
        10.0,
    );
    let during = ttl.reads_during_writes / ttl.reads_1.max(1e-9);
    targets.push((
        "random reads during paced durable writes ≥ 0.8× read-only (issue 13)".into(),
        format!("{during:.2}× (need ≥ 0.8×)"),
        during >= 0.8,
    ));
    let scale = ttl.reads_2 / ttl.reads_1.max(1e-9);
    targets.push((
        "random reads, 2 threads ≥ 1.8× 1 thread (issue 13)".into(),
        format!("{scale:.2}× (need ≥ 1.8×)"),
        scale >= 1.8,
    ));
    if let Some(h) = ttl.hint_bytes {
        let payload = keys as f64 * (KEY_LEN + VALUE_LEN) as f64;
        let r = h as f64 / payload.max(1.0);
        targets.push((
            "hint files ≤ 0.2× payload after bulk load (issue 13)".into(),
            format!("{r:.3}×"),
            r <= 0.2,
        ));
        let seg = ttl.disk_after_load.saturating_sub(h) as f64 / payload.max(1.0);
        targets.push((
            "segments ≤ 1.1× payload after bulk load (issue 13)".into(),
            format!("{seg:.3}×"),
            seg <= 1.1,
        ));
    }
    let bw = bulk_bytes / raw.seq_write.max(1.0);
    targets.push((
        "bulk load ≥ 0.5× raw sequential write bandwidth".into(),
        format!("{bw:.2}× (need ≥ 0.5×)"),
        bw >= 0.5,
    ));
    if let Some(w) = ttl.writes_per_fsync {
        targets.push((
            format!("≥ 20 acknowledged writes per fsync ({threads} threads)"),
            format!("{w:.1}"),
            w >= 20.0,
        ));
    }
    let beyond = ttl.heap_per_key - KEY_LEN as f64;
    targets.push((
        "index ≤ 40 B per key beyond the key bytes (counting allocator)".into(),
        format!("{beyond:.1} B"),
        beyond <= 40.0,
    ));
    for (what, secs) in [
        ("page cache warm", ttl.reopen_secs),
        ("files dropped from the page cache", ttl.reopen_cold_secs),
    ] {
        // Issue 13: 1M keys in 100 ms, more keys in proportion.
        let limit = 0.1 * keys as f64 / 1e6;
        targets.push((
            format!("reopen ≤ 100 ms per 1M keys, {what} (issue 13)"),
            format!("{:.0} ms (need ≤ {:.0} ms)", secs * 1e3, limit * 1e3),
            secs <= limit,
        ));
    }
    if let Some(h) = ttl.hint_read_secs {
        let r = ttl.reopen_secs / h.max(1e-9);
        targets.push((
            "reopen ≤ 2× the time to read the hint files".into(),
            format!("{r:.1}× ({:.3} s vs {h:.3} s)", ttl.reopen_secs),
            r <= 2.0,
        ));
    }
    if let Some(c) = ttl.disk_after_compaction {
        let r = c as f64 / ttl.live_bytes.max(1) as f64;
        targets.push((
            "disk after compaction ≤ 1.3× live key+value bytes".into(),
            format!("{r:.2}×"),
            r <= 1.3,
        ));
    }
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    for (label, measured, met) in &targets {
        let _ = writeln!(
            out,
            "| {label} | {measured} | {} |",
            if *met { "met" } else { "**missed**" }
        );
    }
    out
}
