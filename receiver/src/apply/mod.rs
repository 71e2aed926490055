//! Applying batch files on a target database, exactly once.
//!
//! The target database holds gapsync's two bookkeeping tables:
//!
//! - `_gapsync_ledger(node, seq, sha256, file, statements, applied_at)`, primary key
//!   `(node, seq)`: one row per applied batch, inserted in the SAME transaction as the
//!   batch's statements, so a batch and its ledger row commit together or not at all
//!   (DESIGN.md invariant 2). A batch whose `(node, seq)` is already in the ledger is
//!   answered "applied" without running again.
//! - `_gapsync_quarantine(node, seq, sha256, file, reason, at)`: batches that failed
//!   deterministically twice and were dropped; the per-node order skips them.
//!
//! [`Target`] holds this logic once, over a [`Backend`]: SQLite (rusqlite, here) or ODBC
//! (`crate::odbc`, with the `odbc` feature). Statements are executed one by one (never
//! `execute_batch` on a whole file, which is quadratic in SQLite), streaming the file.
//!
//! Failures are classified: [`ApplyError::Transient`] (the target is locked, busy,
//! unreachable, out of disk: retry later, never counts as a failure) or
//! [`ApplyError::Deterministic`] (the statement itself fails: counts as a failed apply,
//! with the line number of the statement).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::Authorization;

use crate::allow::AllowList;
use gapsync_common::batch::{self, ReadLimits, StatementReader};
use gapsync_common::config::DbUrl;
use gapsync_common::db::{Backend, DbError, Param, sqlite_err};
use gapsync_common::dialect::Dialect;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Retry later: the target is unavailable, locked or full.
    #[error("target unavailable: {0}")]
    Transient(String),
    /// The batch cannot apply: running it again gives the same error.
    #[error("{0}")]
    Deterministic(String),
}

type Result<T> = std::result::Result<T, ApplyError>;

impl From<DbError> for ApplyError {
    fn from(e: DbError) -> ApplyError {
        if e.transient {
            ApplyError::Transient(e.message)
        } else {
            ApplyError::Deterministic(e.message)
        }
    }
}

impl From<ApplyError> for DbError {
    fn from(e: ApplyError) -> DbError {
        match e {
            ApplyError::Transient(message) => DbError {
                transient: true,
                message,
            },
            ApplyError::Deterministic(message) => DbError::deterministic(message),
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
    fn take_refusal(&mut self) -> Option<String> {
        None
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

/// One node's progress as the target records it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeProgress {
    pub node: String,
    pub last_applied: u64,
    pub applied_batches: u64,
    pub quarantined: Vec<u64>,
}

/// Ledger DDL for SQLite, PostgreSQL, MySQL/MariaDB and SQL92 (`CREATE TABLE IF NOT EXISTS`).
pub const LEDGER_DDL: [&str; 2] = [
    r#"CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#,
    r#"CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#,
];

/// The ledger and quarantine tables for a target of dialect `d`, created if absent.
/// SQL Server, Oracle and DM have no `CREATE TABLE IF NOT EXISTS` (Oracle only from 23ai):
/// SQL Server tests `OBJECT_ID`, Oracle and DM run the CREATE in a PL/SQL block that
/// ignores "name already used" (ORA-00955 / DM -2124). Those three have not yet run
/// against a live server; `tests/golden/ledger.sql` pins what they get.
pub fn ledger_ddl_for(d: gapsync_common::dialect::Dialect) -> Vec<String> {
    use gapsync_common::dialect::Dialect;
    // Every name quoted: Oracle refuses unquoted names that start with `_`, and `file`
    // is reserved in Oracle and SQL Server.
    let cols = |text: &str, big: &str, clob: &str| {
        [
            format!(
                r#""_gapsync_ledger"("node" {text}(32) NOT NULL, "seq" {big} NOT NULL, "sha256" {text}(64) NOT NULL, "file" {text}(255) NOT NULL, "statements" {big} NOT NULL, "applied_at" {text}(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#
            ),
            format!(
                r#""_gapsync_quarantine"("node" {text}(32) NOT NULL, "seq" {big} NOT NULL, "sha256" {text}(64) NOT NULL, "file" {text}(255) NOT NULL, "reason" {clob} NOT NULL, "at" {text}(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#
            ),
        ]
    };
    match d {
        Dialect::SqlServer => cols("NVARCHAR", "BIGINT", "NVARCHAR(MAX)")
            .iter()
            .map(|t| {
                let name = t.split("\"(").next().unwrap_or_default().trim_matches('"');
                format!("IF OBJECT_ID(N'{name}', N'U') IS NULL CREATE TABLE {t}")
            })
            .collect(),
        Dialect::Oracle | Dialect::Dm => {
            let (code, clob, big) = if d == Dialect::Oracle {
                (-955, "NCLOB", "NUMBER(19)")
            } else {
                (-2124, "CLOB", "BIGINT")
            };
            cols("VARCHAR2", big, clob)
                .iter()
                .map(|t| {
                    format!(
                        "BEGIN EXECUTE IMMEDIATE 'CREATE TABLE {t}'; EXCEPTION WHEN OTHERS THEN \
                         IF SQLCODE != {code} THEN RAISE; END IF; END;"
                    )
                })
                .collect()
        }
        _ => LEDGER_DDL.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The SQLite backend. `synchronous=FULL`: an "applied" answer promises durability.
///
/// While a batch's statements run, SQLite's authorizer guards the connection
/// ([`Backend::guard`]): it allows only INSERT, UPDATE and DELETE on tables the
/// [`AllowList`] allows, reads of their columns (a `WHERE` needs them), `CREATE TABLE`
/// of an allowed table (and the schema-table write SQLite does for it), and anything
/// done inside the target's own triggers; it denies every function call, `SELECT`
/// (subqueries), `ATTACH`/`DETACH`, `PRAGMA`, transaction control and all other DDL.
/// gapsync's own statements (ledger, transaction control) run with the guard off.
#[derive(Debug)]
pub struct SqliteBackend {
    conn: Connection,
    refusal: Arc<Mutex<Option<String>>>,
}

impl SqliteBackend {
    pub fn open(
        path: &Path,
        busy_timeout: Duration,
    ) -> std::result::Result<SqliteBackend, DbError> {
        let conn = Connection::open(path).map_err(sqlite_err)?;
        conn.busy_timeout(busy_timeout).map_err(sqlite_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite_err)?;
        Ok(SqliteBackend {
            conn,
            refusal: Arc::default(),
        })
    }
}

/// The authorizer's decision on one action of a batch statement.
fn authorize(
    allow: &AllowList,
    ctx: &rusqlite::hooks::AuthContext<'_>,
) -> std::result::Result<(), String> {
    use rusqlite::hooks::AuthAction as A;
    if ctx.accessor.is_some() {
        // Inside one of the target's own triggers (a batch cannot create one).
        return Ok(());
    }
    if ctx.database_name.is_some_and(|d| d != "main") {
        return Err(format!(
            "it touches database {:?}",
            ctx.database_name.unwrap_or_default()
        ));
    }
    let table = |t: &str| {
        if allow.allows(t) {
            Ok(())
        } else {
            Err(format!("table {t:?} is not allowed"))
        }
    };
    match ctx.action {
        A::Insert { table_name } | A::Delete { table_name } => table(table_name),
        A::Update { table_name, .. } | A::Read { table_name, .. } => table(table_name),
        A::CreateTable { table_name } => table(table_name),
        // The index SQLite builds itself for a PRIMARY KEY or UNIQUE constraint of a
        // snapshot's CREATE TABLE (any key but an INTEGER PRIMARY KEY).
        A::CreateIndex {
            index_name,
            table_name,
        } if index_name.starts_with("sqlite_autoindex_") => table(table_name),
        other => Err(format!("SQLite authorizer: {other:?} is not allowed")),
    }
}

fn sqlite_params(params: &[Param<'_>]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(t) => rusqlite::types::Value::Text((*t).to_owned()),
            Param::Int(i) => rusqlite::types::Value::Integer(*i),
        })
        .collect()
}

impl Backend for SqliteBackend {
    fn begin(&mut self) -> std::result::Result<(), DbError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sqlite_err)
    }
    fn commit(&mut self) -> std::result::Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(sqlite_err)
    }
    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
    fn execute(&mut self, sql: &str) -> std::result::Result<u64, DbError> {
        let mut stmt = self.conn.prepare(sql).map_err(sqlite_err)?;
        Ok(stmt.raw_execute().map_err(sqlite_err)? as u64)
    }
    fn execute_params(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<u64, DbError> {
        let vals = sqlite_params(params);
        let mut stmt = self.conn.prepare_cached(sql).map_err(sqlite_err)?;
        Ok(stmt
            .execute(rusqlite::params_from_iter(vals.iter()))
            .map_err(sqlite_err)? as u64)
    }
    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Vec<Option<String>>>, DbError> {
        let vals = sqlite_params(params);
        let mut stmt = self.conn.prepare_cached(sql).map_err(sqlite_err)?;
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(vals.iter()))
            .map_err(sqlite_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sqlite_err)? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                use rusqlite::types::ValueRef;
                row.push(match r.get_ref(i).map_err(sqlite_err)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(v) => Some(v.to_string()),
                    ValueRef::Real(v) => Some(v.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Some(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(row);
        }
        Ok(out)
    }
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

impl ApplyBackend for SqliteBackend {
    fn guard(&mut self, allow: Option<&AllowList>) -> std::result::Result<(), DbError> {
        if let Ok(mut r) = self.refusal.lock() {
            *r = None;
        }
        let Some(allow) = allow else {
            self.conn
                .authorizer(None::<fn(rusqlite::hooks::AuthContext<'_>) -> Authorization>)
                .map_err(sqlite_err)?;
            return Ok(());
        };
        let allow = allow.clone();
        let refusal = Arc::clone(&self.refusal);
        self.conn
            .authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
                // SQLite's schema table is read and written by CREATE TABLE itself; a
                // direct write is refused by SQLite (and by the statement check:
                // `sqlite_*` names), and a read needs a SELECT, which is denied.
                if matches!(
                    ctx.action,
                    rusqlite::hooks::AuthAction::Insert { table_name }
                        | rusqlite::hooks::AuthAction::Update { table_name, .. }
                        | rusqlite::hooks::AuthAction::Read { table_name, .. }
                        if table_name == "sqlite_master" || table_name == "sqlite_schema"
                ) && ctx.accessor.is_none()
                {
                    return Authorization::Allow;
                }
                match authorize(&allow, &ctx) {
                    Ok(()) => Authorization::Allow,
                    Err(why) => {
                        if let Ok(mut r) = refusal.lock() {
                            r.get_or_insert(why);
                        }
                        Authorization::Deny
                    }
                }
            }))
            .map_err(sqlite_err)
    }
    fn take_refusal(&mut self) -> Option<String> {
        self.refusal.lock().ok().and_then(|mut r| r.take())
    }
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
            DbUrl::Sqlite(p) => {
                Box::new(SqliteBackend::open(p, opts.busy_timeout).map_err(|e| e.context(&ctx))?)
            }
            #[cfg(feature = "odbc")]
            DbUrl::Odbc(cs) => Box::new(
                gapsync_common::db::odbc::OdbcBackend::connect(cs, opts.dialect.as_deref())
                    .map_err(|e| e.context(&ctx))?,
            ),
            #[cfg(not(feature = "odbc"))]
            DbUrl::Odbc(_) => {
                return Err(ApplyError::Deterministic(format!(
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
                "SELECT \"node\", max(\"seq\"), count(*) FROM \"_gapsync_ledger\" GROUP BY \"node\" ORDER BY \"node\"",
                &[],
            )
            .map_err(q)?
            .into_iter()
            .map(|r| NodeProgress {
                node: r.first().cloned().flatten().unwrap_or_default(),
                last_applied: r.get(1).map_or(0, parse_u64),
                applied_batches: r.get(2).map_or(0, parse_u64),
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
            .map_err(|e| ApplyError::Transient(format!("opening {}: {e}", path.display())))?;
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
        self.db
            .begin()
            .map_err(|e| e.context("beginning the apply transaction"))?;
        let r = self.apply_in_txn(input, path, node, seq, sha256, limits);
        match r {
            Ok(ApplyOutcome::Applied { statements }) => {
                self.db
                    .commit()
                    .map_err(|e| e.context("committing the apply transaction"))?;
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
                return Err(ApplyError::Deterministic(format!(
                    "seq {seq} of node {node} was already applied with different content \
                     (sha256 {prev}, this file {sha256})"
                )));
            }
            return Ok(ApplyOutcome::AlreadyApplied);
        }
        self.db
            .guard(Some(&self.allow))
            .map_err(|e| e.context("installing the statement guard"))?;
        let mut reader = batch::read_statements(input, path, limits)
            .map_err(|e| ApplyError::Deterministic(format!("reading {}: {e}", path.display())))?;
        let r = self.apply_statements(&mut reader, &file);
        let off = self.db.guard(None);
        let count = r?;
        off.map_err(|e| e.context("removing the statement guard"))?;
        // What ran must be what was verified: the executed bytes' content hash (checked
        // against the file's own trailer by the reader) must be the verified one.
        let ran = reader.content_sha256().map(hex::encode).unwrap_or_default();
        if ran != sha256 {
            return Err(ApplyError::Deterministic(format!(
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
        let refused = |line: u64, why: String| {
            ApplyError::Deterministic(format!("{file} line {line}: statement refused: {why}"))
        };
        // A statement the database refused: (line, error), turned into the batch's
        // error once the executor is gone (the guard's reason needs the backend).
        let mut failed: Option<(u64, DbError)> = None;
        let allow = &self.allow;
        // Where DDL may stand (MySQL/MariaDB commit implicitly at DDL): from the
        // header's kind, checked before each statement runs.
        let mut order = crate::allow::BatchOrder::new(dialect, reader.header().kind);
        let applied = self.db.execute_each(&mut |exec| {
            let mut count = 0u64;
            while let Some(line) = reader
                .next_statement(&mut buf)
                .map_err(|e| ApplyError::Deterministic(format!("{e}")))?
            {
                allow
                    .validate(dialect, &buf)
                    .map_err(|why| refused(line, why))?;
                order.check(&buf).map_err(|why| refused(line, why))?;
                let changed = match exec(&buf) {
                    Ok(n) => n,
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

fn needs_match(stmt: &str) -> bool {
    stmt.starts_with("UPDATE ") || (stmt.starts_with("DELETE ") && stmt.contains(" WHERE "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};

    fn write(dir: &Path, seq: u64, stmts: &[&str]) -> (PathBuf, String) {
        let h = BatchHeader {
            node: "n1".into(),
            seq,
            created: batch::format_created(chrono::Utc::now()),
            dialect: "sqlite".into(),
            kind: BatchKind::Changes,
            changes: Some((1, 1)),
            statements: stmts.len() as u64,
        };
        let mut w = BatchWriter::create(dir, h, false, 3).unwrap();
        for s in stmts {
            w.push(s).unwrap();
        }
        let done = w.finish().unwrap();
        (done.path, hex::encode(done.content_sha256))
    }

    use std::path::PathBuf;

    fn rows(db: &Path) -> Vec<(i64, String)> {
        let c = Connection::open(db).unwrap();
        let mut s = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    fn setup() -> (tempfile::TempDir, Target) {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("t.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let opts = TargetOptions {
            busy_timeout: Duration::from_millis(200),
            dialect: None,
            allow: AllowList::default(),
        };
        let t = Target::open(&DbUrl::Sqlite(db), &opts).unwrap();
        (d, t)
    }

    /// Invariant 2: statements and ledger row commit together; a repeat is not executed.
    #[test]
    fn apply_once_with_ledger_and_skip_repeats() {
        let (d, mut t) = setup();
        let (p, sha) = write(
            d.path(),
            1,
            &[
                "INSERT INTO t VALUES (1, 'a');",
                "INSERT INTO t VALUES (2, 'b');",
            ],
        );
        let lim = ReadLimits::default();
        assert_eq!(
            t.apply(&p, "n1", 1, &sha, &lim).unwrap(),
            ApplyOutcome::Applied { statements: 2 }
        );
        assert_eq!(
            t.apply(&p, "n1", 1, &sha, &lim).unwrap(),
            ApplyOutcome::AlreadyApplied
        );
        assert_eq!(rows(&d.path().join("t.db")).len(), 2);
        assert_eq!(t.next_expected("n1").unwrap(), 2);
        assert_eq!(t.next_expected("other").unwrap(), 1);
        // Same seq, different content: refused, not silently skipped.
        let e = t.apply(&p, "n1", 1, "00", &lim).unwrap_err();
        assert!(matches!(e, ApplyError::Deterministic(ref m) if m.contains("different content")));
    }

    #[test]
    fn a_failing_statement_rolls_back_the_whole_batch() {
        let (d, mut t) = setup();
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "INSERT INTO t VALUES (1, 'a');",
                    "INSERT INTO nope VALUES (1);",
                ],
                "line 10",
            ),
            (
                &[
                    "INSERT INTO t VALUES (1, 'a');",
                    "INSERT INTO t VALUES (1, 'dup');",
                ],
                "UNIQUE",
            ),
            (
                &[
                    "INSERT INTO t VALUES (1, 'a');",
                    "UPDATE t SET v = 'x' WHERE id = 7;",
                ],
                "matched no row",
            ),
            (
                &[
                    "INSERT INTO t VALUES (1, 'a');",
                    "DELETE FROM t WHERE id = 7;",
                ],
                "matched no row",
            ),
            (
                &["INSERT INTO t VALUES (1, 'a'); DROP TABLE t;"],
                "line 9: statement refused: 2 statements",
            ),
        ];
        for (i, (stmts, want)) in cases.iter().enumerate() {
            let (p, sha) = write(d.path(), 100 + i as u64, stmts);
            let e = t
                .apply(&p, "n1", 100 + i as u64, &sha, &ReadLimits::default())
                .unwrap_err();
            match e {
                ApplyError::Deterministic(m) => assert!(m.contains(want), "{m:?} lacks {want:?}"),
                other => panic!("case {i}: expected a deterministic failure, got {other:?}"),
            }
            assert!(
                rows(&d.path().join("t.db")).is_empty(),
                "case {i} left rows behind"
            );
            assert!(t.applied_sha("n1", 100 + i as u64).unwrap().is_none());
        }
    }

    /// SQLite's authorizer on its own (without the statement check) refuses what it can
    /// see: functions, subqueries, ATTACH, PRAGMA, transaction control, other DDL, other
    /// tables and gapsync's own; the ledger works again once the guard is off.
    #[test]
    fn the_sqlite_authorizer_guards_on_its_own() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("t.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE o(id INTEGER);",
            )
            .unwrap();
        let mut b = SqliteBackend::open(&db, Duration::from_millis(200)).unwrap();
        for ddl in ledger_ddl_for(b.dialect()) {
            b.execute(&ddl).unwrap();
        }
        let allow = AllowList::new(Some(vec!["t".into(), "n*".into()]));
        b.guard(Some(&allow)).unwrap();
        for bad in [
            "INSERT INTO t VALUES (1, load_extension('x'))",
            "INSERT INTO t VALUES (1, upper('a'))",
            "INSERT INTO t SELECT 1, 'a'",
            "INSERT INTO t VALUES (1, (SELECT 'a'))",
            "UPDATE t SET v = 'a' WHERE id IN (SELECT id FROM o)",
            "ATTACH DATABASE ':memory:' AS x",
            "PRAGMA writable_schema = 1",
            "BEGIN",
            "DROP TABLE t",
            "CREATE INDEX i ON t(v)",
            "CREATE VIEW w AS SELECT 1",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
            "ALTER TABLE t ADD COLUMN x INTEGER",
            "INSERT INTO o VALUES (1)",
            "DELETE FROM \"_gapsync_ledger\"",
            "CREATE TABLE IF NOT EXISTS other(id INTEGER)",
            "SELECT 1",
        ] {
            assert!(b.execute(bad).is_err(), "{bad} passed the authorizer");
            assert!(b.take_refusal().is_some(), "{bad}: no refusal reason");
        }
        for good in [
            "INSERT INTO t VALUES (1, CAST(X'41' AS TEXT))",
            "UPDATE t SET v = 'b' WHERE id = 1",
            "DELETE FROM t WHERE id = 1",
            "CREATE TABLE IF NOT EXISTS new1(id INTEGER, PRIMARY KEY (id))",
            // Text and composite keys make SQLite build its own index: allowed.
            "CREATE TABLE IF NOT EXISTS new2(a TEXT, b BIGINT, PRIMARY KEY (a, b))",
        ] {
            b.execute(good).unwrap();
        }
        b.guard(None).unwrap();
        b.execute_params(
            "INSERT INTO \"_gapsync_ledger\" VALUES (?, 1, 'x', 'f', 1, 'now')",
            &[Param::Text("n")],
        )
        .unwrap();
    }

    /// Invariant 7: a locked target is a transient failure, not a failed batch.
    #[test]
    fn a_locked_target_is_transient() {
        let (d, mut t) = setup();
        let (p, sha) = write(d.path(), 1, &["INSERT INTO t VALUES (1, 'a');"]);
        let other = Connection::open(d.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let e = t
            .apply(&p, "n1", 1, &sha, &ReadLimits::default())
            .unwrap_err();
        assert!(matches!(e, ApplyError::Transient(_)), "{e:?}");
        other.execute_batch("COMMIT").unwrap();
        assert!(t.apply(&p, "n1", 1, &sha, &ReadLimits::default()).is_ok());
    }
}
