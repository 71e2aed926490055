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
    pub fn validate(&self, dialect: Dialect, sql: &str) -> Result<(), String> {
        if let Some(table) = fast::recognise(dialect, sql)
            && self.allows(&table)
        {
            return Ok(());
        }
        self.validate_parsed(dialect, sql)
    }

    /// [`AllowList::validate`] without the fast path: parsed by sqlparser.
    fn validate_parsed(&self, dialect: Dialect, sql: &str) -> Result<(), String> {
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
                ));
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
    fn sqlite_create_table(&self, sql: &str) -> Result<(), String> {
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
            return Err(format!("table {table:?} is gapsync's own"));
        }
        if !self.allows(&table) {
            return Err(format!("table {table:?} is not allowed by [target] tables"));
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
                    return Err(format!("column type {ty:?} is not a plain type name"));
                }
            }
            if let Some(w) = ty
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| CONSTRAINT_WORDS.iter().any(|k| k.eq_ignore_ascii_case(w)))
            {
                return Err(format!("column constraint {w} in CREATE TABLE"));
            }
            rest = &r[end..];
            if rest == ");" {
                return Ok(());
            }
            rest = rest.strip_prefix(", ").ok_or(BAD)?;
        }
    }

    fn table(&self, name: &ObjectName) -> Result<(), String> {
        let t = one_part(name).ok_or_else(|| format!("table name {name} is not a plain name"))?;
        if is_own(&t.value) {
            Err(format!("table {name} is gapsync's own"))
        } else if !self.allows(&t.value) {
            Err(format!("table {name} is not allowed by [target] tables"))
        } else {
            Ok(())
        }
    }
}

/// `sql`'s tokens in dialect `d`; refused if sqlparser reads a comment in it, or
/// expanded a comment hint (`/*! .. */`, which its MySQL and generic dialects read as
/// the text inside: the tokens then no longer cover the text end to end).
fn tokens_without_comments(d: &dyn SqlDialect, sql: &str) -> Result<Vec<TokenWithSpan>, String> {
    let tokens = tokenize(d, sql)?;
    let mut at = Location::new(1, 1);
    for t in &tokens {
        if let Token::Whitespace(
            w @ (Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)),
        ) = &t.token
        {
            let text = w.to_string();
            return Err(format!(
                "it holds a comment (sqlparser reads {:?} at line {}, column {}): batch \
                 statements never hold comments",
                text.trim_end(),
                t.span.start.line,
                t.span.start.column
            ));
        }
        if t.span.start != at {
            return Err(format!(
                "it holds a comment that sqlparser expanded as a hint (at line {}, column {}): \
                 batch statements never hold comments",
                at.line, at.column
            ));
        }
        at = t.span.end;
    }
    // As sqlparser counts: a line break starts line + 1 at column 1.
    let end = sql.chars().fold(Location::new(1, 1), |l, c| {
        if c == '\n' {
            Location::new(l.line + 1, 1)
        } else {
            Location::new(l.line, l.column + 1)
        }
    });
    if at != end {
        return Err(format!(
            "it holds a comment that sqlparser expanded as a hint (at line {}, column {}): \
             batch statements never hold comments",
            at.line, at.column
        ));
    }
    Ok(tokens)
}

fn tokenize(d: &dyn SqlDialect, sql: &str) -> Result<Vec<TokenWithSpan>, String> {
    Tokenizer::new(d, sql)
        .tokenize_with_location()
        .map_err(|e| {
            format!(
                "cannot parse it: {}",
                sqlparser::parser::ParserError::from(e)
            )
        })
}

/// Where in its batch a statement may stand: fed every statement of ONE batch in order
/// (each after [`AllowList::validate`] accepted it), before the statement runs.
///
/// MySQL, MariaDB, Oracle and DM commit implicitly at DDL: a `CREATE TABLE` after other statements
/// would commit them without the batch's ledger row, so a batch failing later would
/// leave them behind (ARCHITECTURE.md invariant I2). The sender writes `CREATE TABLE` only as
/// the first statement of a snapshot batch (`batch::BatchKind::Snapshot`), where
/// nothing of the batch has run yet. So on a `mysql`, `oracle` or `dm` target every
/// statement other than `INSERT`, `UPDATE` and `DELETE` is accepted only there, and
/// refused anywhere else before it runs. Other targets have transactional DDL: no rule.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    dialect: Dialect,
    kind: BatchKind,
    /// Statements of the batch seen so far.
    seen: u64,
}

impl BatchOrder {
    /// For one batch of `kind` (its header's) on a target of `dialect`.
    pub fn new(dialect: Dialect, kind: BatchKind) -> BatchOrder {
        BatchOrder {
            dialect,
            kind,
            seen: 0,
        }
    }

    /// The next statement of the batch; the error says why it may not stand there.
    pub fn check(&mut self, sql: &str) -> Result<(), String> {
        let first = self.seen == 0;
        self.seen += 1;
        let implicit_commit =
            matches!(self.dialect, Dialect::Mysql | Dialect::Oracle | Dialect::Dm);
        if !implicit_commit || is_change(sql) {
            return Ok(());
        }
        let what = sql.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let what = what.trim_start();
        match self.kind {
            BatchKind::Snapshot if first => Ok(()),
            BatchKind::Snapshot => Err(format!(
                "{what} after the first statement of a snapshot batch: on this target (MySQL, \
                 MariaDB, Oracle, DM) it would commit the statements before it implicitly (gapsync writes CREATE TABLE \
                 only as a snapshot batch's first statement)"
            )),
            BatchKind::Changes => Err(format!(
                "{what} in a changes batch: on this target (MySQL, MariaDB, Oracle, DM) it \
                 would commit the batch's statements implicitly (gapsync writes CREATE TABLE only as a snapshot batch's \
                 first statement)"
            )),
        }
    }
}

/// `INSERT`, `UPDATE` or `DELETE` (in any case, after leading spaces): statements that
/// MySQL runs inside the transaction.
fn is_change(sql: &str) -> bool {
    let s = sql.trim_start().as_bytes();
    ["INSERT ", "UPDATE ", "DELETE "]
        .iter()
        .any(|k| s.len() >= k.len() && s[..k.len()].eq_ignore_ascii_case(k.as_bytes()))
}

/// The sqlparser dialect statements of `dialect` are parsed in.
fn parser_dialect(dialect: Dialect) -> &'static dyn SqlDialect {
    match dialect {
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlSession,
        Dialect::SqlServer => &MsSqlDialect {},
        Dialect::Sql92 => &GenericDialect {},
        Dialect::Oracle | Dialect::Dm => &OracleDialect {},
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

/// MySQL as the receiver's session reads it: `sql_mode` has `ANSI_QUOTES` (`"x"` is an
/// identifier) and `NO_BACKSLASH_ESCAPES` (`\` is an ordinary character in strings).
/// Reading backslashes as escapes here while the server does not would let
/// `VALUES ('\', sleep(5)) -- ')` pass as one string and run `sleep` on the server.
/// Everything else is sqlparser's MySQL dialect (its `dialect()` is MySQL's, so the
/// parser's MySQL-specific rules apply).
#[derive(Debug)]
struct MySqlSession;

impl SqlDialect for MySqlSession {
    fn dialect(&self) -> std::any::TypeId {
        std::any::TypeId::of::<MySqlDialect>()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }
    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('"')
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }
    fn supports_string_literal_concatenation(&self) -> bool {
        true
    }
    fn supports_numeric_prefix(&self) -> bool {
        true
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        true
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        true
    }
    fn supports_insert_set(&self) -> bool {
        true
    }
    fn supports_create_table_select(&self) -> bool {
        true
    }
    fn supports_data_type_signed_suffix(&self) -> bool {
        true
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        true
    }
    fn supports_key_column_option(&self) -> bool {
        true
    }
    fn supports_double_ampersand_operator(&self) -> bool {
        true
    }
    fn supports_binary_kw_as_cast(&self) -> bool {
        true
    }
}

struct Check {
    dialect: Dialect,
    /// The snapshot's CREATE TABLE has no `IF NOT EXISTS`: SQL Server's
    /// `IF OBJECT_ID(..) IS NULL CREATE TABLE`, and Oracle's plain `CREATE TABLE` (before
    /// 23ai Oracle has no `IF NOT EXISTS`; the applier takes ORA-00955 "name is already
    /// used" of that statement as the table being there: `apply::already_there`).
    plain_create: bool,
}

impl Check {
    fn statement(&self, allow: &AllowList, stmt: &Statement) -> Result<(), String> {
        match stmt {
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return Err("INSERT into a table function".into());
                };
                allow.table(name)?;
                let rows = insert_rows(ins).ok_or("INSERT without a plain VALUES list")?;
                for row in rows {
                    for v in &row.content {
                        self.literal(v)?;
                    }
                }
                Ok(())
            }
            Statement::Update(u) => {
                allow.table(plain_table(&u.table).ok_or("UPDATE of a join or a subquery")?)?;
                for a in &u.assignments {
                    match &a.target {
                        AssignmentTarget::ColumnName(c) if one_part(c).is_some() => {}
                        _ => return Err("UPDATE SET of something other than a column".into()),
                    }
                    self.literal(&a.value)?;
                }
                match &u.selection {
                    Some(w) => self.key_match(w),
                    None => Err("UPDATE without WHERE".into()),
                }
            }
            Statement::Delete(d) => {
                let from = match &d.from {
                    FromTable::WithFromKeyword(f) => f,
                    FromTable::WithoutKeyword(_) => return Err("DELETE without FROM".into()),
                };
                let [t] = from.as_slice() else {
                    return Err("DELETE from several tables".into());
                };
                if !d.tables.is_empty() {
                    return Err("multi-table DELETE".into());
                }
                allow.table(plain_table(t).ok_or("DELETE from a join or a subquery")?)?;
                match &d.selection {
                    Some(w) => self.key_match(w),
                    None => Ok(()),
                }
            }
            Statement::CreateTable(c) => {
                if c.if_not_exists == self.plain_create {
                    return Err(if self.plain_create {
                        format!(
                            "CREATE TABLE IF NOT EXISTS ({} dialect)",
                            self.dialect.name()
                        )
                    } else {
                        "CREATE TABLE without IF NOT EXISTS".into()
                    });
                }
                allow.table(&c.name)?;
                for col in &c.columns {
                    for o in &col.options {
                        match &o.option {
                            ColumnOption::NotNull
                            | ColumnOption::Null
                            | ColumnOption::Collation(_)
                            | ColumnOption::CharacterSet(_) => {}
                            other => {
                                return Err(format!("column option {other} in CREATE TABLE"));
                            }
                        }
                    }
                }
                for k in &c.constraints {
                    match k {
                        TableConstraint::PrimaryKey(_) => {}
                        other => return Err(format!("constraint {other} in CREATE TABLE")),
                    }
                }
                Ok(())
            }
            other => Err(format!("{} is not a statement gapsync writes", kind(other))),
        }
    }

    /// The statement as it prints when it has only the parts [`Check::statement`] checked.
    fn canonical(&self, stmt: &Statement) -> Option<String> {
        use std::fmt::Write;
        let mut out = String::new();
        match stmt {
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return None;
                };
                let _ = write!(out, "INSERT INTO {name}");
                if !ins.columns.is_empty() {
                    out.push_str(" (");
                    join(&mut out, &ins.columns);
                    out.push(')');
                }
                out.push_str(" VALUES ");
                for (i, row) in insert_rows(ins)?.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('(');
                    join(&mut out, &row.content);
                    out.push(')');
                }
            }
            Statement::Update(u) => {
                let _ = write!(out, "UPDATE {} SET ", plain_table(&u.table)?);
                join(&mut out, &u.assignments);
                let _ = write!(out, " WHERE {}", u.selection.as_ref()?);
            }
            Statement::Delete(d) => {
                let FromTable::WithFromKeyword(f) = &d.from else {
                    return None;
                };
                let _ = write!(out, "DELETE FROM {}", plain_table(f.first()?)?);
                if let Some(w) = &d.selection {
                    let _ = write!(out, " WHERE {w}");
                }
            }
            Statement::CreateTable(c) => {
                let b = sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder::new(
                    c.name.clone(),
                )
                .if_not_exists(!self.plain_create)
                .columns(c.columns.clone())
                .constraints(c.constraints.clone());
                return Some(Statement::CreateTable(b.build()).to_string());
            }
            _ => return None,
        }
        Some(out)
    }

    /// A conjunction of `column = literal` / `column IS NULL`.
    fn key_match(&self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::BinaryOp { left, op, right } => match op {
                sqlparser::ast::BinaryOperator::And => {
                    self.key_match(left)?;
                    self.key_match(right)
                }
                sqlparser::ast::BinaryOperator::Eq => {
                    if !matches!(**left, Expr::Identifier(_)) {
                        return Err(format!("WHERE compares {left}, not a column"));
                    }
                    self.literal(right)
                }
                other => Err(format!("WHERE uses {other}")),
            },
            Expr::IsNull(c) if matches!(**c, Expr::Identifier(_)) => Ok(()),
            other => Err(format!("WHERE holds {other}, not column = literal")),
        }
    }

    fn literal(&self, e: &Expr) -> Result<(), String> {
        let d = self.dialect;
        let ok = match e {
            Expr::Value(v) => plain_value(&v.value),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match &**expr {
                Expr::Value(v) => matches!(v.value, SqlValue::Number(..)),
                Expr::Identifier(i) => d == Dialect::Oracle && i.value == "BINARY_DOUBLE_INFINITY",
                _ => false,
            },
            Expr::TypedString(t) => {
                matches!(t.value.value, SqlValue::SingleQuotedString(_))
                    && matches!(
                        t.data_type,
                        DataType::Date
                            | DataType::Time(..)
                            | DataType::Timestamp(..)
                            | DataType::TimestampNtz(..)
                    )
            }
            Expr::Prefixed { prefix, value } => {
                d == Dialect::Mysql
                    && prefix.value.eq_ignore_ascii_case("_utf8mb4")
                    && matches!(&**value, Expr::Value(v) if matches!(v.value, SqlValue::HexStringLiteral(_)))
            }
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type,
                format: None,
                ..
            } => match (d, &**expr, data_type) {
                (Dialect::Sqlite, Expr::Value(v), DataType::Text) => {
                    matches!(v.value, SqlValue::HexStringLiteral(_))
                }
                (Dialect::SqlServer, Expr::Value(v), DataType::Nvarchar(_)) => {
                    matches!(
                        v.value,
                        SqlValue::HexStringLiteral(_) | SqlValue::Number(..)
                    )
                }
                _ => false,
            },
            Expr::Identifier(i) => {
                d == Dialect::Oracle
                    && matches!(
                        i.value.as_str(),
                        "BINARY_DOUBLE_INFINITY" | "BINARY_DOUBLE_NAN"
                    )
            }
            Expr::Function(f) => d == Dialect::Oracle && oracle_fn(f),
            Expr::Interval(i) => {
                d == Dialect::Oracle
                    && matches!(&*i.value, Expr::Value(v) if matches!(v.value, SqlValue::SingleQuotedString(_)))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{e} is not a literal"))
        }
    }
}

fn plain_value(v: &SqlValue) -> bool {
    matches!(
        v,
        SqlValue::Number(..)
            | SqlValue::SingleQuotedString(_)
            | SqlValue::NationalStringLiteral(_)
            | SqlValue::EscapedStringLiteral(_)
            | SqlValue::UnicodeStringLiteral(_)
            | SqlValue::HexStringLiteral(_)
            | SqlValue::Boolean(_)
            | SqlValue::Null
    )
}

/// Oracle's `UNISTR('..')`, `HEXTORAW('..')`, `EMPTY_BLOB()`.
fn oracle_fn(f: &sqlparser::ast::Function) -> bool {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Some(name) = one_part(&f.name) else {
        return false;
    };
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return false;
    }
    match (name.value.to_ascii_uppercase().as_str(), &f.args) {
        ("EMPTY_BLOB", FunctionArguments::List(l)) => l.args.is_empty() && l.clauses.is_empty(),
        ("UNISTR" | "HEXTORAW", FunctionArguments::List(l)) => {
            l.clauses.is_empty()
                && l.duplicate_treatment.is_none()
                && matches!(l.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))]
                    if matches!(v.value, SqlValue::SingleQuotedString(_)))
        }
        _ => false,
    }
}

fn insert_rows(ins: &sqlparser::ast::Insert) -> Option<&[sqlparser::ast::Parens<Vec<Expr>>]> {
    let q = ins.source.as_ref()?;
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    match &*q.body {
        SetExpr::Values(v) if !v.explicit_row => Some(&v.rows),
        _ => None,
    }
}

fn plain_table(t: &TableWithJoins) -> Option<&ObjectName> {
    if !t.joins.is_empty() {
        return None;
    }
    match &t.relation {
        TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } => Some(name),
        _ => None,
    }
}

fn join<T: std::fmt::Display>(out: &mut String, items: &[T]) {
    use std::fmt::Write;
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{it}");
    }
}

/// A short name for a statement's kind, for the refusal message.
fn kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ")
}

mod comments;
mod fast;

#[cfg(test)]
mod tests;
