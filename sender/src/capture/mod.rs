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
//! shipped with the next batch (DESIGN.md invariant 3).
//!
//! The source is switched to WAL journal mode at install, so that the sender's reads
//! (snapshots included) never block the plant's writers.

pub mod ddl;
#[cfg(feature = "odbc")]
pub mod odbc;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

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
    fn parse(s: &str) -> Result<Self> {
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
    /// Before the rows: the row count, read in the same transaction as the rows.
    Start { rows: u64 },
    /// One row, in column order.
    Row(&'a [Value]),
}

const BASE_DDL: &str = "
CREATE TABLE IF NOT EXISTS _gapsync_changes(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tbl TEXT NOT NULL,
  op TEXT NOT NULL,
  layout INTEGER NOT NULL,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  batch INTEGER);
CREATE TABLE IF NOT EXISTS _gapsync_layouts(
  layout INTEGER PRIMARY KEY, tbl TEXT NOT NULL, columns TEXT NOT NULL, key TEXT NOT NULL,
  uniques TEXT NOT NULL DEFAULT '[]', installed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_batches(
  seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL,
  sha256 TEXT NOT NULL, statements INTEGER NOT NULL, changes INTEGER NOT NULL, first_id INTEGER, last_id INTEGER,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT,
  created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_state(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS _gapsync_requests(
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, tbl TEXT NOT NULL,
  requested TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_rejected(
  id INTEGER PRIMARY KEY AUTOINCREMENT, change_id INTEGER, tbl TEXT NOT NULL,
  what TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)";

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
    /// Record written batch files and mark their tracking rows, in one transaction.
    fn commit_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
    ) -> Result<()>;
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
    fn finish_request(&mut self, id: i64) -> Result<()>;
    /// Read every row of `spec`'s table in key order, streamed to `each`, in ONE read
    /// transaction that also determines which pending changes the rows contain.
    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<Absorbed, SinkError>;
    /// Reopen the connection after a transient failure (a server source whose
    /// connection died). SQLite keeps its connection: a lock or an I/O error does not
    /// spoil it.
    fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A SQLite source database with gapsync's capture objects.
#[derive(Debug)]
pub struct SqliteSource {
    conn: Connection,
    layouts: HashMap<i64, Layout>,
    width: (usize, usize),
}

impl SqliteSource {
    pub fn open(path: &Path) -> Result<SqliteSource> {
        let conn = Connection::open(path).map_err(|source| SourceError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        Ok(SqliteSource {
            conn,
            layouts: HashMap::new(),
            width: (0, 0),
        })
    }

    /// The underlying connection (tests and status use it read-only).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn require_installed(&self) -> Result<()> {
        if has_table(&self.conn, "_gapsync_batches")? {
            Ok(())
        } else {
            Err(SourceError::NotInstalled)
        }
    }

    fn query_pending_after(&mut self, after: i64, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        self.require_installed()?;
        if self.width == (0, 0) {
            self.width = tracking_width(&self.conn)?;
        }
        let (kw, cw) = self.width;
        let mut sql = String::from("SELECT id, tbl, op, layout");
        for i in 0..kw {
            let _ = write!(sql, ", k{i}");
        }
        for i in 0..cw {
            let _ = write!(sql, ", c{i}");
        }
        sql.push_str(
            " FROM _gapsync_changes WHERE batch IS NULL AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?1",
        );
        let raw: Vec<(i64, String, String, i64, Vec<Value>)> = {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                [i64::try_from(limit).unwrap_or(i64::MAX), after, up_to],
                |r| {
                    let mut vals = Vec::with_capacity(kw + cw);
                    for i in 0..kw + cw {
                        vals.push(Value::from(r.get_ref(4 + i)?));
                    }
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, vals))
                },
            )?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(raw.len());
        for (id, table, op, layout_id, mut vals) in raw {
            let layout = self.layout(layout_id)?;
            let op = match op.as_str() {
                "I" => Op::Insert,
                "U" => Op::Update,
                "D" => Op::Delete,
                "R" => Op::Displaced,
                other => {
                    return Err(SourceError::Corrupt(format!(
                        "change {id} has op {other:?}"
                    )));
                }
            };
            let mut row = vals.split_off(kw);
            row.truncate(layout.columns.len());
            vals.truncate(layout.key.len());
            out.push(Change {
                id,
                table,
                op,
                layout: layout_id,
                old_key: if op == Op::Insert { Vec::new() } else { vals },
                row: if op == Op::Delete { Vec::new() } else { row },
            });
        }
        Ok(out)
    }
}

impl ChangeSource for SqliteSource {
    /// Whether `install` has run on this database.
    fn is_installed(&mut self) -> Result<bool> {
        has_table(&self.conn, "_gapsync_batches")
    }

    /// Resolve a configured table against the source schema.
    fn describe(&mut self, cfg: &TableConfig) -> Result<TableSpec> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let cols: Vec<(String, String, i64)> = stmt
            .query_map([&cfg.source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?;
        if cols.is_empty() {
            return Err(SourceError::NoTable(cfg.source.clone()));
        }
        for from in cfg.rename.keys() {
            if !cols.iter().any(|c| &c.0 == from) {
                return Err(SourceError::NoColumn {
                    table: cfg.source.clone(),
                    column: from.clone(),
                    what: "rename",
                });
            }
        }
        let columns: Vec<ColumnSpec> = cols
            .iter()
            .map(|(name, ty, _)| ColumnSpec {
                source: name.clone(),
                target: cfg
                    .rename
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.clone()),
                decl_type: ty.clone(),
            })
            .collect();
        let key = match &cfg.key {
            Some(k) => k
                .iter()
                .map(|name| {
                    columns
                        .iter()
                        .position(|c| &c.source == name)
                        .ok_or_else(|| SourceError::NoColumn {
                            table: cfg.source.clone(),
                            column: name.clone(),
                            what: "key",
                        })
                })
                .collect::<Result<Vec<_>>>()?,
            None => {
                let mut pk: Vec<(i64, usize)> = cols
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.2 > 0)
                    .map(|(i, c)| (c.2, i))
                    .collect();
                pk.sort();
                if pk.is_empty() {
                    return Err(SourceError::NoKey(cfg.source.clone()));
                }
                pk.into_iter().map(|(_, i)| i).collect()
            }
        };
        let unique = unique_sets(&self.conn, &cfg.source, &columns)?;
        Ok(TableSpec {
            source: cfg.source.clone(),
            target: cfg.target.clone(),
            columns,
            key,
            unique,
        })
    }

    /// Compute the DDL that brings capture up to date for `specs` (for `--dry-run`).
    fn plan_install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        plan(&self.conn, specs)
    }

    /// Create or update capture for `specs` in one transaction; idempotent.
    fn install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        // WAL lets the sender read (and snapshot) while the plant writes.
        self.conn
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Plan inside the write transaction so concurrent installs cannot interleave.
        let plan = plan(&tx, specs)?;
        for stmt in &plan.ddl {
            tx.execute_batch(stmt)?;
        }
        tx.commit()?;
        self.layouts.clear();
        self.width = tracking_width(&self.conn)?;
        Ok(plan)
    }

    /// Drop the triggers of `tables`; with `purge`, also every gapsync table (tracking
    /// rows, batch records and the sequence counter are lost).
    fn uninstall(&mut self, tables: &[String], purge: bool) -> Result<Vec<String>> {
        let mut ddl = Vec::new();
        for t in tables {
            for k in ["ins", "upd", "del", "rep"] {
                ddl.push(format!(
                    "DROP TRIGGER IF EXISTS {}",
                    quote(&trigger_name(t, k))
                ));
            }
        }
        if purge {
            for t in [
                "_gapsync_changes",
                "_gapsync_layouts",
                "_gapsync_batches",
                "_gapsync_state",
                "_gapsync_requests",
            ] {
                ddl.push(format!("DROP TABLE IF EXISTS {t}"));
            }
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for stmt in &ddl {
            tx.execute_batch(stmt)?;
        }
        tx.commit()?;
        Ok(ddl)
    }

    /// Number of captured changes not yet in a batch.
    fn pending_count(&mut self) -> Result<u64> {
        self.require_installed()?;
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Whether at least `n` changes are pending (reads at most `n` rows).
    fn pending_at_least(&mut self, n: u64) -> Result<bool> {
        let c: i64 = self.conn.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM _gapsync_changes WHERE batch IS NULL LIMIT ?1)",
            [i64::try_from(n).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
        Ok(c as u64 >= n)
    }

    /// The highest tracking id ever assigned (0 when none): a cheap "did anything
    /// change" probe for the idle strategy.
    fn last_change_id(&mut self) -> Result<i64> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name='_gapsync_changes'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    fn layout(&mut self, id: i64) -> Result<Layout> {
        if let Some(l) = self.layouts.get(&id) {
            return Ok(l.clone());
        }
        let (table, c, k): (String, String, String) = self
            .conn
            .query_row(
                "SELECT tbl, columns, key FROM _gapsync_layouts WHERE layout=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| SourceError::Corrupt(format!("layout {id} is not recorded")))?;
        let l = Layout {
            id,
            table,
            columns: from_json(&c)?,
            key: from_json(&k)?,
            unique: Vec::new(),
        };
        self.layouts.insert(id, l.clone());
        Ok(l)
    }

    /// The highest tracking id now (0 when none): `cut` bounds take it first so that
    /// changes arriving during a cut wait for the next one.
    fn max_change_id(&mut self) -> Result<i64> {
        self.require_installed()?;
        Ok(self.conn.query_row(
            "SELECT coalesce(max(id), 0) FROM _gapsync_changes",
            [],
            |r| r.get(0),
        )?)
    }

    /// Up to `limit` pending changes with ids up to `up_to`, in id order. A REPLACE's
    /// `R` rows and its INSERT are never split: when the last row read is an `R`, the
    /// read goes on up to the first change that is not one (so a batch may exceed
    /// `limit` by the few rows of one REPLACE).
    fn read_pending(&mut self, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        self.read_pending_after(i64::MIN, limit, up_to)
    }

    /// SQLite has one writer at a time: tracking ids are taken in commit order, so
    /// nothing pending is left at or below the last id of a cut of the same pass.
    fn read_pending_after(&mut self, after: i64, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        let mut out = self.query_pending_after(after, limit, up_to)?;
        while let Some(last) = out.last().filter(|c| c.op == Op::Displaced) {
            let more = self.query_pending_after(last.id, 16, i64::MAX)?;
            let Some(end) = more.iter().position(|c| c.op != Op::Displaced) else {
                let done = more.len() < 16;
                out.extend(more);
                if done {
                    break;
                }
                continue;
            };
            out.extend(more.into_iter().take(end + 1));
            break;
        }
        Ok(out)
    }

    /// The sequence number the next batch gets.
    fn next_seq(&mut self) -> Result<u64> {
        self.require_installed()?;
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM _gapsync_state WHERE key='next_seq'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.unwrap_or(1).max(1) as u64)
    }

    /// Record written batch files and mark their tracking rows, in one transaction:
    /// `carried[i]` are the change ids batch `records[i]` carries; `absorbed` are
    /// pending changes of `(table, up to id)` that a snapshot contains (marked with the
    /// last record's seq, so they are cleared when the snapshot is applied).
    fn commit_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO _gapsync_batches(seq, kind, file, size, sha256, statements, \
                 changes, first_id, last_id, state, attempts, reason, created, updated) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?13, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
            )?;
            let mut mark = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch=?1 WHERE id=?2 AND batch IS NULL",
            )?;
            let mut mark_range = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch=?1 WHERE id BETWEEN ?2 AND ?3 AND batch IS NULL",
            )?;
            for (i, r) in records.iter().enumerate() {
                ins.execute(params![
                    r.seq as i64,
                    r.kind,
                    r.file,
                    r.size as i64,
                    r.sha256,
                    r.statements as i64,
                    r.first_id,
                    r.last_id,
                    r.state.as_str(),
                    r.attempts,
                    r.reason,
                    r.created,
                    r.changes as i64
                ])?;
                let ids = carried.get(i).map(Vec::as_slice).unwrap_or_default();
                // Consecutive ids (the usual cut): one range update marks exactly them,
                // and its count proves every one of them was still pending.
                if let (Some(&lo), Some(&hi)) = (ids.first(), ids.last())
                    && hi.checked_sub(lo).and_then(|d| d.checked_add(1))
                        == i64::try_from(ids.len()).ok()
                {
                    let n = mark_range.execute(params![r.seq as i64, lo, hi])?;
                    if n != ids.len() {
                        return Err(SourceError::Corrupt(format!(
                            "changes {lo}..={hi}: {n} of {} still pending; some vanished or were already in a batch",
                            ids.len()
                        )));
                    }
                    continue;
                }
                for id in ids {
                    if mark.execute(params![r.seq as i64, id])? != 1 {
                        return Err(SourceError::Corrupt(format!(
                            "change {id} vanished or was already in a batch"
                        )));
                    }
                }
            }
            if let (Some((table, absorbed)), Some(last)) = (absorbed, records.last()) {
                let n = match absorbed {
                    Absorbed::UpTo(max_id) => tx.execute(
                        "UPDATE _gapsync_changes SET batch=?1 WHERE tbl=?2 AND id<=?3 AND batch IS NULL",
                        params![last.seq as i64, table, max_id],
                    )?,
                    Absorbed::Ids(ids) => {
                        let mut n = 0;
                        for id in ids {
                            n += tx.execute(
                                "UPDATE _gapsync_changes SET batch=?1 WHERE id=?2 AND batch IS NULL",
                                params![last.seq as i64, id],
                            )?;
                        }
                        n
                    }
                };
                tx.execute(
                    "UPDATE _gapsync_batches SET changes = changes + ?2 WHERE seq=?1",
                    params![last.seq as i64, n as i64],
                )?;
            }
            if let Some(last) = records.last() {
                tx.execute(
                    "INSERT INTO _gapsync_state(key, value) VALUES ('next_seq', ?1) \
                     ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    [last.seq as i64 + 1],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record changes (or a snapshot, `change_id` None) the target's dialect cannot
    /// express; their tracking rows are kept with `batch = 0`, never pending again.
    fn reject(&mut self, rejected: &[(Option<i64>, String, String)]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO _gapsync_rejected(change_id, tbl, what, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut mark = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch = 0 WHERE id = ?1 AND batch IS NULL",
            )?;
            for (id, tbl, reason) in rejected {
                let what = if id.is_some() { "change" } else { "snapshot" };
                ins.execute(params![id, tbl, what, reason, now()])?;
                if let Some(id) = id {
                    mark.execute([id])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many changes and snapshots were rejected so far.
    fn rejected_count(&mut self) -> Result<u64> {
        if !has_table(&self.conn, "_gapsync_rejected")? {
            return Ok(0);
        }
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM _gapsync_rejected", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Batch records, optionally only those in `state`, by seq.
    fn batches(&mut self, state: Option<BatchState>) -> Result<Vec<BatchRecord>> {
        self.require_installed()?;
        let mut stmt = self.conn.prepare(
            "SELECT seq, kind, file, size, sha256, statements, first_id, last_id, state, \
             attempts, reason, created, changes FROM _gapsync_batches \
             WHERE ?1 IS NULL OR state=?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([state.map(BatchState::as_str)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, u32>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, i64>(12)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                seq,
                kind,
                file,
                size,
                sha256,
                statements,
                first_id,
                last_id,
                st,
                attempts,
                reason,
                created,
                changes,
            ) = row?;
            out.push(BatchRecord {
                seq: seq as u64,
                kind,
                file,
                size: size as u64,
                sha256,
                statements: statements as u64,
                changes: changes as u64,
                first_id,
                last_id,
                state: BatchState::parse(&st)?,
                attempts,
                reason,
                created,
            });
        }
        Ok(out)
    }

    /// The receiver answered "applied": clear the batch's tracking rows and record it.
    fn mark_applied(&mut self, seq: u64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM _gapsync_changes WHERE batch=?1", [seq as i64])?;
        tx.execute(
            "UPDATE _gapsync_batches SET state='applied', updated=?2 WHERE seq=?1",
            params![seq as i64, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Count a failed apply attempt; returns the new attempt count.
    fn record_failure(&mut self, seq: u64, reason: &str) -> Result<u32> {
        self.conn.execute(
            "UPDATE _gapsync_batches SET attempts=attempts+1, reason=?2, updated=?3 WHERE seq=?1",
            params![seq as i64, reason, now()],
        )?;
        Ok(self.conn.query_row(
            "SELECT attempts FROM _gapsync_batches WHERE seq=?1",
            [seq as i64],
            |r| r.get(0),
        )?)
    }

    /// Drop the batch into quarantine. Its tracking rows stay in `_gapsync_changes`
    /// (with `batch` = seq) as the record of the changes it carried; they are never
    /// pending again.
    fn mark_quarantined(&mut self, seq: u64, reason: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE _gapsync_batches SET state='quarantined', reason=?2, updated=?3 WHERE seq=?1",
            params![seq as i64, reason, now()],
        )?;
        Ok(())
    }

    /// Delete old 'applied' records, never the highest applied seq (see the trait).
    fn prune_applied(&mut self, before: &str) -> Result<u64> {
        self.require_installed()?;
        let n = self.conn.execute(
            "DELETE FROM _gapsync_batches WHERE state='applied' AND created < ?1 \
             AND seq < (SELECT max(seq) FROM _gapsync_batches WHERE state='applied')",
            [before],
        )?;
        Ok(n as u64)
    }

    /// Queue a snapshot of `table` (built by the next batch cut).
    fn queue_snapshot(&mut self, table: &str) -> Result<()> {
        self.require_installed()?;
        self.conn.execute(
            "INSERT INTO _gapsync_requests(kind, tbl, requested) VALUES ('snapshot', ?1, ?2)",
            params![table, now()],
        )?;
        Ok(())
    }

    /// Queued snapshot requests: (request id, table), oldest first.
    fn snapshot_requests(&mut self) -> Result<Vec<(i64, String)>> {
        self.require_installed()?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, tbl FROM _gapsync_requests WHERE kind='snapshot' ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn finish_request(&mut self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM _gapsync_requests WHERE id=?1", [id])?;
        Ok(())
    }

    /// Read every row of `spec`'s table in key order, in ONE read transaction that also
    /// reads the highest tracking id: pending changes of the table up to that id are
    /// contained in the rows and must not be shipped again. `each` gets
    /// [`SnapshotEvent::Start`] first, then one [`SnapshotEvent::Row`] per row (streamed:
    /// memory stays bounded). Returns the highest tracking id.
    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<Absorbed, SinkError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
            .map_err(SourceError::from)?;
        let max_id: i64 = tx
            .query_row(
                "SELECT coalesce(max(id), 0) FROM _gapsync_changes",
                [],
                |r| r.get(0),
            )
            .map_err(SourceError::from)?;
        let count: i64 = tx
            .query_row(
                &format!("SELECT count(*) FROM {}", quote(&spec.source)),
                [],
                |r| r.get(0),
            )
            .map_err(SourceError::from)?;
        each(SnapshotEvent::Start {
            rows: count.max(0) as u64,
        })?;
        let cols: Vec<String> = spec.columns.iter().map(|c| quote(&c.source)).collect();
        let order: Vec<String> = spec
            .key
            .iter()
            .map(|&i| quote(&spec.columns[i].source))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            quote(&spec.source),
            order.join(", ")
        );
        {
            let mut stmt = tx.prepare(&sql).map_err(SourceError::from)?;
            let mut rows = stmt.query([]).map_err(SourceError::from)?;
            let mut vals = Vec::with_capacity(cols.len());
            while let Some(r) = rows.next().map_err(SourceError::from)? {
                vals.clear();
                for i in 0..cols.len() {
                    vals.push(Value::from(r.get_ref(i).map_err(SourceError::from)?));
                }
                each(SnapshotEvent::Row(&vals))?;
            }
        }
        tx.commit().map_err(SourceError::from)?;
        // SQLite has one writer at a time: every change with an id up to max_id was
        // committed, and visible, when the rows were read.
        Ok(Absorbed::UpTo(max_id))
    }
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn current_layout(conn: &Connection, table: &str) -> Result<Option<Layout>> {
    if !has_table(conn, "_gapsync_layouts")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT layout, columns, key, uniques FROM _gapsync_layouts WHERE tbl=?1 \
             ORDER BY layout DESC LIMIT 1",
        [table],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )
    .optional()?
    .map(|(id, c, k, u)| {
        Ok(Layout {
            id,
            table: table.to_owned(),
            columns: from_json(&c)?,
            key: from_json(&k)?,
            unique: serde_json::from_str(&u)
                .map_err(|e| SourceError::Corrupt(format!("layout uniques {u:?}: {e}")))?,
        })
    })
    .transpose()
}

/// Column sets of the table's unique constraints: the primary key, then every unique
/// index that is not partial and has no expression columns.
fn unique_sets(conn: &Connection, table: &str, columns: &[ColumnSpec]) -> Result<Vec<Vec<usize>>> {
    let pos = |name: &str| columns.iter().position(|c| c.source == name);
    let mut sets: Vec<Vec<usize>> = Vec::new();
    let mut pk: Vec<(i64, usize)> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1)")?;
        let rows = stmt.query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (name, k) = row?;
            if k > 0
                && let Some(i) = pos(&name)
            {
                pk.push((k, i));
            }
        }
    }
    pk.sort();
    if !pk.is_empty() {
        sets.push(pk.into_iter().map(|(_, i)| i).collect());
    }
    let indexes: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0",
        )?;
        let rows = stmt.query_map([table], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for index in indexes {
        let mut stmt = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let names: Vec<Option<String>> = stmt
            .query_map([&index], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let set: Option<Vec<usize>> = names.iter().map(|n| n.as_deref().and_then(pos)).collect();
        if let Some(mut set) = set.filter(|s| !s.is_empty()) {
            let mut sorted = set.clone();
            sorted.sort();
            if !sets.iter().any(|s| {
                let mut t = s.clone();
                t.sort();
                t == sorted
            }) {
                sets.push(std::mem::take(&mut set));
            }
        }
    }
    Ok(sets)
}

/// Whether exactly the triggers `spec` needs are present.
fn triggers_present(conn: &Connection, spec: &TableSpec) -> Result<bool> {
    let present: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?1 \
             AND name LIKE '\\_gapsync\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        let rows = stmt.query_map([&spec.source], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut want: Vec<String> = spec
        .trigger_kinds()
        .iter()
        .map(|k| trigger_name(&spec.source, k))
        .collect();
    want.sort();
    Ok(present == want)
}

fn tracking_width(conn: &Connection) -> Result<(usize, usize)> {
    if !has_table(conn, "_gapsync_changes")? {
        return Ok((0, 0));
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('_gapsync_changes')")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let count = |p: char| {
        names
            .iter()
            .filter(|n| {
                n.starts_with(p) && n[1..].bytes().all(|b| b.is_ascii_digit()) && n.len() > 1
            })
            .count()
    };
    Ok((count('k'), count('c')))
}

/// Compute the DDL that brings capture up to date for `specs`.
fn plan(conn: &Connection, specs: &[TableSpec]) -> Result<InstallPlan> {
    let mut ddl: Vec<String> = BASE_DDL.split(';').map(|s| s.trim().to_owned()).collect();
    let mut notes = Vec::new();
    let (mut kw, mut cw) = tracking_width(conn)?;
    let mut next_layout: i64 = if has_table(conn, "_gapsync_layouts")? {
        conn.query_row(
            "SELECT coalesce(max(layout), 0) + 1 FROM _gapsync_layouts",
            [],
            |r| r.get(0),
        )?
    } else {
        1
    };
    for spec in specs {
        let cols = spec.column_names();
        let key = spec.key_names();
        let unique = spec.unique_names();
        let current = current_layout(conn, &spec.source)?;
        let same = current
            .as_ref()
            .is_some_and(|l| l.columns == cols && l.key == key && l.unique == unique);
        if same && triggers_present(conn, spec)? {
            notes.push(format!("{}: up to date", spec.source));
            continue;
        }
        notes.push(format!(
            "{}: {}",
            spec.source,
            match current {
                None => "installed",
                Some(_) if same => "triggers restored",
                Some(_) => "re-installed (columns, key or unique constraints changed)",
            }
        ));
        while kw < key.len() {
            ddl.push(format!("ALTER TABLE _gapsync_changes ADD COLUMN k{kw}"));
            kw += 1;
        }
        while cw < cols.len() {
            ddl.push(format!("ALTER TABLE _gapsync_changes ADD COLUMN c{cw}"));
            cw += 1;
        }
        let layout = next_layout;
        next_layout += 1;
        ddl.push(format!(
            "INSERT INTO _gapsync_layouts(layout, tbl, columns, key, uniques, installed_at) \
             VALUES ({layout}, {}, {}, {}, {}, {})",
            quote_lit(&spec.source),
            quote_lit(&to_json(&cols)),
            quote_lit(&to_json(&key)),
            quote_lit(&serde_json::Value::from(unique.clone()).to_string()),
            quote_lit(&now())
        ));
        ddl.extend(trigger_ddl(spec, layout));
    }
    Ok(InstallPlan { ddl, notes })
}

fn trigger_name(table: &str, kind: &str) -> String {
    format!("_gapsync_{table}_{kind}")
}

fn trigger_ddl(spec: &TableSpec, layout: i64) -> Vec<String> {
    let t = quote(&spec.source);
    let tl = quote_lit(&spec.source);
    let ncols = spec.columns.len();
    let nkey = spec.key.len();
    let cnames: Vec<String> = (0..ncols).map(|i| format!("c{i}")).collect();
    let knames: Vec<String> = (0..nkey).map(|i| format!("k{i}")).collect();
    let new_vals: Vec<String> = spec
        .columns
        .iter()
        .map(|c| format!("NEW.{}", quote(&c.source)))
        .collect();
    let old_keys: Vec<String> = spec
        .key
        .iter()
        .map(|&i| format!("OLD.{}", quote(&spec.columns[i].source)))
        .collect();
    let mut out = Vec::new();
    for kind in ["ins", "upd", "del", "rep"] {
        out.push(format!(
            "DROP TRIGGER IF EXISTS {}",
            quote(&trigger_name(&spec.source, kind))
        ));
    }
    out.push(format!(
        "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}) \
         VALUES ({tl}, 'I', {layout}, {}); END",
        quote(&trigger_name(&spec.source, "ins")),
        cnames.join(", "),
        new_vals.join(", ")
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}, {}) \
         VALUES ({tl}, 'U', {layout}, {}, {}); END",
        quote(&trigger_name(&spec.source, "upd")),
        knames.join(", "),
        cnames.join(", "),
        old_keys.join(", "),
        new_vals.join(", ")
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}) \
         VALUES ({tl}, 'D', {layout}, {}); END",
        quote(&trigger_name(&spec.source, "del")),
        knames.join(", "),
        old_keys.join(", ")
    ));
    if !spec.unique.is_empty() {
        // For every existing row the new row conflicts with on a unique constraint:
        // its key, and the new row (see the module docs on REPLACE).
        let cur_keys: Vec<String> = spec
            .key
            .iter()
            .map(|&i| format!("{t}.{}", quote(&spec.columns[i].source)))
            .collect();
        let conflicts: Vec<String> = spec
            .unique
            .iter()
            .map(|set| {
                let terms: Vec<String> = set
                    .iter()
                    .map(|&i| {
                        let c = quote(&spec.columns[i].source);
                        format!("{t}.{c} = NEW.{c}")
                    })
                    .collect();
                format!("({})", terms.join(" AND "))
            })
            .collect();
        out.push(format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}, {}) \
             SELECT {tl}, 'R', {layout}, {}, {} FROM {t} WHERE {}; END",
            quote(&trigger_name(&spec.source, "rep")),
            knames.join(", "),
            cnames.join(", "),
            cur_keys.join(", "),
            new_vals.join(", "),
            conflicts.join(" OR ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn table(source: &str, key: Option<Vec<&str>>) -> TableConfig {
        TableConfig {
            source: source.into(),
            target: source.into(),
            key: key.map(|k| k.into_iter().map(String::from).collect()),
            rename: BTreeMap::new(),
        }
    }

    fn source(ddl: &str) -> (tempfile::TempDir, SqliteSource) {
        let dir = tempfile::tempdir().unwrap();
        let src = SqliteSource::open(&dir.path().join("s.db")).unwrap();
        src.conn.execute_batch(ddl).unwrap();
        (dir, src)
    }

    /// A source locked by another connection beyond the busy timeout is transient (the
    /// sender service retries); a configuration error is not; a server source's
    /// classified error keeps its class.
    #[test]
    fn a_locked_source_is_transient_and_a_missing_table_is_not() {
        let (d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(std::slice::from_ref(&spec)).unwrap();
        src.conn.busy_timeout(Duration::from_millis(50)).unwrap();
        let other = Connection::open(d.path().join("s.db")).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let e = src.mark_applied(1).unwrap_err();
        assert!(e.transient(), "{e}");
        other.execute_batch("ROLLBACK").unwrap();
        src.mark_applied(1).unwrap();

        let e = src.describe(&table("gone", None)).unwrap_err();
        assert!(!e.transient(), "{e}");
        assert!(!SourceError::NotInstalled.transient());
        let lost = gapsync_common::db::DbError {
            transient: true,
            message: "08S01 connection lost".into(),
        };
        let e = SourceError::from(lost);
        assert!(e.transient());
        assert_eq!(e.to_string(), "source database: 08S01 connection lost");
    }

    #[test]
    fn install_is_idempotent_and_reinstalls_on_column_change() {
        let (_d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)");
        let spec = src.describe(&table("t", None)).unwrap();
        let p = src.install(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(p.notes, vec!["t: installed"]);
        let p = src.install(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(p.notes, vec!["t: up to date"]);
        src.conn
            .execute_batch("INSERT INTO t VALUES (1, 'x'); ALTER TABLE t ADD COLUMN b REAL")
            .unwrap();
        let spec = src.describe(&table("t", None)).unwrap();
        let p = src.install(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(
            p.notes,
            vec!["t: re-installed (columns, key or unique constraints changed)"]
        );
        src.conn
            .execute_batch("INSERT INTO t VALUES (2, 'y', 2.5)")
            .unwrap();
        // Both layouts are read back with their own column lists.
        let ch = src.read_pending(10, i64::MAX).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(src.layout(ch[0].layout).unwrap().columns, ["id", "a"]);
        assert_eq!(ch[0].row, [Value::Integer(1), Value::Text("x".into())]);
        assert_eq!(src.layout(ch[1].layout).unwrap().columns, ["id", "a", "b"]);
        assert_eq!(
            ch[1].row,
            [Value::Integer(2), Value::Text("y".into()), Value::Real(2.5)]
        );
    }

    #[test]
    fn tables_without_key_need_one_in_the_config() {
        let (_d, mut src) = source("CREATE TABLE log(at TEXT, msg TEXT)");
        let e = src.describe(&table("log", None)).unwrap_err().to_string();
        assert!(
            e.contains("has no primary key") && e.contains("key = "),
            "{e}"
        );
        let spec = src.describe(&table("log", Some(vec!["at"]))).unwrap();
        assert_eq!(spec.key, [0]);
        let e = src
            .describe(&table("log", Some(vec!["nope"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column \"nope\""), "{e}");
        let e = src
            .describe(&table("missing", None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn update_captures_old_key_and_delete_only_the_key() {
        let (_d, mut src) = source("CREATE TABLE t(a INTEGER, b TEXT, v BLOB, PRIMARY KEY (a, b))");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(&[spec]).unwrap();
        src.conn
            .execute_batch(
                "INSERT INTO t VALUES (1, 'k', x'00'); UPDATE t SET a = 2 WHERE a = 1; \
                 DELETE FROM t WHERE a = 2",
            )
            .unwrap();
        let ch = src.read_pending(10, i64::MAX).unwrap();
        let ops: Vec<Op> = ch.iter().map(|c| c.op).collect();
        assert_eq!(ops, [Op::Insert, Op::Update, Op::Delete]);
        assert_eq!(ch[1].old_key, [Value::Integer(1), Value::Text("k".into())]);
        assert_eq!(ch[1].row[0], Value::Integer(2));
        assert_eq!(ch[2].old_key, [Value::Integer(2), Value::Text("k".into())]);
        assert!(ch[2].row.is_empty() && ch[0].old_key.is_empty());
    }

    /// Invariant 3: pending means "not in a batch", not "above a high-water mark": a
    /// change whose id is lower than ids already carried by a batch is still read.
    #[test]
    fn a_lower_id_committed_late_is_still_pending() {
        let (_d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY)");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(&[spec]).unwrap();
        src.conn
            .execute_batch("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
            .unwrap();
        let ch = src.read_pending(10, i64::MAX).unwrap();
        let rec = BatchRecord {
            seq: 1,
            kind: "changes".into(),
            file: "n-00000000000000000001.sql".into(),
            size: 0,
            sha256: String::new(),
            statements: 2,
            changes: 2,
            first_id: Some(ch[0].id),
            last_id: Some(ch[1].id),
            state: BatchState::Ready,
            attempts: 0,
            reason: None,
            created: now(),
        };
        let ids: Vec<i64> = ch.iter().map(|c| c.id).collect();
        src.commit_batches(&[rec], &[ids], None).unwrap();
        assert!(src.read_pending(10, i64::MAX).unwrap().is_empty());
        // Simulate a transaction that took id 0 earlier but committed only now.
        src.conn
            .execute_batch(
                "INSERT INTO _gapsync_changes(id, tbl, op, layout, c0) VALUES (0, 't', 'I', 1, 9)",
            )
            .unwrap();
        let late = src.read_pending(10, i64::MAX).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].row, [Value::Integer(9)]);
        assert_eq!(src.next_seq().unwrap(), 2);
    }

    /// `read_pending_after` starts after the given id (the next cut of a pass), while
    /// `read_pending` (every new pass) starts from the beginning: a late commit with a
    /// lower id is skipped by the rest of a pass only, never lost.
    #[test]
    fn read_pending_after_skips_what_the_pass_cut_and_the_next_pass_does_not() {
        let (_d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY)");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(&[spec]).unwrap();
        for i in 1..=5 {
            src.conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        let all = src.read_pending(10, i64::MAX).unwrap();
        assert_eq!(all.len(), 5);
        let after = all[1].id;
        let rest = src.read_pending_after(after, 10, i64::MAX).unwrap();
        let ids: Vec<i64> = rest.iter().map(|c| c.id).collect();
        assert_eq!(ids, all[2..].iter().map(|c| c.id).collect::<Vec<_>>());
        assert_eq!(
            src.read_pending_after(after, 2, all[3].id).unwrap().len(),
            2
        );
        // A late commit below `after`: not in this pass, found by the next one.
        src.conn
            .execute_batch(
                "INSERT INTO _gapsync_changes(id, tbl, op, layout, c0) VALUES (0, 't', 'I', 1, 9)",
            )
            .unwrap();
        assert!(
            src.read_pending_after(after, 10, i64::MAX)
                .unwrap()
                .iter()
                .all(|c| c.id > after)
        );
        assert_eq!(src.read_pending(10, i64::MAX).unwrap()[0].id, 0);
    }

    /// Marking a batch's tracking rows (one range update for consecutive ids, one
    /// update per id otherwise) refuses, and commits nothing, when a carried change is
    /// no longer pending.
    #[test]
    fn commit_batches_refuses_a_change_that_is_no_longer_pending() {
        let (_d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY)");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(&[spec]).unwrap();
        for i in 1..=4 {
            src.conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        let ch = src.read_pending(10, i64::MAX).unwrap();
        let ids: Vec<i64> = ch.iter().map(|c| c.id).collect();
        let rec = |seq: u64| BatchRecord {
            seq,
            kind: "changes".into(),
            file: format!("n-{seq:020}.sql"),
            size: 0,
            sha256: String::new(),
            statements: 4,
            changes: 4,
            first_id: ids.first().copied(),
            last_id: ids.last().copied(),
            state: BatchState::Ready,
            attempts: 0,
            reason: None,
            created: now(),
        };
        // Another batch took the second change meanwhile.
        src.conn
            .execute(
                "UPDATE _gapsync_changes SET batch = 99 WHERE id = ?1",
                [ids[1]],
            )
            .unwrap();
        for carried in [ids.clone(), vec![ids[0], ids[1], ids[3]]] {
            let e = src
                .commit_batches(&[rec(1)], &[carried], None)
                .expect_err("a change already in a batch must be refused");
            assert!(e.to_string().contains("already in a batch"), "{e}");
            assert_eq!(src.next_seq().unwrap(), 1, "nothing committed");
            assert!(src.batches(None).unwrap().is_empty());
        }
        // Consecutive and pending: marked with one range update.
        src.conn
            .execute(
                "UPDATE _gapsync_changes SET batch = NULL WHERE id = ?1",
                [ids[1]],
            )
            .unwrap();
        src.commit_batches(&[rec(1)], std::slice::from_ref(&ids), None)
            .unwrap();
        assert!(src.read_pending(10, i64::MAX).unwrap().is_empty());
        assert_eq!(src.next_seq().unwrap(), 2);
    }

    /// Archive retention deletes old 'applied' records only: never 'ready' or
    /// 'quarantined' ones, never the highest applied seq; the next seq is unaffected.
    #[test]
    fn prune_applied_keeps_ready_quarantined_recent_and_newest() {
        let (_d, mut src) = source("CREATE TABLE t(id INTEGER PRIMARY KEY)");
        let spec = src.describe(&table("t", None)).unwrap();
        src.install(&[spec]).unwrap();
        let old = "2020-01-01T00:00:00.000000Z";
        let recent = "2030-01-01T00:00:00.000000Z";
        let rec = |seq: u64, state: BatchState, created: &str| BatchRecord {
            seq,
            kind: "changes".into(),
            file: format!("n-{seq:020}.sql"),
            size: 1,
            sha256: String::new(),
            statements: 1,
            changes: 0,
            first_id: None,
            last_id: None,
            state,
            attempts: 0,
            reason: None,
            created: created.into(),
        };
        use BatchState::{Applied, Quarantined, Ready};
        let records = [
            rec(1, Applied, old),
            rec(2, Quarantined, old),
            rec(3, Applied, old),
            rec(4, Ready, old),
            rec(5, Applied, recent),
            rec(6, Applied, old),
            rec(7, Ready, old),
        ];
        src.commit_batches(&records, &[], None).unwrap();
        let before = "2025-01-01T00:00:00.000000Z";
        assert_eq!(src.prune_applied(before).unwrap(), 2);
        let seqs = |src: &mut SqliteSource| -> Vec<u64> {
            src.batches(None).unwrap().iter().map(|b| b.seq).collect()
        };
        // 5 is recent; 6 is old but the highest applied seq.
        assert_eq!(seqs(&mut src), [2, 4, 5, 6, 7]);
        assert_eq!(src.prune_applied(before).unwrap(), 0);
        assert_eq!(src.next_seq().unwrap(), 8);
        // The newest batch (seq 7) applied: 6 may go now, 7 stays.
        src.mark_applied(7).unwrap();
        assert_eq!(src.prune_applied(before).unwrap(), 1);
        assert_eq!(seqs(&mut src), [2, 4, 5, 7]);
        // Everything applied and old: only the newest record stays.
        src.mark_applied(4).unwrap();
        assert_eq!(src.prune_applied(recent).unwrap(), 1);
        assert_eq!(src.prune_applied("9999").unwrap(), 1);
        assert_eq!(seqs(&mut src), [2, 7]);
        assert_eq!(src.next_seq().unwrap(), 8);
    }
}

#[cfg(test)]
mod replace_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// SQLite's REPLACE deletes conflicting rows without firing delete triggers; the
    /// `rep` trigger records them (`R`), for the primary key and for unique indexes,
    /// while OR IGNORE / upserts leave `R` rows that are not followed by their INSERT.
    #[test]
    fn replace_records_displaced_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = SqliteSource::open(&dir.path().join("s.db")).unwrap();
        src.conn
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, tag TEXT UNIQUE, n INTEGER);
                 CREATE UNIQUE INDEX t_n ON t(n) WHERE n > 0;
                 INSERT INTO t VALUES (1, 'a', 'x', 1), (2, 'b', 'y', 2);",
            )
            .unwrap();
        let cfg = TableConfig {
            source: "t".into(),
            target: "t".into(),
            key: None,
            rename: Default::default(),
        };
        let spec = src.describe(&cfg).unwrap();
        // The primary key and the unique column; the partial index is left out.
        assert_eq!(spec.unique, vec![vec![0], vec![2]]);
        src.install(&[spec]).unwrap();
        src.conn
            .execute_batch(
                "REPLACE INTO t VALUES (3, 'c', 'y', 3);
                 INSERT OR IGNORE INTO t VALUES (1, 'ignored', 'z', 4);
                 INSERT INTO t VALUES (1, 'up', 'q', 5) ON CONFLICT(id) DO UPDATE SET v = 'up';",
            )
            .unwrap();
        let ch = src.read_pending(100, i64::MAX).unwrap();
        let ops: Vec<(Op, Vec<Value>)> = ch.iter().map(|c| (c.op, c.old_key.clone())).collect();
        assert_eq!(
            ops,
            vec![
                (Op::Displaced, vec![Value::Integer(2)]),
                (Op::Insert, vec![]),
                (Op::Displaced, vec![Value::Integer(1)]),
                (Op::Displaced, vec![Value::Integer(1)]),
                (Op::Update, vec![Value::Integer(1)]),
            ]
        );
        // A read that would end on an `R` row goes on to its INSERT.
        assert_eq!(src.read_pending(1, i64::MAX).unwrap().len(), 2);
    }
}
