//! The header read timeout, per connection rather than per request: a connection that waits
//! longer than the timeout for its next request head (from its opening, or from the last
//! bytes of the previous response) is closed, as hyper's `header_read_timeout` would, but a
//! request costs two plain stores instead of a timer armed and disarmed.
//!
//! hyper's own timeout boxed a sleep for every request head, registered it in tokio's timer
//! wheel when the head was not read at once (every keep-alive request) and took it out again
//! once it was: 1,330 instructions of a GET's 17,900 (callgrind, `benches/RESULTS.md`).
//!
//! Here the connection's I/O wrapper ([`Watched`]) notes every write that made progress, and
//! the service notes every head it is handed ([`HeadWatch::head_read`]); a watchdog task per
//! connection looks at the note every quarter of the timeout and aborts the connection's
//! task when it has seen it unchanged, and waiting for a head, four times in a row. So a
//! connection is closed between 1 and 1.25 timeouts after it began to wait for a head.
//! Reads never count as progress: a client sending a head a byte at a time is cut off as
//! hyper cut it off. A response the client does not read (a write pending) counts as
//! waiting, so a stalled reader is cut off too (hyper's timeout left it open).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::task::AbortHandle;

/// Checks per timeout: a connection is closed within 1 + 1/`TICKS` timeouts.
const TICKS: u32 = 4;

/// What a connection last did: bit 0 set while it waits for a request head, the other bits
/// count events (writes that made progress, heads read).
#[derive(Debug, Default)]
pub struct HeadWatch(AtomicU64);

impl HeadWatch {
    /// A new connection's, waiting for its first head.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(1)))
    }

    /// The service was handed a request head: the connection no longer waits for one.
    pub fn head_read(&self) {
        self.note(false);
    }

    /// Response bytes went out: the connection waits for the next head from now on.
    fn wrote(&self) {
        self.note(true);
    }

    // One task drives a connection and its service, so a load and a store do not race.
    fn note(&self, waiting: bool) {
        let next = (self.0.load(Ordering::Relaxed) | 1).wrapping_add(2);
        self.0
            .store(if waiting { next } else { next & !1 }, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Aborts `conn` (the connection's task) once it has waited `timeout` or more for a request
/// head; returns when the connection's task has ended, whichever way.
pub async fn watch(watch: Arc<HeadWatch>, conn: AbortHandle, timeout: Duration) {
    let tick = (timeout / TICKS).max(Duration::from_millis(1));
    let mut seen = watch.get();
    let mut quiet = 0;
    loop {
        tokio::time::sleep(tick).await;
        if conn.is_finished() {
            return;
        }
        let now = watch.get();
        if now != seen || now & 1 == 0 {
            seen = now;
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet >= TICKS {
            tracing::debug!(
                ?timeout,
                "no request head within the header read timeout; closing"
            );
            conn.abort();
            return;
        }
    }
}

/// A connection's I/O that tells its [`HeadWatch`] of every write that made progress.
pub struct Watched<T> {
    io: T,
    watch: Arc<HeadWatch>,
}

impl<T> Watched<T> {
    /// `io`, watched by `watch`.
    pub fn new(io: T, watch: Arc<HeadWatch>) -> Self {
        Self { io, watch }
    }

    fn wrote(&self, r: &Poll<std::io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.watch.wrote();
        }
    }
}

impl<T: Read + Unpin> Read for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_writes_flip_the_waiting_bit_and_count() {
        let w = HeadWatch::new();
        let first = w.get();
        assert_eq!(first & 1, 1, "a new connection waits for a head");
        w.head_read();
        let reading = w.get();
        assert_eq!(reading & 1, 0, "a head read: not waiting");
        assert_ne!(reading >> 1, first >> 1, "an event is counted");
        w.wrote();
        let written = w.get();
        assert_eq!(written & 1, 1, "a response written: waiting again");
        assert_ne!(written >> 1, reading >> 1);
        w.wrote();
        assert_ne!(w.get(), written, "each write is an event");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_waiting_for_a_head_is_aborted_after_the_timeout_not_before() {
        let timeout = Duration::from_secs(8);
        let conn = tokio::spawn(std::future::pending::<()>());
        let w = HeadWatch::new();
        let started = tokio::time::Instant::now();
        watch(w, conn.abort_handle(), timeout).await;
        let waited = started.elapsed();
        assert!(conn.await.expect_err("aborted").is_cancelled());
        assert!(waited >= timeout, "closed after {waited:?}");
        assert!(
            waited <= timeout + timeout / TICKS,
            "closed after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_inside_a_request_or_making_progress_is_left_alone() {
        let timeout = Duration::from_secs(8);
        let conn = tokio::spawn(std::future::pending::<()>());
        let w = HeadWatch::new();
        let watcher = tokio::spawn(watch(w.clone(), conn.abort_handle(), timeout));
        // Inside a request (a slow handler) for three timeouts.
        w.head_read();
        tokio::time::sleep(timeout * 3).await;
        assert!(
            !conn.is_finished(),
            "a request in progress is not timed out"
        );
        // A response written slowly: a write every half timeout.
        for _ in 0..6 {
            w.wrote();
            tokio::time::sleep(timeout / 2).await;
        }
        assert!(
            !conn.is_finished(),
            "writes that make progress are not timed out"
        );
        // Then nothing: closed within the timeout and a tick.
        tokio::time::sleep(timeout + timeout / TICKS).await;
        assert!(
            conn.is_finished(),
            "then it waits for a head, and is closed"
        );
        watcher.await.expect("the watchdog ends");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_ends_with_its_connection() {
        let conn = tokio::spawn(async {});
        let handle = conn.abort_handle();
        conn.await.expect("ran");
        let w = HeadWatch::new();
        w.head_read();
        tokio::time::timeout(
            Duration::from_secs(1),
            watch(w, handle, Duration::from_secs(4)),
        )
        .await
        .expect("the watchdog ends at its first tick after the connection");
    }
}
