//! Typed row-by-row comparison of source and target.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::*;

// ------------------------------------------------------------------------ comparing

/// Exact equality of SQLite values: same storage class and same value; reals compare by
/// bit pattern (so `-0.0 != 0.0`).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

/// A value with its storage class, for messages: `integer 5`, `real 0.1 (0x3fb9...)`,
/// `text "a\nb"`, `blob x'00ff' (2 bytes)`, `NULL`.
pub fn describe(v: &Value) -> String {
    pub(crate) fn cut(s: String, max: usize) -> String {
        match s.char_indices().nth(max) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s,
        }
    }
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) => format!("integer {i}"),
        Value::Real(r) => format!("real {r:?} (bits {:#018x})", r.to_bits()),
        Value::Text(t) => format!("text {}", cut(format!("{t:?}"), 120)),
        Value::Blob(b) => {
            let hex: String = b.iter().take(40).map(|x| format!("{x:02x}")).collect();
            format!(
                "blob x'{hex}{}' ({} bytes)",
                if b.len() > 40 { "..." } else { "" },
                b.len()
            )
        }
    }
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Column names of a table, in order (empty if it does not exist).
pub fn table_columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare pragma_table_info");
    st.query_map([table], |r| r.get(0))
        .and_then(Iterator::collect)
        .expect("pragma_table_info")
}

pub(crate) fn primary_key(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .expect("prepare pragma_table_info");
    st.query_map([table], |r| r.get(0))
        .and_then(Iterator::collect)
        .expect("pragma_table_info")
}

/// Every row of `table` (the given columns, ordered by `order`), as typed values.
pub fn read_rows(
    conn: &Connection,
    table: &str,
    cols: &[String],
    order: &[String],
) -> rusqlite::Result<Vec<Vec<Value>>> {
    let q = |v: &[String]| {
        v.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        q(cols),
        quote_ident(table),
        q(order)
    );
    let mut st = conn.prepare(&sql)?;
    let n = cols.len();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
        .collect()
}

/// Compare a source table with its target table row by row, with typed values.
///
/// `renames` maps source column names to target column names where they differ; every
/// other source column is compared with the target column of the same name. Rows are
/// read ordered by the source table's primary key (mapped), or by every column when it
/// has none (use [`compare_tables_by`] for an explicit key). The target table must have
/// exactly the mapped columns. Returns the number of rows, or the first difference.
pub fn compare_tables(
    source_db: &Path,
    src_table: &str,
    target_db: &Path,
    dst_table: &str,
    renames: &[(&str, &str)],
) -> Result<usize, String> {
    compare_tables_by(source_db, src_table, target_db, dst_table, renames, &[])
}

/// [`compare_tables`] ordered by `key` (source column names; empty: primary key).
pub fn compare_tables_by(
    source_db: &Path,
    src_table: &str,
    target_db: &Path,
    dst_table: &str,
    renames: &[(&str, &str)],
    key: &[&str],
) -> Result<usize, String> {
    let src = open_db(source_db);
    let dst = open_db(target_db);
    let src_cols = table_columns(&src, src_table);
    if src_cols.is_empty() {
        return Err(format!("source table {src_table:?} does not exist"));
    }
    let map = |c: &String| -> String {
        renames
            .iter()
            .find(|(from, _)| from == c)
            .map(|(_, to)| (*to).to_owned())
            .unwrap_or_else(|| c.clone())
    };
    let dst_cols: Vec<String> = src_cols.iter().map(map).collect();
    let mut have = table_columns(&dst, dst_table);
    if have.is_empty() {
        return Err(format!("target table {dst_table:?} does not exist"));
    }
    let mut want = dst_cols.clone();
    have.sort();
    want.sort();
    if have != want {
        return Err(format!(
            "target table {dst_table:?} has columns {have:?}, expected {want:?}"
        ));
    }
    let src_key: Vec<String> = if !key.is_empty() {
        key.iter().map(|k| (*k).to_owned()).collect()
    } else {
        let pk = primary_key(&src, src_table);
        if pk.is_empty() { src_cols.clone() } else { pk }
    };
    let dst_key: Vec<String> = src_key.iter().map(map).collect();
    let a = read_rows(&src, src_table, &src_cols, &src_key)
        .map_err(|e| format!("reading source {src_table}: {e}"))?;
    let b = read_rows(&dst, dst_table, &dst_cols, &dst_key)
        .map_err(|e| format!("reading target {dst_table}: {e}"))?;
    let key_idx: Vec<usize> = src_key
        .iter()
        .filter_map(|k| src_cols.iter().position(|c| c == k))
        .collect();
    compare_rows(
        &format!("{src_table} -> {dst_table}"),
        &src_cols,
        &dst_cols,
        &key_idx,
        &a,
        &b,
    )
}

/// Rows of one table read in the same key order, `a` from the source and `b` from the
/// target (`label`: "source -> target" for the message). Returns the number of rows, or
/// the first difference with the keys of both rows.
pub fn compare_rows(
    label: &str,
    src_cols: &[String],
    dst_cols: &[String],
    key_idx: &[usize],
    a: &[Vec<Value>],
    b: &[Vec<Value>],
) -> Result<usize, String> {
    let key_of = |row: &[Value]| -> String {
        key_idx
            .iter()
            .map(|&i| format!("{} = {}", src_cols[i], describe(&row[i])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        for (j, (va, vb)) in ra.iter().zip(rb).enumerate() {
            if !same_value(va, vb) {
                return Err(format!(
                    "{label}: row #{i} differs in column {} -> {}: source has {} but target \
                     has {}\n  source row key: {}\n  target row key: {}",
                    src_cols[j],
                    dst_cols[j],
                    describe(va),
                    describe(vb),
                    key_of(ra),
                    key_of(rb)
                ));
            }
        }
    }
    if a.len() != b.len() {
        let (longer, side) = if a.len() > b.len() {
            (a, "source")
        } else {
            (b, "target")
        };
        let extra = &longer[a.len().min(b.len())];
        return Err(format!(
            "{label}: source has {} rows, target has {}; first row only in the {side}: {}",
            a.len(),
            b.len(),
            key_of(extra)
        ));
    }
    Ok(a.len())
}

/// Calls `compare` for every table configured on `tx` with (its config, its target
/// name, its renames, its key columns) and adds up the rows. Returns (tables, rows) or
/// the first difference.
pub fn compare_configured(
    tx: &SenderNode,
    mut compare: impl FnMut(&str, &str, &[(&str, &str)], &[&str]) -> Result<usize, String>,
) -> Result<(usize, usize), String> {
    let mut rows = 0;
    for t in &tx.cfg.tables {
        let renames: Vec<(&str, &str)> = t
            .rename
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let key: Vec<&str> = t
            .key
            .as_ref()
            .map(|k| k.iter().map(String::as_str).collect())
            .unwrap_or_default();
        rows += compare(&t.source, t.target_name(), &renames, &key)?;
    }
    Ok((tx.cfg.tables.len(), rows))
}

/// Compare every table configured on `tx` with its target on `rx` (renames and keys from
/// the config). Returns (tables, rows) or the first difference.
pub fn compare_all(tx: &SenderNode, rx: &ReceiverNode) -> Result<(usize, usize), String> {
    compare_configured(tx, |src, dst, renames, key| {
        compare_tables_by(&tx.source_db, src, &rx.target_db, dst, renames, key)
    })
}

/// [`compare_all`], panicking with the difference and the log tails.
pub fn assert_synced(tx: &SenderNode, rx: &ReceiverNode) -> (usize, usize) {
    match compare_all(tx, rx) {
        Ok(v) => v,
        Err(e) => panic!(
            "source and target differ (node {}): {e}\n{}",
            tx.cfg.node,
            tx.all_logs()
        ),
    }
}
