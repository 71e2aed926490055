//! The sender's configuration (TOML): `SenderConfig::load` and what it holds. The rules
//! both sides share (durations, ids, URLs, one-line errors) are in
//! `gapsync_common::config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use gapsync_common::config::{
    ConfigError, DbUrl, RawAudit, RawWork, base_dir, duration, invalid, keep_months, link_target,
    max_frame, read, receiver_id, toml_error, valid_node,
};
use gapsync_common::dialect::Dialect;

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
    #[serde(default)]
    receipts: RawReceipts,
    #[serde(default)]
    alarm: RawAlarm,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    textfile: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarm {
    lag: Option<String>,
    lag_critical: Option<String>,
    silence: Option<String>,
    silence_critical: Option<String>,
}

/// `[alarm]`: the thresholds `status` judges by (exit 0 ok, 1 warning, 2 critical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmConfig {
    /// The oldest change not yet applied (pending, or in an unanswered batch) older than
    /// this: warning; than `lag_critical`: critical.
    pub lag: Duration,
    pub lag_critical: Duration,
    /// No answer from the receiver for this long while batches wait: warning; for
    /// `silence_critical`: critical (TCP link only).
    pub silence: Duration,
    pub silence_critical: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceipts {
    #[serde(default)]
    trust: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    /// Kept as a TOML value so that a wrong type gets the same one-line message as a
    /// wrong number.
    keep_days: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
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
    at: Option<Vec<String>>,
    count: Option<u64>,
    max_rows: Option<u64>,
    compress: Option<bool>,
    on_second_failure: Option<String>,
    poll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSenderLink {
    connect: Option<String>,
    dir: Option<PathBuf>,
    manifest_every: Option<String>,
    max_frame: Option<u64>,
    frame_timeout: Option<String>,
    result_timeout: Option<String>,
    connect_timeout: Option<String>,
    heartbeat: Option<String>,
    once_connect_attempts: Option<u32>,
    receiver_id: Option<String>,
}

/// When the sender cuts a batch. Whatever the strategy, one batch holds at most
/// `[batch] max_rows` changes: a cut takes everything pending in as many batches as
/// that needs (`count` cuts batches of exactly `count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// As soon as a change is pending.
    Immediate,
    /// Every `interval`, if anything is pending.
    Interval(Duration),
    /// Whenever `n` changes are pending (a batch of `n`).
    Count(u64),
    /// When changes are pending and none arrived for this long.
    Idle(Duration),
    /// At these local times of day (sorted; see `crate::schedule`).
    At(Vec<chrono::NaiveTime>),
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
    /// `[link] connect`: the isolation device's TCP mapping (empty with `dir`).
    pub connect: String,
    /// `[link] dir`: no live link; batches are published to this folder (a ferry's
    /// inside folder) and count as delivered once published.
    pub dir: Option<PathBuf>,
    /// `[link] manifest_every`: with `dir`, how often a manifest of the batches
    /// published since the last one is written (zero: after every publish cycle).
    pub manifest_every: Duration,
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
    /// `[receipts] trust`: the receivers' public key lines receipts must be signed
    /// with, as (receiver id, line).
    pub receipts_trust: Vec<(String, String)>,
    pub alarm: AlarmConfig,
    /// `[metrics] textfile`: Prometheus text for node_exporter's textfile collector.
    pub metrics_textfile: Option<PathBuf>,
}

/// Default `[archive] keep_days`.
pub const DEFAULT_ARCHIVE_KEEP_DAYS: u32 = 90;

/// Largest accepted `[archive] keep_days` (100 years; 0 keeps forever).
pub const MAX_ARCHIVE_KEEP_DAYS: u32 = 36_500;

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

impl SenderConfig {
    /// Only the node id of a sender config: what `keygen` needs, before a key exists
    /// (the full [`SenderConfig::load`] requires `[sign] key` unless `insecure`).
    pub fn load_node(path: &Path) -> Result<String, ConfigError> {
        #[derive(Deserialize)]
        struct NodeOnly {
            node: String,
        }
        let text = read(path)?;
        let raw: NodeOnly = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        if !valid_node(&raw.node) {
            return Err(invalid(
                path,
                format!("node = {:?}: 1 to 32 of A-Z a-z 0-9 _ -", raw.node),
            ));
        }
        Ok(raw.node)
    }

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
            "at" => {
                let Some(times) = b.at.as_ref().filter(|t| !t.is_empty()) else {
                    return Err(invalid(
                        path,
                        "[batch] strategy = \"at\" needs [batch] at = [\"HH:MM\", ...] (local time)",
                    ));
                };
                let mut parsed = Vec::new();
                for t in times {
                    let v = chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| {
                        invalid(
                            path,
                            format!(
                                "[batch] at: {t:?} is not a time of day HH:MM (00:00 to 23:59)"
                            ),
                        )
                    })?;
                    parsed.push(v);
                }
                parsed.sort();
                parsed.dedup();
                Strategy::At(parsed)
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
                        "[batch] strategy = {other:?}: must be immediate, interval, count, idle or at"
                    ),
                ));
            }
        };
        let max_rows = b.max_rows.unwrap_or(10_000);
        if max_rows == 0 {
            return Err(invalid(path, "[batch] max_rows must be at least 1"));
        }
        if let Strategy::Count(c) = &strategy
            && *c > max_rows
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
        let (connect, dir) =
            link_target(path, "sender", "connect", l.connect, l.dir, &base, false)?;
        if dir.is_none() && l.manifest_every.is_some() {
            return Err(invalid(
                path,
                "[link] manifest_every goes with dir (a TCP link has no manifests)",
            ));
        }
        let manifest_every = duration(
            path,
            "[link] manifest_every",
            &l.manifest_every,
            Duration::ZERO,
        )?;
        let link = SenderLinkConfig {
            connect,
            dir,
            manifest_every,
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
        let mut receipts_trust = Vec::new();
        for line in raw.receipts.trust {
            let k = gapsync_common::sign::PublicKey::parse(&line).map_err(|e| {
                invalid(
                    path,
                    format!("[receipts] trust: {e} (paste the receiver's .pub line from `gapsync-receiver keygen`)"),
                )
            })?;
            receipts_trust.push((k.node.clone(), line));
        }
        let a = &raw.alarm;
        let alarm = AlarmConfig {
            lag: duration(path, "[alarm] lag", &a.lag, Duration::from_secs(300))?,
            lag_critical: duration(
                path,
                "[alarm] lag_critical",
                &a.lag_critical,
                Duration::from_secs(3600),
            )?,
            silence: duration(
                path,
                "[alarm] silence",
                &a.silence,
                Duration::from_secs(300),
            )?,
            silence_critical: duration(
                path,
                "[alarm] silence_critical",
                &a.silence_critical,
                Duration::from_secs(1800),
            )?,
        };
        if alarm.lag_critical < alarm.lag || alarm.silence_critical < alarm.silence {
            return Err(invalid(
                path,
                "[alarm] lag_critical and silence_critical must not be below lag and silence",
            ));
        }
        Ok(SenderConfig {
            metrics_textfile: raw.metrics.textfile.map(|t| base.join(t)),
            alarm,
            receipts_trust,
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

    /// `strategy = "at"`: local times of day, sorted; a bad or missing time is named.
    #[test]
    fn the_at_strategy_takes_times_of_day() {
        let at = GOOD.replace(
            "strategy = \"interval\"\ninterval = \"5s\"",
            "strategy = \"at\"\nat = [\"14:30\", \"02:00\"]",
        );
        let c = load(&at).expect("valid");
        let t = |s| chrono::NaiveTime::parse_from_str(s, "%H:%M").expect("time");
        assert_eq!(c.batch.strategy, Strategy::At(vec![t("02:00"), t("14:30")]));
        for (text, want) in [
            (
                at.replace("\"02:00\"", "\"25:00\""),
                "[batch] at: \"25:00\" is not a time of day",
            ),
            (
                at.replace("at = [\"14:30\", \"02:00\"]", "at = []"),
                "needs [batch] at",
            ),
        ] {
            let e = load(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    /// One link per sender: `connect` or `dir`, never both or neither; `manifest_every`
    /// only with `dir`; a folder path relative to the config file.
    #[test]
    fn the_link_is_a_device_or_a_folder() {
        let folder = GOOD.replace(
            "connect = \"127.0.0.1:7070\"",
            "dir = \"ferry\"\nmanifest_every = \"1h\"",
        );
        let c = load(&folder).expect("a folder link");
        assert!(c.link.dir.as_ref().is_some_and(|d| d.ends_with("ferry")));
        assert_eq!(c.link.manifest_every, Duration::from_secs(3600));
        assert!(c.link.connect.is_empty());
        for (text, want) in [
            (
                GOOD.replace("connect = ", "dir = \"f\"\nconnect = "),
                "[link] has both connect and dir",
            ),
            (
                GOOD.replace("connect = \"127.0.0.1:7070\"", ""),
                "[link] needs connect",
            ),
            (
                GOOD.replace("connect = ", "manifest_every = \"1h\"\nconnect = "),
                "[link] manifest_every goes with dir",
            ),
            (
                folder.replace("\"1h\"", "\"often\""),
                "[link] manifest_every = \"often\": invalid duration",
            ),
            (
                GOOD.replace("[work]", "[receipts]\ntrust = [\"not a key\"]\n[work]"),
                "[receipts] trust:",
            ),
        ] {
            let e = load(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
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
    fn sender_audit_retention() {
        assert_eq!(load(GOOD).expect("valid").audit_keep_months, 12);
        let e = load(&format!("{GOOD}[audit]\nkeep_months = 1\n"))
            .expect_err("sender keep_months")
            .to_string();
        assert!(e.contains("[audit] keep_months = 1"), "{e}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example configuration must stay valid.
    #[test]
    fn deploy_example_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let s = SenderConfig::load(&dir.join("sender.toml")).expect("sender example");
        assert_eq!(s.node, "plant1");
        assert_eq!(s.tables.len(), 2);
    }
}
