//! The whole server in one call: [`run`] accepts connections on a listener, serves each with
//! hyper's HTTP/1 under a connection cap and a header read timeout, and on shutdown stops
//! accepting, lets in-flight requests finish, stops the status page's sampler, and syncs the
//! store. It starts by logging the store's recovery report (at warn when opening found
//! damage).

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tracing::{debug, info, warn};
use ttlcask_engine::Store;

use crate::admin::fence::Fences;
use crate::auth::jwt::JwtVerifier;
use crate::auth::{Authenticator, Registry};
use crate::config::Config;
use crate::faults::{self, DamagedReads};
use crate::head_timeout::{self, HeadWatch, Tracked, Watched};
use crate::http::blocking;
use crate::linger::Lingering;
use crate::metrics::Metrics;
use crate::router;
use crate::status::history::{self, History};

/// What every request handler can reach.
pub struct AppState {
    /// The engine.
    pub store: Store,
    /// Limits and API options.
    pub config: Config,
    /// Credentials of the three APIs.
    pub auth: Authenticator,
    /// The admin endpoint's bearer token, when the endpoint is on.
    pub admin_token: Option<String>,
    /// Request and connection counters for `/metrics` and the status page.
    pub metrics: Arc<Metrics>,
    /// Reads of damaged or lost records, answered as misses.
    pub damaged_reads: Arc<DamagedReads>,
    /// The last hour of traffic for the status page's charts, sampled by a timer task.
    pub history: Arc<History>,
    /// Memory that request bodies in flight may hold together.
    pub body_budget: Arc<crate::http::BodyBudget>,
    /// Slots this node refuses writes for (a cluster moves them away).
    pub fences: Fences,
    /// Imports hold it shared for as long as they run, `/admin/drop` exclusively: a drop
    /// never runs beside an import still applying batches (a `cluster move` killed during
    /// its copy, then undone, dropped the slots while the dead run's import went on, and
    /// left its copies behind: found from outside).
    pub transfers: Arc<tokio::sync::RwLock<()>>,
    /// Random per start: `/admin/stats` shows it, so that `cluster move` can tell one
    /// server reached at two addresses of a cluster file (`127.0.0.1:P` and
    /// `localhost:P`) from two servers (it moved a slot "between" them and dropped it: found
    /// from outside).
    pub instance: String,
}

/// Why the server could not start or stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// `--dev` was asked on a non-loopback address.
    DevNotLoopback(String),
    /// The configuration is unusable (bad key, unreadable file).
    Config(String),
    /// A file of the server's own in the data dir (fences, admin token) is damaged or
    /// unreadable; the message names it and says what to do.
    DataDir(String),
    /// Reading tenants and credentials from the store failed.
    Registry(String),
    /// The final sync failed: acknowledged writes may not be durable under `every`/`never`.
    Sync(String),
    /// A socket error.
    Io(std::io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DevNotLoopback(addr) => write!(
                f,
                "--dev accepts the public sample credentials and binds loopback only; {addr} is not a loopback address (use 127.0.0.1 or ::1)"
            ),
            Self::Config(m) => write!(f, "invalid configuration: {m}"),
            Self::DataDir(m) => write!(f, "cannot use the data dir: {m}"),
            Self::Registry(m) => write!(f, "cannot read tenants and credentials: {m}"),
            Self::Sync(m) => write!(f, "final sync failed: {m}"),
            Self::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Serves the three APIs on `listener` until `shutdown` completes, then drains in-flight
/// requests (up to `limits.shutdown_grace_ms`) and syncs the store.
///
/// # Errors
/// See [`ServerError`].
pub async fn run(
    listener: TcpListener,
    store: Store,
    config: Config,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    if config.dev && !addr.ip().is_loopback() {
        return Err(ServerError::DevNotLoopback(addr.to_string()));
    }
    config.limits.check().map_err(ServerError::Config)?;
    // Damage is never silent: what opening the store found is the first thing logged.
    faults::log_recovery(&store.recovery_report());
    let registry = blocking(&store, Registry::load)
        .await
        .map_err(ServerError::Registry)?
        .map_err(|e| ServerError::Registry(e.to_string()))?;
    let verifier = JwtVerifier::new(&config.akka, config.dev).map_err(ServerError::Config)?;
    let admin_token = match &config.admin_token_path {
        Some(path) => match load_or_create_admin_token(path) {
            Ok(token) => Some(token),
            // A full disk never keeps the server from starting: the APIs serve reads and
            // the deletes that free space, and the admin endpoint stays off until a start
            // can write the token (found from outside: with `admin.token` deleted on a disk
            // out of inodes, the start failed, and nothing could free space).
            Err(e) if e.out_of_space => {
                tracing::error!(
                    "the admin endpoint is off: {e}; free space (delete items through the APIs) and restart for a new token"
                );
                None
            }
            Err(e) => return Err(ServerError::DataDir(e.message)),
        },
        None => None,
    };
    let fences = Fences::load(config.data_dir.as_deref()).map_err(ServerError::DataDir)?;
    let state = Arc::new(AppState {
        fences,
        auth: Authenticator::new(config.dev, registry, verifier)
            .registered_tenants_only(config.akka.registered_tenants_only),
        store: store.clone(),
        admin_token,
        body_budget: crate::http::BodyBudget::new(
            config.limits.body_budget_bytes,
            std::time::Duration::from_millis(config.limits.body_idle_timeout_ms),
        ),
        config,
        metrics: Arc::new(Metrics::new()),
        damaged_reads: Arc::new(DamagedReads::new()),
        history: Arc::new(History::new()),
        transfers: Arc::default(),
        instance: crate::http::random_hex(16),
    });
    // Dropped (stopped) when `run` returns.
    let _stall_watch = faults::StallWatch::start(store.clone(), tokio::runtime::Handle::current());
    // Dropping `stop_sampler` (at shutdown, or if this future is dropped) ends the sampler.
    let (stop_sampler, sampler_stopped) = oneshot::channel::<()>();
    let sampler = tokio::spawn(history::sample_every(
        state.metrics.clone(),
        state.history.clone(),
        history::PERIOD,
        sampler_stopped,
    ));
    let limits = state.config.limits.clone();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    // The header read timeout is ours, per connection (`head_timeout`): hyper's armed a timer
    // for every request. Without a timer hyper has none of its own.
    builder.keep_alive(true);
    // A client that closes its sending side after its request (`nc -N`, some HTTP/1.0
    // clients) still gets the response: found from outside, the connection was closed with
    // no answer, and a write could be stored without its acknowledgement.
    builder.half_close(true);
    let header_timeout = limits.header_read_timeout();
    let graceful = GracefulShutdown::new();
    info!(%addr, dev = state.config.dev, "ttlcask listening");

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let open = state.metrics.connection_opened();
        let state = state.clone();
        let heads = HeadWatch::new();
        let heads_read = heads.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = heads_read.request_started();
            let state = state.clone();
            async move {
                let resp = router::serve(state, req, peer).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_flight)))
            }
        });
        let io = Watched::new(TokioIo::new(Lingering::new(stream)), heads.clone());
        let conn = graceful.watch(builder.serve_connection(io, service));
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(open);
            drop(permit);
        });
        tokio::spawn(head_timeout::watch(
            heads,
            task.abort_handle(),
            header_timeout,
        ));
    }
    drop(listener);
    info!("shutting down: draining in-flight requests");
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            ?grace,
            "connections still open after the grace period; closing them"
        );
    }
    drop(stop_sampler);
    if let Err(e) = sampler.await {
        warn!(error = %e, "the status page's sampler ended abnormally");
    }
    // A drained connection's task drops its handle on the server's state (and the store) a
    // moment after the drain is seen: the store closes only once the last one is gone, and
    // a caller that opens the data dir again once `run` returns must find it closed.
    let deadline = tokio::time::Instant::now() + grace;
    while Arc::strong_count(&state) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(state);
    blocking(&store, |s| s.sync().map_err(|e| e.to_string()))
        .await
        .map_err(ServerError::Sync)?
        .map_err(ServerError::Sync)?;
    info!("store synced; bye");
    Ok(())
}

/// Reads the admin token at `path`: `None` when the file is missing or blank (the server
/// then writes a new one). `ttlcask verify` reports what this refuses, as the start does.
///
/// # Errors
/// The file cannot be read, or does not hold a token (not text, or characters no
/// `Authorization` header can carry): a message naming the file and saying what to do
/// (found from outside, twelfth session: two flipped bytes refused the start with "invalid
/// configuration: … stream did not contain valid UTF-8" while `verify` said clean).
pub fn read_admin_token(path: &Path) -> Result<Option<String>, String> {
    let fix = "delete it and start the server again to get a new token (then give the new one to \
               `--admin-token` users and to this node's `admin_token` in a cluster file)";
    // Only a regular file: a FIFO there blocked the start (and `verify`) for good.
    let bytes = match ttlcask_engine::read_regular(path) {
        Ok(bytes) => bytes,
        // A link to nowhere is not "no token": the server could not write one through it,
        // and refused to start while `verify` said clean (found in a review).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::read_link(path) {
                Ok(target) => Err(format!(
                    "the data dir's admin token file {} is a symbolic link to {}, which does not exist: make it point to the token, or {fix}",
                    path.display(),
                    target.display()
                )),
                Err(_) => Ok(None),
            };
        }
        Err(e) => {
            return Err(format!(
                "the data dir's admin token file {} cannot be read ({e}): make it readable by the server's user, or {fix}",
                path.display()
            ))
        }
    };
    let token = std::str::from_utf8(&bytes).map(str::trim);
    match token {
        Ok("") => Ok(None),
        Ok(t) if t.bytes().all(|b| (b' '..=b'~').contains(&b)) => Ok(Some(t.to_string())),
        _ => Err(format!(
            "the data dir's admin token file {} is damaged: it does not hold a token (one line of printable ASCII; the server writes 64 hex digits); {fix}",
            path.display()
        )),
    }
}

/// Reads the admin token at `path` ([`read_admin_token`]), or writes a new random one there
/// with mode 0600 when there is none.
///
/// # Errors
/// A message naming the file when it cannot be read or written; out of space, it says so.
pub fn load_or_create_admin_token(path: &Path) -> Result<String, TokenError> {
    if let Some(token) = read_admin_token(path).map_err(TokenError::from)? {
        return Ok(token);
    }
    let token = crate::http::secret_hex(32)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let cannot_write = |e: std::io::Error| TokenError {
        out_of_space: ttlcask_engine::is_out_of_space(&e),
        message: format!("cannot write admin token {}: {e}", path.display()),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(cannot_write)?;
    use std::io::Write;
    file.write_all(token.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(cannot_write)?;
    Ok(token)
}

/// Why [`load_or_create_admin_token`] failed.
#[derive(Debug)]
pub struct TokenError {
    /// What failed, naming the file.
    pub message: String,
    /// A new token could not be written for want of space (or inodes).
    pub out_of_space: bool,
}

impl From<String> for TokenError {
    fn from(message: String) -> Self {
        Self {
            message,
            out_of_space: false,
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    fn mkfifo(path: &Path) -> Result<(), String> {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .map_err(|e| e.to_string())?;
        made.success()
            .then_some(())
            .ok_or_else(|| format!("mkfifo {}: {made}", path.display()))
    }

    /// `f`'s result, or an error if it takes more than 10 s (left running: it is blocked).
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "did not return within 10 s".to_string())
    }

    /// The admin token or the fence file made a FIFO: read, it blocked the start (and
    /// `verify`) for good, found from outside; now it is refused at once, naming the file.
    #[test]
    fn a_fifo_for_the_admin_token_or_the_fence_file_is_refused_not_waited_on() -> Result<(), String>
    {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let token = dir.path().join(crate::cli::ADMIN_TOKEN_FILE);
        mkfifo(&token)?;
        let read = within_10s({
            let token = token.clone();
            move || super::read_admin_token(&token)
        })?;
        let why = read.err().ok_or("a FIFO is no token")?;
        assert!(
            why.contains(&*token.to_string_lossy()) && why.contains("FIFO"),
            "{why}"
        );

        let [fences, _] = crate::admin::fence_file::paths(dir.path());
        mkfifo(&fences)?;
        let dir = dir.path().to_path_buf();
        let loaded = within_10s(move || crate::admin::fence_file::load(&dir))?;
        let said = match loaded {
            Ok(loaded) => loaded.problems.join("; "),
            Err(why) => why,
        };
        assert!(said.contains("FIFO"), "{said}");
        Ok(())
    }
}
