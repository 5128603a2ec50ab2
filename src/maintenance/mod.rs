//! Maintenance of a data dir: `stats`, `compact`, `verify`, `export` and `import`.
//!
//! Export and import move a store's data as JSON lines ([`line`]): [`export()`] writes every
//! cache and item (or one tenant's, or a range of slots', see [`ExportFilter`]) with its
//! version (`cas`) and expiry; [`import()`] / [`Importer`] write them back keeping both, and
//! never over a newer record, so an interrupted import can be run again. The same functions
//! serve the CLI on a stopped data dir and `GET /admin/export` / `POST /admin/import` on a
//! running server.

pub mod export;
pub mod import;
pub mod line;

pub use export::{export, ExportFilter, ExportReport};
pub use import::{import, ImportError, ImportReport, Importer};
pub use line::Line;

use crate::faults::StorageState;

/// `Stats` and the storage state as JSON (what `ttlcask stats` prints and `GET /admin/stats`
/// answers): the engine's figures, `disk_full`, `poisoned`, `damaged_reads` (reads the
/// server answered as misses; 0 on a stopped data dir) and `recovery` (what the last open
/// found).
pub fn stats_json(s: &ttlcask_engine::Stats, storage: &StorageState) -> serde_json::Value {
    let mut v = serde_json::json!({
        "items": s.items,
        "namespaces": s.namespaces,
        "live_bytes": s.live_bytes,
        "dead_bytes": s.dead_bytes,
        "segments": s.segments,
        "index_bytes": s.index_bytes,
        "fsyncs": s.fsyncs,
        "writes": s.writes,
        "compactions": s.compactions,
        "expired_removed": s.expired_removed,
        "compacting": s.compacting,
        "last_compaction_ms": s.last_compaction_ms,
        "fsync_batched_writes": s.fsync_batched_writes,
        "fsync_batches": s.fsync_batches,
        "lost_reads": s.lost_reads,
        "damaged_records_dropped": s.damaged_records_dropped,
        "uncut_segments": s.uncut_segments,
        "failed_cuts": s.failed_cuts,
        "reserve_bytes": s.reserve_bytes,
        "damaged_reads": storage.damaged_reads,
    });
    if let (Some(out), serde_json::Value::Object(more)) = (v.as_object_mut(), storage.to_json()) {
        out.extend(more);
    }
    v
}

/// A `CompactionReport` as JSON.
pub fn compaction_json(r: &ttlcask_engine::CompactionReport) -> serde_json::Value {
    serde_json::json!({
        "segments_rewritten": r.segments_rewritten,
        "segments_deleted_unread": r.segments_deleted_unread,
        "bytes_reclaimed": r.bytes_reclaimed,
        "records_kept": r.records_kept,
        "records_dropped": r.records_dropped,
        "damaged_ranges": r.damaged_ranges,
        "records_lost": r.records_lost,
    })
}
