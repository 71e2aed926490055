//! Column type mapping for snapshot DDL (tabled on [`Dialect::map_type`]).

use super::{Dialect, RenderError};

/// What a SQLite declared type says about its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Integer,
    Real,
    Text,
    Blob,
    /// NUMERIC affinity without a more telling name.
    Numeric,
    Decimal(u32, Option<u32>),
    Date,
    Time(Option<u32>),
    Timestamp(Option<u32>),
    TimestampTz(Option<u32>),
    Bool,
}

pub(super) fn map(
    d: Dialect,
    column: &str,
    declared: &str,
    is_key: bool,
) -> Result<String, RenderError> {
    if d == Dialect::Sqlite {
        // As SQLite declared it; a type with characters that are not part of a type
        // name is left out (SQLite accepts typeless columns).
        let ok = declared
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '(' | ')' | ',' | '_'));
        if !ok {
            return Ok(String::new());
        }
        // SQLite's type names end with the optional `(n)`: "TIMESTAMP(6) WITH TIME ZONE"
        // (from a server source) becomes "TIMESTAMP WITH TIME ZONE".
        let t = declared.trim();
        return Ok(match (t.find('('), t.find(')')) {
            (Some(open), Some(close)) if close + 1 < t.len() => {
                format!("{}{}", t[..open].trim_end(), &t[close + 1..])
            }
            _ => t.to_owned(),
        });
    }
    if declared.trim().is_empty() {
        return Err(RenderError::Typeless {
            dialect: d.title(),
            column: column.to_owned(),
        });
    }
    let err = |why: String| RenderError::Type {
        dialect: d.title(),
        column: column.to_owned(),
        declared: declared.to_owned(),
        why,
    };
    let class = classify(declared).map_err(|why| err(why.to_owned()))?;
    target(d, class, is_key).map_err(|e| err(e.to_string()))
}

/// Classify a declared type: a few names first, then SQLite's affinity rules
/// (<https://sqlite.org/datatype3.html#determination_of_column_affinity>).
fn classify(declared: &str) -> Result<Class, &'static str> {
    let upper = declared.to_ascii_uppercase();
    // The name without its parenthesised arguments, words single-spaced:
    // "TIMESTAMP(3)  WITH TIME ZONE" -> "TIMESTAMP WITH TIME ZONE", args "3".
    let (name, args) = match (upper.find('('), upper.find(')')) {
        (Some(open), Some(close)) if open < close => (
            format!("{} {}", &upper[..open], &upper[close + 1..]),
            Some(&upper[open + 1..close]),
        ),
        _ => (upper.clone(), None),
    };
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let numbers = || -> Result<Vec<u32>, &'static str> {
        args.map_or(Ok(Vec::new()), |a| {
            a.split(',')
                .map(|n| {
                    n.trim()
                        .parse::<u32>()
                        .map_err(|_| "its precision and scale must be plain numbers")
                })
                .collect()
        })
    };
    let fraction = || -> Result<Option<u32>, &'static str> {
        match numbers()?.as_slice() {
            [] => Ok(None),
            [p] if *p <= 9 => Ok(Some(*p)),
            [_] => Err("fractional-second precision must be 0 to 9"),
            _ => Err("a time type takes one precision"),
        }
    };
    Ok(match name.as_str() {
        "BOOLEAN" | "BOOL" => Class::Bool,
        "DATE" => Class::Date,
        "TIME" | "TIME WITHOUT TIME ZONE" => Class::Time(fraction()?),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => Class::Timestamp(fraction()?),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => Class::TimestampTz(fraction()?),
        "DECIMAL" | "NUMERIC" | "DEC" | "NUMBER" => match numbers()?.as_slice() {
            [] => Class::Numeric,
            [0, ..] => return Err("precision must be at least 1"),
            [p] => Class::Decimal(*p, None),
            [p, s] if s <= p => Class::Decimal(*p, Some(*s)),
            [_, _] => return Err("scale must not exceed precision"),
            _ => return Err("a decimal type takes a precision and a scale"),
        },
        _ if upper.contains("INT") => Class::Integer,
        _ if ["CHAR", "CLOB", "TEXT"].iter().any(|w| upper.contains(w)) => Class::Text,
        _ if upper.contains("BLOB") => Class::Blob,
        _ if ["REAL", "FLOA", "DOUB"].iter().any(|w| upper.contains(w)) => Class::Real,
        _ => Class::Numeric,
    })
}

/// A declared type beyond what the target's type can hold.
#[derive(Debug, thiserror::Error)]
enum TypeLimit {
    #[error("{dialect} keeps at most {max} fractional digits of a second, not {asked}")]
    Fraction {
        dialect: &'static str,
        max: u32,
        asked: u32,
    },
    /// `after`: ", N of them after the point" where the scale has its own limit.
    #[error("{dialect} decimals hold at most {max} digits{after}")]
    Decimal {
        dialect: &'static str,
        max: u32,
        after: String,
    },
}

fn target(d: Dialect, class: Class, is_key: bool) -> Result<String, TypeLimit> {
    use Dialect::*;
    let max_fraction = match d {
        Postgres | Mysql | Dm => 6,
        SqlServer => 7,
        Sql92 | Sqlite | Oracle => 9,
    };
    let fraction = |p: Option<u32>| -> Result<u32, TypeLimit> {
        match p {
            None => Ok(max_fraction),
            Some(p) if p <= max_fraction => Ok(p),
            Some(p) => Err(TypeLimit::Fraction {
                dialect: d.title(),
                max: max_fraction,
                asked: p,
            }),
        }
    };
    let s = match class {
        Class::Integer => match d {
            Oracle => "NUMBER(19)",
            _ => "BIGINT",
        }
        .to_owned(),
        Class::Real => match d {
            Sql92 | Postgres | Sqlite => "DOUBLE PRECISION",
            Mysql | Dm => "DOUBLE",
            SqlServer => "FLOAT",
            Oracle => "BINARY_DOUBLE",
        }
        .to_owned(),
        Class::Text => match (d, is_key) {
            (Postgres | Sqlite, _) => "TEXT",
            (Sql92, true) => "VARCHAR(255)",
            (Sql92 | Dm, false) => "CLOB",
            // Keys compare exactly (the usual default collations ignore case and
            // accents, so 'abc' would match 'ABC').
            (Mysql, true) => "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            (Mysql, false) => "LONGTEXT CHARACTER SET utf8mb4",
            (SqlServer, true) => "NVARCHAR(450) COLLATE Latin1_General_100_BIN2",
            (SqlServer, false) => "NVARCHAR(MAX)",
            (Oracle, true) => "NVARCHAR2(1000)",
            (Oracle, false) => "NCLOB",
            (Dm, true) => "VARCHAR(1000 CHAR)",
        }
        .to_owned(),
        Class::Blob => match (d, is_key) {
            (Postgres, _) => "BYTEA",
            (Sql92 | Mysql, true) => "VARBINARY(255)",
            (Sql92 | Oracle | Dm | Sqlite, false) => "BLOB",
            (Mysql, false) => "LONGBLOB",
            (SqlServer, true) => "VARBINARY(900)",
            (SqlServer, false) => "VARBINARY(MAX)",
            (Oracle, true) => "RAW(2000)",
            (Dm, true) => "VARBINARY(1000)",
            (Sqlite, true) => "BLOB",
        }
        .to_owned(),
        Class::Numeric => match d {
            Sql92 | Postgres | Sqlite => "NUMERIC",
            Mysql => "DECIMAL(65,30)",
            SqlServer => "DECIMAL(38,10)",
            Oracle | Dm => "NUMBER",
        }
        .to_owned(),
        Class::Decimal(p, s) => {
            let (name, max_p, max_s) = match d {
                Sql92 | Postgres | Sqlite => ("NUMERIC", 1000, 1000),
                Mysql => ("DECIMAL", 65, 30),
                SqlServer => ("DECIMAL", 38, 38),
                Oracle | Dm => ("NUMBER", 38, 38),
            };
            if p > max_p || s.unwrap_or(0) > max_s {
                let after = if max_s < max_p {
                    format!(", {max_s} of them after the point")
                } else {
                    String::new()
                };
                return Err(TypeLimit::Decimal {
                    dialect: d.title(),
                    max: max_p,
                    after,
                });
            }
            match s {
                Some(s) => format!("{name}({p},{s})"),
                None => format!("{name}({p})"),
            }
        }
        Class::Date => "DATE".to_owned(),
        Class::Time(p) => {
            let p = fraction(p)?;
            match d {
                Oracle => format!("INTERVAL DAY(0) TO SECOND({p})"),
                _ => format!("TIME({p})"),
            }
        }
        Class::Timestamp(p) => {
            let p = fraction(p)?;
            match d {
                Mysql => format!("DATETIME({p})"),
                SqlServer => format!("DATETIME2({p})"),
                _ => format!("TIMESTAMP({p})"),
            }
        }
        Class::TimestampTz(p) => {
            let p = fraction(p)?;
            match d {
                // MySQL has no zoned type: the UTC value, as the literal writes it.
                Mysql => format!("DATETIME({p})"),
                SqlServer => format!("DATETIMEOFFSET({p})"),
                _ => format!("TIMESTAMP({p}) WITH TIME ZONE"),
            }
        }
        Class::Bool => match d {
            Sql92 | Mysql => "BOOLEAN",
            Oracle | Dm => "NUMBER(1)",
            _ => "SMALLINT",
        }
        .to_owned(),
    };
    Ok(s)
}
