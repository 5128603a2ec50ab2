//! `GET /admin/export` and `POST /admin/import`: a running server's data out and in, both
//! streamed, so neither a store's export nor an import's body is ever held whole in memory.
//!
//! - Export runs [`maintenance::export`] on the blocking pool, writing 64 KiB chunks into a
//!   bounded channel that is the response body (a slow client slows the export). A failure
//!   half-way aborts the response, so the client sees it cut short, never complete.
//! - Import reads the body frame by frame (the `admin_body_bytes` limit does not apply),
//!   splits it into lines, and hands each batch of lines to an [`Importer`] on the blocking
//!   pool before it reads on: memory stays at one batch (at most `batch` lines and
//!   [`MAX_BATCH_BYTES`]) plus one line (at most [`MAX_LINE_BYTES`]). The answer is the
//!   [`ImportReport`]; on a failure, `{"error", "report"}` with what was done before, after
//!   the rest of the body was read and dropped (so the client can read the answer).

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::error;
use crate::auth::registry::Registry;
use crate::faults;
use crate::http::{self, blocking, query_param, Body, Resp};
use crate::maintenance::import::{MAX_BATCH_BYTES, MAX_LINE_BYTES};
use crate::maintenance::{self, ExportFilter, ImportError, Importer};
use crate::server::AppState;

/// Bytes per chunk of an export response.
const EXPORT_CHUNK: usize = 64 << 10;
/// Chunks an export may run ahead of the client.
const EXPORT_CHUNKS_AHEAD: usize = 4;
/// Lines per batch of an import, unless `?batch=` says otherwise.
const DEFAULT_BATCH: usize = 1000;

/// `GET /admin/export[?tenant=&slot=A..B&registry=]`.
pub fn export(state: &AppState, query: Option<&str>) -> Resp {
    let filter = match ExportFilter::from_query(query) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (tx, body) = Body::channel(EXPORT_CHUNKS_AHEAD);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(EXPORT_CHUNK),
        };
        if let Err(e) = maintenance::export(&store, &mut out, &filter, |_, _| {}) {
            if tx.is_closed() {
                tracing::debug!(error = %e, "export stopped: the client went away");
            } else {
                tracing::warn!(error = %e, "export failed; the response is cut short");
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
            }
        }
    });
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Sends what is written as chunks of [`EXPORT_CHUNK`] bytes; runs on the blocking pool.
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Why an import over HTTP stopped.
enum Stop {
    Import(ImportError),
    Body(http::BodyError),
    Internal(String),
}

impl Stop {
    fn status(&self) -> StatusCode {
        match self {
            Self::Import(ImportError::Write { error, .. }) => faults::write_status(error),
            Self::Body(e) => e.status(),
            Self::Import(_) => StatusCode::BAD_REQUEST,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Import(e) => e.to_string(),
            Self::Body(e) => e.to_string(),
            Self::Internal(e) => e.clone(),
        }
    }
}

/// `POST /admin/import[?batch=N][&over_clears=true]` with export lines as the body.
pub async fn import(state: &AppState, req: Request<Incoming>, query: Option<&str>) -> Resp {
    let (batch, over_clears) = match import_params(query) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // Held until the import is over, by the request and by any batch on the blocking pool
    // (which goes on if the client goes away and the request is dropped).
    let running = Arc::new(state.transfers.clone().read_owned().await);
    // A body that stops arriving is answered 408 after the idle timeout, as the APIs' are:
    // a stalled import held its connection and the transfer lock, and every drop behind
    // it, for ever (found from outside).
    let idle = state.body_budget.idle_timeout();
    let mut body = http::Idle::new(req.into_body(), idle);
    let mut run = ImportRun {
        running,
        importer: Some(Importer::new(batch).over_clears(over_clears)),
        lines: Vec::new(),
        line_bytes: 0,
        batch,
    };
    let stopped = run.feed(state, &mut body, idle).await.err();
    if stopped.is_some() && !matches!(stopped, Some(Stop::Body(_))) {
        // Read the rest so that the client, still sending, gets the answer.
        while let Some(Ok(_)) = body.frame().await {}
    }
    let report = run
        .importer
        .as_ref()
        .map(|i| i.report().clone())
        .unwrap_or_default();
    if report.registry_records > 0 {
        reload_registry(state).await;
    }
    match stopped {
        None => http::json(StatusCode::OK, &report),
        Some(stop) => http::json(
            stop.status(),
            &json!({ "error": stop.message(), "report": report }),
        ),
    }
}

/// The batch size and whether items go in over newer clears ([`Importer::over_clears`]).
fn import_params(query: Option<&str>) -> Result<(usize, bool), String> {
    use crate::http::ParamProblem;
    crate::http::check_param_names(query, &["batch", "over_clears"]).map_err(|p| match p {
        ParamProblem::Unknown(name) => {
            format!("unknown import parameter {name:?}: use batch= or over_clears=")
        }
        ParamProblem::Repeated(name) => format!("{name}= is given twice"),
    })?;
    let batch = match query_param(query, "batch") {
        None => DEFAULT_BATCH,
        Some(b) => crate::maintenance::import::parse_batch(&b)?,
    };
    let over_clears = match query_param(query, "over_clears").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("over_clears={v:?}: use true or false")),
    };
    Ok((batch, over_clears))
}

/// An import in progress: the lines of the next batch, and the importer between batches.
struct ImportRun {
    /// The node's transfer lock, held shared (see [`AppState::transfers`]).
    running: Arc<tokio::sync::OwnedRwLockReadGuard<()>>,
    /// `None` only while a batch is applied on the blocking pool.
    importer: Option<Importer>,
    lines: Vec<Vec<u8>>,
    line_bytes: usize,
    batch: usize,
}

impl ImportRun {
    async fn feed(
        &mut self,
        state: &AppState,
        body: &mut http::Idle<Incoming>,
        idle: std::time::Duration,
    ) -> Result<(), Stop> {
        let mut partial: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Stop::Body(http::body_error(e, idle)))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let mut rest = &data[..];
            while let Some(end) = rest.iter().position(|&b| b == b'\n') {
                partial.extend_from_slice(&rest[..end]);
                self.push(std::mem::take(&mut partial));
                rest = &rest[end + 1..];
                if self.lines.len() >= self.batch || self.line_bytes >= MAX_BATCH_BYTES {
                    self.apply(state).await?;
                }
            }
            partial.extend_from_slice(rest);
            if partial.len() > MAX_LINE_BYTES {
                let done = self.importer.as_ref().map_or(0, |i| i.report().lines);
                return Err(Stop::Import(ImportError::Line {
                    line: done + self.lines.len() as u64 + 1,
                    message: format!("longer than {MAX_LINE_BYTES} bytes"),
                }));
            }
        }
        if !partial.is_empty() {
            self.push(partial);
        }
        self.apply(state).await
    }

    fn push(&mut self, line: Vec<u8>) {
        self.line_bytes += line.len();
        self.lines.push(line);
    }

    /// Applies the collected lines and writes their batch (on the blocking pool).
    async fn apply(&mut self, state: &AppState) -> Result<(), Stop> {
        let lines = std::mem::take(&mut self.lines);
        self.line_bytes = 0;
        let Some(mut importer) = self.importer.take() else {
            return Err(Stop::Internal("import state lost".into()));
        };
        let running = self.running.clone();
        let (importer, result) = blocking(&state.store, move |s| {
            let _running = running;
            let result = lines
                .iter()
                .try_for_each(|l| importer.line(s, l))
                .and_then(|()| importer.flush(s));
            (importer, result)
        })
        .await
        .map_err(Stop::Internal)?;
        self.importer = Some(importer);
        result.map_err(Stop::Import)
    }
}

/// Reloads the in-memory registry after an import wrote tenant or credential records, so
/// they take effect at once.
async fn reload_registry(state: &AppState) {
    match blocking(&state.store, Registry::load).await {
        Ok(Ok(loaded)) => match state.auth.registry().write() {
            Ok(mut r) => *r = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        },
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot reload the registry after an import"),
        Err(e) => tracing::warn!(error = %e, "cannot reload the registry after an import"),
    }
}
