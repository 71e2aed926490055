//! Applying batch files on a target database, exactly once.
//!
//! The target database holds gapsync's two bookkeeping tables:
//!
//! - `_gapsync_ledger(node, seq, sha256, file, statements, applied_at)`, primary key
//!   `(node, seq)`: one row per applied batch, inserted in the SAME transaction as the
//!   batch's statements, so a batch and its ledger row commit together or not at all
//!   (ARCHITECTURE.md invariant I2). A batch whose `(node, seq)` is already in the ledger is
//!   answered "applied" without running again.
//! - `_gapsync_quarantine(node, seq, sha256, file, reason, at)`: batches that failed
//!   deterministically twice and were dropped; the per-node order skips them.
//!
//! [`Target`] holds this logic once, over an [`ApplyBackend`]: SQLite (`sqlite`, with
//! the authorizer) or ODBC (`gapsync_common::db::odbc`, with the `odbc` feature). The
//! ledger DDL per dialect is in `ledger`. Statements are executed one by one (never
//! `execute_batch` on a whole file, which is quadratic in SQLite), streaming the file.
//!
//! Failures are classified: [`ApplyError::Transient`] (the target is locked, busy,
//! unreachable, out of disk: retry later, never counts as a failure) or
//! [`ApplyError::Deterministic`] (the statement itself fails: counts as a failed apply,
//! with the line number of the statement).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::allow::{AllowList, Refusal};
use gapsync_common::batch::{self, ReadLimits, StatementReader};
use gapsync_common::config::DbUrl;
use gapsync_common::db::{Backend, DbError, Param};
use gapsync_common::dialect::Dialect;

mod ledger;
mod sqlite;
#[cfg(test)]
mod tests;

pub use ledger::{LEDGER_DDL, ledger_ddl_for};
pub use sqlite::SqliteBackend;

/// Why a batch did not apply. Both kinds carry the [`DbError`]: its message, and where
/// the database refused a statement, its SQL state and native code.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Retry later: the target is unavailable, locked or full.
    #[error("target unavailable: {0}")]
    Transient(DbError),
    /// The batch cannot apply: running it again gives the same error.
    #[error("{0}")]
    Deterministic(DbError),
}

type Result<T> = std::result::Result<T, ApplyError>;

impl ApplyError {
    /// A batch gapsync itself refuses (wrong dialect, a statement the allow-list does
    /// not take, content that changed): deterministic, with no SQL state.
    pub fn refused(message: impl Into<String>) -> ApplyError {
        ApplyError::Deterministic(DbError::deterministic(message))
    }

    /// The target could not be used now (an I/O error of the spool, a file to reopen).
    pub fn unavailable(message: impl Into<String>) -> ApplyError {
        ApplyError::Transient(DbError::transient(message))
    }

    /// The classified error underneath.
    pub fn db(&self) -> &DbError {
        match self {
            ApplyError::Transient(e) | ApplyError::Deterministic(e) => e,
        }
    }
}

impl From<DbError> for ApplyError {
    fn from(e: DbError) -> ApplyError {
        if e.transient {
            ApplyError::Transient(e)
        } else {
            ApplyError::Deterministic(e)
        }
    }
}

impl From<ApplyError> for DbError {
    fn from(e: ApplyError) -> DbError {
        match e {
            ApplyError::Transient(e) | ApplyError::Deterministic(e) => e,
        }
    }
}

/// What apply needs of a target connection beyond [`Backend`]: the database's own
/// statement guard around a batch's statements. A backend without one does nothing
/// (SQLite has the authorizer).
pub trait ApplyBackend: Backend {
    /// Switch the guard on (`Some`) or off (`None`).
    fn guard(&mut self, _allow: Option<&AllowList>) -> std::result::Result<(), DbError> {
        Ok(())
    }
    /// Why the guard refused the last statement, if it did (taken: cleared).
    fn take_refusal(&mut self) -> Option<Refusal> {
        None
    }
    /// The database is still the one that was opened (a SQLite file not deleted or
    /// replaced meanwhile); checked before every batch.
    fn check_identity(&self) -> std::result::Result<(), DbError> {
        Ok(())
    }
}

#[cfg(feature = "odbc")]
impl ApplyBackend for gapsync_common::db::odbc::OdbcBackend {}

/// The result of a successful apply call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied {
        statements: u64,
    },
    /// The ledger already had this (node, seq): nothing was executed.
    AlreadyApplied,
}

/// A quarantined batch as the target's `_gapsync_quarantine` records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantineRecord {
    pub node: String,
    pub seq: u64,
    pub sha256: String,
    pub file: String,
    pub reason: String,
    pub at: String,
}

/// One node's progress as the target records it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeProgress {
    pub node: String,
    pub last_applied: u64,
    /// When the newest batch of the node was applied (the ledger's `applied_at`, UTC).
    pub last_applied_at: Option<String>,
    pub applied_batches: u64,
    pub quarantined: Vec<u64>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Options for opening a target.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// SQLite: how long a statement waits for a lock.
    pub busy_timeout: Duration,
    /// ODBC: the target's dialect when it should not be detected from the driver.
    pub dialect: Option<String>,
    /// Which tables batch statements may write (`[target] tables`).
    pub allow: AllowList,
    /// SQLite: create the target file if it does not exist (`[target] create`).
    pub create: bool,
}

/// A target database with gapsync's ledger.
#[derive(Debug)]
pub struct Target {
    db: Box<dyn ApplyBackend>,
    allow: AllowList,
}

fn parse_u64(v: &Option<String>) -> u64 {
    v.as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |n| n.max(0) as u64)
}

impl Target {
    /// Open the target named by `url` and create the ledger tables if needed.
    pub fn open(url: &DbUrl, opts: &TargetOptions) -> Result<Target> {
        let ctx = format!("target database {url}");
        let db: Box<dyn ApplyBackend> = match url {
            DbUrl::Sqlite(p) => Box::new(
                SqliteBackend::open_target(p, opts.busy_timeout, opts.create)
                    .map_err(|e| e.context(&ctx))?,
            ),
            #[cfg(feature = "odbc")]
            DbUrl::Odbc(cs) => Box::new(
                gapsync_common::db::odbc::OdbcBackend::connect(cs, opts.dialect.as_deref())
                    .map_err(|e| e.context(&ctx))?,
            ),
            #[cfg(not(feature = "odbc"))]
            DbUrl::Odbc(_) => {
                return Err(ApplyError::refused(format!(
                    "{ctx}: this build has no ODBC support (build with --features odbc)"
                )));
            }
        };
        Self::with_backend_allowing(db, opts.allow.clone())
    }

    /// Wrap a backend and create the ledger tables if needed; batches may write any
    /// table but gapsync's own ([`AllowList::default`]).
    pub fn with_backend(db: Box<dyn ApplyBackend>) -> Result<Target> {
        Self::with_backend_allowing(db, AllowList::default())
    }

    /// Wrap a backend whose batches may write the tables `allow` allows.
    pub fn with_backend_allowing(
        mut db: Box<dyn ApplyBackend>,
        allow: AllowList,
    ) -> Result<Target> {
        for ddl in ledger_ddl_for(db.dialect()) {
            db.execute(&ddl)
                .map_err(|e| e.context("creating the ledger tables"))?;
        }
        Ok(Target { db, allow })
    }

    /// Which tables batches may write.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// The sha256 recorded for an applied (node, seq), if any.
    pub fn applied_sha(&mut self, node: &str, seq: u64) -> Result<Option<String>> {
        self.lookup(
            "SELECT \"sha256\" FROM \"_gapsync_ledger\" WHERE \"node\" = ? AND \"seq\" = ?",
            node,
            seq,
        )
    }

    /// The reason a (node, seq) was quarantined, if it was.
    pub fn quarantine_reason(&mut self, node: &str, seq: u64) -> Result<Option<String>> {
        self.lookup(
            "SELECT \"reason\" FROM \"_gapsync_quarantine\" WHERE \"node\" = ? AND \"seq\" = ?",
            node,
            seq,
        )
    }

    /// The first column of the first row of a (node, seq) look-up.
    fn lookup(&mut self, sql: &str, node: &str, seq: u64) -> Result<Option<String>> {
        let rows = self
            .db
            .query(sql, &[Param::Text(node), Param::Int(seq as i64)])
            .map_err(|e| e.context("reading the ledger"))?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// The seq that node's next batch must have: one past the highest applied or
    /// quarantined seq (1 for a node never seen).
    pub fn next_expected(&mut self, node: &str) -> Result<u64> {
        let mut max = 0;
        for table in ["\"_gapsync_ledger\"", "\"_gapsync_quarantine\""] {
            let rows = self
                .db
                .query(
                    &format!("SELECT max(\"seq\") FROM {table} WHERE \"node\" = ?"),
                    &[Param::Text(node)],
                )
                .map_err(|e| e.context("reading the ledger"))?;
            if let Some(v) = rows.first().and_then(|r| r.first()) {
                max = max.max(parse_u64(v));
            }
        }
        Ok(max + 1)
    }

    /// Progress of every node the target has seen.
    pub fn progress(&mut self) -> Result<Vec<NodeProgress>> {
        let q = |e: DbError| e.context("reading the ledger");
        let mut out: Vec<NodeProgress> = self
            .db
            .query(
                "SELECT \"node\", max(\"seq\"), count(*), max(\"applied_at\") FROM \"_gapsync_ledger\" GROUP BY \"node\" ORDER BY \"node\"",
                &[],
            )
            .map_err(q)?
            .into_iter()
            .map(|r| NodeProgress {
                node: r.first().cloned().flatten().unwrap_or_default(),
                last_applied: r.get(1).map_or(0, parse_u64),
                applied_batches: r.get(2).map_or(0, parse_u64),
                last_applied_at: r.get(3).cloned().flatten(),
                quarantined: Vec::new(),
            })
            .collect();
        let rows = self
            .db
            .query(
                r#"SELECT "node", "seq" FROM "_gapsync_quarantine" ORDER BY "node", "seq""#,
                &[],
            )
            .map_err(q)?;
        for r in rows {
            let node = r.first().cloned().flatten().unwrap_or_default();
            let seq = r.get(1).map_or(0, parse_u64);
            match out.iter_mut().find(|p| p.node == node) {
                Some(p) => p.quarantined.push(seq),
                None => out.push(NodeProgress {
                    node,
                    quarantined: vec![seq],
                    ..NodeProgress::default()
                }),
            }
        }
        Ok(out)
    }

    /// Apply one verified batch file in one transaction together with its ledger row.
    ///
    /// `sha256` is the hex content hash from the verified trailer. UPDATE and DELETE
    /// statements with a key must match at least one row: a statement that matches
    /// nothing means the target has diverged from the source, which fails the batch
    /// rather than silently skipping the change.
    pub fn apply(
        &mut self,
        path: &Path,
        node: &str,
        seq: u64,
        sha256: &str,
        limits: &ReadLimits,
    ) -> Result<ApplyOutcome> {
        let input = File::open(path)
            .map_err(|e| ApplyError::unavailable(format!("opening {}: {e}", path.display())))?;
        self.apply_open(input, path, node, seq, sha256, limits)
    }

    /// [`Target::apply`] on a file that is already open (read from its current
    /// position; named by `path`): the caller verifies through the same descriptor,
    /// rewinds it and passes it here, so the bytes verified are the bytes executed. The
    /// content hash of what ran is compared with `sha256` before the commit.
    pub fn apply_open(
        &mut self,
        input: File,
        path: &Path,
        node: &str,
        seq: u64,
        sha256: &str,
        limits: &ReadLimits,
    ) -> Result<ApplyOutcome> {
        self.in_transaction("apply", |t| {
            t.apply_in_txn(input, path, node, seq, sha256, limits)
        })
    }

    /// Runs `f` in one transaction: committed when it applied a batch, rolled back
    /// otherwise (an error, or nothing to do). `what` names it in errors.
    fn in_transaction(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Target) -> Result<ApplyOutcome>,
    ) -> Result<ApplyOutcome> {
        self.db.check_identity()?;
        self.db
            .begin()
            .map_err(|e| e.context(&format!("beginning the {what} transaction")))?;
        match f(self) {
            Ok(ApplyOutcome::Applied { statements }) => {
                self.db
                    .commit()
                    .map_err(|e| e.context(&format!("committing the {what} transaction")))?;
                Ok(ApplyOutcome::Applied { statements })
            }
            other => {
                self.db.rollback();
                other
            }
        }
    }

    fn apply_in_txn(
        &mut self,
        input: File,
        path: &Path,
        node: &str,
        seq: u64,
        sha256: &str,
        limits: &ReadLimits,
    ) -> Result<ApplyOutcome> {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(prev) = self.applied_sha(node, seq)? {
            if prev != sha256 {
                return Err(ApplyError::refused(format!(
                    "seq {seq} of node {node} was already applied with different content \
                     (sha256 {prev}, this file {sha256})"
                )));
            }
            return Ok(ApplyOutcome::AlreadyApplied);
        }
        let mut reader = batch::read_statements(input, path, limits)
            .map_err(|e| ApplyError::refused(format!("reading {}: {e}", path.display())))?;
        // A batch rendered for another dialect would run with other meanings (a
        // PostgreSQL blob literal is text on SQLite): refused before anything runs.
        // `sql92` batches are written for any target.
        let want = self.db.dialect().name();
        let got = reader.header().dialect.as_str();
        if got != want && got != Dialect::Sql92.name() {
            return Err(ApplyError::refused(format!(
                "{file}: rendered for dialect {got}, but this target is {want}: set the sender's [target] dialect = \"{want}\" and resend (resync the tables it touched)"
            )));
        }
        self.db
            .guard(Some(&self.allow))
            .map_err(|e| e.context("installing the statement guard"))?;
        let r = self.apply_statements(&mut reader, &file);
        let off = self.db.guard(None);
        let count = r?;
        off.map_err(|e| e.context("removing the statement guard"))?;
        // What ran must be what was verified: the executed bytes' content hash (checked
        // against the file's own trailer by the reader) must be the verified one.
        let ran = reader.content_sha256().map(hex::encode).unwrap_or_default();
        if ran != sha256 {
            return Err(ApplyError::refused(format!(
                "{file}: the statements executed hash to {ran:?}, not to the verified sha256 {sha256}: the file changed between verification and apply; nothing committed"
            )));
        }
        self.db
            .execute_params(
                "INSERT INTO \"_gapsync_ledger\"(\"node\", \"seq\", \"sha256\", \"file\", \"statements\", \
                 \"applied_at\") VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Param::Text(node),
                    Param::Int(seq as i64),
                    Param::Text(sha256),
                    Param::Text(&file),
                    Param::Int(count as i64),
                    Param::Text(&now()),
                ],
            )
            .map_err(|e| e.context("writing the ledger row"))?;
        Ok(ApplyOutcome::Applied { statements: count })
    }

    /// Check and execute a batch's statements (the guard is on); returns their number.
    /// A statement the allow-list refuses fails the batch deterministically, with its
    /// line number, before anything of it runs.
    fn apply_statements(&mut self, reader: &mut StatementReader, file: &str) -> Result<u64> {
        let dialect = self.db.dialect();
        let mut buf = String::new();
        let refused = |line: u64, why: Refusal| {
            ApplyError::refused(format!("{file} line {line}: statement refused: {why}"))
        };
        // A statement the database refused: (line, error), turned into the batch's
        // error once the executor is gone (the guard's reason needs the backend).
        let mut failed: Option<(u64, DbError)> = None;
        let allow = &self.allow;
        // Where DDL may stand (MySQL/MariaDB commit implicitly at DDL): from the
        // header's kind, checked before each statement runs.
        let kind = reader.header().kind;
        let mut order = crate::allow::BatchOrder::new(dialect, kind);
        let applied = self.db.execute_each(&mut |exec| {
            let mut count = 0u64;
            while let Some(line) = reader
                .next_statement(&mut buf)
                .map_err(|e| ApplyError::refused(format!("{e}")))?
            {
                allow
                    .validate(dialect, &buf)
                    .map_err(|why| refused(line, why))?;
                order.check(&buf).map_err(|why| refused(line, why))?;
                let changed = match exec(&buf) {
                    Ok(n) => n,
                    Err(e) if already_there(dialect, kind, &buf, &e) => 0,
                    Err(e) => {
                        failed = Some((line, e));
                        return Ok(count);
                    }
                };
                if changed == 0 && needs_match(&buf) {
                    return Err(DbError::deterministic(format!(
                        "{file} line {line} matched no row on the target (the target has diverged from the source)"
                    )));
                }
                count += 1;
            }
            Ok(count)
        })?;
        if let Some((line, e)) = failed {
            return Err(match self.db.take_refusal() {
                Some(why) => refused(line, why),
                None => e.context(&format!("{file} line {line}")).into(),
            });
        }
        Ok(applied)
    }

    /// Every quarantined batch, by node and seq.
    pub fn quarantined(&mut self) -> Result<Vec<QuarantineRecord>> {
        let rows = self
            .db
            .query(
                r#"SELECT "node", "seq", "sha256", "file", "reason", "at" FROM "_gapsync_quarantine" ORDER BY "node", "seq""#,
                &[],
            )
            .map_err(|e| e.context("reading the quarantine records"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                QuarantineRecord {
                    node: text(0),
                    seq: r.get(1).map_or(0, parse_u64),
                    sha256: text(2),
                    file: text(3),
                    reason: text(4),
                    at: text(5),
                }
            })
            .collect())
    }

    /// The seqs of `node` applied after `seq` (batches that may have touched the same
    /// rows since `seq` was quarantined).
    pub fn applied_after(&mut self, node: &str, seq: u64) -> Result<Vec<u64>> {
        let rows = self
            .db
            .query(
                r#"SELECT "seq" FROM "_gapsync_ledger" WHERE "node" = ? AND "seq" > ? ORDER BY "seq""#,
                &[Param::Text(node), Param::Int(seq as i64)],
            )
            .map_err(|e| e.context("reading the ledger"))?;
        Ok(rows
            .iter()
            .map(|r| r.first().map_or(0, parse_u64))
            .collect())
    }

    /// `quarantine retry`: applies a quarantined batch (verified by the caller through
    /// `input`, as [`Target::apply_open`]) in its place, exactly once: in ONE transaction
    /// its quarantine record goes, its statements run and its ledger row is written.
    /// A failure leaves it quarantined as it was.
    pub fn retry_quarantined(
        &mut self,
        input: File,
        path: &Path,
        node: &str,
        seq: u64,
        sha256: &str,
        limits: &ReadLimits,
    ) -> Result<ApplyOutcome> {
        self.in_transaction("retry", |t| {
            let removed =
                t.db.execute_params(
                    r#"DELETE FROM "_gapsync_quarantine" WHERE "node" = ? AND "seq" = ?"#,
                    &[Param::Text(node), Param::Int(seq as i64)],
                )
                .map_err(|e| e.context("removing the quarantine record"))?;
            if removed != 1 {
                return Err(ApplyError::refused(format!(
                    "seq {seq} of node {node} is not quarantined on this target"
                )));
            }
            t.apply_in_txn(input, path, node, seq, sha256, limits)
        })
    }

    /// Record a dropped batch so that the node's order moves past it.
    pub fn record_quarantine(
        &mut self,
        node: &str,
        seq: u64,
        sha256: &str,
        file: &str,
        reason: &str,
    ) -> Result<()> {
        if self.quarantine_reason(node, seq)?.is_some() {
            return Ok(());
        }
        self.db
            .execute_params(
                "INSERT INTO \"_gapsync_quarantine\"(\"node\", \"seq\", \"sha256\", \"file\", \"reason\", \
                 \"at\") VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Param::Text(node),
                    Param::Int(seq as i64),
                    Param::Text(sha256),
                    Param::Text(file),
                    Param::Text(reason),
                    Param::Text(&now()),
                ],
            )
            .map_err(|e| e.context("writing the quarantine record"))?;
        Ok(())
    }
}

/// Oracle before 23ai has no `CREATE TABLE IF NOT EXISTS`: a snapshot's plain
/// `CREATE TABLE` (the allow-list takes no other form on Oracle) that fails with
/// ORA-00955 "name is already used by an existing object" found the table there, which
/// is what `IF NOT EXISTS` means on every other target. Oracle rolls back only the
/// failed statement, and the DDL stands first in its batch (`BatchOrder`), so nothing
/// before it is lost; a table of another shape fails on the first INSERT, as it would
/// with `IF NOT EXISTS`.
fn already_there(dialect: Dialect, kind: batch::BatchKind, stmt: &str, e: &DbError) -> bool {
    dialect == Dialect::Oracle
        && kind == batch::BatchKind::Snapshot
        && stmt.starts_with("CREATE TABLE ")
        && e.native == Some(955)
}

fn needs_match(stmt: &str) -> bool {
    stmt.starts_with("UPDATE ") || (stmt.starts_with("DELETE ") && stmt.contains(" WHERE "))
}
