//! The last hour of traffic behind the status page's charts. A timer task ([`sample_every`])
//! reads the request counters once a second and pushes the difference into a fixed ring of
//! [`CAPACITY`] samples; the request path never touches it. The page folds the ring into
//! [`Window`]s (requests per second, p99 latency and hit rate over each).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use crate::metrics::{ApiTotals, Metrics, LATENCY_BOUNDS, LATENCY_SLOTS};

/// How often the counters are sampled.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Samples kept: an hour of one-second samples.
pub const CAPACITY: usize = 3600;

/// The three APIs' requests between two readings of the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// When the sample ends, in ms since the server started.
    pub end_ms: u64,
    /// How long it covers (one period, or more when the timer ran late).
    pub span_ms: u32,
    /// Requests answered.
    pub requests: u32,
    /// Requests by latency bucket ([`LATENCY_BOUNDS`], then `+Inf`).
    pub latency: [u32; LATENCY_SLOTS],
    /// Item lookups that found their item.
    pub hits: u32,
    /// Item lookups that did not.
    pub misses: u32,
}

impl Sample {
    /// What happened between reading `before` at `from` and `after` at `to` (uptimes).
    pub fn between(before: &ApiTotals, after: &ApiTotals, from: Duration, to: Duration) -> Self {
        let d = |a: u64, b: u64| u32::try_from(b.saturating_sub(a)).unwrap_or(u32::MAX);
        let mut latency = [0; LATENCY_SLOTS];
        for (i, n) in latency.iter_mut().enumerate() {
            *n = d(before.latency[i], after.latency[i]);
        }
        Self {
            end_ms: millis(to),
            span_ms: u32::try_from(millis(to.saturating_sub(from))).unwrap_or(u32::MAX),
            requests: d(before.requests, after.requests),
            latency,
            hits: d(before.hits, after.hits),
            misses: d(before.misses, after.misses),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Samples folded over a stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Milliseconds the samples cover (0: no sample fell in this window).
    pub span_ms: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests by latency bucket.
    pub latency: [u64; LATENCY_SLOTS],
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
}

impl Window {
    fn add(&mut self, s: &Sample) {
        self.span_ms += u64::from(s.span_ms);
        self.requests += u64::from(s.requests);
        for (sum, n) in self.latency.iter_mut().zip(s.latency) {
            *sum += u64::from(n);
        }
        self.hits += u64::from(s.hits);
        self.misses += u64::from(s.misses);
    }

    /// Requests per second, if any sample fell here.
    pub fn rate(&self) -> Option<f64> {
        (self.span_ms > 0).then(|| self.requests as f64 * 1000.0 / self.span_ms as f64)
    }

    /// The 99th percentile latency in seconds, if any request was answered.
    pub fn p99(&self) -> Option<f64> {
        quantile(0.99, &self.latency)
    }

    /// Hits over lookups (0 to 1), if there was a lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// The `q` quantile of a latency histogram, interpolated inside its bucket as Prometheus's
/// `histogram_quantile` does (so the page and a Grafana panel agree); a quantile in the
/// `+Inf` bucket is reported as the highest finite bound.
pub fn quantile(q: f64, buckets: &[u64; LATENCY_SLOTS]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = LATENCY_BOUNDS.get(i) else {
                return LATENCY_BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
        }
        below += n;
    }
    LATENCY_BOUNDS.last().copied()
}

/// The ring of the last [`CAPACITY`] samples. Written once a period by the sampler and read
/// by the status page, so a plain mutex is enough.
pub struct History {
    ring: Mutex<Ring>,
}

struct Ring {
    samples: Box<[Sample]>,
    /// Where the next sample goes.
    next: usize,
    /// Samples held (at most the capacity).
    len: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::with_capacity(CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                samples: vec![Sample::default(); capacity.max(1)].into_boxed_slice(),
                next: 0,
                len: 0,
            }),
        }
    }

    /// Adds a sample, replacing the oldest once the ring is full.
    pub fn push(&self, sample: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let at = ring.next;
        ring.samples[at] = sample;
        ring.next = (at + 1) % ring.samples.len();
        ring.len = (ring.len + 1).min(ring.samples.len());
    }

    /// The samples that end within the `count * width` before `now`, folded into `count`
    /// windows of `width`, oldest first.
    pub fn windows(&self, now: Duration, count: usize, width: Duration) -> Vec<Window> {
        let mut out = vec![Window::default(); count];
        let (now, width) = (millis(now), millis(width).max(1));
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let cap = ring.samples.len();
        // Newest first: the window a sample falls in counts back from the last one, which
        // holds the samples that end in (now - width, now].
        for k in 0..ring.len {
            let s = &ring.samples[(ring.next + cap - 1 - k) % cap];
            let back = usize::try_from(now.saturating_sub(s.end_ms) / width).unwrap_or(usize::MAX);
            let Some(i) = count.checked_sub(1).and_then(|last| last.checked_sub(back)) else {
                break;
            };
            out[i].add(s);
        }
        out
    }
}

/// Samples `metrics` into `history` every `period` until `stop` fires or its sender is
/// dropped (so the task also ends when the server's `run` is dropped).
pub async fn sample_every(
    metrics: Arc<Metrics>,
    history: Arc<History>,
    period: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last, mut last_at) = (metrics.api_totals(), metrics.uptime());
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = timer.tick() => {}
        }
        let (now, now_at) = (metrics.api_totals(), metrics.uptime());
        history.push(Sample::between(&last, &now, last_at, now_at));
        (last, last_at) = (now, now_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(end_s: u64, requests: u32, hits: u32, misses: u32) -> Sample {
        let mut latency = [0; LATENCY_SLOTS];
        latency[0] = requests;
        Sample {
            end_ms: end_s * 1000,
            span_ms: 1000,
            requests,
            latency,
            hits,
            misses,
        }
    }

    #[test]
    fn windows_fold_the_last_samples_and_leave_gaps_empty() {
        let h = History::with_capacity(10);
        for s in 1..=15 {
            h.push(sample(s, 2, 1, 1));
        }
        // The ring holds seconds 6..=15; windows of 5 s over the last 20 s end at 15 s.
        let w = h.windows(Duration::from_secs(15), 4, Duration::from_secs(5));
        assert_eq!(w[0], Window::default());
        assert_eq!(w[1].span_ms, 0, "seconds 1..=5 were overwritten");
        assert_eq!((w[2].span_ms, w[2].requests), (5000, 10));
        assert_eq!((w[3].span_ms, w[3].requests), (5000, 10));
        assert_eq!(w[3].rate(), Some(2.0));
        assert_eq!(w[3].hit_ratio(), Some(0.5));
        assert_eq!(w[0].rate(), None);
        assert_eq!(w[0].p99(), None);
    }

    #[test]
    fn windows_shortly_after_start() {
        let h = History::new();
        h.push(sample(1, 3, 0, 0));
        h.push(sample(2, 0, 0, 0));
        let w = h.windows(Duration::from_secs(2), 120, Duration::from_secs(30));
        assert_eq!(w.len(), 120);
        assert_eq!((w[119].span_ms, w[119].requests), (2000, 3));
        assert!(w[..119].iter().all(|w| w.span_ms == 0));
        assert_eq!(w[119].hit_ratio(), None);
    }

    #[test]
    fn p99_interpolates_like_histogram_quantile() {
        let mut b = [0u64; LATENCY_SLOTS];
        b[0] = 99; // ≤ 0.5 ms
        b[2] = 1; // 1 ms to 2.5 ms
                  // rank 99 of 100 falls at the top of the first bucket.
        assert_eq!(quantile(0.99, &b), Some(0.0005));
        b[0] = 0;
        b[2] = 100;
        let p = quantile(0.99, &b).expect("requests");
        assert!((p - (0.001 + 0.0015 * 0.99)).abs() < 1e-12, "{p}");
        let mut slow = [0u64; LATENCY_SLOTS];
        slow[LATENCY_SLOTS - 1] = 5;
        assert_eq!(quantile(0.99, &slow), Some(2.5));
        assert_eq!(quantile(0.99, &[0; LATENCY_SLOTS]), None);
    }

    #[test]
    fn a_sample_is_the_difference_of_two_readings() {
        let mut before = ApiTotals {
            requests: 10,
            hits: 4,
            ..ApiTotals::default()
        };
        before.latency[1] = 10;
        let mut after = before;
        after.requests = 13;
        after.latency[1] = 12;
        after.latency[5] = 1;
        after.misses = 2;
        let s = Sample::between(
            &before,
            &after,
            Duration::from_millis(500),
            Duration::from_millis(1600),
        );
        assert_eq!((s.end_ms, s.span_ms, s.requests), (1600, 1100, 3));
        assert_eq!((s.latency[1], s.latency[5], s.hits, s.misses), (2, 1, 0, 2));
    }

    #[tokio::test]
    async fn the_sampler_samples_and_stops_when_told() {
        let metrics = Arc::new(Metrics::new());
        let history = Arc::new(History::new());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_every(
            metrics.clone(),
            history.clone(),
            Duration::from_millis(10),
            stopped,
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // The first sample shows the sampler has read its starting totals.
        while history.windows(metrics.uptime(), 1, Duration::from_secs(60))[0].span_ms == 0 {
            assert!(std::time::Instant::now() < deadline, "no sample taken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        metrics.record(
            crate::metrics::classify("/c/k"),
            &hyper::Method::GET,
            200,
            Duration::from_micros(100),
        );
        loop {
            let w = history.windows(metrics.uptime(), 1, Duration::from_secs(60));
            if w[0].requests == 1 {
                assert_eq!(w[0].hits, 1);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no sample taken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sampler stops")
            .expect("sampler task");
        // A dropped sender stops it too.
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sample_every(
            metrics,
            history,
            Duration::from_millis(10),
            stopped,
        ));
        drop(stop);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sampler stops")
            .expect("sampler task");
    }
}
