//! End-to-end tests with real database servers as targets (feature `odbc`): a SQLite
//! source, the real `gapsync-sender` rendering in the server's dialect (`postgres`,
//! `mysql`), the real `gapsync-receiver` applying through ODBC to PostgreSQL
//! (127.0.0.1:5432) and MariaDB (127.0.0.1:3306).
//!
//! Every test is data-driven over [`Server::ALL`] ([`for_each_server`]): each server
//! gets a fresh database, and a failure on one server does not hide the other. A server
//! that is not reachable skips the test with a message on stderr, except with `CI=true`,
//! where it fails.
//!
//! Build first: `cargo build --workspace --features odbc`, then
//! `cargo test -p gapsync-tests --features odbc odbc::`.
//!
//! Included from `e2e.rs` (one test binary shares the set-up and its helpers).

use std::time::Instant;

use super::{LINE_FLOW, STATIONS, T, three_table_step};
use gapsync_tests::odbc::{
    Server, TestDb, assert_synced_with, for_each_server, sql_ident, wait_synced,
};
use gapsync_tests::plant::{self, METER_READING};
use gapsync_tests::*;
use rusqlite::types::Value;
use rusqlite::{Connection, params};

// ------------------------------------------------------------------------ helpers

/// A workspace whose receiver applies to `db` through ODBC, and a sender rendering in
/// the server's dialect. Fields drop in order: processes first, the database last.
struct OdbcRig {
    tx: SenderNode,
    rx: ReceiverNode,
    ws: Workspace,
    db: TestDb,
}

impl OdbcRig {
    /// Workspace `name`, a fresh database, the receiver started on it with `rcfg` (its
    /// target URL set to the database unless already set), the sender from `cfg`
    /// (dialect of the server, connected to the receiver) with `schema` on its source.
    /// Capture is NOT installed yet (tests seed rows that must travel in the snapshot).
    fn new(
        server: Server,
        name: &str,
        cfg: SenderConfig,
        mut rcfg: ReceiverConfig,
        schema: &str,
    ) -> OdbcRig {
        let db = server.fresh_database(name);
        if rcfg.target_url.is_none() {
            rcfg.target_url = Some(format!("odbc:{}", db.conn_str()));
        }
        OdbcRig::with_db(server, db, name, cfg, rcfg, schema)
    }

    /// [`OdbcRig::new`] on an existing database (`rcfg` names the target).
    fn with_db(
        server: Server,
        db: TestDb,
        name: &str,
        cfg: SenderConfig,
        rcfg: ReceiverConfig,
        schema: &str,
    ) -> OdbcRig {
        let ws = Workspace::new(&format!("odbc-{name}-{}", server.dialect()));
        let mut rx = ws.receiver(rcfg);
        rx.start();
        let tx = ws.sender(cfg.dialect(server.dialect()).connect(rx.addr()));
        tx.source()
            .execute_batch(schema)
            .unwrap_or_else(|e| panic!("creating the source schema: {e}\n{schema}"));
        OdbcRig { tx, rx, ws, db }
    }

    /// `gapsync-sender once`, which must succeed; on failure the panic message carries
    /// the receiver's quarantine reasons (the database errors) as well.
    fn once(&self) {
        let out = self.tx.exec(&["once"]);
        if !out.success() {
            let reasons: Vec<String> = self
                .rx
                .work_files("quarantine")
                .iter()
                .filter(|f| f.to_string_lossy().ends_with(".reason"))
                .map(|f| std::fs::read_to_string(f).unwrap().trim().to_owned())
                .collect();
            panic!(
                "`gapsync-sender once` failed ({}) on {}: {} batch(es) quarantined by the \
                 receiver, first reason: {}\n  all reasons:\n  {}\n--- sender stderr\n{}",
                out.status,
                self.db.server.title(),
                reasons.len(),
                reasons.first().map_or("(none)", String::as_str),
                reasons.join("\n  "),
                out.stderr
            );
        }
    }

    fn wait_synced(&self, timeout: std::time::Duration) {
        wait_synced(&self.ws, &self.tx, &self.db, timeout);
    }

    fn assert_synced(&self) -> (usize, usize) {
        assert_synced_with(&self.tx, &self.db)
    }

    /// Every batch the sender cut was applied once, in order, never counted failed:
    /// the server's ledger holds exactly 1..=N, nothing is quarantined on either side.
    fn assert_clean_ledger(&self) -> u64 {
        let node = self.tx.cfg.node.as_str();
        let batches = self.tx.batches();
        let n = batches.len() as u64;
        assert!(n > 0, "no batch was cut");
        let seqs = self.db.ledger_seqs(node);
        let want: Vec<u64> = (1..=n).collect();
        assert_eq!(
            seqs,
            want,
            "{} ledger of {node}: every seq 1..={n} exactly once",
            self.db.server.title()
        );
        for b in &batches {
            assert_eq!(
                (b.state.as_str(), b.attempts),
                ("applied", 0),
                "batch {} on {}: {b:?}\n{}",
                b.seq,
                self.db.server.title(),
                self.ws.logs(30)
            );
        }
        assert!(self.db.quarantined_seqs(node).is_empty());
        assert!(self.rx.work_files("quarantine").is_empty());
        assert!(self.tx.work_files("quarantine").is_empty());
        n
    }
}

/// (name, type) pairs as owned strings.
fn types(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ------------------------------------------------------------------------ 1. all operations

/// A SQLite source with three tables (one renamed with renamed columns, Chinese names
/// included; one with a composite text+integer key; one with blobs) -> PostgreSQL /
/// MariaDB through the real binaries: `snapshot` creates the target tables with mapped
/// types and copies the rows that predate `install`; then inserts, updates (primary-key
/// changes, no-op updates) and deletes are shipped with `once`. Every table is compared
/// row by row with typed values, and the server's ledger holds seqs 1..=N once each.
#[test]
fn odbc_all_operations_on_three_tables() {
    for_each_server("odbc_all_operations_on_three_tables", |server| {
        let meter = Table::new("meter_reading")
            .target("plant1_meter_reading")
            .rename("value", "val")
            .rename("at", "读数时间");
        let cfg = SenderConfig::new("plant1")
            .table(meter)
            .table(Table::new("line_flow"))
            .table(Table::new("alarm").target("告警"))
            .max_rows(40);
        let schema = format!("{METER_READING}; {LINE_FLOW}; {}", plant::ALARM);
        let mut rig = OdbcRig::new(server, "ops", cfg, ReceiverConfig::default(), &schema);
        let (tx, db) = (&rig.tx, &rig.db);
        let src = tx.source();
        let mut rng = Rng::new(1);
        plant::seed_meter_readings(&src, 1, 30, &mut rng);
        for (i, st) in STATIONS.iter().enumerate() {
            src.execute(
                "INSERT INTO line_flow VALUES (?1, ?2, ?3, NULL)",
                params![st, i as i64 + 1, 10.5 * i as f64],
            )
            .unwrap();
        }
        src.execute(
            "INSERT INTO alarm VALUES (1, '启动', X'00FF'), (2, NULL, NULL), (3, '', X'')",
            [],
        )
        .unwrap();
        tx.install();
        tx.snapshot(&[]);
        rig.once();
        rig.wait_synced(secs(10));
        let (_, rows) = rig.assert_synced();
        assert_eq!(rows, 30 + STATIONS.len() + 3, "rows moved by the snapshot");

        // The snapshot created the target tables with the mapped types.
        let (int, real, text, key_text, blob) = match server {
            Server::Postgres => ("bigint", "double precision", "text", "text", "bytea"),
            Server::MariaDb => (
                "bigint(20)",
                "double",
                "longtext",
                "varchar(255)",
                "longblob",
            ),
        };
        assert_eq!(
            db.column_types("plant1_meter_reading"),
            types(&[
                ("id", int),
                ("meter", text),
                ("val", real),
                ("quality", int),
                ("读数时间", text)
            ])
        );
        assert_eq!(
            db.column_types("line_flow"),
            types(&[
                ("station", key_text),
                ("line", int),
                ("mw", real),
                ("mvar", real)
            ])
        );
        assert_eq!(
            db.column_types("告警"),
            types(&[("id", int), ("text", text), ("raw", blob)])
        );

        // Random inserts, updates, key changes and deletes on all three tables, then
        // hand-written sequences: a key changed back and forth, a delete and re-insert
        // of the same key, no-op updates (the row matches but no value changes).
        let mut next = 31i64;
        for _ in 0..300 {
            three_table_step(&src, &mut rng, &mut next).unwrap();
        }
        src.execute_batch(
            "BEGIN;
             INSERT INTO meter_reading VALUES (900001, 'tmp', 1.5, 0, 'x');
             UPDATE meter_reading SET value = 2.5 WHERE id = 900001;
             UPDATE meter_reading SET id = 900002 WHERE id = 900001;
             UPDATE meter_reading SET id = 900001 WHERE id = 900002;
             DELETE FROM meter_reading WHERE id = 900001;
             INSERT INTO meter_reading VALUES (900001, 're-inserted', NULL, NULL, NULL);
             UPDATE meter_reading SET id = 900003 WHERE id = 900001;
             INSERT INTO meter_reading VALUES (900001, 'same key again', 3.25, 1, 'y');
             UPDATE meter_reading SET value = value WHERE id = 900001;
             UPDATE line_flow SET station = '东郊变 (新)', line = 99
                 WHERE rowid = (SELECT min(rowid) FROM line_flow);
             UPDATE alarm SET text = text WHERE id = 2;
             COMMIT;",
        )
        .unwrap();
        rig.once();
        rig.wait_synced(secs(10));
        let (tables, rows) = rig.assert_synced();
        assert_eq!(tables, 3);
        assert!(rows > 30, "only {rows} rows at the end");

        // Every statement kind reached every table.
        let archive = tx.work_files("archive");
        let text: String = archive
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        for t in ["plant1_meter_reading", "line_flow", "告警"] {
            for kind in ["INSERT INTO", "UPDATE", "DELETE FROM"] {
                let prefix = format!("{kind} \"{t}\"");
                assert!(
                    text.lines().any(|l| l.starts_with(&prefix)),
                    "no {kind} statement for {t} in the archived batches"
                );
            }
        }
        assert!(
            text.contains("UPDATE \"plant1_meter_reading\" SET \"id\" = 900002"),
            "the primary-key change was not shipped as an UPDATE of the key"
        );
        assert!(
            text.lines()
                .filter(|l| l.starts_with("-- dialect: "))
                .all(|l| l == format!("-- dialect: {}", server.dialect())),
            "batch headers name another dialect than {}",
            server.dialect()
        );
        let n = rig.assert_clean_ledger();
        assert!(n >= 4, "only {n} batches");
        rig.rx.stop();
    });
}

// ------------------------------------------------------------------------ 2. values

/// Value cases for a server: (name, value). Data-driven: add cases here.
fn value_cases(server: Server) -> Vec<(&'static str, Value)> {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let t = |s: &str| Value::Text(s.to_owned());
    let mut v = vec![
        ("null", Value::Null),
        ("empty text", t("")),
        ("space", t(" ")),
        ("single quote", t("it's")),
        ("double quotes", t("say \"hi\"")),
        ("many quotes", t("''''\"\"'")),
        ("backslashes", t("C:\\temp\\new\\")),
        ("backslash escapes", t("a\\nb\\'c\\0\\x41\\u0041")),
        ("newline", t("line1\nline2")),
        ("crlf", t("line1\r\nline2\r\n")),
        ("lone cr", t("a\rb")),
        ("tab", t("a\tb")),
        ("chinese", t("变电站 1号主变压器 高压侧 有功功率")),
        ("emoji 4-byte", t("🚀⚡🔌 𝄞 𠜎")),
        ("mixed", t("中文'引号\"\\\n🚀\r\n")),
        ("text NULL", t("NULL")),
        ("long text", Value::Text("电厂 ABC 'q' \\ 🔥\n".repeat(500))),
        ("zero", Value::Integer(0)),
        ("minus one", Value::Integer(-1)),
        ("i64 min", Value::Integer(i64::MIN)),
        ("i64 max", Value::Integer(i64::MAX)),
        ("i64 min + 1", Value::Integer(i64::MIN + 1)),
        ("0.1", Value::Real(0.1)),
        ("0.1 + 0.2", Value::Real(0.1 + 0.2)),
        ("1e-300", Value::Real(1e-300)),
        ("f64 max", Value::Real(1.7976931348623157e308)),
        ("f64 -max", Value::Real(-1.7976931348623157e308)),
        ("0.0", Value::Real(0.0)),
        ("min normal", Value::Real(2.2250738585072014e-308)),
        ("5e-324 (min subnormal)", Value::Real(5e-324)),
        ("1e16 integral", Value::Real(1e16)),
        ("2^63 as real", Value::Real(9_223_372_036_854_775_808.0)),
        ("pi", Value::Real(std::f64::consts::PI)),
        ("all 256 bytes", Value::Blob(all_bytes)),
        ("empty blob", Value::Blob(Vec::new())),
        ("blob like sql", Value::Blob(b"'); --\n\0\r\\".to_vec())),
        ("1000 zero bytes", Value::Blob(vec![0u8; 1000])),
        // Not cases: text with NUL (PostgreSQL text cannot hold it: the postgres
        // dialect refuses it), NaN (SQLite stores NaN as NULL), and -0.0: a SQLite REAL
        // column stores -0.0 as 0 (an integral real is kept as an integer in the
        // record), so a SQLite source never hands the sender a negative zero in a
        // typed column, and typeless columns cannot be mapped to these servers.
    ];
    match server {
        // PostgreSQL's float8 has the infinities (rendered as the strings 'Infinity',
        // '-Infinity').
        Server::Postgres => v.extend([
            ("+inf", Value::Real(f64::INFINITY)),
            ("-inf", Value::Real(f64::NEG_INFINITY)),
        ]),
        // MariaDB's DOUBLE has no infinities: the mysql dialect refuses them (checked at
        // the end of the test, not as cases).
        Server::MariaDb => {}
    }
    v
}

const VALS: &str = "CREATE TABLE vals(id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB)";
const VALS_SNAP: &str =
    "CREATE TABLE vals_snap(id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB)";
const VALS_TEXT_KEY: &str = "CREATE TABLE vals_text_key(k TEXT PRIMARY KEY, v INTEGER)";

/// Write `v` into row `id` of a vals-like table, in the column of its storage class
/// (the others NULL).
fn put_case(conn: &Connection, table: &str, id: i64, v: &Value, insert: bool) {
    let col = match v {
        Value::Null | Value::Text(_) => "t",
        Value::Integer(_) => "i",
        Value::Real(_) => "r",
        Value::Blob(_) => "b",
    };
    let sql = if insert {
        format!("INSERT INTO {table}(id, {col}) VALUES (?1, ?2)")
    } else {
        format!(
            "UPDATE {table} SET i = NULL, r = NULL, t = NULL, b = NULL, {col} = ?2 WHERE id = ?1"
        )
    };
    assert_eq!(conn.execute(&sql, params![id, v]).unwrap(), 1, "{sql}");
}

/// On the server, the column of each case's class in row `id` holds exactly the case.
fn check_cases(db: &TestDb, table: &str, cases: &[(&str, Value)]) {
    let rows = db.query(&format!("SELECT id, i, r, t, b FROM {table} ORDER BY id"));
    assert_eq!(rows.len(), cases.len(), "{table}: row count");
    for (row, (name, want)) in rows.iter().zip(cases) {
        let got = match want {
            Value::Null => {
                // NULL, not an empty string, in every column.
                assert!(
                    row[1..].iter().all(|v| *v == Value::Null),
                    "{table} case {name:?}: {row:?}"
                );
                continue;
            }
            Value::Integer(_) => &row[1],
            Value::Real(_) => &row[2],
            Value::Text(_) => &row[3],
            Value::Blob(_) => &row[4],
        };
        assert!(
            same_value(got, want),
            "{} {table} id {:?}, case {name:?}: expected {}, found {}",
            db.server.title(),
            row[0],
            describe(want),
            describe(got)
        );
    }
}

/// Awkward values survive the sender's PostgreSQL / MySQL literals, the link and the
/// ODBC apply exactly (type and bits): 64-bit limits, floats (0.1, 1e-300, f64 max,
/// subnormals, infinities on PostgreSQL), empty string vs NULL, quotes, backslashes, CR/LF, Chinese,
/// 4-byte emoji, blobs with every byte value; through the snapshot path, inserts,
/// updates, and as text primary-key values in WHERE clauses. MariaDB: infinities are
/// refused by the mysql dialect, loudly, and never reach the target.
#[test]
fn odbc_values_round_trip_exactly() {
    for_each_server("odbc_values_round_trip_exactly", |server| {
        let cases = value_cases(server);
        let mut cfg = SenderConfig::new("values")
            .table(Table::new("vals"))
            .table(Table::new("vals_snap"))
            .table(Table::new("vals_text_key"))
            .max_rows(25);
        cfg.max_frame = Some(4096);
        let schema = format!("{VALS}; {VALS_SNAP}; {VALS_TEXT_KEY}");
        let mut rig = OdbcRig::new(server, "values", cfg, ReceiverConfig::default(), &schema);
        let (tx, db) = (&rig.tx, &rig.db);
        let src = tx.source();
        for (i, (_, v)) in cases.iter().enumerate() {
            put_case(&src, "vals_snap", i as i64 + 1, v, true);
        }
        tx.install();
        tx.snapshot(&[]);
        rig.once();

        for (i, (_, v)) in cases.iter().enumerate() {
            put_case(&src, "vals", i as i64 + 1, v, true);
        }
        // Text values as keys. MariaDB: a text key is VARCHAR(255) (short ones only),
        // and its collation pads with spaces (documented in common/src/dialect:
        // keys that differ only in trailing spaces collide), so " " is left out there:
        // it would collide with "".
        let keys: Vec<&Value> = cases
            .iter()
            .map(|(_, v)| v)
            .filter(|v| match v {
                Value::Text(t) if server == Server::MariaDb => {
                    t.chars().count() <= 255 && !t.ends_with(' ')
                }
                Value::Text(_) => true,
                _ => false,
            })
            .collect();
        for (i, k) in keys.iter().enumerate() {
            src.execute(
                "INSERT INTO vals_text_key VALUES (?1, ?2)",
                params![k, i as i64],
            )
            .unwrap();
        }
        rig.once();
        rig.wait_synced(secs(10));
        rig.assert_synced();
        check_cases(db, "vals", &cases);
        check_cases(db, "vals_snap", &cases);

        // Updates: row i takes case i+1, so every value also travels in UPDATE .. SET;
        // text keys in WHERE clauses of updates, key changes and deletes.
        let n = cases.len();
        let rotated: Vec<(&str, Value)> = (0..n).map(|i| cases[(i + 1) % n].clone()).collect();
        for table in ["vals", "vals_snap"] {
            for (i, (_, v)) in rotated.iter().enumerate() {
                put_case(&src, table, i as i64 + 1, v, false);
            }
        }
        for (i, k) in keys.iter().enumerate() {
            let sql = match i % 3 {
                0 => "UPDATE vals_text_key SET v = v + 1000 WHERE k = ?1",
                1 => "UPDATE vals_text_key SET k = k || '#改', v = -v WHERE k = ?1",
                _ => "DELETE FROM vals_text_key WHERE k = ?1",
            };
            assert_eq!(src.execute(sql, params![k]).unwrap(), 1, "{sql} {k:?}");
        }
        rig.once();
        rig.wait_synced(secs(10));
        rig.assert_synced();
        check_cases(db, "vals", &rotated);
        check_cases(db, "vals_snap", &rotated);
        rig.assert_clean_ledger();

        if server == Server::MariaDb {
            // Documented (common/src/dialect, sender/src/capture): MySQL/MariaDB floats
            // have no infinity, so the mysql dialect refuses it instead of writing a
            // value the target would change or reject; the change is rejected loudly
            // (an alarm naming the reason, a row in the source's `_gapsync_rejected`,
            // its tracking row kept aside) and the stream goes on without it. Nothing
            // of the row reaches the target.
            src.execute(
                "INSERT INTO vals(id, r) VALUES (1000, ?1)",
                params![f64::INFINITY],
            )
            .unwrap();
            let out = tx.exec_timeout(&["once"], secs(60));
            assert!(
                out.stderr.contains("infinity"),
                "`once` must say that infinity cannot be stored: {}",
                out.stderr
            );
            let rejected: Vec<(String, String)> = src
                .prepare("SELECT tbl, reason FROM _gapsync_rejected")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                matches!(rejected.as_slice(), [(t, why)] if t == "vals" && why.contains("infinity")),
                "the refused change must be recorded with its reason: {rejected:?}"
            );
            assert_eq!(tx.status()["rejected"], 1);
            assert!(
                db.query("SELECT id FROM vals WHERE id = 1000").is_empty(),
                "the infinite row reached MariaDB"
            );
            assert!(db.quarantined_seqs("values").is_empty());

            // A snapshot of the table leaves out that row alone, with its key and the
            // reason, and ships the rest of the table (issue 11: never the whole table).
            let before = db.query("SELECT count(*) FROM vals");
            tx.exec(&["resync", "vals"]).expect_success();
            let out = tx.exec_timeout(&["once"], secs(60));
            assert!(
                out.stderr.contains("snapshot row rejected") && out.stderr.contains("id=1000"),
                "`once` must name the rejected row: {}",
                out.stderr
            );
            rig.wait_synced(secs(10));
            let reasons: Vec<String> = src
                .prepare(
                    "SELECT reason FROM _gapsync_rejected WHERE what = 'snapshot' AND tbl = 'vals'",
                )
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                matches!(reasons.as_slice(), [why] if why.contains("id=1000") && why.contains("infinity")),
                "the snapshot's refused row must be recorded alone, with its key: {reasons:?}"
            );
            assert_eq!(tx.status()["rejected"], 2);
            assert_eq!(db.query("SELECT count(*) FROM vals"), before);
            check_cases(db, "vals", &rotated);
            assert!(db.quarantined_seqs("values").is_empty());
        }
        rig.rx.stop();
    });
}

// ------------------------------------------------------------------------ 3. hostile text

/// Text that a naive literal writer or a driver would turn into SQL.
const HOSTILE: &[&str] = &[
    "x\\'); DROP TABLE t; --",
    "x'); DROP TABLE t; --",
    "'; DELETE FROM t; --",
    "\\'; DELETE FROM t; --",
    "/* */",
    "/* unclosed",
    "*/",
    "\\",
    "\\\\",
    "--",
    "-- DROP TABLE t",
    "#",
    "# DELETE FROM t",
    ";",
    ";;",
    "$$",
    "$$; DROP TABLE t; $$",
    "$tag$ x $tag$",
    "E'\\x41'",
    "E'\\\\x41'",
    "\\x41",
    "\\N",
    "'",
    "''",
    "\\'",
    "\"",
    "`",
    "`t`",
    "?",
    "? ?",
    ":name",
    "@var",
    "%s %d",
    "_%",
    "{fn user()}",
    "{d '2024-01-01'}",
    "{call p()}",
    "{escape '\\'}",
    "ends with a backslash\\",
];

const HOSTILE_KEY: &str = "CREATE TABLE hostile_key(k TEXT PRIMARY KEY, n INTEGER)";
const HOSTILE_SNAP: &str = "CREATE TABLE hostile_snap(id INTEGER PRIMARY KEY, v TEXT)";

/// Hostile text lands as text on both servers, byte for byte, as values (snapshot,
/// insert, update) and as keys (WHERE clauses): the target table `t` still exists, no
/// row was deleted, no other table appeared or vanished.
#[test]
fn odbc_hostile_text_lands_as_text() {
    for_each_server("odbc_hostile_text_lands_as_text", |server| {
        let cfg = SenderConfig::new("hostile")
            .table(Table::new("t"))
            .table(Table::new("hostile_key"))
            .table(Table::new("hostile_snap"));
        let schema = format!("{T}; {HOSTILE_KEY}; {HOSTILE_SNAP}");
        let mut rig = OdbcRig::new(server, "hostile", cfg, ReceiverConfig::default(), &schema);
        let (tx, db) = (&rig.tx, &rig.db);
        let src = tx.source();
        for (i, h) in HOSTILE.iter().enumerate() {
            src.execute(
                "INSERT INTO hostile_snap VALUES (?1, ?2)",
                params![i as i64 + 1, h],
            )
            .unwrap();
        }
        tx.install();
        tx.snapshot(&[]);
        rig.once();
        for (i, h) in HOSTILE.iter().enumerate() {
            let id = i as i64 + 1;
            src.execute("INSERT INTO t VALUES (?1, ?2)", params![id, h])
                .unwrap();
            src.execute("INSERT INTO hostile_key VALUES (?1, ?2)", params![h, id])
                .unwrap();
        }
        rig.once();
        rig.wait_synced(secs(10));
        rig.assert_synced();
        let tables = db.tables();

        // Every string again in UPDATE .. SET and as the old key in WHERE clauses (the
        // key changes to a string that holds the previous one twice).
        src.execute_batch(
            "UPDATE t SET v = v || v;
             UPDATE hostile_key SET k = k || ' ~ ' || k, n = -n;
             UPDATE hostile_snap SET v = '[' || v || ']';",
        )
        .unwrap();
        rig.once();
        rig.wait_synced(secs(10));
        let (_, rows) = rig.assert_synced();
        assert_eq!(rows, 3 * HOSTILE.len());
        assert_eq!(db.tables(), tables, "tables of the target changed");
        let got = db.query("SELECT id, v FROM t ORDER BY id");
        assert_eq!(got.len(), HOSTILE.len(), "rows of t on the target");
        for (row, h) in got.iter().zip(HOSTILE) {
            assert_eq!(
                row[1],
                Value::Text(format!("{h}{h}")),
                "{} t id {:?}",
                server.title(),
                row[0]
            );
        }
        let n = db.query(&format!(
            "SELECT count(*) FROM {}",
            sql_ident("hostile_key")
        ));
        assert_eq!(n, vec![vec![Value::Integer(HOSTILE.len() as i64)]]);
        rig.assert_clean_ledger();
        rig.rx.stop();
    });
}

// ------------------------------------------------------------------------ 4. target outage

/// ARCHITECTURE.md invariant I7 on a real server: the connection between the receiver and the
/// database server (a TCP proxy) is cut for ~5 s while the sender service streams
/// batches (open connections closed, new ones refused), then restored. The cut comes
/// while an apply transaction is open with a statement in flight (the harness holds a
/// lock on the target table at that moment). Batches wait, spooled and unanswered, and
/// apply once the server is back: nothing is counted as a failed apply, nothing is
/// quarantined, and the target equals the source.
#[test]
fn odbc_target_outage_is_transient_not_a_failure() {
    for_each_server("odbc_target_outage_is_transient_not_a_failure", |server| {
        // The receiver reaches the server through the proxy; the tests read the
        // server directly.
        let proxy = TcpProxy::start(&server.addr());
        let db = server.fresh_database("outage");
        let rcfg = ReceiverConfig {
            retry_interval: ms(200),
            result_wait: secs(1),
            target_url: Some(format!("odbc:{}", db.conn_str_via(proxy.port()))),
            ..ReceiverConfig::default()
        };
        let cfg = SenderConfig::new("outage")
            .table(Table::new("t"))
            .max_rows(20);
        let mut rig = OdbcRig::with_db(server, db, "outage", cfg, rcfg, T);
        rig.tx.install();
        rig.tx.snapshot(&[]);
        rig.tx.start();
        rig.wait_synced(secs(20));

        let writer = BackgroundWriter::start(&rig.tx.source_db, 7, ms(10), |c, rng, n| {
            let id = n as i64 + 1;
            c.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![id, format!("行 {id} 'q' \\")],
            )?;
            if id > 10 && rng.chance(30) {
                c.execute(
                    "UPDATE t SET v = v || '+' WHERE id = ?1",
                    [rng.range(1, id - 1)],
                )?;
            }
            if id > 10 && rng.chance(10) {
                c.execute("DELETE FROM t WHERE id = ?1", [rng.range(1, id - 1)])?;
            }
            Ok(())
        });
        let (tx, db, ws) = (&rig.tx, &rig.db, &rig.ws);
        ws.wait_until("batches applied while streaming", secs(20), || {
            db.ledger_seqs("outage").len() >= 4
        });

        // Make the cut hit an apply transaction in the middle: a harness session locks
        // the target table, so the receiver's next batch blocks on its first statement
        // after BEGIN (and after its ledger read); the connection is cut under it.
        // (Taking the lock waits for an apply under way to commit: read the ledger
        // after it.)
        let lock = db.lock_table("t");
        let ledger_at_lock = db.ledger_seqs("outage").len();
        ws.wait_until(
            "the receiver to block on the locked table inside an apply",
            secs(10),
            || db.sessions_waiting_for_a_lock() >= 1,
        );
        proxy.cut();
        let cut_at = Instant::now();
        lock.release();
        let cut_at_cut = tx.progress().last_cut;
        ws.wait_until(
            "batches cut during the outage to wait unanswered",
            secs(10),
            || {
                let p = tx.progress();
                p.last_cut > cut_at_cut + 1 && p.unanswered >= 2
            },
        );
        std::thread::sleep(secs(5).saturating_sub(cut_at.elapsed()));
        let p = tx.progress();
        let ledger_in_cut = db.ledger_seqs("outage").len();
        let spooled = rig
            .rx
            .work_files("spool")
            .into_iter()
            .filter(|f| f.to_string_lossy().ends_with(".sql"))
            .count();
        let accepted_before = proxy.accepted();
        proxy.restore();
        let restored = Instant::now();
        // The batch blocked by the lock was rolled back with its connection: nothing
        // was applied from the lock to the end of the outage.
        assert_eq!(
            ledger_in_cut, ledger_at_lock,
            "batches were applied while the table was locked or the link cut"
        );
        // The receiver saw the connection die under a statement of an apply, and took it
        // for what it is: the target being unavailable.
        let log = std::fs::read_to_string(&rig.rx.log).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("target unavailable") && l.contains(".sql line ")),
            "the cut did not hit a statement of an apply transaction (or it was not taken \
             as transient):\n{}",
            rig.rx.log_tail(30)
        );
        assert!(
            spooled >= 1,
            "a batch must be spooled and wait for the target"
        );
        assert!(p.unanswered >= 2, "{p:?}");
        assert_eq!(p.quarantined, 0, "{p:?}");
        let failed: Vec<BatchRow> = tx
            .batches()
            .into_iter()
            .filter(|b| b.attempts > 0)
            .collect();
        assert!(
            failed.is_empty(),
            "the outage was counted as failed applies: {failed:?}\n{}",
            ws.logs(40)
        );

        ws.wait_until(
            "the batches held by the outage to be applied",
            secs(30),
            || db.ledger_seqs("outage").len() as u64 >= p.last_cut,
        );
        let catch_up = restored.elapsed();
        assert!(
            proxy.accepted() > accepted_before,
            "the receiver did not reconnect through the proxy"
        );
        std::thread::sleep(ms(300));
        let steps = writer.stop();
        rig.wait_synced(secs(30));
        rig.tx.stop();
        rig.assert_synced();
        let n = rig.assert_clean_ledger();
        for (side, audit) in [("sender", rig.tx.audit()), ("receiver", rig.rx.audit())] {
            let bad: Vec<&serde_json::Value> = audit
                .iter()
                .filter(|l| matches!(l["event"].as_str(), Some("failed" | "dropped" | "rejected")))
                .collect();
            assert!(bad.is_empty(), "{side} audit records failures: {bad:?}");
        }
        assert!(steps > 200, "the writer made only {steps} steps");
        eprintln!(
            "{} outage: {n} batches, {steps} writer steps, caught up {catch_up:?} after the restore",
            server.title()
        );
        rig.rx.stop();
    });
}

// ------------------------------------------------------------------------ 5. no-op updates

/// An UPDATE on the source that leaves a row's values as they were (it matches the row
/// but changes nothing: `SET v = v`, or a NULL column "appended to") is still a change
/// the target must accept. The receiver refuses UPDATE/DELETE statements that match no
/// row (the target diverged); a server that reports rows *changed* instead of rows
/// *matched* must not make such an update look like a divergence.
#[test]
fn odbc_update_that_changes_nothing_is_applied() {
    for_each_server("odbc_update_that_changes_nothing_is_applied", |server| {
        let cfg = SenderConfig::new("noop").table(Table::new("t"));
        let mut rig = OdbcRig::new(server, "noop", cfg, ReceiverConfig::default(), T);
        let src = rig.tx.source();
        src.execute_batch("INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c');")
            .unwrap();
        rig.tx.install();
        rig.tx.snapshot(&[]);
        rig.once();
        src.execute_batch(
            "UPDATE t SET v = v WHERE id = 1;
             UPDATE t SET v = v || ' (确认)' WHERE id = 2;
             UPDATE t SET v = 'c' WHERE id = 3;
             INSERT INTO t VALUES (4, 'after the no-op updates');",
        )
        .unwrap();
        assert_eq!(rig.tx.progress().pending, 4);
        rig.once();
        rig.wait_synced(secs(10));
        rig.assert_synced();
        rig.assert_clean_ledger();
        rig.rx.stop();
    });
}

// ------------------------------------------------------------------------ 6. atomic apply

/// ARCHITECTURE.md invariant I2 through ODBC: a batch whose statements run through one statement
/// handle (`Backend::execute_each`) and whose second statement fails on the server (a
/// duplicate key the target alone has) leaves nothing behind: the statement before it is
/// rolled back with the batch, no ledger row; sent twice, it is quarantined on both
/// sides. Once the target is repaired, `resync` heals the table.
#[test]
fn odbc_a_failing_statement_rolls_back_the_whole_batch() {
    for_each_server(
        "odbc_a_failing_statement_rolls_back_the_whole_batch",
        |server| {
            let cfg = SenderConfig::new("atomic").table(Table::new("t"));
            let mut rig = OdbcRig::new(server, "atomic", cfg, ReceiverConfig::default(), T);
            let src = rig.tx.source();
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.once();
            rig.db
                .exec(&["INSERT INTO t VALUES (3, 'the target alone')"]);
            src.execute_batch(
                "BEGIN; INSERT INTO t VALUES (2, 'b'); INSERT INTO t VALUES (3, 'c'); \
             INSERT INTO t VALUES (4, 'd'); COMMIT;",
            )
            .unwrap();
            rig.tx.exec(&["once"]).expect_failure();
            assert_eq!(rig.tx.batch(2).state, "quarantined");
            let ids = rig.db.query("SELECT id FROM t ORDER BY id");
            assert_eq!(
                ids,
                vec![vec![Value::Integer(3)]],
                "{}: the rows before the failing statement must be rolled back",
                server.title()
            );
            assert_eq!(rig.db.ledger_seqs("atomic"), vec![1]);
            assert_eq!(rig.db.quarantined_seqs("atomic"), vec![2]);

            rig.db.exec(&["DELETE FROM t WHERE id = 3"]);
            rig.tx.exec(&["resync", "t"]).expect_success();
            rig.once();
            rig.wait_synced(secs(10));
            rig.assert_synced();
            assert_eq!(rig.db.ledger_seqs("atomic"), vec![1, 3]);
            rig.rx.stop();
        },
    );
}

// ------------------------------------------------------------------------ 7. by hand beside the service

/// `gapsync-receiver apply` of a node's batch files while the running service receives
/// the very same batches over TCP, on a server target (where the database alone would
/// let the two race for each seq's ledger row): they take turns (`state/apply.lock`),
/// so each batch is applied once, neither side counts a failure or quarantines
/// anything, and the target equals the source. On both servers.
#[test]
fn odbc_a_manual_apply_beside_the_service_takes_turns() {
    for_each_server(
        "odbc_a_manual_apply_beside_the_service_takes_turns",
        |server| {
            let cfg = SenderConfig::new("turns").table(Table::new("t"));
            let mut rig = OdbcRig::new(server, "turns", cfg, ReceiverConfig::default(), T);
            let src = rig.tx.source();
            src.execute_batch("INSERT INTO t VALUES (1, 'a');").unwrap();
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.once();
            // Batches cut while the receiver cannot be reached: they wait in the outbox.
            let addr = rig.rx.addr().to_owned();
            rig.tx.cfg.once_connect_attempts = 1;
            rig.tx.set_connect("127.0.0.1:1");
            for i in 0..30 {
                for j in 0..5 {
                    src.execute(
                        "INSERT INTO t VALUES (?1, 'by hand or by link')",
                        [100 + i * 10 + j],
                    )
                    .unwrap();
                }
                src.execute("UPDATE t SET v = v || '+' WHERE id = 1", [])
                    .unwrap();
                rig.tx.exec(&["once"]).expect_failure();
            }
            let copies = rig.rx.dir.join("medium");
            std::fs::create_dir_all(&copies).unwrap();
            let mut files = Vec::new();
            for f in rig.tx.work_files("outbox") {
                let to = copies.join(f.file_name().unwrap());
                std::fs::copy(&f, &to).unwrap();
                files.push(to);
            }
            assert_eq!(files.len(), 30, "{files:?}");
            rig.tx.set_connect(&addr);
            // Both at once: the operator's apply and the sender's once.
            let by_hand = {
                let cfg = rig.rx.config_path.display().to_string();
                let dir = rig.rx.dir.clone();
                let mut args: Vec<String> = vec!["-c".into(), cfg, "apply".into()];
                args.extend(files.iter().map(|f| f.display().to_string()));
                std::thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    run_command(&receiver_bin(), &args, &dir, secs(120))
                })
            };
            rig.once();
            let out = by_hand.join().unwrap();
            assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
            rig.wait_synced(secs(30));
            rig.assert_synced();
            rig.assert_clean_ledger();
            rig.rx.stop();
        },
    );
}
