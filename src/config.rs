//! Server configuration: defaults, the TOML file, `TTLCASK_*` environment variables and
//! command-line flags, merged in that order (flags win over env, env over the file).
//!
//! Every limit lives in [`Limits`] with its documented default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use ttlcask_engine::{
    Durability, RecoveryPolicy, DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9001";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./ttlcask-data";
/// Default Akka JWT issuer.
pub const DEFAULT_AKKA_ISSUER: &str = "https://session.firebase.google.com/akka-cache";

/// Everything `run` needs besides the listener and the store.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accept the documents' sample credentials (loopback only).
    pub dev: bool,
    /// Limits on connections, time and sizes.
    pub limits: Limits,
    /// Akka Cache: JWT keys, CORS, quota.
    pub akka: AkkaConfig,
    /// Where the admin token file lives; `None` disables the admin endpoint.
    pub admin_token_path: Option<PathBuf>,
    /// Who may read `/metrics` and the status page at `/`.
    pub metrics_access: MetricsAccess,
    /// The store's data dir, for its disk use on the status page and in `/metrics`
    /// (`None`: not shown).
    pub data_dir: Option<PathBuf>,
    /// The store's durability policy, for the status page (`None`: not shown).
    pub durability: Option<Durability>,
}

/// Who may read `/metrics` and the status page (`metrics_access` in the TOML file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Loopback clients, and anyone with the admin token (default).
    #[default]
    Local,
    /// Only requests with the admin token (`Authorization: Bearer …`).
    Token,
    /// Everyone.
    Public,
}

/// What opening the store does about damaged segments (`--recovery`, `recovery` in the
/// TOML file); the engine's [`RecoveryPolicy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    /// Keep every intact record, lose only the damaged ones, keep damaged files, report it
    /// all (default).
    #[default]
    Salvage,
    /// Refuse to start on a data dir with damage beyond a torn tail of the newest segment.
    Strict,
}

impl From<Recovery> for RecoveryPolicy {
    fn from(r: Recovery) -> Self {
        match r {
            Recovery::Salvage => RecoveryPolicy::Salvage,
            Recovery::Strict => RecoveryPolicy::Strict,
        }
    }
}

/// A byte size in the TOML file: a number of bytes or a string such as `"64MiB"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    /// Bytes.
    Bytes(u64),
    /// Text for [`parse_segment_size`].
    Text(String),
}

/// How log lines are written (`--log-format`, `log_format` in the TOML file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// A configuration with every default, `--dev` as given, and no admin endpoint.
    pub fn new(dev: bool) -> Self {
        Self {
            dev,
            limits: Limits::default(),
            akka: AkkaConfig::default(),
            admin_token_path: None,
            metrics_access: MetricsAccess::default(),
            data_dir: None,
            durability: None,
        }
    }
}

/// Limits; each has a default documented in README-server.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue (default 1024).
    pub max_connections: usize,
    /// Time allowed to send the request headers, in milliseconds (default 10 000).
    pub header_read_timeout_ms: u64,
    /// Time a request body may go without a byte once the server waits for it, in
    /// milliseconds (default 30 000); then 408 and the connection is closed.
    pub body_idle_timeout_ms: u64,
    /// Time in-flight requests get to finish at shutdown, in milliseconds (default 30 000).
    pub shutdown_grace_ms: u64,
    /// Flash Cache request body (default 5000 bytes, as documented).
    pub flash_body_bytes: usize,
    /// Flash Cache DataKey length (default 256).
    pub flash_key_bytes: usize,
    /// Flash Cache longest expiry, in seconds (default 30 days).
    pub flash_max_ttl_secs: u64,
    /// IronCache request body (default 1 MiB + 16 KiB for the JSON around a 1 MiB value).
    pub iron_body_bytes: usize,
    /// IronCache value (default 1 MiB).
    pub iron_value_bytes: usize,
    /// IronCache key (default 250 bytes).
    pub iron_key_bytes: usize,
    /// IronCache cache name (default 255 bytes).
    pub iron_cache_name_bytes: usize,
    /// IronCache longest `expires_in` (default 2 592 000 s = 30 days).
    pub iron_max_expires_in: u64,
    /// Akka Cache value (default 8 MiB).
    pub akka_value_bytes: usize,
    /// Akka Cache JSON bodies (`/set`, batches; default 16 MiB).
    pub akka_json_body_bytes: usize,
    /// Akka Cache key and cacheName length (default 1024 bytes each).
    pub akka_name_bytes: usize,
    /// Items in one Akka batch (default 1000).
    pub akka_batch_items: usize,
    /// Admin request body (default 64 KiB); `POST /admin/import` is streamed and not limited.
    pub admin_body_bytes: usize,
    /// Bytes of request bodies (Flash, IronCache, Akka) held in memory at once, shared by
    /// every connection (default 1 GiB); one tenant may hold at most half. Past it a body
    /// waits briefly, then gets 503 with `Retry-After`.
    pub body_budget_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            flash_body_bytes: 5000,
            flash_key_bytes: 256,
            flash_max_ttl_secs: 30 * 86_400,
            iron_body_bytes: (1 << 20) + (16 << 10),
            iron_value_bytes: 1 << 20,
            iron_key_bytes: 250,
            iron_cache_name_bytes: 255,
            iron_max_expires_in: 2_592_000,
            akka_value_bytes: 8 << 20,
            akka_json_body_bytes: 16 << 20,
            akka_name_bytes: 1024,
            akka_batch_items: 1000,
            admin_body_bytes: 64 << 10,
            body_budget_bytes: 1 << 30,
        }
    }
}

impl Limits {
    /// The header read timeout as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Refuses limits the server cannot keep: `max_connections = 0` (it served one
    /// connection at a time, saying nothing: found from outside), and body limits that one
    /// tenant's share of the body budget (half of
    /// `body_budget_bytes`) cannot hold: a body between the two could never be read, and would
    /// get 503 `Retry-After` for ever, which clients retry (found from outside, twelfth
    /// session). Refused at start rather than answered per request, so that the limits an
    /// operator reads in the config are the ones clients meet.
    ///
    /// # Errors
    /// A message naming each limit over the share, and the budget that would hold them.
    pub fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err(
                "[limits] max_connections = 0 would refuse every connection; give at least 1"
                    .into(),
            );
        }
        let share = self.body_budget_bytes / 2;
        let over: Vec<(&str, usize)> = [
            ("flash_body_bytes", self.flash_body_bytes),
            ("iron_body_bytes", self.iron_body_bytes),
            ("akka_value_bytes", self.akka_value_bytes),
            ("akka_json_body_bytes", self.akka_json_body_bytes),
        ]
        .into_iter()
        .filter(|&(_, limit)| limit as u64 > share)
        .collect();
        let Some(largest) = over.iter().map(|&(_, limit)| limit as u64).max() else {
            return Ok(());
        };
        let names: Vec<String> = over
            .iter()
            .map(|(name, limit)| format!("{name} = {limit}"))
            .collect();
        Err(format!(
            "[limits] {} {} above half of body_budget_bytes = {} (one tenant's share of the bodies in memory), so such a body could never be read; set body_budget_bytes to at least {} or lower {}",
            names.join(", "),
            if over.len() == 1 { "is" } else { "are" },
            self.body_budget_bytes,
            largest.saturating_mul(2),
            if over.len() == 1 { "that limit" } else { "those limits" },
        ))
    }
}

/// Akka Cache options.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AkkaConfig {
    /// Required `iss` claim.
    pub issuer: String,
    /// HS256 shared secret.
    pub hs256_secret: Option<String>,
    /// RS256 public key, PEM text.
    pub rs256_public_key_pem: Option<String>,
    /// ES256 public key, PEM text.
    pub es256_public_key_pem: Option<String>,
    /// `Access-Control-Allow-Origin` value on Akka routes; empty turns the header off.
    pub cors_allow_origin: String,
    /// Per-tenant byte quota by `serviceLevel` (off by default).
    pub quota_enabled: bool,
    /// Bytes a `free` tenant may keep cached (default 3 GiB).
    pub free_max_bytes: u64,
    /// Bytes a `gatling` tenant may keep cached; `None` = unlimited (default).
    pub gatling_max_bytes: Option<u64>,
    /// Refuse a verified JWT whose `org` was not created with `ttlcask tenant create`
    /// (default off: the token's issuer is the authority on orgs, as upstream).
    pub registered_tenants_only: bool,
}

impl Default for AkkaConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_AKKA_ISSUER.to_string(),
            hs256_secret: None,
            rs256_public_key_pem: None,
            es256_public_key_pem: None,
            cors_allow_origin: "*".to_string(),
            quota_enabled: false,
            free_max_bytes: 3 << 30,
            gatling_max_bytes: None,
            registered_tenants_only: false,
        }
    }
}

/// The TOML file's shape; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub durability: Option<String>,
    pub segment_size: Option<ByteSize>,
    pub recovery: Option<Recovery>,
    pub dev: Option<bool>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    pub metrics_access: Option<MetricsAccess>,
    pub limits: Limits,
    pub akka: AkkaFileConfig,
}

/// The `[akka]` table; PEM keys may be given inline or as file paths.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AkkaFileConfig {
    pub issuer: Option<String>,
    pub hs256_secret: Option<String>,
    pub rs256_public_key_pem: Option<String>,
    pub rs256_public_key_file: Option<PathBuf>,
    pub es256_public_key_pem: Option<String>,
    pub es256_public_key_file: Option<PathBuf>,
    pub cors_allow_origin: Option<String>,
    pub quota_enabled: Option<bool>,
    pub free_max_bytes: Option<u64>,
    pub gatling_max_bytes: Option<u64>,
    pub registered_tenants_only: Option<bool>,
}

/// Reads and parses a TOML config file.
///
/// # Errors
/// A message naming the file when it cannot be read or parsed.
pub fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
}

/// Parses `always`, `never` or `every:<ms>` (also `every:<n>ms` / `every:<n>s`).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_durability(s: &str) -> Result<Durability, String> {
    let bad = || format!("invalid durability {s:?}: use always, never or every:<milliseconds>");
    match s.trim() {
        "always" => Ok(Durability::Always),
        "never" => Ok(Durability::Never),
        other => {
            let spec = other
                .strip_prefix("every:")
                .or_else(|| other.strip_prefix("every "))
                .ok_or_else(bad)?
                .trim();
            let (digits, scale) = if let Some(ms) = spec.strip_suffix("ms") {
                (ms, 1)
            } else if let Some(s) = spec.strip_suffix('s') {
                (s, 1000)
            } else {
                (spec, 1)
            };
            let n: u64 = digits.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(Durability::Every(Duration::from_millis(
                n.saturating_mul(scale),
            )))
        }
    }
}

/// Parses a segment size: bytes, or a number with `K`/`KiB`, `M`/`MiB`, `G`/`GiB` (powers of
/// 1024), between the engine's bounds (4 KiB and 2 GiB).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_segment_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale: u64 = match text[digits.len()..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => u64::MAX,
    };
    let n = digits
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|_| scale != u64::MAX);
    match n {
        Some(n) => check_segment_size(n.saturating_mul(scale)),
        None => Err(format!(
            "invalid segment size {s:?}: use a number of bytes, or a number with KiB, MiB or GiB (e.g. 1MiB, 64MiB)"
        )),
    }
}

/// `bytes` if the engine accepts it as a segment size.
///
/// # Errors
/// A message naming the bounds.
pub fn check_segment_size(bytes: u64) -> Result<u64, String> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "segment size {bytes} is out of range: it must be from {MIN_SEGMENT_SIZE} (4 KiB) to {MAX_SEGMENT_SIZE} (2 GiB) bytes; the default is {DEFAULT_SEGMENT_SIZE} (64 MiB)"
        ))
    }
}

impl ByteSize {
    /// The size in bytes, checked as a segment size.
    ///
    /// # Errors
    /// See [`parse_segment_size`].
    pub fn segment_size(&self) -> Result<u64, String> {
        match self {
            Self::Bytes(n) => check_segment_size(*n),
            Self::Text(s) => parse_segment_size(s),
        }
    }
}

/// Checks an `Access-Control-Allow-Origin` value: empty (no header), `*`, or one origin
/// (`https://app.example.com:8443`): visible ASCII with no comma, quote, `%`, `#` or
/// backslash. A list, a line break or a byte outside ASCII made a header browsers refuse,
/// or none at all, with nothing said (found from outside).
///
/// # Errors
/// A message naming `key` and what it takes.
pub fn check_cors_origin(key: &str, origin: &str) -> Result<(), String> {
    if origin
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b",\"'%#\\".contains(&b))
    {
        return Ok(());
    }
    Err(format!(
        "{key} {origin:?}: one origin (such as https://app.example.com), *, or empty for no header; without spaces, commas, quotes, % or #"
    ))
}

/// Parses a listen address.
///
/// # Errors
/// A message naming the bad address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("invalid listen address {s:?}: {e} (expected e.g. 127.0.0.1:9001)"))
}

impl AkkaFileConfig {
    /// Resolves file paths and defaults into an [`AkkaConfig`].
    ///
    /// # Errors
    /// A message naming a key file that cannot be read, or a CORS origin that is not one.
    pub fn resolve(self, base: AkkaConfig) -> Result<AkkaConfig, String> {
        if let Some(origin) = &self.cors_allow_origin {
            check_cors_origin("[akka] cors_allow_origin", origin)?;
        }
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read key file {}: {e}", p.display()))
        };
        let rs = match (&self.rs256_public_key_pem, &self.rs256_public_key_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(p)) => Some(read(p)?),
            _ => base.rs256_public_key_pem,
        };
        let es = match (&self.es256_public_key_pem, &self.es256_public_key_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(p)) => Some(read(p)?),
            _ => base.es256_public_key_pem,
        };
        Ok(AkkaConfig {
            issuer: self.issuer.unwrap_or(base.issuer),
            hs256_secret: self.hs256_secret.or(base.hs256_secret),
            rs256_public_key_pem: rs,
            es256_public_key_pem: es,
            cors_allow_origin: self.cors_allow_origin.unwrap_or(base.cors_allow_origin),
            quota_enabled: self.quota_enabled.unwrap_or(base.quota_enabled),
            free_max_bytes: self.free_max_bytes.unwrap_or(base.free_max_bytes),
            gatling_max_bytes: self.gatling_max_bytes.or(base.gatling_max_bytes),
            registered_tenants_only: self
                .registered_tenants_only
                .unwrap_or(base.registered_tenants_only),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_forms() {
        assert_eq!(parse_durability("always"), Ok(Durability::Always));
        assert_eq!(parse_durability("never"), Ok(Durability::Never));
        assert_eq!(
            parse_durability("every:250"),
            Ok(Durability::Every(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_durability("every:2s"),
            Ok(Durability::Every(Duration::from_secs(2)))
        );
        assert!(parse_durability("every:0").is_err());
        assert!(parse_durability("sometimes").is_err());
    }

    #[test]
    fn segment_sizes() {
        assert_eq!(parse_segment_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_segment_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_segment_size(" 64m "), Ok(64 << 20));
        assert_eq!(parse_segment_size("4KiB"), Ok(4096));
        assert_eq!(parse_segment_size("2GiB"), Ok(2 << 30));
        for bad in [
            "4095",
            "3KiB",
            "3GiB",
            "0",
            "",
            "MiB",
            "1.5MiB",
            "12 parsecs",
            "-1",
        ] {
            let e = parse_segment_size(bad).expect_err(bad);
            assert!(e.contains("segment size"), "{bad}: {e}");
        }
        assert!(parse_segment_size("100")
            .expect_err("too small")
            .contains("from 4096 (4 KiB) to 2147483648 (2 GiB)"));
        let f: FileConfig =
            toml::from_str("segment_size = 1048576\nrecovery = \"strict\"\n").expect("toml");
        assert_eq!(f.segment_size.map(|s| s.segment_size()), Some(Ok(1 << 20)));
        assert_eq!(f.recovery, Some(Recovery::Strict));
        let f: FileConfig = toml::from_str("segment_size = \"8MiB\"\n").expect("toml");
        assert_eq!(f.segment_size.map(|s| s.segment_size()), Some(Ok(8 << 20)));
        assert!(toml::from_str::<FileConfig>("recovery = \"maybe\"\n").is_err());
    }

    #[test]
    fn body_limits_must_fit_one_tenants_share_of_the_budget() {
        assert_eq!(Limits::default().check(), Ok(()));
        let none = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(none
            .check()
            .is_err_and(|e| e.contains("max_connections = 0")));
        let small = Limits {
            body_budget_bytes: 1 << 20,
            ..Limits::default()
        };
        let e = small.check().expect_err("refused");
        assert!(
            e.contains("iron_body_bytes = 1064960, akka_value_bytes = 8388608, akka_json_body_bytes = 16777216 are above half of body_budget_bytes = 1048576"),
            "{e}"
        );
        assert!(e.contains("at least 33554432"), "{e}");
        assert!(!e.contains("flash_body_bytes"), "{e}");
        let fits = Limits {
            body_budget_bytes: 1 << 20,
            iron_body_bytes: 1 << 19,
            akka_value_bytes: 1 << 19,
            akka_json_body_bytes: 1 << 19,
            ..Limits::default()
        };
        assert_eq!(fits.check(), Ok(()), "exactly half fits");
    }

    #[test]
    fn file_config_parses() {
        let f: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:1\"\n[limits]\nmax_connections = 7\n[akka]\nhs256_secret = \"s\"\n",
        )
        .expect("valid toml");
        assert_eq!(f.limits.max_connections, 7);
        assert_eq!(f.limits.flash_body_bytes, 5000);
        assert_eq!(f.akka.hs256_secret.as_deref(), Some("s"));
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
    }

    // Found from outside (seventeenth session): a line break in the origin dropped the
    // header from every Akka response, and a list was sent as it was; neither was refused.
    #[test]
    fn a_cors_origin_that_is_not_one_is_refused() {
        let resolve = |origin: &str| {
            let text = format!("[akka]\ncors_allow_origin = {origin:?}\n");
            let file: FileConfig = toml::from_str(&text).expect("valid toml");
            file.akka.resolve(AkkaConfig::default())
        };
        for good in ["", "*", "https://app.example.com:8443", "null"] {
            assert!(resolve(good).is_ok(), "{good:?}");
        }
        for bad in [
            "https://a.example\r\nSet-Cookie: x=y",
            "https://a.example, https://b.example",
            "https://h\u{e9}llo.example",
            "https://a.example/%41",
        ] {
            let e = resolve(bad).expect_err(bad);
            assert!(e.contains("[akka] cors_allow_origin"), "{e}");
        }
    }
}
