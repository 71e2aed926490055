//! Literal rendering, dialect by dialect (the forms are tabled in the module docs).

use std::fmt::Write as _;

use super::{Dialect, RenderError};
use crate::value::Value;

/// Append `v` as a literal of dialect `d`. May leave partial output on error (the public
/// callers truncate).
pub(super) fn push(d: Dialect, v: &Value, out: &mut String) -> Result<(), RenderError> {
    v.validate()?;
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(r) => push_real(d, *r, out)?,
        Value::Text(t) => push_text(d, t, out)?,
        Value::RawText(b) => match d {
            Dialect::Sqlite => push_cast_text(b, out),
            Dialect::Mysql => push_hex(b, "X'", "'", HEX_UPPER, out),
            _ => {
                return Err(refuse(
                    d,
                    "text",
                    match d {
                        Dialect::Postgres => {
                            "PostgreSQL text is UTF-8 only, and these bytes are not valid UTF-8"
                        }
                        Dialect::Sql92 => {
                            "SQL92 has no literal for text bytes that are not valid UTF-8"
                        }
                        _ => "its text types hold Unicode, and these bytes are not valid UTF-8",
                    },
                ));
            }
        },
        Value::Blob(b) => push_blob(d, b, v, out)?,
        Value::Decimal(s) => push_decimal(d, s, v, out)?,
        Value::Date(s) => match d {
            Dialect::Sqlite => push_quoted(s, out),
            // YYYYMMDD is read the same whatever the session's language and DATEFORMAT.
            Dialect::SqlServer => {
                out.push('\'');
                out.extend(s.chars().filter(|&c| c != '-'));
                out.push('\'');
            }
            _ => {
                out.push_str("DATE ");
                push_quoted(s, out);
            }
        },
        Value::Time(s) => {
            let s = fit_fraction(d, v, s)?;
            match d {
                Dialect::Sqlite | Dialect::SqlServer => push_quoted(s, out),
                Dialect::Oracle => {
                    out.push_str("INTERVAL '0 ");
                    out.push_str(s);
                    out.push_str("' DAY TO SECOND(9)");
                }
                _ => {
                    out.push_str("TIME ");
                    push_quoted(s, out);
                }
            }
        }
        Value::Timestamp(s) => {
            let s = fit_fraction(d, v, s)?;
            match d {
                Dialect::Sqlite => push_quoted(s, out),
                Dialect::SqlServer => push_quoted(&s.replacen(' ', "T", 1), out),
                _ => {
                    out.push_str("TIMESTAMP ");
                    push_quoted(s, out);
                }
            }
        }
        Value::TimestampTz(s) => {
            // Canonical text ends in "+00:00" (checked by validate above).
            let utc = s.strip_suffix("+00:00").unwrap_or(s);
            let utc = fit_fraction(d, v, utc)?;
            match d {
                Dialect::Sqlite => push_quoted(s, out),
                Dialect::Sql92 => {
                    out.push_str("TIMESTAMP '");
                    out.push_str(utc);
                    out.push_str("+00:00'");
                }
                Dialect::Postgres => {
                    out.push_str("TIMESTAMPTZ '");
                    out.push_str(utc);
                    out.push_str("+00:00'");
                }
                Dialect::Mysql => {
                    out.push_str("TIMESTAMP ");
                    push_quoted(utc, out);
                }
                Dialect::SqlServer => {
                    out.push('\'');
                    out.push_str(&utc.replacen(' ', "T", 1));
                    out.push_str("+00:00'");
                }
                Dialect::Oracle | Dialect::Dm => {
                    out.push_str("TIMESTAMP '");
                    out.push_str(utc);
                    out.push_str(" +00:00'");
                }
            }
        }
        Value::Bool(b) => out.push_str(match (d, b) {
            (Dialect::Sql92, true) => "TRUE",
            (Dialect::Sql92, false) => "FALSE",
            // Unknown-typed literals: a boolean column and an integer one (what SQLite's
            // BOOLEAN maps to) both read them.
            (Dialect::Postgres, true) => "'1'",
            (Dialect::Postgres, false) => "'0'",
            (_, true) => "1",
            (_, false) => "0",
        }),
    }
    Ok(())
}

fn refuse(d: Dialect, kind: &'static str, why: impl Into<String>) -> RenderError {
    RenderError::Unrepresentable {
        dialect: d.title(),
        kind,
        why: why.into(),
    }
}

fn push_real(d: Dialect, r: f64, out: &mut String) -> Result<(), RenderError> {
    if !r.is_finite() {
        let special = match d {
            // SQLite stores NaN as NULL; 9e999 overflows to ±inf when parsed.
            Dialect::Sqlite if r.is_nan() => "NULL",
            Dialect::Sqlite if r > 0.0 => "9e999",
            Dialect::Sqlite => "-9e999",
            // Unknown-typed string literals, read by float8's input function.
            Dialect::Postgres if r.is_nan() => "'NaN'",
            Dialect::Postgres if r > 0.0 => "'Infinity'",
            Dialect::Postgres => "'-Infinity'",
            Dialect::Oracle if r.is_nan() => "BINARY_DOUBLE_NAN",
            Dialect::Oracle if r > 0.0 => "BINARY_DOUBLE_INFINITY",
            Dialect::Oracle => "-BINARY_DOUBLE_INFINITY",
            _ => {
                let what = if r.is_nan() { "NaN" } else { "infinity" };
                let why = if d == Dialect::Dm {
                    format!("gapsync knows no DM literal for {what}")
                } else {
                    format!("{} floats have no {what}", d.title())
                };
                return Err(refuse(d, "real", why));
            }
        };
        out.push_str(special);
        return Ok(());
    }
    let neg_zero = r == 0.0 && r.is_sign_negative();
    if d == Dialect::SqlServer && r != 0.0 && r.abs() < f64::MIN_POSITIVE {
        return Err(refuse(
            d,
            "real",
            "SQL Server floats have no subnormal values (magnitude below 2.2250738585072014e-308)",
        ));
    }
    match d {
        // `{:?}` is the shortest text that parses back to the same bits and always
        // carries a `.` or an exponent, so SQLite reads it as REAL, not INTEGER.
        Dialect::Sqlite => {
            let _ = write!(out, "{r:?}");
        }
        // In standard SQL `-0.0` is an exact numeric zero, without a sign; `0e0` is an
        // approximate (float) literal, and negating it gives -0.
        Dialect::Sql92 if neg_zero => out.push_str("-0e0"),
        Dialect::Sql92 => {
            let _ = write!(out, "{r:?}");
        }
        // A numeric constant cannot be -0: the string goes through float8in.
        Dialect::Postgres if neg_zero => out.push_str("'-0'"),
        Dialect::Postgres => {
            let _ = write!(out, "{r:?}");
        }
        // MySQL/MariaDB store -0 as 0 in a DOUBLE column (even `-0e0`, which evaluates
        // to -0): there is no way to keep the sign.
        Dialect::Mysql if neg_zero => {
            return Err(refuse(
                d,
                "real",
                "a MySQL DOUBLE column stores -0.0 as 0 (the sign of zero is lost)",
            ));
        }
        Dialect::Mysql => {
            let _ = write!(out, "{r:?}");
        }
        // E notation makes a float constant, parsed straight to the nearest double
        // (a decimal constant would be converted by decimal arithmetic).
        Dialect::SqlServer | Dialect::Dm => {
            let _ = write!(out, "{r:e}");
        }
        // Oracle documents that BINARY_DOUBLE converts -0 to +0.
        Dialect::Oracle if neg_zero => {
            return Err(refuse(
                d,
                "real",
                "Oracle's BINARY_DOUBLE converts -0.0 to 0 (the sign of zero is lost)",
            ));
        }
        // The `d` suffix makes a BINARY_DOUBLE literal (NUMBER cannot hold 1e-300).
        Dialect::Oracle => {
            let _ = write!(out, "{r:?}d");
        }
    }
    Ok(())
}

fn push_text(d: Dialect, t: &str, out: &mut String) -> Result<(), RenderError> {
    let breaks = t.contains(['\n', '\r', '\0']);
    match d {
        Dialect::Sqlite => {
            if breaks {
                push_cast_text(t.as_bytes(), out);
            } else {
                push_quoted(t, out);
            }
        }
        Dialect::Sql92 => {
            if breaks {
                out.push_str("U&");
                push_escaped(t, out, |c| match c {
                    '\n' => Some("\\000A"),
                    '\r' => Some("\\000D"),
                    '\0' => Some("\\0000"),
                    '\\' => Some("\\\\"),
                    _ => None,
                });
            } else {
                push_quoted(t, out);
            }
        }
        Dialect::Postgres => {
            if t.contains('\0') {
                return Err(refuse(
                    d,
                    "text",
                    "PostgreSQL text cannot contain NUL (U+0000)",
                ));
            }
            if breaks || t.contains('\\') {
                out.push('E');
                push_escaped(t, out, |c| match c {
                    '\n' => Some("\\n"),
                    '\r' => Some("\\r"),
                    '\\' => Some("\\\\"),
                    _ => None,
                });
            } else {
                push_quoted(t, out);
            }
        }
        Dialect::Mysql => {
            if breaks || t.contains('\\') {
                push_hex(t.as_bytes(), "_utf8mb4 X'", "'", HEX_UPPER, out);
            } else {
                push_quoted(t, out);
            }
        }
        Dialect::SqlServer => {
            if breaks {
                out.reserve(t.len() * 4 + 32);
                out.push_str("CAST(0x");
                for unit in t.encode_utf16() {
                    for byte in unit.to_le_bytes() {
                        push_hex_byte(byte, HEX_UPPER, out);
                    }
                }
                out.push_str(" AS NVARCHAR(MAX))");
            } else {
                push_nstring(t, out);
            }
        }
        Dialect::Oracle | Dialect::Dm => {
            if t.is_empty() {
                return Err(refuse(
                    d,
                    "text",
                    if d == Dialect::Oracle {
                        "Oracle and DM have no empty string: '' would become NULL"
                    } else {
                        "Oracle and DM (in its Oracle compatibility mode) have no empty string: '' would become NULL"
                    },
                ));
            }
            if !breaks {
                push_quoted(t, out);
            } else if d == Dialect::Oracle {
                out.push_str("UNISTR(");
                push_escaped(t, out, |c| match c {
                    '\n' => Some("\\000A"),
                    '\r' => Some("\\000D"),
                    '\0' => Some("\\0000"),
                    '\\' => Some("\\\\"),
                    _ => None,
                });
                out.push(')');
            } else {
                return Err(refuse(
                    d,
                    "text",
                    "DM string literals have no escape for CR, LF or NUL (a statement is one line), and gapsync writes no function call for DM",
                ));
            }
        }
    }
    Ok(())
}

fn push_blob(d: Dialect, b: &[u8], v: &Value, out: &mut String) -> Result<(), RenderError> {
    match d {
        Dialect::Sqlite | Dialect::Sql92 | Dialect::Mysql => {
            push_hex(b, "X'", "'", HEX_UPPER, out);
        }
        Dialect::Postgres => push_hex(b, "'\\x", "'", HEX_LOWER, out),
        Dialect::SqlServer => push_hex(b, "0x", "", HEX_UPPER, out),
        // HEXTORAW('') would be NULL: an empty LOB is written as one.
        Dialect::Oracle if b.is_empty() => out.push_str("EMPTY_BLOB()"),
        Dialect::Oracle => push_hex(b, "HEXTORAW('", "')", HEX_UPPER, out),
        Dialect::Dm if b.is_empty() => {
            return Err(refuse(
                d,
                v.type_name(),
                "DM has no binary literal for zero bytes (0x needs at least one digit pair)",
            ));
        }
        Dialect::Dm => push_hex(b, "0x", "", HEX_UPPER, out),
    }
    Ok(())
}

fn push_decimal(d: Dialect, s: &str, v: &Value, out: &mut String) -> Result<(), RenderError> {
    if d == Dialect::Sqlite {
        push_quoted(s, out);
        return Ok(());
    }
    let (sign, unsigned) = match s.strip_prefix('-') {
        Some(u) => ("-", u),
        None => ("", s),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int_digits = int.trim_start_matches('0').len();
    // Trailing fractional zeros only state the scale: they are dropped (and only then)
    // when the dialect could not take the value with them.
    let exact = frac.trim_end_matches('0');
    let fits = |frac: &str| match d {
        // Digits as DECIMAL(p,s) counts them.
        Dialect::Mysql => int_digits + frac.len() <= 65 && frac.len() <= 30,
        Dialect::SqlServer => int_digits + frac.len() <= 38,
        // Significant digits, as a floating decimal (NUMBER) keeps them.
        Dialect::Oracle | Dialect::Dm => {
            let digits = format!("{int}{frac}");
            digits.trim_matches('0').len() <= 38
        }
        _ => true,
    };
    if fits(frac) {
        out.push_str(s);
    } else if fits(exact) {
        out.push_str(sign);
        out.push_str(int);
        if !exact.is_empty() {
            out.push('.');
            out.push_str(exact);
        }
    } else {
        return Err(refuse(
            d,
            v.type_name(),
            match d {
                Dialect::Mysql => {
                    "MySQL decimals hold at most 65 digits, 30 of them after the point"
                }
                Dialect::SqlServer => "SQL Server decimals hold at most 38 digits",
                _ => "NUMBER keeps at most 38 significant digits: the value would be rounded",
            },
        ));
    }
    Ok(())
}

/// The time or timestamp text `s` with at most as many fractional digits as `d` keeps:
/// surplus digits are dropped when they are zeros, else the value is refused.
fn fit_fraction<'a>(d: Dialect, v: &Value, s: &'a str) -> Result<&'a str, RenderError> {
    let max = match d {
        Dialect::Postgres | Dialect::Mysql | Dialect::Dm => 6,
        Dialect::SqlServer => 7,
        Dialect::Sqlite | Dialect::Sql92 | Dialect::Oracle => 9,
    };
    let Some(dot) = s.rfind('.') else {
        return Ok(s);
    };
    let frac = &s[dot + 1..];
    if frac.len() <= max {
        return Ok(s);
    }
    if frac[max..].bytes().any(|b| b != b'0') {
        return Err(refuse(
            d,
            v.type_name(),
            format!(
                "{} keeps at most {max} fractional digits of a second, and .{frac} would be rounded",
                d.title()
            ),
        ));
    }
    Ok(&s[..dot + 1 + max])
}

/// `'..'` with `'` doubled.
pub(super) fn push_quoted(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('\'');
    let mut rest = s;
    while let Some(i) = rest.find('\'') {
        out.push_str(&rest[..=i]);
        out.push('\'');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

/// SQL Server's `N'..'`.
pub(super) fn push_nstring(s: &str, out: &mut String) {
    out.push('N');
    push_quoted(s, out);
}

/// `'..'` with `'` doubled and the characters `esc` maps replaced by their escapes.
fn push_escaped(s: &str, out: &mut String, esc: impl Fn(char) -> Option<&'static str>) {
    out.reserve(s.len() + 8);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("''");
        } else if let Some(e) = esc(c) {
            out.push_str(e);
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

fn push_cast_text(b: &[u8], out: &mut String) {
    out.push_str("CAST(");
    push_hex(b, "X'", "'", HEX_UPPER, out);
    out.push_str(" AS TEXT)");
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_hex_byte(byte: u8, digits: &[u8; 16], out: &mut String) {
    out.push(char::from(digits[usize::from(byte >> 4)]));
    out.push(char::from(digits[usize::from(byte & 15)]));
}

fn push_hex(b: &[u8], open: &str, close: &str, digits: &[u8; 16], out: &mut String) {
    out.reserve(b.len() * 2 + open.len() + close.len());
    out.push_str(open);
    for &byte in b {
        push_hex_byte(byte, digits, out);
    }
    out.push_str(close);
}
