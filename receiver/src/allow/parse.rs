//! Reading a statement as the target's server would: the sqlparser dialect per target
//! (with MySQL as the receiver's session sets it up) and the tokenizer's comment check.

use super::*;

/// The sqlparser dialect statements of `dialect` are parsed in.
pub(super) fn parser_dialect(dialect: Dialect) -> &'static dyn SqlDialect {
    match dialect {
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlSession,
        Dialect::SqlServer => &MsSqlDialect {},
        Dialect::Sql92 => &GenericDialect {},
        Dialect::Oracle | Dialect::Dm => &OracleDialect {},
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

/// `sql`'s tokens in dialect `d`; refused if sqlparser reads a comment in it, or
/// expanded a comment hint (`/*! .. */`, which its MySQL and generic dialects read as
/// the text inside: the tokens then no longer cover the text end to end).
pub(super) fn tokens_without_comments(
    d: &dyn SqlDialect,
    sql: &str,
) -> Result<Vec<TokenWithSpan>, Refusal> {
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
            )
            .into());
        }
        if t.span.start != at {
            return Err(format!(
                "it holds a comment that sqlparser expanded as a hint (at line {}, column {}): \
                 batch statements never hold comments",
                at.line, at.column
            )
            .into());
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
        )
        .into());
    }
    Ok(tokens)
}

pub(super) fn tokenize(d: &dyn SqlDialect, sql: &str) -> Result<Vec<TokenWithSpan>, Refusal> {
    Tokenizer::new(d, sql)
        .tokenize_with_location()
        .map_err(|e| {
            Refusal(format!(
                "cannot parse it: {}",
                sqlparser::parser::ParserError::from(e)
            ))
        })
}
