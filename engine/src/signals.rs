//! The small parts of a store that other parts only signal through: whether it takes writes
//! ([`HealthState`]), when its background thread stops ([`Shutdown`]) and the callbacks of
//! deferred writes its sync thread answers ([`DurableQueue`]). Each owns its state, behind
//! its own lock, and depends on nothing else of the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::WriteError;
use crate::store::Health;

/// Whether the store takes writes: poisoned by a failed write or fsync (until reopened), and
/// whether the last attempt to start a segment found the disk full.
#[derive(Debug, Default)]
pub(crate) struct HealthState {
    poisoned: AtomicBool,
    /// Why it was poisoned: the first reason only.
    reason: Mutex<String>,
    disk_full: AtomicBool,
}

impl HealthState {
    /// Refuses every write from now on, for `reason` (kept only if it is the first).
    pub(crate) fn poison(&self, reason: String) {
        let mut r = self.reason.lock();
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            *r = reason;
        }
    }

    /// The poison's reason, if the store is poisoned.
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.is_poisoned().then(|| self.reason.lock().clone())
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// `Err(Poisoned)` once poisoned.
    pub(crate) fn check(&self) -> Result<(), WriteError> {
        match self.poisoned() {
            Some(reason) => Err(WriteError::Poisoned(reason)),
            None => Ok(()),
        }
    }

    pub(crate) fn set_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::SeqCst);
    }

    pub(crate) fn snapshot(&self) -> Health {
        Health {
            poisoned: self.poisoned(),
            disk_full: self.disk_full.load(Ordering::SeqCst),
        }
    }
}

/// Tells the background thread to stop, and wakes it from its sleep between ticks (to stop,
/// or because the writer wants a spare segment now).
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    state: Mutex<Wakes>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Wakes {
    stop: bool,
    nudged: bool,
}

impl Shutdown {
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_all();
    }

    /// Ends the background thread's current sleep early (it then looks for work).
    pub(crate) fn nudge(&self) {
        self.state.lock().nudged = true;
        self.wake.notify_all();
    }

    /// Whether the store is stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.state.lock().stop
    }

    /// Sleeps up to `tick`, or until stopped or nudged; says which.
    pub(crate) fn sleep(&self, tick: Duration) -> Woken {
        let mut s = self.state.lock();
        if !s.stop && !s.nudged {
            self.wake.wait_for(&mut s, tick);
        }
        Woken {
            stopping: s.stop,
            nudged: std::mem::take(&mut s.nudged),
        }
    }
}

/// Why [`Shutdown::sleep`] returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Woken {
    /// The store is stopping.
    pub stopping: bool,
    /// Someone nudged the thread since it last slept.
    pub nudged: bool,
}

/// What a deferred write runs once it is durable (or the store failed to make it so).
pub(crate) type DurableCallback = Box<dyn FnOnce(Result<(), WriteError>) + Send>;

/// Callbacks of deferred writes waiting for an fsync, with the sequence number each needs.
#[derive(Default)]
pub(crate) struct DurableQueue {
    waiting: Mutex<Vec<(u64, DurableCallback)>>,
    wake: Condvar,
    closing: AtomicBool,
}

impl std::fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableQueue")
            .field("waiting", &self.waiting.lock().len())
            .finish_non_exhaustive()
    }
}

impl DurableQueue {
    pub(crate) fn push(&self, lsn: u64, then: DurableCallback) {
        self.waiting.lock().push((lsn, then));
        self.wake.notify_one();
    }

    /// Every callback waiting, once there is one; `None` once the queue is closed and empty.
    pub(crate) fn take(&self) -> Option<Vec<(u64, DurableCallback)>> {
        let mut queue = self.waiting.lock();
        while queue.is_empty() && !self.closing.load(Ordering::SeqCst) {
            self.wake.wait(&mut queue);
        }
        (!queue.is_empty()).then(|| std::mem::take(&mut *queue))
    }

    /// Lets `take` return `None` once the queue is empty.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // Under the lock: a `take` between its check and its wait would miss the wake-up.
        let _queue = self.waiting.lock();
        self.wake.notify_all();
    }
}
