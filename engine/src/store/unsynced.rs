//! Writes a failed sync left in doubt. Under `Durability::Always` a write is applied to the
//! index when appended and acknowledged once an fsync covers it, so a read may see it
//! before. When that fsync fails, the store is poisoned and the write refused, yet its
//! value stayed readable, and after a restart the older value came back (found from
//! outside: a PUT answered 500 was read back as stored, then rolled back; a DELETE
//! answered 500 read as gone, then came back). Once poisoned, a read of a key (or of a
//! namespace cleared or dropped) that a frame no sync covered touched answers
//! [`ReadError::Unsynced`] until the store is reopened, which reads what the disk kept.
//!
//! And the seal log hears where those frames begin ([`Inner::log_doubt`]): none of them was
//! acknowledged, so the next open drops them rather than take a failed write-back in their
//! midst for damage, which made a key read as lost instead of its acknowledged value.

use std::collections::HashSet;

use crate::error::ReadError;
use crate::format::{self, Op};
use crate::store::Inner;

/// The keys and namespaces the frames no sync covered touched (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Unsynced {
    keys: HashSet<(Vec<u8>, Vec<u8>)>,
    namespaces: HashSet<Vec<u8>>,
}

impl Inner {
    /// `Err(ReadError::Unsynced)` when the store is poisoned under `Durability::Always` and
    /// a frame no sync covered touched `key` of `namespace` (or the whole namespace). One
    /// atomic load otherwise.
    pub(crate) fn unsynced_check(&self, namespace: &[u8], key: &[u8]) -> Result<(), ReadError> {
        if !self.health.is_poisoned() {
            return Ok(());
        }
        let unsynced = self.unsynced_now();
        if unsynced.namespaces.contains(namespace)
            || unsynced.keys.contains(&(namespace.to_vec(), key.to_vec()))
        {
            return Err(ReadError::Unsynced);
        }
        Ok(())
    }

    /// Logs, once, where in the active segment the frames no sync covered begin
    /// (`seals::IN_DOUBT`), for the next open to drop them. Called when a wait for a sync
    /// finds the store poisoned (from then on none of them is acknowledged), and while the
    /// log has not taken it, at every background tick and at the close: a disk that failed
    /// every write for a moment failed the log's append too, and after the disk came back
    /// and a clean restart a key read as lost, not as its acknowledged value (found from
    /// outside).
    pub(crate) fn log_doubt(&self) {
        if let Some((segment, from)) = self.sync.doubt_to_log() {
            // An embedder's file system may panic (as a sync that panics poisons the store,
            // see `GroupCommit::wait`); this runs at the close too, in `Drop`.
            let logged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.seals.append_in_doubt(segment, from, &self.health)
            }))
            .unwrap_or(false);
            if logged {
                self.sync.doubt_logged();
            }
        }
    }

    /// What the frames of the active segment no sync covered touched (group commit keeps
    /// where they are: tracked under `Always` only), decoded again whenever those frames
    /// changed: decoded once, at the first read after the failed sync, it missed a write
    /// appended (and readable) after that read, which was refused all the same, and its
    /// refused value was read back (found from outside, about 1 trial in 20). Compared by
    /// the frames themselves, not their count: a sync in flight may drain some as an
    /// append adds as many.
    fn unsynced_now(&self) -> std::sync::Arc<Unsynced> {
        let Some((segment, frames)) = self.sync.unsynced() else {
            return std::sync::Arc::default();
        };
        let mut cached = self.unsynced.lock();
        if let Some((covered, unsynced)) = cached.as_ref() {
            if *covered == frames {
                return unsynced.clone();
            }
        }
        let unsynced = std::sync::Arc::new(decode(&segment, &frames));
        *cached = Some((frames, unsynced.clone()));
        unsynced
    }
}

/// What `frames` (place and length) of `segment` touched.
fn decode(segment: &crate::segment::Segment, frames: &[(u64, u64)]) -> Unsynced {
    let mut unsynced = Unsynced::default();
    let bytes = segment.bytes();
    for &(pos, len) in frames {
        let Some(frame) = usize::try_from(pos)
            .ok()
            .zip(usize::try_from(pos + len).ok())
            .and_then(|(start, end)| bytes.get(start..end))
        else {
            continue;
        };
        let body = format::own_frame_body(frame);
        for (_, entry) in format::own_frame_entries(body, segment.id).flatten() {
            match entry.meta.op {
                Op::Put | Op::Tombstone => {
                    unsynced
                        .keys
                        .insert((entry.namespace.to_vec(), entry.key.to_vec()));
                }
                Op::CreateNamespace | Op::ClearNamespace | Op::DropNamespace => {
                    unsynced.namespaces.insert(entry.namespace.to_vec());
                }
            }
        }
    }
    unsynced
}
