//! The receiver's statement allow-list, end to end through `Target::apply`: a corpus of
//! hostile statements against a SQLite target and, with the `odbc` feature, PostgreSQL
//! and MariaDB targets (the test servers: PostgreSQL on 127.0.0.1:5432, trust auth;
//! MariaDB on 127.0.0.1:3306, root without password). Every hostile batch must fail
//! deterministically naming the statement's line, and leave the target unchanged. A
//! server that is not reachable fails the test in CI (`CI=true`) and skips it, with the
//! reason printed, elsewhere.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter, ReadLimits};
use gapsync_common::config::DbUrl;
use gapsync_receiver::allow::AllowList;
use gapsync_receiver::apply::{ApplyError, ApplyOutcome, Target, TargetOptions};

/// `T` stands for the allowed table `"t"`.
const HOSTILE: &[&str] = &[
    "INSERT INTO T VALUES (3, load_extension('x'));",
    "INSERT INTO T VALUES (3, pg_sleep(1));",
    "INSERT INTO T VALUES (3, sleep(1));",
    "INSERT INTO T VALUES (3, upper('a'));",
    "INSERT INTO T SELECT 3, 'x';",
    "INSERT INTO T VALUES (3, (SELECT 'x'));",
    "UPDATE T SET \"v\" = (SELECT 'x') WHERE \"id\" = 1;",
    "UPDATE T SET \"v\" = 'x' WHERE \"id\" = (SELECT 1);",
    "DELETE FROM T WHERE \"id\" IN (SELECT 1);",
    "INSERT INTO T VALUES (3, 'a'); DROP TABLE T;",
    "INSERT INTO T VALUES (3, 'a') /* x */; DELETE FROM T; -- x;",
    "INSERT INTO T VALUES (3 /* , 'a' */, upper('b'));",
    "INSERT INTO T VALUES ('x\\'); DROP TABLE T; -- ');",
    "INSERT INTO T VALUES ('\\', sleep(1)); -- ');",
    "ATTACH DATABASE 'other.db' AS x;",
    "PRAGMA writable_schema = 1;",
    "DROP TABLE T;",
    "GRANT ALL ON T TO PUBLIC;",
    "BEGIN;",
    "COMMIT;",
    "ROLLBACK;",
    "CREATE TRIGGER tr AFTER INSERT ON T BEGIN DELETE FROM T; END;",
    "CREATE INDEX i ON T (\"v\");",
    "CREATE VIEW w AS SELECT 1;",
    "ALTER TABLE T ADD COLUMN x INTEGER;",
    "TRUNCATE TABLE T;",
    "UPDATE T SET \"v\" = 'x';",
    "UPDATE T SET \"v\" = \"v\" WHERE \"id\" = 1;",
    "DELETE FROM T WHERE 1 = 1;",
    "DELETE FROM T WHERE \"id\" = 1 OR 1 = 1;",
    "INSERT INTO \"_gapsync_ledger\" VALUES ('n9', 1, 'x', 'f', 1, 'now');",
    "DELETE FROM \"_gapsync_ledger\";",
    "INSERT INTO \"other\" VALUES (3, 'x');",
    "CREATE TABLE IF NOT EXISTS \"other\" (\"id\" BIGINT, PRIMARY KEY (\"id\"));",
];

/// Comments, which no batch holds: MariaDB and MySQL execute `/*M! .. */` and
/// `/*! .. */` (emptying `t`, writing `secret` or the ledger); every target must refuse
/// each of them, including the ones its own parser would read as harmless comments.
const COMMENTS: &[&str] = &[
    "DELETE FROM T WHERE \"id\" = 16 /*M! OR 1=1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /*M! OR 1=1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /*M!100000 OR 1=1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /*! OR 1=1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /*!50000 OR 1=1 */;",
    "UPDATE T /*M! , \"secret\" */ SET \"v\" = 'x' /*M! , \"s\" = 'pwned' */ WHERE \"id\" = 1;",
    "UPDATE T /*!50000 , \"secret\" */ SET \"v\" = 'x' /*!50000 , \"s\" = 'pwned' */ WHERE \"id\" = 1;",
    "UPDATE T /*M! , \"_gapsync_ledger\" */ SET \"v\" = 'x' /*M! , \"seq\" = 999 */ WHERE \"id\" = 1;",
    "INSERT INTO T (\"id\", \"v\") VALUES (3, 'a') /*M! , (4, 'b') */;",
    "INSERT INTO T (\"id\", \"v\") VALUES (3, /*!50000 'b' OR */ 'a');",
    "DELETE FROM T WHERE \"id\" = 1 /* OR 1=1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /* /* nested */ OR 1 = 1 */;",
    "DELETE FROM T WHERE \"id\" = 1 /* unterminated;",
    "DELETE FROM T WHERE \"id\" = 1 */;",
    "DELETE FROM T WHERE \"id\" = 1 -- x;",
    "DELETE FROM T WHERE \"id\" = 1 --x;",
    "DELETE FROM T WHERE \"id\" = 1 # x;",
    "DELETE /*+ NO_INDEX(t) */ FROM T WHERE \"id\" = 1;",
    "UPDATE T SET \"v\" = 'x' WHERE \"id\" = 1 /*+ hint */;",
    // A backslash before a quote: where the string ends depends on the session.
    "DELETE FROM T WHERE \"v\" = 'keep\\' /*M! OR 1=1 */;",
    "DELETE FROM T WHERE \"v\" = 'x\\'' OR \"id\" = 1 /*M! OR 1=1 */ AND \"v\" = '';",
    "DELETE FROM T WHERE \"v\" = E'x\\'' /*M! OR 1=1 */;",
    // Quote forms some server has and the check does not follow.
    "DELETE FROM T WHERE \"v\" = $$ ' $$ /*M! OR 1=1 */ AND \"id\" = ' $$;",
    "DELETE FROM T WHERE \"v\" = [ ' ] /*M! OR 1=1 */ AND \"id\" = ' ';",
    "DELETE FROM T WHERE \"v\" = ` ' ` /*M! OR 1=1 */ AND \"id\" = ' ';",
];

/// Replace the word `T` (the placeholder) by `"t"`; `T` inside keywords stays.
fn substitute(s: &str) -> String {
    let b = s.as_bytes();
    let word = |j: Option<usize>| {
        j.and_then(|j| b.get(j))
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let mut out = String::new();
    for (i, ch) in s.char_indices() {
        if ch == 'T' && !word(i.checked_sub(1)) && !word(Some(i + 1)) {
            out.push_str("\"t\"");
        } else {
            out.push(ch);
        }
    }
    out
}

fn corpus() -> Vec<String> {
    HOSTILE
        .iter()
        .chain(COMMENTS)
        .map(|s| substitute(s))
        .collect()
}

/// The placeholder is replaced as a word: keywords holding a `T` stay keywords (they
/// once became `INSER"t"`, and the corpus tested the parser's error instead).
#[test]
fn the_corpus_keeps_its_keywords() {
    for s in corpus() {
        for (i, _) in s.match_indices("\"t\"") {
            let b = s.as_bytes();
            let glued = |j: Option<usize>| {
                j.and_then(|j| b.get(j))
                    .is_some_and(u8::is_ascii_alphabetic)
            };
            assert!(!glued(i.checked_sub(1)) && !glued(Some(i + 3)), "{s}");
        }
    }
    assert!(
        corpus()
            .iter()
            .any(|s| s.starts_with("DELETE FROM \"t\" WHERE"))
    );
}

fn write(dir: &Path, seq: u64, stmts: &[&str]) -> (PathBuf, String) {
    write_kind(dir, seq, BatchKind::Changes, stmts)
}

fn write_kind(dir: &Path, seq: u64, kind: BatchKind, stmts: &[&str]) -> (PathBuf, String) {
    let h = BatchHeader {
        node: "n1".into(),
        seq,
        created: batch::format_created(chrono::Utc::now()),
        // Written for any target (the receiver refuses a batch of another dialect than
        // its own); the statements are still checked in the target's dialect.
        dialect: "sql92".into(),
        kind,
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

fn opts() -> TargetOptions {
    TargetOptions {
        busy_timeout: Duration::from_millis(500),
        dialect: None,
        allow: AllowList::new(Some(vec!["t".into(), "other2".into()])),
        create: false,
    }
}

/// Runs every hostile batch (a good INSERT on line 9, the hostile statement on line 10)
/// and checks the refusal and that `state` did not change; then a good batch applies.
fn run_corpus(t: &mut Target, dir: &Path, state: &mut dyn FnMut() -> String) {
    let before = state();
    for (i, bad) in corpus().iter().enumerate() {
        let seq = 1 + i as u64;
        let (p, sha) = write(
            dir,
            seq,
            &["INSERT INTO \"t\" (\"id\", \"v\") VALUES (2, 'good');", bad],
        );
        match t.apply(&p, "n1", seq, &sha, &ReadLimits::default()) {
            Err(ApplyError::Deterministic(m)) => assert!(
                m.message.contains("line 10: statement refused"),
                "{bad}: refused without the line number: {m}"
            ),
            other => panic!("{bad}: expected a deterministic refusal, got {other:?}"),
        }
        assert_eq!(state(), before, "{bad} changed the target");
        assert!(t.applied_sha("n1", seq).unwrap().is_none());
    }
    let seq = 1000;
    let (p, sha) = write(
        dir,
        seq,
        &[
            "INSERT INTO \"t\" (\"id\", \"v\") VALUES (2, 'good');",
            "UPDATE \"t\" SET \"v\" = 'better' WHERE \"id\" = 2;",
            "DELETE FROM \"t\" WHERE \"id\" = 2;",
        ],
    );
    assert_eq!(
        t.apply(&p, "n1", seq, &sha, &ReadLimits::default())
            .unwrap(),
        ApplyOutcome::Applied { statements: 3 }
    );
}

#[test]
fn sqlite_target_refuses_the_hostile_corpus() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'keep');
             CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE secret(s TEXT); INSERT INTO secret VALUES ('keep');",
        )
        .unwrap();
    let mut t = Target::open(&DbUrl::Sqlite(db.clone()), &opts()).unwrap();
    let mut state = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut out = String::new();
        let mut s = c
            .prepare("SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master ORDER BY name")
            .unwrap();
        for r in s.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            out.push_str(&r.unwrap());
            out.push('\n');
        }
        for q in [
            "SELECT id || ':' || v FROM t ORDER BY id",
            "SELECT id || ':' || v FROM other ORDER BY id",
            "SELECT s FROM secret ORDER BY s",
            "SELECT node || ':' || seq FROM _gapsync_ledger ORDER BY 1",
        ] {
            let mut s = c.prepare(q).unwrap();
            for r in s.query_map([], |r| r.get::<_, String>(0)).unwrap() {
                out.push_str(&r.unwrap());
                out.push('\n');
            }
        }
        out
    };
    run_corpus(&mut t, d.path(), &mut state);
}

#[cfg(feature = "odbc")]
mod live {
    use super::*;

    fn client(server: &str, args: &[&str], script: &str) -> Option<String> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let (cmd, base): (&str, &[&str]) = match server {
            "postgres" => (
                "psql",
                &[
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                ],
            ),
            _ => (
                "mariadb",
                &[
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "root",
                    "--batch",
                    "--skip-column-names",
                ],
            ),
        };
        let mut child = Command::new(cmd)
            .args(base)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(script.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn reachable(server: &str) -> bool {
        let ok = client(server, &[], "SELECT 1;\n").is_some();
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{server} is not reachable but CI=true: deploy/ci-deps.sh should have started it"
            );
            eprintln!(
                "skipping: {server} is not reachable on 127.0.0.1 (README.md: database servers for the tests)"
            );
        }
        ok
    }

    /// What runs against a live database: the target, a work directory, the state.
    type Body<'a> = dyn FnMut(&mut Target, &Path, &mut dyn FnMut() -> String) + 'a;

    /// A fresh database `..._{server}_{name}` holding `t` (row 1 'keep'), `other` and
    /// `secret` (row 'keep'); `body` gets a target on it, a work directory and the
    /// database's state as text (tables, indexes, columns, rows, the ledger's size).
    fn live(server: &str, name: &str, body: &mut Body<'_>) {
        if !reachable(server) {
            return;
        }
        let db = format!("gapsync_allow_{}_{server}_{name}", std::process::id());
        let (conn, db_args, setup, tables): (String, Vec<&str>, &str, String) = if server
            == "postgres"
        {
            (
                format!("Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database={db};Uid=postgres;"),
                vec!["-d", db.as_str()],
                "CREATE TABLE t(id BIGINT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'keep');\n\
                 CREATE TABLE other(id BIGINT PRIMARY KEY, v TEXT);\n\
                 CREATE TABLE secret(s TEXT); INSERT INTO secret VALUES ('keep');\n",
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1;\n\
                 SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1;\n\
                 SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name;\n"
                    .to_owned(),
            )
        } else {
            (
                format!(
                    "Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database={db};Uid=root;Pwd=;"
                ),
                vec![db.as_str()],
                "CREATE TABLE t(id BIGINT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'keep');\n\
                 CREATE TABLE other(id BIGINT PRIMARY KEY, v TEXT);\n\
                 CREATE TABLE secret(s TEXT); INSERT INTO secret VALUES ('keep');\n",
                format!(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' ORDER BY 1;\n\
                     SELECT index_name FROM information_schema.statistics WHERE table_schema = '{db}' ORDER BY 1;\n\
                     SELECT column_name FROM information_schema.columns WHERE table_schema = '{db}' ORDER BY table_name, column_name;\n"
                ),
            )
        };
        client(
            server,
            &[],
            &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};\n"),
        )
        .unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client(server, &db_args, setup).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let mut t = Target::open(&DbUrl::Odbc(conn.clone()), &opts()).unwrap();
            let mut state = || {
                let q = format!(
                    "{tables}SELECT id, v FROM t ORDER BY id;\nSELECT id, v FROM other ORDER BY id;\n\
                     SELECT s FROM secret ORDER BY s;\n\
                     SELECT count(*) FROM \"_gapsync_ledger\";\n"
                );
                let q = if server == "postgres" {
                    q
                } else {
                    format!("SET SESSION sql_mode = 'ANSI_QUOTES';\n{q}")
                };
                client(server, &db_args, &q).unwrap()
            };
            body(&mut t, dir.path(), &mut state);
        }));
        let drop = if server == "postgres" {
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE);\n")
        } else {
            format!("DROP DATABASE IF EXISTS {db};\n")
        };
        client(server, &[], &drop);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }

    #[test]
    fn postgres_target_refuses_the_hostile_corpus() {
        live("postgres", "corpus", &mut |t, dir, state| {
            run_corpus(t, dir, state)
        });
    }

    #[test]
    fn mariadb_target_refuses_the_hostile_corpus() {
        live("mariadb", "corpus", &mut |t, dir, state| {
            run_corpus(t, dir, state)
        });
    }

    /// MariaDB commits implicitly at DDL. A failing batch leaves no row behind; a
    /// `CREATE TABLE` anywhere but first in a snapshot batch is refused before it runs
    /// (so before it could commit the rows before it); first in a snapshot batch it
    /// runs, and a failure later still leaves no row behind.
    #[test]
    fn mariadb_batches_fail_whole_and_ddl_stands_only_first_in_a_snapshot() {
        live("mariadb", "ddl", &mut |t, dir, state| {
            let create =
                "CREATE TABLE IF NOT EXISTS \"other2\" (\"id\" BIGINT, PRIMARY KEY (\"id\"));";
            let early = "INSERT INTO \"t\" (\"id\", \"v\") VALUES (2, 'early');";
            let more = "INSERT INTO \"t\" (\"id\", \"v\") VALUES (3, 'more');";
            // Fails on MariaDB: row 1 exists.
            let dup = "INSERT INTO \"t\" (\"id\", \"v\") VALUES (1, 'dup');";
            let limits = ReadLimits::default();
            let before = state();
            // Applies a batch that must fail deterministically; its message.
            let mut fails = |seq: u64, kind: BatchKind, stmts: &[&str]| {
                let (p, sha) = write_kind(dir, seq, kind, stmts);
                let m = match t.apply(&p, "n1", seq, &sha, &limits) {
                    Err(ApplyError::Deterministic(m)) => m.message,
                    other => panic!("seq {seq}: expected a deterministic failure, got {other:?}"),
                };
                assert!(t.applied_sha("n1", seq).unwrap().is_none());
                m
            };
            // A plain failing batch: the rows before the failure are rolled back.
            let m = fails(1, BatchKind::Changes, &[early, more, dup]);
            assert_eq!(state(), before, "a failing batch left rows behind");
            assert!(m.contains("line 11"), "{m}");
            // A late CREATE TABLE: refused before it runs, in either kind of batch;
            // run, it would have committed row 2 before `dup` failed.
            let m = fails(2, BatchKind::Changes, &[early, create, dup]);
            assert_eq!(state(), before, "a late CREATE TABLE committed something");
            assert!(
                m.contains("line 10: statement refused: CREATE TABLE in a changes batch"),
                "{m}"
            );
            let m = fails(3, BatchKind::Snapshot, &[early, create, dup]);
            assert_eq!(state(), before, "a late CREATE TABLE committed something");
            assert!(
                m.contains("line 10: statement refused: CREATE TABLE after the first statement"),
                "{m}"
            );
            let m = fails(4, BatchKind::Changes, &[create, dup]);
            assert_eq!(state(), before, "CREATE TABLE ran in a changes batch");
            assert!(
                m.contains("line 9: statement refused: CREATE TABLE in a changes batch"),
                "{m}"
            );
            // First in a snapshot batch: it runs (its implicit commit holds nothing of
            // the batch); the rows after it still fail whole.
            let m = fails(5, BatchKind::Snapshot, &[create, early, dup]);
            assert!(m.contains("line 11"), "{m}");
            let after = state();
            assert!(after.contains("other2"), "{after}");
            assert!(!after.contains("early"), "rows left behind: {after}");
            assert_eq!(
                after.matches('\n').count(),
                before.matches('\n').count() + 3,
                "only other2 (its name, primary key index and column) is new:\n{before}\n---\n{after}"
            );
            // And the snapshot the sender writes applies.
            let (p, sha) = write_kind(
                dir,
                6,
                BatchKind::Snapshot,
                &[
                    create,
                    "DELETE FROM \"other2\";",
                    "INSERT INTO \"other2\" (\"id\") VALUES (7);",
                ],
            );
            assert_eq!(
                t.apply(&p, "n1", 6, &sha, &limits).unwrap(),
                ApplyOutcome::Applied { statements: 3 }
            );
        });
    }
}
