//! Unit tests of apply on SQLite: exactly once with the ledger, atomic batches, the
//! authorizer, transient failures.

#![allow(clippy::unwrap_used)]
use super::*;
use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
use rusqlite::Connection;

fn write(dir: &Path, seq: u64, stmts: &[&str]) -> (PathBuf, String) {
    write_in(dir, seq, stmts, "sqlite")
}

fn write_in(dir: &Path, seq: u64, stmts: &[&str], dialect: &str) -> (PathBuf, String) {
    let h = BatchHeader {
        node: "n1".into(),
        seq,
        created: batch::format_created(chrono::Utc::now()),
        dialect: dialect.into(),
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
        create: false,
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
    assert!(
        matches!(e, ApplyError::Deterministic(ref m) if m.message.contains("different content"))
    );
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
            ApplyError::Deterministic(m) => {
                assert!(m.message.contains(want), "{m:?} lacks {want:?}")
            }
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

/// A batch rendered for another dialect is refused before anything runs (a PostgreSQL
/// blob literal would land as text on SQLite); `sql92` batches apply anywhere.
#[test]
fn a_batch_of_another_dialect_is_refused_before_anything_runs() {
    let (d, mut t) = setup();
    let (p, sha) = write_in(
        d.path(),
        1,
        &[r#"INSERT INTO "t"("id", "v") VALUES (1, 'x');"#],
        "postgres",
    );
    let e = t
        .apply(&p, "n1", 1, &sha, &ReadLimits::default())
        .unwrap_err();
    assert!(
        matches!(&e, ApplyError::Deterministic(m) if m.message.contains("rendered for dialect postgres, but this target is sqlite")),
        "{e}"
    );
    assert!(rows(&d.path().join("t.db")).is_empty());
    assert_eq!(t.applied_sha("n1", 1).unwrap(), None);
    let sub = d.path().join("sql92");
    std::fs::create_dir_all(&sub).unwrap();
    let (p, sha) = write_in(
        &sub,
        1,
        &[r#"INSERT INTO "t"("id", "v") VALUES (1, 'x');"#],
        "sql92",
    );
    t.apply(&p, "n1", 1, &sha, &ReadLimits::default()).unwrap();
    assert_eq!(rows(&d.path().join("t.db")), vec![(1, "x".to_owned())]);
}

/// A missing target file is an error that says so unless `create`; a file deleted or
/// replaced under an open target stops the next apply (transient: the applier reopens,
/// and the reopen refuses to create a new, empty target).
#[test]
fn a_missing_or_replaced_target_is_never_quietly_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("gone.db");
    let opts = |create| TargetOptions {
        busy_timeout: Duration::from_millis(200),
        dialect: None,
        allow: AllowList::default(),
        create,
    };
    let e = Target::open(&DbUrl::Sqlite(db.clone()), &opts(false)).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(e.to_string().contains("[target] create = true"), "{e}");
    assert!(!db.exists(), "nothing created");
    let mut t = Target::open(&DbUrl::Sqlite(db.clone()), &opts(true)).unwrap();
    assert!(db.exists());
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    std::fs::remove_file(&db).unwrap();
    let (p, sha) = write(
        d.path(),
        1,
        &[r#"INSERT INTO "t"("id", "v") VALUES (1, 'x');"#],
    );
    let e = t
        .apply(&p, "n1", 1, &sha, &ReadLimits::default())
        .unwrap_err();
    assert!(
        matches!(&e, ApplyError::Transient(m) if m.message.contains("deleted or replaced")),
        "{e}"
    );
    assert!(Target::open(&DbUrl::Sqlite(db.clone()), &opts(false)).is_err());
    assert!(!db.exists(), "the reopen created nothing");
}

/// A SQLite database that answers as an Oracle 19c target would: dialect `oracle`, a
/// `CREATE TABLE` of an existing table fails with ORA-00955 (native 955), and the
/// ledger's PL/SQL blocks are taken as done (the ledger is created the SQLite way).
#[derive(Debug)]
struct Oracle19(SqliteBackend);

impl Backend for Oracle19 {
    fn begin(&mut self) -> std::result::Result<(), DbError> {
        self.0.begin()
    }
    fn commit(&mut self) -> std::result::Result<(), DbError> {
        self.0.commit()
    }
    fn rollback(&mut self) {
        self.0.rollback()
    }
    fn execute(&mut self, sql: &str) -> std::result::Result<u64, DbError> {
        if sql.starts_with("BEGIN EXECUTE IMMEDIATE") {
            return Ok(0);
        }
        assert!(
            !sql.contains("IF NOT EXISTS"),
            "Oracle 19c cannot run {sql}"
        );
        self.0.execute(sql).map_err(|e| {
            if sql.starts_with("CREATE TABLE ") && e.message.contains("already exists") {
                DbError {
                    native: Some(955),
                    sql_state: Some("42S01".into()),
                    ..DbError::deterministic(
                        "ORA-00955: name is already used by an existing object",
                    )
                }
            } else {
                e
            }
        })
    }
    fn execute_params(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<u64, DbError> {
        self.0.execute_params(sql, params)
    }
    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Vec<Option<String>>>, DbError> {
        self.0.query(sql, params)
    }
    fn dialect(&self) -> Dialect {
        Dialect::Oracle
    }
}

impl ApplyBackend for Oracle19 {}

fn write_snapshot(dir: &Path, seq: u64, stmts: &[&str]) -> (PathBuf, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let h = BatchHeader {
        node: "n1".into(),
        seq,
        created: batch::format_created(chrono::Utc::now()),
        dialect: "oracle".into(),
        kind: BatchKind::Snapshot,
        changes: None,
        statements: stmts.len() as u64,
    };
    let sub = dir.join(format!(
        "s{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&sub).unwrap();
    let mut w = BatchWriter::create(&sub, h, false, 3).unwrap();
    for s in stmts {
        w.push(s).unwrap();
    }
    let done = w.finish().unwrap();
    (done.path, hex::encode(done.content_sha256))
}

/// Oracle before 23ai has no `CREATE TABLE IF NOT EXISTS`: the dialect renders a plain
/// `CREATE TABLE`, and a snapshot whose table is already there (a resync) applies,
/// because ORA-00955 of that one statement means "there", as `IF NOT EXISTS` would.
/// Any other failure of it, the same error elsewhere, or `IF NOT EXISTS` on Oracle
/// still fail the batch.
#[test]
fn oracle_19c_snapshots_create_their_table_once_and_resync_over_it() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("o.db");
    let mut sqlite = SqliteBackend::open(&db, Duration::from_millis(200)).unwrap();
    for ddl in ledger_ddl_for(Dialect::Sqlite) {
        sqlite.execute(&ddl).unwrap();
    }
    let mut t = Target::with_backend(Box::new(Oracle19(sqlite))).unwrap();
    let limits = ReadLimits::default();
    let mut create = String::new();
    Dialect::Oracle
        .render_create_table(
            "T",
            &[("ID", "NUMBER(19)"), ("V", "NVARCHAR2(1000)")],
            &["ID"],
            &mut create,
        )
        .unwrap();
    assert_eq!(
        create,
        r#"CREATE TABLE "T" ("ID" NUMBER(19), "V" NVARCHAR2(1000), PRIMARY KEY ("ID"));"#
    );
    let snap = |rows: &[&str]| {
        let mut v = vec![create.as_str(), r#"DELETE FROM "T";"#];
        v.extend_from_slice(rows);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let rows = || -> Vec<(i64, String)> {
        let c = Connection::open(&db).unwrap();
        let mut s = c
            .prepare(r#"SELECT "ID", "V" FROM "T" ORDER BY 1"#)
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    };
    let first = snap(&[r#"INSERT INTO "T" ("ID", "V") VALUES (1, 'a');"#]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (p, sha) = write_snapshot(d.path(), 1, &first);
    t.apply(&p, "n1", 1, &sha, &limits).unwrap();
    assert_eq!(rows(), vec![(1, "a".to_owned())]);
    // The resync: the table is there.
    let again = snap(&[
        r#"INSERT INTO "T" ("ID", "V") VALUES (1, 'b');"#,
        r#"INSERT INTO "T" ("ID", "V") VALUES (2, 'c');"#,
    ]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let (p, sha) = write_snapshot(d.path(), 2, &again);
    assert_eq!(
        t.apply(&p, "n1", 2, &sha, &limits).unwrap(),
        ApplyOutcome::Applied { statements: 4 }
    );
    assert_eq!(rows(), vec![(1, "b".to_owned()), (2, "c".to_owned())]);
    // `IF NOT EXISTS` is not Oracle's snapshot DDL: refused before anything runs.
    let guarded = create.replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1);
    let (p, sha) = write_snapshot(d.path(), 3, &[&guarded, r#"DELETE FROM "T";"#]);
    let e = t.apply(&p, "n1", 3, &sha, &limits).unwrap_err();
    assert!(
        matches!(&e, ApplyError::Deterministic(m) if m.message.contains("statement refused: CREATE TABLE IF NOT EXISTS (oracle dialect)")),
        "{e}"
    );
    // Another table's CREATE that fails for another reason still fails the batch.
    let (p, sha) = write_snapshot(
        d.path(),
        3,
        &[
            r#"CREATE TABLE "U" ("ID" NUMBER(19), "ID" NUMBER(19));"#,
            r#"DELETE FROM "U";"#,
        ],
    );
    let e = t.apply(&p, "n1", 3, &sha, &limits).unwrap_err();
    assert!(
        matches!(&e, ApplyError::Deterministic(m) if m.native.is_some()),
        "{e:?}"
    );
    assert_eq!(rows(), vec![(1, "b".to_owned()), (2, "c".to_owned())]);
    assert_eq!(t.applied_sha("n1", 3).unwrap(), None);
}
