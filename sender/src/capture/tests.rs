//! Unit tests of capture on SQLite.

mod sqlite {
    #![allow(clippy::unwrap_used)]
    use super::super::*;
    use rusqlite::Connection;
    use std::collections::BTreeMap;
    use std::time::Duration;

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
        Connection::open(dir.path().join("s.db")).unwrap();
        let src = SqliteSource::open(&dir.path().join("s.db")).unwrap();
        src.conn.execute_batch(ddl).unwrap();
        (dir, src)
    }

    /// A configured key is read by column name, in its order; a key column the table
    /// lacks is named in the error.
    #[test]
    fn a_configured_key_maps_to_its_columns_or_names_the_missing_one() {
        let (_d, mut src) = source("CREATE TABLE t(a TEXT, b INTEGER, c REAL)");
        let spec = src.describe(&table("t", Some(vec!["c", "a"]))).unwrap();
        assert_eq!(spec.key, vec![2, 0]);
        let e = src
            .describe(&table("t", Some(vec!["a", "nope"])))
            .unwrap_err();
        assert!(
            matches!(&e, SourceError::NoColumn { table, column, what: "key" } if table == "t" && column == "nope"),
            "{e}"
        );
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
        let lost = gapsync_common::db::DbError::transient("08S01 connection lost");
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
            updated: now(),
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
            updated: now(),
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
            updated: created.into(),
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
    use super::super::*;

    /// SQLite's REPLACE deletes conflicting rows without firing delete triggers; the
    /// `rep` trigger records them (`R`), for the primary key and for unique indexes,
    /// while OR IGNORE / upserts leave `R` rows that are not followed by their INSERT.
    #[test]
    fn replace_records_displaced_rows() {
        let dir = tempfile::tempdir().unwrap();
        rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
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

mod missing {
    #![allow(clippy::unwrap_used)]
    use super::super::*;

    /// A mistyped `sqlite:` path is an error naming it; nothing is created.
    #[test]
    fn a_missing_source_file_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("typo.db");
        let e = SqliteSource::open(&p).err().unwrap();
        assert!(matches!(e, SourceError::Missing(_)), "{e}");
        assert!(e.to_string().contains("typo.db"), "{e}");
        assert!(!p.exists());
    }
}

mod snapshot_progress {
    #![allow(clippy::unwrap_used)]
    use super::super::*;
    use rusqlite::Connection;

    /// The progress a snapshot commits reads back the same, through SQLite's
    /// `_gapsync_state`, beside the next seq and another request's progress; a key that
    /// is not made of integers reads back as "start over"; finishing the request drops
    /// only its own entries.
    #[test]
    fn progress_round_trips_and_goes_with_its_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "{TRACKING}; INSERT INTO _gapsync_state(key, value) VALUES ('next_seq', 7)",
                TRACKING = "CREATE TABLE _gapsync_changes(id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, layout INTEGER NOT NULL, at TEXT, batch INTEGER); \
                 CREATE TABLE _gapsync_batches(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, statements INTEGER NOT NULL, changes INTEGER NOT NULL, first_id INTEGER, last_id INTEGER, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, created TEXT NOT NULL, updated TEXT NOT NULL); \
                 CREATE TABLE _gapsync_state(key TEXT PRIMARY KEY, value); \
                 CREATE TABLE _gapsync_requests(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, tbl TEXT NOT NULL, requested TEXT NOT NULL)"
            ))
            .unwrap();
        let mut src = SqliteSource::open(&path).unwrap();
        let rec = |seq: u64| BatchRecord {
            seq,
            kind: "snapshot".into(),
            file: format!("n-{seq:020}.sql"),
            size: 1,
            sha256: String::new(),
            statements: 1,
            changes: 0,
            first_id: None,
            last_id: None,
            state: BatchState::Ready,
            attempts: 0,
            reason: None,
            created: now(),
            updated: now(),
        };
        let p1 = SnapshotProgress {
            rows: 500,
            total: 1200,
            key: Some(vec![-3, 42]),
            shape: -77,
        };
        let p12 = SnapshotProgress {
            rows: 10,
            total: 10,
            key: None,
            shape: 5,
        };
        src.commit_snapshot_batches(&[rec(7)], None, 1, &p1)
            .unwrap();
        src.commit_snapshot_batches(&[rec(8)], None, 12, &p12)
            .unwrap();
        assert_eq!(src.snapshot_progress(1).unwrap(), Some(p1.clone()));
        assert_eq!(src.snapshot_progress(12).unwrap(), Some(p12));
        assert_eq!(src.snapshot_progress(2).unwrap(), None);
        assert_eq!(src.next_seq().unwrap(), 9);
        src.finish_request(12).unwrap();
        assert_eq!(src.snapshot_progress(12).unwrap(), None);
        assert_eq!(src.snapshot_progress(1).unwrap(), Some(p1));
        assert_eq!(src.next_seq().unwrap(), 9);
    }

    /// Ids become runs of consecutive ids, whatever their order and repeats.
    #[test]
    fn ids_become_runs() {
        assert_eq!(id_runs(&[]), vec![]);
        assert_eq!(
            id_runs(&[7, 3, 4, 5, 9, 4, 10, i64::MAX]),
            vec![(3, 5), (7, 7), (9, 10), (i64::MAX, i64::MAX)]
        );
    }

    /// "After the key" is the row-value comparison spelled out, for one and for
    /// composite keys.
    #[test]
    fn key_after_spells_out_the_row_comparison() {
        assert_eq!(key_after(&["a".into()], &[5]), "(a > 5)");
        assert_eq!(
            key_after(&["a".into(), "b".into()], &[5, -1]),
            "(a > 5) OR (a = 5 AND b > -1)"
        );
        // Checked against SQLite's own row values.
        let c = Connection::open_in_memory().unwrap();
        for (a, b) in [(4, 9), (5, -2), (5, -1), (5, 0), (6, -9)] {
            let spelled: bool = c
                .query_row(
                    &format!(
                        "SELECT {} FROM (SELECT {a} AS a, {b} AS b)",
                        key_after(&["a".into(), "b".into()], &[5, -1])
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let row: bool = c
                .query_row(&format!("SELECT ({a}, {b}) > (5, -1)"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(spelled, row, "({a}, {b})");
        }
    }
}
