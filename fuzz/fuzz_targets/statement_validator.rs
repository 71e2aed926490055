//! Statement validator: `AllowList::validate` in every target dialect (the first input
//! byte picks the dialect and the allow-list), and one property for SQLite: whatever the
//! validator accepts, executed by SQLite on an in-memory database holding
//! `t(id INTEGER PRIMARY KEY, v)`, writes or reads only table `t` of `main`, creates only
//! `t` (and its automatic index), and calls no function, reads no other table, runs no
//! `SELECT`, `PRAGMA`, `ATTACH` or transaction control. This is checked by an authorizer
//! that records every action and allows them all: the validator on its own must keep the
//! statement within what gapsync's SQLite authorizer (`target::SqliteBackend`) allows.
//! In every dialect, no accepted statement stays accepted with a comment (`/*M! .. */`,
//! `/*! .. */`, `/* */`, `/*+ */`, `--`, `#`, `*/`) put before its final `;`.
#![no_main]

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use gapsync_receiver::allow::AllowList;
use gapsync_common::dialect::Dialect;
use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use rusqlite::hooks::{AuthAction as A, AuthContext, Authorization};

struct Db {
    conn: Connection,
    seen: Arc<Mutex<Vec<String>>>,
    runs: u32,
}

fn open() -> Db {
    let mut conn = Connection::open_in_memory().expect("open in-memory SQLite");
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v);")
        .expect("create t");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let rec = Arc::clone(&seen);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let ok = ctx.accessor.is_none()
            && ctx.database_name.is_none_or(|d| d == "main")
            && match ctx.action {
                A::Insert { table_name }
                | A::Delete { table_name }
                | A::Update { table_name, .. }
                | A::Read { table_name, .. } => table_name == "t" || table_name == "sqlite_master",
                A::CreateTable { table_name } => table_name == "t",
                A::CreateIndex {
                    index_name,
                    table_name,
                } => index_name.starts_with("sqlite_autoindex_") && table_name == "t",
                _ => false,
            };
        if !ok && let Ok(mut s) = rec.lock() {
            s.push(format!(
                "{:?} (database {:?}, accessor {:?})",
                ctx.action, ctx.database_name, ctx.accessor
            ));
        }
        Authorization::Allow
    }))
    .expect("authorizer");
    Db {
        conn,
        seen,
        runs: 0,
    }
}

thread_local! {
    static DB: RefCell<Option<Db>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = Dialect::ALL[usize::from(sel) % Dialect::ALL.len()];
    let allow = match (sel >> 4) % 3 {
        0 => AllowList::new(None),
        1 => AllowList::new(Some(vec!["t".to_owned()])),
        _ => AllowList::new(Some(vec!["plant*".to_owned(), "t".to_owned()])),
    };
    // No comment passes: an accepted statement with a comment put before its final `;`
    // (outside quotes there, or the statement would not have been accepted) is refused.
    if allow.validate(dialect, sql).is_ok()
        && let Some(body) = sql.strip_suffix(';')
    {
        for c in [
            " /*M! OR 1=1 */",
            " /*!50000 OR 1=1 */",
            "/**/",
            " /*+ hint */",
            " -- x",
            "--",
            " #",
            "*/",
        ] {
            let with = format!("{body}{c};");
            assert!(
                allow.validate(dialect, &with).is_err(),
                "{dialect}: accepted {sql:?} and, with a comment, {with:?}"
            );
        }
    }

    // The SQLite property, with the allow-list the in-memory database fits.
    let only_t = AllowList::new(Some(vec!["t".to_owned()]));
    if only_t.validate(Dialect::Sqlite, sql).is_err() {
        return;
    }
    DB.with(|cell| {
        let mut slot = cell.borrow_mut();
        let db = slot.get_or_insert_with(open);
        db.runs += 1;
        if db.runs > 10_000 {
            *db = open();
        }
        if let Ok(mut s) = db.seen.lock() {
            s.clear();
        }
        // Errors (constraint violations, type errors, ...) are fine; what SQLite
        // did before failing is what the recording authorizer saw.
        let _ = db.conn.execute_batch(sql);
        let seen = db.seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(
            seen.is_empty(),
            "the validator accepted {sql:?}, which made SQLite do: {seen:?}"
        );
    });
});
