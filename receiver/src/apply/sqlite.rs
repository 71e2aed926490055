//! The SQLite target: a `rusqlite` connection with `synchronous=FULL` and the
//! authorizer that guards a batch's statements ([`SqliteBackend`]).

use std::path::Path;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::Authorization;

use super::*;
use crate::allow::AllowList;
use gapsync_common::db::{Backend, DbError, Param, sqlite_err};
use gapsync_common::dialect::Dialect;

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
    refusal: Arc<Mutex<Option<Refusal>>>,
    /// The file and its identity (device, inode) when it was opened: a file deleted or
    /// replaced under a running receiver is noticed before the next batch.
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl SqliteBackend {
    /// Opens (and creates, if missing) a SQLite database; for tests and tools. The
    /// receiver opens its target with [`SqliteBackend::open_target`].
    pub fn open(
        path: &Path,
        busy_timeout: Duration,
    ) -> std::result::Result<SqliteBackend, DbError> {
        Self::open_target(path, busy_timeout, true)
    }

    /// Opens the target database file. Unless `create`, a missing file is an error
    /// that says so: a receiver must never quietly start a new, empty target (its
    /// ledger would begin again at seq 1 and the target would diverge).
    pub fn open_target(
        path: &Path,
        busy_timeout: Duration,
        create: bool,
    ) -> std::result::Result<SqliteBackend, DbError> {
        let mut flags = rusqlite::OpenFlags::default();
        if !create {
            if std::fs::symlink_metadata(path).is_err() {
                return Err(DbError::deterministic(format!(
                    "the target database file {} does not exist: restore it (a receiver never starts a new, empty target by itself), or for a first install set [target] create = true",
                    path.display()
                )));
            }
            flags.remove(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
        }
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err)?;
        conn.busy_timeout(busy_timeout).map_err(sqlite_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite_err)?;
        let file = identity(path).map(|id| (path.to_owned(), id));
        Ok(SqliteBackend {
            conn,
            refusal: Arc::default(),
            file,
        })
    }
}

/// The authorizer's decision on one action of a batch statement.
fn authorize(
    allow: &AllowList,
    ctx: &rusqlite::hooks::AuthContext<'_>,
) -> std::result::Result<(), Refusal> {
    use rusqlite::hooks::AuthAction as A;
    if ctx.accessor.is_some() {
        // Inside one of the target's own triggers (a batch cannot create one).
        return Ok(());
    }
    if ctx.database_name.is_some_and(|d| d != "main") {
        return Err(format!(
            "it touches database {:?}",
            ctx.database_name.unwrap_or_default()
        )
        .into());
    }
    let table = |t: &str| {
        if allow.allows(t) {
            Ok(())
        } else {
            Err(format!("table {t:?} is not allowed").into())
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
        other => Err(format!("SQLite authorizer: {other:?} is not allowed").into()),
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
    fn check_identity(&self) -> std::result::Result<(), DbError> {
        let Some((path, id)) = &self.file else {
            return Ok(());
        };
        if identity(path).as_ref() == Some(id) {
            return Ok(());
        }
        Err(DbError::transient(format!(
            "the target database file {} was deleted or replaced since it was opened: nothing is applied to the old one; reopening",
            path.display()
        )))
    }

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
    fn take_refusal(&mut self) -> Option<Refusal> {
        self.refusal.lock().ok().and_then(|mut r| r.take())
    }
}
