//! No comments in batch statements: an exact scan of what a statement holds outside its
//! quoted strings and identifiers, as the target server reads them.
//!
//! gapsync's sender never writes a comment. A comment is where a parser and a server can
//! disagree most cheaply: sqlparser reads `/*M! OR 1=1 */` and `/*!50000 ... */` as
//! comments, MariaDB and MySQL *execute* them; MySQL reads `#` as a comment, PostgreSQL
//! as an operator; SQL Server and PostgreSQL nest `/* */`, SQLite does not. So every
//! statement holding `--` (with or without a space after it), `/*` (whatever follows:
//! `/*!`, `/*!50000`, `/*M!`, `/*+`, nested or unterminated), `*/` or `#` outside quotes
//! is refused, on every target ([`refuse`]); the reason says "comment".
//!
//! # Outside quotes, as the server reads it
//!
//! Text inside `'..'` or a quoted identifier is data: a value `'a -- b /* c */ # d'` is
//! accepted. That makes the scan only as good as its idea of where a quote ends, which
//! must be the server's. Per dialect the scan follows exactly the quote forms of that
//! server:
//!
//! | dialect | quotes followed | ends at |
//! |---|---|---|
//! | sqlite | `'..'`, `".."`, `` `..` ``, `[..]` | the first unpaired quote (`''`, `""`, ` `` ` pair); `[..]` at the first `]` |
//! | postgres | `'..'` (also `N'`, `X'`, `U&'`), `E'..'`, `".."` | `''` pairs; in `E'..'` a `\` escapes the next character |
//! | mysql | `'..'`, `".."` (`ANSI_QUOTES`), `` `..` `` | the first unpaired quote |
//! | sqlserver | `'..'`, `".."`, `[..]` | the first unpaired quote; `]]` pairs |
//! | oracle, dm, sql92 | `'..'`, `".."` | the first unpaired quote |
//!
//! and refuses what it cannot follow exactly:
//!
//! - **A backslash right before a closing quote** in PostgreSQL's `'..'` and MySQL's
//!   `'..'` and `".."`. Whether `\'` ends the string depends on the session
//!   (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`): the receiver
//!   sets them, but a statement must not depend on it. If no backslash stands right
//!   before a quote character inside a string, reading backslashes as escapes or not
//!   ends every string at the same place (an escape then never swallows a quote), so
//!   the scan holds for either setting. gapsync's renderer writes no such text there:
//!   PostgreSQL text with a `\` goes into `E'..'` (read with escapes, whatever the
//!   session), MySQL text with a `\` as `_utf8mb4 X'..'`.
//! - **Any character outside quotes that the renderer never writes there**: only ASCII
//!   letters, digits, `_`, space and `( ) , . = ; - + &` may stand outside quotes. So a
//!   quote form the scan does not follow (PostgreSQL's `$$..$$`, Oracle's `q'[..]'`,
//!   MySQL's `[`, brackets or backticks where the dialect has none, ODBC's `{..}`
//!   escapes), a placeholder, an operator, a tab or a line break is refused rather than
//!   misread. Oracle's `q'..'`/`nq'..'` is refused by name.
//! - **An unterminated quote**.
//!
//! The parse path adds sqlparser's own view: a comment token from its tokenizer in the
//! target's dialect, or a comment hint it expanded, is refused too (`AllowList::validate`).

use super::Refusal;
use gapsync_common::dialect::Dialect;

/// How a dialect's server reads quotes (see the module docs).
struct Quotes {
    /// `` `..` `` is a quoted identifier.
    backtick: bool,
    /// `[..]` is a quoted identifier.
    bracket: bool,
    /// `]]` inside `[..]` stands for `]` (SQL Server); otherwise the first `]` ends it.
    bracket_pairs: bool,
    /// PostgreSQL's `E'..'`: backslash escapes, whatever the session.
    e_strings: bool,
    /// A backslash right before a quote character inside `'..'` (and, `mysql_double`,
    /// `".."`) is refused: its meaning depends on the session.
    backslash_ambiguous: bool,
    /// MySQL's `".."`: an identifier under `ANSI_QUOTES`, a string without it.
    mysql_double: bool,
    /// Oracle's `q'..'` / `nq'..'`: refused.
    q_quote: bool,
}

fn quotes(d: Dialect) -> Quotes {
    let base = Quotes {
        backtick: false,
        bracket: false,
        bracket_pairs: false,
        e_strings: false,
        backslash_ambiguous: false,
        mysql_double: false,
        q_quote: false,
    };
    match d {
        Dialect::Sqlite => Quotes {
            backtick: true,
            bracket: true,
            ..base
        },
        Dialect::Postgres => Quotes {
            e_strings: true,
            backslash_ambiguous: true,
            ..base
        },
        Dialect::Mysql => Quotes {
            backtick: true,
            backslash_ambiguous: true,
            mysql_double: true,
            ..base
        },
        Dialect::SqlServer => Quotes {
            bracket: true,
            bracket_pairs: true,
            ..base
        },
        Dialect::Oracle | Dialect::Dm => Quotes {
            q_quote: true,
            ..base
        },
        Dialect::Sql92 => base,
    }
}

/// What batches carry no matter the dialect: the reason for refusing a comment.
const NONE_WRITTEN: &str = "batch statements never hold comments (MySQL and MariaDB execute \
                            /*! .. */ and /*M! .. */)";

/// `Err(reason)` when `sql` holds a comment outside its quoted strings and identifiers,
/// as `d`'s server reads them, or anything that could make the scan misjudge where a
/// quote ends (see the module docs); the reason of a comment says "comment".
pub(super) fn refuse(d: Dialect, sql: &str) -> Result<(), Refusal> {
    let q = quotes(d);
    let b = sql.as_bytes();
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        match c {
            b'-' if next == Some(b'-') => {
                return Err(
                    format!("it holds a comment (`--` at byte {i}): {NONE_WRITTEN}").into(),
                );
            }
            b'/' if next == Some(b'*') => {
                let what = comment_kind(&b[i..]);
                return Err(
                    format!("it holds a comment ({what} at byte {i}): {NONE_WRITTEN}").into(),
                );
            }
            b'*' if next == Some(b'/') => {
                return Err(format!(
                    "it holds a comment (the comment end `*/` at byte {i}): {NONE_WRITTEN}"
                )
                .into());
            }
            b'#' => {
                return Err(format!(
                    "it holds a comment (`#` at byte {i}, a comment in MySQL and MariaDB): \
                     {NONE_WRITTEN}"
                )
                .into());
            }
            b'\'' => {
                let prev = i.checked_sub(1).and_then(|j| b.get(j)).copied();
                let before = i.checked_sub(2).and_then(|j| b.get(j)).copied();
                if q.q_quote && matches!(prev, Some(b'q' | b'Q')) {
                    return Err(format!(
                        "Oracle's q'..' quoting at byte {}: gapsync never writes it, and the \
                         check does not follow it (a comment could hide behind it)",
                        i - 1
                    )
                    .into());
                }
                // PostgreSQL reads `E'` as an escape string only where `E` starts a
                // token; after an identifier character it is a plain string.
                let e_string = q.e_strings
                    && matches!(prev, Some(b'e' | b'E'))
                    && !before.is_some_and(ident_char);
                i = if e_string {
                    escaped_string(b, i)?
                } else {
                    quoted(b, i, b'\'', true, q.backslash_ambiguous)?
                };
                continue;
            }
            b'"' => {
                i = quoted(b, i, b'"', true, q.mysql_double)?;
                continue;
            }
            b'`' if q.backtick => {
                i = quoted(b, i, b'`', true, false)?;
                continue;
            }
            b'[' if q.bracket => {
                i = quoted(b, i, b']', q.bracket_pairs, false)?;
                continue;
            }
            c if c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'_' | b' ' | b'(' | b')' | b',' | b'.' | b'=' | b';' | b'-' | b'+' | b'&'
                ) => {}
            _ => {
                let ch = sql.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(format!(
                    "{ch:?} at byte {i} outside quotes: gapsync writes no such character \
                     there (it could open a quote or a comment the check cannot follow)"
                )
                .into());
            }
        }
        i += 1;
    }
    Ok(())
}

/// Which `/*` comment starts `s`, for the reason.
fn comment_kind(s: &[u8]) -> &'static str {
    let rest = &s[2..];
    if rest.starts_with(b"M!") {
        "MariaDB's executable comment `/*M!`"
    } else if rest.starts_with(b"!") {
        "MySQL's executable comment `/*!`"
    } else if rest.starts_with(b"+") {
        "an optimizer hint comment `/*+`"
    } else {
        "`/*`"
    }
}

/// Bytes PostgreSQL reads as part of an identifier or number token.
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The quote opening at `b[open]` closes at the first `close` not paired (`pairs`: a
/// doubled `close` stands for one); returns the index after it. `ambiguous`: a
/// backslash right before a `close` byte inside is refused.
fn quoted(
    b: &[u8],
    open: usize,
    close: u8,
    pairs: bool,
    ambiguous: bool,
) -> Result<usize, Refusal> {
    let mut i = open + 1;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(unterminated(b, open));
        };
        if c == b'\\' && ambiguous && b.get(i + 1) == Some(&close) {
            return Err(format!(
                "a backslash before a quote at byte {i}: whether it escapes the quote depends \
                 on the server's settings, so a comment could hide behind it; gapsync never \
                 writes one there"
            )
            .into());
        }
        if c == close {
            if pairs && b.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
}

/// PostgreSQL's `E'..'` opening at `b[open]`: `''` and a backslash escape the next
/// character; returns the index after the closing quote.
fn escaped_string(b: &[u8], open: usize) -> Result<usize, Refusal> {
    let mut i = open + 1;
    loop {
        match b.get(i) {
            None => return Err(unterminated(b, open)),
            Some(b'\\') => i += 2,
            Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
            Some(b'\'') => return Ok(i + 1),
            Some(_) => i += 1,
        }
    }
}

fn unterminated(b: &[u8], open: usize) -> Refusal {
    let q = b.get(open).map_or('?', |&c| char::from(c));
    Refusal(format!(
        "an unterminated quote ({q}) from byte {open}: what follows it cannot be checked for \
         comments"
    ))
}
