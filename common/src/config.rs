//! Sender and receiver configuration (TOML).
//!
//! Loading is two steps: serde parses the file (unknown keys are errors), then
//! [`SenderConfig::load`] / [`ReceiverConfig::load`] check what serde cannot
//! (durations, node ids, strategy parameters, URLs). Every error is one line that names
//! the file, the key and what is wrong, e.g.
//! `sender.toml: [batch] interval = "5x": invalid duration (use e.g. 500ms, 5s, 2m, 1h)`.
//!
//! Relative paths (`sqlite:` URLs, `[work] dir`) are resolved against the directory of
//! the configuration file, so a config and its data can move together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dialect::Dialect;

/// A configuration error; `Display` is the one line to show the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

fn invalid(path: &Path, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        msg: msg.into(),
    }
}

/// A duration written as `500ms`, `5s`, `2m`, `1h` or `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite:<path>`
    Sqlite(PathBuf),
    /// `odbc:<connection string>`, e.g. `odbc:Driver={PostgreSQL Unicode};Server=...`
    Odbc(String),
}

impl DbUrl {
    fn parse(s: &str, base: &Path) -> Result<DbUrl, String> {
        if let Some(p) = s.strip_prefix("sqlite:") {
            if p.is_empty() {
                return Err("sqlite URL has no path (write sqlite:/path/to/file.db)".into());
            }
            return Ok(DbUrl::Sqlite(base.join(p)));
        }
        if let Some(cs) = s.strip_prefix("odbc:") {
            if cs.trim().is_empty() {
                return Err(
                    "odbc URL has no connection string (write odbc:Driver={...};Server=...)".into(),
                );
            }
            return Ok(DbUrl::Odbc(cs.to_owned()));
        }
        Err(format!(
            "unsupported URL {s:?} (write sqlite:/path/to/file.db or odbc:<connection string>)"
        ))
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Connection strings may hold passwords: show only the driver part.
            DbUrl::Odbc(cs) => {
                let shown: Vec<&str> = cs
                    .split(';')
                    .filter(|kv| {
                        let k = kv
                            .split('=')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase();
                        !matches!(k.as_str(), "pwd" | "password")
                    })
                    .collect();
                write!(f, "odbc:{}", shown.join(";"))
            }
        }
    }
}

// ---------------------------------------------------------------- raw (serde) structs

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSender {
    node: String,
    #[serde(default)]
    insecure: bool,
    source: RawDb,
    #[serde(default)]
    target: RawSenderTarget,
    #[serde(default, rename = "table")]
    tables: Vec<RawTable>,
    #[serde(default)]
    batch: RawBatch,
    link: RawSenderLink,
    work: RawWork,
    sign: Option<RawSign>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    archive: RawArchive,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    /// Kept as a TOML value so that a wrong type gets the same one-line message as a
    /// wrong number.
    keep_days: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    keep_months: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_batch_bytes: Option<u64>,
    max_decompressed: Option<u64>,
    max_statement_len: Option<u64>,
    max_statements: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    node: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    url: String,
    /// ODBC sources: the source's dialect when the driver's DBMS name should not decide.
    dialect: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSenderTarget {
    dialect: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    source: String,
    target: Option<String>,
    key: Option<Vec<String>>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    strategy: Option<String>,
    interval: Option<String>,
    count: Option<u64>,
    max_rows: Option<u64>,
    compress: Option<bool>,
    on_second_failure: Option<String>,
    poll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSenderLink {
    connect: String,
    max_frame: Option<u64>,
    frame_timeout: Option<String>,
    result_timeout: Option<String>,
    connect_timeout: Option<String>,
    heartbeat: Option<String>,
    once_connect_attempts: Option<u32>,
    receiver_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWork {
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    #[serde(default)]
    insecure: bool,
    target: RawReceiverTarget,
    link: RawReceiverLink,
    work: RawWork,
    #[serde(default)]
    apply: RawApply,
    #[serde(default)]
    trust: Vec<RawTrust>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    audit: RawAudit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiverTarget {
    url: String,
    dialect: Option<String>,
    tables: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiverLink {
    listen: String,
    max_frame: Option<u64>,
    idle_timeout: Option<String>,
    frame_timeout: Option<String>,
    result_wait: Option<String>,
    max_connections: Option<u32>,
    id: Option<String>,
    hello_timeout: Option<String>,
    hello_max_skew: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApply {
    retry_interval: Option<String>,
    busy_timeout: Option<String>,
}

// ---------------------------------------------------------------- validated structs

/// When the sender cuts a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// As soon as a change is pending.
    Immediate,
    /// Every `interval`, if anything is pending.
    Interval(Duration),
    /// Whenever `n` changes are pending (a batch of `n`).
    Count(u64),
    /// When changes are pending and none arrived for this long.
    Idle(Duration),
}

/// What the sender does after a batch failed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSecondFailure {
    /// Quarantine the batch and go on with the next one.
    Drop,
    /// Quarantine the batch and stop the service.
    Halt,
}

#[derive(Debug, Clone)]
pub struct TableConfig {
    pub source: String,
    pub target: String,
    pub key: Option<Vec<String>>,
    pub rename: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub strategy: Strategy,
    pub max_rows: u64,
    pub compress: bool,
    pub on_second_failure: OnSecondFailure,
    /// How often the service looks for new changes.
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct SenderLinkConfig {
    pub connect: String,
    pub max_frame: usize,
    pub frame_timeout: Duration,
    pub result_timeout: Duration,
    pub connect_timeout: Duration,
    pub heartbeat: Duration,
    /// `once` gives up after this many failed connection attempts.
    pub once_connect_attempts: u32,
    /// `[link] receiver_id`: the receiver's `[link] id`, signed into every HELLO so a
    /// HELLO meant for one receiver is refused by any other.
    pub receiver_id: String,
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub file: PathBuf,
    pub node: String,
    pub insecure: bool,
    /// `[sign] key`: the Ed25519 private key file batches are signed with.
    pub sign_key: Option<PathBuf>,
    pub source: DbUrl,
    /// ODBC sources: the source's dialect, when not detected from the driver.
    pub source_dialect: Option<String>,
    pub dialect: Dialect,
    pub tables: Vec<TableConfig>,
    pub batch: BatchConfig,
    pub link: SenderLinkConfig,
    pub work_dir: PathBuf,
    /// `[audit] keep_months`: audit files older than this many months are deleted.
    pub audit_keep_months: u32,
    /// `[archive] keep_days`: applied batches (their `archive/` file and their record in
    /// the source's `_gapsync_batches`) cut more than this many days ago are deleted;
    /// 0 keeps them forever.
    pub archive_keep_days: u32,
}

#[derive(Debug, Clone)]
pub struct ReceiverLinkConfig {
    pub listen: String,
    pub max_frame: usize,
    pub idle_timeout: Duration,
    pub frame_timeout: Duration,
    /// How long a `result?` answer may wait for an apply that is being retried before
    /// the receiver closes the connection instead (the sender then asks again).
    pub result_wait: Duration,
    /// Connections that have not (yet) authenticated, in total; at most
    /// [`MAX_UNAUTHENTICATED_PER_PEER`] of them per peer address.
    pub max_connections: u32,
    /// `[link] id`: this receiver's id; a HELLO must name it.
    pub id: String,
    /// `[link] hello_timeout`: a connection must authenticate within this.
    pub hello_timeout: Duration,
    /// `[link] hello_max_skew`: how far a HELLO's time may be from this clock.
    pub hello_max_skew: Duration,
}

/// The default receiver id on both sides (`[link] id`, `[link] receiver_id`).
pub const DEFAULT_RECEIVER_ID: &str = "gapsync-receiver";

/// Unauthenticated connections one peer address may hold at once (the oldest is closed
/// when it opens another).
pub const MAX_UNAUTHENTICATED_PER_PEER: usize = 4;

/// A receiver id: 1..=64 of `[A-Za-z0-9._-]` (the link protocol's rule).
pub fn valid_receiver_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn receiver_id(path: &Path, key: &str, v: Option<String>) -> Result<String, ConfigError> {
    let id = v.unwrap_or_else(|| DEFAULT_RECEIVER_ID.to_owned());
    if !valid_receiver_id(&id) {
        return Err(invalid(
            path,
            format!("{key} = {id:?}: write 1 to 64 of A-Z a-z 0-9 . _ -"),
        ));
    }
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub file: PathBuf,
    pub insecure: bool,
    /// `[[trust]]`: (node, public key line) pairs; several keys per node allowed.
    pub trust: Vec<(String, String)>,
    /// `[target] tables`: the tables batches may touch (patterns with `*`); None: any
    /// table of the target's default schema except gapsync's own.
    pub allowed_tables: Option<Vec<String>>,
    pub target: DbUrl,
    /// The target's dialect, when not detected from the ODBC driver.
    pub target_dialect: Option<String>,
    pub link: ReceiverLinkConfig,
    pub work_dir: PathBuf,
    /// Pause between attempts when the target is unavailable (transient failure).
    pub retry_interval: Duration,
    /// How long one statement waits for a locked SQLite target before the attempt counts
    /// as a transient failure.
    pub busy_timeout: Duration,
    /// `[limits]`: what a received batch may be.
    pub limits: LimitsConfig,
    /// `[audit] keep_months`: audit files older than this many months are deleted.
    pub audit_keep_months: u32,
}

/// Default `[limits] max_batch_bytes` (1 GiB).
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 1 << 30;
/// Default `[limits] max_statements` (10 million).
pub const DEFAULT_MAX_STATEMENTS: u64 = 10_000_000;
/// Default `[audit] keep_months`.
pub const DEFAULT_AUDIT_KEEP_MONTHS: u32 = 12;
/// Smallest accepted `[audit] keep_months`.
pub const MIN_AUDIT_KEEP_MONTHS: u32 = 6;
/// Default `[archive] keep_days`.
pub const DEFAULT_ARCHIVE_KEEP_DAYS: u32 = 90;
/// Largest accepted `[archive] keep_days` (100 years; 0 keeps forever).
pub const MAX_ARCHIVE_KEEP_DAYS: u32 = 36_500;

/// The receiver's `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest batch file (bytes on the wire, compressed or not) a sender may push.
    pub max_batch_bytes: u64,
    /// Limits checked while verifying and applying (decompressed size, statement length,
    /// statements per batch).
    pub read: crate::batch::ReadLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            read: crate::batch::ReadLimits {
                max_statements: DEFAULT_MAX_STATEMENTS,
                ..crate::batch::ReadLimits::default()
            },
        }
    }
}

// ---------------------------------------------------------------- loading

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Turn a toml/serde error into one line: `line N ([section] key = value): message`.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return invalid(path, msg);
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|s| format!("{s} "))
        .unwrap_or_default();
    invalid(path, format!("line {line_no} ({section}{line}): {msg}"))
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

fn duration(
    path: &Path,
    key: &str,
    v: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).ok_or_else(|| {
            invalid(
                path,
                format!("{key} = {s:?}: invalid duration (use e.g. 500ms, 5s, 2m, 1h)"),
            )
        }),
    }
}

/// Node ids appear in file names and frames: 1 to 32 of `[A-Za-z0-9_-]`.
pub fn valid_node(node: &str) -> bool {
    (1..=32).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn max_frame(path: &Path, key: &str, v: Option<u64>) -> Result<usize, ConfigError> {
    let v = v.unwrap_or(1 << 20);
    if !(4096..=64 << 20).contains(&v) {
        return Err(invalid(
            path,
            format!("{key} = {v}: must be between 4096 and 67108864 bytes"),
        ));
    }
    usize::try_from(v).map_err(|_| invalid(path, format!("{key} = {v}: too large")))
}

/// `[audit] keep_months`: default 12, at least 6.
fn keep_months(path: &Path, a: &RawAudit) -> Result<u32, ConfigError> {
    let v = a.keep_months.unwrap_or(DEFAULT_AUDIT_KEEP_MONTHS);
    if v < MIN_AUDIT_KEEP_MONTHS {
        return Err(invalid(
            path,
            format!(
                "[audit] keep_months = {v}: must be at least {MIN_AUDIT_KEEP_MONTHS} (the audit record is kept at least 6 months)"
            ),
        ));
    }
    Ok(v)
}

/// `[archive] keep_days`: default 90, 0 (keep forever) up to 36500.
fn keep_days(path: &Path, a: &RawArchive) -> Result<u32, ConfigError> {
    let Some(v) = &a.keep_days else {
        return Ok(DEFAULT_ARCHIVE_KEEP_DAYS);
    };
    let shown = match v {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "[...]".to_owned(),
        toml::Value::Table(_) => "{...}".to_owned(),
    };
    v.as_integer()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= MAX_ARCHIVE_KEEP_DAYS)
        .ok_or_else(|| {
            invalid(
                path,
                format!(
                    "[archive] keep_days = {shown}: must be a whole number of days from 0 to {MAX_ARCHIVE_KEEP_DAYS} (0 keeps the archive forever)"
                ),
            )
        })
}

/// One `[limits]` value: default, and at least `min`.
fn limit(
    path: &Path,
    key: &str,
    v: Option<u64>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min {
        return Err(invalid(
            path,
            format!("[limits] {key} = {v}: must be at least {min}"),
        ));
    }
    Ok(v)
}

fn limits(path: &Path, l: &RawLimits) -> Result<LimitsConfig, ConfigError> {
    let d = LimitsConfig::default();
    let stmt = limit(
        path,
        "max_statement_len",
        l.max_statement_len,
        d.read.max_statement_len as u64,
        1024,
    )?;
    Ok(LimitsConfig {
        max_batch_bytes: limit(
            path,
            "max_batch_bytes",
            l.max_batch_bytes,
            d.max_batch_bytes,
            4096,
        )?,
        read: crate::batch::ReadLimits {
            max_decompressed: limit(
                path,
                "max_decompressed",
                l.max_decompressed,
                d.read.max_decompressed,
                4096,
            )?,
            max_statement_len: usize::try_from(stmt).map_err(|_| {
                invalid(
                    path,
                    format!("[limits] max_statement_len = {stmt}: too large"),
                )
            })?,
            max_statements: limit(
                path,
                "max_statements",
                l.max_statements,
                d.read.max_statements,
                1,
            )?,
        },
    })
}

impl SenderConfig {
    pub fn load(path: &Path) -> Result<SenderConfig, ConfigError> {
        let text = read(path)?;
        let raw: RawSender = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        Self::validate(path, raw)
    }

    fn validate(path: &Path, raw: RawSender) -> Result<SenderConfig, ConfigError> {
        let base = base_dir(path);
        if !valid_node(&raw.node) {
            return Err(invalid(
                path,
                format!(
                    "node = {:?}: must be 1 to 32 ASCII letters, digits, '_' or '-'",
                    raw.node
                ),
            ));
        }
        let source = DbUrl::parse(&raw.source.url, &base)
            .map_err(|m| invalid(path, format!("[source] url: {m}")))?;
        if let Some(d) = &raw.source.dialect {
            match d.as_str() {
                "postgres" | "mysql" => {}
                other => {
                    return Err(invalid(
                        path,
                        format!(
                            "[source] dialect = {other:?}: sources can be postgres or mysql (SQLite is sqlite: URLs)"
                        ),
                    ));
                }
            }
        }
        let dialect_name = raw.target.dialect.as_deref().unwrap_or("sqlite");
        let dialect: Dialect = dialect_name
            .parse()
            .map_err(|e| invalid(path, format!("[target] dialect: {e}")))?;
        if raw.tables.is_empty() {
            return Err(invalid(
                path,
                "no [[table]] entries: name at least one source table to synchronize",
            ));
        }
        let mut tables = Vec::new();
        let mut seen_src = std::collections::BTreeSet::new();
        let mut seen_dst = std::collections::BTreeSet::new();
        for (i, t) in raw.tables.into_iter().enumerate() {
            let n = i + 1;
            if t.source.trim().is_empty() || t.source.starts_with("_gapsync") {
                return Err(invalid(
                    path,
                    format!(
                        "[[table]] #{n} source = {:?}: not a table gapsync may capture",
                        t.source
                    ),
                ));
            }
            let target = t.target.unwrap_or_else(|| t.source.clone());
            if !seen_src.insert(t.source.clone()) {
                return Err(invalid(
                    path,
                    format!("[[table]] #{n} source = {:?}: listed twice", t.source),
                ));
            }
            if !seen_dst.insert(target.clone()) {
                return Err(invalid(
                    path,
                    format!("[[table]] #{n} target = {target:?}: two tables map onto it"),
                ));
            }
            if let Some(k) = &t.key
                && k.is_empty()
            {
                return Err(invalid(
                    path,
                    format!(
                        "[[table]] #{n} ({}) key = []: name at least one column",
                        t.source
                    ),
                ));
            }
            tables.push(TableConfig {
                source: t.source,
                target,
                key: t.key,
                rename: t.rename,
            });
        }
        let b = raw.batch;
        let strategy = match b.strategy.as_deref().unwrap_or("immediate") {
            "immediate" => Strategy::Immediate,
            "interval" | "idle" => {
                let s = b.strategy.as_deref().unwrap_or_default();
                let Some(iv) = &b.interval else {
                    return Err(invalid(
                        path,
                        format!("[batch] strategy = {s:?} needs [batch] interval (e.g. \"5s\")"),
                    ));
                };
                let d = duration(path, "[batch] interval", &Some(iv.clone()), Duration::ZERO)?;
                if d.is_zero() {
                    return Err(invalid(path, "[batch] interval must be more than 0"));
                }
                if s == "interval" {
                    Strategy::Interval(d)
                } else {
                    Strategy::Idle(d)
                }
            }
            "count" => match b.count {
                Some(c) if c > 0 => Strategy::Count(c),
                _ => {
                    return Err(invalid(
                        path,
                        "[batch] strategy = \"count\" needs [batch] count of at least 1",
                    ));
                }
            },
            other => {
                return Err(invalid(
                    path,
                    format!(
                        "[batch] strategy = {other:?}: must be immediate, interval, count or idle"
                    ),
                ));
            }
        };
        let max_rows = b.max_rows.unwrap_or(10_000);
        if max_rows == 0 {
            return Err(invalid(path, "[batch] max_rows must be at least 1"));
        }
        if let Strategy::Count(c) = strategy
            && c > max_rows
        {
            return Err(invalid(
                path,
                format!("[batch] count = {c} is larger than max_rows = {max_rows}"),
            ));
        }
        let on_second_failure = match b.on_second_failure.as_deref().unwrap_or("drop") {
            "drop" => OnSecondFailure::Drop,
            "halt" => OnSecondFailure::Halt,
            other => {
                return Err(invalid(
                    path,
                    format!("[batch] on_second_failure = {other:?}: must be drop or halt"),
                ));
            }
        };
        let batch = BatchConfig {
            strategy,
            max_rows,
            compress: b.compress.unwrap_or(false),
            on_second_failure,
            poll: duration(path, "[batch] poll", &b.poll, Duration::from_millis(100))?,
        };
        let l = raw.link;
        if l.connect.trim().is_empty() {
            return Err(invalid(path, "[link] connect is empty (write host:port)"));
        }
        let link = SenderLinkConfig {
            connect: l.connect,
            max_frame: max_frame(path, "[link] max_frame", l.max_frame)?,
            frame_timeout: duration(
                path,
                "[link] frame_timeout",
                &l.frame_timeout,
                Duration::from_secs(30),
            )?,
            result_timeout: duration(
                path,
                "[link] result_timeout",
                &l.result_timeout,
                Duration::from_secs(120),
            )?,
            connect_timeout: duration(
                path,
                "[link] connect_timeout",
                &l.connect_timeout,
                Duration::from_secs(10),
            )?,
            heartbeat: duration(
                path,
                "[link] heartbeat",
                &l.heartbeat,
                Duration::from_secs(10),
            )?,
            once_connect_attempts: l.once_connect_attempts.unwrap_or(5).max(1),
            receiver_id: receiver_id(path, "[link] receiver_id", l.receiver_id)?,
        };
        if raw.sign.is_none() && !raw.insecure {
            return Err(invalid(
                path,
                "no [sign] key: create one with `gapsync-sender keygen --out DIR` and set [sign] key = \"DIR/<node>.key\", or set insecure = true to run without signatures",
            ));
        }
        let audit_keep_months = keep_months(path, &raw.audit)?;
        let archive_keep_days = keep_days(path, &raw.archive)?;
        Ok(SenderConfig {
            audit_keep_months,
            archive_keep_days,
            file: path.to_owned(),
            node: raw.node,
            insecure: raw.insecure,
            sign_key: raw.sign.map(|s| base.join(s.key)),
            source,
            source_dialect: raw.source.dialect,
            dialect,
            tables,
            batch,
            link,
            work_dir: base.join(raw.work.dir),
        })
    }
}

impl ReceiverConfig {
    /// Options for opening the target database.
    pub fn target_options(&self) -> crate::target::TargetOptions {
        crate::target::TargetOptions {
            busy_timeout: self.busy_timeout,
            dialect: self.target_dialect.clone(),
            allow: crate::allow::AllowList::new(self.allowed_tables.clone()),
        }
    }

    pub fn load(path: &Path) -> Result<ReceiverConfig, ConfigError> {
        let text = read(path)?;
        let raw: RawReceiver = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let base = base_dir(path);
        let target = DbUrl::parse(&raw.target.url, &base)
            .map_err(|m| invalid(path, format!("[target] url: {m}")))?;
        if let Some(d) = &raw.target.dialect {
            d.parse::<Dialect>()
                .map_err(|e| invalid(path, format!("[target] dialect: {e}")))?;
        }
        let l = raw.link;
        if l.listen.trim().is_empty() {
            return Err(invalid(path, "[link] listen is empty (write host:port)"));
        }
        let link = ReceiverLinkConfig {
            listen: l.listen,
            max_frame: max_frame(path, "[link] max_frame", l.max_frame)?,
            idle_timeout: duration(
                path,
                "[link] idle_timeout",
                &l.idle_timeout,
                Duration::from_secs(120),
            )?,
            frame_timeout: duration(
                path,
                "[link] frame_timeout",
                &l.frame_timeout,
                Duration::from_secs(60),
            )?,
            result_wait: duration(
                path,
                "[link] result_wait",
                &l.result_wait,
                Duration::from_secs(20),
            )?,
            max_connections: l.max_connections.unwrap_or(16).max(1),
            id: receiver_id(path, "[link] id", l.id)?,
            hello_timeout: duration(
                path,
                "[link] hello_timeout",
                &l.hello_timeout,
                Duration::from_secs(10),
            )?,
            hello_max_skew: duration(
                path,
                "[link] hello_max_skew",
                &l.hello_max_skew,
                Duration::from_secs(300),
            )?,
        };
        if raw.trust.is_empty() && !raw.insecure {
            return Err(invalid(
                path,
                "no [[trust]] entry: add [[trust]] node = \"...\" key = \"<the sender's .pub line>\" for every sender, or set insecure = true to accept unsigned batches",
            ));
        }
        for (i, t) in raw.trust.iter().enumerate() {
            if !valid_node(&t.node) {
                return Err(invalid(
                    path,
                    format!(
                        "[[trust]] #{} node = {:?}: not a valid node id",
                        i + 1,
                        t.node
                    ),
                ));
            }
        }
        let limits = limits(path, &raw.limits)?;
        let audit_keep_months = keep_months(path, &raw.audit)?;
        Ok(ReceiverConfig {
            limits,
            audit_keep_months,
            file: path.to_owned(),
            insecure: raw.insecure,
            trust: raw.trust.into_iter().map(|t| (t.node, t.key)).collect(),
            allowed_tables: raw.target.tables,
            target,
            target_dialect: raw.target.dialect,
            link,
            work_dir: base.join(raw.work.dir),
            retry_interval: duration(
                path,
                "[apply] retry_interval",
                &raw.apply.retry_interval,
                Duration::from_secs(1),
            )?,
            busy_timeout: duration(
                path,
                "[apply] busy_timeout",
                &raw.apply.busy_timeout,
                Duration::from_secs(5),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
node = "plant1"
insecure = true
[source]
url = "sqlite:plant.db"
[target]
dialect = "sqlite"
[[table]]
source = "meter_reading"
target = "plant1_meter_reading"
rename = { val = "value" }
[batch]
strategy = "interval"
interval = "5s"
[link]
connect = "127.0.0.1:7070"
[work]
dir = "work"
"#;

    fn load(text: &str) -> Result<SenderConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sender.toml");
        std::fs::write(&p, text).expect("write");
        SenderConfig::load(&p)
    }

    #[test]
    fn good_sender_config_loads() {
        let c = load(GOOD).expect("valid");
        assert_eq!(c.batch.strategy, Strategy::Interval(Duration::from_secs(5)));
        assert_eq!(c.tables[0].target, "plant1_meter_reading");
        assert!(c.work_dir.ends_with("work"));
    }

    #[test]
    fn bad_sender_configs_name_the_key() {
        let cases = [
            (
                GOOD.replace("\"5s\"", "\"5x\""),
                "[batch] interval = \"5x\": invalid duration",
            ),
            (GOOD.replace("plant1\"", "plant 1\""), "node = \"plant 1\""),
            (
                GOOD.replace("\"interval\"", "\"sometimes\""),
                "[batch] strategy = \"sometimes\"",
            ),
            (
                GOOD.replace("dialect = \"sqlite\"", "dialect = \"foo\""),
                "[target] dialect: unknown dialect \"foo\"",
            ),
            (
                GOOD.replace("dir = \"work\"", "dri = \"work\""),
                "line 18 ([work] dri = \"work\"): unknown field `dri`",
            ),
            (
                GOOD.replace("sqlite:plant.db", "mysql://x"),
                "[source] url: unsupported URL",
            ),
            (
                GOOD.replace("interval = \"5s\"", ""),
                "needs [batch] interval",
            ),
        ];
        for (text, want) in cases {
            let e = load(&text).expect_err(want).to_string();
            assert!(e.contains(want), "error {e:?} should contain {want:?}");
            assert!(
                e.contains("sender.toml"),
                "error {e:?} should name the file"
            );
            assert!(!e.contains('\n'), "error {e:?} should be one line");
        }
    }

    const GOOD_RX: &str = r#"
insecure = true
[target]
url = "sqlite:replica.db"
[link]
listen = "127.0.0.1:7070"
[work]
dir = "work"
"#;

    fn load_rx(text: &str) -> Result<ReceiverConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("receiver.toml");
        std::fs::write(&p, text).expect("write");
        ReceiverConfig::load(&p)
    }

    #[test]
    fn receiver_limits_and_audit_defaults() {
        let c = load_rx(GOOD_RX).expect("valid");
        assert_eq!(c.limits.max_batch_bytes, 1 << 30);
        assert_eq!(c.limits.read.max_decompressed, 4 << 30);
        assert_eq!(c.limits.read.max_statement_len, 16 << 20);
        assert_eq!(c.limits.read.max_statements, 10_000_000);
        assert_eq!(c.audit_keep_months, 12);
        let c = load_rx(&format!(
            "{GOOD_RX}[limits]\nmax_batch_bytes = 5000\nmax_decompressed = 6000\nmax_statement_len = 2000\nmax_statements = 7\n[audit]\nkeep_months = 6\n"
        ))
        .expect("valid");
        assert_eq!(c.limits.max_batch_bytes, 5000);
        assert_eq!(c.limits.read.max_decompressed, 6000);
        assert_eq!(c.limits.read.max_statement_len, 2000);
        assert_eq!(c.limits.read.max_statements, 7);
        assert_eq!(c.audit_keep_months, 6);
        assert_eq!(load(GOOD).expect("valid").audit_keep_months, 12);
    }

    #[test]
    fn bad_limits_and_retention_name_the_key() {
        let cases = [
            (
                "[audit]\nkeep_months = 5\n",
                "[audit] keep_months = 5: must be at least 6",
            ),
            (
                "[limits]\nmax_statements = 0\n",
                "[limits] max_statements = 0",
            ),
            (
                "[limits]\nmax_batch_bytes = 10\n",
                "[limits] max_batch_bytes = 10",
            ),
            (
                "[limits]\nmax_decompressed = 10\n",
                "[limits] max_decompressed = 10",
            ),
            (
                "[limits]\nmax_statement_len = 10\n",
                "[limits] max_statement_len = 10",
            ),
            ("[limits]\nmax_rows = 10\n", "unknown field `max_rows`"),
        ];
        for (extra, want) in cases {
            let e = load_rx(&format!("{GOOD_RX}{extra}"))
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "error {e:?} should contain {want:?}");
            assert!(!e.contains('\n'), "error {e:?} should be one line");
        }
        let e = load(&format!("{GOOD}[audit]\nkeep_months = 1\n"))
            .expect_err("sender keep_months")
            .to_string();
        assert!(e.contains("[audit] keep_months = 1"), "{e}");
    }

    #[test]
    fn archive_keep_days_default_zero_and_bad_values() {
        assert_eq!(load(GOOD).expect("valid").archive_keep_days, 90);
        let c = load(&format!("{GOOD}[archive]\nkeep_days = 0\n")).expect("keep forever");
        assert_eq!(c.archive_keep_days, 0);
        let c = load(&format!("{GOOD}[archive]\nkeep_days = 30\n")).expect("30 days");
        assert_eq!(c.archive_keep_days, 30);
        let cases = [
            (
                "keep_days = -1",
                "[archive] keep_days = -1: must be a whole number",
            ),
            (
                "keep_days = 1.5",
                "[archive] keep_days = 1.5: must be a whole number",
            ),
            (
                "keep_days = \"90d\"",
                "[archive] keep_days = \"90d\": must be a whole number",
            ),
            (
                "keep_days = 99999999999",
                "[archive] keep_days = 99999999999: must be a whole number",
            ),
            ("keep_days = 36501", "[archive] keep_days = 36501"),
            ("keep_day = 3", "unknown field `keep_day`"),
        ];
        for (line, want) in cases {
            let e = load(&format!("{GOOD}[archive]\n{line}\n"))
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "error {e:?} should contain {want:?}");
            assert!(
                e.contains("sender.toml"),
                "error {e:?} should name the file"
            );
            assert!(!e.contains('\n'), "error {e:?} should be one line");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example configurations must stay valid.
    #[test]
    fn deploy_examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let s = SenderConfig::load(&dir.join("sender.toml")).expect("sender example");
        assert_eq!(s.node, "plant1");
        assert_eq!(s.tables.len(), 2);
        let r = ReceiverConfig::load(&dir.join("receiver.toml")).expect("receiver example");
        assert_eq!(r.link.max_connections, 16);
    }
}
