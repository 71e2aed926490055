//! Change capture on a SQLite source database.
//!
//! `install` creates, inside the source database:
//!
//! - `_gapsync_changes`: the tracking table. One row per captured change:
//!   `id INTEGER PRIMARY KEY AUTOINCREMENT` (ids are never reused), `tbl`, `op`
//!   (`I`/`U`/`D`, and `R`: see below), `layout` (which column list the values follow), `at` (UTC capture
//!   time), `batch` (seq of the batch carrying it; NULL while pending), then `k0..kK`
//!   (old key values: updates and deletes) and `c0..cN` (new row values: inserts and
//!   updates). The value columns have no declared type, so SQLite stores every value in
//!   its own storage class, unchanged.
//! - `_gapsync_layouts`: for each layout id, the table and its column and key lists.
//! - `_gapsync_batches`: every batch cut from this source (seq, file, sha256, state,
//!   attempts, reason). With `_gapsync_state` (next seq) it is the sender's durable state,
//!   kept in the same database as the tracking rows so a batch's rows are marked and
//!   its record written in ONE transaction.
//! - `_gapsync_requests`: queued snapshot requests.
//! - `_gapsync_rejected`: changes (and snapshots) the target's dialect cannot express,
//!   with the reason; their tracking rows stay in `_gapsync_changes` with `batch = 0`.
//! - three triggers per table: `_gapsync_<table>_ins`, `_upd`, `_del`; and for tables
//!   with a primary key or unique index, `_gapsync_<table>_rep`: SQLite's REPLACE
//!   conflict resolution (`INSERT OR REPLACE`, `REPLACE INTO`) deletes conflicting rows
//!   without firing delete triggers, so a BEFORE INSERT trigger records, for every row the
//!   new row conflicts with on a unique constraint, an `R` row (old key in `k*`, the new
//!   row in `c*`). The sender turns an `R` into a DELETE only when the very next change
//!   is the INSERT of that same new row (the REPLACE happened); otherwise the insert was
//!   ignored (`OR IGNORE`), failed or became an upsert's UPDATE, and the `R` is dropped.
//!
//! Pending changes are the rows with `batch IS NULL`, read in id order. No high-water
//! mark is kept: a change that commits late with a lower id is still pending and is
//! shipped with the next batch (ARCHITECTURE.md invariant I3).
//!
//! The source is switched to WAL journal mode at install, so that the sender's reads
//! (snapshots included) never block the plant's writers, and so that a snapshot can
//! record its batches on a second connection while it reads
//! ([`ChangeSource::commits_beside_reads`]; without WAL it records them after the read).

pub mod ddl;
#[cfg(feature = "odbc")]
pub mod odbc;
mod sqlite;
#[cfg(test)]
mod tests;

pub use sqlite::SqliteSource;

use std::time::Duration;

use crate::config::TableConfig;
use gapsync_common::dialect::Dialect;
use gapsync_common::value::Value;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "source database file {0} does not exist: check [source] url (the sender never creates a source database)"
    )]
    Missing(String),
    #[error("source table {0:?} does not exist")]
    NoTable(String),
    #[error(
        "source table {0:?} has no primary key: set key = [\"col\", ...] in its [[table]] entry"
    )]
    NoKey(String),
    #[error("source table {table:?} has no column {column:?} (named in {what})")]
    NoColumn {
        table: String,
        column: String,
        what: &'static str,
    },
    #[error("gapsync is not installed in the source database: run `gapsync-sender install` first")]
    NotInstalled,
    #[error("source database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// An error of a server source (ODBC), classified by SQLSTATE like a target's.
    #[error("source database: {message}")]
    Db { transient: bool, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("tracking data is inconsistent: {0}")]
    Corrupt(String),
}

impl SourceError {
    /// Whether trying again later may succeed: the database is locked or busy beyond the
    /// busy timeout, its file or disk failed to answer, or a server source is unreachable
    /// (connection lost, shutting down, starting up; SQLSTATE class 08, 57P01..57P03,
    /// ...). The same classification as a target's ([`gapsync_common::db::is_transient`],
    /// `gapsync_common::db::odbc::odbc_err`). Everything else (a missing table or column, capture not
    /// installed, inconsistent tracking data) is deterministic, and so is a SQLite
    /// source file that cannot be opened at start (a wrong path or permissions).
    pub fn transient(&self) -> bool {
        match self {
            SourceError::Sql(source) => gapsync_common::db::is_transient(source),
            SourceError::Db { transient, .. } => *transient,
            _ => false,
        }
    }
}

impl From<gapsync_common::db::DbError> for SourceError {
    fn from(e: gapsync_common::db::DbError) -> Self {
        SourceError::Db {
            transient: e.transient,
            message: e.message,
        }
    }
}

type Result<T> = std::result::Result<T, SourceError>;

/// How long the sender's connection to a SQLite source waits for a lock held by the
/// plant's writers before the statement fails as transient ("database is locked"); the
/// service then retries with backoff instead of waiting in SQLite.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One column of a synchronized table: source name, target name, declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub source: String,
    pub target: String,
    pub decl_type: String,
}

/// A configured table resolved against the source schema.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub source: String,
    pub target: String,
    pub columns: Vec<ColumnSpec>,
    /// Indices into `columns` of the key columns.
    pub key: Vec<usize>,
    /// Column sets (indices into `columns`) of every unique constraint of the source
    /// table: its primary key and each non-partial unique index on plain columns.
    pub unique: Vec<Vec<usize>>,
}

impl TableSpec {
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].source.clone())
            .collect()
    }
    fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.source.clone()).collect()
    }
    fn unique_names(&self) -> Vec<Vec<String>> {
        self.unique
            .iter()
            .map(|set| {
                set.iter()
                    .map(|&i| self.columns[i].source.clone())
                    .collect()
            })
            .collect()
    }
    /// The triggers capture needs on this table.
    fn trigger_kinds(&self) -> &'static [&'static str] {
        if self.unique.is_empty() {
            &["ins", "upd", "del"]
        } else {
            &["ins", "upd", "del", "rep"]
        }
    }
}

/// The column list a tracking row's values follow.
#[derive(Debug, Clone)]
pub struct Layout {
    pub id: i64,
    pub table: String,
    pub columns: Vec<String>,
    pub key: Vec<String>,
    /// Unique constraints the `rep` trigger watches (column names).
    pub unique: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A row an INSERT may displace through REPLACE conflict resolution (`R`): its key
    /// is in `old_key`, the inserted row in `row`.
    Displaced,
}

/// One captured change.
#[derive(Debug, Clone)]
pub struct Change {
    pub id: i64,
    pub table: String,
    pub op: Op,
    pub layout: i64,
    /// Old key values (updates, deletes), in layout key order.
    pub old_key: Vec<Value>,
    /// New row values (inserts, updates), in layout column order.
    pub row: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    /// Written to the outbox, not yet answered "applied".
    Ready,
    Applied,
    Quarantined,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Ready => "ready",
            BatchState::Applied => "applied",
            BatchState::Quarantined => "quarantined",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ready" => BatchState::Ready,
            "applied" => BatchState::Applied,
            "quarantined" => BatchState::Quarantined,
            other => {
                return Err(SourceError::Corrupt(format!(
                    "unknown batch state {other:?}"
                )));
            }
        })
    }
}

/// The sender's record of one batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub seq: u64,
    pub kind: String,
    pub file: String,
    pub size: u64,
    /// Hex SHA-256 of the file as written (compressed if compressed).
    pub sha256: String,
    pub statements: u64,
    /// Tracking rows the batch carries (for a snapshot: pending changes it contains).
    pub changes: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub state: BatchState,
    pub attempts: u32,
    pub reason: Option<String>,
    pub created: String,
    /// When the record last changed (cut, answer, quarantine); as `created` when new.
    pub updated: String,
}

/// What `install` did (or would do) for each table.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    /// DDL statements, in order.
    pub ddl: Vec<String>,
    /// One line per table: "up to date", "installed", "re-installed (columns changed)".
    pub notes: Vec<String>,
}

/// Which pending changes a snapshot contains (read in the same transaction as its rows):
/// they are marked as carried by the snapshot instead of being shipped again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absorbed {
    /// Every pending change of the table with an id up to this one (sources with one
    /// writer at a time, where ids are assigned in commit order).
    UpTo(i64),
    /// Exactly these changes (sources with concurrent writers, where a lower id can
    /// commit later than the snapshot).
    Ids(Vec<i64>),
}

/// Errors a snapshot consumer returns, carried through [`ChangeSource::snapshot_each`].
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The consumer of a snapshot's rows.
pub type SnapshotSink<'a> = dyn FnMut(SnapshotEvent<'_>) -> std::result::Result<(), SinkError> + 'a;

/// What [`ChangeSource::snapshot_each`] reports.
#[derive(Debug)]
pub enum SnapshotEvent<'a> {
    /// Before the rows: the row count and which pending changes the rows contain, both
    /// read in the same transaction as the rows.
    Start { rows: u64, absorbed: Absorbed },
    /// One row, in column order.
    Row(&'a [Value]),
}

/// How far the snapshot of one request got, committed in the same transaction as its
/// batches (kept in `_gapsync_state` under `snapshot/<request id>/...`): what `status`
/// shows and where a snapshot interrupted by a crash resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// Rows read into committed batches (rejected rows included).
    pub rows: u64,
    /// Rows the table had (the rows done plus those counted by the latest read).
    pub total: u64,
    /// The key of the last row done, when every key column holds integers (then a
    /// resumed read starts after it); None: the snapshot starts over after a crash.
    pub key: Option<Vec<i64>>,
    /// A fingerprint of the table as it was read (target name and dialect, columns and
    /// their types, key, unique constraints): a table changed since starts over.
    pub shape: i64,
}

impl SnapshotProgress {
    /// The `_gapsync_state` names of request `req`'s progress start with this.
    pub(crate) fn prefix(req: i64) -> String {
        format!("snapshot/{req}/")
    }

    /// The `_gapsync_state` entries (name, value) of request `req`'s progress.
    pub(crate) fn entries(&self, req: i64) -> Vec<(String, i64)> {
        let p = Self::prefix(req);
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut out = vec![
            (format!("{p}rows"), int(self.rows)),
            (format!("{p}total"), int(self.total)),
            (format!("{p}shape"), self.shape),
        ];
        match &self.key {
            Some(k) => {
                out.push((format!("{p}keys"), int(k.len() as u64)));
                out.extend(k.iter().enumerate().map(|(i, v)| (format!("{p}k{i}"), *v)));
            }
            None => out.push((format!("{p}keys"), -1)),
        }
        out
    }

    /// Read back from request `req`'s entries (None: nothing committed yet).
    pub(crate) fn from_entries(req: i64, entries: &[(String, i64)]) -> Result<Option<Self>> {
        let p = Self::prefix(req);
        let get = |name: &str| {
            entries
                .iter()
                .find(|(n, _)| n.strip_prefix(&p) == Some(name))
                .map(|(_, v)| *v)
        };
        let (Some(rows), Some(total), Some(keys)) = (get("rows"), get("total"), get("keys")) else {
            return Ok(None);
        };
        let key = match usize::try_from(keys) {
            Err(_) => None,
            Ok(n) => Some(
                (0..n)
                    .map(|i| {
                        get(&format!("k{i}")).ok_or_else(|| {
                            SourceError::Corrupt(format!(
                                "snapshot request {req}: progress key part {i} is missing"
                            ))
                        })
                    })
                    .collect::<Result<Vec<i64>>>()?,
            ),
        };
        Ok(Some(SnapshotProgress {
            rows: rows.max(0) as u64,
            total: total.max(0) as u64,
            key,
            shape: get("shape").unwrap_or(0),
        }))
    }
}

/// `ids` as runs of consecutive ids `(first, last)`, ascending: a snapshot marks the
/// changes it carries a run per statement (a resumed read after a long outage carries
/// many, and a SQLite source's plant writers wait while they are marked).
pub(crate) fn id_runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in sorted {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(id) => *hi = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// `WHERE` condition "the key `cols` (quoted) comes after `after`" (integers, compared
/// as SQL row values but spelled out, which every database reads the same way).
pub(crate) fn key_after(cols: &[String], after: &[i64]) -> String {
    if cols.len() != after.len() {
        // Never "after a shorter key" (that would skip rows): the caller resumes only
        // a table of the same shape (`SnapshotProgress::shape`); this is a last guard.
        return "1 = 1".to_owned();
    }
    let mut alts = Vec::new();
    for i in 0..cols.len().min(after.len()) {
        let mut terms: Vec<String> = (0..i)
            .map(|j| format!("{} = {}", cols[j], after[j]))
            .collect();
        terms.push(format!("{} > {}", cols[i], after[i]));
        alts.push(format!("({})", terms.join(" AND ")));
    }
    if alts.is_empty() {
        "1 = 0".to_owned()
    } else {
        alts.join(" OR ")
    }
}

/// Positions in `columns` of the key columns `names` (source names), or which one the
/// table does not have (both capture back-ends read a configured key this way).
pub(crate) fn key_positions(
    table: &str,
    columns: &[ColumnSpec],
    names: &[String],
) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| &c.source == name)
                .ok_or_else(|| SourceError::NoColumn {
                    table: table.to_owned(),
                    column: name.clone(),
                    what: "key",
                })
        })
        .collect()
}

/// A capture time as a source prints it: SQLite's `2026-12-04T10:00:00.123Z`,
/// PostgreSQL's `2026-12-04 10:00:00.123+00`, MySQL's `2026-12-04 10:00:00.123456` (the
/// session is UTC). None: another form (then no age is shown).
pub fn parse_at(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&chrono::Utc));
        }
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The note `install` gives for a table: installed, triggers restored, or re-installed
/// because `what` changed (both capture back-ends say it the same way).
pub(crate) fn install_note(table: &str, installed_before: bool, same: bool, what: &str) -> String {
    let how = match (installed_before, same) {
        (false, _) => "installed".to_owned(),
        (true, true) => "triggers restored".to_owned(),
        (true, false) => format!("re-installed ({what} changed)"),
    };
    format!("{table}: {how}")
}

/// Appends the DDL (`stmt(i)`) that widens the tracking table's `k`/`c` columns from
/// `*have` to `need`.
pub(crate) fn widen(
    ddl: &mut Vec<String>,
    have: &mut usize,
    need: usize,
    stmt: impl Fn(usize) -> String,
) {
    while *have < need {
        ddl.push(stmt(*have));
        *have += 1;
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn quote(name: &str) -> String {
    let mut s = String::new();
    Dialect::Sqlite.quote_ident(name, &mut s);
    s
}

pub(crate) fn quote_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

pub(crate) fn from_json(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| SourceError::Corrupt(format!("layout list {s:?}: {e}")))
}

/// A source database with gapsync's capture objects: SQLite ([`SqliteSource`]) or,
/// with the `odbc` feature, PostgreSQL and MySQL/MariaDB (`crate::capture::odbc`).
pub trait ChangeSource: std::fmt::Debug {
    /// Whether `install` has run on this database.
    fn is_installed(&mut self) -> Result<bool>;
    /// Resolve a configured table against the source schema.
    fn describe(&mut self, cfg: &TableConfig) -> Result<TableSpec>;
    /// The DDL that brings capture up to date for `specs` (for `--dry-run`).
    fn plan_install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan>;
    /// Create or update capture for `specs`; idempotent.
    fn install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan>;
    /// Drop the triggers of `tables`; with `purge`, also gapsync's tables.
    fn uninstall(&mut self, tables: &[String], purge: bool) -> Result<Vec<String>>;
    /// Number of captured changes not yet in a batch.
    fn pending_count(&mut self) -> Result<u64>;
    /// When the oldest change not yet in a batch was captured, as the database prints
    /// its `at` (None: nothing pending). [`parse_at`] reads it.
    fn oldest_pending_at(&mut self) -> Result<Option<String>>;
    /// Whether at least `n` changes are pending.
    fn pending_at_least(&mut self, n: u64) -> Result<bool>;
    /// A cheap "did anything change" probe (grows with every captured change).
    fn last_change_id(&mut self) -> Result<i64>;
    /// The highest tracking id now: a cut takes changes up to it.
    fn max_change_id(&mut self) -> Result<i64>;
    /// The column list a layout id stands for.
    fn layout(&mut self, id: i64) -> Result<Layout>;
    /// Up to `limit` pending changes with ids up to `up_to`, in id order, never splitting
    /// what must stay together (a REPLACE and its INSERT; a source transaction).
    fn read_pending(&mut self, limit: u64, up_to: i64) -> Result<Vec<Change>>;
    /// [`read_pending`](Self::read_pending) for the next cut of the same pass: the
    /// caller has just cut every pending change up to `after`, so a source may start
    /// looking after it instead of stepping over the rows already cut (still in the
    /// table until "applied"). A hint only: the default ignores it. A change committed
    /// late with a lower id is found by the next pass, which starts from the beginning.
    fn read_pending_after(&mut self, after: i64, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        let _ = after;
        self.read_pending(limit, up_to)
    }
    /// The sequence number the next batch gets.
    fn next_seq(&mut self) -> Result<u64>;
    /// Record written batch files, mark their tracking rows (`carried[i]`: the change
    /// ids batch `records[i]` carries; `absorbed`: pending changes of a table a snapshot
    /// contains, marked with the last record's seq: a snapshot passes them with the first
    /// batch of each read) and, for a snapshot, store the
    /// progress of its request: all in one transaction.
    fn record_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
        progress: Option<(i64, &SnapshotProgress)>,
    ) -> Result<()>;
    /// Record written change batch files and mark their tracking rows.
    fn commit_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
    ) -> Result<()> {
        self.record_batches(records, carried, absorbed, None)
    }
    /// Record a snapshot's batches with the progress of its request `req`.
    fn commit_snapshot_batches(
        &mut self,
        records: &[BatchRecord],
        absorbed: Option<(&str, &Absorbed)>,
        req: i64,
        progress: &SnapshotProgress,
    ) -> Result<()> {
        let carried = vec![Vec::new(); records.len()];
        self.record_batches(records, &carried, absorbed, Some((req, progress)))
    }
    /// The committed progress of snapshot request `req` (None: nothing committed yet).
    fn snapshot_progress(&mut self, req: i64) -> Result<Option<SnapshotProgress>>;
    /// Up to `limit` pending changes of `table` with ids in `(after, up_to]`, in id
    /// order (a resumed snapshot sorts them by key).
    fn table_pending(
        &mut self,
        table: &str,
        after: i64,
        up_to: i64,
        limit: u64,
    ) -> Result<Vec<Change>>;
    /// Record changes (or a snapshot) the target's dialect cannot express.
    fn reject(&mut self, rejected: &[(Option<i64>, String, String)]) -> Result<()>;
    fn rejected_count(&mut self) -> Result<u64>;
    /// Batch records, optionally only those in `state`, by seq.
    fn batches(&mut self, state: Option<BatchState>) -> Result<Vec<BatchRecord>>;
    /// The receiver answered "applied": clear the tracking rows and record it.
    fn mark_applied(&mut self, seq: u64) -> Result<()>;
    /// Count a failed apply attempt; returns the new count.
    fn record_failure(&mut self, seq: u64, reason: &str) -> Result<u32>;
    /// Drop the batch into quarantine (its tracking rows are kept).
    fn mark_quarantined(&mut self, seq: u64, reason: &str) -> Result<()>;
    /// `quarantine retry`: a quarantined batch is ready again (attempts reset); false
    /// when `seq` is not quarantined.
    fn requeue(&mut self, seq: u64) -> Result<bool>;
    /// Archive retention: delete the records of batches in state 'applied' whose
    /// `created` time (the [`gapsync_common::batch::format_created`] text, compared as text) is
    /// earlier than `before`, except the applied batch with the highest seq (it is what
    /// "last seq applied" reports). 'ready' and 'quarantined' records are never deleted.
    /// Nothing else depends on old records: the next seq is kept in `_gapsync_state`,
    /// and an applied batch has no tracking rows left. Returns how many were deleted.
    fn prune_applied(&mut self, before: &str) -> Result<u64>;
    fn queue_snapshot(&mut self, table: &str) -> Result<()>;
    /// Queued snapshot requests: (request id, table), oldest first.
    fn snapshot_requests(&mut self) -> Result<Vec<(i64, String)>>;
    /// Whether batches may be recorded on a second connection while a snapshot's read
    /// transaction is open (SQLite: only in WAL mode; a rollback journal would make the
    /// write wait for the read). When not, a snapshot records its batches after its read.
    fn commits_beside_reads(&mut self) -> Result<bool> {
        Ok(true)
    }
    /// Drop a finished (or abandoned) request and its progress.
    fn finish_request(&mut self, id: i64) -> Result<()>;
    /// Read every row of `spec`'s table in key order (with `after`, only the rows whose
    /// integer key comes after it), streamed to `each`, in ONE read transaction that
    /// also determines which pending changes the rows contain
    /// ([`SnapshotEvent::Start`]).
    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        after: Option<&[i64]>,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<(), SinkError>;
    /// Reopen the connection after a transient failure (a server source whose
    /// connection died). SQLite keeps its connection: a lock or an I/O error does not
    /// spoil it.
    fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }
}
