//! Write fences: slots this node refuses writes for (DESIGN.md "More than one machine").
//!
//! `cluster move` fences the slots it takes away from a node before it exports them, so
//! that no write accepted before HAProxy paused them lands after the export; the fence then
//! stays (the node no longer owns those slots, and a stale route must not write there) until
//! a move gives the slots back, which lifts it. A fenced write is answered 503 with
//! `Retry-After` in the API's error shape, as HAProxy answers a paused slot.
//!
//! Fences are kept in `<data-dir>/fences.json` and a copy, each checksummed and replaced
//! atomically ([`super::fence_file`]), so a node restarted in the middle of a move still
//! refuses them. Readers check a 1024-bit set of atomics, never a lock: the check runs on
//! every write.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};

use super::fence_file;
use crate::http::{percent_decode, Resp};
use crate::slot::{self, SLOTS};

const WORDS: usize = SLOTS as usize / 64;

/// The fenced slots of this node, and where they are kept.
#[derive(Debug)]
pub struct Fences {
    bits: [AtomicU64; WORDS],
    any: AtomicBool,
    /// Writes in flight, per epoch: a fence waits for the writes admitted before it.
    epochs: [AtomicU64; 2],
    epoch: AtomicUsize,
    /// Serialises changes and their file writes; the data dir that keeps them.
    dir: Mutex<Option<PathBuf>>,
}

impl Fences {
    /// Reads the fences kept in the data dir `dir` ([`fence_file::load`]: a damaged or
    /// missing copy is logged and written again from the other); `None` keeps them in memory
    /// only (tests that run a server without a data dir).
    ///
    /// # Errors
    /// Neither copy of the fence file can be trusted: the node must not start.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let fences = Self {
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
            any: AtomicBool::new(false),
            epochs: [AtomicU64::new(0), AtomicU64::new(0)],
            epoch: AtomicUsize::new(0),
            dir: Mutex::new(None),
        };
        if let Some(dir) = dir {
            let loaded = fence_file::load(dir)?;
            for problem in &loaded.problems {
                tracing::warn!("fences: {problem}");
            }
            if loaded.rewrite {
                if let Err(e) = fence_file::write(dir, &loaded.slots, &loaded.slots) {
                    // The fences in force are right; only a copy stays as it was.
                    tracing::warn!("fences: cannot write them again: {e}");
                }
            }
            fences.apply(&loaded.slots);
        }
        *fences.dir.lock().map_err(|_| "fence lock poisoned")? = dir.map(Path::to_path_buf);
        Ok(fences)
    }

    /// Whether writes to `slot` are refused.
    pub fn contains(&self, slot: u16) -> bool {
        let i = usize::from(slot);
        self.bits
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (i % 64)) != 0)
    }

    /// Every fenced slot, in order.
    pub fn list(&self) -> Vec<u16> {
        (0..SLOTS).filter(|&s| self.contains(s)).collect()
    }

    /// Fences (`on`) or lifts the fence of `range`, written to both copies of the file before
    /// it is reported done (and before a lift takes effect, so a crash never lifts one early).
    ///
    /// # Errors
    /// The file could not be written (its I/O error, the kind kept: a full disk is 507);
    /// the fences in force did not change then.
    pub fn set(&self, range: RangeInclusive<u16>, on: bool) -> std::io::Result<Vec<u16>> {
        let dir = self
            .dir
            .lock()
            .map_err(|_| std::io::Error::other("fence lock poisoned"))?;
        let in_force: BTreeSet<u16> = self.list().into_iter().collect();
        let mut slots = in_force.clone();
        for s in range {
            if on {
                slots.insert(s);
            } else {
                slots.remove(&s);
            }
        }
        if let Some(dir) = dir.as_ref() {
            fence_file::write(dir, &slots, &in_force)?;
        }
        self.apply(&slots);
        Ok(slots.into_iter().collect())
    }

    /// Waits for the writes admitted before the fence (an RCU-like grace period: new
    /// writes join the other epoch and see the fence).
    /// Returns whether they all finished (a write stuck past 30 s is reported, not waited).
    pub async fn drain(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let old = self.epoch.load(Ordering::SeqCst);
        for e in [1 - old, old] {
            // First the previous grace period's stragglers, then this one's.
            if e == old {
                self.epoch.store(1 - old, Ordering::SeqCst);
            }
            while self.epochs[e].load(Ordering::SeqCst) != 0 {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        true
    }

    fn apply(&self, slots: &BTreeSet<u16>) {
        let mut words = [0u64; WORDS];
        for &s in slots.iter().filter(|&&s| s < SLOTS) {
            words[usize::from(s) / 64] |= 1 << (s % 64);
        }
        for (atomic, word) in self.bits.iter().zip(words) {
            atomic.store(word, Ordering::SeqCst);
        }
        self.any.store(!slots.is_empty(), Ordering::SeqCst);
    }

    /// Admits a request: reads (GET, HEAD, OPTIONS and Akka's `POST /batch/get`, routed by
    /// HAProxy's read map) pass; a write gets a guard that a fence waits for.
    ///
    /// # Errors
    /// The 503 (API-shaped, `Retry-After`) for a write to a fenced slot.
    pub fn admit(&self, req: &Request<Incoming>) -> Result<Option<WriteGuard<'_>>, Resp> {
        if is_read(req) || req.uri().path().starts_with("/admin") {
            return Ok(None);
        }
        let guard = loop {
            let e = self.epoch.load(Ordering::SeqCst);
            self.epochs[e].fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == e {
                break WriteGuard {
                    fences: self,
                    epoch: e,
                };
            }
            self.epochs[e].fetch_sub(1, Ordering::SeqCst);
        };
        if !self.any.load(Ordering::SeqCst) {
            return Ok(Some(guard));
        }
        match shard_key(req) {
            Some((api, key)) if self.contains(slot::of_key(&key)) => {
                Err(unavailable(api, slot::of_key(&key), req))
            }
            _ => Ok(Some(guard)),
        }
    }
}

/// A write in flight; dropping it lets a waiting fence go on.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    fences: &'a Fences,
    epoch: usize,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.fences.epochs[self.epoch].fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether HAProxy routes `req` by the read map (the generated config says the same).
pub fn is_read(req: &Request<Incoming>) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path() == "/batch/get"
}

/// Which API a request is for, by its path, as the router and HAProxy decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// `/v1/cache/…`
    Flash,
    /// `/1/…`
    Iron,
    /// Everything else.
    Akka,
}

/// The request's shard key as HAProxy computes it: Flash the `ClientId` header, IronCache
/// `path,field(4,/),url_dec,lower`, Akka the JWT payload's `org` (not verified here: the
/// handler verifies it; a forged token is refused there anyway).
pub fn shard_key(req: &Request<Incoming>) -> Option<(ApiKind, Vec<u8>)> {
    let path = req.uri().path();
    if path.starts_with("/v1/cache/") {
        let id = req.headers().get("clientid")?;
        return Some((ApiKind::Flash, id.as_bytes().to_vec()));
    }
    if path.starts_with("/1/") {
        let field = path.split('/').nth(3).filter(|f| !f.is_empty())?;
        let project = percent_decode(field)?.to_ascii_lowercase();
        return Some((ApiKind::Iron, project.into_bytes()));
    }
    let token = req
        .headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(crate::http::bearer_token)?;
    let payload = BASE64URL.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let org = claims.get("org")?.as_str()?;
    Some((ApiKind::Akka, org.as_bytes().to_vec()))
}

/// The request header in which the cluster's HAProxy tells a node the slot it routed the
/// request by (`none`: it read no shard key). Generated by `cluster haproxy`, which replaces
/// any a client sent; a node that gets none (no proxy in front) checks nothing.
pub const PROXY_SLOT: HeaderName = HeaderName::from_static("x-ttlcask-slot");

/// Whether HAProxy routed `req` by another slot than the one this node reads from it (or by
/// none while this node reads one), so that its data would land on a node that does not own
/// it. Found from outside (thirteenth session): an Akka JWT whose payload spells `"o\u0072g"`
/// is valid JSON for `org`, which the node decodes, but HAProxy's `jwt_payload_query('$.org')`
/// finds no key and sent it round-robin: one org's items landed on several nodes. Without
/// the header (a single node, or a proxy config from before) it is `false`.
pub fn misrouted(req: &Request<Incoming>) -> bool {
    // A constant name: a `&str` was parsed and checked at every request (400 of a durable
    // POST's 31,000 instructions, callgrind).
    let Some(given) = req.headers().get(&PROXY_SLOT) else {
        return false;
    };
    let proxy = given
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok());
    // HAProxy reads an IronCache project only under `/1/projects/`.
    let path = req.uri().path();
    let mine = shard_key(req)
        .filter(|(api, _)| *api != ApiKind::Iron || path.starts_with("/1/projects/"))
        .map(|(_, key)| slot::of_key(&key));
    mine.is_some() && mine != proxy
}

/// 503 with `Retry-After` in the API's error shape.
fn unavailable(api: ApiKind, slot: u16, req: &Request<Incoming>) -> Resp {
    let mut resp = match api {
        ApiKind::Flash => crate::flash::refuse(
            req,
            StatusCode::SERVICE_UNAVAILABLE,
            "This account is being moved to another node; retry shortly",
        ),
        ApiKind::Iron => crate::iron::msg(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("slot {slot} is being moved to another node; retry shortly"),
        ),
        ApiKind::Akka => crate::http::with_body(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::http::TEXT,
            format!("slot {slot} is being moved to another node; retry shortly"),
        ),
    };
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_persist_and_lift() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let fences = Fences::load(Some(dir.path()))?;
        assert!(!fences.contains(5));
        fences.set(3..=70, true).map_err(|e| e.to_string())?;
        fences.set(10..=20, false).map_err(|e| e.to_string())?;
        let again = Fences::load(Some(dir.path()))?;
        assert!(again.contains(3) && again.contains(70) && !again.contains(15));
        assert!(!again.contains(71) && !again.contains(1023));
        assert_eq!(again.list().len(), 68 - 11);
        Ok(())
    }
}
