//! The single appender and group commit.
//!
//! Every write takes the writer lock, builds one frame against the current index, appends
//! it to the active segment with `pwrite`, applies it to the index, and releases the lock.
//! Under `Durability::Always` it then waits until an fsync covers its frame: the first
//! waiter becomes the leader and syncs everything appended so far, the others wait for it,
//! so concurrent writers share one fsync. A failed write or fsync poisons the store.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{ReadError, WriteError};
use crate::format::{self, EntryMeta, FrameNames, Op, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::index::{SegmentSlot, State};
use crate::options::Durability;
use crate::segment::Segment;
use crate::store::Inner;
use crate::types::{Condition, PutOptions};

/// Why a non-blocking append did not happen.
pub(crate) enum Refused<E> {
    /// It would have had to wait (busy writer, or a new segment to start).
    WouldBlock,
    /// The operation failed.
    Failed(E),
}

/// The appender's position; guarded by the writer lock.
#[derive(Debug)]
pub struct Writer {
    /// The segment being appended to.
    pub active: Arc<Segment>,
    /// Next append offset in the active segment.
    pub write_pos: u64,
    /// Id for the next segment created (active or compaction output).
    pub next_segment_id: u32,
    /// Version for the next entry.
    pub next_version: u64,
    /// Total bytes appended since open: the sequence number group commit waits on.
    pub lsn: u64,
    /// Frames (acknowledgeable writes) appended since open, for the fsync batch histogram.
    pub frames: u64,
    /// When starting a segment last failed for want of space (cleared by a success).
    pub out_of_space_at: Option<std::time::Instant>,
    /// A segment filled since the store opened: it writes steadily, so a spare is kept ready.
    pub rolled_over: bool,
    buf: Vec<u8>,
}

impl Writer {
    /// A writer appending to `active`, a fresh segment.
    pub fn new(active: Arc<Segment>, next_segment_id: u32, next_version: u64) -> Self {
        Self {
            active,
            write_pos: SEGMENT_HEADER_LEN as u64,
            next_segment_id,
            next_version,
            lsn: 0,
            frames: 0,
            out_of_space_at: None,
            rolled_over: false,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Allocates a segment id.
    ///
    /// # Errors
    /// When the ids are used up (after four billion segments).
    pub fn allocate_segment_id(&mut self) -> std::io::Result<u32> {
        let id = self.next_segment_id;
        if id >= format::SEGMENT_ID_LIMIT {
            return Err(std::io::Error::other(
                "segment ids are used up; export the data and import it into a new directory",
            ));
        }
        self.next_segment_id += 1;
        Ok(id)
    }
}

/// How long a caller that must not block waits for a lock before giving up.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_micros(100);

/// How long a store that found no space waits before trying to start a segment again, where
/// the file system cannot say how much is free.
const OUT_OF_SPACE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether a frame of `len` bytes fits in the active segment. Writes that store data leave
/// the last eighth of a segment free, so that deletes, clears and drops still have room
/// when the disk is full and no new segment can be started.
fn fits(w: &Writer, len: u64, frees: bool) -> bool {
    let capacity = w.active.capacity();
    let empty = w.write_pos <= SEGMENT_HEADER_LEN as u64;
    let limit = if frees || empty {
        capacity
    } else {
        capacity - capacity / 8
    };
    w.write_pos + len <= limit
}

/// When [`Inner::seal_segment`] cuts a sealed segment's unused tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trim {
    /// At once (closing, compaction outputs, stores without a background thread).
    Now,
    /// On the background thread ([`Inner::trim_sealed`]): a rollover's.
    Later,
}

/// Entries of a frame decoded, and their keys' index buckets prefetched, before they are
/// applied to the index (see `Inner::append`): a bulk load's batch of 10,000 new keys
/// otherwise missed the cache on each key's bucket, one after another.
const APPLY_AHEAD: usize = 16;

/// Largest frame: with the segment header before it, a frame must end at a 32-bit offset
/// (a frame larger than a segment gets a segment of its own).
const MAX_FRAME_LEN: usize = u32::MAX as usize - SEGMENT_HEADER_LEN;

/// Refuses a frame of `len` bytes that no segment could hold.
fn check_frame_len(len: usize) -> Result<(), WriteError> {
    if len > MAX_FRAME_LEN {
        return Err(WriteError::TooLarge {
            what: "write",
            size: len,
            limit: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

/// Whether every entry of a frame this process built frees space (tombstones, clears and
/// drops), read back from the frame: what the frame's builder notes as it encodes
/// ([`format::FrameNames::frees_only`]), checked against it in debug builds.
#[cfg(debug_assertions)]
fn frame_frees_space(frame: &[u8]) -> bool {
    format::own_frame_entries(format::own_frame_body(frame), format::NO_SEGMENT).all(|e| {
        e.is_ok_and(|(_, e)| {
            matches!(
                e.meta.op,
                Op::Tombstone | Op::ClearNamespace | Op::DropNamespace
            )
        })
    })
}

/// A (namespace, key) pair owned by a frame's overlays.
type NsKey = (Vec<u8>, Vec<u8>);

/// Per-frame lookups; small and short-lived, so a fixed hasher (no per-map seeding).
type Overlay<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// One frame being built by an operation, against a read view of the index.
pub struct Frame<'a> {
    state: &'a State,
    clock: &'a dyn Clock,
    /// The clock read once, when a condition first needs it.
    now: std::cell::Cell<Option<u64>>,
    horizon: u32,
    next_version: u64,
    buf: &'a mut Vec<u8>,
    /// The ids this frame gives its namespaces.
    names: FrameNames,
    /// Namespaces created, cleared or dropped by earlier entries of this frame.
    ns_overlay: Overlay<Vec<u8>, bool>,
    /// Keys written by earlier entries of this frame: Some(version) = live, None = deleted.
    key_overlay: Overlay<NsKey, Option<u64>>,
    /// Values put by earlier entries of this frame (tracked frames only), for increments.
    value_overlay: Overlay<NsKey, (Vec<u8>, PutOptions)>,
    /// Versions of the tombstones earlier entries of this frame wrote (tracked frames only).
    deleted_overlay: Overlay<NsKey, u64>,
    cleared: HashSet<Vec<u8>, foldhash::fast::FixedState>,
    /// Namespaces cleared or dropped (not just created) by earlier entries of this frame.
    wiped: HashSet<Vec<u8>, foldhash::fast::FixedState>,
    /// Whether later entries of this frame read earlier ones (batches); single operations
    /// skip the bookkeeping.
    track: bool,
}

/// Expiries are kept in whole seconds (rounded up, so never early), from 1970-01-01T00:00:01Z
/// to the year 2106; 0 on disk means "never".
pub(crate) fn stored_expiry(expires_at_ms: Option<u64>) -> u64 {
    expires_at_ms.map_or(0, |ms| {
        ms.max(1).div_ceil(1000).min(u64::from(u32::MAX)) * 1000
    })
}

impl Frame<'_> {
    fn now(&self) -> u64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.clock.now_ms();
        self.now.set(Some(now));
        now
    }

    fn push(
        &mut self,
        op: Op,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> u64 {
        let version = self.next_version;
        self.next_version += 1;
        self.push_versioned(op, namespace, key, value, options, version);
        version
    }

    fn push_versioned(
        &mut self,
        op: Op,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        version: u64,
    ) {
        let expires_at = options.expires_at_ms.or_else(|| {
            options
                .expires_in_ms
                .map(|ttl| self.now().saturating_add(ttl))
        });
        let meta = EntryMeta {
            op,
            kind: options.kind,
            horizon: self.horizon,
            version,
            expires_ms: stored_expiry(expires_at),
        };
        self.names.encode(self.buf, &meta, namespace, key, value);
    }

    /// Appends an imported put with its own `version` if the store holds nothing newer for
    /// the key; `Err(newer)` (nothing appended) otherwise. Moves the version counter past it.
    /// With `over_clears`, a clear or drop of the namespace newer than `version` does not
    /// keep the put out: it is appended with a new
    /// version instead (see [`WriteBatch::import_over_clears`]).
    ///
    /// [`WriteBatch::import_over_clears`]: crate::WriteBatch::import_over_clears
    pub fn import(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        version: u64,
        over_clears: bool,
    ) -> Result<Result<u64, u64>, WriteError> {
        if version == 0 || version > crate::types::MAX_IMPORT_VERSION {
            return Err(WriteError::ConditionFailed {
                op: 0,
                reason: format!("version {version} is out of range"),
            });
        }
        // A clear or drop forgets the records it hides, so the newest record is newer than
        // any clear.
        if let Some(newest) = self.newest_version(namespace, key) {
            if newest >= version {
                return Ok(Err(newest));
            }
        }
        let floor = if self.wiped.contains(namespace) {
            // Cleared or dropped earlier in this frame: everything older is hidden.
            self.next_version
        } else {
            self.state.floor(namespace)
        };
        let version = match (floor >= version, over_clears) {
            (false, _) => version,
            (true, false) => return Ok(Err(floor)),
            // The counter is past every version issued, the clear's among them.
            (true, true) => self.next_version,
        };
        let _ = self.ensure_namespace(namespace);
        self.push_versioned(Op::Put, namespace, key, value, options, version);
        self.next_version = self.next_version.max(version + 1);
        if self.track {
            self.remember(namespace, key, version, value, options);
        }
        Ok(Ok(version))
    }

    /// Lets later entries of a tracked frame see a put.
    fn remember(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        version: u64,
        value: &[u8],
        options: PutOptions,
    ) {
        let k = (namespace.to_vec(), key.to_vec());
        self.value_overlay
            .insert(k.clone(), (value.to_vec(), options));
        self.key_overlay.insert(k, Some(version));
    }

    fn namespace_exists(&self, namespace: &[u8]) -> bool {
        match self.ns_overlay.get(namespace) {
            Some(&exists) => exists,
            None => self.state.namespaces.contains_key(namespace),
        }
    }

    /// Makes later entries of this frame see earlier ones (needed by batches).
    pub fn track_earlier_entries(&mut self) {
        self.track = true;
    }

    /// Creates the namespace unless it exists; true if created.
    pub fn ensure_namespace(&mut self, namespace: &[u8]) -> bool {
        if self.namespace_exists(namespace) {
            return false;
        }
        self.push_create(namespace, None);
        true
    }

    /// Appends the create record of `namespace`: with `version` (an import's, moving the
    /// version counter past it) or a new one.
    fn push_create(&mut self, namespace: &[u8], version: Option<u64>) {
        let options = PutOptions::default();
        match version {
            Some(v) => {
                self.push_versioned(Op::CreateNamespace, namespace, b"", b"", options, v);
                self.next_version = self.next_version.max(v + 1);
            }
            None => {
                self.push(Op::CreateNamespace, namespace, b"", b"", options);
            }
        }
        self.ns_overlay.insert(namespace.to_vec(), true);
        self.cleared.insert(namespace.to_vec());
    }

    /// Creates the namespace for an import, with the exported creation's version `created`
    /// (0: a new one), unless it exists or was dropped (in the store, or earlier in this
    /// frame) at or above `newest`, the newest version the import brings for it; true if
    /// created. Moves the version counter past `created`.
    pub fn import_namespace(&mut self, namespace: &[u8], created: u64, newest: u64) -> bool {
        let floor = self.state.drop_floors.get(namespace).copied();
        let dropped =
            self.wiped.contains(namespace) || floor.is_some_and(|f| f >= newest.max(created));
        if dropped || self.namespace_exists(namespace) {
            return false;
        }
        // A creation at or below a drop the store holds (let in by `newest`: an import over
        // clears, as `cluster move` runs) takes a new version, as its items do: at its own,
        // the drop would hide it again at the next open. Found from outside: slots moved
        // away and back lost their empty caches.
        if !(1..=crate::types::MAX_IMPORT_VERSION).contains(&created)
            || floor.is_some_and(|f| f >= created)
        {
            return self.ensure_namespace(namespace);
        }
        self.push_create(namespace, Some(created));
        true
    }

    /// The version of the live item under `key`, seeing this frame's earlier entries.
    pub fn live_version(&self, namespace: &[u8], key: &[u8]) -> Option<u64> {
        if self.track {
            if let Some(v) = self.key_overlay.get(&(namespace.to_vec(), key.to_vec())) {
                return *v;
            }
        }
        if self.cleared.contains(namespace) {
            return None;
        }
        self.state
            .live(namespace, key, || self.now())
            .map(|e| e.version)
    }

    /// Version of the newest record of `key` this frame or the index knows, live, expired
    /// or deleted (`None` after a clear or drop: the floor speaks for those).
    fn newest_version(&self, namespace: &[u8], key: &[u8]) -> Option<u64> {
        if self.track {
            let k = (namespace.to_vec(), key.to_vec());
            if let Some(v) = self.key_overlay.get(&k) {
                return v.or_else(|| self.deleted_overlay.get(&k).copied());
            }
        }
        if self.cleared.contains(namespace) {
            return None;
        }
        self.state.namespaces.get(namespace)?.newest(key)
    }

    /// The live value and its options (kind, expiry), read from disk.
    pub fn live_value(
        &self,
        namespace: &[u8],
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, PutOptions)>, ReadError> {
        if self.track {
            // Earlier entries of this batch come first.
            let k = (namespace.to_vec(), key.to_vec());
            if let Some(v) = self.key_overlay.get(&k) {
                return Ok(v.and_then(|_| self.value_overlay.get(&k).cloned()));
            }
            if self.cleared.contains(namespace) {
                return Ok(None);
            }
        }
        let live = self.state.live(namespace, key, || self.now());
        // A newer record lost to damage is never stood in for by an older one.
        self.state
            .lost_check(namespace, key, live.map(|e| e.version))?;
        let Some(e) = live else {
            return Ok(None);
        };
        let seg = self
            .state
            .segments
            .get(&e.segment)
            .ok_or(ReadError::MissingSegment(e.segment))?;
        let corrupt = ReadError::Corrupt {
            segment: e.segment,
            offset: e.offset,
        };
        let value = seg
            .segment
            .with_entry(e.offset, e.len, |rec| {
                (rec.key == key && rec.meta.version == e.version).then(|| rec.value.to_vec())
            })
            .ok()
            .flatten()
            .ok_or(corrupt)?;
        let options = PutOptions {
            expires_at_ms: (e.expires_ms != 0).then_some(e.expires_ms),
            kind: e.kind,
            expires_in_ms: None,
        };
        Ok(Some((value, options)))
    }

    /// Appends a put (creating the namespace first if needed) and returns its version.
    ///
    /// # Errors
    /// [`WriteError::TooLarge`] when the namespace's key directory is full (8 GiB of keys).
    pub fn put(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
    ) -> Result<u64, WriteError> {
        let full = self
            .state
            .namespaces
            .get(namespace)
            .is_some_and(|ns| !ns.items.has_room(key.len()));
        if full {
            return Err(WriteError::TooLarge {
                what: "namespace key directory",
                size: key.len(),
                limit: 0,
            });
        }
        let _ = self.ensure_namespace(namespace);
        let v = self.push(Op::Put, namespace, key, value, options);
        if self.track {
            self.remember(namespace, key, v, value, options);
        }
        Ok(v)
    }

    /// Appends a put if `condition` (when given) holds for the live item; `Ok(None)` and
    /// nothing appended otherwise.
    ///
    /// # Errors
    /// As for [`Frame::put`].
    pub fn put_if(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        condition: Option<Condition>,
    ) -> Result<Option<u64>, WriteError> {
        if let Some(condition) = condition {
            let current = self.live_version(namespace, key);
            let holds = match condition {
                Condition::Absent => current.is_none(),
                Condition::Present => current.is_some(),
                Condition::VersionIs(v) => current == Some(v),
            };
            if !holds {
                return Ok(None);
            }
        }
        self.put(namespace, key, value, options).map(Some)
    }

    /// Appends a tombstone if the key is live; true if it was.
    pub fn delete(&mut self, namespace: &[u8], key: &[u8]) -> bool {
        if self.live_version(namespace, key).is_none() {
            return false;
        }
        let version = self.push(Op::Tombstone, namespace, key, b"", PutOptions::default());
        if self.track {
            let k = (namespace.to_vec(), key.to_vec());
            self.deleted_overlay.insert(k.clone(), version);
            self.key_overlay.insert(k, None);
        }
        true
    }

    /// Appends a clear if the namespace exists; true if it did.
    pub fn clear(&mut self, namespace: &[u8]) -> bool {
        if !self.namespace_exists(namespace) {
            return false;
        }
        self.push(
            Op::ClearNamespace,
            namespace,
            b"",
            b"",
            PutOptions::default(),
        );
        self.forget_keys(namespace);
        true
    }

    /// Appends a drop if the namespace exists; true if it did.
    pub fn drop_namespace(&mut self, namespace: &[u8]) -> bool {
        if !self.namespace_exists(namespace) {
            return false;
        }
        self.push(
            Op::DropNamespace,
            namespace,
            b"",
            b"",
            PutOptions::default(),
        );
        self.forget_keys(namespace);
        self.ns_overlay.insert(namespace.to_vec(), false);
        true
    }

    fn forget_keys(&mut self, namespace: &[u8]) {
        self.key_overlay.retain(|(ns, _), _| ns != namespace);
        self.value_overlay.retain(|(ns, _), _| ns != namespace);
        self.cleared.insert(namespace.to_vec());
        self.wiped.insert(namespace.to_vec());
    }
}

impl Inner {
    /// Runs `build` to fill one frame, appends it, applies it and waits for durability as
    /// the policy says. The append may be made by another writer's thread (`combine.rs`).
    pub(crate) fn commit<R: Send, E: From<WriteError> + Send>(
        &self,
        build: impl FnOnce(&mut Frame<'_>) -> Result<R, E> + Send,
    ) -> Result<R, E> {
        if self.options.read_only {
            return Err(WriteError::ReadOnly.into());
        }
        self.health.check()?;
        let mut build = Some(build);
        let mut appended = None;
        let always = self.options.durability == Durability::Always;
        let settled = self.combiner.run(
            &self.writer,
            |w| {
                let Some(build) = build.take() else {
                    return 0;
                };
                let done = self.append_frame_in(w, false, build);
                let lsn = done.as_ref().map_or(0, |(_, lsn)| *lsn);
                appended = Some(done);
                lsn
            },
            |lsn| {
                if lsn > 0 && always {
                    self.wait_durable(lsn)
                } else {
                    Ok(())
                }
            },
        );
        let (result, lsn) = match appended {
            Some(Ok(done)) => done,
            Some(Err(Refused::Failed(e))) => return Err(e),
            // A blocking append never gives up; answer as a failed write rather than panic.
            Some(Err(Refused::WouldBlock)) | None => {
                return Err(WriteError::Io("internal: a blocking write gave up".into()).into())
            }
        };
        if lsn > 0 && always {
            settled?;
        }
        Ok(result)
    }

    /// Builds and appends one frame; returns the operation's result and the append's sequence
    /// number (0 when nothing was written). `nonblocking` gives up rather than wait for a busy
    /// writer lock or start a new segment (file creation and fsyncs).
    pub(crate) fn append_frame<R, E: From<WriteError>>(
        &self,
        nonblocking: bool,
        build: impl FnOnce(&mut Frame<'_>) -> Result<R, E>,
    ) -> Result<(R, u64), Refused<E>> {
        let failed = |e: WriteError| Refused::Failed(E::from(e));
        if self.options.read_only {
            return Err(failed(WriteError::ReadOnly));
        }
        self.health.check().map_err(failed)?;
        let mut w = if nonblocking {
            self.writer
                .try_lock_for(LOCK_PATIENCE)
                .ok_or(Refused::WouldBlock)?
        } else {
            self.writer.lock()
        };
        self.append_frame_in(&mut w, nonblocking, build)
    }

    /// [`Inner::append_frame`] with the writer lock held.
    fn append_frame_in<R, E: From<WriteError>>(
        &self,
        w: &mut Writer,
        nonblocking: bool,
        build: impl FnOnce(&mut Frame<'_>) -> Result<R, E>,
    ) -> Result<(R, u64), Refused<E>> {
        let failed = |e: WriteError| Refused::Failed(E::from(e));
        self.health.check().map_err(failed)?;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        let start = format::begin_frame(&mut buf);
        let (result, next_version, frees) = {
            // A caller that must not wait (a tokio worker) gives up rather than queue behind
            // an index scan (`stats`, expired-segment removal) or a writer.
            let st = if nonblocking {
                let st = self.state.try_read_for(LOCK_PATIENCE);
                let Some(st) = st else {
                    w.buf = buf;
                    return Err(Refused::WouldBlock);
                };
                st
            } else {
                self.state.read()
            };
            let mut frame = Frame {
                state: &st,
                clock: self.clock.as_ref(),
                now: std::cell::Cell::new(None),
                horizon: w.next_segment_id - 1,
                next_version: w.next_version,
                buf: &mut buf,
                names: FrameNames::for_segment(w.active.id),
                ns_overlay: Overlay::default(),
                key_overlay: Overlay::default(),
                value_overlay: Overlay::default(),
                deleted_overlay: Overlay::default(),
                cleared: HashSet::default(),
                wiped: HashSet::default(),
                track: false,
            };
            let r = build(&mut frame);
            (r, frame.next_version, frame.names.frees_only())
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                w.buf = buf;
                return Err(Refused::Failed(e));
            }
        };
        if buf.len() == start + FRAME_HEADER_LEN {
            w.buf = buf;
            return Ok((result, 0));
        }
        format::finish_frame(&mut buf, start, self.salt);
        let index = if nonblocking {
            if !fits(w, buf.len() as u64, frees) {
                w.buf = buf;
                return Err(Refused::WouldBlock);
            }
            // Taken before any byte is written: once written, a frame must be applied.
            match self.state.try_write_for(LOCK_PATIENCE) {
                Some(st) => Some(st),
                None => {
                    w.buf = buf;
                    return Err(Refused::WouldBlock);
                }
            }
        } else {
            None
        };
        let appended = self.append(w, &buf, frees, index);
        w.buf = buf;
        appended.map_err(failed)?;
        w.next_version = next_version;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        Ok((result, w.lsn))
    }

    /// Appends a finished frame to the active segment (rolling over when full) and applies
    /// its entries to the index.
    /// `frees`: every entry of the frame frees space (it may use the reserves).
    /// `index`: the index write lock, already held (non-blocking callers, whose frame fits
    /// the active segment so that no rollover needs the lock).
    fn append(
        &self,
        w: &mut Writer,
        frame: &[u8],
        frees: bool,
        index: Option<crate::sharded::WriteGuard<'_, State>>,
    ) -> Result<(), WriteError> {
        check_frame_len(frame.len())?;
        let len = frame.len() as u64;
        #[cfg(debug_assertions)]
        assert_eq!(frees, frame_frees_space(frame));
        if index.is_none() && !fits(w, len, frees) {
            self.roll_over(w, len, frees)?;
        }
        // Under `Always` an fsync follows every write: see `write_at_unmapped`.
        let written = if self.options.durability == Durability::Always {
            w.active.write_at_unmapped(frame, w.write_pos)
        } else {
            w.active.write_at(frame, w.write_pos)
        };
        written.map_err(|e| self.fail(e))?;
        if frees && self.health.is_disk_full() {
            // A delete taken on a full disk becomes free space only through compaction: ask
            // for one now (at most once a second), not at the next interval. Only refused
            // deletes asked before, so writes stayed refused for up to 30 s after deletes
            // had gone through (found from outside).
            self.want_space();
        }
        let frame_pos = w.write_pos;
        w.write_pos += len;
        let half = w.active.capacity() / 2;
        if frame_pos < half && w.write_pos >= half && !w.rolled_over && self.durable() {
            // The background thread begins the spare now rather than at its next tick.
            self.shutdown.nudge();
        }
        w.lsn += len;
        w.frames += 1;
        self.sync.publish(w.lsn, w.frames, &w.active);
        let seg_id = w.active.id;
        let mut st = match index {
            Some(st) => st,
            None => self.state.write(),
        };
        if let Some(slot) = st.segments.get_mut(&seg_id) {
            slot.data_len = w.write_pos;
        }
        let body = format::own_frame_body(frame);
        let mut entries = format::own_frame_entries(body, seg_id);
        // A batch's entries go to the index `APPLY_AHEAD` at a time: decoded, their keys'
        // buckets prefetched, then applied, so that the buckets' cache misses overlap.
        let mut ahead = [None; APPLY_AHEAD];
        loop {
            let mut n = 0;
            for entry in entries.by_ref().take(APPLY_AHEAD) {
                let Ok(entry) = entry else {
                    // Never happens (this process encoded the frame); if it did, the index
                    // could not show what is on disk: the store stops taking writes.
                    return Err(self.fail(std::io::Error::other(
                        "a frame just written does not read back whole",
                    )));
                };
                ahead[n] = Some(entry);
                n += 1;
            }
            if n > 1 {
                for (_, e) in ahead[..n].iter().flatten() {
                    st.prefetch(e);
                }
            }
            for (off, e) in ahead[..n].iter().flatten() {
                let at = frame_pos as usize + FRAME_HEADER_LEN + off;
                st.apply(seg_id, u32::try_from(at).unwrap_or(u32::MAX), e);
            }
            if n < APPLY_AHEAD {
                return Ok(());
            }
        }
    }

    /// Asks the background thread for a compaction now (it runs one at most once a
    /// second): dead records become free space only through one.
    fn want_space(&self) {
        self.space_wanted.store(true, Ordering::Relaxed);
        self.shutdown.nudge();
    }

    fn fail(&self, e: std::io::Error) -> WriteError {
        let msg = e.to_string();
        self.health.poison(msg.clone());
        WriteError::Io(msg)
    }

    /// Starts a new segment big enough for `needed` bytes, then seals the active one and
    /// switches to it. Out of space, nothing changes: the active segment keeps taking what
    /// fits (its reserve is for writes that free space), and the write gets
    /// [`WriteError::DiskFull`] without poisoning the store; so does a directory that
    /// refuses new files, with [`WriteError::DirNotWritable`].
    fn roll_over(&self, w: &mut Writer, needed: u64, frees: bool) -> Result<(), WriteError> {
        let seg = match self.start_segment(w, needed, frees) {
            Ok(seg) => seg,
            Err(e) if crate::fs::is_out_of_space(&e) => {
                self.health.set_disk_full(true);
                // Dead records only become free space through compaction: ask for one now
                // (at most once a second), for a refused write as for a refused delete. A
                // run started by the first deletes of a burst frees little; the writes
                // refused after the rest went through waited for the 30 s run (found from
                // outside).
                self.want_space();
                return Err(WriteError::DiskFull(e.to_string()));
            }
            // Nothing was written (`Segment::create` leaves no file behind): an operator's
            // `chmod` or read-only remount is a passing state, as a full disk is, and the
            // next write that needs a segment tries again. Poisoned, the store needed a
            // restart (found from outside).
            Err(e) if crate::fs::is_denied(&e) => {
                self.health.set_dir_not_writable(Some(e.to_string()));
                return Err(WriteError::DirNotWritable(e.to_string()));
            }
            Err(e) => return Err(self.fail(e)),
        };
        w.out_of_space_at = None;
        self.health.set_disk_full(false);
        self.health.set_dir_not_writable(None);
        let seg = Arc::new(seg);
        self.seal_active(w).map_err(|e| self.fail(e))?;
        let id = seg.id;
        if self.durable() {
            self.fs.sync_dir(&self.dir).map_err(|e| self.fail(e))?;
            // Its name and header are durable: from here the seal log knows it is the one
            // appended to, and a crash that leaves it missing is damage, not a clean open.
            // (An append of its own, not one write with the seal entry above: the log takes
            // only its last entry failing its check for a torn append, and a torn write of
            // two entries can garble the first; the crash-point enumeration showed it.)
            self.seals.append_started(id);
        }
        self.state
            .write()
            .segments
            .insert(id, SegmentSlot::new(seg.clone(), SEGMENT_HEADER_LEN as u64));
        w.active = seg;
        w.write_pos = SEGMENT_HEADER_LEN as u64;
        w.rolled_over = true;
        // The background thread writes the next spare now rather than at its next tick.
        self.shutdown.nudge();
        Ok(())
    }

    /// A new segment file for at least `needed` bytes: the spare if one is ready, else a new
    /// file of the segment size, else (out of space) smaller ones down to what the write
    /// needs. A write that frees space may then take the tombstone part of the space reserve
    /// (the rest is for a compaction output: it is what turns deletes into free space).
    /// The next segment id that no file in the directory is named for: a directory or a file
    /// put there from outside (a segment restored from a backup, say) is skipped, never
    /// replaced or taken for the store's own. Found from outside: a directory at the next
    /// segment's name poisoned the store (its create failed with EEXIST), and a file there
    /// would have been replaced by the adopted spare's rename.
    pub(crate) fn free_segment_id(&self, w: &mut Writer) -> std::io::Result<u32> {
        let names = self.fs.list(&self.dir)?;
        loop {
            let id = w.allocate_segment_id()?;
            let prefix = format!("{id:010}.");
            if !names.iter().any(|n| n.starts_with(&prefix)) {
                return Ok(id);
            }
        }
    }

    fn start_segment(&self, w: &mut Writer, needed: u64, frees: bool) -> std::io::Result<Segment> {
        let floor = (SEGMENT_HEADER_LEN as u64 + needed).max(crate::options::MIN_SEGMENT_SIZE);
        let capacity = self.options.segment_size.max(floor);
        if let Some(at) = w.out_of_space_at {
            // Out of space a moment ago: ask the file system before trying again, or, where
            // it cannot tell, wait a little between attempts.
            let retry = match self.fs.free_space(&self.dir) {
                Some(free) => free >= floor,
                None => at.elapsed() >= OUT_OF_SPACE_RETRY,
            };
            if !retry && !frees {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        let id = self.free_segment_id(w)?;
        let header = self.segment_header(id, w.next_version);
        // A ready spare is adopted unless the background thread is busy writing it.
        if capacity == self.options.segment_size {
            if let Some(seg) = self.spare.adopt(header) {
                return Ok(seg);
            }
        }
        let durable = self.durable();
        let mut size = capacity;
        loop {
            match Segment::create(self.fs.as_ref(), &self.dir, header, size, durable) {
                Ok(seg) => return Ok(seg),
                Err(e) if crate::fs::is_out_of_space(&e) && size > floor => {
                    size = (size / 2).max(floor);
                }
                Err(e) => {
                    if crate::fs::is_out_of_space(&e) {
                        // Deletes, clears and drops may take the tombstone part of the
                        // reserve: a file of its own that becomes their segment, so it
                        // needs neither a new inode nor new blocks (a file system out of
                        // inodes refuses the create even with bytes free).
                        if frees {
                            if let Some(seg) = self.reserve.take_tombstones(header, floor) {
                                return Ok(seg);
                            }
                        }
                        // Only a real attempt restarts the wait: refusals in between do not.
                        w.out_of_space_at = Some(std::time::Instant::now());
                    }
                    return Err(e);
                }
            }
        }
    }

    fn seal_active(&self, w: &mut Writer) -> std::io::Result<()> {
        if w.active.capacity() == 0 {
            // The placeholder an open on a full disk left (`Segment::detached`): no file, so
            // nothing to seal. Sealed, it was logged as a segment of 72 bytes, and the next
            // open reported it missing, as if lost outside the store (found as a CI run).
            return Ok(());
        }
        let durable = self.durable();
        // A background thread cuts the sealed segment's tail later, off the writers' path.
        let trim = if self.runs_background() {
            Trim::Later
        } else {
            Trim::Now
        };
        self.seal_segment(&w.active, w.write_pos, durable, trim)?;
        if durable {
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Seals the active segment when the store closes (a new one is created on open).
    pub(crate) fn seal_active_on_close(&self) -> std::io::Result<()> {
        let w = self.writer.lock();
        if w.active.capacity() == 0 {
            // A placeholder with no file (see `seal_active`).
            return Ok(());
        }
        if w.write_pos == SEGMENT_HEADER_LEN as u64 {
            // Nothing appended since open: the segment is removed, not sealed, so that
            // opening and closing leaves no file behind (every open made one, and a store
            // opened often piled up empty segments that each open read again). No record
            // names its id: it holds none, and segments made since have higher ids. The
            // seal log, which says it was started, hears of the removal first.
            self.state.write().segments.remove(&w.active.id);
            if self.durable() {
                self.seals.append_removed(w.active.id);
            }
            return self.fs.remove(&w.active.path);
        }
        // Closing always syncs, whatever the policy: a clean close loses nothing.
        self.seal_segment(&w.active, w.write_pos, true, Trim::Now)
    }

    /// Ends appends to `segment` at `data_len`: synced first when `durable`, cut to its data,
    /// and marked sealed in the index.
    pub(crate) fn seal_segment(
        &self,
        segment: &Segment,
        data_len: u64,
        durable: bool,
        trim: Trim,
    ) -> std::io::Result<()> {
        if durable {
            segment.sync()?;
        }
        segment.set_appending(false);
        // Left uncut, a durable store's segment gets its seal frame; where that cannot be
        // written, it is cut now instead.
        let trim = if trim == Trim::Later && durable && !self.end_with_seal_frame(segment, data_len)
        {
            Trim::Now
        } else {
            trim
        };
        if trim == Trim::Now {
            segment.truncate(data_len, durable)?;
        }
        // Its data is synced: from here the seal log vouches for its length.
        let logged = durable && self.seals.append(segment.id, data_len);
        if let Some(slot) = self.state.write().segments.get_mut(&segment.id) {
            slot.logged = logged;
            slot.sealed = true;
            slot.untrimmed = trim == Trim::Later;
            slot.data_len = data_len;
        }
        Ok(())
    }

    /// Writes the seal frame ([`format::seal_frame`]) right after the `data_len` bytes of data
    /// of a sealed `segment` whose unused tail is left for later, and syncs it; false if it
    /// could not (no room, format 1, or an I/O error).
    ///
    /// Why: until the background thread cuts it, the segment ends in the zeros of its
    /// pre-allocated space, which is how recovery recognises a segment being appended to, whose
    /// last frame may be a write torn in flight: one with no intact header and trailer is cut
    /// as such, unreported. The data of this one was synced at the seal, so damage there is
    /// damage; with the seal frame after it, the scan reports it (and salvages what checks)
    /// as in any sealed segment. Written after the data's sync, so that a seal frame on disk
    /// always follows synced data (were both in one sync, a power cut could keep the seal frame
    /// and lose the data before it, which a scan would then report as damage).
    fn end_with_seal_frame(&self, segment: &Segment, data_len: u64) -> bool {
        let Some(frame) = format::seal_frame(&segment.header) else {
            return false;
        };
        if data_len + frame.len() as u64 > segment.capacity() {
            return false;
        }
        let written = segment
            .write_at(&frame, data_len)
            .and_then(|()| segment.sync())
            .is_ok();
        if written {
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        written
    }

    /// Cuts each sealed segment a rollover left at its created length to its data (see
    /// `SegmentSlot::untrimmed`); synced when the store is durable. A segment that cannot be
    /// cut stays as it is, to be tried again at the next call, and the store is not
    /// poisoned: its data was synced (if the store is durable) when it was sealed, and an
    /// uncut tail is zeros, which a reopen cuts.
    pub(crate) fn trim_sealed(&self) -> std::io::Result<()> {
        let durable = self.durable();
        let pending: Vec<(Arc<Segment>, u64)> = self
            .state
            .read()
            .segments
            .values()
            .filter(|s| s.untrimmed)
            .map(|s| (s.segment.clone(), s.data_len))
            .collect();
        for (segment, data_len) in pending {
            if let Err(e) = segment.truncate(data_len, durable) {
                self.counters.failed_cuts.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            if let Some(slot) = self.state.write().segments.get_mut(&segment.id) {
                slot.untrimmed = false;
            }
        }
        Ok(())
    }

    /// The sequence number up to which everything is known durable.
    pub(crate) fn synced_lsn(&self) -> u64 {
        self.sync.synced_lsn()
    }

    /// The sequence number of everything appended so far.
    pub(crate) fn appended_lsn(&self) -> u64 {
        self.sync.appended_lsn()
    }

    /// Returns once everything up to `lsn` is on disk (or the store is poisoned).
    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<(), WriteError> {
        self.sync.wait(lsn, &self.health, &self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_frame_ends_at_the_last_32_bit_offset() {
        let largest = u32::MAX as usize - SEGMENT_HEADER_LEN;
        assert!(check_frame_len(largest).is_ok());
        assert!(check_frame_len(1).is_ok());
        match check_frame_len(largest + 1) {
            Err(WriteError::TooLarge { what, size, limit }) => {
                assert_eq!((what, size, limit), ("write", largest + 1, largest));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The writer encodes a frame for the segment it goes into: the entries of a batch name
    /// their namespace three times, then by id, and leave out their horizon (the segment's
    /// id). Read back from the file by the scan that recovery uses.
    #[test]
    fn a_batch_is_written_with_interned_namespaces_and_implied_horizons() {
        use crate::format::NsKind;
        use crate::fs::FileSystem;
        let fs = crate::sim::SimFs::new();
        let dir = std::path::Path::new("/batch");
        let store = crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .compaction_interval(None)
            .open(dir)
            .expect("open");
        let mut batch = crate::WriteBatch::new();
        for i in 0..6u8 {
            batch.put(b"ns", &[i], b"value", PutOptions::default());
        }
        store.write_batch(batch).expect("batch");
        drop(store);
        let mut shapes = Vec::new();
        for name in fs.list(dir).expect("list") {
            if !name.ends_with(".seg") {
                continue;
            }
            let bytes = fs.read(&dir.join(&name)).expect("read");
            let header = format::decode_segment_header(&bytes).expect("header");
            let scanned = crate::scan::scan(&bytes, &header, false);
            assert!(scanned.is_clean());
            for (_, e) in scanned.records.iter().filter(|(_, e)| e.meta.op == Op::Put) {
                assert_eq!((e.namespace, e.meta.horizon), (&b"ns"[..], header.id));
                shapes.push((e.ns_kind(), e.implied_horizon));
            }
        }
        // The namespace's create entry comes first in the frame: the puts are its 2nd to
        // 7th entries.
        assert_eq!(
            shapes,
            [
                (NsKind::Define, true),
                (NsKind::Define, true),
                (NsKind::ById, true),
                (NsKind::ById, true),
                (NsKind::ById, true),
                (NsKind::ById, true),
            ]
        );
    }

    /// An increment reads the record the index names only if it is that key's indexed
    /// version: a hint that points the newest version at an older record of the same key
    /// (rewritten with a valid CRC) gets an error, never the older value plus one.
    #[test]
    fn an_increment_never_adds_to_a_record_of_another_version() {
        let fs = crate::sim::SimFs::new();
        let dir = std::path::Path::new("/writer");
        let open = || {
            crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .segment_size(4096)
                .durability(Durability::Always)
                .compaction_interval(None)
                .open(dir)
                .expect("open")
        };
        {
            let store = open();
            store
                .put(b"ns", b"n", b"1", PutOptions::default())
                .expect("put");
            store
                .put(b"ns", b"n", b"5", PutOptions::default())
                .expect("put");
        }
        crate::hint::rewrite_the_hint(&fs, dir, |entries, _| {
            let puts: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].key == b"n")
                .collect();
            assert_eq!(puts.len(), 2, "both puts of n are in the hint");
            // The newer put's offset becomes the older one's.
            entries[puts[1]].offset = entries[puts[0]].offset;
        });

        let store = open();
        assert_eq!(store.recovery_report().segments_from_hints, 1);
        assert!(
            store.get(b"ns", b"n").is_err(),
            "the record is not version 2's"
        );
        assert!(
            store
                .increment(b"ns", b"n", 1, PutOptions::default())
                .is_err(),
            "an increment must not add to the older value"
        );
    }

    /// Segment id → (file length, data length) of every sealed segment.
    fn sealed_lengths(store: &crate::Store, fs: &crate::sim::SimFs) -> Vec<(u32, u64, u64)> {
        use crate::fs::FileSystem;
        let st = store.inner().state.read();
        st.segments
            .iter()
            .filter(|(_, s)| s.sealed)
            .map(|(&id, s)| {
                let path = s.segment.path.clone();
                let len = fs.read(&path).expect("read").len() as u64;
                (id, len, s.data_len)
            })
            .collect()
    }

    /// A rollover leaves cutting the sealed segment's tail to the background thread, which
    /// does it once nudged; a reopen then finds every segment cut, with its hint.
    #[test]
    fn the_background_thread_cuts_what_a_rollover_sealed() {
        let fs = crate::sim::SimFs::new();
        let open = || {
            crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .durability(crate::Durability::Never)
                .segment_size(crate::options::MIN_SEGMENT_SIZE)
                // A background thread, and no compaction while the test runs.
                .compaction_interval(Some(std::time::Duration::from_secs(3600)))
                .open("/trim")
                .expect("open")
        };
        let store = open();
        assert!(store.inner().runs_background());
        for i in 0..60u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
                .expect("put");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let sealed = loop {
            // The flag first: a cut clears it only once the file is cut, so lengths read
            // after it are never older than it.
            let pending = store
                .inner()
                .state
                .read()
                .segments
                .values()
                .any(|s| s.untrimmed);
            let sealed = sealed_lengths(&store, &fs);
            if !pending || std::time::Instant::now() > deadline {
                break sealed;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(sealed.len() >= 3, "{sealed:?}");
        for (id, file_len, data_len) in &sealed {
            assert_eq!(file_len, data_len, "segment {id} was not cut");
        }
        drop(store);
        let store = open();
        let report = store.recovery_report();
        assert_eq!(report.segments_scanned, 0, "{report:?}");
        assert!(report.truncated.is_empty(), "{report:?}");
        for i in 0..60u32 {
            let item = store
                .get(b"ns", &i.to_le_bytes())
                .expect("get")
                .expect("item");
            assert_eq!(&item.value[..], &[7; 300]);
        }
    }

    /// A segment sealed but not yet cut gets no hint (a hint names the file's length, so a
    /// reopen would find it stale and scan the segment); once cut, it gets one.
    #[test]
    fn an_uncut_segment_waits_for_its_hint() {
        use crate::fs::FileSystem;
        let fs = crate::sim::SimFs::new();
        let store = crate::Store::builder()
            .file_system(std::sync::Arc::new(fs.clone()))
            .durability(crate::Durability::Never)
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            .compaction_interval(None)
            .open("/uncut")
            .expect("open");
        for i in 0..30u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
                .expect("put");
        }
        // Without a background thread (no timed compaction, no spares under `Never`) a
        // rollover cuts at once.
        assert!(!store.inner().runs_background());
        let sealed = sealed_lengths(&store, &fs);
        assert!(sealed.len() >= 2, "{sealed:?}");
        for (id, file_len, data_len) in &sealed {
            assert_eq!(file_len, data_len, "segment {id} was left uncut");
        }
        assert!(!store
            .inner()
            .state
            .read()
            .segments
            .values()
            .any(|s| s.untrimmed));
        // Mark one as a rollover with a background thread would have left it, its file
        // padded back to its old length.
        let (id, path, data_len) = {
            let mut st = store.inner().state.write();
            let (&id, slot) = st
                .segments
                .iter_mut()
                .find(|(_, s)| s.sealed)
                .expect("a sealed segment");
            slot.untrimmed = true;
            (id, slot.segment.path.clone(), slot.data_len)
        };
        fs.open(&path)
            .expect("open segment")
            .set_len(data_len + 512)
            .expect("pad");
        let hint = std::path::Path::new("/uncut").join(crate::segment::hint_file_name(id));
        store.inner().write_missing_hints().expect("hints");
        assert!(fs.read(&hint).is_err(), "an uncut segment got a hint");
        // A cut that fails leaves the segment uncut, for the next try, and poisons nothing.
        fs.fail_writes(Some(std::io::ErrorKind::Other));
        assert!(store.inner().trim_sealed().is_err());
        fs.fail_writes(None);
        assert!(store.inner().state.read().segments[&id].untrimmed);
        let stats = store.stats();
        assert_eq!((stats.uncut_segments, stats.failed_cuts), (1, 1));
        store
            .put(b"ns", b"after", b"ok", PutOptions::default())
            .expect("a failed cut poisons nothing");
        store.inner().trim_sealed().expect("trim");
        assert_eq!(fs.read(&path).expect("read").len() as u64, data_len);
        assert!(!store.inner().state.read().segments[&id].untrimmed);
        let stats = store.stats();
        assert_eq!((stats.uncut_segments, stats.failed_cuts), (0, 1));
        store.inner().write_missing_hints().expect("hints");
        assert!(fs.read(&hint).is_ok(), "a cut segment got no hint");
    }
    /// A durable store's segment sealed but left uncut (as a rollover leaves it for the
    /// background thread) ends its data with the seal frame. In the image a crash before the
    /// cut leaves, damage to its last data frame is salvaged and reported, as in a cut
    /// segment, never cut away as a write torn in flight; undamaged, it reopens whole.
    #[test]
    fn an_uncut_sealed_segment_ends_its_data_with_a_seal_frame() {
        use crate::fs::FileSystem;
        let fs = crate::sim::SimFs::new();
        let dir = std::path::Path::new("/sealframe");
        let open = |fs: &crate::sim::SimFs| {
            crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .durability(Durability::Always)
                // No background thread, so that nothing cuts the segment under the test.
                .spare_segments(false)
                .compaction_interval(None)
                .open(dir)
                .expect("open")
        };
        let store = open(&fs);
        assert!(!store.inner().runs_background());
        for i in 0..5u32 {
            store
                .put(
                    b"ns",
                    &i.to_le_bytes(),
                    &[i as u8; 100],
                    PutOptions::default(),
                )
                .expect("put");
        }
        let (path, data_len, last_frame) = {
            let w = store.inner().writer.lock();
            let bytes = fs.read(&w.active.path).expect("read");
            let scanned = crate::scan::scan(&bytes, &w.active.header, true);
            let (last, _) = *scanned.records.last().expect("records");
            let data_len = w.write_pos;
            store
                .inner()
                .seal_segment(&w.active, data_len, true, Trim::Later)
                .expect("seal");
            // The record's entry starts a frame header's length into its frame.
            (w.active.path.clone(), data_len, last - FRAME_HEADER_LEN)
        };
        let image = fs.crash_image_now(crate::sim::Torn::No);
        drop(store);
        let bytes = image.read(&path).expect("read");
        let seal = format::seal_frame(&format::decode_segment_header(&bytes).expect("header"))
            .expect("format 2");
        let seal_end = data_len as usize + seal.len();
        assert_eq!(&bytes[data_len as usize..seal_end], &seal[..]);
        assert!(bytes.len() > seal_end, "the segment was cut");
        assert!(bytes[seal_end..].iter().all(|&b| b == 0));

        let reopened = |image: &crate::sim::SimFs| {
            let store = open(image);
            for i in 0..5u32 {
                let item = store
                    .get(b"ns", &i.to_le_bytes())
                    .expect("get")
                    .expect("item");
                assert_eq!(&item.value[..], &[i as u8; 100]);
            }
            store.recovery_report()
        };
        let clean = image.crash_image_now(crate::sim::Torn::No);
        let report = reopened(&clean);
        assert!(report.damaged.is_empty(), "{report:?}");
        assert!(report.truncated.is_empty(), "{report:?}");
        // Cut where the data ends, before the seal frame.
        assert_eq!(clean.read(&path).expect("read").len() as u64, data_len);

        // One byte of the last frame's header: the frame is salvaged, and reported.
        let damaged = image.crash_image_now(crate::sim::Torn::No);
        let mut bytes = damaged.read(&path).expect("read");
        bytes[last_frame + 5] ^= 0x40;
        let f = damaged.open(&path).expect("open");
        f.write_at(&bytes, 0).expect("write");
        f.sync().expect("sync");
        let report = reopened(&damaged);
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(report.damaged[0].offset, last_frame as u64, "{report:?}");
        assert!(report.truncated.is_empty(), "{report:?}");

        // Its header and its trailer: nothing of the frame checks, and it is reported as
        // damage, kept byte for byte, not cut as a torn tail.
        let damaged = image.crash_image_now(crate::sim::Torn::No);
        let mut bytes = damaged.read(&path).expect("read");
        bytes[last_frame + 5] ^= 0x40;
        bytes[data_len as usize - 1] ^= 0x40;
        let f = damaged.open(&path).expect("open");
        f.write_at(&bytes, 0).expect("write");
        f.sync().expect("sync");
        let store = open(&damaged);
        let report = store.recovery_report();
        assert!(report.truncated.is_empty(), "{report:?}");
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(report.damaged[0].offset, last_frame as u64, "{report:?}");
        drop(store);
        let kept = damaged.read(&path).expect("read");
        assert_eq!(kept[..data_len as usize], bytes[..data_len as usize]);
    }
    /// The seal frame is written only where it fits before the segment's end; where it
    /// does not, the segment is cut at once instead of left for later.
    #[test]
    fn a_seal_frame_needs_room_else_the_segment_is_cut_at_once() {
        use crate::fs::FileSystem;
        for (short, fits) in [(0u64, true), (1, false), (32, false)] {
            let fs = crate::sim::SimFs::new();
            let store = crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .durability(Durability::Always)
                .spare_segments(false)
                .compaction_interval(None)
                .open("/room")
                .expect("open");
            let w = store.inner().writer.lock();
            let seal = format::seal_frame(&w.active.header).expect("format 2");
            let capacity = w.active.capacity();
            // Data ending `short` bytes too late for the seal frame to fit.
            let data_len = capacity - seal.len() as u64 + short;
            store
                .inner()
                .seal_segment(&w.active, data_len, true, Trim::Later)
                .expect("seal");
            let bytes = fs.read(&w.active.path).expect("read");
            let untrimmed = store.inner().state.read().segments[&w.active.id].untrimmed;
            if fits {
                assert_eq!(bytes.len() as u64, capacity);
                assert_eq!(&bytes[data_len as usize..], &seal[..]);
                assert!(untrimmed);
            } else {
                assert_eq!(bytes.len() as u64, data_len.min(capacity), "cut at once");
                assert!(!untrimmed, "short {short}");
            }
            drop(w);
        }
    }
    /// A clean close leaves every segment of a `never` store on disk (its rollovers synced
    /// nothing) and in the seal log: the power-cut image right after the close holds every
    /// put, and the next open finds nothing to sync.
    #[test]
    fn a_clean_close_of_a_never_store_syncs_and_logs_every_segment() {
        let fs = crate::sim::SimFs::new();
        let open = |fs: &crate::sim::SimFs| {
            crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .durability(Durability::Never)
                .segment_size(crate::options::MIN_SEGMENT_SIZE)
                .compaction_interval(None)
                .open("/never")
                .expect("open")
        };
        let store = open(&fs);
        for i in 0..60u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
                .expect("put");
        }
        assert!(store.stats().segments >= 4);
        drop(store);
        let image = fs.crash_image_now(crate::sim::Torn::No);
        let logged =
            crate::seals::read(&image, std::path::Path::new("/never")).expect("read the seal log");
        let store = open(&image);
        for i in 0..60u32 {
            let item = store.get(b"ns", &i.to_le_bytes()).expect("get");
            assert!(
                item.is_some(),
                "put {i} lost to a power cut after a clean close"
            );
        }
        let sealed = store.inner().state.read().segments.len() - 1;
        assert_eq!(
            logged.lengths.len(),
            sealed,
            "every segment in the seal log"
        );
    }
    /// A data dir from before the seal log (no `seals.log`) gets one at its next open, naming
    /// every segment with its length.
    #[test]
    fn an_open_logs_every_segment_of_a_dir_without_a_seal_log() {
        use crate::fs::FileSystem;
        let fs = crate::sim::SimFs::new();
        let dir = std::path::Path::new("/old");
        let open = || {
            crate::Store::builder()
                .file_system(std::sync::Arc::new(fs.clone()))
                .segment_size(crate::options::MIN_SEGMENT_SIZE)
                .compaction_interval(None)
                .open(dir)
                .expect("open")
        };
        let store = open();
        for i in 0..40u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 300], PutOptions::default())
                .expect("put");
        }
        drop(store);
        fs.remove(&dir.join(crate::seals::SEALS_FILE))
            .expect("remove the seal log");
        let store = open();
        let lengths: std::collections::BTreeMap<u32, u64> = store
            .inner()
            .state
            .read()
            .segments
            .iter()
            .filter(|(_, s)| s.sealed)
            .map(|(&id, s)| (id, s.data_len))
            .collect();
        assert!(lengths.len() >= 3, "{lengths:?}");
        let logged = crate::seals::read(&fs, dir).expect("read the seal log");
        let logged: std::collections::BTreeMap<u32, u64> = logged.lengths.into_iter().collect();
        assert_eq!(logged, lengths);
    }
}
