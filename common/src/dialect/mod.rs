//! SQL dialects: identifier quoting, literal rendering, type mapping and the statements
//! a batch carries (`INSERT`, `UPDATE .. SET every column WHERE old key`, `DELETE ..
//! WHERE key`, and for snapshots `CREATE TABLE IF NOT EXISTS` and `DELETE FROM t`).
//!
//! Every statement is rendered on ONE line (the batch file holds one statement per line)
//! and holds literal values only: no raw CR, LF or NUL ever reaches the output, and a
//! function call (or a named constant) appears only where the dialect has no literal
//! form for a value: those are marked **fn** below, and a receiver that checks
//! "literal-only values" must allow exactly these forms for the dialect. A value a
//! dialect cannot store exactly is refused with a [`RenderError`] naming the dialect and
//! the value's kind, never written approximately. Values of the typed kinds (decimal,
//! date, time, ...) are checked against their canonical form first
//! ([`Value::validate`]), so a malformed one is an error, never a broken literal.
//!
//! How sure each dialect is: `sqlite` is executed by the unit tests; `postgres` and
//! `mysql` are executed against PostgreSQL 15 and MariaDB 10.11 by the opt-in live tests
//! in `tests/golden.rs` (every value, read back and compared); `sql92`, `sqlserver`,
//! `oracle` and `dm` follow the standard and the vendors' documentation and have not
//! been run against a server yet.
//!
//! # Session settings the receiver guarantees
//!
//! - PostgreSQL: `standard_conforming_strings = on`, `client_encoding = UTF8`.
//! - MySQL/MariaDB: `sql_mode` with `ANSI_QUOTES` (identifiers are `"x"`) and
//!   `NO_BACKSLASH_ESCAPES` added to the server's, which must keep a strict mode (the
//!   default `STRICT_TRANS_TABLES` does, for InnoDB tables) so that an out-of-range
//!   value or a too-long string fails instead of being clipped; `time_zone = '+00:00'`;
//!   a utf8mb4 connection (the Unicode ODBC driver).
//! - Oracle: a Unicode database character set (AL32UTF8), and `NLS_DATE_FORMAT` /
//!   `NLS_TIMESTAMP_FORMAT` set to ISO forms when SQLite TEXT dates are written into
//!   DATE/TIMESTAMP columns (the renderer's own typed values use typed literals).
//!
//! Running a batch by hand in a vendor shell: `sqlcmd` needs `-x` (else `$(..)` inside
//! text is a variable), SQL*Plus and DM's `disql` need `SET DEFINE OFF` (else `&name` is),
//! and Oracle's ODBC driver wants the trailing `;` removed.
//!
//! # Literals
//!
//! | value | sqlite | sql92 | postgres | mysql | sqlserver | oracle | dm |
//! |---|---|---|---|---|---|---|---|
//! | NULL | `NULL` | `NULL` | `NULL` | `NULL` | `NULL` | `NULL` | `NULL` |
//! | integer | `-9223372036854775808` | same | same (the parser folds the sign into one bigint constant) | same | same | same | same |
//! | real | shortest round-trip form, always with `.` or `e` (`0.1`, `1e-300`, `-0.0`); ±inf as `9e999`/`-9e999`; NaN as `NULL` (SQLite stores NaN as NULL) | shortest form, `-0.0` as `-0e0` (an approximate literal: `-0.0` would be an exact, unsigned zero); inf/NaN refused | shortest form; `-0.0`, ±inf, NaN as `'-0'`, `'Infinity'`, `'-Infinity'`, `'NaN'` (string literals the float8 column reads) | shortest form; -0.0 (a DOUBLE column stores it as 0), inf and NaN refused | shortest form in E notation (`1e-1`: a float constant, not a decimal one); inf, NaN and subnormals (outside SQL Server's float range) refused | shortest form with the BINARY_DOUBLE suffix (`0.1d`); ±inf, NaN as **fn** the named constants `BINARY_DOUBLE_INFINITY`, `-BINARY_DOUBLE_INFINITY`, `BINARY_DOUBLE_NAN` (no literal exists); -0.0 refused (BINARY_DOUBLE converts it to 0) | shortest form in E notation; inf/NaN refused |
//! | text | `'it''s'` | `'it''s'` | `'it''s'` | `'it''s'` | `N'it''s'` | `'it''s'`; `''` refused | `'it''s'`; `''` refused |
//! | text with CR, LF or NUL | **fn** `CAST(X'<utf-8>' AS TEXT)` | `U&'a\000Ab'` (SQL:2003 Unicode escapes; `\` written `\\`) | `E'a\nb'` (also for any `\`, so that the text never depends on `standard_conforming_strings`); NUL refused | `_utf8mb4 X'<utf-8>'` (also for any `\`, so that the text never depends on `NO_BACKSLASH_ESCAPES`) | **fn** `CAST(0x<utf-16le> AS NVARCHAR(MAX))` | **fn** `UNISTR('a\000Ab')` (`\` written `\\`) | refused (DM literals have no escape) |
//! | text, not UTF-8 | **fn** `CAST(X'..' AS TEXT)` | refused | refused (PostgreSQL text is UTF-8 only) | `X'..'` (bytes kept; the column's charset decides) | refused | refused | refused |
//! | blob | `X'00FF'` | `X'00FF'` | `'\x00ff'` (bytea hex input) | `X'00FF'` | `0x00FF` | **fn** `HEXTORAW('00FF')`; empty: **fn** `EMPTY_BLOB()` (`HEXTORAW('')` is NULL) | `0x00FF`; empty refused |
//! | decimal | `'1.10'` (text) | `1.10` | `1.10` | `1.10`; more than 65 digits or 30 decimals refused | `1.10`; more than 38 digits refused | `1.10`; more than 38 significant digits refused | as oracle |
//! | date | `'2026-01-02'` | `DATE '2026-01-02'` | `DATE '..'` | `DATE '..'` | `'20260102'` (the one form every SQL Server date type reads alike, whatever the session language) | `DATE '..'` | `DATE '..'` |
//! | time | `'12:34:56.5'` | `TIME '..'` | `TIME '..'` | `TIME '..'` | `'12:34:56.5'` | `INTERVAL '0 12:34:56.5' DAY TO SECOND(9)` (Oracle has no TIME type) | `TIME '..'` |
//! | timestamp | `'2026-01-02 03:04:05.5'` | `TIMESTAMP '..'` | `TIMESTAMP '..'` | `TIMESTAMP '..'` | `'2026-01-02T03:04:05.5'` (ISO 8601, language-independent) | `TIMESTAMP '..'` | `TIMESTAMP '..'` |
//! | timestamptz | `'2026-01-02 03:04:05.5+00:00'` | `TIMESTAMP '..+00:00'` | `TIMESTAMPTZ '..+00:00'` | `TIMESTAMP '2026-01-02 03:04:05.5'` (the UTC value: MySQL has no zoned type and the session zone is UTC) | `'2026-01-02T03:04:05.5+00:00'` | `TIMESTAMP '.. +00:00'` | `TIMESTAMP '.. +00:00'` |
//! | fraction digits kept | 9 | 9 | 6 | 6 | 7 | 9 | 6 |
//! | boolean | `1`/`0` | `TRUE`/`FALSE` | `'1'`/`'0'` (read by boolean and integer columns alike) | `1`/`0` | `1`/`0` | `1`/`0` | `1`/`0` |
//!
//! Fractional seconds beyond what a dialect keeps are dropped only when they are zeros;
//! otherwise the value is refused (it would be rounded). Likewise a decimal's trailing
//! fractional zeros (its scale) are dropped only when the dialect could not take the
//! value with them. Oracle and DM are refused the
//! empty string because Oracle (and DM in its Oracle compatibility mode,
//! `COMPATIBLE_MODE=2`; DM's default mode keeps `''`) store `''` as NULL. Oracle text
//! literals hold at most 4000 bytes (32767 with `MAX_STRING_SIZE = EXTENDED`) and
//! `HEXTORAW` 2000 bytes: longer values fail on the target. Identifiers are `"x"` (`""`
//! doubled) everywhere but SQL Server (`[x]`, `]]` doubled); their case is kept, so name
//! Oracle tables and columns in upper case in the config to meet its unquoted names.
//!
//! # Snapshot DDL
//!
//! `CREATE TABLE IF NOT EXISTS t (c TYPE, .., PRIMARY KEY (k))` everywhere but SQL
//! Server and Oracle. SQL Server has no `IF NOT EXISTS` for tables: there it is
//! `IF OBJECT_ID(N'[t]', N'U') IS NULL CREATE TABLE [t] (..)`. Oracle reads
//! `IF NOT EXISTS` only from 23ai on, so for Oracle it is a plain `CREATE TABLE t (..)`,
//! and the receiver takes that statement's ORA-00955 ("name is already used by an
//! existing object") as the table being there, which is what `IF NOT EXISTS` means: it
//! works on 19c. Column types come from [`Dialect::map_type`]; see there.

use std::fmt;
use std::str::FromStr;

use crate::value::{InvalidValue, Value};

mod literal;
mod types;

/// The SQL dialect statements are rendered in (the target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Standard SQL for an unknown target (SQL-92 literals, SQL:2003 where SQL-92 has none).
    Sql92,
    Sqlite,
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    SqlServer,
    Oracle,
    /// Dameng DM8.
    Dm,
}

/// Every dialect name gapsync knows.
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
    /// Not returned any more: every known dialect is supported.
    #[error("dialect {0:?} is not supported yet")]
    NotYetSupported(String),
    #[error("unknown dialect {0:?} (known: {known})", known = KNOWN_DIALECTS.join(", "))]
    Unknown(String),
}

/// Why a value, a statement or a type could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The dialect has no way to store this value exactly.
    #[error("{dialect} cannot store this {kind} value: {why}")]
    Unrepresentable {
        dialect: &'static str,
        kind: &'static str,
        why: String,
    },
    /// A typed value (decimal, date, ...) whose text is not in canonical form.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(
        "{dialect}: identifier {name:?} holds a line break or NUL, which cannot be written on one line"
    )]
    Identifier { dialect: &'static str, name: String },
    #[error(
        "column {column:?} has no declared type: a typeless SQLite column may hold values of any storage class, so no {dialect} column type stores them exactly; give it one in the source schema (INTEGER, REAL, TEXT, BLOB, NUMERIC, ...)"
    )]
    Typeless {
        dialect: &'static str,
        column: String,
    },
    #[error("column {column:?}: declared type {declared:?} cannot be mapped to {dialect}: {why}")]
    Type {
        dialect: &'static str,
        column: String,
        declared: String,
        why: String,
    },
    #[error("{dialect}: column {column:?} has type {ty:?}, which is not a plain type name")]
    BadType {
        dialect: &'static str,
        column: String,
        ty: String,
    },
    #[error("{what}: {columns} column names but {values} values")]
    Arity {
        what: &'static str,
        columns: usize,
        values: usize,
    },
    #[error("{what} needs at least one key column")]
    NoKey { what: &'static str },
}

impl FromStr for Dialect {
    type Err = DialectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| DialectError::Unknown(s.to_owned()))
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Dialect {
    /// Every dialect, in the order of [`KNOWN_DIALECTS`].
    pub const ALL: [Dialect; 7] = [
        Dialect::Sqlite,
        Dialect::Sql92,
        Dialect::Postgres,
        Dialect::Mysql,
        Dialect::SqlServer,
        Dialect::Oracle,
        Dialect::Dm,
    ];

    /// The configuration name (`[target] dialect`), also written into batch headers.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sql92 => "sql92",
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::SqlServer => "sqlserver",
            Dialect::Oracle => "oracle",
            Dialect::Dm => "dm",
        }
    }

    /// The product name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Dialect::Sql92 => "SQL92",
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
            Dialect::Mysql => "MySQL",
            Dialect::SqlServer => "SQL Server",
            Dialect::Oracle => "Oracle",
            Dialect::Dm => "DM",
        }
    }

    /// Append `name` as a quoted identifier: `"a""b"`, or `[a]]b]` for SQL Server.
    /// Statement renderers refuse names holding CR, LF or NUL before quoting them.
    pub fn quote_ident(self, name: &str, out: &mut String) {
        let (open, close) = match self {
            Dialect::SqlServer => ('[', ']'),
            _ => ('"', '"'),
        };
        out.reserve(name.len() + 2);
        out.push(open);
        let mut rest = name;
        while let Some(i) = rest.find(close) {
            out.push_str(&rest[..=i]);
            out.push(close);
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        out.push(close);
    }

    /// Append `v` as a literal (see the module docs for each dialect's forms). On error
    /// nothing is appended.
    pub fn literal(self, v: &Value, out: &mut String) -> Result<(), RenderError> {
        let start = out.len();
        let r = literal::push(self, v, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// `INSERT INTO t (c1, c2) VALUES (v1, v2);` On error `out` is left as it was.
    pub fn render_insert(
        self,
        table: &str,
        columns: &[&str],
        row: &[Value],
        out: &mut String,
    ) -> Result<(), RenderError> {
        self.guarded(out, |out| {
            arity("INSERT", columns.len(), row.len())?;
            self.check_idents(table, columns)?;
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
                literal::push(self, v, out)?;
            }
            out.push_str(");");
            Ok(())
        })
    }

    /// `UPDATE t SET c1 = v1, c2 = v2 WHERE k = old;` (a NULL old key value is matched
    /// with `IS NULL`). On error `out` is left as it was.
    pub fn render_update(
        self,
        table: &str,
        columns: &[&str],
        row: &[Value],
        key: &[&str],
        old_key: &[Value],
        out: &mut String,
    ) -> Result<(), RenderError> {
        self.guarded(out, |out| {
            arity("UPDATE", columns.len(), row.len())?;
            self.check_idents(table, columns)?;
            out.push_str("UPDATE ");
            self.quote_ident(table, out);
            out.push_str(" SET ");
            for (i, (c, v)) in columns.iter().zip(row).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                self.quote_ident(c, out);
                out.push_str(" = ");
                literal::push(self, v, out)?;
            }
            self.push_where("UPDATE", key, old_key, out)?;
            out.push(';');
            Ok(())
        })
    }

    /// `DELETE FROM t WHERE k = old;` On error `out` is left as it was.
    pub fn render_delete(
        self,
        table: &str,
        key: &[&str],
        old_key: &[Value],
        out: &mut String,
    ) -> Result<(), RenderError> {
        self.guarded(out, |out| {
            self.check_idents(table, &[])?;
            out.push_str("DELETE FROM ");
            self.quote_ident(table, out);
            self.push_where("DELETE", key, old_key, out)?;
            out.push(';');
            Ok(())
        })
    }

    /// `DELETE FROM t;` (the second statement of a snapshot).
    pub fn render_clear(self, table: &str, out: &mut String) -> Result<(), RenderError> {
        self.guarded(out, |out| {
            self.check_idents(table, &[])?;
            out.push_str("DELETE FROM ");
            self.quote_ident(table, out);
            out.push(';');
            Ok(())
        })
    }

    /// `CREATE TABLE IF NOT EXISTS t (c1 TYPE, ..., PRIMARY KEY (k));` from column types
    /// already mapped for this dialect ([`Dialect::map_type`]). An empty type leaves the
    /// column typeless, which only SQLite accepts. SQL Server has no `IF NOT EXISTS`
    /// for tables: `IF OBJECT_ID(N'[t]', N'U') IS NULL CREATE TABLE [t] (...);`. Oracle
    /// before 23ai has none either: a plain `CREATE TABLE "t" (...);` (see the module
    /// docs, "Snapshot DDL").
    pub fn render_create_table(
        self,
        table: &str,
        columns: &[(&str, &str)],
        key: &[&str],
        out: &mut String,
    ) -> Result<(), RenderError> {
        self.guarded(out, |out| {
            self.check_idents(table, key)?;
            for (c, ty) in columns {
                self.check_idents(c, &[])?;
                let plain = ty
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '(' | ')' | ',' | '_'));
                if !plain || (ty.trim().is_empty() && self != Dialect::Sqlite) {
                    return Err(RenderError::BadType {
                        dialect: self.title(),
                        column: (*c).to_owned(),
                        ty: (*ty).to_owned(),
                    });
                }
            }
            if self == Dialect::SqlServer {
                let mut quoted = String::new();
                self.quote_ident(table, &mut quoted);
                out.push_str("IF OBJECT_ID(");
                literal::push_nstring(&quoted, out);
                out.push_str(", N'U') IS NULL CREATE TABLE ");
            } else if self == Dialect::Oracle {
                out.push_str("CREATE TABLE ");
            } else {
                out.push_str("CREATE TABLE IF NOT EXISTS ");
            }
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
            Ok(())
        })
    }

    /// Map a source (SQLite) column's declared type onto this dialect's column type for
    /// `CREATE TABLE`; `column` names the column in errors, `is_key` says whether it is
    /// part of the primary key (some targets cannot index their unbounded types).
    ///
    /// SQLite keeps the declared type as it is (typeless stays typeless; a declared
    /// type with characters outside `[A-Za-z0-9 _(),]` is dropped). For the other
    /// dialects a typeless column is an error ([`RenderError::Typeless`]), and the type
    /// follows SQLite's affinity rules, after a few names that say more:
    ///
    /// | declared (SQLite) | sql92 | postgres | mysql | sqlserver | oracle | dm |
    /// |---|---|---|---|---|---|---|
    /// | contains `INT` | `BIGINT` | `BIGINT` | `BIGINT` | `BIGINT` | `NUMBER(19)` | `BIGINT` |
    /// | contains `CHAR`, `CLOB`, `TEXT` | `CLOB` | `TEXT` | `LONGTEXT CHARACTER SET utf8mb4` | `NVARCHAR(MAX)` | `NCLOB` | `CLOB` |
    /// | the same, key column | `VARCHAR(255)` | `TEXT` | `VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin` | `NVARCHAR(450) COLLATE Latin1_General_100_BIN2` | `NVARCHAR2(1000)` | `VARCHAR(1000 CHAR)` |
    /// | contains `BLOB` | `BLOB` | `BYTEA` | `LONGBLOB` | `VARBINARY(MAX)` | `BLOB` | `BLOB` |
    /// | the same, key column | `VARBINARY(255)` | `BYTEA` | `VARBINARY(255)` | `VARBINARY(900)` | `RAW(2000)` | `VARBINARY(1000)` |
    /// | contains `REAL`, `FLOA`, `DOUB` | `DOUBLE PRECISION` | `DOUBLE PRECISION` | `DOUBLE` | `FLOAT` | `BINARY_DOUBLE` | `DOUBLE` |
    /// | anything else (NUMERIC affinity) | `NUMERIC` | `NUMERIC` | `DECIMAL(65,30)` | `DECIMAL(38,10)` | `NUMBER` | `NUMBER` |
    /// | `DECIMAL`/`NUMERIC`/`DEC`/`NUMBER` `(p[,s])` | `NUMERIC(p,s)` | `NUMERIC(p,s)` | `DECIMAL(p,s)`, p ≤ 65, s ≤ 30 | `DECIMAL(p,s)`, p ≤ 38 | `NUMBER(p,s)`, p ≤ 38 | `NUMBER(p,s)`, p ≤ 38 |
    /// | `DATE` | `DATE` | `DATE` | `DATE` | `DATE` | `DATE` | `DATE` |
    /// | `TIME[(p)]` | `TIME(p)` | `TIME(p)` | `TIME(p)` | `TIME(p)` | `INTERVAL DAY(0) TO SECOND(p)` | `TIME(p)` |
    /// | `DATETIME`, `TIMESTAMP[(p)]` | `TIMESTAMP(p)` | `TIMESTAMP(p)` | `DATETIME(p)` | `DATETIME2(p)` | `TIMESTAMP(p)` | `TIMESTAMP(p)` |
    /// | `TIMESTAMPTZ`, `TIMESTAMP[(p)] WITH TIME ZONE` | `TIMESTAMP(p) WITH TIME ZONE` | `TIMESTAMP(p) WITH TIME ZONE` | `DATETIME(p)` (UTC) | `DATETIMEOFFSET(p)` | `TIMESTAMP(p) WITH TIME ZONE` | `TIMESTAMP(p) WITH TIME ZONE` |
    /// | `BOOLEAN`, `BOOL` | `BOOLEAN` | `SMALLINT` | `BOOLEAN` | `SMALLINT` | `NUMBER(1)` | `NUMBER(1)` |
    ///
    /// Without a given precision `p`, the fractional-second precision is the most the
    /// dialect keeps (sql92 9, postgres 6, mysql 6, sqlserver 7, oracle 9, dm 6); a
    /// larger `p` is an error. Text key columns get a binary collation where the usual
    /// default ignores case and accents (MySQL, SQL Server), so that a key matches only
    /// itself; both still ignore trailing spaces in comparisons (PAD SPACE), so keys
    /// that differ only in trailing spaces collide there. SQLite stores booleans as the integers 0 and 1, which
    /// PostgreSQL's BOOLEAN refuses and SQL Server's BIT would fold (2 becomes 1): so
    /// there BOOLEAN maps to SMALLINT, which keeps them (and reads PostgreSQL's boolean
    /// literals `'1'`/`'0'` too). sql92 keeps the standard BOOLEAN.
    pub fn map_type(
        self,
        column: &str,
        declared: &str,
        is_key: bool,
    ) -> Result<String, RenderError> {
        types::map(self, column, declared, is_key)
    }

    fn guarded(
        self,
        out: &mut String,
        f: impl FnOnce(&mut String) -> Result<(), RenderError>,
    ) -> Result<(), RenderError> {
        let start = out.len();
        let r = f(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn check_idents(self, table: &str, columns: &[&str]) -> Result<(), RenderError> {
        for name in std::iter::once(&table).chain(columns) {
            if name.contains(['\n', '\r', '\0']) {
                return Err(RenderError::Identifier {
                    dialect: self.title(),
                    name: (*name).to_owned(),
                });
            }
        }
        Ok(())
    }

    fn push_where(
        self,
        what: &'static str,
        key: &[&str],
        old_key: &[Value],
        out: &mut String,
    ) -> Result<(), RenderError> {
        arity(what, key.len(), old_key.len())?;
        if key.is_empty() {
            return Err(RenderError::NoKey { what });
        }
        self.check_idents("", key)?;
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
                literal::push(self, v, out)?;
            }
        }
        Ok(())
    }
}

fn arity(what: &'static str, columns: usize, values: usize) -> Result<(), RenderError> {
    if columns == values {
        Ok(())
    } else {
        Err(RenderError::Arity {
            what,
            columns,
            values,
        })
    }
}

#[cfg(test)]
mod tests;
