//! Keeps the runtime serving while a runtime thread waits on a stalled disk.
//!
//! Single-item puts append on the runtime thread that parsed them
//! ([`Store::try_put_deferred`]): a `pwrite` into the page cache, which takes microseconds.
//! On a frozen file system (`fsfreeze`) or a stalled device the kernel holds it, and the
//! thread with it. The other runtime threads should go on serving, but tokio lets a thread
//! poll the sockets (its I/O driver) only while it is idle, and an idle thread that found
//! the driver taken sleeps until some task is scheduled. If the thread now held in `pwrite`
//! was the one polling, nothing polls and nothing is scheduled again: every request,
//! `/healthz` and the shutdown signal waited for the thaw (found from outside: four PUTs at
//! once on a frozen ext4 hung the server in about a third of the tries; the thread stacks
//! showed the one worker in `pwrite`, the other asleep on its condition variable, and no
//! thread in `epoll_wait`).
//!
//! This thread looks at [`Store::disk_wait`] every [`TICK`]; while a wait has lasted a tick,
//! it schedules an empty task from outside the runtime, which wakes a sleeping runtime
//! thread: that one runs it, finds the driver free and polls the sockets from then on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ttlcask_engine::Store;

/// How often the disk wait is looked at, and how long one lasts before the runtime is
/// woken: a working disk's `pwrite` takes microseconds, so this is never a healthy write.
pub const TICK: Duration = Duration::from_millis(50);

/// The watching thread; stopped (and joined) when dropped.
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StallWatch {
    /// Starts watching `store` for the runtime of `handle`. `None` if the thread could not
    /// be started (logged: the server goes on, as it did before this watch).
    pub fn start(store: Store, handle: tokio::runtime::Handle) -> Option<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ttlcask-stall-watch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::park_timeout(TICK);
                    if store.disk_wait().is_some_and(|w| w >= TICK) {
                        drop(handle.spawn(async {}));
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Self {
                stop,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!("cannot start the disk stall watch thread: {e}");
                None
            }
        }
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
