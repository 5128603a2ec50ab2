//! The small parts of a store that other parts only signal through: whether it takes writes
//! ([`HealthState`]), when its background thread stops ([`Shutdown`]) and the callbacks of
//! deferred writes its sync thread answers ([`DurableQueue`]). Each owns its state, behind
//! its own lock, and depends on nothing else of the store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::WriteError;
use crate::store::Health;

/// Whether the store takes writes: poisoned by a failed write or fsync (until reopened), and
/// whether the last attempt to start a segment found the disk full or the directory closed
/// to new files.
#[derive(Debug, Default)]
pub(crate) struct HealthState {
    poisoned: AtomicBool,
    /// Why it was poisoned: the first reason only.
    reason: Mutex<String>,
    disk_full: AtomicBool,
    /// Why the last attempt to start a segment was refused for a passing reason (the
    /// directory, or no file descriptor left), if it was.
    segment_refused: Mutex<Option<(Refused, String)>>,
    /// The append and the group-commit fsync in progress, each by a tag no other of its
    /// kind has (0: none in progress): see [`HealthState::disk_wait`].
    io_in_progress: [AtomicU64; 2],
    /// The tag [`HealthState::disk_wait`] last found in each slot, and when it first did.
    io_seen: Mutex<[Option<(u64, Instant)>; 2]>,
}

/// What refused the last attempt to start a segment, for a passing reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The directory refused new files (permission denied, a read-only file system).
    Dir,
    /// The process had no file descriptor left (EMFILE, ENFILE).
    Descriptors,
}

/// Which disk wait of the store [`HealthState::begin_io`] times: the two that acknowledged
/// writes wait for, each made by one thread at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Io {
    /// An append (its `pwrite`, or a new segment's start) under the writer lock.
    Append = 0,
    /// The fsync that group commit's leader makes.
    Sync = 1,
}

/// How long a disk wait must last before [`Health::disk_waiting_ms`] reports it: longer than
/// any fsync of a working disk (tens of milliseconds), well under what a client waits.
pub const DISK_WAIT_REPORTED: Duration = Duration::from_secs(1);

/// Ends the disk wait [`HealthState::begin_io`] began, when dropped.
pub(crate) struct IoWait<'a>(&'a AtomicU64);

impl Drop for IoWait<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
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

    pub(crate) fn is_disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    /// Sets (or with `None` clears) what refused the last new segment, and why.
    pub(crate) fn set_segment_refused(&self, refused: Option<(Refused, String)>) {
        *self.segment_refused.lock() = refused;
    }

    /// Marks a disk wait of kind `io` as begun, until the returned guard is dropped: one
    /// that lasts (a frozen file system, a stalled device) is reported by
    /// [`HealthState::disk_wait`], as nothing else tells of it (writes just wait). `tag`
    /// must differ from the last one of its kind (an append's offset in the log, a sync's
    /// number; 0 is taken as 1). One store, no clock read on the write path.
    pub(crate) fn begin_io(&self, io: Io, tag: u64) -> IoWait<'_> {
        let slot = &self.io_in_progress[io as usize];
        slot.store(tag.max(1), Ordering::Relaxed);
        IoWait(slot)
    }

    /// How long the oldest disk wait in progress has lasted, if one is: counted from the
    /// first call that found it, so short by up to the time between calls (the server's
    /// stall watch calls every 50 ms; a wait no call found before is 0).
    pub(crate) fn disk_wait(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut seen = self.io_seen.lock();
        let mut longest = None;
        for (slot, seen) in self.io_in_progress.iter().zip(seen.iter_mut()) {
            let tag = slot.load(Ordering::Relaxed);
            if tag == 0 {
                *seen = None;
                continue;
            }
            let since = match *seen {
                Some((t, at)) if t == tag => at,
                _ => {
                    *seen = Some((tag, now));
                    now
                }
            };
            longest = longest.max(Some(now.saturating_duration_since(since)));
        }
        longest
    }

    fn segment_refused(&self, by: Refused) -> Option<String> {
        match &*self.segment_refused.lock() {
            Some((refused, why)) if *refused == by => Some(why.clone()),
            _ => None,
        }
    }

    pub(crate) fn snapshot(&self) -> Health {
        Health {
            poisoned: self.poisoned(),
            disk_full: self.disk_full.load(Ordering::SeqCst),
            dir_not_writable: self.segment_refused(Refused::Dir),
            out_of_descriptors: self.segment_refused(Refused::Descriptors),
            disk_waiting_ms: self
                .disk_wait()
                .filter(|&d| d >= DISK_WAIT_REPORTED)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
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
    waiting: Mutex<Waiting>,
    wake: Condvar,
    closing: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    callbacks: Vec<(u64, DurableCallback)>,
    /// How many callbacks the sync thread is gathering for (0: it is not): the push that
    /// brings the queue to it wakes the thread.
    wanted: usize,
}

impl std::fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableQueue")
            .field("waiting", &self.waiting.lock().callbacks.len())
            .finish_non_exhaustive()
    }
}

impl DurableQueue {
    pub(crate) fn push(&self, lsn: u64, then: DurableCallback) {
        let mut queue = self.waiting.lock();
        queue.callbacks.push((lsn, then));
        let len = queue.callbacks.len();
        // Only the pushes the sync thread waits for wake it: the first (it may be asleep on
        // an empty queue) and the one that completes the batch it gathers.
        if len == 1 || len == queue.wanted {
            self.wake.notify_one();
        }
    }

    /// Every callback waiting, once there is one; `None` once the queue is closed and empty.
    /// While fewer than `gather` wait, it waits up to `linger` more for the rest to come.
    pub(crate) fn take(
        &self,
        gather: usize,
        linger: Duration,
    ) -> Option<Vec<(u64, DurableCallback)>> {
        let mut queue = self.waiting.lock();
        while queue.callbacks.is_empty() && !self.closing.load(Ordering::SeqCst) {
            self.wake.wait(&mut queue);
        }
        if queue.callbacks.len() < gather {
            queue.wanted = gather;
            let deadline = Instant::now() + linger;
            while queue.callbacks.len() < gather && !self.closing.load(Ordering::SeqCst) {
                if self.wake.wait_until(&mut queue, deadline).timed_out() {
                    break;
                }
            }
            queue.wanted = 0;
        }
        (!queue.callbacks.is_empty()).then(|| std::mem::take(&mut queue.callbacks))
    }

    /// Lets `take` return `None` once the queue is empty.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // Under the lock: a `take` between its check and its wait would miss the wake-up.
        let _queue = self.waiting.lock();
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    /// A wait is timed from the first look that found it, and a later write in the same
    /// slot (another tag) is a new wait, even where no look saw the slot empty between.
    #[test]
    fn each_disk_wait_is_timed_on_its_own() {
        let health = HealthState::default();
        assert_eq!(health.disk_wait(), None);
        let first = health.begin_io(Io::Append, 7);
        assert_eq!(health.disk_wait(), Some(Duration::ZERO), "first found now");
        std::thread::sleep(Duration::from_millis(60));
        assert!(health.disk_wait() >= Some(Duration::from_millis(60)));
        drop(first);
        let _second = health.begin_io(Io::Append, 8);
        assert!(
            health.disk_wait() < Some(Duration::from_millis(60)),
            "the next write is not the first one's wait: {:?}",
            health.disk_wait()
        );
        let _sync = health.begin_io(Io::Sync, 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            health.disk_wait() >= Some(Duration::from_millis(20)),
            "the longest"
        );
    }

    fn push(queue: &DurableQueue, lsn: u64) {
        queue.push(lsn, Box::new(|_| {}));
    }

    /// Runs `take(gather, linger)` on a thread; its batch's sequence numbers arrive on the
    /// returned channel (an empty list for `None`).
    fn take_on_thread(
        queue: &Arc<DurableQueue>,
        gather: usize,
        linger: Duration,
    ) -> mpsc::Receiver<Vec<u64>> {
        let (tx, rx) = mpsc::channel();
        let queue = queue.clone();
        std::thread::spawn(move || {
            let batch = queue.take(gather, linger).unwrap_or_default();
            let _ = tx.send(batch.into_iter().map(|(lsn, _)| lsn).collect());
        });
        rx
    }

    /// Long enough that a test never waits it out: reaching it is the failure.
    const NEVER: Duration = Duration::from_secs(3600);
    /// How long a test waits for a take that should have returned.
    const PATIENCE: Duration = Duration::from_secs(30);

    #[test]
    fn a_gathering_take_returns_once_the_batch_is_complete_not_at_its_deadline() {
        let queue = Arc::new(DurableQueue::default());
        push(&queue, 1);
        let taken = take_on_thread(&queue, 3, NEVER);
        // Not before the third write: the take is still gathering.
        push(&queue, 2);
        assert!(taken.recv_timeout(Duration::from_millis(50)).is_err());
        push(&queue, 3);
        let batch = taken
            .recv_timeout(PATIENCE)
            .expect("the third push ends the wait");
        assert_eq!(batch, vec![1, 2, 3]);
    }

    #[test]
    fn a_gathering_take_gives_up_after_its_linger_with_what_came() {
        let queue = Arc::new(DurableQueue::default());
        push(&queue, 7);
        push(&queue, 8);
        let taken = take_on_thread(&queue, 5, Duration::from_millis(20));
        let batch = taken
            .recv_timeout(PATIENCE)
            .expect("the linger ends the wait");
        assert_eq!(batch, vec![7, 8]);
        // The next push starts a new batch, and a take without gathering returns at once.
        push(&queue, 9);
        let batch = take_on_thread(&queue, 0, NEVER)
            .recv_timeout(PATIENCE)
            .expect("the take returned");
        assert_eq!(batch, vec![9]);
    }

    #[test]
    fn closing_ends_a_gathering_take_and_an_empty_one() {
        let queue = Arc::new(DurableQueue::default());
        push(&queue, 4);
        let gathering = take_on_thread(&queue, 10, NEVER);
        std::thread::sleep(Duration::from_millis(20));
        queue.close();
        assert_eq!(
            gathering.recv_timeout(PATIENCE).expect("the take returned"),
            vec![4]
        );
        let empty = take_on_thread(&queue, 10, NEVER);
        assert_eq!(
            empty.recv_timeout(PATIENCE).expect("the take returned"),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn a_take_sleeps_until_the_first_write() {
        let queue = Arc::new(DurableQueue::default());
        let taken = take_on_thread(&queue, 0, NEVER);
        assert!(taken.recv_timeout(Duration::from_millis(50)).is_err());
        push(&queue, 5);
        assert_eq!(
            taken.recv_timeout(PATIENCE).expect("the take returned"),
            vec![5]
        );
    }
}
