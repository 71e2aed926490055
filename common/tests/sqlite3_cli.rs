//! A batch file must run unchanged in the target's own SQL client: here the `sqlite3`
//! shell (installed by `deploy/ci-deps.sh`). In CI (`CI=true`) a missing shell fails the
//! test; locally it is skipped with a printed reason.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter, format_created};
use gapsync_common::dialect::Dialect;
use gapsync_common::value::Value;

fn sqlite3_available() -> bool {
    let ok = Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the sqlite3 shell is missing in CI: deploy/ci-deps.sh should have installed it"
        );
        eprintln!("skipping: the sqlite3 shell is not installed (run deploy/ci-deps.sh)");
    }
    ok
}

#[test]
fn batch_file_runs_unchanged_in_the_sqlite3_shell() {
    if !sqlite3_available() {
        return;
    }
    let values = [
        Value::Null,
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Real(0.1),
        Value::Real(1e-300),
        Value::Real(1.7976931348623157e308),
        Value::Text(String::new()),
        Value::Text("it's; -- not a comment \\ \"q\"".into()),
        Value::Text("两行\n文本\r\n".into()),
        Value::RawText(vec![0xC4, 0xE3]),
        Value::Blob((0..=255).collect()),
    ];
    let d = Dialect::Sqlite;
    let mut stmts = Vec::new();
    let mut s = String::new();
    d.render_create_table("t", &[("id", "INTEGER"), ("v", "")], &["id"], &mut s)
        .unwrap();
    stmts.push(std::mem::take(&mut s));
    for (i, v) in values.iter().enumerate() {
        d.render_insert(
            "t",
            &["id", "v"],
            &[Value::Integer(i as i64), v.clone()],
            &mut s,
        )
        .unwrap();
        stmts.push(std::mem::take(&mut s));
    }
    let dir = tempfile::tempdir().unwrap();
    let header = BatchHeader {
        node: "plant1".into(),
        seq: 1,
        created: format_created(chrono::Utc::now()),
        dialect: "sqlite".into(),
        kind: BatchKind::Snapshot,
        changes: None,
        statements: stmts.len() as u64,
    };
    let mut w = BatchWriter::create(dir.path(), header, false, 3).unwrap();
    for st in &stmts {
        w.push(st).unwrap();
    }
    let file = w.finish().unwrap();
    let db = dir.path().join("cli.db");
    let out = Command::new("sqlite3")
        .arg("-bail")
        .arg(&db)
        .arg(format!(".read {}", file.path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sqlite3 refused the batch file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (i, v) in values.iter().enumerate() {
        let got: Value = conn
            .query_row("SELECT v FROM t WHERE id = ?1", [i as i64], |r| {
                Ok(Value::from(r.get_ref(0)?))
            })
            .unwrap();
        assert!(got.same(v), "value {i}: wrote {v}, the shell stored {got}");
    }
}
