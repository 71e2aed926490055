//! The receiver's configuration (TOML): `ReceiverConfig::load` and what it holds. The
//! rules both sides share (durations, ids, URLs, one-line errors) are in
//! `gapsync_common::config`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use gapsync_common::config::{
    ConfigError, DbUrl, RawAudit, RawWork, base_dir, duration, host_port, invalid, keep_months,
    link_target, max_frame, read, receiver_id, toml_error, valid_node,
};
use gapsync_common::dialect::Dialect;

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
    receipts: Option<RawReceipts>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    alarm: RawAlarm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarm {
    silence: Option<String>,
    silence_critical: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
    textfile: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceipts {
    dir: PathBuf,
    key: Option<PathBuf>,
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
struct RawTrust {
    node: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiverTarget {
    url: String,
    dialect: Option<String>,
    tables: Option<Vec<String>>,
    create: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiverLink {
    listen: Option<String>,
    dir: Option<PathBuf>,
    rescan: Option<String>,
    gap_alarm: Option<String>,
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

#[derive(Debug, Clone)]
pub struct ReceiverLinkConfig {
    /// `[link] listen`: the TCP address the isolation device connects to (empty with
    /// `dir`).
    pub listen: String,
    /// `[link] dir`: no live link; batch files arrive in this folder (a ferry's outside
    /// folder), are applied in seq order per node and moved to `done/` in it.
    pub dir: Option<PathBuf>,
    /// `[link] rescan`: with `dir`, a full rescan this often besides the file-system
    /// events (inotify is not fully reliable; network file systems send none).
    pub rescan: Duration,
    /// `[link] gap_alarm`: with `dir`, a node whose next seq is missing while later
    /// ones wait (or a manifest names it) for longer than this is an alarm.
    pub gap_alarm: Duration,
    pub max_frame: usize,
    pub idle_timeout: Duration,
    pub frame_timeout: Duration,
    /// How long a `result?` answer may wait for an apply that is being retried before
    /// the receiver closes the connection instead (the sender then asks again).
    pub result_wait: Duration,
    /// Connections that have not (yet) authenticated, in total; at most
    /// [`crate::sessions::MAX_UNAUTHENTICATED_PER_PEER`] of them per peer address.
    pub max_connections: u32,
    /// `[link] id`: this receiver's id; a HELLO must name it.
    pub id: String,
    /// `[link] hello_timeout`: a connection must authenticate within this.
    pub hello_timeout: Duration,
    /// `[link] hello_max_skew`: how far a HELLO's time may be from this clock.
    pub hello_max_skew: Duration,
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
    /// `[target] create`: a SQLite target file that does not exist may be created (first
    /// installs only; otherwise a missing target is an error, never a fresh empty one).
    pub create_target: bool,
    /// `[limits]`: what a received batch may be.
    pub limits: LimitsConfig,
    /// `[audit] keep_months`: audit files older than this many months are deleted.
    pub audit_keep_months: u32,
    /// `[receipts] dir`: where receipts for the senders are written (folder link and
    /// `import`); None: no receipts.
    pub receipts_dir: Option<PathBuf>,
    /// `[receipts] key`: this receiver's private key file (its node id is `[link] id`)
    /// receipts are signed with; None: unsigned receipts.
    pub receipts_key: Option<PathBuf>,
    /// `[metrics] listen`: serve Prometheus text on `GET /metrics` here.
    pub metrics_listen: Option<String>,
    /// `[metrics] textfile`: write the same text here for node_exporter.
    pub metrics_textfile: Option<PathBuf>,
    /// `[alarm] silence`, `silence_critical`: a node not heard from (HELLO, heartbeat, a
    /// batch) for this long makes `status` warn / critical (TCP link).
    pub alarm_silence: (Duration, Duration),
}

/// Default `[limits] max_batch_bytes` (1 GiB).
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 1 << 30;

/// Default `[limits] max_statements` (10 million).
pub const DEFAULT_MAX_STATEMENTS: u64 = 10_000_000;

/// The receiver's `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest batch file (bytes on the wire, compressed or not) a sender may push.
    pub max_batch_bytes: u64,
    /// Limits checked while verifying and applying (decompressed size, statement length,
    /// statements per batch).
    pub read: gapsync_common::batch::ReadLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            read: gapsync_common::batch::ReadLimits {
                max_statements: DEFAULT_MAX_STATEMENTS,
                ..gapsync_common::batch::ReadLimits::default()
            },
        }
    }
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
        read: gapsync_common::batch::ReadLimits {
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

impl ReceiverConfig {
    /// Options for opening the target database.
    pub fn target_options(&self) -> crate::apply::TargetOptions {
        crate::apply::TargetOptions {
            busy_timeout: self.busy_timeout,
            dialect: self.target_dialect.clone(),
            allow: crate::allow::AllowList::new(self.allowed_tables.clone()),
            create: self.create_target,
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
        let (listen, dir) = link_target(path, "receiver", "listen", l.listen, l.dir, &base, true)?;
        if dir.is_none() && (l.rescan.is_some() || l.gap_alarm.is_some()) {
            return Err(invalid(
                path,
                "[link] rescan and gap_alarm go with dir (a TCP link has no inbox)",
            ));
        }
        let rescan = duration(path, "[link] rescan", &l.rescan, Duration::from_secs(30))?;
        let gap_alarm = duration(
            path,
            "[link] gap_alarm",
            &l.gap_alarm,
            Duration::from_secs(3600),
        )?;
        let link = ReceiverLinkConfig {
            listen,
            dir,
            rescan,
            gap_alarm,
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
        for (key, d) in [
            ("idle_timeout", link.idle_timeout),
            ("frame_timeout", link.frame_timeout),
            ("hello_timeout", link.hello_timeout),
            ("hello_max_skew", link.hello_max_skew),
            ("rescan", link.rescan),
        ] {
            if d.is_zero() {
                return Err(invalid(
                    path,
                    format!("[link] {key} = \"0s\": must be above zero"),
                ));
            }
        }
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
            create_target: raw.target.create.unwrap_or(false),
            metrics_listen: match raw.metrics.listen {
                Some(a) => {
                    host_port(path, "[metrics] listen", &a, true)?;
                    Some(a)
                }
                None => None,
            },
            metrics_textfile: raw.metrics.textfile.map(|t| base.join(t)),
            alarm_silence: (
                duration(
                    path,
                    "[alarm] silence",
                    &raw.alarm.silence,
                    Duration::from_secs(300),
                )?,
                duration(
                    path,
                    "[alarm] silence_critical",
                    &raw.alarm.silence_critical,
                    Duration::from_secs(1800),
                )?,
            ),
            receipts_dir: raw.receipts.as_ref().map(|r| base.join(&r.dir)),
            receipts_key: raw
                .receipts
                .as_ref()
                .and_then(|r| r.key.as_ref())
                .map(|k| base.join(k)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn zero_link_timeouts_are_refused() {
        for key in [
            "idle_timeout",
            "frame_timeout",
            "hello_timeout",
            "hello_max_skew",
        ] {
            let text = GOOD_RX.replace(
                "listen = \"127.0.0.1:7070\"",
                &format!("listen = \"127.0.0.1:7070\"\n{key} = \"0s\""),
            );
            let e = load_rx(&text).expect_err(key).to_string();
            assert!(e.contains(&format!("[link] {key}")), "{e}");
        }
    }

    /// One link per receiver: `listen` or `dir` (the inbox), never both or neither;
    /// `rescan` and `gap_alarm` only with `dir`, `rescan` above zero; `[receipts]`
    /// paths relative to the config file.
    #[test]
    fn the_link_is_a_device_or_an_inbox() {
        let inbox = GOOD_RX.replace(
            "listen = \"127.0.0.1:7070\"",
            "dir = \"inbox\"\nrescan = \"10s\"\ngap_alarm = \"30m\"",
        );
        let c = load_rx(&format!(
            "{inbox}[receipts]\ndir = \"out\"\nkey = \"k/r.key\"\n"
        ))
        .expect("an inbox link");
        assert!(c.link.dir.as_ref().is_some_and(|d| d.ends_with("inbox")));
        assert_eq!(c.link.rescan, Duration::from_secs(10));
        assert_eq!(c.link.gap_alarm, Duration::from_secs(1800));
        assert!(c.receipts_dir.as_ref().is_some_and(|d| d.ends_with("out")));
        assert!(
            c.receipts_key
                .as_ref()
                .is_some_and(|d| d.ends_with("k/r.key"))
        );
        for (text, want) in [
            (
                GOOD_RX.replace("listen = ", "dir = \"i\"\nlisten = "),
                "[link] has both listen and dir",
            ),
            (
                GOOD_RX.replace("listen = \"127.0.0.1:7070\"", ""),
                "[link] needs listen",
            ),
            (
                GOOD_RX.replace("listen = ", "gap_alarm = \"1m\"\nlisten = "),
                "[link] rescan and gap_alarm go with dir",
            ),
            (inbox.replace("\"10s\"", "\"0s\""), "[link] rescan"),
        ] {
            let e = load_rx(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
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
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example configuration must stay valid.
    #[test]
    fn deploy_example_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let r = ReceiverConfig::load(&dir.join("receiver.toml")).expect("receiver example");
        assert_eq!(r.link.max_connections, 16);
    }
}
