//! The single appender and group commit.
//!
//! Every write takes the writer lock, builds one frame against the current index, appends
//! it to the active segment with `pwrite`, applies it to the index, and releases the lock.
//! Under `Durability::Always` it then waits until an fsync covers its frame: the first
//! waiter becomes the leader and syncs everything appended so far, the others wait for it,
//! so concurrent writers share one fsync. A failed write or fsync poisons the store.
//! Rolling over to a new active segment, and sealing the old one, is in `rollover.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{ReadError, WriteError};
use crate::format::{self, EntryMeta, FrameNames, Op, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::index::State;
use crate::options::Durability;
use crate::segment::Segment;
use crate::signals::Io;
use crate::store::Inner;
use crate::types::{Condition, PutOptions};

mod rollover;

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
    /// The active segment refused an append for want of space, though its blocks were
    /// reserved (ext4 may, on a full disk, where writing into them needs blocks of its
    /// own): the next write starts a new segment, and this one is cut to its data when
    /// sealed (part of the refused frame may stand past it).
    pub space_refused: bool,
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
            space_refused: false,
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

/// Whether a frame of `len` bytes fits in the active segment. Writes that store data leave
/// the last eighth of a segment free, so that deletes, clears and drops still have room
/// when the disk is full and no new segment can be started.
fn fits(w: &Writer, len: u64, frees: bool) -> bool {
    if w.space_refused {
        return false;
    }
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
/// to 2106-02-07T06:28:15Z (`u32::MAX` seconds); 0 on disk means "never", and so does any
/// later expiry: one moved back to 2106 expired early (found from outside).
pub(crate) fn stored_expiry(expires_at_ms: Option<u64>) -> u64 {
    expires_at_ms.map_or(0, |ms| {
        let secs = ms.max(1).div_ceil(1000);
        if secs > u64::from(u32::MAX) {
            0
        } else {
            secs * 1000
        }
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
        if nonblocking {
            // Starting a segment creates a file and fsyncs: not on a caller that must not
            // wait. Nor is an index scan (`stats`, `keys`, expired-segment removal) to be
            // waited for: the index lock is tried, and let go at once; it is taken again once
            // the frame is written (see `append`), which a scan beginning in between makes
            // wait.
            let idle = fits(w, buf.len() as u64, frees)
                && self.state.try_write_for(LOCK_PATIENCE).is_some();
            if !idle {
                w.buf = buf;
                return Err(Refused::WouldBlock);
            }
        }
        let appended = self.append(w, &buf, frees);
        w.buf = buf;
        appended.map_err(failed)?;
        w.next_version = next_version;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        Ok((result, w.lsn))
    }

    /// Appends a finished frame to the active segment (rolling over when full) and applies
    /// its entries to the index.
    /// `frees`: every entry of the frame frees space (it may use the reserves).
    ///
    /// The index lock is taken only once the bytes are written: a write the kernel holds (a
    /// frozen file system, a stalled device) then holds the writer lock alone, and reads go
    /// on. Until it was, a non-blocking caller took the index lock first and every read
    /// waited for the stalled write (found from outside, with `fsfreeze`). The frame is
    /// applied before the writer lock is let go, so no later frame is written before it is.
    fn append(&self, w: &mut Writer, frame: &[u8], frees: bool) -> Result<(), WriteError> {
        check_frame_len(frame.len())?;
        let len = frame.len() as u64;
        #[cfg(debug_assertions)]
        assert_eq!(frees, frame_frees_space(frame));
        // Tagged by where it starts in the log: every append starts further on.
        let waiting = self.health.begin_io(Io::Append, w.lsn);
        if !fits(w, len, frees) {
            self.roll_over(w, len, frees)?;
        }
        // Under `Always` an fsync follows every write: see `write_at_unmapped`.
        let written = if self.options.durability == Durability::Always {
            w.active.write_at_unmapped(frame, w.write_pos)
        } else {
            w.active.write_at(frame, w.write_pos)
        };
        drop(waiting);
        if let Err(e) = written {
            if crate::fs::is_out_of_space(&e) {
                // A full disk, not a failing one: the write is refused and nothing of it
                // counts (the index never heard of it; the next frame, in a new segment,
                // never follows its bytes), and the store goes on (found from outside: a
                // full ext4 refused an append into reserved blocks, and the store was
                // poisoned until a restart).
                w.space_refused = true;
                self.health.set_disk_full(true);
                self.want_space();
                return Err(WriteError::DiskFull(e.to_string()));
            }
            return Err(self.fail(e));
        }
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
        self.sync
            .publish(w.lsn, w.frames, &w.active, frame_pos, len);
        let seg_id = w.active.id;
        let mut st = self.state.write();
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

    /// The sequence number up to which everything is known durable.
    pub(crate) fn synced_lsn(&self) -> u64 {
        self.sync.synced_lsn()
    }

    /// The sequence number of everything appended so far.
    pub(crate) fn appended_lsn(&self) -> u64 {
        self.sync.appended_lsn()
    }

    /// Returns once everything up to `lsn` is on disk (or the store is poisoned: then the
    /// first to learn of it logs where the writes left in doubt begin).
    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<(), WriteError> {
        self.sync
            .wait(lsn, &self.health, &self.counters)
            .inspect_err(|_| self.log_doubt())
    }
}

#[cfg(test)]
mod tests;
