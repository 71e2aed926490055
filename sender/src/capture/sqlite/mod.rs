//! Capture on a SQLite source: the tracking tables, the triggers (with the REPLACE
//! trigger), pending reads, batch records and snapshot reads ([`SqliteSource`]). The
//! batch bookkeeping's bodies are in `batches.rs`; schema reads and the install plan in
//! `schema.rs`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::config::TableConfig;
use gapsync_common::value::Value;

pub(crate) const BASE_DDL: &str = "
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

/// A SQLite source database with gapsync's capture objects.
#[derive(Debug)]
pub struct SqliteSource {
    pub(crate) conn: Connection,
    pub(crate) layouts: HashMap<i64, Layout>,
    pub(crate) width: (usize, usize),
}

impl SqliteSource {
    /// Opens the plant's database. A missing file is an error naming it: a mistyped
    /// path must not become a new, empty source (then reported as "no such table").
    pub fn open(path: &Path) -> Result<SqliteSource> {
        if std::fs::metadata(path).is_err() {
            return Err(SourceError::Missing(path.display().to_string()));
        }
        let mut flags = rusqlite::OpenFlags::default();
        flags.remove(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
        let conn =
            Connection::open_with_flags(path, flags).map_err(|source| SourceError::Open {
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

    fn query_pending(
        &mut self,
        table: Option<&str>,
        after: i64,
        limit: u64,
        up_to: i64,
    ) -> Result<Vec<Change>> {
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
            " FROM _gapsync_changes WHERE batch IS NULL AND id > ?2 AND id <= ?3 \
             AND (?4 IS NULL OR tbl = ?4) ORDER BY id LIMIT ?1",
        );
        let raw: Vec<(i64, String, String, i64, Vec<Value>)> = {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    after,
                    up_to,
                    table
                ],
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
            Some(k) => key_positions(&cfg.source, &columns, k)?,
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
    fn oldest_pending_at(&mut self) -> Result<Option<String>> {
        self.require_installed()?;
        Ok(self.conn.query_row(
            "SELECT min(at) FROM _gapsync_changes WHERE batch IS NULL",
            [],
            |r| r.get(0),
        )?)
    }

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
        let mut out = self.query_pending(None, after, limit, up_to)?;
        while let Some(last) = out.last().filter(|c| c.op == Op::Displaced) {
            let more = self.query_pending(None, last.id, 16, i64::MAX)?;
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

    fn record_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
        progress: Option<(i64, &SnapshotProgress)>,
    ) -> Result<()> {
        self.write_batches(records, carried, absorbed, progress)
    }

    fn commits_beside_reads(&mut self) -> Result<bool> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        Ok(mode.eq_ignore_ascii_case("wal"))
    }

    fn snapshot_progress(&mut self, req: i64) -> Result<Option<SnapshotProgress>> {
        self.require_installed()?;
        let prefix = SnapshotProgress::prefix(req);
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM _gapsync_state WHERE substr(key, 1, ?2) = ?1")?;
        let rows = stmt.query_map(params![prefix, prefix.len() as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let entries: Vec<(String, i64)> = rows.collect::<std::result::Result<_, _>>()?;
        SnapshotProgress::from_entries(req, &entries)
    }

    fn table_pending(
        &mut self,
        table: &str,
        after: i64,
        up_to: i64,
        limit: u64,
    ) -> Result<Vec<Change>> {
        self.query_pending(Some(table), after, limit, up_to)
    }

    /// Record changes (or a snapshot, `change_id` None) the target's dialect cannot
    /// express; their tracking rows are kept with `batch = 0`, never pending again.
    fn reject(&mut self, rejected: &[(Option<i64>, String, String)]) -> Result<()> {
        self.write_rejected(rejected)
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
        self.read_batches(state)
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

    fn requeue(&mut self, seq: u64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE _gapsync_batches SET state='ready', attempts=0, reason=NULL, updated=?2 \
             WHERE seq=?1 AND state='quarantined'",
            params![seq as i64, now()],
        )?;
        Ok(n == 1)
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
        let prefix = SnapshotProgress::prefix(id);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM _gapsync_requests WHERE id=?1", [id])?;
        tx.execute(
            "DELETE FROM _gapsync_state WHERE substr(key, 1, ?2) = ?1",
            params![prefix, prefix.len() as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Read every row of `spec`'s table in key order (with `after`, those whose key
    /// comes after it), in ONE read transaction that also reads the highest tracking id:
    /// pending changes of the table up to that id are contained in the rows and must
    /// not be shipped again. `each` gets [`SnapshotEvent::Start`] first (with
    /// [`Absorbed::UpTo`] that id), then one [`SnapshotEvent::Row`] per row (streamed:
    /// memory stays bounded).
    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        after: Option<&[i64]>,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<(), SinkError> {
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
        let order: Vec<String> = spec
            .key
            .iter()
            .map(|&i| quote(&spec.columns[i].source))
            .collect();
        let filter = match after {
            Some(k) => format!(" WHERE {}", key_after(&order, k)),
            None => String::new(),
        };
        let count: i64 = tx
            .query_row(
                &format!("SELECT count(*) FROM {}{filter}", quote(&spec.source)),
                [],
                |r| r.get(0),
            )
            .map_err(SourceError::from)?;
        // SQLite has one writer at a time: every change with an id up to max_id was
        // committed, and visible, when the rows were read.
        each(SnapshotEvent::Start {
            rows: count.max(0) as u64,
            absorbed: Absorbed::UpTo(max_id),
        })?;
        let cols: Vec<String> = spec.columns.iter().map(|c| quote(&c.source)).collect();
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {}",
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
        Ok(())
    }
}

mod batches;
mod schema;
pub(crate) use schema::*;
