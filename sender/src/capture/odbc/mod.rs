//! Change capture on PostgreSQL and MySQL/MariaDB sources through ODBC (feature `odbc`).
//! The DDL and the canonical text per column class come from [`crate::capture::ddl`].
//!
//! The same design as the SQLite source (`crate::capture`), in the server's own SQL:
//!
//! - `_gapsync_changes(id, tbl, op, layout, at, txid, batch, k0.., c0..)`: one row per
//!   change, written by row triggers. Values are stored as TEXT in a canonical form per
//!   column class, so that every type survives exactly (see [`Class`]): floats in their
//!   shortest round-trip text (PostgreSQL 12+ and MariaDB print doubles that way),
//!   decimals as digits, binary as hex, times in ISO form, PostgreSQL `timestamptz` and
//!   MySQL `TIMESTAMP` as UTC instants.
//! - PostgreSQL keeps `txid_current()` with every change: a batch never splits a source
//!   transaction (a read that ends inside one goes on to its last change).
//! - `_gapsync_layouts`, `_gapsync_batches`, `_gapsync_state`, `_gapsync_requests`,
//!   `_gapsync_rejected`: as on SQLite.
//! - Triggers: PostgreSQL one `AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW`
//!   trigger calling a PL/pgSQL function `_gapsync_<table>_fn`; MySQL/MariaDB three
//!   `AFTER` triggers (`_ins`, `_upd`, `_del`). MySQL's `REPLACE` fires delete triggers,
//!   so no REPLACE trigger is needed there.
//!
//! Pending changes are `batch IS NULL` in id order, never a high-water mark: with
//! concurrent writers a transaction may commit after later ids were shipped, and its
//! changes are then simply shipped with the next batch. A snapshot reads its rows and the
//! ids of the table's pending changes in one REPEATABLE READ transaction and marks
//! exactly those ids as contained ([`Absorbed::Ids`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::capture::ddl::{self as capture_ddl, CaptureDialect, Class, DecodeError};
use crate::capture::{
    Absorbed, BatchRecord, BatchState, Change, ChangeSource, ColumnSpec, InstallPlan, Layout, Op,
    SinkError, SnapshotEvent, SnapshotProgress, SnapshotSink, SourceError, TableSpec, from_json,
    id_runs, install_note, key_after, key_positions, now, quote_lit, to_json, widen,
};
use crate::config::TableConfig;
use gapsync_common::db::odbc::OdbcBackend;
use gapsync_common::db::{Backend, DbError, Param};

type Result<T> = std::result::Result<T, SourceError>;

/// A classified database error (transient or not, by SQLSTATE: `gapsync_common::db::odbc::odbc_err`).
fn db(e: DbError) -> SourceError {
    SourceError::from(e)
}

/// The connection string, kept to reconnect; never printed (it may hold a password).
struct ConnStr(String);

impl std::fmt::Debug for ConnStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnStr(..)")
    }
}

/// The latest layout recorded for a table.
#[derive(Debug)]
struct RecordedLayout {
    columns: Vec<String>,
    key: Vec<String>,
    classes: Vec<String>,
}

/// A PostgreSQL or MySQL/MariaDB source.
#[derive(Debug)]
pub struct OdbcSource {
    db: OdbcBackend,
    /// How to connect again ([`ChangeSource::reconnect`]).
    conn_str: ConnStr,
    dialect: Option<String>,
    /// PostgreSQL or MySQL/MariaDB, from the connection.
    cd: CaptureDialect,
    /// Column classes per layout id.
    classes: HashMap<i64, (Layout, Vec<Class>)>,
    /// Number of `k*` and `c*` columns of the tracking table (read once; install resets).
    width: Option<(usize, usize)>,
}

impl OdbcSource {
    /// Connect; `dialect` (`postgres` or `mysql`) overrides the driver's DBMS name.
    pub fn connect(conn_str: &str, dialect: Option<&str>) -> Result<OdbcSource> {
        let db = OdbcBackend::connect(conn_str, dialect).map_err(db)?;
        let cd = match CaptureDialect::try_from(db.dialect()) {
            Ok(cd @ (CaptureDialect::Postgres | CaptureDialect::Mysql)) => cd,
            _ => {
                return Err(SourceError::Unsupported(
                    "[source] url: ODBC sources must be PostgreSQL or MySQL/MariaDB".into(),
                ));
            }
        };
        Ok(OdbcSource {
            db,
            conn_str: ConnStr(conn_str.to_owned()),
            dialect: dialect.map(str::to_owned),
            cd,
            classes: HashMap::new(),
            width: None,
        })
    }

    fn q(&self, name: &str) -> String {
        capture_ddl::quote_ident(self.cd(), name)
    }

    /// The capture dialect of the source (PostgreSQL or MySQL/MariaDB).
    fn cd(&self) -> CaptureDialect {
        self.cd
    }

    fn schema_fn(&self) -> &'static str {
        if self.cd == CaptureDialect::Mysql {
            "database()"
        } else {
            "current_schema()"
        }
    }

    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Option<String>>>> {
        self.db.query(sql, params).map_err(db)
    }

    fn one_int(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        let rows = self.rows(sql, params)?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_deref())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.db.execute_params(sql, params).map_err(db)
    }
}

impl ChangeSource for OdbcSource {
    fn is_installed(&mut self) -> Result<bool> {
        self.has_table("_gapsync_batches")
    }

    fn describe(&mut self, cfg: &TableConfig) -> Result<TableSpec> {
        let sql = format!(
            "SELECT column_name, data_type, numeric_precision, numeric_scale, {} \
             FROM information_schema.columns WHERE table_schema = {} AND table_name = ? \
             ORDER BY ordinal_position",
            if self.cd == CaptureDialect::Mysql {
                "column_type"
            } else {
                "data_type"
            },
            self.schema_fn()
        );
        let cols = self.rows(&sql, &[Param::Text(&cfg.source)])?;
        if cols.is_empty() {
            return Err(SourceError::NoTable(cfg.source.clone()));
        }
        let cd = self.cd();
        let columns: Vec<ColumnSpec> = cols
            .iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                let name = get(0).unwrap_or_default();
                let class = Class::of(cd, &get(1).unwrap_or_default(), &get(4).unwrap_or_default());
                ColumnSpec {
                    target: cfg
                        .rename
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| name.clone()),
                    source: name,
                    decl_type: class.declared(get(2).as_deref(), get(3).as_deref()),
                }
            })
            .collect();
        for from in cfg.rename.keys() {
            if !columns.iter().any(|c| &c.source == from) {
                return Err(SourceError::NoColumn {
                    table: cfg.source.clone(),
                    column: from.clone(),
                    what: "rename",
                });
            }
        }
        let key_names: Vec<String> = match &cfg.key {
            Some(k) => k.clone(),
            None => {
                let sql = format!(
                    "SELECT kcu.column_name FROM information_schema.table_constraints tc \
                     JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name \
                     AND tc.table_schema = kcu.table_schema AND tc.table_name = kcu.table_name \
                     WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = {} AND tc.table_name = ? \
                     ORDER BY kcu.ordinal_position",
                    self.schema_fn()
                );
                let pk: Vec<String> = self
                    .rows(&sql, &[Param::Text(&cfg.source)])?
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().flatten())
                    .collect();
                if pk.is_empty() {
                    return Err(SourceError::NoKey(cfg.source.clone()));
                }
                pk
            }
        };
        let key = key_positions(&cfg.source, &columns, &key_names)?;
        Ok(TableSpec {
            source: cfg.source.clone(),
            target: cfg.target.clone(),
            columns,
            key,
            unique: Vec::new(),
        })
    }

    fn plan_install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        self.plan(specs)
    }

    fn install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        let plan = self.plan(specs)?;
        // DDL commits implicitly on MySQL; each statement is idempotent, so a rerun
        // after an interruption finishes the job.
        for stmt in &plan.ddl {
            self.exec(stmt, &[])?;
        }
        self.classes.clear();
        self.width = None;
        Ok(plan)
    }

    fn uninstall(&mut self, tables: &[String], purge: bool) -> Result<Vec<String>> {
        let mut ddl = Vec::new();
        for t in tables {
            ddl.extend(self.drop_trigger_ddl(t));
        }
        if purge {
            ddl.extend(capture_ddl::purge_ddl(self.cd()));
        }
        for stmt in &ddl {
            self.exec(stmt, &[])?;
        }
        Ok(ddl)
    }

    fn oldest_pending_at(&mut self) -> Result<Option<String>> {
        Ok(self
            .rows(
                "SELECT min(at) FROM _gapsync_changes WHERE batch IS NULL",
                &[],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    fn pending_count(&mut self) -> Result<u64> {
        Ok(self
            .one_int(
                "SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL",
                &[],
            )?
            .max(0) as u64)
    }

    fn pending_at_least(&mut self, n: u64) -> Result<bool> {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 AS x FROM _gapsync_changes WHERE batch IS NULL{}) p",
            Self::limit_clause(n)
        );
        Ok(self.one_int(&sql, &[])?.max(0) as u64 >= n)
    }

    fn last_change_id(&mut self) -> Result<i64> {
        if self.cd == CaptureDialect::Postgres {
            self.one_int("SELECT last_value FROM _gapsync_changes_id_seq", &[])
        } else {
            self.max_change_id()
        }
    }

    fn max_change_id(&mut self) -> Result<i64> {
        self.one_int("SELECT coalesce(max(id), 0) FROM _gapsync_changes", &[])
    }

    fn layout(&mut self, id: i64) -> Result<Layout> {
        Ok(self.layout_classes(id)?.0)
    }

    fn read_pending(&mut self, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        let (kw, cw) = self.width()?;
        let base = self.select_changes(kw, cw);
        let sql = format!(
            "{base} AND id <= ? ORDER BY id{}",
            Self::limit_clause(limit)
        );
        let rows = self.rows(&sql, &[Param::Int(up_to)])?;
        let full = rows.len() as u64 == limit;
        let mut out = self.decode_rows(rows, kw)?;
        // Never split a source transaction: take the rest of the last one.
        if full && let Some((last, Some(txid))) = out.last().map(|(c, t)| (c.id, *t)) {
            let sql = format!("{base} AND txid = ? AND id > ? ORDER BY id");
            let rows = self.rows(&sql, &[Param::Int(txid), Param::Int(last)])?;
            out.extend(self.decode_rows(rows, kw)?);
        }
        Ok(out.into_iter().map(|(c, _)| c).collect())
    }

    fn next_seq(&mut self) -> Result<u64> {
        let v = self.one_int(
            "SELECT value FROM _gapsync_state WHERE name = 'next_seq'",
            &[],
        )?;
        Ok(v.max(1) as u64)
    }

    fn record_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
        progress: Option<(i64, &SnapshotProgress)>,
    ) -> Result<()> {
        self.write_batches(records, carried, absorbed, progress)
    }

    fn snapshot_progress(&mut self, req: i64) -> Result<Option<SnapshotProgress>> {
        let prefix = SnapshotProgress::prefix(req);
        let entries: Vec<(String, i64)> = self
            .rows(
                "SELECT name, value FROM _gapsync_state WHERE name LIKE ?",
                &[Param::Text(&format!("{prefix}%"))],
            )?
            .into_iter()
            .filter_map(|r| {
                let name = r.first().cloned().flatten()?;
                let value = r.get(1).cloned().flatten()?.trim().parse().ok()?;
                Some((name, value))
            })
            .collect();
        SnapshotProgress::from_entries(req, &entries)
    }

    fn table_pending(
        &mut self,
        table: &str,
        after: i64,
        up_to: i64,
        limit: u64,
    ) -> Result<Vec<Change>> {
        let (kw, cw) = self.width()?;
        let base = self.select_changes(kw, cw);
        let sql = format!(
            "{base} AND tbl = ? AND id > ? AND id <= ? ORDER BY id{}",
            Self::limit_clause(limit)
        );
        let rows = self.rows(
            &sql,
            &[Param::Text(table), Param::Int(after), Param::Int(up_to)],
        )?;
        Ok(self
            .decode_rows(rows, kw)?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    fn reject(&mut self, rejected: &[(Option<i64>, String, String)]) -> Result<()> {
        self.in_txn(|s| {
            for (id, tbl, reason) in rejected {
                let what = if id.is_some() { "change" } else { "snapshot" };
                s.exec(
                    "INSERT INTO _gapsync_rejected(change_id, tbl, what, reason, at) VALUES (?, ?, ?, ?, ?)",
                    &[
                        Param::Int(id.unwrap_or(0)),
                        Param::Text(tbl),
                        Param::Text(what),
                        Param::Text(reason),
                        Param::Text(&now()),
                    ],
                )?;
                if let Some(id) = id {
                    s.exec(
                        "UPDATE _gapsync_changes SET batch = 0 WHERE id = ? AND batch IS NULL",
                        &[Param::Int(*id)],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn rejected_count(&mut self) -> Result<u64> {
        if !self.has_table("_gapsync_rejected")? {
            return Ok(0);
        }
        Ok(self
            .one_int("SELECT count(*) FROM _gapsync_rejected", &[])?
            .max(0) as u64)
    }

    fn batches(&mut self, state: Option<BatchState>) -> Result<Vec<BatchRecord>> {
        let mut sql = String::from(
            "SELECT seq, kind, file, size, sha256, statements, changes, first_id, last_id, state, \
             attempts, reason, created, updated FROM _gapsync_batches",
        );
        let mut params = Vec::new();
        if let Some(st) = state {
            sql.push_str(" WHERE state = ?");
            params.push(Param::Text(st.as_str()));
        }
        sql.push_str(" ORDER BY seq");
        let rows = self.rows(&sql, &params)?;
        rows.into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                let int = |i: usize| get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                let st = get(9).unwrap_or_default();
                Ok(BatchRecord {
                    seq: int(0) as u64,
                    kind: get(1).unwrap_or_default(),
                    file: get(2).unwrap_or_default(),
                    size: int(3) as u64,
                    sha256: get(4).unwrap_or_default(),
                    statements: int(5) as u64,
                    changes: int(6) as u64,
                    first_id: Some(int(7)).filter(|v| *v != 0),
                    last_id: Some(int(8)).filter(|v| *v != 0),
                    state: BatchState::parse(&st)?,
                    attempts: int(10) as u32,
                    reason: get(11).filter(|r| !r.is_empty()),
                    created: get(12).unwrap_or_default(),
                    updated: get(13).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn mark_applied(&mut self, seq: u64) -> Result<()> {
        self.in_txn(|s| {
            s.exec(
                "DELETE FROM _gapsync_changes WHERE batch = ?",
                &[Param::Int(seq as i64)],
            )?;
            s.exec(
                "UPDATE _gapsync_batches SET state = 'applied', updated = ? WHERE seq = ?",
                &[Param::Text(&now()), Param::Int(seq as i64)],
            )?;
            Ok(())
        })
    }

    fn record_failure(&mut self, seq: u64, reason: &str) -> Result<u32> {
        self.exec(
            "UPDATE _gapsync_batches SET attempts = attempts + 1, reason = ?, updated = ? WHERE seq = ?",
            &[Param::Text(reason), Param::Text(&now()), Param::Int(seq as i64)],
        )?;
        Ok(self
            .one_int(
                "SELECT attempts FROM _gapsync_batches WHERE seq = ?",
                &[Param::Int(seq as i64)],
            )?
            .max(0) as u32)
    }

    fn mark_quarantined(&mut self, seq: u64, reason: &str) -> Result<()> {
        self.exec(
            "UPDATE _gapsync_batches SET state = 'quarantined', reason = ?, updated = ? WHERE seq = ?",
            &[Param::Text(reason), Param::Text(&now()), Param::Int(seq as i64)],
        )?;
        Ok(())
    }

    fn requeue(&mut self, seq: u64) -> Result<bool> {
        let n = self.exec(
            "UPDATE _gapsync_batches SET state = 'ready', attempts = 0, reason = NULL, updated = ? \
             WHERE seq = ? AND state = 'quarantined'",
            &[Param::Text(&now()), Param::Int(seq as i64)],
        )?;
        Ok(n == 1)
    }

    /// Delete old 'applied' records, never the highest applied seq (see the trait). Two
    /// statements in one transaction: MySQL cannot delete from a table its subquery reads.
    /// `created` is `VARCHAR(40)` in one fixed format, so text order is time order.
    fn prune_applied(&mut self, before: &str) -> Result<u64> {
        self.in_txn(|s| {
            let newest = s.one_int(
                "SELECT coalesce(max(seq), 0) FROM _gapsync_batches WHERE state = 'applied'",
                &[],
            )?;
            s.exec(
                "DELETE FROM _gapsync_batches WHERE state = 'applied' AND created < ? AND seq < ?",
                &[Param::Text(before), Param::Int(newest)],
            )
        })
    }

    fn queue_snapshot(&mut self, table: &str) -> Result<()> {
        self.exec(
            "INSERT INTO _gapsync_requests(kind, tbl, requested) VALUES ('snapshot', ?, ?)",
            &[Param::Text(table), Param::Text(&now())],
        )?;
        Ok(())
    }

    fn snapshot_requests(&mut self) -> Result<Vec<(i64, String)>> {
        Ok(self
            .rows(
                "SELECT id, tbl FROM _gapsync_requests WHERE kind = 'snapshot' ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let id = r
                    .first()
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (id, r.get(1).cloned().flatten().unwrap_or_default())
            })
            .collect())
    }

    fn finish_request(&mut self, id: i64) -> Result<()> {
        let prefix = SnapshotProgress::prefix(id);
        self.in_txn(|s| {
            s.exec(
                "DELETE FROM _gapsync_requests WHERE id = ?",
                &[Param::Int(id)],
            )?;
            s.exec(
                "DELETE FROM _gapsync_state WHERE name LIKE ?",
                &[Param::Text(&format!("{prefix}%"))],
            )?;
            Ok(())
        })
    }

    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        after: Option<&[i64]>,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<(), SinkError> {
        let classes = self.classes_of(spec);
        let cd = self.cd();
        let t = self.q(&spec.source);
        let exprs: Vec<String> = spec
            .columns
            .iter()
            .zip(&classes)
            .map(|(c, cl)| cl.expr(self.cd(), &format!("{t}.{}", self.q(&c.source))))
            .collect();
        // Qualified: PostgreSQL names a cast's output after its column, and an ORDER BY
        // name takes the output column first (text order: 1, 10, 100, 2, ...).
        let order: Vec<String> = spec
            .key
            .iter()
            .map(|&i| format!("{t}.{}", self.q(&spec.columns[i].source)))
            .collect();
        let filter = match after {
            Some(k) => format!(" WHERE {}", key_after(&order, k)),
            None => String::new(),
        };
        // NULLs first, as SQLite and MySQL sort them: a key with a NULL is never
        // resumed after (its rows would otherwise come after an integer key saved as
        // the point to resume from, and be skipped).
        let sort: Vec<String> = order
            .iter()
            .map(|c| match cd {
                CaptureDialect::Postgres => format!("{c} NULLS FIRST"),
                _ => c.clone(),
            })
            .collect();
        self.db.begin().map_err(db)?;
        let r = (|| -> std::result::Result<(), SinkError> {
            // One consistent snapshot for the ids and the rows.
            self.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", &[])?;
            let ids: Vec<i64> = self
                .rows(
                    "SELECT id FROM _gapsync_changes WHERE tbl = ? AND batch IS NULL ORDER BY id",
                    &[Param::Text(&spec.source)],
                )?
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten()?.parse().ok())
                .collect();
            let rows = self
                .one_int(&format!("SELECT count(*) FROM {t}{filter}"), &[])?
                .max(0) as u64;
            each(SnapshotEvent::Start {
                rows,
                absorbed: Absorbed::Ids(ids),
            })?;
            let sql = format!(
                "SELECT {} FROM {t}{filter} ORDER BY {}",
                exprs.join(", "),
                sort.join(", ")
            );
            let mut vals = Vec::with_capacity(classes.len());
            self.db.query_each(&sql, &[], &mut |r| {
                vals.clear();
                for (v, cl) in r.iter().zip(&classes) {
                    vals.push(
                        cl.decode(cd, v.as_deref())
                            .map_err(|e| -> SinkError { e.into() })?,
                    );
                }
                each(SnapshotEvent::Row(&vals))
            })?;
            Ok(())
        })();
        match r {
            Ok(a) => {
                self.db.commit().map_err(db)?;
                Ok(a)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }

    /// Open a new connection (the old one is dropped): after a transient failure the
    /// connection may be dead (server restarted, network cut). Fails, transient, while
    /// the server stays unreachable; the caches (layouts, tracking width) stay valid.
    fn reconnect(&mut self) -> Result<()> {
        let fresh = OdbcBackend::connect(&self.conn_str.0, self.dialect.as_deref()).map_err(db)?;
        if CaptureDialect::try_from(fresh.dialect()) != Ok(self.cd) {
            return Err(SourceError::Unsupported(
                "[source] url: the database behind the connection changed its kind".into(),
            ));
        }
        self.db = fresh;
        Ok(())
    }
}

impl OdbcSource {
    /// The tracking table's key and value column counts (read once).
    fn width(&mut self) -> Result<(usize, usize)> {
        if let Some(w) = self.width {
            return Ok(w);
        }
        let w = self.tracking_width()?;
        self.width = Some(w);
        Ok(w)
    }

    /// [`ChangeSource::record_batches`] on a server source.
    fn write_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
        progress: Option<(i64, &SnapshotProgress)>,
    ) -> Result<()> {
        self.in_txn(|s| {
            for (i, r) in records.iter().enumerate() {
                s.exec(
                    "INSERT INTO _gapsync_batches(seq, kind, file, size, sha256, statements, changes, \
                     first_id, last_id, state, attempts, reason, created, updated) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        Param::Int(r.seq as i64),
                        Param::Text(&r.kind),
                        Param::Text(&r.file),
                        Param::Int(r.size as i64),
                        Param::Text(&r.sha256),
                        Param::Int(r.statements as i64),
                        Param::Int(r.changes as i64),
                        Param::Int(r.first_id.unwrap_or(0)),
                        Param::Int(r.last_id.unwrap_or(0)),
                        Param::Text(r.state.as_str()),
                        Param::Int(i64::from(r.attempts)),
                        Param::Text(r.reason.as_deref().unwrap_or("")),
                        Param::Text(&r.created),
                        Param::Text(&r.created),
                    ],
                )?;
                for id in carried.get(i).map(Vec::as_slice).unwrap_or_default() {
                    let n = s.exec(
                        "UPDATE _gapsync_changes SET batch = ? WHERE id = ? AND batch IS NULL",
                        &[Param::Int(r.seq as i64), Param::Int(*id)],
                    )?;
                    if n != 1 {
                        return Err(SourceError::Corrupt(format!(
                            "change {id} vanished or was already in a batch"
                        )));
                    }
                }
            }
            if let (Some((table, absorbed)), Some(last)) = (absorbed, records.last()) {
                let seq = last.seq as i64;
                let n = match absorbed {
                    Absorbed::UpTo(max_id) => s.exec(
                        "UPDATE _gapsync_changes SET batch = ? WHERE tbl = ? AND id <= ? AND batch IS NULL",
                        &[Param::Int(seq), Param::Text(table), Param::Int(*max_id)],
                    )?,
                    Absorbed::Ids(ids) => {
                        let mut n = 0;
                        for (lo, hi) in id_runs(ids) {
                            n += s.exec(
                                "UPDATE _gapsync_changes SET batch = ? WHERE id BETWEEN ? AND ? AND batch IS NULL",
                                &[Param::Int(seq), Param::Int(lo), Param::Int(hi)],
                            )?;
                        }
                        n
                    }
                };
                s.exec(
                    "UPDATE _gapsync_batches SET changes = changes + ? WHERE seq = ?",
                    &[Param::Int(n as i64), Param::Int(seq)],
                )?;
            }
            if let Some(last) = records.last() {
                let next = last.seq as i64 + 1;
                if s.exec(
                    "UPDATE _gapsync_state SET value = ? WHERE name = 'next_seq'",
                    &[Param::Int(next)],
                )? == 0
                {
                    s.exec(
                        "INSERT INTO _gapsync_state(name, value) VALUES ('next_seq', ?)",
                        &[Param::Int(next)],
                    )?;
                }
            }
            if let Some((req, p)) = progress {
                let prefix = SnapshotProgress::prefix(req);
                s.exec(
                    "DELETE FROM _gapsync_state WHERE name LIKE ?",
                    &[Param::Text(&format!("{prefix}%"))],
                )?;
                for (name, value) in p.entries(req) {
                    s.exec(
                        "INSERT INTO _gapsync_state(name, value) VALUES (?, ?)",
                        &[Param::Text(&name), Param::Int(value)],
                    )?;
                }
            }
            Ok(())
        })
    }
}

mod schema;
