//! What the three API dialects share: reading a body through a size limit, building
//! responses, splitting and percent-decoding paths, and running engine calls off the
//! async workers.

use bytes::Bytes;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use ttlcask_engine::Store;

use crate::server::AppState;

pub use crate::body::Body;

/// The response type of every handler.
pub type Resp = Response<Body>;

/// `application/json`.
pub const JSON: &str = "application/json";
/// Plain text, as the Akka runtime answers errors.
pub const TEXT: &str = "text/plain; charset=UTF-8";
/// Bytes as stored (Akka binary items).
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (by header or by counting).
    TooLarge(usize),
    /// The connection failed while reading.
    Read(String),
    /// The memory budget of bodies in flight is used up (for everyone, or for this
    /// tenant's half): 503 with `Retry-After`.
    Busy,
    /// No byte of the body came for this long while the server waited for it: 408.
    Stalled(Duration),
}

impl BodyError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) | Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "request body is larger than {limit} bytes"),
            Self::Read(e) => write!(f, "cannot read request body: {e}"),
            Self::Busy => f.write_str(
                "the server holds as many request bodies in memory as it allows; retry shortly",
            ),
            Self::Stalled(idle) => write!(
                f,
                "the request body stopped arriving: no byte for {} ms",
                idle.as_millis()
            ),
        }
    }
}

/// The memory that request bodies in flight may hold together ([`Limits::body_budget_bytes`]),
/// at most half of it for one tenant: without it, a thousand connections uploading the
/// largest Akka value each would hold 8 GiB.
///
/// [`Limits::body_budget_bytes`]: crate::config::Limits::body_budget_bytes
#[derive(Debug)]
pub struct BodyBudget {
    total: u64,
    used: std::sync::Mutex<(u64, std::collections::HashMap<String, u64>)>,
    /// How long a body may go without a byte while it is waited for
    /// ([`Limits::body_idle_timeout_ms`](crate::config::Limits::body_idle_timeout_ms)):
    /// a stalled upload would otherwise hold its connection and its share of the budget
    /// for ever.
    idle: Duration,
}

/// Bodies whose declared length is at most this are not counted against the budget (see
/// [`read_body`]).
pub const UNCOUNTED_BODY_BYTES: u64 = 4096;

/// How long a body waits for the budget before it is refused.
const BUDGET_PATIENCE: Duration = Duration::from_millis(50);

impl BodyBudget {
    /// A budget of `total` bytes, for bodies that may go `idle` without a byte.
    pub fn new(total: u64, idle: Duration) -> Arc<Self> {
        Arc::new(Self {
            total,
            used: std::sync::Mutex::new((0, std::collections::HashMap::new())),
            idle,
        })
    }

    /// How long a body may go without a byte while it is waited for.
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// Bytes held by bodies right now.
    pub fn in_use(&self) -> u64 {
        self.lock().0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, std::collections::HashMap<String, u64>)> {
        // The counts stay consistent even if a holder panicked: take them as they are.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_take(&self, tenant: &str, n: u64) -> bool {
        let mut used = self.lock();
        let mine = used.1.get(tenant).copied().unwrap_or(0);
        if used.0 + n > self.total || mine + n > self.total / 2 {
            return false;
        }
        used.0 += n;
        *used.1.entry(tenant.to_string()).or_insert(0) += n;
        true
    }

    fn give_back(&self, tenant: &str, n: u64) {
        let mut used = self.lock();
        used.0 = used.0.saturating_sub(n);
        if let Some(mine) = used.1.get_mut(tenant) {
            *mine = mine.saturating_sub(n);
            if *mine == 0 {
                used.1.remove(tenant);
            }
        }
    }
}

/// Bytes of the budget held by one body; given back when the body's bytes are dropped.
#[derive(Debug)]
struct Held {
    budget: Arc<BodyBudget>,
    tenant: String,
    bytes: u64,
}

impl Held {
    async fn grow_to(&mut self, bytes: u64) -> Result<(), BodyError> {
        if bytes <= self.bytes {
            return Ok(());
        }
        let more = bytes - self.bytes;
        let deadline = tokio::time::Instant::now() + BUDGET_PATIENCE;
        while !self.budget.try_take(&self.tenant, more) {
            if tokio::time::Instant::now() >= deadline {
                return Err(BodyError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(&self.tenant, self.bytes);
    }
}

/// A body's bytes and the budget they hold, released together.
struct Owned {
    bytes: Vec<u8>,
    _held: Held,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

tokio::task_local! {
    /// Set once a request's body was read to its end, in the task that serves a request with
    /// a body (the router scopes it): a refusal with the body unread says `Connection: close`.
    pub static BODY_READ: std::cell::Cell<bool>;
}

/// Reads the whole body, refusing more than `limit` bytes whatever Content-Length says.
/// With a budget (and the tenant the body counts against), the body's bytes hold their
/// share of it until the returned `Bytes` (and every clone) are dropped.
pub async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    budget: Option<(&Arc<BodyBudget>, &str)>,
) -> Result<Bytes, BodyError> {
    let idle = budget.map_or(Duration::MAX, |(b, _)| b.idle);
    read_marked(req, limit, budget, idle).await
}

/// [`read_body`] of a body that counts against no budget (the admin endpoint's), which may
/// still go `idle` without a byte for no longer than that: a stalled admin request held its
/// connection for ever, and a stalled import every drop behind it (found from outside).
pub async fn read_unbudgeted_body(
    req: Request<Incoming>,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    read_marked(req, limit, None, idle).await
}

/// [`read_whole_body`], and [`BODY_READ`] set once the body was read to its end.
async fn read_marked(
    req: Request<Incoming>,
    limit: usize,
    budget: Option<(&Arc<BodyBudget>, &str)>,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    let body = read_whole_body(req, limit, budget, idle).await;
    if body.is_ok() {
        let _ = BODY_READ.try_with(|read| read.set(true));
    }
    body
}

async fn read_whole_body(
    req: Request<Incoming>,
    limit: usize,
    budget: Option<(&Arc<BodyBudget>, &str)>,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let read_error = |e| body_error(e, idle);
    // Small declared bodies skip the budget's bookkeeping (a shared lock, a per-tenant map,
    // five allocations: 1,500 of a durable POST's 31,000 instructions): together they hold
    // at most `max_connections` × UNCOUNTED_BODY_BYTES (4 MiB at the default cap).
    let budget = budget.filter(|_| declared.is_none_or(|n| n > UNCOUNTED_BODY_BYTES));
    let Some((budget, tenant)) = budget else {
        return match Limited::new(Idle::new(req.into_body(), idle), limit)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
            Err(e) => Err(read_error(e)),
        };
    };
    let mut held = Held {
        budget: budget.clone(),
        tenant: tenant.to_string(),
        bytes: 0,
    };
    // A declared length is reserved before a byte is read; otherwise the bytes are
    // reserved as they come.
    held.grow_to(declared.unwrap_or(0)).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(held.bytes).unwrap_or(0));
    let mut body = Idle::new(req.into_body(), idle);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(read_error)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        held.grow_to((bytes.len() + data.len()) as u64).await?;
        bytes.extend_from_slice(&data);
    }
    Ok(Bytes::from_owner(Owned { bytes, _held: held }))
}

/// The [`BodyError`] of a frame error of an [`Idle`] body that may go `idle`.
pub fn body_error(e: Box<dyn std::error::Error + Send + Sync>, idle: Duration) -> BodyError {
    match e.downcast::<Stalled>() {
        Ok(_) => BodyError::Stalled(idle),
        Err(e) => BodyError::Read(e.to_string()),
    }
}

/// The error of a body that went idle too long (see [`Idle`]).
#[derive(Debug)]
struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body stopped arriving")
    }
}

impl std::error::Error for Stalled {}

/// A request body whose next frame must come within `idle` of being waited for. The timer
/// starts only when a poll finds nothing (a body that came with its head never arms one)
/// and is dropped at each frame, so time the reader spends between polls never counts.
pub struct Idle<B> {
    inner: B,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Idle<B> {
    /// `inner`, whose frames must each come within `idle` (`Duration::MAX`: no limit).
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: None,
        }
    }
}

impl<B> hyper::body::Body for Idle<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.idle == Duration::MAX => Poll::Pending,
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response with a body and a content type.
pub fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, content_type_value(content_type));
    resp
}

/// `content_type` as a header value: the common ones are constants, as `from_static` checks
/// every byte at run time (270 instructions of an Akka GET for `application/octet-stream`).
pub fn content_type_value(content_type: &'static str) -> HeaderValue {
    const JSON_VALUE: HeaderValue = HeaderValue::from_static(JSON);
    const TEXT_VALUE: HeaderValue = HeaderValue::from_static(TEXT);
    const OCTET_STREAM_VALUE: HeaderValue = HeaderValue::from_static(OCTET_STREAM);
    match content_type {
        JSON => JSON_VALUE,
        TEXT => TEXT_VALUE,
        OCTET_STREAM => OCTET_STREAM_VALUE,
        other => HeaderValue::from_static(other),
    }
}

/// A response without a body (`Content-Length: 0`).
pub fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = status;
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, JSON, body),
        Err(_) => with_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            "cannot encode response",
        ),
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes. Keys and values rarely need
/// escaping; those are copied in one go instead of byte by byte.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // No early exit, so that the check compiles to vector compares.
    let needs_escape = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing into a Vec cannot fail; keep the output valid JSON regardless.
        out.extend_from_slice(b"null");
    }
}

/// Splits a raw path on `/` (ignoring the leading one) and percent-decodes each segment.
/// `+` stays a literal `+`. `None` if a segment is not valid UTF-8 after decoding.
pub fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed.split('/').map(percent_decode_strict).collect()
}

/// A path segment percent-decoded: `None` unless every `%` begins an escape (`%` and two hex
/// digits, RFC 3986) and the bytes are UTF-8. A `%` that is no escape was kept as written,
/// so `c%zz` and `c%25zz` named one cache (found from outside). Query values stay lenient
/// ([`percent_decode`]): `?q=100%` is what a shell script sends.
pub fn percent_decode_strict(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let escapes_whole = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).copied().and_then(hex_val).is_some()
                && bytes.get(i + 2).copied().and_then(hex_val).is_some())
    });
    escapes_whole.then(|| percent_decode(s)).flatten()
}

/// [`segments`] without copying: borrows the segments of a path that has no `%`, and keeps
/// decoded ones in `decoded` otherwise.
pub fn split_path<'a>(path: &'a str, decoded: &'a mut Vec<String>) -> Option<Vec<&'a str>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    if !trimmed.bytes().any(|b| b == b'%') {
        // Sized first: collected into a growing vector, an IronCache item path's seven
        // segments took two allocations and a copy (callgrind: 1,400 instructions a GET for
        // the split before, 1,200 after, of about 21,000).
        let mut segs = Vec::with_capacity(1 + trimmed.bytes().filter(|&b| b == b'/').count());
        segs.extend(split_slash(trimmed));
        return Some(segs);
    }
    *decoded = segments(path)?;
    Some(decoded.iter().map(String::as_str).collect())
}

/// `s.split('/')`, faster on paths: segments are short, and a byte loop beats the setup of
/// the `char` pattern's memchr on each one.
pub fn split_slash(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Percent-decodes one segment; a `%` not followed by two hex digits is kept as is.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The value of query parameter `name`, percent-decoded (`+` as a space, as forms encode it).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query_params(query, name).next()
}

/// Every value of query parameter `name`, in order, percent-decoded as [`query_param`]
/// (values that are not UTF-8 after decoding are skipped).
pub fn query_params<'a>(
    query: Option<&'a str>,
    name: &'a str,
) -> impl Iterator<Item = String> + 'a {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (query_name(k).as_deref() == Some(name))
                .then(|| percent_decode(&v.replace('+', " ")))?
        })
}

/// A query parameter's name `k` as it reads decoded (`o%61uth` is `oauth`, RFC 3986 section
/// 2.3: found from outside, an encoded name was ignored, and did not count as a second
/// credential); a name without `%` or `+` is borrowed as it is. `None`: not UTF-8 decoded.
pub fn query_name(k: &str) -> Option<std::borrow::Cow<'_, str>> {
    if k.contains(['%', '+']) {
        percent_decode(&k.replace('+', " ")).map(std::borrow::Cow::Owned)
    } else {
        Some(std::borrow::Cow::Borrowed(k))
    }
}

/// Why a query's parameter names do not fit a route (see [`check_param_names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamProblem {
    /// A name the route does not take: decoded, or as given where that is not UTF-8.
    Unknown(String),
    /// A name the route takes, given more than once.
    Repeated(&'static str),
}

/// Checks a query's parameter names against the ones a route `takes`: each name read
/// decoded, as [`query_params`] reads it, so that an encoded name is neither unknown here
/// nor ignored there. Empty pairs (`a=1&&b=2`) are skipped. The admin routes, export and
/// import each had a loop of their own, two of which compared names undecoded.
///
/// # Errors
/// The first unknown name, else the first name given twice.
pub fn check_param_names(query: Option<&str>, takes: &[&'static str]) -> Result<(), ParamProblem> {
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let raw = pair.split_once('=').map_or(pair, |(n, _)| n);
        let name = query_name(raw).unwrap_or(std::borrow::Cow::Borrowed(raw));
        if !name.is_empty() && !takes.contains(&name.as_ref()) {
            return Err(ParamProblem::Unknown(name.into_owned()));
        }
    }
    match takes
        .iter()
        .find(|name| query_params(query, name).nth(1).is_some())
    {
        Some(name) => Err(ParamProblem::Repeated(name)),
        None => Ok(()),
    }
}

/// A header sent more than once where one value is expected (a credential): refused
/// rather than resolved by picking one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// The token of an `Authorization` value in the `Bearer` scheme, the scheme's name in any
/// case (RFC 9110 §11.1; the admin token was refused as `bearer`: found from outside).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The only value of header `name`: `Ok(None)` when absent, `Err(Repeated)` when it came
/// more than once.
pub fn single_header<'a>(
    headers: &'a hyper::HeaderMap,
    name: &hyper::header::HeaderName,
) -> Result<Option<&'a HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) | (None, Some(_)) => Err(Repeated),
    }
}

/// The value of header `name` where every line of it agrees: `Ok(None)` when absent,
/// `Err(Repeated)` when two lines differ. For a header that says one thing (`Content-Type`)
/// and that scripts repeat by copy and paste: identical lines are no guess.
pub fn agreed_header<'a>(
    headers: &'a hyper::HeaderMap,
    name: &hyper::header::HeaderName,
) -> Result<Option<&'a HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match first {
        Some(first) if values.any(|v| v != first) => Err(Repeated),
        _ => Ok(first),
    }
}

/// Runs `f` on the blocking pool: engine calls do file I/O and may fsync.
pub async fn blocking<T, F>(store: &Store, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> T + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| format!("internal task failed: {e}"))
}

/// Reads one item: inline when the engine can answer without waiting for the disk (the
/// common, hot case: no thread hand-off), else on the blocking pool like [`blocking`].
/// A damaged or lost record is a miss (`Ok(Ok(None))`), counted and logged by
/// [`DamagedReads`](crate::faults::DamagedReads).
/// Borrows its names: only a read handed to the blocking pool copies them.
pub async fn get_item(
    state: &AppState,
    namespace: &[u8],
    key: &[u8],
) -> Result<Result<Option<ttlcask_engine::Item>, ttlcask_engine::ReadError>, String> {
    let store = &state.store;
    let read = match store.try_get(namespace, key) {
        Ok(found) => Ok(found),
        Err(ttlcask_engine::TryGetError::Read(e)) => Err(e),
        Err(_) => {
            let (namespace, key) = (namespace.to_vec(), key.to_vec());
            blocking(store, move |s| s.get(&namespace, &key)).await?
        }
    };
    Ok(state.damaged_reads.as_miss(read))
}

/// Stores one item (only if `condition`, when given, holds) and answers once it is durable
/// under the store's policy: appended inline when that need not wait, then acknowledged by
/// the engine's sync thread, which shares one fsync among every waiting write; otherwise
/// (a busy writer, a segment to start) on the blocking pool like [`blocking`].
/// `Ok(Ok(None))`: the condition failed and nothing was stored.
pub async fn put_item(
    store: &Store,
    namespace: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
    options: ttlcask_engine::PutOptions,
    condition: Option<ttlcask_engine::Condition>,
) -> Result<Result<Option<u64>, ttlcask_engine::WriteError>, String> {
    use ttlcask_engine::DeferredError;
    match store.try_put_deferred(&namespace, &key, &value, options, condition) {
        Ok((version, ticket)) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            store.when_durable(ticket, move |r| {
                let _ = tx.send(r);
            });
            match rx.await {
                Ok(Ok(())) => Ok(Ok(version)),
                Ok(Err(e)) => Ok(Err(e)),
                Err(_) => Err("the store closed before the write was durable".into()),
            }
        }
        Err(DeferredError::Write(e)) => Ok(Err(e)),
        Err(_) => {
            blocking(store, move |s| match condition {
                None => s.put(&namespace, &key, &value, options).map(Some),
                Some(c) => s.put_if(&namespace, &key, &value, options, c),
            })
            .await
        }
    }
}

/// Random bytes from the OS as lowercase hex, for secrets: an error, never a weaker value,
/// if the OS generator fails.
///
/// # Errors
/// When the operating system's random generator fails.
pub fn secret_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)
        .map_err(|e| format!("the operating system's random generator failed: {e}"))?;
    Ok(hex(&buf))
}

/// Random bytes as lowercase hex, for ids that must be unique but not secret (request ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::getrandom(&mut buf).is_err() {
        // The OS generator failing is not recoverable in a sane way; fall back to time-based
        // bytes so ids stay unique enough. Secrets use `secret_hex`, which errors instead.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
    hex(&buf)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_checked_decoded() {
        let takes = ["tenant", "slot"];
        let check = |q: &str| check_param_names(Some(q), &takes);
        assert_eq!(check("tenant=a&&slot=1"), Ok(()));
        assert_eq!(check("t%65nant=a"), Ok(()), "an encoded name is the name");
        assert_eq!(check_param_names(None, &takes), Ok(()));
        assert_eq!(
            check("tenant=a&t%65nant=b"),
            Err(ParamProblem::Repeated("tenant")),
            "an encoded name counts as a second one"
        );
        assert_eq!(check("slot=1&slot=2"), Err(ParamProblem::Repeated("slot")));
        assert_eq!(
            check("tenant=a&x%79=1"),
            Err(ParamProblem::Unknown("xy".into()))
        );
        assert_eq!(
            check("%FF=1"),
            Err(ParamProblem::Unknown("%FF".into())),
            "not UTF-8 decoded: named as given"
        );
    }

    #[test]
    fn decodes_segments() {
        assert_eq!(
            segments("/1/a%20b/c+d/%E5%90%8D/%2F"),
            Some(vec![
                "1".into(),
                "a b".into(),
                "c+d".into(),
                "名".into(),
                "/".into()
            ])
        );
        assert_eq!(segments("/"), Some(vec![]));
        for path in [
            "/",
            "/a",
            "/1/a%20b/c+d/%E5%90%8D/%2F",
            "/a//b/",
            "/a/%ff",
            "/%",
        ] {
            let mut decoded = Vec::new();
            assert_eq!(
                split_path(path, &mut decoded).map(|v| v.join("\0")),
                segments(path).map(|v| v.join("\0")),
                "{path}"
            );
        }
        assert_eq!(segments("/a/%ff"), None);
        assert_eq!(percent_decode("100%"), Some("100%".into()));
        assert_eq!(percent_decode("%4"), Some("%4".into()));
        assert_eq!(percent_decode("%41"), Some("A".into()));
        assert_eq!(percent_decode_strict("%41%2f%25"), Some("A/%".into()));
        for bad in ["100%", "%4", "%zz", "a%g0", "%%41", "%\u{e9}1"] {
            assert_eq!(percent_decode_strict(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_strings_match_serde() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "é 名 \u{7f}",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).expect("string"), "{s:?}");
        }
    }

    #[test]
    fn splits_like_str_split() {
        for s in ["", "/", "a", "a/b", "/a//b/", "名/x/", "//"] {
            assert_eq!(
                split_slash(s).collect::<Vec<_>>(),
                s.split('/').collect::<Vec<_>>(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn query() {
        assert_eq!(
            query_param(Some("a=1&oauth=x%20y"), "oauth"),
            Some("x y".into())
        );
        assert_eq!(query_param(Some("page"), "page"), Some(String::new()));
        assert_eq!(query_param(None, "page"), None);
        assert_eq!(
            query_params(Some("oauth=a&x=1&oauth=b"), "oauth").collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
