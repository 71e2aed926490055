//! The value model: SQLite's five storage classes, which every source value maps onto.

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
}

impl Value {
    /// Exact equality: floats compare by bit pattern (so `-0.0 != 0.0`, NaN equals itself).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }

    /// The storage class name, as SQLite's `typeof()` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) | Value::RawText(_) => "text",
            Value::Blob(_) => "blob",
        }
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
        }
    }
}
