//! The command line: `ttlcask serve` and the tenant/credential admin commands. Options come
//! from flags, then `TTLCASK_*` environment variables, then the TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use ttlcask_engine::{Durability, OpenError, RecoveryPolicy, Store, DEFAULT_SEGMENT_SIZE};

use crate::admin_client::AdminClient;
use crate::auth::registry::{self, Api, Registry};
use crate::cluster::{self, ClusterFile};
use crate::config::{self, Config, FileConfig, LogFormat, DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use crate::faults::StorageState;
use crate::maintenance::ExportFilter;

/// Name of the admin token file inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// ttlcask: a temporary data store speaking the Flash Cache, IronCache and Akka Cache APIs.
#[derive(Debug, Parser)]
#[command(name = "ttlcask", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API credentials.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Print engine statistics (JSON).
    Stats {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Run a compaction now and print what it reclaimed.
    Compact {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Check every segment and hint CRC of a data dir without changing anything.
    Verify {
        /// Data directory [default: ./ttlcask-data].
        #[arg(long, env = "TTLCASK_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// TOML configuration file (for the data dir).
        #[arg(long, env = "TTLCASK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Drive a cluster of nodes behind HAProxy (see README "Running a cluster").
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Write every cache and item as JSON lines (base64 values, with versions and expiries).
    Export {
        /// Output file [default: stdout].
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Only this tenant's caches (and its tenant and credential records).
        #[arg(long)]
        tenant: Option<String>,
        /// Only caches in these slots, `A..B` or `A` (slot = crc32(shard key) mod 1024).
        #[arg(long, value_name = "A..B")]
        slots: Option<String>,
        /// Include the tenant and credential records [default: true, false with --slots].
        #[arg(long)]
        registry: Option<bool>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Read JSON lines written by `export`, keeping versions and expiries and never
    /// overwriting newer records (so it can be run again): into a stopped data dir, or
    /// through a running server.
    Import {
        /// Input file [default: stdin].
        #[arg(value_name = "FILE", conflicts_with = "input")]
        file: Option<PathBuf>,
        /// Input file (as FILE).
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Items per all-or-nothing batch (1 to 100000).
        #[arg(long, default_value_t = 1000, value_parser = crate::maintenance::import::parse_batch)]
        batch: usize,
        /// Data directory [default: ./ttlcask-data]; created if missing.
        #[arg(long, env = "TTLCASK_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// TOML configuration file (for the data dir and listen address).
        #[arg(long, env = "TTLCASK_CONFIG")]
        config: Option<PathBuf>,
        /// Address of a running server to import through; by default it is used when the
        /// data dir is locked.
        #[arg(long, env = "TTLCASK_SERVER")]
        server: Option<String>,
        /// Admin token [default: read from <data-dir>/admin.token].
        #[arg(long, env = "TTLCASK_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
}

/// `ttlcask cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the HAProxy configuration and write the initial slot maps (never overwriting).
    Haproxy {
        /// Cluster file (TOML).
        file: PathBuf,
    },
    /// Each node's health, slots, items and bytes, and whether their registries agree.
    Status {
        /// Cluster file (TOML).
        file: PathBuf,
    },
    /// Move slots to a node online; run it again to finish after a crash.
    Move {
        /// Cluster file (TOML).
        file: PathBuf,
        /// Slots `A..B` or `A`.
        #[arg(long, value_name = "A..B")]
        slots: String,
        /// Node to move them to.
        #[arg(long)]
        to: String,
    },
}

/// Options of `ttlcask serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9001].
    #[arg(long, env = "TTLCASK_LISTEN")]
    pub listen: Option<String>,
    /// Data directory [default: ./ttlcask-data].
    #[arg(long, env = "TTLCASK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// always | every:<ms> | never [default: always].
    #[arg(long, env = "TTLCASK_DURABILITY")]
    pub durability: Option<String>,
    /// Size at which a segment file is sealed, in bytes or with KiB/MiB/GiB; 4 KiB to 2 GiB
    /// [default: 64MiB].
    #[arg(long, env = "TTLCASK_SEGMENT_SIZE", value_name = "BYTES")]
    pub segment_size: Option<String>,
    /// What opening a damaged data dir does: salvage (keep intact records, report the
    /// damage) or strict (refuse to start) [default: salvage].
    #[arg(long, env = "TTLCASK_RECOVERY", value_enum)]
    pub recovery: Option<config::Recovery>,
    /// TOML configuration file.
    #[arg(long, env = "TTLCASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Accept the documents' sample credentials (loopback only). `--dev=false` (or
    /// `TTLCASK_DEV=false`) turns off a config file's `dev = true`.
    #[arg(
        long,
        env = "TTLCASK_DEV",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub dev: Option<bool>,
    /// Log filter, e.g. `info` or `ttlcask=debug` [default: info].
    #[arg(long, env = "TTLCASK_LOG")]
    pub log: Option<String>,
    /// Log line format: text or json [default: text].
    #[arg(long, env = "TTLCASK_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Akka Cache HS256 secret.
    #[arg(long, env = "TTLCASK_AKKA_HS256_SECRET", hide_env_values = true)]
    pub akka_hs256_secret: Option<String>,
    /// Akka Cache RS256 public key file (PEM).
    #[arg(long, env = "TTLCASK_AKKA_RS256_PUBLIC_KEY_FILE")]
    pub akka_rs256_public_key_file: Option<PathBuf>,
    /// Akka Cache ES256 public key file (PEM).
    #[arg(long, env = "TTLCASK_AKKA_ES256_PUBLIC_KEY_FILE")]
    pub akka_es256_public_key_file: Option<PathBuf>,
    /// Required JWT issuer [default: https://session.firebase.google.com/akka-cache].
    #[arg(long, env = "TTLCASK_AKKA_ISSUER")]
    pub akka_issuer: Option<String>,
}

/// Where an admin command acts: a stopped data dir, or a running server's admin endpoint.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// Data directory [default: ./ttlcask-data].
    #[arg(long, env = "TTLCASK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (for the data dir, listen address and Akka secret).
    #[arg(long, env = "TTLCASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of a running server; by default it is used when the data dir is locked.
    #[arg(long, env = "TTLCASK_SERVER")]
    pub server: Option<String>,
    /// Admin token [default: read from <data-dir>/admin.token].
    #[arg(long, env = "TTLCASK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Akka Cache HS256 secret (to mint Akka credentials on a stopped data dir).
    #[arg(long, env = "TTLCASK_AKKA_HS256_SECRET", hide_env_values = true)]
    pub akka_hs256_secret: Option<String>,
}

/// `ttlcask tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name (1 to 64 of A-Z a-z 0-9 . _ -); also the Akka `org`.
        name: String,
        /// Create it on every node of this cluster file, with the same ClientId.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        /// Its Flash `ClientId` (keep the one existing Flash clients send); default: a new
        /// random one.
        #[arg(long, value_name = "ID")]
        flash_client_id: Option<String>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
}

/// `ttlcask credential …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create a credential; its secret is shown once.
    Create {
        /// Owning tenant.
        #[arg(long)]
        tenant: String,
        /// flash | iron | akka.
        #[arg(long)]
        api: String,
        /// Flash Cache app (the cache the key writes to) [default: default].
        #[arg(long)]
        app: Option<String>,
        /// Create it on every node of this cluster file, with the same id and hash.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List credentials (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The revoked ones instead: `[[id, {"revoked_ms", "tenant"}]]`.
        #[arg(long)]
        revoked: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Revoke a credential by id.
    Revoke {
        /// Credential id.
        id: String,
        /// Revoke it on every node of this cluster file.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        #[command(flatten)]
        target: AdminTarget,
    },
}

/// Runs a parsed command line; the process exit code is 0 on `Ok`.
///
/// # Errors
/// A message for the user.
pub fn main(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Tenant(TenantCommand::Create {
            name,
            cluster: Some(file),
            flash_client_id,
            ..
        }) => print_json(&cluster::registry::create_tenant(
            &ClusterFile::load(&file)?,
            &name,
            flash_client_id.as_deref(),
        )?),
        Command::Tenant(TenantCommand::Create {
            name,
            target,
            flash_client_id,
            ..
        }) => admin(
            &target,
            Request::CreateTenant {
                name,
                flash_client_id,
            },
        ),
        Command::Tenant(TenantCommand::List { target }) => admin(&target, Request::ListTenants),
        Command::Credential(CredentialCommand::Create {
            tenant,
            api,
            app,
            cluster: Some(file),
            ..
        }) => {
            let body = json!({ "tenant": tenant, "api": api.parse::<Api>()?, "app": app });
            print_json(&cluster::registry::create_credential(
                &ClusterFile::load(&file)?,
                &body,
            )?)
        }
        Command::Credential(CredentialCommand::Create {
            tenant,
            api,
            app,
            target,
            ..
        }) => {
            let api: Api = api.parse()?;
            admin(&target, Request::CreateCredential { tenant, api, app })
        }
        Command::Credential(CredentialCommand::List {
            tenant,
            revoked,
            target,
        }) => {
            if let Some(t) = tenant
                .as_deref()
                .filter(|t| !crate::namespace::valid_tenant(t))
            {
                return Err(format!("invalid tenant name {t:?}"));
            }
            admin(&target, Request::ListCredentials { tenant, revoked })
        }
        Command::Credential(CredentialCommand::Revoke {
            id,
            cluster: Some(file),
            ..
        }) => print_json(&cluster::registry::revoke(&ClusterFile::load(&file)?, &id)?),
        Command::Credential(CredentialCommand::Revoke { id, target, .. }) => {
            admin(&target, Request::Revoke(id))
        }
        Command::Cluster(c) => cluster_command(c),
        Command::Stats { target } => admin(&target, Request::Stats),
        Command::Compact { target } => admin(&target, Request::Compact),
        Command::Export {
            output,
            tenant,
            slots,
            registry,
            target,
        } => {
            if let Some(t) = &tenant {
                crate::maintenance::export::check_tenant(t)?;
            }
            let filter = ExportFilter {
                tenant,
                slots: slots.as_deref().map(crate::slot::parse_range).transpose()?,
                registry,
            };
            admin(&target, Request::Export(output, filter))
        }
        Command::Verify { data_dir, config } => {
            let dir = resolve_data_dir(data_dir, config.as_deref())?;
            existing_data_dir(&dir, false)?;
            eprintln!("ttlcask: verifying data dir {}", shown(&dir));
            crate::maintenance_cli::verify(&dir)
        }
        Command::Import {
            file,
            input,
            batch,
            data_dir,
            config,
            server,
            admin_token,
        } => {
            // `-` is standard input, as `export -o -` is standard output; a file is opened
            // once before anything else, so that a missing one creates no data dir (found
            // from outside: an empty store was left behind).
            let input = file.or(input).filter(|p| p.as_os_str() != "-");
            if let Some(p) = &input {
                std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            }
            let target = AdminTarget {
                data_dir,
                config,
                server,
                admin_token,
                akka_hs256_secret: None,
            };
            admin(&target, Request::Import(input, batch))
        }
    }
}

fn cluster_command(command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Haproxy { file } => {
            let cluster = ClusterFile::load(&file)?;
            for line in cluster::maps::prepare(&cluster)? {
                eprintln!("ttlcask: {line}");
            }
            print!("{}", cluster::haproxy::config(&cluster));
            Ok(())
        }
        ClusterCommand::Status { file } => {
            let status = cluster::status::collect(&ClusterFile::load(&file)?)?;
            print_json(&status)?;
            for line in status["maps_name_unknown_nodes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                eprintln!(
                    "ttlcask: WARNING: {} (no node owns these slots: HAProxy answers 503)",
                    line.as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        ClusterCommand::Move { file, slots, to } => {
            let cluster = ClusterFile::load(&file)?;
            let range = crate::slot::parse_range(&slots)?;
            let report = cluster::moving::run(&cluster, range, &to, true)?;
            print_json(&report)
        }
    }
}

fn resolve_data_dir(flag: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, String> {
    let file = load_file(config)?;
    Ok(flag
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
}

/// `ttlcask serve` settings after merging flags, env, file and defaults.
#[derive(Debug)]
pub struct ServeSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Durability policy.
    pub durability: Durability,
    /// Segment size in bytes, if chosen (else the engine's default, fitted to the disk).
    pub segment_size: Option<u64>,
    /// What opening a damaged data dir does.
    pub recovery: RecoveryPolicy,
    /// Log filter.
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Everything `run` takes.
    pub config: Config,
}

fn load_file(path: Option<&Path>) -> Result<FileConfig, String> {
    path.map_or_else(|| Ok(FileConfig::default()), config::read_file)
}

/// Merges flags (and env, which clap already folded in) over the file over defaults.
///
/// # Errors
/// A message naming the bad option.
pub fn resolve(args: ServeArgs) -> Result<ServeSettings, String> {
    let file = load_file(args.config.as_deref())?;
    let listen = config::parse_listen(
        args.listen
            .as_deref()
            .or(file.listen.as_deref())
            .unwrap_or(DEFAULT_LISTEN),
    )?;
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let durability = config::parse_durability(
        args.durability
            .as_deref()
            .or(file.durability.as_deref())
            .unwrap_or("always"),
    )?;
    let segment_size = match (&args.segment_size, &file.segment_size) {
        (Some(flag), _) => Some(config::parse_segment_size(flag)?),
        (None, Some(size)) => Some(size.segment_size()?),
        (None, None) => None,
    };
    let recovery = args.recovery.or(file.recovery).unwrap_or_default().into();
    // Flags, then the environment (clap reads both into `args`), then the file: an explicit
    // false must win over the file's true (`args.dev || file.dev` kept a file's `dev = true`
    // whatever TTLCASK_DEV said: found from outside).
    let dev = args.dev.or(file.dev).unwrap_or(false);
    let mut akka_file = file.akka;
    if args.akka_hs256_secret.is_some() {
        akka_file.hs256_secret = args.akka_hs256_secret;
    }
    if let Some(p) = args.akka_rs256_public_key_file {
        akka_file.rs256_public_key_pem = None;
        akka_file.rs256_public_key_file = Some(p);
    }
    if let Some(p) = args.akka_es256_public_key_file {
        akka_file.es256_public_key_pem = None;
        akka_file.es256_public_key_file = Some(p);
    }
    if args.akka_issuer.is_some() {
        akka_file.issuer = args.akka_issuer;
    }
    let akka = akka_file.resolve(config::AkkaConfig::default())?;
    let config = Config {
        dev,
        limits: file.limits,
        akka,
        admin_token_path: Some(data_dir.join(ADMIN_TOKEN_FILE)),
        metrics_access: file.metrics_access.unwrap_or_default(),
        // Shown on the status page: absolute, as the admin commands print it.
        data_dir: Some(std::path::absolute(&data_dir).unwrap_or_else(|_| data_dir.clone())),
        durability: Some(durability),
    };
    Ok(ServeSettings {
        listen,
        log: args.log.or(file.log).unwrap_or_else(|| "info".to_string()),
        log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        data_dir,
        durability,
        segment_size,
        recovery,
        config,
    })
}

/// Standard error for log lines, never failing: a log on a full disk (or a closed pipe)
/// loses lines, never the request that logged them. On a failed write tracing-subscriber
/// reports with `eprintln!`, which panics when standard error cannot be written: with the
/// server's log on its full data disk, every refused write (logged at warn) panicked its
/// request's task and the client got no answer (found from outside).
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let settings = resolve(args)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .map_err(|e| format!("invalid log filter {:?}: {e}", settings.log))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr);
    match settings.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    if settings.config.dev && !settings.listen.ip().is_loopback() {
        return Err(crate::ServerError::DevNotLoopback(settings.listen.to_string()).to_string());
    }
    // Before the data dir is opened (or created): a refused config leaves nothing behind.
    settings
        .config
        .limits
        .check()
        .map_err(|e| crate::ServerError::Config(e).to_string())?;
    let max_connections = settings.config.limits.max_connections;
    match crate::rlimit::raise_open_files() {
        Ok(files) if !files.fits(max_connections) => tracing::warn!(
            open_file_limit = files.now,
            max_connections,
            "the open-file limit is below max_connections + {}: a busy server may run out of file descriptors (raise the hard limit: `ulimit -Hn`, systemd's LimitNOFILE)",
            crate::rlimit::SPARE_FILES
        ),
        Ok(files) if files.now > files.before => tracing::info!(
            from = files.before,
            to = files.now,
            "raised the open-file limit to its hard limit"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let dir = settings.data_dir.clone();
        let mut builder = Store::builder()
            .durability(settings.durability)
            .recovery_policy(settings.recovery);
        if let Some(size) = settings.segment_size {
            builder = builder.segment_size(size);
        }
        let strict = settings.recovery == RecoveryPolicy::Strict;
        let store = tokio::task::spawn_blocking(move || builder.open(&dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| match e {
                OpenError::Damaged(_) if strict => format!(
                    "{e} (recovery = strict refuses a damaged data dir; restore it from a backup, or start with --recovery salvage to serve every intact record)"
                ),
                e => e.to_string(),
            })?;
        if settings.segment_size.is_none() && store.segment_size() < DEFAULT_SEGMENT_SIZE {
            tracing::warn!(
                default = DEFAULT_SEGMENT_SIZE,
                used = store.segment_size(),
                "segment size lowered: the data dir's file system has room for fewer than 16 segments of the default size (the active one, a spare and the space reserve for deletes on a full disk need room beside the data); set segment_size to choose one"
            );
        }
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        crate::run(listener, store, settings.config, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// One admin operation.
#[derive(Debug)]
enum Request {
    CreateTenant {
        name: String,
        flash_client_id: Option<String>,
    },
    ListTenants,
    CreateCredential {
        tenant: String,
        api: Api,
        app: Option<String>,
    },
    ListCredentials {
        tenant: Option<String>,
        revoked: bool,
    },
    Revoke(String),
    Stats,
    Compact,
    Export(Option<PathBuf>, ExportFilter),
    Import(Option<PathBuf>, usize),
}

impl Request {
    /// Whether the command only reads: it opens the store read-only and leaves no files.
    fn is_read_only(&self) -> bool {
        matches!(
            self,
            Self::ListTenants | Self::ListCredentials { .. } | Self::Stats | Self::Export(..)
        )
    }
}

/// `dir` as the user should read it: absolute, so that a relative default such as
/// `./ttlcask-data` says where it was looked for.
fn shown(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// Refuses a data dir that does not exist: only `serve` and `import` create one, so that a
/// typo or a relative path run from elsewhere never writes into a store no server reads.
fn existing_data_dir(dir: &Path, server_option: bool) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(format!("{} is not a directory", shown(dir))),
        // An I/O error or a denied search is not a missing dir: say what it is (found from
        // outside: a disk that failed every read was reported as "no data dir").
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot read the data dir {}: {e}", shown(dir)))
        }
        Err(_) => {}
    }
    Err(format!(
        "no data dir at {}: admin commands never create one (only `ttlcask serve` and `ttlcask import` do); \
         give --data-dir (or data_dir in --config){}",
        shown(dir),
        if server_option {
            ", or --server HOST:PORT for a running server"
        } else {
            ""
        }
    ))
}

fn admin(target: &AdminTarget, request: Request) -> Result<(), String> {
    let file = load_file(target.config.as_deref())?;
    let data_dir = target
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let akka_secret = target
        .akka_hs256_secret
        .clone()
        .or(file.akka.hs256_secret.clone());
    let issuer = file
        .akka
        .issuer
        .clone()
        .unwrap_or_else(|| config::DEFAULT_AKKA_ISSUER.to_string());
    // Where the server listens, as `serve` works it out: `TTLCASK_LISTEN` wins over the
    // config's `listen` (it was skipped, so a command run with the server's own environment
    // tried the file's address: found from outside).
    let server = target
        .server
        .clone()
        .or_else(|| {
            std::env::var("TTLCASK_LISTEN")
                .ok()
                .filter(|l| !l.is_empty())
        })
        .or(file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let token = || match &target.admin_token {
        Some(t) => Ok(t.clone()),
        None => ttlcask_engine::read_regular(&data_dir.join(ADMIN_TOKEN_FILE))
            .and_then(|t| String::from_utf8(t).map_err(std::io::Error::other))
            .map(|t| t.trim().to_string())
            .map_err(|e| {
                format!(
                    "cannot read the admin token in {}: {e} (or give --admin-token)",
                    shown(&data_dir)
                )
            }),
    };
    if target.server.is_some() {
        eprintln!("ttlcask: using the server at {server}");
        return online(&server, &token()?, request);
    }
    // Only `serve` and `import` create a data dir.
    if !matches!(request, Request::Import(..)) {
        existing_data_dir(&data_dir, true)?;
    }
    let read_only = request.is_read_only();
    match Store::builder().read_only(read_only).open(&data_dir) {
        Ok(store) => {
            eprintln!(
                "ttlcask: using data dir {} (no server holds it{})",
                shown(&data_dir),
                if read_only { "; opened read-only" } else { "" }
            );
            let out = offline(&store, request, akka_secret.as_deref(), &issuer);
            if read_only {
                return out;
            }
            let synced = store.sync().map_err(|e| e.to_string());
            out.and(synced)
        }
        Err(OpenError::Locked { .. }) => {
            eprintln!(
                "ttlcask: data dir {} is locked by a running server; using the server at {server}",
                shown(&data_dir)
            );
            token()
                .and_then(|token| online(&server, &token, request))
                .map_err(|e| {
                    format!(
                        "data dir {} is locked by a running server, which answers its admin commands; \
                         tried it at {server}: {e}. If it listens elsewhere, pass --server HOST:PORT \
                         (or set listen in --config)",
                        shown(&data_dir)
                    )
                })
        }
        Err(e) => Err(format!("cannot open data dir {}: {e}", shown(&data_dir))),
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn offline(
    store: &Store,
    request: Request,
    akka_secret: Option<&str>,
    issuer: &str,
) -> Result<(), String> {
    match request {
        Request::CreateTenant {
            name,
            flash_client_id,
        } => print_json(
            &registry::create_tenant_with(store, &name, flash_client_id.as_deref())
                .map_err(|e| e.to_string())?,
        ),
        Request::ListTenants => {
            let r = Registry::load(store).map_err(|e| e.to_string())?;
            print_json(&r.tenants().collect::<Vec<_>>())
        }
        Request::CreateCredential { tenant, api, app } => {
            let signer = akka_secret.map(|k| (k, issuer));
            let created = registry::create_credential(store, &tenant, api, app.as_deref(), signer)
                .map_err(|e| e.to_string())?;
            print_json(&created)
        }
        Request::ListCredentials {
            tenant,
            revoked: false,
        } => {
            let r = Registry::load(store).map_err(|e| e.to_string())?;
            print_json(&r.credentials(tenant.as_deref()).collect::<Vec<_>>())
        }
        Request::ListCredentials {
            tenant,
            revoked: true,
        } => {
            let records = registry::revoked_records(store).map_err(|e| e.to_string())?;
            print_json(&registry::of_tenant(records, tenant.as_deref()))
        }
        Request::Revoke(id) => {
            registry::revoke_credential(store, &id).map_err(|e| e.to_string())?;
            print_json(&json!({ "revoked": id }))
        }
        Request::Stats => crate::maintenance_cli::print_stats(&crate::maintenance::stats_json(
            &store.stats(),
            &StorageState::of(store, 0),
        )),
        Request::Compact => crate::maintenance_cli::compact(store),
        Request::Export(output, filter) => {
            crate::maintenance_cli::export(store, output.as_deref(), &filter)
        }
        Request::Import(input, batch) => {
            crate::maintenance_cli::import(store, input.as_deref(), batch)
        }
    }
}

fn online(server: &str, token: &str, request: Request) -> Result<(), String> {
    let client = AdminClient::new(server, token);
    let is_stats = matches!(request, Request::Stats);
    let (method, path, body) = match request {
        Request::CreateTenant {
            name,
            flash_client_id,
        } => {
            let mut body = json!({ "name": name });
            if let Some(id) = flash_client_id {
                body["flash_client_id"] = json!(id);
            }
            ("POST", "/admin/tenants".to_string(), Some(body))
        }
        Request::ListTenants => ("GET", "/admin/tenants".to_string(), None),
        Request::CreateCredential { tenant, api, app } => {
            let api = serde_json::to_value(api).map_err(|e| e.to_string())?;
            (
                "POST",
                "/admin/credentials".to_string(),
                Some(json!({ "tenant": tenant, "api": api, "app": app })),
            )
        }
        Request::ListCredentials { tenant, revoked } => {
            // Tenant names are URL-safe (checked above).
            let params: Vec<String> = tenant
                .map(|t| format!("tenant={t}"))
                .into_iter()
                .chain(revoked.then(|| "revoked=true".to_string()))
                .collect();
            let path = if params.is_empty() {
                "/admin/credentials".to_string()
            } else {
                format!("/admin/credentials?{}", params.join("&"))
            };
            ("GET", path, None)
        }
        Request::Revoke(id) => ("DELETE", format!("/admin/credentials/{id}"), None),
        Request::Stats => ("GET", "/admin/stats".to_string(), None),
        Request::Compact => ("POST", "/admin/compact".to_string(), None),
        Request::Export(output, filter) => {
            return crate::maintenance_cli::export_online(&client, output.as_deref(), &filter)
        }
        Request::Import(input, batch) => {
            return crate::maintenance_cli::import_online(&client, input.as_deref(), batch)
        }
    };
    let (status, reply) = client.call(method, &path, body.as_ref())?;
    if (200..300).contains(&status) && is_stats {
        crate::maintenance_cli::print_stats(&reply)
    } else if (200..300).contains(&status) {
        print_json(&reply)
    } else {
        let msg = reply
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("request failed");
        Err(format!("server answered {status}: {msg}"))
    }
}
