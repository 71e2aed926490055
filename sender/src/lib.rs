//! gapsync sender: captures changes on the source, cuts batch files, ships them through
//! the link and handles the receiver's answers.
//!
//! - [`Sender`]: one opened sender (config, source database, work directory lock).
//! - cutting ([`Sender::cut_pending`], [`Sender::cut_snapshots`]): tracking rows ->
//!   rendered statements -> batch file in `outbox/` -> batch record + marked rows.
//! - shipping ([`Sender::ship_ready`]): send each ready batch, ask for its result, mark
//!   it applied (file to `archive/`) or count the failure; the second failure drops the
//!   batch to `quarantine/`.
//! - [`run`](Sender::run) is the service loop, [`once`](Sender::once) the one-shot.
//!
//! Work directory: `outbox/` (cut, not yet applied), `archive/` (applied),
//! `quarantine/` (dropped, with a `.reason` file), `state/sender.lock`, `audit/`.
//! Retention ([`Sender::prune_archive`], `[archive] keep_days`): the service deletes
//! applied batches (their `archive/` file and their record) cut more than `keep_days`
//! ago, at start and once a day; the audit record keeps their name, size and SHA-256.
//! The durable state (next seq, batch records, which rows a batch carries) lives in the
//! source database, next to the tracking rows (see `crate::capture`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::capture::{
    BatchRecord, BatchState, Change, ChangeSource, Op, SnapshotEvent, SqliteSource, TableSpec,
};
use crate::config::{OnSecondFailure, SenderConfig, Strategy};
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter};
use gapsync_common::config::DbUrl;
use gapsync_common::sign::BatchSigner;
pub use gapsync_common::stop::sleep_unless;
use gapsync_common::value::Value;
use gapsync_protocol::{
    Backoff, Identity, LinkClient, LinkError, LinkOptions, LinkSigner, ResultAnswer,
};
use tracing::{error, info, warn};

pub mod capture;
pub mod config;
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
    #[error(
        "batch {seq} was dropped after two failed applies and [batch] on_second_failure = \"halt\": fix the cause (see the receiver's quarantine), then restart"
    )]
    Halted { seq: u64 },
}

impl SenderError {
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

/// Per-layout rendering data: target table, target column names, target key names.
#[derive(Debug, Clone)]
struct Render {
    target: String,
    columns: Vec<String>,
    key: Vec<String>,
}

/// How often a running sender prunes old audit files and old applied batches.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

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
        let source: Box<dyn ChangeSource> = match &cfg.source {
            DbUrl::Sqlite(p) => Box::new(SqliteSource::open(p)?),
            #[cfg(feature = "odbc")]
            DbUrl::Odbc(cs) => Box::new(crate::capture::odbc::OdbcSource::connect(
                cs,
                cfg.source_dialect.as_deref(),
            )?),
            #[cfg(not(feature = "odbc"))]
            DbUrl::Odbc(_) => {
                return Err(crate::capture::SourceError::Unsupported(
                    "[source] url: this build has no ODBC support (build with --features odbc)"
                        .into(),
                )
                .into());
            }
        };
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

    /// The rendering data of a layout, computed once (this runs for every change).
    fn render_info(&mut self, layout: i64) -> Result<&Render> {
        if !self.renders.contains_key(&layout) {
            let l = self.source.layout(layout)?;
            let t = self
                .cfg
                .tables
                .iter()
                .find(|t| t.source == l.table)
                .ok_or_else(|| SenderError::UnknownTable(l.table.clone()))?;
            let map = |c: &String| t.rename.get(c).cloned().unwrap_or_else(|| c.clone());
            let r = Render {
                target: t.target.clone(),
                columns: l.columns.iter().map(map).collect(),
                key: l.key.iter().map(map).collect(),
            };
            self.renders.insert(layout, r);
        }
        Ok(&self.renders[&layout])
    }

    fn render_change(&mut self, c: &Change, out: &mut String) -> Result<()> {
        let d = self.cfg.dialect;
        let r = self.render_info(c.layout)?;
        let cols: Vec<&str> = r.columns.iter().map(String::as_str).collect();
        let key: Vec<&str> = r.key.iter().map(String::as_str).collect();
        out.clear();
        match c.op {
            Op::Insert => d.render_insert(&r.target, &cols, &c.row, out)?,
            Op::Update => d.render_update(&r.target, &cols, &c.row, &key, &c.old_key, out)?,
            Op::Delete | Op::Displaced => d.render_delete(&r.target, &key, &c.old_key, out)?,
        }
        Ok(())
    }

    fn header(
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

    fn record(&self, w: &batch::WrittenBatch, h: &BatchHeader) -> BatchRecord {
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
        }
    }

    fn audit(&self, event: &str, r: &BatchRecord, verdict: &str, detail: &str) {
        let ev = AuditEvent {
            event,
            node: &self.cfg.node,
            seq: r.seq,
            file: &r.file,
            size: r.size,
            sha256: &r.sha256,
            key_id: self.signer.as_ref().map(BatchSigner::key_id).unwrap_or(""),
            verdict,
            detail,
        };
        if let Err(e) = self.audit.record(&ev) {
            error!(error = %e, "cannot write the audit record");
        }
    }

    /// Render changes into statements: `text` holds them back to back, `ends[i]` is
    /// where statement `i` ends. `R` rows (rows a REPLACE displaced) become a DELETE
    /// only when the next change is the INSERT of the very row they recorded; otherwise
    /// the insert was ignored, failed or turned into an upsert's UPDATE, and they are
    /// dropped (see `crate::capture`).
    ///
    /// A change the target's dialect cannot express (e.g. NUL in PostgreSQL text) is
    /// returned in `rejected` with the reason instead of stopping the pipeline.
    fn render_changes(&mut self, changes: &[Change]) -> Result<Rendered> {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(changes.len());
        let mut rejected = Vec::new();
        let mut buf = String::new();
        let mut i = 0;
        while i < changes.len() {
            let c = &changes[i];
            if c.op != Op::Displaced {
                match self.render_change(c, &mut buf) {
                    Ok(()) => {
                        text.push_str(&buf);
                        ends.push(text.len());
                    }
                    Err(SenderError::Render(e)) => {
                        rejected.push((Some(c.id), c.table.clone(), e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
                i += 1;
                continue;
            }
            let j = changes[i..]
                .iter()
                .position(|d| d.op != Op::Displaced)
                .map_or(changes.len(), |p| i + p);
            if let Some(ins) = changes
                .get(j)
                .filter(|n| n.op == Op::Insert && n.table == c.table)
            {
                let mut deleted: Vec<&[Value]> = Vec::new();
                for d in &changes[i..j] {
                    let replaced = d.table == ins.table && same_row(&d.row, &ins.row);
                    if replaced && !deleted.iter().any(|k| same_row(k, &d.old_key)) {
                        deleted.push(&d.old_key);
                        let dialect = self.cfg.dialect;
                        let r = self.render_info(d.layout)?;
                        let key: Vec<&str> = r.key.iter().map(String::as_str).collect();
                        buf.clear();
                        dialect.render_delete(&r.target, &key, &d.old_key, &mut buf)?;
                        text.push_str(&buf);
                        ends.push(text.len());
                    }
                }
            }
            i = j;
        }
        Ok(Rendered {
            text,
            ends,
            rejected,
        })
    }

    /// Cut one batch of up to `limit` pending changes with ids up to `up_to`. Returns
    /// its seq, or None when nothing is pending.
    pub fn cut_batch(&mut self, limit: u64, up_to: i64) -> Result<Option<u64>> {
        Ok(self
            .cut_batch_after(i64::MIN, limit, up_to)?
            .map(|(seq, _)| seq))
    }

    /// [`cut_batch`](Self::cut_batch) for the next cut of a pass that has just cut every
    /// pending change up to `after` ([`ChangeSource::read_pending_after`]: without it
    /// each cut of a large backlog would step over every row cut before it, quadratic
    /// in the backlog). Returns the seq and the last change id it carries.
    fn cut_batch_after(
        &mut self,
        after: i64,
        limit: u64,
        up_to: i64,
    ) -> Result<Option<(u64, i64)>> {
        let changes = self.source.read_pending_after(after, limit, up_to)?;
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return Ok(None);
        };
        let (first, last) = (first.id, last.id);
        let Rendered {
            text,
            ends,
            rejected,
        } = self.render_changes(&changes)?;
        if !rejected.is_empty() {
            for (id, table, reason) in &rejected {
                error!(alarm = true, change = ?id, table, reason, "change rejected: the target dialect cannot express it; its tracking row is kept (status shows it)");
            }
            self.source.reject(&rejected)?;
        }
        let seq = self.source.next_seq()?;
        let header = self.header(
            seq,
            BatchKind::Changes,
            Some((first, last)),
            ends.len() as u64,
        );
        let mut w = BatchWriter::create(
            &self.dir("outbox"),
            header.clone(),
            self.cfg.batch.compress,
            3,
        )?
        .with_signer(self.signer.clone())?;
        let mut start = 0;
        for end in ends {
            w.push(&text[start..end])?;
            start = end;
        }
        let written = w.finish()?;
        let mut rec = self.record(&written, &header);
        let ids: Vec<i64> = changes
            .iter()
            .map(|c| c.id)
            .filter(|id| !rejected.iter().any(|r| r.0 == Some(*id)))
            .collect();
        rec.changes = ids.len() as u64;
        self.source
            .commit_batches(std::slice::from_ref(&rec), &[ids], None)?;
        info!(seq, file = %rec.file, changes = changes.len(), size = rec.size, "batch cut");
        self.audit("built", &rec, "ok", "changes");
        Ok(Some((seq, last)))
    }

    /// Cut every change pending now into batches of at most `max_rows`; changes that
    /// arrive meanwhile wait for the next cut.
    pub fn cut_pending(&mut self) -> Result<Vec<u64>> {
        let up_to = self.source.max_change_id()?;
        let mut seqs = Vec::new();
        let mut after = i64::MIN;
        while let Some((seq, last)) = self.cut_batch_after(after, self.cfg.batch.max_rows, up_to)? {
            seqs.push(seq);
            after = last;
        }
        Ok(seqs)
    }

    /// Queue a snapshot of each table (all configured tables when `tables` is empty).
    pub fn queue_snapshots(&mut self, tables: &[String]) -> Result<Vec<String>> {
        let names: Vec<String> = if tables.is_empty() {
            self.cfg.tables.iter().map(|t| t.source.clone()).collect()
        } else {
            tables.to_vec()
        };
        for t in &names {
            self.spec(t)?;
        }
        for t in &names {
            self.source.queue_snapshot(t)?;
        }
        Ok(names)
    }

    /// Build the batches of every queued snapshot.
    pub fn cut_snapshots(&mut self) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for (req, table) in self.source.snapshot_requests()? {
            match self.cut_snapshot(&table) {
                Ok(s) => seqs.extend(s),
                Err(SenderError::Render(e)) => {
                    let reason = e.to_string();
                    error!(
                        alarm = true,
                        table,
                        reason,
                        "snapshot rejected: the target dialect cannot express a row of it"
                    );
                    self.source.reject(&[(None, table.clone(), reason)])?;
                }
                Err(e) => return Err(e),
            }
            self.source.finish_request(req)?;
        }
        Ok(seqs)
    }

    /// Snapshot one table: `CREATE TABLE IF NOT EXISTS`, `DELETE FROM`, then every row as
    /// an INSERT, in batches of at most `max_rows` rows. The rows are read in the same
    /// read transaction as the highest tracking id; pending changes of the table up to
    /// that id are contained in the snapshot and are marked as carried by it, changes
    /// after it follow the snapshot. Nothing is lost or applied twice across the
    /// boundary, even with writers running.
    fn cut_snapshot(&mut self, table: &str) -> Result<Vec<u64>> {
        let spec = self.spec(table)?;
        let d = self.cfg.dialect;
        let cols: Vec<String> = spec.columns.iter().map(|c| c.target.clone()).collect();
        let key: Vec<&str> = spec
            .key
            .iter()
            .map(|&i| spec.columns[i].target.as_str())
            .collect();
        let typed: Vec<(&str, String)> = spec
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok((
                    c.target.as_str(),
                    d.map_type(&c.source, &c.decl_type, spec.key.contains(&i))?,
                ))
            })
            .collect::<Result<_>>()?;
        let typed: Vec<(&str, &str)> = typed.iter().map(|(c, t)| (*c, t.as_str())).collect();
        let mut create = String::new();
        d.render_create_table(&spec.target, &typed, &key, &mut create)?;
        let mut clear = String::new();
        d.render_clear(&spec.target, &mut clear)?;
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();

        let per = self.cfg.batch.max_rows.max(1);
        let first_seq = self.source.next_seq()?;
        let outbox = self.dir("outbox");
        let compress = self.cfg.batch.compress;
        let node = self.cfg.node.clone();
        let signer = self.signer.clone();
        let mut writer: Option<(BatchWriter, BatchHeader)> = None;
        let mut records: Vec<BatchRecord> = Vec::new();
        let mut total = 0u64;
        let mut in_batch = 0u64;
        let mut buf = String::new();
        let mut rows_seen = 0u64;
        // Opens batch `i` of the snapshot, sized from the row count read in the same
        // transaction (the header states the statement count up front).
        let open = |i: u64, total: u64| -> Result<(BatchWriter, BatchHeader)> {
            let rows = total.saturating_sub(i * per).min(per);
            let extra = if i == 0 { 2 } else { 0 };
            let header = BatchHeader {
                node: node.clone(),
                seq: first_seq + i,
                created: batch::format_created(chrono::Utc::now()),
                dialect: d.name().to_owned(),
                kind: BatchKind::Snapshot,
                changes: None,
                statements: rows + extra,
            };
            let mut w = BatchWriter::create(&outbox, header.clone(), compress, 3)?
                .with_signer(signer.clone())?;
            if i == 0 {
                w.push(&create)?;
                w.push(&clear)?;
            }
            Ok((w, header))
        };
        let mut finished: Vec<(batch::WrittenBatch, BatchHeader)> = Vec::new();
        let mut sink = |ev: SnapshotEvent<'_>| -> Result<()> {
            let row = match ev {
                SnapshotEvent::Start { rows, .. } => {
                    total = rows;
                    writer = Some(open(0, total)?);
                    return Ok(());
                }
                SnapshotEvent::Row(row) => row,
            };
            if in_batch == per {
                if let Some((w, h)) = writer.take() {
                    finished.push((w.finish()?, h));
                }
                writer = Some(open(finished.len() as u64, total)?);
                in_batch = 0;
            }
            rows_seen += 1;
            if rows_seen > total {
                return Err(crate::capture::SourceError::Corrupt(format!(
                    "table {table} returned more rows than it counted"
                ))
                .into());
            }
            let (w, _) = writer.as_mut().ok_or_else(|| {
                crate::capture::SourceError::Corrupt("snapshot row before start".into())
            })?;
            buf.clear();
            d.render_insert(&spec.target, &cols, row, &mut buf)?;
            w.push(&buf)?;
            in_batch += 1;
            Ok(())
        };
        let absorbed = self.source.snapshot_each(&spec, &mut |ev| {
            sink(ev).map_err(|e| -> crate::capture::SinkError { Box::new(e) })
        });
        let absorbed = match absorbed {
            Ok(a) => a,
            Err(e) => {
                let e = match e.downcast::<SenderError>() {
                    Ok(e) => *e,
                    Err(e) => match e.downcast::<crate::capture::SourceError>() {
                        Ok(e) => SenderError::Source(*e),
                        Err(e) => match e.downcast::<gapsync_common::target::DbError>() {
                            Ok(e) => SenderError::Source((*e).into()),
                            Err(e) => SenderError::Source(crate::capture::SourceError::Corrupt(
                                e.to_string(),
                            )),
                        },
                    },
                };
                // Files of an abandoned snapshot have no record: remove them now, so
                // their seqs are free for the next batch.
                drop(writer.take());
                for (w, _) in &finished {
                    let _ = std::fs::remove_file(&w.path);
                }
                return Err(e);
            }
        };
        if let Some((w, h)) = writer.take() {
            finished.push((w.finish()?, h));
        }
        for (w, h) in &finished {
            records.push(self.record(w, h));
        }
        let carried = vec![Vec::new(); records.len()];
        self.source
            .commit_batches(&records, &carried, Some((table, &absorbed)))?;
        for r in &records {
            self.audit("built", r, "ok", &format!("snapshot {table}"));
        }
        info!(
            table,
            rows = rows_seen,
            batches = records.len(),
            "snapshot cut"
        );
        Ok(records.iter().map(|r| r.seq).collect())
    }

    fn link_options(&self) -> LinkOptions {
        let l = &self.cfg.link;
        LinkOptions {
            max_frame: l.max_frame,
            frame_timeout: l.frame_timeout,
            result_timeout: l.result_timeout,
            connect_timeout: l.connect_timeout,
            chunk_retries: 5,
        }
    }

    /// Connect if not connected. Refusal is fatal; other failures are returned for the
    /// caller's backoff.
    fn ensure_link(&mut self) -> Result<&mut LinkClient> {
        if self.link.as_ref().is_some_and(LinkClient::is_broken) {
            self.link = None;
        }
        if self.link.is_none() {
            let hello = format!("gapsync-sender {}", env!("CARGO_PKG_VERSION"));
            let id = Identity {
                node: self.cfg.node.clone(),
                receiver_id: self.cfg.link.receiver_id.clone(),
                signer: self
                    .signer
                    .clone()
                    .map(|s| Arc::new(NodeKey(s)) as Arc<dyn LinkSigner>),
            };
            let c = LinkClient::connect(&self.cfg.link.connect, &id, &hello, self.link_options())?;
            info!(receiver = %self.cfg.link.connect, "link up");
            self.backoff.reset();
            self.link = Some(c);
        }
        match self.link.as_mut() {
            Some(l) => Ok(l),
            None => Err(SenderError::Link(LinkError::Broken)),
        }
    }

    /// Send a heartbeat if connected (or connect). Errors drop the link.
    pub fn heartbeat(&mut self) -> Result<()> {
        let r = self
            .ensure_link()
            .and_then(|l| l.heartbeat().map_err(SenderError::from));
        if r.is_err() {
            self.link = None;
        }
        r
    }

    fn link_fault(&mut self, e: &SenderError, stop: &AtomicBool) {
        self.link = None;
        let delay = self.backoff.next_delay();
        warn!(error = %e, retry_in = ?delay, "link fault");
        sleep_unless(stop, delay);
    }

    /// Ship every ready batch in seq order. `max_faults`: give up (return the last link
    /// error) after this many link faults in a row; `None` retries until `stop` is set.
    pub fn ship_ready(&mut self, stop: &AtomicBool, max_faults: Option<u32>) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        for rec in self.source.batches(Some(BatchState::Ready))? {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match self.ship_one(&rec, stop, max_faults)? {
                Some(true) => report.applied.push(rec.seq),
                Some(false) => {
                    report.dropped.push(rec.seq);
                    if self.cfg.batch.on_second_failure == OnSecondFailure::Halt {
                        return Err(SenderError::Halted { seq: rec.seq });
                    }
                }
                None => break,
            }
        }
        Ok(report)
    }

    /// Ship one batch until it is applied (Some(true)), dropped (Some(false)) or `stop`
    /// is set (None).
    fn ship_one(
        &mut self,
        rec: &BatchRecord,
        stop: &AtomicBool,
        max_faults: Option<u32>,
    ) -> Result<Option<bool>> {
        let path = self.dir("outbox").join(&rec.file);
        let sha: [u8; 32] = hex::decode(&rec.sha256)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                crate::capture::SourceError::Corrupt(format!("batch {} sha256", rec.seq))
            })?;
        let mut faults = 0u32;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            // Every attempt sends the file and then asks: after a link fault the sender
            // cannot know what the receiver kept, and a repeated END or RESULT for a batch
            // the receiver already has is answered from its spool and ledger.
            match self.try_ship(rec, &path, sha) {
                Ok(ResultAnswer::Applied) => {
                    self.source.mark_applied(rec.seq)?;
                    let dest = self.dir("archive").join(&rec.file);
                    std::fs::rename(&path, &dest).map_err(work_err(&dest))?;
                    info!(seq = rec.seq, file = %rec.file, "batch applied");
                    self.audit("applied", rec, "ok", "");
                    return Ok(Some(true));
                }
                Ok(ResultAnswer::Failed) => {
                    let attempts = self
                        .source
                        .record_failure(rec.seq, "receiver answered: apply failed")?;
                    self.audit("failed", rec, "failed", &format!("attempt {attempts}"));
                    if attempts >= 2 {
                        self.quarantine(rec, &path)?;
                        return Ok(Some(false));
                    }
                    warn!(seq = rec.seq, file = %rec.file, "receiver reports the apply failed; sending the batch once more");
                }
                Err(SenderError::Link(LinkError::Refused)) => {
                    return Err(SenderError::Link(LinkError::Refused));
                }
                Err(SenderError::Link(e)) => {
                    faults += 1;
                    let e = SenderError::Link(e);
                    if max_faults.is_some_and(|m| faults >= m) {
                        self.link = None;
                        return Err(e);
                    }
                    self.link_fault(&e, stop);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send the file, then ask for the result.
    fn try_ship(&mut self, rec: &BatchRecord, path: &Path, sha: [u8; 32]) -> Result<ResultAnswer> {
        self.ensure_link()?;
        let mut f = gapsync_common::fsx::open_nofollow(path).map_err(work_err(path))?;
        self.audit("sent", rec, "pending", "");
        let link = match self.link.as_mut() {
            Some(l) => l,
            None => return Err(SenderError::Link(LinkError::Broken)),
        };
        link.send_file(rec.seq, &rec.file, &mut f, rec.size, sha)?;
        Ok(link.ask_result(rec.seq)?)
    }

    fn quarantine(&mut self, rec: &BatchRecord, path: &Path) -> Result<()> {
        let reason = format!(
            "the receiver answered 'failed' to both applies of batch {} ({}); the database error is in the receiver's quarantine",
            rec.seq, rec.file
        );
        let qdir = self.dir("quarantine");
        let rpath = qdir.join(format!("{}.reason", rec.file));
        gapsync_common::fsx::write_private_synced(&rpath, format!("{reason}\n").as_bytes())
            .map_err(work_err(&rpath))?;
        self.source.mark_quarantined(rec.seq, &reason)?;
        let dest = qdir.join(&rec.file);
        std::fs::rename(path, &dest).map_err(work_err(&dest))?;
        error!(alarm = true, seq = rec.seq, file = %rec.file, "{reason}: batch dropped to quarantine");
        self.audit("dropped", rec, "quarantined", &reason);
        Ok(())
    }

    /// `once`: cut everything pending (and queued snapshots), ship every ready batch,
    /// wait for the answers.
    pub fn once(&mut self, stop: &AtomicBool) -> Result<ShipReport> {
        self.cut_snapshots()?;
        self.cut_pending()?;
        let attempts = self.cfg.link.once_connect_attempts;
        self.ship_ready(stop, Some(attempts))
    }

    /// Delete audit month files older than `[audit] keep_months` (at the start of the
    /// service and once a day); logs what was removed.
    pub fn prune_audit(&self) {
        let keep = self.cfg.audit_keep_months;
        match self.audit.prune(keep) {
            Ok(removed) => {
                for p in removed {
                    info!(file = %p.display(), keep_months = keep, "audit retention: removed an old audit file");
                }
            }
            Err(e) => warn!(error = %e, "audit retention: cannot prune old audit files"),
        }
    }

    /// Archive retention (`[archive] keep_days`; 0 keeps everything): delete the applied
    /// batches cut more than `keep_days` ago, by the `created` time of their record (the
    /// cut time, also in the file's header; a file's mtime can be touched by a copy or a
    /// backup restore): first their file in `archive/`, then their record in the source's
    /// `_gapsync_batches` ([`ChangeSource::prune_applied`]). Never a 'ready' or
    /// 'quarantined' batch, never the applied batch with the highest seq (status reports
    /// it as "last seq applied"), never a file in `outbox/` or `quarantine/`: an applied
    /// record whose file is still in `outbox/` (a move an interruption left for
    /// [`recover_outbox`](Self::recover_outbox)) is kept, and so is every record not older
    /// than it, so records and files always go together. A file that cannot be deleted
    /// keeps its record (and the newer ones) for the next day. The next seq lives in
    /// `_gapsync_state` and an applied batch has no tracking rows left, so cutting,
    /// shipping and the receiver's ledger are unaffected.
    pub fn prune_archive(&mut self) -> Result<ArchivePruned> {
        let mut done = ArchivePruned::default();
        let days = self.cfg.archive_keep_days;
        if days == 0 {
            return Ok(done);
        }
        let Some(cutoff) = chrono::TimeDelta::try_days(i64::from(days))
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        else {
            return Ok(done);
        };
        let mut before = batch::format_created(cutoff);
        let applied = self.source.batches(Some(BatchState::Applied))?;
        let Some(newest) = applied.iter().map(|r| r.seq).max() else {
            return Ok(done);
        };
        let outbox = self.dir("outbox");
        for r in &applied {
            if r.seq < newest && r.created < before && outbox.join(&r.file).exists() {
                warn!(seq = r.seq, file = %r.file, "archive retention: an applied batch is still in outbox/; keeping it and every newer record");
                before.clone_from(&r.created);
            }
        }
        let archive = self.dir("archive");
        for r in &applied {
            if r.seq >= newest || r.created >= before {
                continue;
            }
            let path = archive.join(&r.file);
            match std::fs::remove_file(&path) {
                Ok(()) => done.files += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "archive retention: cannot delete an archived batch; its record is kept");
                    if r.created < before {
                        before.clone_from(&r.created);
                    }
                }
            }
        }
        done.records = self.source.prune_applied(&before)?;
        done.oldest_kept = applied
            .iter()
            .filter(|r| r.seq >= newest || r.created >= before)
            .min_by_key(|r| r.seq)
            .map(|r| (r.seq, r.created.clone()));
        if done.files > 0 || done.records > 0 {
            let (kept_seq, kept_created) = done.oldest_kept.clone().unwrap_or_default();
            info!(
                files = done.files,
                records = done.records,
                keep_days = days,
                oldest_kept_seq = kept_seq,
                oldest_kept_created = %kept_created,
                "archive retention: removed old applied batches"
            );
        }
        Ok(done)
    }

    /// Audit and archive retention (at the start of the service and once a day). A
    /// failure is logged and tried again the next day: retention never stops the service.
    fn retention(&mut self) {
        self.prune_audit();
        if let Err(e) = self.prune_archive() {
            warn!(error = %e, "archive retention: cannot prune old applied batches (tried again in a day)");
        }
    }

    /// The service loop: cut by strategy, ship, heartbeat while idle, until `stop`.
    ///
    /// A source database that is unavailable ([`SenderError::source_unavailable`]: locked
    /// beyond the busy timeout, its disk failing, a server restarting or its connection
    /// cut) does not stop the service: the error is logged (an alarm when the outage
    /// starts), the pass is retried after a capped backoff, and when the source answers
    /// again (a server source reconnected) the outbox is first reconciled with the batch
    /// records ([`recover_outbox`](Self::recover_outbox)). So a cut the outage interrupted
    /// leaves no file behind (its changes are still pending and are cut again), and a
    /// batch answered "applied" whose record could not be updated stays 'ready' and is
    /// sent again: the receiver answers it from its ledger without executing it. Nothing
    /// is counted as a failed apply. Every other error stops the service.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut clock: Option<StrategyClock> = None;
        let mut last_beat = Instant::now();
        self.retention();
        let mut pruned = Instant::now();
        let mut down_since: Option<Instant> = None;
        while !stop.load(Ordering::SeqCst) {
            if pruned.elapsed() >= AUDIT_PRUNE_EVERY {
                self.retention();
                pruned = Instant::now();
            }
            let pass = if down_since.is_some() {
                self.source_back()
                    .and_then(|()| self.pass(&mut clock, &mut last_beat, stop))
            } else {
                self.pass(&mut clock, &mut last_beat, stop)
            };
            match pass {
                Ok(idle) => {
                    if let Some(since) = down_since.take() {
                        self.source_backoff.reset();
                        info!(down_for = ?since.elapsed(), "source database available again");
                    }
                    if idle {
                        sleep_unless(stop, self.cfg.batch.poll);
                    }
                }
                Err(e) if e.source_unavailable() => {
                    let delay = self.source_backoff.next_delay();
                    match down_since {
                        None => {
                            down_since = Some(Instant::now());
                            warn!(alarm = true, error = %e, retry_in = ?delay, "source database unavailable: waiting for it (nothing cut is lost)");
                        }
                        Some(since) => {
                            warn!(error = %e, retry_in = ?delay, down_for = ?since.elapsed(), "source database still unavailable");
                        }
                    }
                    sleep_unless(stop, delay);
                }
                Err(e) => return Err(e),
            }
        }
        info!("stopping: no frame in flight");
        Ok(())
    }

    /// After the source was unavailable: reconnect (a server source) and reconcile the
    /// outbox with the batch records before cutting or shipping again.
    fn source_back(&mut self) -> Result<()> {
        self.source.reconnect()?;
        self.recover_outbox()
    }

    /// One pass of the service loop: snapshots, a cut by strategy, shipping, a heartbeat
    /// when idle for long. Ok(true): wait `poll` before the next pass; Ok(false): go on
    /// at once (a link fault already waited its backoff).
    fn pass(
        &mut self,
        clock: &mut Option<StrategyClock>,
        last_beat: &mut Instant,
        stop: &AtomicBool,
    ) -> Result<bool> {
        if clock.is_none() {
            *clock = Some(StrategyClock::new(self.source.last_change_id()?));
        }
        let Some(clock) = clock.as_mut() else {
            return Ok(true);
        };
        self.cut_snapshots()?;
        self.cut_by_strategy(clock)?;
        match self.ship_ready(stop, Some(1)) {
            Ok(r) => {
                if !r.applied.is_empty() || !r.dropped.is_empty() {
                    *last_beat = Instant::now();
                }
            }
            Err(SenderError::Link(LinkError::Refused)) => {
                return Err(SenderError::Link(LinkError::Refused));
            }
            Err(SenderError::Link(e)) => {
                let e = SenderError::Link(e);
                self.link_fault(&e, stop);
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        if last_beat.elapsed() >= self.cfg.link.heartbeat {
            *last_beat = Instant::now();
            match self.heartbeat() {
                Err(SenderError::Link(LinkError::Refused)) => {
                    return Err(SenderError::Link(LinkError::Refused));
                }
                Err(e) => self.link_fault(&e, stop),
                Ok(()) => {}
            }
        }
        Ok(true)
    }

    fn cut_by_strategy(&mut self, clock: &mut StrategyClock) -> Result<()> {
        let now = Instant::now();
        let last_id = self.source.last_change_id()?;
        if last_id != clock.last_id {
            clock.last_id = last_id;
            clock.last_activity = now;
        }
        match self.cfg.batch.strategy {
            Strategy::Immediate => {
                self.cut_pending()?;
            }
            Strategy::Interval(d) => {
                if now.duration_since(clock.last_cut) >= d {
                    clock.last_cut = now;
                    self.cut_pending()?;
                }
            }
            Strategy::Count(n) => {
                while self.source.pending_at_least(n)? {
                    self.cut_batch(n, i64::MAX)?;
                }
            }
            Strategy::Idle(d) => {
                if now.duration_since(clock.last_activity) >= d {
                    self.cut_pending()?;
                }
            }
        }
        Ok(())
    }
}

/// Statements rendered back to back (`ends[i]`: where statement `i` ends) and the
/// changes that could not be rendered: (change id, table, reason).
struct Rendered {
    text: String,
    ends: Vec<usize>,
    rejected: Vec<(Option<i64>, String, String)>,
}

/// Two rows (or keys) hold exactly the same values (floats by bit pattern).
fn same_row(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
}

/// Timing state of the batch strategies.
#[derive(Debug)]
struct StrategyClock {
    last_cut: Instant,
    last_activity: Instant,
    last_id: i64,
}

impl StrategyClock {
    fn new(last_id: i64) -> Self {
        let now = Instant::now();
        StrategyClock {
            last_cut: now,
            last_activity: now,
            last_id,
        }
    }
}

/// The node key as the link's signer: the key that signs batch files also signs HELLO
/// and END (with the link's own domain prefixes, so neither signature can stand for the
/// other).
#[derive(Debug)]
struct NodeKey(BatchSigner);

impl LinkSigner for NodeKey {
    fn key_id(&self) -> [u8; 8] {
        self.0.key_id_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign_link(message)
    }
}
