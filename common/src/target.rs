//! Applying batch files on a SQLite target, exactly once.
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
//! Statements are executed one by one with prepared statements (never `execute_batch` on
//! a whole file, which is quadratic in SQLite), streaming the file from disk.
//!
//! Failures are classified: [`ApplyError::Transient`] (the target is locked, busy,
//! unreachable, out of disk: retry later, never counts as a failure) or
//! [`ApplyError::Deterministic`] (the statement itself fails: counts as a failed apply,
//! with the line number of the statement).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::batch::{self, ReadLimits};

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

/// Whether a SQLite error is worth retrying.
pub fn is_transient(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ReadOnly
                | ErrorCode::NotADatabase
        ),
        _ => false,
    }
}

fn classify(e: rusqlite::Error, context: &str) -> ApplyError {
    if is_transient(&e) {
        ApplyError::Transient(format!("{context}: {e}"))
    } else {
        ApplyError::Deterministic(format!("{context}: {e}"))
    }
}

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

/// A SQLite target database.
#[derive(Debug)]
pub struct SqliteTarget {
    conn: Connection,
}

const LEDGER_DDL: &str = "
CREATE TABLE IF NOT EXISTS _gapsync_ledger(
  node TEXT NOT NULL, seq INTEGER NOT NULL, sha256 TEXT NOT NULL, file TEXT NOT NULL,
  statements INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY(node, seq));
CREATE TABLE IF NOT EXISTS _gapsync_quarantine(
  node TEXT NOT NULL, seq INTEGER NOT NULL, sha256 TEXT NOT NULL, file TEXT NOT NULL,
  reason TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY(node, seq));";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl SqliteTarget {
    /// Open the target and create the ledger tables if needed. `synchronous=FULL`: an
    /// "applied" answer promises durability.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<SqliteTarget> {
        let ctx = format!("target database {}", path.display());
        let conn = Connection::open(path).map_err(|e| classify(e, &ctx))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| classify(e, &ctx))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| classify(e, &ctx))?;
        conn.execute_batch(LEDGER_DDL)
            .map_err(|e| classify(e, &ctx))?;
        Ok(SqliteTarget { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The sha256 recorded for an applied (node, seq), if any.
    pub fn applied_sha(&self, node: &str, seq: u64) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT sha256 FROM _gapsync_ledger WHERE node=?1 AND seq=?2",
                params![node, seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(e, "reading the ledger"))
    }

    /// The reason a (node, seq) was quarantined, if it was.
    pub fn quarantine_reason(&self, node: &str, seq: u64) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT reason FROM _gapsync_quarantine WHERE node=?1 AND seq=?2",
                params![node, seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(e, "reading the quarantine table"))
    }

    /// The seq that node's next batch must have: one past the highest applied or
    /// quarantined seq (1 for a node never seen).
    pub fn next_expected(&self, node: &str) -> Result<u64> {
        let max: i64 = self
            .conn
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM _gapsync_ledger WHERE node=?1), 0), \
                 coalesce((SELECT max(seq) FROM _gapsync_quarantine WHERE node=?1), 0))",
                [node],
                |r| r.get(0),
            )
            .map_err(|e| classify(e, "reading the ledger"))?;
        Ok(max.max(0) as u64 + 1)
    }

    /// Progress of every node the target has seen.
    pub fn progress(&self) -> Result<Vec<NodeProgress>> {
        let mut out: Vec<NodeProgress> = Vec::new();
        let q = |e| classify(e, "reading the ledger");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node, max(seq), count(*) FROM _gapsync_ledger GROUP BY node ORDER BY node",
            )
            .map_err(q)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NodeProgress {
                    node: r.get(0)?,
                    last_applied: r.get::<_, i64>(1)? as u64,
                    applied_batches: r.get::<_, i64>(2)? as u64,
                    quarantined: Vec::new(),
                })
            })
            .map_err(q)?;
        for r in rows {
            out.push(r.map_err(q)?);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT node, seq FROM _gapsync_quarantine ORDER BY node, seq")
            .map_err(q)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(q)?;
        for r in rows {
            let (node, seq) = r.map_err(q)?;
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
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(e, "beginning the apply transaction"))?;
        let done: Option<String> = tx
            .query_row(
                "SELECT sha256 FROM _gapsync_ledger WHERE node=?1 AND seq=?2",
                params![node, seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(e, "reading the ledger"))?;
        if let Some(prev) = done {
            if prev != sha256 {
                return Err(ApplyError::Deterministic(format!(
                    "seq {seq} of node {node} was already applied with different content \
                     (sha256 {prev}, this file {sha256})"
                )));
            }
            return Ok(ApplyOutcome::AlreadyApplied);
        }
        let mut reader = batch::open_statements(path, limits)
            .map_err(|e| ApplyError::Transient(format!("reading {}: {e}", path.display())))?;
        let mut buf = String::new();
        let mut count = 0u64;
        while let Some(line) = reader
            .next_statement(&mut buf)
            .map_err(|e| ApplyError::Deterministic(format!("{e}")))?
        {
            let ctx = || format!("{file} line {line}");
            let mut stmt = tx.prepare(&buf).map_err(|e| classify(e, &ctx()))?;
            let changed = stmt.raw_execute().map_err(|e| classify(e, &ctx()))?;
            if changed == 0 && needs_match(&buf) {
                return Err(ApplyError::Deterministic(format!(
                    "{} matched no row on the target (the target has diverged from the source)",
                    ctx()
                )));
            }
            count += 1;
        }
        tx.execute(
            "INSERT INTO _gapsync_ledger(node, seq, sha256, file, statements, applied_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![node, seq as i64, sha256, file, count as i64, now()],
        )
        .map_err(|e| classify(e, "writing the ledger row"))?;
        tx.commit()
            .map_err(|e| classify(e, "committing the apply transaction"))?;
        Ok(ApplyOutcome::Applied { statements: count })
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
        self.conn
            .execute(
                "INSERT INTO _gapsync_quarantine(node, seq, sha256, file, reason, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(node, seq) DO NOTHING",
                params![node, seq as i64, sha256, file, reason, now()],
            )
            .map_err(|e| classify(e, "writing the quarantine record"))?;
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
    use crate::batch::{BatchHeader, BatchKind, BatchWriter};

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

    fn rows(t: &SqliteTarget) -> Vec<(i64, String)> {
        let mut s = t.conn.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    fn setup() -> (tempfile::TempDir, SqliteTarget) {
        let d = tempfile::tempdir().unwrap();
        let t = SqliteTarget::open(&d.path().join("t.db"), Duration::from_millis(200)).unwrap();
        t.conn
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
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
        assert_eq!(rows(&t).len(), 2);
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
            (&["INSERT INTO t VALUES (1, 'a'); DROP TABLE t;"], "ultiple"),
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
            assert!(rows(&t).is_empty(), "case {i} left rows behind");
            assert!(t.applied_sha("n1", 100 + i as u64).unwrap().is_none());
        }
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
