//! SQL dialects: identifier quoting, literal rendering and the three change statements.
//!
//! Every statement is rendered on ONE line (the batch file holds one statement per line),
//! so text containing a line break cannot be written as a plain quoted literal. Each
//! dialect says how it writes such text without a function call:
//!
//! | value            | sqlite                                   |
//! |------------------|------------------------------------------|
//! | NULL             | `NULL`                                   |
//! | integer          | `-9223372036854775808` (decimal)         |
//! | real             | shortest round-trip form, always with `.` or `e` (`0.1`, `1e-300`, `1.0`); ±inf as `9e999`/`-9e999`; NaN as `NULL` (SQLite stores NaN as NULL) |
//! | text             | `'it''s'`; with CR/LF/NUL, or not valid UTF-8: `CAST(X'..' AS TEXT)` |
//! | blob             | `X'00FF'`                                |
//!
//! Only `sqlite` is implemented so far; the other names are recognised so that a config
//! naming them gets a clear "not yet supported" error.

use std::fmt::Write as _;
use std::str::FromStr;

use crate::value::Value;

/// The SQL dialect statements are rendered in (the target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
}

/// Every dialect name gapsync knows, including planned ones.
pub const KNOWN_DIALECTS: &[&str] = &[
    "sqlite",
    "sql92",
    "postgres",
    "mysql",
    "sqlserver",
    "oracle",
    "dm",
];

#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    #[error("dialect {0:?} is not supported yet (supported: sqlite)")]
    NotYetSupported(String),
    #[error("unknown dialect {0:?} (known: {known})", known = KNOWN_DIALECTS.join(", "))]
    Unknown(String),
}

impl FromStr for Dialect {
    type Err = DialectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Dialect::Sqlite),
            other if KNOWN_DIALECTS.contains(&other) => {
                Err(DialectError::NotYetSupported(other.to_owned()))
            }
            other => Err(DialectError::Unknown(other.to_owned())),
        }
    }
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
        }
    }

    /// Append `name` as a quoted identifier.
    pub fn quote_ident(self, name: &str, out: &mut String) {
        out.push('"');
        for c in name.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }

    /// Append `v` as a literal.
    pub fn literal(self, v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("NULL"),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Real(r) => push_real(*r, out),
            Value::Text(t) => {
                if t.contains(['\n', '\r', '\0']) {
                    out.push_str("CAST(");
                    push_hex_blob(t.as_bytes(), out);
                    out.push_str(" AS TEXT)");
                } else {
                    out.push('\'');
                    for c in t.chars() {
                        if c == '\'' {
                            out.push('\'');
                        }
                        out.push(c);
                    }
                    out.push('\'');
                }
            }
            Value::RawText(b) => {
                out.push_str("CAST(");
                push_hex_blob(b, out);
                out.push_str(" AS TEXT)");
            }
            Value::Blob(b) => push_hex_blob(b, out),
        }
    }

    /// `INSERT INTO t (c1, c2) VALUES (v1, v2);`
    pub fn render_insert(self, table: &str, columns: &[&str], row: &[Value], out: &mut String) {
        out.push_str("INSERT INTO ");
        self.quote_ident(table, out);
        out.push_str(" (");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.quote_ident(c, out);
        }
        out.push_str(") VALUES (");
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.literal(v, out);
        }
        out.push_str(");");
    }

    /// `UPDATE t SET c1 = v1, c2 = v2 WHERE k = old;`
    pub fn render_update(
        self,
        table: &str,
        columns: &[&str],
        row: &[Value],
        key: &[&str],
        old_key: &[Value],
        out: &mut String,
    ) {
        out.push_str("UPDATE ");
        self.quote_ident(table, out);
        out.push_str(" SET ");
        for (i, (c, v)) in columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.quote_ident(c, out);
            out.push_str(" = ");
            self.literal(v, out);
        }
        self.push_where(key, old_key, out);
        out.push(';');
    }

    /// `DELETE FROM t WHERE k = old;`
    pub fn render_delete(self, table: &str, key: &[&str], old_key: &[Value], out: &mut String) {
        out.push_str("DELETE FROM ");
        self.quote_ident(table, out);
        self.push_where(key, old_key, out);
        out.push(';');
    }

    /// `DELETE FROM t;` (the first statement of a snapshot).
    pub fn render_clear(self, table: &str, out: &mut String) {
        out.push_str("DELETE FROM ");
        self.quote_ident(table, out);
        out.push(';');
    }

    /// `CREATE TABLE IF NOT EXISTS t (c1 TYPE, ..., PRIMARY KEY (k));` from source
    /// declared types (already mapped for this dialect).
    pub fn render_create_table(
        self,
        table: &str,
        columns: &[(&str, &str)],
        key: &[&str],
        out: &mut String,
    ) {
        out.push_str("CREATE TABLE IF NOT EXISTS ");
        self.quote_ident(table, out);
        out.push_str(" (");
        for (i, (c, ty)) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.quote_ident(c, out);
            if !ty.is_empty() {
                out.push(' ');
                out.push_str(ty);
            }
        }
        if !key.is_empty() {
            out.push_str(", PRIMARY KEY (");
            for (i, k) in key.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                self.quote_ident(k, out);
            }
            out.push(')');
        }
        out.push_str(");");
    }

    /// Map a source column's declared type onto this dialect's type for `CREATE TABLE`.
    /// Returns `None` when the declared type holds characters that are not part of a
    /// type name (it is then left out: SQLite accepts typeless columns).
    pub fn map_type(self, declared: &str) -> Option<String> {
        let ok = declared
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '(' | ')' | ',' | '_'));
        ok.then(|| declared.trim().to_owned())
    }

    fn push_where(self, key: &[&str], old_key: &[Value], out: &mut String) {
        out.push_str(" WHERE ");
        for (i, (k, v)) in key.iter().zip(old_key).enumerate() {
            if i > 0 {
                out.push_str(" AND ");
            }
            self.quote_ident(k, out);
            if matches!(v, Value::Null) {
                out.push_str(" IS NULL");
            } else {
                out.push_str(" = ");
                self.literal(v, out);
            }
        }
    }
}

fn push_real(r: f64, out: &mut String) {
    if r.is_nan() {
        out.push_str("NULL");
    } else if r.is_infinite() {
        out.push_str(if r > 0.0 { "9e999" } else { "-9e999" });
    } else {
        // `{:?}` is the shortest text that parses back to the same bits and always
        // carries a `.` or an exponent, so SQLite reads it as REAL, not INTEGER.
        let _ = write!(out, "{r:?}");
    }
}

fn push_hex_blob(b: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for &byte in b {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: &Value) -> Value {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut sql = String::from("SELECT ");
        Dialect::Sqlite.literal(v, &mut sql);
        conn.query_row(&sql, [], |r| Ok(Value::from(r.get_ref(0)?)))
            .expect(&sql)
    }

    #[test]
    fn sqlite_literals_round_trip_exactly() {
        let mut all_bytes = Vec::new();
        for b in 0..=255u8 {
            all_bytes.push(b);
        }
        let cases = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Integer(-1),
            Value::Real(0.1),
            Value::Real(1e-300),
            Value::Real(1.7976931348623157e308),
            Value::Real(-1.7976931348623157e308),
            Value::Real(5e-324),
            Value::Real(1.0),
            Value::Real(-0.0),
            Value::Real(123456789.12345679),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Text("it's \"quoted\" \\ back\\slash".into()),
            Value::Text("line1\nline2\r\nline3".into()),
            Value::Text("中文名称 电厂 🚀".into()),
            Value::Text("NUL\0inside".into()),
            Value::Text("x\\'); DROP TABLE t; --".into()),
            Value::RawText(vec![0xC4, 0xE3, 0xBA, 0xC3, 0xFF]),
            Value::Blob(vec![]),
            Value::Blob(all_bytes),
        ];
        for v in &cases {
            let back = roundtrip(v);
            assert!(back.same(v), "{v} came back as {back}");
        }
        // SQLite cannot store NaN: it is written as NULL on purpose.
        assert!(roundtrip(&Value::Real(f64::NAN)).same(&Value::Null));
    }

    #[test]
    fn statements_are_one_line() {
        let mut s = String::new();
        Dialect::Sqlite.render_update(
            "t",
            &["a", "b\"c"],
            &[Value::Text("x\ny".into()), Value::Integer(1)],
            &["a"],
            &[Value::Null],
            &mut s,
        );
        assert_eq!(
            s,
            "UPDATE \"t\" SET \"a\" = CAST(X'780A79' AS TEXT), \"b\"\"c\" = 1 WHERE \"a\" IS NULL;"
        );
        assert!(!s.contains('\n'));
    }
}
