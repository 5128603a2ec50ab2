//! The header read timeout, per connection rather than per request: a connection that waits
//! longer than the timeout for its next request head (from its opening, or from the end of
//! the previous response) is closed, as hyper's `header_read_timeout` would, but a request
//! costs a few plain stores and a reference count instead of a timer armed and disarmed.
//!
//! hyper's own timeout boxed a sleep for every request head, registered it in tokio's timer
//! wheel when the head was not read at once (every keep-alive request) and took it out again
//! once it was: 1,270 instructions of a GET's 17,900 (callgrind, `benches/RESULTS.md`).
//!
//! Here the service counts the requests in flight ([`HeadWatch::request_started`], whose
//! guard rides on the response body and counts the request done when hyper drops the body,
//! having sent it or not), and the connection's I/O wrapper ([`Watched`]) notes every write
//! that made progress. A watchdog task per connection looks every quarter of the timeout
//! and aborts the connection's task once it has seen no request in flight and nothing
//! happen four times in a row: so a connection is closed between 1 and 1.25 timeouts after
//! it began to wait for a head. Reads never count as progress: a client sending a head a
//! byte at a time is cut off as hyper cut it off. A request in flight is never cut off,
//! however slowly its body arrives (`Expect: 100-continue` uploads), its handler works or
//! its response is read (a streamed export): hyper's timeout covered none of those either.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::task::AbortHandle;

/// Checks per timeout: a connection is closed within 1 + 1/`TICKS` timeouts.
const TICKS: u32 = 4;

/// What a connection is doing: requests in flight, and a count of events (requests begun
/// and ended, writes that made progress) for the watchdog to see change.
#[derive(Debug, Default)]
pub struct HeadWatch {
    in_flight: AtomicU32,
    events: AtomicU32,
}

/// A request in flight on its connection, until dropped (with the response body it rides
/// on, see [`Tracked`]).
#[derive(Debug)]
pub struct InFlight(Arc<HeadWatch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // One task drives a connection, its service and its bodies: plain stores suffice.
        let w = &self.0;
        w.in_flight.store(
            w.in_flight.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
        w.event();
    }
}

impl HeadWatch {
    /// A new connection's, waiting for its first head.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The service was handed a request head: the request is in flight until the guard is
    /// dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.store(
            self.in_flight.load(Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        self.event();
        InFlight(self.clone())
    }

    /// Response bytes went out.
    fn wrote(&self) {
        self.event();
    }

    fn event(&self) {
        self.events.store(
            self.events.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// `None` while a request is in flight, else the event count.
    fn idle_since(&self) -> Option<u32> {
        (self.in_flight.load(Ordering::Relaxed) == 0).then(|| self.events.load(Ordering::Relaxed))
    }
}

/// Aborts `conn` (the connection's task) once it has waited `timeout` or more for a request
/// head; returns when the connection's task has ended, whichever way.
pub async fn watch(watch: Arc<HeadWatch>, conn: AbortHandle, timeout: Duration) {
    let tick = (timeout / TICKS).max(Duration::from_millis(1));
    let mut seen = watch.idle_since();
    let mut quiet = 0;
    loop {
        tokio::time::sleep(tick).await;
        if conn.is_finished() {
            return;
        }
        let now = watch.idle_since();
        if now.is_none() || now != seen {
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

/// A response body that keeps its request counted in flight until hyper drops it.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// `body`, holding `in_flight` until dropped.
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
    fn requests_in_flight_and_events_are_counted() {
        let w = HeadWatch::new();
        let first = w.idle_since().expect("a new connection is idle");
        let a = w.request_started();
        assert_eq!(w.idle_since(), None, "a request in flight");
        let b = w.request_started();
        drop(a);
        assert_eq!(w.idle_since(), None, "a pipelined request still in flight");
        w.wrote();
        drop(b);
        let after = w.idle_since().expect("idle once every request is done");
        assert_ne!(after, first, "events are counted");
        w.wrote();
        assert_ne!(w.idle_since(), Some(after), "each write is an event");
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
    async fn a_request_in_flight_is_never_cut_off_and_the_wait_starts_when_it_ends() {
        let timeout = Duration::from_secs(8);
        let conn = tokio::spawn(std::future::pending::<()>());
        let w = HeadWatch::new();
        let watcher = tokio::spawn(watch(w.clone(), conn.abort_handle(), timeout));
        // A request in flight for three timeouts, its only write early on (a 100 Continue,
        // then a slow body; or a response head, then a slow stream).
        let request = w.request_started();
        w.wrote();
        tokio::time::sleep(timeout * 3).await;
        assert!(!conn.is_finished(), "a request in flight is not timed out");
        drop(request);
        let ended = tokio::time::Instant::now();
        tokio::time::sleep(timeout - Duration::from_millis(1)).await;
        assert!(!conn.is_finished(), "not before the timeout");
        tokio::time::sleep(timeout / TICKS + Duration::from_millis(2)).await;
        assert!(
            conn.is_finished(),
            "closed after {:?} waiting",
            ended.elapsed()
        );
        watcher.await.expect("the watchdog ends");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_ends_with_its_connection() {
        let conn = tokio::spawn(async {});
        let handle = conn.abort_handle();
        conn.await.expect("ran");
        let w = HeadWatch::new();
        let _request = w.request_started();
        tokio::time::timeout(
            Duration::from_secs(1),
            watch(w, handle, Duration::from_secs(4)),
        )
        .await
        .expect("the watchdog ends at its first tick after the connection");
    }
}
