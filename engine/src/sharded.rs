//! A reader-writer lock whose readers do not share a lock word: a reader takes the shard of
//! the CPU it runs on, a writer takes every shard. Two readers on two cores then never
//! write the same cache line, where one `RwLock` had both cores bounce its word on every
//! read (the store's index lock: reads scaled 1.7× from one thread to two, against LMDB's
//! 2.1×). Writers pay a lock per shard; shards are as many as the CPUs, up to
//! [`MAX_SHARDS`].

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::lock_api::{RawRwLock as _, RawRwLockTimed as _};
use parking_lot::RawRwLock;

/// Most shards a lock has (a writer takes each).
pub const MAX_SHARDS: usize = 8;

/// One shard, alone on its cache line(s).
#[repr(align(128))]
struct Shard(RawRwLock);

/// See the module documentation.
pub struct ShardedRwLock<T> {
    shards: Box<[Shard]>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` only under a shared shard lock and `&mut T` only under every
// shard's exclusive lock, as `RwLock<T>` does.
#[expect(unsafe_code, reason = "a lock's Send/Sync, as std's RwLock has them")]
unsafe impl<T: Send> Send for ShardedRwLock<T> {}
// SAFETY: as above; readers on several threads share `&T`, so `T: Sync` too.
#[expect(unsafe_code, reason = "a lock's Send/Sync, as std's RwLock has them")]
unsafe impl<T: Send + Sync> Sync for ShardedRwLock<T> {}

impl<T: Default> Default for ShardedRwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ShardedRwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedRwLock")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// The shard of the CPU this thread runs on (of one numbered per thread where the CPU is not
/// known). A thread that moves to another CPU while it holds a shard releases the one it took.
fn shard_of_this_thread(shards: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        #[expect(unsafe_code, reason = "sched_getcpu has no safe wrapper in std")]
        // SAFETY: a plain call that reads no memory of ours.
        let cpu = unsafe { libc::sched_getcpu() };
        if let Ok(cpu) = usize::try_from(cpu) {
            return cpu % shards;
        }
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| n % shards)
}

impl<T> ShardedRwLock<T> {
    /// A lock around `data` with a shard per CPU (at most [`MAX_SHARDS`]).
    pub fn new(data: T) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_shards(data, cpus.clamp(1, MAX_SHARDS))
    }

    /// A lock around `data` with `shards` shards (at least one).
    pub fn with_shards(data: T, shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard(RawRwLock::INIT)).collect(),
            data: UnsafeCell::new(data),
        }
    }

    /// Shared access, waiting for a writer.
    pub fn read(&self) -> ReadGuard<'_, T> {
        let shard = shard_of_this_thread(self.shards.len());
        let lock = &self.shards[shard].0;
        if !lock.try_lock_shared() && !spin_for_shared(lock, READ_SPIN) {
            lock.lock_shared();
        }
        ReadGuard {
            lock: self,
            shard,
            not_send: PhantomData,
        }
    }

    /// Shared access if no writer holds the lock, or it lets go within `patience`, spun out:
    /// the caller never sleeps (an async task on a runtime's worker can call it).
    pub fn try_read_spinning(&self, patience: Duration) -> Option<ReadGuard<'_, T>> {
        let shard = shard_of_this_thread(self.shards.len());
        let lock = &self.shards[shard].0;
        // `then`, not `then_some`: a guard made for a failed try would release, when
        // dropped, a shard it never took.
        (lock.try_lock_shared() || spin_for_shared(lock, patience)).then(|| ReadGuard {
            lock: self,
            shard,
            not_send: PhantomData,
        })
    }

    /// Shared access if no writer holds the lock within `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<ReadGuard<'_, T>> {
        let shard = shard_of_this_thread(self.shards.len());
        self.shards[shard]
            .0
            .try_lock_shared_for(timeout)
            .then(|| ReadGuard {
                lock: self,
                shard,
                not_send: PhantomData,
            })
    }

    /// Exclusive access: every shard, in order (so writers never deadlock one another).
    pub fn write(&self) -> WriteGuard<'_, T> {
        for shard in self.shards.iter() {
            shard.0.lock_exclusive();
        }
        WriteGuard {
            lock: self,
            not_send: PhantomData,
        }
    }

    /// Exclusive access if every shard can be taken within `timeout`; none is kept otherwise.
    pub fn try_write_for(&self, timeout: Duration) -> Option<WriteGuard<'_, T>> {
        let deadline = Instant::now() + timeout;
        for (i, shard) in self.shards.iter().enumerate() {
            if !shard.0.try_lock_exclusive_until(deadline) {
                for taken in &self.shards[..i] {
                    // SAFETY: this call took these shards exclusively just above.
                    #[expect(unsafe_code, reason = "releasing a raw lock this call took")]
                    unsafe {
                        taken.0.unlock_exclusive();
                    }
                }
                return None;
            }
        }
        Some(WriteGuard {
            lock: self,
            not_send: PhantomData,
        })
    }
}

/// How long a reader spins for a writer before it sleeps. Writers hold the lock for an index
/// update, a microsecond or two; a reader that slept instead left its core idle, and on a
/// virtual machine waking an idle core took tens of microseconds (the reader lost a third of
/// its reads while 5,000 durable writes a second arrived).
const READ_SPIN: Duration = Duration::from_micros(50);

/// Tries `lock` shared again, spinning between tries, until `patience` has passed (with no
/// patience, not at all); true once taken.
fn spin_for_shared(lock: &RawRwLock, patience: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < patience {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if lock.try_lock_shared() {
            return true;
        }
    }
    false
}

/// Shared access to a [`ShardedRwLock`]'s data; releases its shard when dropped.
pub struct ReadGuard<'a, T> {
    lock: &'a ShardedRwLock<T>,
    shard: usize,
    /// Released by the thread that took it, as `parking_lot`'s guards are.
    not_send: PhantomData<*const ()>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a shared lock on a shard is held, so no writer (which holds every shard)
        // has `&mut T`.
        #[expect(unsafe_code, reason = "the data of a lock held shared")]
        unsafe {
            &*self.lock.data.get()
        }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took this shard shared and releases it once.
        #[expect(unsafe_code, reason = "releasing the raw lock this guard holds")]
        unsafe {
            self.lock.shards[self.shard].0.unlock_shared();
        }
    }
}

/// Exclusive access to a [`ShardedRwLock`]'s data; releases every shard when dropped.
pub struct WriteGuard<'a, T> {
    lock: &'a ShardedRwLock<T>,
    /// Released by the thread that took it, as `parking_lot`'s guards are.
    not_send: PhantomData<*const ()>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: every shard is held exclusively: no other guard exists.
        #[expect(unsafe_code, reason = "the data of a lock held exclusively")]
        unsafe {
            &*self.lock.data.get()
        }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: every shard is held exclusively: no other guard exists.
        #[expect(unsafe_code, reason = "the data of a lock held exclusively")]
        unsafe {
            &mut *self.lock.data.get()
        }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        for shard in self.lock.shards.iter().rev() {
            // SAFETY: this guard took every shard exclusively and releases each once.
            #[expect(unsafe_code, reason = "releasing the raw locks this guard holds")]
            unsafe {
                shard.0.unlock_exclusive();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Writers on several threads never lose an increment, and readers on several threads
    /// never see a write half done (two fields a writer changes together stay equal).
    #[test]
    fn readers_never_see_half_a_write_and_writers_exclude_one_another() {
        for shards in [1, 2, 3, MAX_SHARDS] {
            let lock = ShardedRwLock::with_shards((0u64, 0u64), shards);
            let stop = AtomicBool::new(false);
            /// Stops the readers however the scope ends, so that a failing writer fails the
            /// test instead of hanging it.
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            std::thread::scope(|s| {
                let _stop = StopOnDrop(&stop);
                for _ in 0..3 {
                    s.spawn(|| {
                        while !stop.load(Ordering::Relaxed) {
                            let g = lock.read();
                            assert_eq!(g.0, g.1, "a write seen half done");
                        }
                    });
                }
                let writers: Vec<_> = (0..3)
                    .map(|i| {
                        let lock = &lock;
                        s.spawn(move || {
                            for n in 0..2000 {
                                let mut g = if n % 2 == 0 {
                                    lock.write()
                                } else {
                                    lock.try_write_for(Duration::from_secs(10))
                                        .expect("the lock within 10 s")
                                };
                                g.0 += 1;
                                std::hint::black_box(i);
                                g.1 += 1;
                            }
                        })
                    })
                    .collect();
                for w in writers {
                    w.join().expect("writer");
                }
            });
            assert_eq!(*lock.read(), (6000, 6000), "{shards} shards");
        }
    }

    /// Starts `read` on another thread while this one holds the write lock, writes the two
    /// fields `hold` apart, lets go, and returns what the reader saw.
    fn read_across_a_write<R: Send>(
        lock: &ShardedRwLock<(u64, u64)>,
        hold: Duration,
        read: impl FnOnce(&ShardedRwLock<(u64, u64)>) -> R + Send,
    ) -> R {
        let started = AtomicBool::new(false);
        std::thread::scope(|s| {
            let mut w = lock.write();
            let reader = s.spawn(|| {
                started.store(true, Ordering::SeqCst);
                read(lock)
            });
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let next = w.0 + 1;
            w.0 = next;
            std::thread::sleep(hold);
            w.1 = next;
            drop(w);
            reader.join().expect("reader")
        })
    }

    /// A reader kept out by a writer, past its spin and within it, gets in only once the
    /// writer is done, and sees the whole write.
    #[test]
    fn a_reader_waits_for_the_writer_whether_it_spins_or_sleeps() {
        for hold in [READ_SPIN * 100, READ_SPIN / 5] {
            let lock = ShardedRwLock::with_shards((0u64, 0u64), 2);
            let seen = read_across_a_write(&lock, hold, |l| *l.read());
            assert_eq!(seen, (1, 1), "held {hold:?}");
        }
    }

    /// `try_read_spinning` gives up when a writer holds the lock past its patience, taking
    /// nothing (a writer gets in at once after), and gets in when the writer lets go within
    /// it, seeing the whole write.
    #[test]
    fn a_spinning_try_gives_up_after_its_patience_and_gets_in_within_it() {
        let lock = ShardedRwLock::with_shards((0u64, 0u64), 2);
        {
            let _w = lock.write();
            std::thread::scope(|s| {
                s.spawn(|| assert!(lock.try_read_spinning(Duration::from_millis(2)).is_none()));
            });
        }
        *lock.write() = (1, 1);
        let seen = read_across_a_write(&lock, Duration::from_millis(5), |l| {
            l.try_read_spinning(Duration::from_secs(30)).map(|g| *g)
        });
        assert_eq!(seen, Some((2, 2)));
        assert_eq!(*lock.read(), (2, 2));
    }

    /// A writer excludes readers on every shard, and a reader excludes writers: the timed
    /// forms give up rather than wait past their timeout, and take nothing when they do.
    #[test]
    fn timed_forms_give_up_and_keep_nothing() {
        let lock = ShardedRwLock::with_shards(7, 4);
        {
            let _w = lock.write();
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(lock.try_read_spinning(Duration::ZERO).is_none());
                    assert!(lock.try_read_for(Duration::from_millis(5)).is_none());
                });
            });
        }
        {
            let _r = lock.read();
            assert!(lock.try_write_for(Duration::from_millis(5)).is_none());
            // The shards taken before the one that timed out were given back: other
            // readers still get in.
            std::thread::scope(|s| {
                s.spawn(|| assert!(lock.try_read_for(Duration::from_millis(50)).is_some()));
            });
        }
        *lock.write() += 1;
        assert_eq!(*lock.read(), 8);
        // Free, every form gets in.
        assert_eq!(lock.try_read_spinning(Duration::ZERO).as_deref(), Some(&8));
        assert_eq!(
            lock.try_read_for(Duration::from_millis(5)).as_deref(),
            Some(&8)
        );
    }

    /// A failed try leaves the lock as it was: once the writer that made them fail is gone,
    /// a writer gets in at once, and readers too (a guard built for a failed try, and
    /// dropped, released a shard it never took: the server deadlocked under load).
    #[test]
    fn failed_tries_leave_the_lock_as_it_was() {
        let lock = ShardedRwLock::with_shards(0, 1);
        let held = std::sync::Barrier::new(2);
        let tried = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _w = lock.write();
                held.wait();
                tried.wait();
            });
            held.wait();
            for _ in 0..100 {
                assert!(lock.try_read_spinning(Duration::ZERO).is_none());
            }
            assert!(lock.try_read_for(Duration::from_millis(1)).is_none());
            assert!(lock.try_write_for(Duration::from_millis(1)).is_none());
            tried.wait();
        });
        let mut w = lock
            .try_write_for(Duration::from_millis(100))
            .expect("no reader is left behind");
        *w += 1;
        drop(w);
        assert_eq!(*lock.try_read_spinning(Duration::ZERO).expect("free"), 1);
        assert_eq!(*lock.write(), 1);
    }

    /// A reader tries while a writer waits for another reader to leave: its failed try must
    /// not count as a reader leaving, or the writer waits for ever once the real one leaves.
    #[test]
    fn a_failed_try_while_a_writer_waits_does_not_release_anyone() {
        let lock = ShardedRwLock::with_shards(0, 1);
        let reading = std::sync::Barrier::new(2);
        let stop_reading = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _r = lock.read();
                reading.wait();
                stop_reading.wait();
            });
            reading.wait();
            let writer = s.spawn(|| {
                lock.try_write_for(Duration::from_secs(5))
                    .map(|mut w| *w += 1)
                    .is_some()
            });
            // The writer is waiting for the reader now (or soon): tries fail meanwhile.
            std::thread::sleep(Duration::from_millis(50));
            for _ in 0..10 {
                assert!(
                    lock.try_read_spinning(Duration::ZERO).is_none(),
                    "a writer waits"
                );
            }
            stop_reading.wait();
            assert!(writer.join().expect("writer"), "the writer got the lock");
        });
        assert_eq!(*lock.read(), 1);
    }

    /// The timed forms wait up to their timeout: a writer gets the lock a reader on another
    /// thread gives back 50 ms later, well within its 10 s.
    #[test]
    fn timed_write_waits_for_a_reader_to_leave() {
        let lock = ShardedRwLock::with_shards(0, 4);
        let held = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _r = lock.read();
                held.wait();
                std::thread::sleep(Duration::from_millis(50));
            });
            held.wait();
            let mut w = lock
                .try_write_for(Duration::from_secs(10))
                .expect("the reader leaves after 50 ms");
            *w += 1;
        });
        assert_eq!(*lock.read(), 1);
    }
}
