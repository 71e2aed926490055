//! Golden files of the change-capture DDL (`gapsync_sender::capture::ddl`), checked in
//! under `tests/capture_golden/<dialect>.sql` and compared byte for byte.
//!
//! Each file holds, for one capture dialect and a fixed table (a composite key and one
//! column of every column class, renamed on the target: renames do not matter for
//! capture): the base DDL, the width DDL for the table's `k*`/`c*` columns, the trigger
//! DDL, the trigger drop and the purge. Every statement is on one line, followed by the
//! terminator of the vendor's shell: `;` (psql, mariadb), a `GO` line (sqlcmd), a `/` line
//! (SQL*Plus, disql), so a file runs as it is.
//!
//! The PostgreSQL and MySQL files also run live (`psql`, `mariadb`) in a fresh database:
//! install twice (idempotence), fire the triggers with an INSERT, a key-changing UPDATE
//! and a DELETE, decode the tracking rows, drop the triggers and purge. SQL Server, Oracle
//! and DM files have not run against a server.
//!
//! After an intended change, regenerate and review the diff line by line:
//!
//! ```text
//! GAPSYNC_BLESS=1 cargo test -p gapsync-sender --test capture_golden
//! ```
#![allow(clippy::unwrap_used)]

#[path = "../../common/tests/support/golden.rs"]
mod golden_support;
#[path = "../../common/tests/support/live.rs"]
mod live;

use live::{live_server, run_client};

use std::fmt::Write as _;
use std::path::PathBuf;

use gapsync_common::value::Value;
use gapsync_sender::capture::ddl::{
    CaptureDialect, Class, base_ddl, drop_trigger_ddl, purge_ddl, trigger_ddl, width_ddl,
};
use gapsync_sender::capture::{ColumnSpec, TableSpec};

const LAYOUT: i64 = 7;

/// `(source column, target column, class)`; the key is the first two.
const COLUMNS: &[(&str, &str, Class)] = &[
    ("id", "id", Class::Int),
    ("name", "bay_name", Class::Text),
    ("value", "value", Class::Float),
    ("amount", "amount", Class::Decimal),
    ("raw", "raw", Class::Binary),
    ("day", "day", Class::Date),
    ("tod", "tod", Class::Time),
    ("Read At", "read_at", Class::Timestamp),
    ("at_utc", "at_utc", Class::TimestampTz),
    ("flag", "flag", Class::Bool),
];

fn spec() -> TableSpec {
    TableSpec {
        source: "plant_main".into(),
        target: "mis_plant".into(),
        columns: COLUMNS
            .iter()
            .map(|(s, t, c)| ColumnSpec {
                source: (*s).into(),
                target: (*t).into(),
                decl_type: c.declared(Some("12"), Some("4")),
            })
            .collect(),
        key: vec![0, 1],
        unique: vec![vec![0, 1]],
    }
}

fn classes() -> Vec<Class> {
    COLUMNS.iter().map(|c| c.2).collect()
}

fn terminated(d: CaptureDialect, stmt: &str) -> String {
    match d {
        CaptureDialect::Postgres | CaptureDialect::Mysql => format!("{stmt};\n"),
        CaptureDialect::SqlServer => format!("{stmt}\nGO\n"),
        CaptureDialect::Oracle | CaptureDialect::Dm => format!("{stmt}\n/\n"),
    }
}

fn render(d: CaptureDialect) -> String {
    let spec = spec();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "-- gapsync capture golden file: dialect {}, rendered by gapsync_sender::capture::ddl.",
        d.name()
    );
    text.push_str(
        "-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-sender --test capture_golden\n",
    );
    let _ = writeln!(
        text,
        "-- Table {} -> {}, key (id, name), layout {LAYOUT}; columns: {}",
        spec.source,
        spec.target,
        COLUMNS
            .iter()
            .map(|(s, _, c)| format!("{s} {}", c.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut section = |title: &str, stmts: Vec<String>| {
        let _ = writeln!(text, "\n-- {title}");
        for s in stmts {
            text.push_str(&terminated(d, &s));
        }
    };
    section("base_ddl", base_ddl(d));
    let mut width: Vec<String> = (0..spec.key.len()).map(|i| width_ddl(d, 'k', i)).collect();
    width.extend((0..spec.columns.len()).map(|i| width_ddl(d, 'c', i)));
    section("width_ddl", width);
    section("trigger_ddl", trigger_ddl(d, &spec, &classes(), LAYOUT));
    section("drop_trigger_ddl", drop_trigger_ddl(d, &spec.source));
    section("purge_ddl", purge_ddl(d));
    text
}

fn golden_path(d: CaptureDialect) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/capture_golden")
        .join(format!("{}.sql", d.name()))
}

#[test]
fn every_capture_dialect_matches_its_golden_file() {
    let mut failures = Vec::new();
    for d in CaptureDialect::ALL {
        let text = render(d);
        for l in text.lines() {
            assert!(
                !l.contains(['\r', '\0']),
                "{}: CR or NUL in {l:?}",
                d.name()
            );
        }
        if let Some(f) = golden_support::check(&golden_path(d), &text) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "capture DDL differs from the golden files (if intended, rerun with GAPSYNC_BLESS=1 \
         and review the diff):\n{}",
        failures.join("\n")
    );
}

/// Every class appears in the table, so every expression is in every file.
#[test]
fn the_table_has_every_class() {
    for c in Class::ALL {
        assert!(classes().contains(&c), "{c:?} missing");
    }
}

// ------------------------------------------------------------------ live runs
//
// As in common/tests/golden.rs, through `psql` and `mariadb` (common/tests/support/live.rs).

/// The statements of section `title` of the golden file of `d` (with terminators).
fn section(d: CaptureDialect, title: &str) -> String {
    let text = std::fs::read_to_string(golden_path(d)).unwrap();
    let start = format!("-- {title}\n");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no section {title}"))
        + start.len();
    let rest = &text[at..];
    let end = rest.find("\n-- ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// The row the live tests insert, as the decoded values of its columns.
fn row(id: i64, value: f64) -> Vec<Value> {
    vec![
        Value::Integer(id),
        Value::Text("1号主变 it's".into()),
        Value::Real(value),
        Value::Decimal("1234.5600".into()),
        Value::Blob(vec![0xDE, 0xAD, 0x00]),
        Value::Date("2026-01-02".into()),
        Value::Time("12:34:56.5".into()),
        Value::Timestamp("2026-01-02 03:04:05.25".into()),
        Value::TimestampTz("2026-01-02 03:04:05+00:00".into()),
        Value::Bool(true),
    ]
}

/// Install (twice), fire, read back, drop, purge. `create` makes `plant_main` with
/// native types; `dml` fires the triggers, `after_drop` must not; `client` runs a
/// script and returns tab-separated rows.
fn live_capture(
    d: CaptureDialect,
    prelude: &str,
    create: &str,
    dml: &str,
    after_drop: &str,
    client: impl Fn(&str) -> String,
) {
    let mut cols = vec!["op".to_owned(), "k0".into(), "k1".into()];
    cols.extend((0..COLUMNS.len()).map(|i| format!("c{i}")));
    let select = format!(
        "SELECT {} FROM _gapsync_changes ORDER BY id;\n",
        cols.iter()
            .map(|c| format!("COALESCE({c}, 'NULL')"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut script = String::from(prelude);
    script.push_str(create);
    for s in [
        "base_ddl",
        "width_ddl",
        "trigger_ddl",
        "base_ddl",
        "trigger_ddl",
    ] {
        script.push_str(&section(d, s));
    }
    script.push_str(dml);
    script.push_str(&select);
    script.push_str(&section(d, "drop_trigger_ddl"));
    script.push_str(after_drop);
    script.push_str("SELECT 'after drop', COUNT(*) FROM _gapsync_changes;\n");
    script.push_str(&section(d, "purge_ddl"));
    script.push_str(&format!(
        "SELECT 'tables left', COUNT(*) FROM information_schema.tables WHERE table_name LIKE '\\_gapsync\\_%' AND table_schema = {};\n",
        if d == CaptureDialect::Mysql { "database()" } else { "current_schema()" }
    ));
    let out = client(&script);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(lines.len(), 6, "{}: output:\n{out}", d.name());
    let decode = |class: Class, t: &str| class.decode(d, (t != "NULL").then_some(t)).unwrap();
    let check = |line: &[&str], op: &str, key: Option<(i64, &str)>, row: Option<Vec<Value>>| {
        assert_eq!(line[0], op, "{}: {line:?}", d.name());
        let k0 = decode(Class::Int, line[1]);
        let k1 = decode(Class::Text, line[2]);
        match key {
            Some((id, name)) => {
                assert!(k0.same(&Value::Integer(id)), "{}: k0 {k0}", d.name());
                assert!(k1.same(&Value::Text(name.into())), "{}: k1 {k1}", d.name());
            }
            None => assert!(k0.same(&Value::Null) && k1.same(&Value::Null)),
        }
        for (i, (_, _, class)) in COLUMNS.iter().enumerate() {
            let got = decode(*class, line[3 + i]);
            let want = row.as_ref().map_or(Value::Null, |r| r[i].clone());
            assert!(
                got.same(&want),
                "{}: {op} column {i}: got {got}, want {want}",
                d.name()
            );
        }
    };
    let name = "1号主变 it's";
    check(&lines[0], "I", None, Some(row(1, 0.1)));
    check(&lines[1], "I", None, Some(row(5, 0.1)));
    // The key-changing UPDATE: old key, new row.
    check(&lines[2], "U", Some((1, name)), Some(row(2, -2.5e-300)));
    check(&lines[3], "D", Some((2, name)), None);
    assert_eq!(lines[4], ["after drop", "4"], "{}", d.name());
    assert_eq!(lines[5], ["tables left", "0"], "{}", d.name());
}

const DML: &str = "INSERT INTO plant_main VALUES (1, '1号主变 it''s', 0.1, 1234.5600, {raw}, '2026-01-02', '12:34:56.5', '2026-01-02 03:04:05.25', {tz}, TRUE);\n\
     INSERT INTO plant_main VALUES (5, '1号主变 it''s', 0.1, 1234.5600, {raw}, '2026-01-02', '12:34:56.5', '2026-01-02 03:04:05.25', {tz}, TRUE);\n\
     UPDATE plant_main SET id = 2, value = -2.5e-300 WHERE id = 1;\n\
     DELETE FROM plant_main WHERE id = 2;\n";

#[test]
fn live_postgres_capture_golden() {
    if !live_server(
        "PostgreSQL on 127.0.0.1:5432",
        "psql",
        &["-X", "-h", "127.0.0.1", "-U", "postgres", "-c", "SELECT 1"],
    ) {
        return;
    }
    let db = format!("gapsync_capture_{}", std::process::id());
    let admin = |sql: &str| {
        run_client(
            "psql",
            &[
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            "",
        )
    };
    admin(&format!("DROP DATABASE IF EXISTS {db}"));
    admin(&format!(
        "CREATE DATABASE {db} ENCODING 'UTF8' TEMPLATE template0"
    ));
    let result = std::panic::catch_unwind(|| {
        live_capture(
            CaptureDialect::Postgres,
            "SET client_min_messages = warning;\nSET client_encoding = 'UTF8';\nSET TIME ZONE 'Asia/Shanghai';\n",
            "CREATE TABLE plant_main (id BIGINT, name TEXT, value DOUBLE PRECISION, amount NUMERIC(12,4), \
             raw BYTEA, day DATE, tod TIME(6), \"Read At\" TIMESTAMP(6), at_utc TIMESTAMPTZ, flag BOOLEAN, \
             PRIMARY KEY (id, name));\n",
            &DML.replace("{raw}", "'\\xdead00'")
                .replace("{tz}", "'2026-01-02 11:04:05+08:00'"),
            "INSERT INTO plant_main (id, name) VALUES (9, 'x');\n",
            |script| {
                run_client(
                    "psql",
                    &[
                        "-X",
                        "-q",
                        "-A",
                        "-t",
                        "-F",
                        "\t",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        &db,
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-f",
                        "-",
                    ],
                    script,
                )
            },
        );
    });
    admin(&format!("DROP DATABASE IF EXISTS {db}"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn live_mysql_capture_golden() {
    if !live_server(
        "MariaDB on 127.0.0.1:3306",
        "mariadb",
        &["-h", "127.0.0.1", "-u", "root", "-e", "SELECT 1"],
    ) {
        return;
    }
    let db = format!("gapsync_capture_{}", std::process::id());
    let args = [
        "-h",
        "127.0.0.1",
        "-u",
        "root",
        "--batch",
        "--skip-column-names",
    ];
    run_client(
        "mariadb",
        &args,
        &format!("DROP DATABASE IF EXISTS {db};\nCREATE DATABASE {db} CHARACTER SET utf8mb4;\n"),
    );
    let result = std::panic::catch_unwind(|| {
        live_capture(
            CaptureDialect::Mysql,
            &format!("USE {db};\nSET NAMES utf8mb4;\nSET time_zone = '+08:00';\n"),
            "CREATE TABLE plant_main (id BIGINT, name VARCHAR(100), value DOUBLE, amount DECIMAL(12,4), \
             raw VARBINARY(100), day DATE, tod TIME(6), `Read At` DATETIME(6), at_utc TIMESTAMP(6) NULL, \
             flag BOOLEAN, PRIMARY KEY (id, name)) CHARACTER SET utf8mb4;\n",
            &DML.replace("{raw}", "X'DEAD00'")
                .replace("{tz}", "'2026-01-02 11:04:05'"),
            "INSERT INTO plant_main (id, name) VALUES (9, 'x');\n",
            |script| run_client("mariadb", &args, script),
        );
    });
    run_client(
        "mariadb",
        &args,
        &format!("DROP DATABASE IF EXISTS {db};\n"),
    );
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
