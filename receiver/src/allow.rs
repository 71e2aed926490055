//! The receiver's statement allow-list (ARCHITECTURE.md invariant I5).
//!
//! A batch statement is executed only if it has one of the shapes gapsync's sender renders
//! (`gapsync_common::dialect`), on a table the receiver allows:
//!
//! - `INSERT INTO t (c, ..) VALUES (literal, ..)`;
//! - `UPDATE t SET c = literal, .. WHERE k = literal AND k2 IS NULL ..`;
//! - `DELETE FROM t WHERE k = literal AND ..`, and for snapshots `DELETE FROM t`;
//! - `CREATE TABLE IF NOT EXISTS t (c TYPE [NOT NULL|NULL|COLLATE x|CHARACTER SET x], ..,
//!   PRIMARY KEY (k, ..))` (snapshots).
//!
//! Literals are numbers (with an optional unary minus), strings (plain, `N'..'`,
//! `E'..'`, `U&'..'`, `X'..'`), `NULL`, `TRUE`/`FALSE`, typed `DATE`/`TIME`/`TIMESTAMP`
//! strings, plus exactly the non-literal forms the dialect module marks **fn** for the
//! target's dialect: SQLite `CAST(X'..' AS TEXT)`, MySQL `_utf8mb4 X'..'`, SQL Server
//! `CAST(0x.. AS NVARCHAR(MAX))`, Oracle `UNISTR('..')`, `HEXTORAW('..')`,
//! `EMPTY_BLOB()`, `[-]BINARY_DOUBLE_INFINITY`, `BINARY_DOUBLE_NAN` and
//! `INTERVAL '..' DAY TO SECOND(9)`. Anything else is refused: function calls,
//! subqueries, column references in values, several statements on one line, `ATTACH`,
//! `PRAGMA`, transaction control, any other DDL, `RETURNING`/`ON CONFLICT` and other
//! clauses. A `WHERE` must be a conjunction of `column = literal` / `column IS NULL`
//! (which columns are the key is not known here: the check is on the shape).
//!
//! No statement may hold a comment, in any dialect (`comments`): MariaDB and MySQL
//! execute `/*M! .. */` and `/*! .. */`, which sqlparser reads as comments, so a signed
//! `DELETE FROM "t" WHERE "id" = 16 /*M! OR 1=1 */;` would empty `t`. Text that looks
//! like a comment inside a string or a quoted name is data, and accepted.
//!
//! On MySQL and MariaDB, which commit implicitly at DDL, [`BatchOrder`] also accepts a
//! `CREATE TABLE` only as the first statement of a snapshot batch, where the sender
//! writes it.
//!
//! # How it is enforced
//!
//! - Every target, first: an exact scan refuses any comment outside quoted strings and
//!   identifiers as the target's server reads them (`comments`, its module docs give
//!   the quote rules per dialect and what it refuses rather than risk misreading); the
//!   parse then also refuses a comment token of sqlparser's tokenizer, or a comment hint
//!   it expanded into tokens. Both paths below start with the scan.
//! - Every target: the statement is parsed with `sqlparser` in the target's dialect
//!   ([`AllowList::validate`]), so that what is checked is what that server would read
//!   (for `INSERT INTO t VALUES ('x\''); DROP TABLE t; -- ')` the MySQL dialect sees two
//!   statements, which is refused; the receiver's MySQL session also runs with
//!   `NO_BACKSLASH_ESCAPES`, so the server itself would read one string).
//! - SQLite targets in addition: SQLite's own authorizer, during the batch's statements
//!   (see `crate::apply::SqliteBackend`), allows only INSERT/UPDATE/DELETE on allowed
//!   tables, the column reads their `WHERE` needs, and `CREATE TABLE`; it denies every
//!   function, `SELECT`, `ATTACH`, `PRAGMA`, transaction control and other DDL. This is
//!   SQLite's parser's view, so a difference between sqlparser and SQLite cannot let a
//!   statement through.
//!
//! - Every target, first: the renderer's own `INSERT`/`UPDATE`/`DELETE` shapes are
//!   recognised by a hand-written scanner (`fast`, its module docs give the grammar and
//!   why it accepts nothing the parse would refuse), so the common case skips
//!   sqlparser; whatever it does not recognise, and every refusal, is decided by the
//!   parse.
//!
//! # Table names
//!
//! `[target] tables = ["plant1_*", "meter"]`: `*` matches any run of characters (also
//! none); everything else matches itself, case-sensitively, against the table name as
//! the statement spells it without its quotes (the sender quotes every name, keeping its
//! case). Only one-part names are allowed (no `schema.table`: the target's default
//! schema). Without `tables`, every table of the default schema is allowed. gapsync's
//! own tables (names starting with `_gapsync_`, in any case) are never allowed.

use sqlparser::ast::{
    AssignmentTarget, CastKind, ColumnOption, DataType, Expr, FromTable, Ident, ObjectName,
    ObjectNamePart, SetExpr, Statement, TableConstraint, TableFactor, TableObject, TableWithJoins,
    UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::{
    Dialect as SqlDialect, GenericDialect, MsSqlDialect, MySqlDialect, OracleDialect,
    PostgreSqlDialect, SQLiteDialect,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};

use gapsync_common::batch::BatchKind;
use gapsync_common::dialect::Dialect;

/// Why the allow-list refuses a statement: one line for the operator, which the
/// applier reports with the batch file and line ("statement refused: ...") and which
/// fails the batch deterministically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl From<&str> for Refusal {
    fn from(s: &str) -> Refusal {
        Refusal(s.to_owned())
    }
}

impl From<String> for Refusal {
    fn from(s: String) -> Refusal {
        Refusal(s)
    }
}

/// Prefix of gapsync's own tables, never writable by a batch.
pub const OWN_PREFIX: &str = "_gapsync_";

/// Which tables batch statements may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// `None`: any table of the default schema except gapsync's own.
    patterns: Option<Vec<String>>,
}

impl AllowList {
    /// From `[target] tables` (None when the key is absent).
    pub fn new(patterns: Option<Vec<String>>) -> AllowList {
        AllowList { patterns }
    }

    /// One line for `check`: which tables batches may write.
    pub fn describe(&self) -> String {
        match &self.patterns {
            Some(p) => format!(
                "batches may write tables matching {} (gapsync's own {OWN_PREFIX}* never)",
                p.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "[target] tables is not set: batches may write any table of the target's \
                 default schema except gapsync's own {OWN_PREFIX}*"
            ),
        }
    }

    /// Whether a batch may write `table` (the name without quotes).
    pub fn allows(&self, table: &str) -> bool {
        if is_own(table) {
            return false;
        }
        match &self.patterns {
            None => true,
            Some(ps) => ps.iter().any(|p| glob(p.as_bytes(), table.as_bytes())),
        }
    }

    /// Check one batch statement (one line, ending in `;`) parsed in `dialect`.
    /// The error says why it is refused.
    ///
    /// The renderer's own `INSERT`/`UPDATE`/`DELETE` shapes are recognised by a scanner
    /// ([`fast`]) that accepts only what the full check below accepts too; anything it
    /// does not recognise, and every refusal, goes through the full check.
    pub fn validate(&self, dialect: Dialect, sql: &str) -> Result<(), Refusal> {
        if let Some(table) = fast::recognise(dialect, sql)
            && self.allows(&table)
        {
            return Ok(());
        }
        self.validate_parsed(dialect, sql)
    }

    /// [`AllowList::validate`] without the fast path: parsed by sqlparser.
    fn validate_parsed(&self, dialect: Dialect, sql: &str) -> Result<(), Refusal> {
        let d = parser_dialect(dialect);
        // No comments, as the server reads the text (an exact scan), and as sqlparser
        // reads it (its tokens, below).
        comments::refuse(dialect, sql)?;
        let tokens = tokens_without_comments(d, sql)?;
        // SQL Server's snapshot DDL: `IF OBJECT_ID(N'[t]', N'U') IS NULL CREATE TABLE [t] (..)`:
        // the CREATE TABLE is checked, and the prefix must be exactly the one for its name.
        let mut guarded = None;
        let mut body = sql;
        if dialect == Dialect::SqlServer && sql.starts_with("IF OBJECT_ID(") {
            const MID: &str = ") IS NULL ";
            let i = sql
                .find(") IS NULL CREATE TABLE ")
                .ok_or("IF statement other than the snapshot's CREATE TABLE")?;
            guarded = Some(&sql[..i + MID.len()]);
            body = &sql[i + MID.len()..];
        }
        if dialect == Dialect::Sqlite && sql.starts_with("CREATE TABLE") {
            return self.sqlite_create_table(sql);
        }
        let tokens = match guarded {
            // The CREATE TABLE after the guard (its tokens, from the same tokenizer).
            Some(_) => tokenize(d, body)?,
            None => tokens,
        };
        let stmts = Parser::new(d)
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .map_err(|e| format!("cannot parse it: {e}"))?;
        let stmt = match stmts.as_slice() {
            [one] => one,
            [] => return Err("no statement".into()),
            more => {
                return Err(format!(
                    "{} statements on one line ({} dialect)",
                    more.len(),
                    dialect.name()
                )
                .into());
            }
        };
        let ck = Check {
            dialect,
            plain_create: guarded.is_some() || dialect == Dialect::Oracle,
        };
        ck.statement(self, stmt)?;
        if let (Some(prefix), Statement::CreateTable(c)) = (guarded, stmt) {
            let name = one_part(&c.name).ok_or("CREATE TABLE of a qualified name")?;
            let mut quoted = String::new();
            dialect.quote_ident(&name.value, &mut quoted);
            let want = format!(
                "IF OBJECT_ID(N'{}', N'U') IS NULL ",
                quoted.replace('\'', "''")
            );
            if prefix != want {
                return Err("IF statement other than the snapshot's CREATE TABLE".into());
            }
        } else if guarded.is_some() {
            return Err("IF statement other than the snapshot's CREATE TABLE".into());
        }
        // Anything the checks above did not look at (RETURNING, ON CONFLICT, hints,
        // aliases, ...) makes the statement print differently from its canonical form.
        let canonical = ck.canonical(stmt);
        if canonical.as_deref() != Some(stmt.to_string().as_str()) {
            return Err("it has clauses gapsync never writes".into());
        }
        Ok(())
    }

    /// SQLite's snapshot DDL, checked by hand: SQLite keeps the source's declared types
    /// (`UNSIGNED BIG INT`, ...), which sqlparser does not all read. Exactly
    /// `CREATE TABLE IF NOT EXISTS "t" ("c" [type], .., PRIMARY KEY ("k", ..));` where a
    /// type is words of `[A-Za-z0-9_]` and parentheses holding numbers, and no word is
    /// one that starts a column constraint (`DEFAULT`, `CHECK`, `AS`, ...).
    fn sqlite_create_table(&self, sql: &str) -> Result<(), Refusal> {
        const BAD: &str = "not the snapshot's CREATE TABLE IF NOT EXISTS";
        const CONSTRAINT_WORDS: &[&str] = &[
            "CONSTRAINT",
            "PRIMARY",
            "KEY",
            "NOT",
            "NULL",
            "UNIQUE",
            "CHECK",
            "DEFAULT",
            "COLLATE",
            "REFERENCES",
            "GENERATED",
            "ALWAYS",
            "AS",
            "ON",
            "CONFLICT",
            "AUTOINCREMENT",
            "STORED",
            "VIRTUAL",
            "FOREIGN",
            "ASC",
            "DESC",
        ];
        let rest = sql.strip_prefix("CREATE TABLE IF NOT EXISTS ").ok_or(BAD)?;
        let (table, rest) = sqlite_quoted(rest).ok_or(BAD)?;
        if is_own(&table) {
            return Err(format!("table {table:?} is gapsync's own").into());
        }
        if !self.allows(&table) {
            return Err(format!("table {table:?} is not allowed by [target] tables").into());
        }
        let mut rest = rest.strip_prefix(" (").ok_or(BAD)?;
        loop {
            if let Some(mut r) = rest.strip_prefix("PRIMARY KEY (") {
                loop {
                    let (_, r2) = sqlite_quoted(r).ok_or(BAD)?;
                    if let Some(more) = r2.strip_prefix(", ") {
                        r = more;
                    } else if r2 == "));" {
                        return Ok(());
                    } else {
                        return Err(BAD.into());
                    }
                }
            }
            let (_, r) = sqlite_quoted(rest).ok_or(BAD)?;
            let mut depth = 0u32;
            let mut end = r.len();
            for (i, c) in r.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth > 0 => depth -= 1,
                    ')' => {
                        end = i;
                        break;
                    }
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let ty = &r[..end];
            let mut in_parens = false;
            for c in ty.chars() {
                let ok = match c {
                    '(' | ')' => {
                        in_parens = c == '(';
                        true
                    }
                    ' ' | ',' => true,
                    '+' | '-' | '0'..='9' => true,
                    c if c.is_ascii_alphanumeric() || c == '_' => !in_parens,
                    _ => false,
                };
                if !ok {
                    return Err(format!("column type {ty:?} is not a plain type name").into());
                }
            }
            if let Some(w) = ty
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| CONSTRAINT_WORDS.iter().any(|k| k.eq_ignore_ascii_case(w)))
            {
                return Err(format!("column constraint {w} in CREATE TABLE").into());
            }
            rest = &r[end..];
            if rest == ");" {
                return Ok(());
            }
            rest = rest.strip_prefix(", ").ok_or(BAD)?;
        }
    }

    fn table(&self, name: &ObjectName) -> Result<(), Refusal> {
        let t = one_part(name).ok_or_else(|| format!("table name {name} is not a plain name"))?;
        if is_own(&t.value) {
            Err(format!("table {name} is gapsync's own").into())
        } else if !self.allows(&t.value) {
            Err(format!("table {name} is not allowed by [target] tables").into())
        } else {
            Ok(())
        }
    }
}

/// A `"double-quoted"` identifier at the start of `s` (`""` for `"`): its name and the
/// text after it.
fn sqlite_quoted(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('"')?;
    let mut name = String::new();
    loop {
        let i = rest.find('"')?;
        name.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        match rest.strip_prefix('"') {
            Some(r) => {
                name.push('"');
                rest = r;
            }
            None => return Some((name, rest)),
        }
    }
}

/// gapsync's own tables, and SQLite's schema tables (`sqlite_*`, never a batch's).
fn is_own(table: &str) -> bool {
    let starts = |p: &str| {
        table.len() >= p.len() && table.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    starts(OWN_PREFIX) || starts("sqlite_")
}

/// `*` matches any run of bytes; everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

fn one_part(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Some(i),
        _ => None,
    }
}

mod check;
mod comments;
mod fast;
mod order;
mod parse;

use check::Check;
#[cfg(test)]
use check::plain_table;
pub use order::BatchOrder;
use parse::{parser_dialect, tokenize, tokens_without_comments};

#[cfg(test)]
mod tests;
