//! gapsync sender: captures changes on the source, cuts batch files, ships them through
//! the link and handles the receiver's answers.
//!
//! - [`Sender`] (here): one opened sender (config, source database, work directory
//!   lock and recovery of the outbox at start).
//! - `capture`: the source port ([`capture::ChangeSource`]) and capture on SQLite and,
//!   with `odbc`, PostgreSQL and MySQL/MariaDB, with the trigger DDL per database.
//! - `cut` ([`Sender::cut_pending`]) and `snapshot` ([`Sender::cut_snapshots`]):
//!   tracking rows -> rendered statements -> batch file in `outbox/` -> batch record +
//!   marked rows.
//! - `ship` ([`Sender::ship_ready`]): send each ready batch, ask for its result, mark
//!   it applied (file to `archive/`) or count the failure; the second failure drops the
//!   batch to `quarantine/`.
//! - `service`: [`run`](Sender::run) is the service loop (with retention),
//!   [`once`](Sender::once) the one-shot.
//!
//! Work directory: `outbox/` (cut, not yet applied), `archive/` (applied),
//! `quarantine/` (dropped, with a `.reason` file), `state/sender.lock`, `state/halted`
//! (a halted node, see [`halt`]), `audit/`.
//! Retention ([`Sender::prune_archive`], `[archive] keep_days`): the service deletes
//! applied batches (their `archive/` file and their record) cut more than `keep_days`
//! ago, at start and once a day; the audit record keeps their name, size and SHA-256.
//! The durable state (next seq, batch records, which rows a batch carries) lives in the
//! source database, next to the tracking rows (see `crate::capture`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::capture::{BatchRecord, BatchState, ChangeSource, SqliteSource, TableSpec};
use crate::config::SenderConfig;
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::{self, BatchHeader, BatchKind};
use gapsync_common::config::DbUrl;
use gapsync_common::sign::BatchSigner;
pub use gapsync_common::stop::sleep_unless;
use gapsync_protocol::{Backoff, LinkClient, LinkError};
use tracing::{error, info, warn};

pub mod capture;
pub mod config;
mod cut;
pub mod halt;
mod metrics;
mod publish;
pub mod quarantine;
mod receipt;
pub mod schedule;
use cut::Render;
pub use publish::{ExportReport, PublishError};
pub use receipt::ReceiptSummary;
mod service;
mod ship;
mod snapshot;
pub use snapshot::SnapshotObserver;
pub mod status;

/// Errors of the sender library.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Source(#[from] crate::capture::SourceError),
    #[error(transparent)]
    Batch(#[from] gapsync_common::batch::BatchError),
    #[error(transparent)]
    Render(#[from] gapsync_common::dialect::RenderError),
    #[error("[[table]] {table}: {source}")]
    Mapping {
        table: String,
        source: gapsync_common::dialect::RenderError,
    },
    #[error("work directory {path}: {source}")]
    Work {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another gapsync-sender already works on {0} (stop it, or use a different [work] dir)")]
    Locked(PathBuf),
    #[error("table {0:?} has captured changes but is not in the config: add its [[table]] back")]
    UnknownTable(String),
    #[error("{0:?} is not a configured table (configured: {1})")]
    NotConfigured(String, String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("[sign] key: {0}")]
    Sign(#[from] gapsync_common::sign::SignError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Receipt(#[from] gapsync_common::receipt::ReceiptError),
    /// A resumed snapshot cannot continue where it stopped (internal: it starts over).
    #[error("the snapshot cannot continue where it stopped: {0}")]
    StartOver(String),
    #[error(
        "batch {seq} was dropped after two failed applies and [batch] on_second_failure = \"halt\": the node is halted; fix the cause (the receiver's quarantine/<file>.reason says why: repair the target, or `gapsync-sender resync TABLE` for the tables the batch touched), then `gapsync-sender resume`"
    )]
    Halted { seq: u64 },
    #[error(
        "the node is halted since {since}: batch {seq} ({file}) failed twice and was quarantined with [batch] on_second_failure = \"halt\"; nothing is shipped past it. Fix the cause (the receiver's quarantine/{file}.reason says why: repair the target, or `gapsync-sender resync TABLE` for the tables the batch touched), then run `gapsync-sender resume`"
    )]
    StillHalted {
        seq: u64,
        file: String,
        since: String,
    },
}

impl SenderError {
    /// The node is halted (now or from before): the service must not be restarted
    /// until an operator acts (the binary exits with status 3).
    pub fn is_halt(&self) -> bool {
        matches!(
            self,
            SenderError::Halted { .. } | SenderError::StillHalted { .. }
        )
    }

    /// The source database is unavailable for now (locked beyond its busy timeout, its
    /// disk failing, a server source unreachable or restarting): the service waits and
    /// retries instead of stopping (see [`Sender::run`]). Everything else is not.
    pub fn source_unavailable(&self) -> bool {
        matches!(self, SenderError::Source(e) if e.transient())
    }
}

type Result<T> = std::result::Result<T, SenderError>;

fn work_err(path: &Path) -> impl FnOnce(std::io::Error) -> SenderError + '_ {
    move |source| SenderError::Work {
        path: path.to_owned(),
        source,
    }
}

/// How often a running sender prunes old audit files and old applied batches.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The note of the newest link error in `state/` (see [`gapsync_common::note`]).
pub const LINK_NOTE: &str = "link-error.json";

/// How often the running service logs its statistics line.
const STATS_EVERY: Duration = Duration::from_secs(300);

/// First retry delay while the source database is unavailable; doubles up to
/// [`SOURCE_RETRY_MAX`].
const SOURCE_RETRY_FIRST: Duration = Duration::from_millis(200);
const SOURCE_RETRY_MAX: Duration = Duration::from_secs(5);

/// What one shipping pass did.
#[derive(Debug, Default, Clone)]
pub struct ShipReport {
    pub applied: Vec<u64>,
    pub dropped: Vec<u64>,
}

/// What one [`Sender::prune_archive`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchivePruned {
    /// Files deleted from `archive/`.
    pub files: u64,
    /// Batch records deleted from the source's `_gapsync_batches`.
    pub records: u64,
    /// The oldest applied batch kept: (seq, created), None when none is recorded.
    pub oldest_kept: Option<(u64, String)>,
}

/// A connection to the configured source database.
fn open_source(cfg: &SenderConfig) -> Result<Box<dyn ChangeSource>> {
    Ok(match &cfg.source {
        DbUrl::Sqlite(p) => Box::new(SqliteSource::open(p)?),
        #[cfg(feature = "odbc")]
        DbUrl::Odbc(cs) => Box::new(crate::capture::odbc::OdbcSource::connect(
            cs,
            cfg.source_dialect.as_deref(),
        )?),
        #[cfg(not(feature = "odbc"))]
        DbUrl::Odbc(_) => {
            return Err(crate::capture::SourceError::Unsupported(
                "[source] url: this build has no ODBC support (build with --features odbc)".into(),
            )
            .into());
        }
    })
}

/// The audit record of this sender's batches.
pub(crate) struct BatchAudit<'a> {
    audit: &'a Audit,
    node: &'a str,
    key_id: &'a str,
}

impl<'a> BatchAudit<'a> {
    /// From the sender's fields (borrowed apart: a snapshot audits while its source
    /// reads).
    pub(crate) fn of(
        audit: &'a Audit,
        node: &'a str,
        signer: Option<&'a BatchSigner>,
    ) -> BatchAudit<'a> {
        BatchAudit {
            audit,
            node,
            key_id: signer.map(BatchSigner::key_id).unwrap_or(""),
        }
    }

    pub(crate) fn record(&self, event: &str, r: &BatchRecord, verdict: &str, detail: &str) {
        let ev = AuditEvent {
            event,
            node: self.node,
            seq: r.seq,
            file: &r.file,
            size: r.size,
            sha256: &r.sha256,
            key_id: self.key_id,
            verdict,
            detail,
        };
        if let Err(e) = self.audit.record(&ev) {
            error!(error = %e, "cannot write the audit record");
        }
    }
}

/// An opened sender.
#[derive(Debug)]
pub struct Sender {
    pub cfg: SenderConfig,
    source: Box<dyn ChangeSource>,
    renders: HashMap<i64, Render>,
    audit: Audit,
    link: Option<LinkClient>,
    backoff: Backoff,
    /// Retry delays while the source database is unavailable (reset when it answers).
    source_backoff: Backoff,
    _lock: Option<File>,
    /// The `[sign] key`, loaded once at open (None with `insecure = true`).
    signer: Option<BatchSigner>,
    /// When `state/contact` was last written (at most every few seconds).
    contact_written: Option<std::time::Instant>,
    /// Counters and gauges for `[metrics] textfile`.
    metrics: metrics::TxMetrics,
    /// Shows snapshot progress (None: log lines every few seconds).
    observer: Option<Box<dyn snapshot::SnapshotObserver>>,
    /// `state/link-error.json`: the newest link error, for `status`.
    link_note: gapsync_common::note::Note,
}

impl Sender {
    /// Open the source database. `exclusive`: also take the work directory lock and
    /// recover the outbox (needed by everything that cuts or ships).
    pub fn open(cfg: SenderConfig, exclusive: bool) -> Result<Sender> {
        let signer = match &cfg.sign_key {
            Some(p) => {
                let s = BatchSigner::load(p, &cfg.node)?;
                info!(key = %p.display(), key_id = s.key_id(), "batches are signed");
                Some(s)
            }
            None => None,
        };
        let source = open_source(&cfg)?;
        let cfg_work = cfg.work_dir.clone();
        let audit = Audit::new(&cfg.work_dir, "sender");
        let mut s = Sender {
            cfg,
            source,
            renders: HashMap::new(),
            audit,
            link: None,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
            source_backoff: Backoff::new(SOURCE_RETRY_FIRST, SOURCE_RETRY_MAX),
            _lock: None,
            signer,
            contact_written: None,
            metrics: metrics::TxMetrics::default(),
            observer: None,
            link_note: gapsync_common::note::Note::new(
                cfg_work.join("state").join(LINK_NOTE),
                gapsync_common::note::NOTE_EVERY,
            ),
        };
        if exclusive {
            s.lock_and_recover()?;
        }
        Ok(s)
    }

    /// [`open`](Self::open) for the service: while a server source is unavailable
    /// ([`SenderError::source_unavailable`], e.g. still starting, or the network down),
    /// log and retry with a capped backoff until it answers or `stop` is set (Ok(None)).
    /// Every other error is returned at once, and so is any error of a SQLite source at
    /// start (a local file that cannot be read then is most likely misconfigured).
    pub fn open_service(cfg: SenderConfig, stop: &AtomicBool) -> Result<Option<Sender>> {
        let mut backoff = Backoff::new(SOURCE_RETRY_FIRST, SOURCE_RETRY_MAX);
        let server = matches!(cfg.source, DbUrl::Odbc(_));
        loop {
            match Sender::open(cfg.clone(), true) {
                Ok(s) => return Ok(Some(s)),
                Err(e) if server && e.source_unavailable() => {
                    let delay = backoff.next_delay();
                    warn!(alarm = true, error = %e, retry_in = ?delay, "source database unavailable at start: waiting for it");
                    sleep_unless(stop, delay);
                }
                Err(e) => return Err(e),
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
        }
    }

    pub fn source(&mut self) -> &mut dyn ChangeSource {
        self.source.as_mut()
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.cfg.work_dir.join(name)
    }

    fn lock_and_recover(&mut self) -> Result<()> {
        // 0700 (an older 0755 one tightened); a symlink or a file in their place is refused.
        for d in ["outbox", "archive", "quarantine", "state"] {
            let p = self.dir(d);
            gapsync_common::fsx::private_dir(&p).map_err(|e| work_err(&p)(e.into_io()))?;
        }
        // 0600, never through a symlink; opened for appending, its content is never read.
        let lock_path = self.dir("state").join("sender.lock");
        let f =
            gapsync_common::fsx::open_append_private(&lock_path).map_err(work_err(&lock_path))?;
        if f.try_lock().is_err() {
            return Err(SenderError::Locked(self.cfg.work_dir.clone()));
        }
        self._lock = Some(f);
        self.recover_outbox()
    }

    /// Bring the outbox in line with the batch records: delete files a cut wrote but
    /// never recorded, finish moves to `archive/` and `quarantine/`. At start, and after
    /// the source was unavailable (a cut or a settle may have failed between its file
    /// and its record: with a server source, even a failed COMMIT may have committed).
    fn recover_outbox(&mut self) -> Result<()> {
        if !self.source.is_installed()? {
            return Err(crate::capture::SourceError::NotInstalled.into());
        }
        // Files are written before their record commits: a file without a record is
        // the leftover of a crash between the two and was never sent.
        let next = self.source.next_seq()?;
        let outbox = self.dir("outbox");
        for entry in std::fs::read_dir(&outbox).map_err(work_err(&outbox))? {
            let entry = entry.map_err(work_err(&outbox))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with(".tmp-")
                || batch::parse_batch_file_name(&name).is_ok_and(|(_, seq, _)| seq >= next);
            if stale {
                warn!(file = %name, "removing unrecorded outbox file left by an interrupted cut");
                std::fs::remove_file(entry.path()).map_err(work_err(&entry.path()))?;
            }
        }
        // The record is updated before the file moves: finish moves a crash interrupted.
        for (state, dir) in [
            (BatchState::Applied, "archive"),
            (BatchState::Quarantined, "quarantine"),
        ] {
            for rec in self.source.batches(Some(state))? {
                let from = outbox.join(&rec.file);
                if from.exists() {
                    let to = self.dir(dir).join(&rec.file);
                    std::fs::rename(&from, &to).map_err(work_err(&to))?;
                    // The audit line is written after the move: it is missing too.
                    let (event, verdict) = match state {
                        BatchState::Quarantined => ("dropped", "quarantined"),
                        _ => ("applied", "ok"),
                    };
                    info!(seq = rec.seq, file = %rec.file, to = dir, "finished moving a settled batch");
                    self.audit(event, &rec, verdict, "settled before an interruption");
                }
            }
        }
        Ok(())
    }

    /// Resolve every configured table against the source schema.
    pub fn specs(&mut self) -> Result<Vec<TableSpec>> {
        Ok(self
            .cfg
            .tables
            .iter()
            .map(|t| self.source.describe(t))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Resolve every configured table and check that each column's type can be created
    /// on the target's dialect: an impossible mapping is a configuration error here, not
    /// a surprise at snapshot time.
    pub fn checked_specs(&mut self) -> Result<Vec<TableSpec>> {
        let specs = self.specs()?;
        let d = self.cfg.dialect;
        for spec in &specs {
            for (i, c) in spec.columns.iter().enumerate() {
                d.map_type(&c.source, &c.decl_type, spec.key.contains(&i))
                    .map_err(|e| SenderError::Mapping {
                        table: spec.source.clone(),
                        source: e,
                    })?;
            }
        }
        Ok(specs)
    }

    fn spec(&mut self, table: &str) -> Result<TableSpec> {
        let t = self
            .cfg
            .tables
            .iter()
            .find(|t| t.source == table)
            .ok_or_else(|| {
                SenderError::NotConfigured(
                    table.to_owned(),
                    self.cfg
                        .tables
                        .iter()
                        .map(|t| t.source.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
        Ok(self.source.describe(t)?)
    }

    pub(crate) fn audit(&self, event: &str, r: &BatchRecord, verdict: &str, detail: &str) {
        BatchAudit::of(&self.audit, &self.cfg.node, self.signer.as_ref())
            .record(event, r, verdict, detail);
    }

    pub(crate) fn record(w: &batch::WrittenBatch, h: &BatchHeader) -> BatchRecord {
        BatchRecord {
            seq: h.seq,
            kind: h.kind.as_str().to_owned(),
            file: w.name.clone(),
            size: w.size,
            sha256: hex::encode(w.file_sha256),
            statements: h.statements,
            changes: 0,
            first_id: h.changes.map(|c| c.0),
            last_id: h.changes.map(|c| c.1),
            state: BatchState::Ready,
            attempts: 0,
            reason: None,
            created: h.created.clone(),
            updated: h.created.clone(),
        }
    }

    pub(crate) fn header(
        &self,
        seq: u64,
        kind: BatchKind,
        changes: Option<(i64, i64)>,
        n: u64,
    ) -> BatchHeader {
        BatchHeader {
            node: self.cfg.node.clone(),
            seq,
            created: batch::format_created(chrono::Utc::now()),
            dialect: self.cfg.dialect.name().to_owned(),
            kind,
            changes,
            statements: n,
        }
    }
}
