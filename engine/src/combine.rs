//! Combining: many threads' writes done by one of them, so that they do not hand the writer
//! lock to one another.
//!
//! With 64 writers on 2 cores, every write used to wait twice: once for the writer lock
//! (each unlock woke the next waiter, and the lock stayed idle until the woken thread ran)
//! and once for its fsync. Most of the CPU went to those wake-ups, and the wake-up latency of
//! each handoff bounded the writes per second.
//!
//! Here a writer queues its job and, if no thread is combining, becomes the combiner: it takes
//! the lock once and runs every queued job, its own and the ones that arrive meanwhile, in
//! the order they were queued (which is the order the lock would have let them in). Then it
//! releases the lock, gives up the role (the next writer to arrive takes it, so appends go on
//! during the fsync), calls `settle` once for the turn (the durability wait, for the highest
//! mark its jobs returned), and wakes each queued writer once, with `settle`'s answer. A
//! queued writer sleeps once per write.
//!
//! A turn takes no new batch of queued jobs once it has run [`MAX_TURN`] (it may run up to
//! that many plus the last batch it took); if more are queued then, the oldest queued writer
//! is woken to take the role on, so that no combiner works for others forever.
//!
//! A job is a closure on its writer's stack, run by another thread: the writer does not
//! return (or unwind) before the combiner has marked its job done, and the combiner touches
//! neither job nor ticket after that. A job that panics is caught; its writer resumes the
//! panic, and the turn goes on.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::Thread;

use parking_lot::Mutex;

use crate::error::WriteError;

/// Jobs after which a combiner takes no new batch and hands the role to a queued writer.
pub(crate) const MAX_TURN: usize = 256;

/// What `settle` answers, for every job of a turn.
type Settled = Result<(), WriteError>;

/// A queued job's state.
const QUEUED: u8 = 0;
/// Its writer is to take the combiner role on.
const LEAD: u8 = 1;
/// Its job ran and its turn settled.
const DONE: u8 = 2;

/// Writers waiting for a combiner of jobs on a `T`, and whether one is at work.
pub(crate) struct Combiner<T> {
    queue: Mutex<Queue<T>>,
    /// Most jobs a turn runs ([`MAX_TURN`] but in tests).
    max_turn: usize,
}

impl<T> Default for Combiner<T> {
    fn default() -> Self {
        Self::with_max_turn(MAX_TURN)
    }
}

impl<T> std::fmt::Debug for Combiner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.queue.lock();
        f.debug_struct("Combiner")
            .field("queued", &q.jobs.len())
            .field("combining", &q.combining)
            .finish()
    }
}

struct Queue<T> {
    jobs: Vec<Request<T>>,
    /// A thread holds the combiner role (it may be between taking it and taking the lock).
    combining: bool,
}

/// The job of one writer (erased to `'static`; see the module doc) and its ticket.
struct Request<T> {
    job: NonNull<dyn FnMut(&mut T) -> u64 + Send>,
    ticket: NonNull<Ticket>,
}

#[expect(
    unsafe_code,
    reason = "a request points into a writer's stack, which outlives it (module doc)"
)]
// SAFETY: the job is `Send` and used by one thread at a time (the combiner, while its writer
// is parked); the ticket is shared, with interior mutability only.
unsafe impl<T> Send for Request<T> {}

/// Where a combiner leaves a writer's answer.
struct Ticket {
    state: AtomicU8,
    thread: Thread,
    answer: Mutex<Answer>,
}

#[derive(Default)]
struct Answer {
    settled: Option<Settled>,
    panic: Option<Box<dyn std::any::Any + Send>>,
    /// Tickets of the same turn this writer wakes before it returns.
    relay: Vec<Tickets>,
}

/// A ticket of a queued writer, passed to whoever wakes it.
struct Tickets(NonNull<Ticket>);

#[expect(
    unsafe_code,
    reason = "as Request: the ticket's writer is parked until DONE"
)]
// SAFETY: a ticket has interior mutability only, and its writer outlives it.
unsafe impl Send for Tickets {}

impl<T> Combiner<T> {
    fn with_max_turn(max_turn: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                jobs: Vec::new(),
                combining: false,
            }),
            max_turn: max_turn.max(1),
        }
    }

    /// Runs `job` on the value behind `lock`, on this thread or on a combiner's, and returns
    /// once it has run and `settle` has been called for its turn, with `settle`'s answer.
    /// `job` returns a mark (0 for none); `settle` gets the highest mark of its turn's jobs.
    pub(crate) fn run(
        &self,
        lock: &Mutex<T>,
        mut job: impl FnMut(&mut T) -> u64 + Send,
        settle: impl Fn(u64) -> Settled,
    ) -> Settled {
        let ticket = Ticket {
            state: AtomicU8::new(QUEUED),
            thread: std::thread::current(),
            answer: Mutex::new(Answer::default()),
        };
        let job: &mut (dyn FnMut(&mut T) -> u64 + Send + '_) = &mut job;
        #[expect(
            unsafe_code,
            reason = "lifetime erased; the module doc says why it holds"
        )]
        // SAFETY: this function returns only after the request's `DONE` (below), and the
        // combiner uses neither pointer after storing it.
        let job: NonNull<dyn FnMut(&mut T) -> u64 + Send> =
            unsafe { std::mem::transmute(NonNull::from(job)) };
        let request = Request {
            job,
            ticket: NonNull::from(&ticket),
        };
        let lead = {
            let mut q = self.queue.lock();
            q.jobs.push(request);
            !std::mem::replace(&mut q.combining, true)
        };
        if !lead {
            loop {
                match ticket.state.load(Ordering::Acquire) {
                    QUEUED => std::thread::park(),
                    LEAD => break,
                    _ => return finish(ticket),
                }
            }
        }
        // This writer's job is queued, so the turn runs it.
        self.combine(lock, &settle);
        finish(ticket)
    }

    /// One turn: runs queued jobs under `lock` until none is left (or `MAX_TURN` ran),
    /// settles, and wakes their writers. `lock` and `settle` are the combiner's: every caller
    /// of one `Combiner` must pass the same lock and the same kind of wait.
    fn combine(&self, lock: &Mutex<T>, settle: &dyn Fn(u64) -> Settled) {
        let mut ran: Vec<Request<T>> = Vec::new();
        let mut mark = 0;
        {
            let mut value = lock.lock();
            loop {
                let batch = {
                    let mut q = self.queue.lock();
                    if q.jobs.is_empty() || ran.len() >= self.max_turn {
                        match q.jobs.first() {
                            None => q.combining = false,
                            Some(next) => hand_over(next),
                        }
                        break;
                    }
                    std::mem::take(&mut q.jobs)
                };
                for request in batch {
                    #[expect(unsafe_code, reason = "the writer waits until DONE (module doc)")]
                    // SAFETY: the request is queued, so its writer is parked on it and
                    // touches neither its job nor its ticket.
                    let (job, ticket) =
                        unsafe { (&mut *request.job.as_ptr(), request.ticket.as_ref()) };
                    match catch_unwind(AssertUnwindSafe(|| job(&mut value))) {
                        Ok(m) => mark = mark.max(m),
                        Err(payload) => ticket.answer.lock().panic = Some(payload),
                    }
                    ran.push(request);
                }
            }
        }
        // A panicking `settle` (a `FileSystem` of the embedder's may panic in its sync) must
        // not leave the turn's writers parked: they get an error, then the panic goes on.
        let settled = catch_unwind(AssertUnwindSafe(|| settle(mark)));
        let answer = match &settled {
            Ok(answer) => answer.clone(),
            Err(_) => Err(WriteError::Io(
                "internal: the durability wait panicked".into(),
            )),
        };
        let me = std::thread::current().id();
        let mut tickets = Vec::with_capacity(ran.len());
        for request in ran {
            #[expect(unsafe_code, reason = "the writer waits until DONE (module doc)")]
            // SAFETY: as above.
            let ticket = unsafe { request.ticket.as_ref() };
            ticket.answer.lock().settled = Some(answer.clone());
            if ticket.thread.id() == me {
                // The combiner's own: answered here, and handed no others to wake, so no
                // other writer's wake-up waits for this thread's return.
                ticket.state.store(DONE, Ordering::Release);
            } else {
                tickets.push(Tickets(request.ticket));
            }
        }
        wake(tickets);
        if let Err(payload) = settled {
            resume_unwind(payload);
        }
    }
}

/// Wakes the writers of `tickets` (answered, not yet DONE): the first is handed half of the
/// rest to wake before it returns, this thread wakes the other half the same way, so that
/// the wake-ups of a turn run on several threads at once.
fn wake(mut tickets: Vec<Tickets>) {
    while !tickets.is_empty() {
        let first = tickets.remove(0);
        let theirs = tickets.split_off(tickets.len() / 2);
        #[expect(unsafe_code, reason = "the writer waits until DONE (module doc)")]
        // SAFETY: the ticket is not DONE yet, so its writer is parked on it; once DONE is
        // stored it is its writer's alone.
        let ticket = unsafe { first.0.as_ref() };
        if !theirs.is_empty() {
            ticket.answer.lock().relay = theirs;
        }
        let thread = ticket.thread.clone();
        ticket.state.store(DONE, Ordering::Release);
        thread.unpark();
    }
}

/// Wakes the writer of `next` to take the combiner role on (still held: `combining` stays
/// set).
fn hand_over<T>(next: &Request<T>) {
    #[expect(unsafe_code, reason = "the writer waits until DONE (module doc)")]
    // SAFETY: `next` is queued, so its writer is parked on it.
    let ticket = unsafe { next.ticket.as_ref() };
    let thread = ticket.thread.clone();
    ticket.state.store(LEAD, Ordering::Release);
    thread.unpark();
}

/// The answer of a done ticket; resumes its job's panic.
fn finish(ticket: Ticket) -> Settled {
    let answer = ticket.answer.into_inner();
    wake(answer.relay);
    if let Some(payload) = answer.panic {
        resume_unwind(payload);
    }
    answer
        .settled
        .unwrap_or_else(|| Err(WriteError::Io("internal: a write was not settled".into())))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize};
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    use super::*;

    impl<T> Combiner<T> {
        fn queued(&self) -> usize {
            self.queue.lock().jobs.len()
        }
    }

    /// Waits (bounded) until `done` holds.
    fn until(done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "waited in vain");
            std::thread::yield_now();
        }
    }

    /// Waits (bounded) until `combiner` has `n` queued jobs.
    fn until_queued<T>(combiner: &Combiner<T>, n: usize) {
        until(|| combiner.queued() >= n);
    }

    /// Starts a writer on a scoped thread whose job holds its turn until `queued` more jobs
    /// are queued, then runs `job`; returns once that turn has begun, with the writer's handle.
    fn hold_a_turn<'scope, 'env, T: Send>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        combiner: &'env Combiner<T>,
        lock: &'env Mutex<T>,
        queued: usize,
        mut job: impl FnMut(&mut T) -> u64 + Send + 'env,
        settle: impl Fn(u64) -> Settled + Send + 'env,
    ) -> std::thread::ScopedJoinHandle<'scope, Settled> {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = started.clone();
        let writer = s.spawn(move || {
            combiner.run(
                lock,
                |t| {
                    held.store(true, Ordering::Release);
                    until_queued(combiner, queued);
                    job(t)
                },
                settle,
            )
        });
        until(|| started.load(Ordering::Acquire));
        writer
    }

    #[test]
    fn a_writer_queued_during_a_turn_has_its_job_run_by_the_combiner_in_the_same_turn() {
        let combiner = Combiner::<Vec<(u64, std::thread::ThreadId)>>::default();
        let lock = Mutex::new(Vec::new());
        let settles = Mutex::new(Vec::new());
        let settle = |mark| {
            settles.lock().push(mark);
            Ok(())
        };
        std::thread::scope(|s| {
            // Holds the turn until the second writer has queued.
            let first = hold_a_turn(
                s,
                &combiner,
                &lock,
                1,
                |v| {
                    v.push((1, std::thread::current().id()));
                    1
                },
                settle,
            );
            let second = s.spawn(|| {
                combiner.run(
                    &lock,
                    |v| {
                        v.push((2, std::thread::current().id()));
                        2
                    },
                    settle,
                )
            });
            let first_id = first.thread().id();
            assert_eq!(first.join().ok(), Some(Ok(())));
            assert_eq!(second.join().ok(), Some(Ok(())));
            let ran = lock.lock().clone();
            assert_eq!(ran, vec![(1, first_id), (2, first_id)]);
        });
        // One turn, one settle, for the highest mark.
        assert_eq!(*settles.lock(), vec![2]);
    }

    #[test]
    fn every_job_runs_once_in_order_per_writer_and_is_answered_by_a_settle_that_covers_it() {
        for max_turn in [1, 3, MAX_TURN] {
            let combiner = Combiner::<Vec<(usize, u64)>>::with_max_turn(max_turn);
            let lock = Mutex::new(Vec::new());
            // What was settled so far: a job is acknowledged only once its mark is covered.
            let settled = AtomicU64::new(0);
            let next_mark = AtomicU64::new(1);
            let (writers, each) = (8, 300);
            let barrier = Barrier::new(writers);
            std::thread::scope(|s| {
                for w in 0..writers {
                    let (combiner, lock, settled, next_mark, barrier) =
                        (&combiner, &lock, &settled, &next_mark, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        for i in 0..each {
                            let mut mine = 0;
                            let answer = combiner.run(
                                lock,
                                |v| {
                                    mine = next_mark.fetch_add(1, Ordering::Relaxed);
                                    v.push((w, i));
                                    mine
                                },
                                |mark| {
                                    settled.fetch_max(mark, Ordering::Relaxed);
                                    Ok(())
                                },
                            );
                            assert_eq!(answer, Ok(()));
                            assert!(mine > 0, "the job did not run");
                            assert!(settled.load(Ordering::Relaxed) >= mine, "not covered");
                        }
                    });
                }
            });
            let ran = lock.lock().clone();
            assert_eq!(
                ran.len() as u64,
                writers as u64 * each,
                "max_turn {max_turn}"
            );
            for w in 0..writers {
                let mine: Vec<u64> = ran
                    .iter()
                    .filter(|(who, _)| *who == w)
                    .map(|(_, i)| *i)
                    .collect();
                assert_eq!(mine, (0..each).collect::<Vec<_>>(), "writer {w}");
            }
        }
    }

    #[test]
    fn a_turn_stops_at_its_limit_and_hands_the_role_to_a_queued_writer() {
        let combiner = Combiner::<Vec<u64>>::with_max_turn(1);
        let lock = Mutex::new(Vec::new());
        let turns = AtomicUsize::new(0);
        let settle = |_| {
            turns.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        std::thread::scope(|s| {
            let push_one = |v: &mut Vec<u64>| {
                v.push(1);
                1
            };
            let first = hold_a_turn(s, &combiner, &lock, 2, push_one, settle);
            let others: Vec<_> = (2..4)
                .map(|n| {
                    let (combiner, lock) = (&combiner, &lock);
                    s.spawn(move || {
                        combiner.run(
                            lock,
                            |v| {
                                v.push(n);
                                n
                            },
                            settle,
                        )
                    })
                })
                .collect();
            assert_eq!(first.join().ok(), Some(Ok(())));
            for h in others {
                assert_eq!(h.join().ok(), Some(Ok(())));
            }
        });
        assert_eq!(lock.lock().len(), 3);
        // The first turn ran one job and handed over; the next ran the other two (they were
        // queued together), so at least two turns and at most three.
        assert!((2..=3).contains(&turns.load(Ordering::Relaxed)));
        assert_eq!(combiner.queued(), 0);
        assert!(!combiner.queue.lock().combining);
    }

    #[test]
    fn a_panicking_job_panics_its_own_writer_and_the_turn_goes_on() {
        let combiner = Combiner::<Vec<u64>>::default();
        let lock = Mutex::new(Vec::new());
        let settle = |_| Ok(());
        std::thread::scope(|s| {
            let push_one = |v: &mut Vec<u64>| {
                v.push(1);
                1
            };
            let first = hold_a_turn(s, &combiner, &lock, 2, push_one, settle);
            let bad = s.spawn(|| combiner.run(&lock, |_| panic!("job two"), settle));
            until_queued(&combiner, 1);
            let good = s.spawn(|| {
                combiner.run(
                    &lock,
                    |v| {
                        v.push(3);
                        3
                    },
                    settle,
                )
            });
            assert_eq!(first.join().ok(), Some(Ok(())));
            let payload = bad.join().expect_err("the panicking job's writer panics");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"job two"));
            assert_eq!(good.join().ok(), Some(Ok(())));
        });
        assert_eq!(*lock.lock(), vec![1, 3]);
        // And the combiner still works.
        assert_eq!(
            combiner.run(
                &lock,
                |v| {
                    v.push(4);
                    4
                },
                |m| {
                    assert_eq!(m, 4);
                    Ok(())
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn a_panicking_settle_answers_the_turn_with_an_error_and_panics_its_combiner() {
        let combiner = Combiner::<u64>::default();
        let lock = Mutex::new(0);
        std::thread::scope(|s| {
            let add_one = |n: &mut u64| {
                *n += 1;
                1
            };
            let panics = |_| -> Settled { panic!("sync panicked") };
            let first = hold_a_turn(s, &combiner, &lock, 1, add_one, panics);
            let second = s.spawn(|| {
                combiner.run(
                    &lock,
                    |n| {
                        *n += 1;
                        2
                    },
                    |_| Ok(()),
                )
            });
            let payload = first.join().expect_err("the combiner's writer panics");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"sync panicked"));
            // Not parked forever: answered with an error.
            let answer = second.join().expect("no panic");
            assert!(matches!(answer, Err(WriteError::Io(_))), "{answer:?}");
        });
        // The combiner works on.
        assert_eq!(
            combiner.run(
                &lock,
                |n| {
                    *n += 1;
                    3
                },
                |_| Ok(())
            ),
            Ok(())
        );
        assert_eq!(*lock.lock(), 3);
    }

    #[test]
    fn every_job_of_a_turn_gets_its_settle_error() {
        let combiner = Combiner::<u64>::default();
        let lock = Mutex::new(0);
        let failed = || Err(WriteError::Io("fsync failed".into()));
        std::thread::scope(|s| {
            let add_one = |n: &mut u64| {
                *n += 1;
                1
            };
            let first = hold_a_turn(s, &combiner, &lock, 1, add_one, |_| failed());
            let second = s.spawn(|| {
                combiner.run(
                    &lock,
                    |n| {
                        *n += 1;
                        2
                    },
                    |_| Ok(()),
                )
            });
            assert_eq!(first.join().ok(), Some(failed()));
            // Its job ran in the first writer's turn: that turn's settle answers it.
            assert_eq!(second.join().ok(), Some(failed()));
        });
        assert_eq!(*lock.lock(), 2);
    }
}
