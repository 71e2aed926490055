//! The value model: SQLite's five storage classes, which every source value maps onto,
//! plus the typed kinds other sources bring (exact decimals, dates and times, booleans).
//!
//! The typed kinds carry their value as text in one canonical form, so that a dialect
//! can write it into a literal without parsing or converting it (and without losing
//! digits):
//!
//! | variant       | canonical text                                     | example                          |
//! |---------------|----------------------------------------------------|----------------------------------|
//! | `Decimal`     | `-?D+(.D+)?` (D = ASCII digit)                     | `-12.3400`                       |
//! | `Date`        | `YYYY-MM-DD`, year 0001..=9999, a real calendar day | `2026-01-02`                     |
//! | `Time`        | `HH:MM:SS[.F]`, 00..=23:59:59, F = 1..=9 digits    | `23:59:59.123456789`             |
//! | `Timestamp`   | `<Date> <Time>`, no zone                           | `2026-01-02 03:04:05.5`          |
//! | `TimestampTz` | `<Timestamp>+00:00`: the instant, normalised to UTC | `2026-01-02 03:04:05.5+00:00`   |
//!
//! `TimestampTz` always ends in `+00:00` (never `Z`, never another offset): the source
//! converts to UTC when it reads the value, so that equal instants have equal text. The
//! dialects check the canonical form before they render a typed value ([`Value::validate`]),
//! so a malformed value is an error, never a broken or injected literal.

use std::fmt;

/// One column value of a captured row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// TEXT whose bytes are not valid UTF-8 (legacy applications write GBK into TEXT
    /// columns): kept byte for byte, never replaced by U+FFFD.
    RawText(Vec<u8>),
    Blob(Vec<u8>),
    /// An exact decimal number, as canonical text `-?D+(.D+)?` (scale kept: `1.10`).
    Decimal(String),
    /// A calendar date `YYYY-MM-DD`.
    Date(String),
    /// A time of day `HH:MM:SS[.fraction]`, up to 9 fractional digits, no zone.
    Time(String),
    /// A date and time `YYYY-MM-DD HH:MM:SS[.fraction]`, no zone.
    Timestamp(String),
    /// An instant, normalised to UTC: `YYYY-MM-DD HH:MM:SS[.fraction]+00:00`.
    TimestampTz(String),
    Bool(bool),
}

/// A typed value whose text is not in its kind's canonical form (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} value {text:?}: {why}")]
pub struct InvalidValue {
    /// The kind, as [`Value::type_name`] spells it.
    pub kind: &'static str,
    /// The offending text (cut to 64 characters).
    pub text: String,
    pub why: &'static str,
}

impl Value {
    /// Exact equality: floats compare by bit pattern (so `-0.0 != 0.0`, NaN equals itself).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }

    /// The kind's name: SQLite's `typeof()` spelling for the five storage classes, then
    /// `decimal`, `date`, `time`, `timestamp`, `timestamptz`, `boolean`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) | Value::RawText(_) => "text",
            Value::Blob(_) => "blob",
            Value::Decimal(_) => "decimal",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Bool(_) => "boolean",
        }
    }

    /// Check that a typed value's text is in its canonical form. The five storage
    /// classes are always valid.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let (text, r) = match self {
            Value::Decimal(s) => (s, check_decimal(s)),
            Value::Date(s) => (s, check_date(s)),
            Value::Time(s) => (s, check_time(s)),
            Value::Timestamp(s) => (s, check_timestamp(s)),
            Value::TimestampTz(s) => (s, check_timestamptz(s)),
            _ => return Ok(()),
        };
        r.map_err(|why| InvalidValue {
            kind: self.type_name(),
            text: text.chars().take(64).collect(),
            why,
        })
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parse exactly `n` ASCII digits.
fn num(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && all_digits(s))
        .then(|| s.parse().ok())
        .flatten()
}

fn check_decimal(s: &str) -> Result<(), &'static str> {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let ok = match unsigned.split_once('.') {
        Some((int, frac)) => all_digits(int) && all_digits(frac),
        None => all_digits(unsigned),
    };
    if ok {
        Ok(())
    } else {
        Err("expected an optional '-', digits, and optionally '.' and more digits")
    }
}

fn check_date(s: &str) -> Result<(), &'static str> {
    const FORM: &str = "expected YYYY-MM-DD";
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(FORM);
    }
    let (Some(y), Some(m), Some(d)) = (num(&s[0..4], 4), num(&s[5..7], 2), num(&s[8..10], 2))
    else {
        return Err(FORM);
    };
    let y = i32::try_from(y).map_err(|_| FORM)?;
    if y == 0 || chrono::NaiveDate::from_ymd_opt(y, m, d).is_none() {
        return Err("not a calendar day between 0001-01-01 and 9999-12-31");
    }
    Ok(())
}

fn check_time(s: &str) -> Result<(), &'static str> {
    const FORM: &str = "expected HH:MM:SS with an optional fraction of 1 to 9 digits";
    let (hms, frac) = match s.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (s, None),
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return Err(FORM);
    }
    let (Some(h), Some(m), Some(sec)) =
        (num(&hms[0..2], 2), num(&hms[3..5], 2), num(&hms[6..8], 2))
    else {
        return Err(FORM);
    };
    if let Some(f) = frac
        && (f.len() > 9 || !all_digits(f))
    {
        return Err(FORM);
    }
    if h > 23 || m > 59 || sec > 59 {
        return Err("hour, minute or second out of range (00:00:00 to 23:59:59)");
    }
    Ok(())
}

fn check_timestamp(s: &str) -> Result<(), &'static str> {
    match s.split_once(' ') {
        Some((date, time)) => check_date(date).and_then(|()| check_time(time)),
        None => Err("expected YYYY-MM-DD HH:MM:SS[.fraction]"),
    }
}

fn check_timestamptz(s: &str) -> Result<(), &'static str> {
    match s.strip_suffix("+00:00") {
        Some(ts) => check_timestamp(ts),
        None => Err("expected YYYY-MM-DD HH:MM:SS[.fraction]+00:00 (normalised to UTC)"),
    }
}

impl From<rusqlite::types::ValueRef<'_>> for Value {
    fn from(v: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => Value::Text(s.to_owned()),
                Err(_) => Value::RawText(t.to_vec()),
            },
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r:?}"),
            Value::Text(t) => write!(f, "{t:?}"),
            Value::RawText(b) => write!(f, "text x'{}'", hex::encode(b)),
            Value::Blob(b) => write!(f, "x'{}'", hex::encode(b)),
            Value::Decimal(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s) => write!(f, "{} {s:?}", self.type_name()),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_are_accepted() {
        for v in [
            Value::Decimal("0".into()),
            Value::Decimal("-12.3400".into()),
            Value::Decimal("00012".into()),
            Value::Date("0001-01-01".into()),
            Value::Date("2024-02-29".into()),
            Value::Date("9999-12-31".into()),
            Value::Time("00:00:00".into()),
            Value::Time("23:59:59.123456789".into()),
            Value::Timestamp("2026-01-02 03:04:05".into()),
            Value::Timestamp("2026-01-02 03:04:05.5".into()),
            Value::TimestampTz("2026-01-02 03:04:05.000001+00:00".into()),
            Value::Bool(true),
            Value::Text("anything".into()),
        ] {
            assert_eq!(v.validate(), Ok(()), "{v}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for v in [
            Value::Decimal(String::new()),
            Value::Decimal("-".into()),
            Value::Decimal("+1".into()),
            Value::Decimal("1.".into()),
            Value::Decimal(".5".into()),
            Value::Decimal("1e5".into()),
            Value::Decimal("1.2.3".into()),
            Value::Decimal("1 OR 1=1".into()),
            Value::Decimal("١".into()),
            Value::Date("2026-02-29".into()),
            Value::Date("0000-01-01".into()),
            Value::Date("2026-1-02".into()),
            Value::Date("2026-01-02'".into()),
            Value::Time("24:00:00".into()),
            Value::Time("12:60:00".into()),
            Value::Time("12:00:60".into()),
            Value::Time("12:00:00.".into()),
            Value::Time("12:00:00.1234567890".into()),
            Value::Time("12:00".into()),
            Value::Timestamp("2026-01-02T03:04:05".into()),
            Value::Timestamp("2026-01-02 03:04:05+00:00".into()),
            Value::TimestampTz("2026-01-02 03:04:05".into()),
            Value::TimestampTz("2026-01-02 03:04:05+08:00".into()),
            Value::TimestampTz("2026-01-02 03:04:05Z".into()),
        ] {
            let e = v.validate().expect_err(&v.to_string());
            assert_eq!(e.kind, v.type_name());
        }
    }

    #[test]
    fn names_and_display() {
        assert_eq!(
            Value::Decimal("1.10".into()).to_string(),
            "decimal \"1.10\""
        );
        assert_eq!(Value::Bool(false).to_string(), "false");
        assert_eq!(Value::Bool(true).type_name(), "boolean");
        assert_eq!(Value::TimestampTz(String::new()).type_name(), "timestamptz");
    }
}
