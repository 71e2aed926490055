//! The allow-list's fast path: a hand-written scanner for exactly the `INSERT`, `UPDATE`
//! and `DELETE` statements the renderer (`gapsync_common::dialect`) writes, so that the common
//! case skips sqlparser (tokenizer, parser and two `Display` renderings of the AST).
//!
//! [`recognise`] either recognises the WHOLE statement and returns its table name
//! (unquoted), or returns `None`. [`super::AllowList::validate`] accepts a recognised
//! statement when its table is allowed ([`super::AllowList::allows`], the very check the
//! slow path makes on the same name); in every other case (not recognised, or a table
//! not allowed) it runs the full sqlparser check, which decides and words the refusal.
//! So the fast path never refuses anything and never changes a refusal's message: it
//! only skips the parse for statements the parse would accept.
//!
//! # Grammar (byte for byte; `␣` is one ASCII space, nothing else is whitespace)
//!
//! ```text
//! stmt    = insert | update | delete , ";" , end of input
//! insert  = "INSERT INTO␣" ident "␣(" ident { ",␣" ident } ")␣VALUES␣(" lit { ",␣" lit } ")"
//!           (as many literals as columns)
//! update  = "UPDATE␣" ident "␣SET␣" ident "␣=␣" lit { ",␣" ident "␣=␣" lit } "␣WHERE␣" where
//! delete  = "DELETE␣FROM␣" ident [ "␣WHERE␣" where ]
//! where   = cond { "␣AND␣" cond }
//! cond    = ident "␣=␣" lit | ident "␣IS␣NULL"
//! ident   = '"' { char other than '"' | '""' } '"'      (every dialect but sqlserver)
//!         | "[" { char other than "]" | "]]" } "]"      (sqlserver)
//!           non-empty; no control character (U+0000..U+001F, U+007F); mysql: no "\"
//! lit     = "NULL" | number | string | the dialect's extra forms below
//! number  = [ "-" ] digit+ [ "." digit+ ] [ "e" [ "-" ] digit+ ]
//! string  = "'" { char other than "'" | "''" } "'"
//!           no NUL, CR or LF; no "\" in mysql, nor in a dialect whose sqlparser
//!           tokenizer reads backslash escapes in strings (none of ours does)
//! hex     = "X'" { hexdigit hexdigit } "'"
//! typed   = KEYWORD "␣'" { digit | "-" | ":" | "." | "+" | "␣" }+ "'"
//! ```
//!
//! Extra literal forms, per dialect, exactly those the renderer writes:
//!
//! | dialect | forms |
//! |---|---|
//! | sqlite | `hex`, `"CAST(" hex "␣AS␣TEXT)"` |
//! | sql92 | `hex`, `TRUE`, `FALSE`, `typed` with `DATE`, `TIME`, `TIMESTAMP`, `"U&'" { char other than "'" and "\" \| "''" \| "\\" \| "\000A" \| "\000D" \| "\0000" } "'"` |
//! | postgres | `"E'" { char other than "'" and "\" \| "''" \| "\\" \| "\n" \| "\r" } "'"` (the two-character escapes), `typed` with `DATE`, `TIME`, `TIMESTAMP`, `TIMESTAMPTZ` |
//! | mysql | `hex`, `"_utf8mb4␣" hex`, `typed` with `DATE`, `TIME`, `TIMESTAMP` |
//! | sqlserver | `"N" string`, `"0x" hexdigit*`, `"CAST(0x" hexdigit+ "␣AS␣NVARCHAR(MAX))"` |
//! | oracle | `typed` with `DATE`, `TIMESTAMP`; `"HEXTORAW('" hexdigit* "')"`, `"EMPTY_BLOB()"`, `"UNISTR(" string ")"`, `"BINARY_DOUBLE_INFINITY"`, `"-BINARY_DOUBLE_INFINITY"`, `"BINARY_DOUBLE_NAN"`, `"INTERVAL␣'0␣" timechar+ "'␣DAY␣TO␣SECOND(9)"` (timechar: the characters of `typed`) |
//! | dm | `"0x" hexdigit*`, `typed` with `DATE`, `TIME`, `TIMESTAMP` |
//!
//! Everything else (snapshot DDL, Oracle's `0.1d` (which sqlparser does not read), other
//! spacing, comments, more rows, a missing or second `;`) is not recognised: the slow
//! path decides. Before the grammar, [`recognise`] asks the same exact comment scan the
//! slow path starts with (`super::comments`), so both paths refuse comments by one rule
//! (and a text the scan refuses for a backslash before a quote is not recognised).
//!
//! # Why it accepts nothing the slow path refuses
//!
//! - Outside quoted identifiers and literals, every byte is fixed text of the grammar:
//!   keywords, single spaces, `(`, `)`, `,`, `=`, one final `;`. None of it can start a
//!   comment (`--`, `/*`, MySQL's `#`), a second statement or an operator other than the
//!   `=` and `AND` the slow path allows; a literal is always followed by `,`, `)`, `;`
//!   or a space and a keyword, so no token can glue onto it (sqlparser's MySQL numeric
//!   prefix words like `1abc`, a number's `L` suffix, string concatenation need other
//!   characters there).
//! - The quoted parts are scanned by sqlparser 0.63's tokenizer rules: a delimited
//!   identifier ends at the first close quote not doubled (no backslash escapes); a
//!   `'..'`/`N'..'` string ends at the first `'` not doubled, and a backslash would be an
//!   escape only if the dialect's `supports_string_literal_backslash_escape()` is true:
//!   then (and always in MySQL, to stay clear of the session's `NO_BACKSLASH_ESCAPES`
//!   question) a backslash makes the scanner give up. PostgreSQL's `E'..'` takes only the
//!   escapes `\\`, `\n` and `\r`, and `U&'..'` only `\\` and the three `\XXXX` the
//!   renderer writes: the tokenizer reads each as one (valid, non-NUL for `E'..'`)
//!   character. `X'..'`, `0x..` and `HEXTORAW('..')` hold hex digits only.
//!   So the tokenizer splits the statement where the scanner does.
//! - Each recognised literal is one the slow path's `Check::literal` accepts for that
//!   dialect (`Value::Number` with an optional unary minus, the string and hex literal
//!   kinds, `Boolean`, `Null`, typed strings of the listed types, and the dialect's
//!   **fn** forms); `WHERE` is a conjunction of `column = literal` / `column IS NULL`;
//!   the table and the columns are one-part names; and the statement has no clause the
//!   slow path's canonical form would not print.
//! - The table name returned is the identifier with its doubled quote undone, which is
//!   the `Ident::value` the slow path checks.
//!
//! `allow::tests::differential` checks all this differentially against the slow path, on the
//! golden files, the renderer's outputs, the hostile corpus and mutations of them.

use std::borrow::Cow;

use gapsync_common::dialect::Dialect;

/// The literal forms a dialect's renderer writes beyond `NULL`, numbers and `'..'`.
struct Forms {
    /// `X'..'`.
    hex_x: bool,
    /// SQLite's `CAST(X'..' AS TEXT)`.
    cast_x_text: bool,
    /// MySQL's `_utf8mb4 X'..'`.
    utf8mb4: bool,
    /// PostgreSQL's `E'..'`.
    e_string: bool,
    /// SQL Server's `N'..'` and `CAST(0x.. AS NVARCHAR(MAX))`.
    sqlserver: bool,
    /// `0x..` (SQL Server, DM).
    hex_0x: bool,
    /// SQL:2003's `U&'..'` (sql92).
    unicode: bool,
    /// Oracle's `HEXTORAW('..')`, `EMPTY_BLOB()`, `UNISTR('..')`, `[-]BINARY_DOUBLE_INFINITY`,
    /// `BINARY_DOUBLE_NAN`, `INTERVAL '..' DAY TO SECOND(9)`.
    oracle: bool,
    /// `TRUE`, `FALSE`.
    booleans: bool,
    /// Type keywords of typed string literals, each followed by a space.
    typed: &'static [&'static str],
    /// A `\` may stand in a `'..'` or `N'..'` string (and is an ordinary character).
    backslash: bool,
    /// Quotes of delimited identifiers.
    open: u8,
    close: u8,
}

fn forms(d: Dialect) -> Forms {
    let base = Forms {
        hex_x: false,
        cast_x_text: false,
        utf8mb4: false,
        e_string: false,
        sqlserver: false,
        hex_0x: false,
        unicode: false,
        oracle: false,
        booleans: false,
        typed: &[],
        // MySQL: never (see the module docs); the others: when sqlparser reads a
        // backslash as an ordinary character.
        backslash: d != Dialect::Mysql
            && !super::parser_dialect(d).supports_string_literal_backslash_escape(),
        open: b'"',
        close: b'"',
    };
    match d {
        Dialect::Sqlite => Forms {
            hex_x: true,
            cast_x_text: true,
            ..base
        },
        Dialect::Sql92 => Forms {
            hex_x: true,
            unicode: true,
            booleans: true,
            typed: &["DATE ", "TIME ", "TIMESTAMP "],
            ..base
        },
        Dialect::Postgres => Forms {
            e_string: true,
            typed: &["DATE ", "TIME ", "TIMESTAMP ", "TIMESTAMPTZ "],
            ..base
        },
        Dialect::Mysql => Forms {
            hex_x: true,
            utf8mb4: true,
            typed: &["DATE ", "TIME ", "TIMESTAMP "],
            ..base
        },
        Dialect::SqlServer => Forms {
            sqlserver: true,
            hex_0x: true,
            open: b'[',
            close: b']',
            ..base
        },
        Dialect::Oracle => Forms {
            oracle: true,
            typed: &["DATE ", "TIMESTAMP "],
            ..base
        },
        Dialect::Dm => Forms {
            hex_0x: true,
            typed: &["DATE ", "TIME ", "TIMESTAMP "],
            ..base
        },
    }
}

/// The table of an `INSERT`, `UPDATE` or `DELETE` statement of exactly the renderer's
/// shape in dialect `d` (see the module docs), unquoted; `None` for anything else.
pub(super) fn recognise(d: Dialect, sql: &str) -> Option<Cow<'_, str>> {
    // The grammar leaves no room for a comment outside quotes; the exact comment scan
    // (the slow path's first check) is asked anyway, so that the two paths refuse
    // comments by the very same rule.
    super::comments::refuse(d, sql).ok()?;
    Scanner {
        f: forms(d),
        src: sql,
        b: sql.as_bytes(),
        pos: 0,
    }
    .statement()
}

struct Scanner<'a> {
    f: Forms,
    src: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Consume `t` if the input continues with it.
    fn eat(&mut self, t: &str) -> bool {
        let ok = self
            .b
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(t.as_bytes()));
        if ok {
            self.pos += t.len();
        }
        ok
    }

    fn expect(&mut self, t: &str) -> Option<()> {
        self.eat(t).then_some(())
    }

    fn statement(mut self) -> Option<Cow<'a, str>> {
        let table;
        if self.eat("INSERT INTO ") {
            table = self.ident()?;
            self.expect(" (")?;
            let mut columns = 0usize;
            loop {
                self.ident()?;
                columns += 1;
                if !self.eat(", ") {
                    break;
                }
            }
            self.expect(") VALUES (")?;
            let mut values = 0usize;
            loop {
                self.literal()?;
                values += 1;
                if !self.eat(", ") {
                    break;
                }
            }
            self.expect(")")?;
            if columns != values {
                return None;
            }
        } else if self.eat("UPDATE ") {
            table = self.ident()?;
            self.expect(" SET ")?;
            loop {
                self.ident()?;
                self.expect(" = ")?;
                self.literal()?;
                if !self.eat(", ") {
                    break;
                }
            }
            self.expect(" WHERE ")?;
            self.conjunction()?;
        } else if self.eat("DELETE FROM ") {
            table = self.ident()?;
            if self.eat(" WHERE ") {
                self.conjunction()?;
            }
        } else {
            return None;
        }
        self.expect(";")?;
        (self.pos == self.b.len()).then_some(table)
    }

    /// `cond { " AND " cond }`.
    fn conjunction(&mut self) -> Option<()> {
        loop {
            self.ident()?;
            if !self.eat(" IS NULL") {
                self.expect(" = ")?;
                self.literal()?;
            }
            if !self.eat(" AND ") {
                return Some(());
            }
        }
    }

    /// A delimited identifier; its name with the doubled close quotes undone.
    fn ident(&mut self) -> Option<Cow<'a, str>> {
        let (open, close) = (self.f.open, self.f.close);
        if self.peek()? != open {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut doubled = false;
        loop {
            let c = *self.b.get(i)?;
            if c == close {
                if self.b.get(i + 1) == Some(&close) {
                    doubled = true;
                    i += 2;
                    continue;
                }
                break;
            }
            if c < 0x20 || c == 0x7f || (c == b'\\' && !self.f.backslash) {
                return None;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        // `start` and `i` sit next to ASCII bytes: both are char boundaries.
        let raw = self.src.get(start..i)?;
        self.pos = i + 1;
        Some(if doubled {
            let one = char::from(close).to_string();
            Cow::Owned(raw.replace(&one.repeat(2), &one))
        } else {
            Cow::Borrowed(raw)
        })
    }

    fn literal(&mut self) -> Option<()> {
        let c = self.peek()?;
        match c {
            b'\'' => self.string(),
            b'-' | b'0'..=b'9' => {
                if self.f.hex_0x && self.eat("0x") {
                    return self.hex_digits(0).map(|_| ());
                }
                if self.f.oracle && self.eat("-BINARY_DOUBLE_INFINITY") {
                    return Some(());
                }
                self.number()
            }
            b'N' if self.eat("NULL") => Some(()),
            b'N' if self.f.sqlserver => {
                self.pos += 1;
                self.string()
            }
            b'X' if self.f.hex_x => self.hex_x(),
            b'E' if self.f.e_string && self.b.get(self.pos + 1) == Some(&b'\'') => {
                self.pos += 1;
                self.e_string()
            }
            b'T' | b'F' if self.f.booleans && (self.eat("TRUE") || self.eat("FALSE")) => Some(()),
            b'U' if self.f.unicode => {
                self.expect("U&")?;
                self.unicode_string()
            }
            b'B' | b'E' | b'H' | b'I' | b'U' if self.f.oracle => {
                if self.eat("BINARY_DOUBLE_INFINITY")
                    || self.eat("BINARY_DOUBLE_NAN")
                    || self.eat("EMPTY_BLOB()")
                {
                    return Some(());
                }
                if self.eat("HEXTORAW('") {
                    self.hex_digits(0)?;
                    return self.expect("')");
                }
                if self.eat("UNISTR(") {
                    self.string()?;
                    return self.expect(")");
                }
                self.expect("INTERVAL '0 ")?;
                self.time_chars()?;
                self.expect("' DAY TO SECOND(9)")
            }
            b'_' if self.f.utf8mb4 => {
                self.expect("_utf8mb4 ")?;
                self.hex_x()
            }
            b'C' if self.f.cast_x_text => {
                self.expect("CAST(")?;
                self.hex_x()?;
                self.expect(" AS TEXT)")
            }
            b'C' if self.f.sqlserver => {
                self.expect("CAST(0x")?;
                self.hex_digits(1)?;
                self.expect(" AS NVARCHAR(MAX))")
            }
            b'D' | b'T' => {
                let kw = self.f.typed.iter().copied().find(|k| {
                    self.b
                        .get(self.pos..)
                        .is_some_and(|r| r.starts_with(k.as_bytes()))
                })?;
                self.pos += kw.len();
                self.typed_string()
            }
            _ => None,
        }
    }

    /// `[-] digit+ [. digit+] [e [-] digit+]`.
    fn number(&mut self) -> Option<()> {
        self.eat("-");
        self.digits()?;
        if self.eat(".") {
            self.digits()?;
        }
        if self.eat("e") {
            self.eat("-");
            self.digits()?;
        }
        Some(())
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    /// Hex digits, at least `min`; how many.
    fn hex_digits(&mut self, min: usize) -> Option<usize> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let n = self.pos - start;
        (n >= min).then_some(n)
    }

    /// `X'` pairs of hex digits `'`.
    fn hex_x(&mut self) -> Option<()> {
        self.expect("X'")?;
        let n = self.hex_digits(0)?;
        if n % 2 != 0 {
            return None;
        }
        self.expect("'")
    }

    /// `'..'` with `''` for a quote.
    fn string(&mut self) -> Option<()> {
        self.expect("'")?;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'\'' => {
                    if self.peek() == Some(b'\'') {
                        self.pos += 1;
                    } else {
                        return Some(());
                    }
                }
                b'\0' | b'\r' | b'\n' => return None,
                b'\\' if !self.f.backslash => return None,
                _ => {}
            }
        }
    }

    /// PostgreSQL's `E'..'`, after the `E`: `''`, `\\`, `\n`, `\r` and plain characters.
    fn e_string(&mut self) -> Option<()> {
        self.expect("'")?;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'\'' => {
                    if self.peek() == Some(b'\'') {
                        self.pos += 1;
                    } else {
                        return Some(());
                    }
                }
                b'\\' => match self.peek()? {
                    b'\\' | b'n' | b'r' => self.pos += 1,
                    _ => return None,
                },
                b'\0' | b'\r' | b'\n' => return None,
                _ => {}
            }
        }
    }

    /// SQL:2003's `U&'..'`, after the `U&`: `''`, `\\`, `\000A`, `\000D`, `\0000` and plain
    /// characters.
    fn unicode_string(&mut self) -> Option<()> {
        self.expect("'")?;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'\'' => {
                    if self.peek() == Some(b'\'') {
                        self.pos += 1;
                    } else {
                        return Some(());
                    }
                }
                // A backslash not followed by one of the escapes (which the guard eats).
                b'\\'
                    if !(self.eat("\\")
                        || self.eat("000A")
                        || self.eat("000D")
                        || self.eat("0000")) =>
                {
                    return None;
                }
                b'\0' | b'\r' | b'\n' => return None,
                _ => {}
            }
        }
    }

    /// `'` date/time characters `'` (after the type keyword and its space).
    fn typed_string(&mut self) -> Option<()> {
        self.expect("'")?;
        self.time_chars()?;
        self.expect("'")
    }

    /// One or more of `0-9 - : . + ␣`.
    fn time_chars(&mut self) -> Option<()> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b':' | b'.' | b'+' | b' '))
        {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }
}
