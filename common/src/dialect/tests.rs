use super::*;

fn lit(d: Dialect, v: &Value) -> Result<String, RenderError> {
    let mut s = String::new();
    d.literal(v, &mut s).map(|()| s)
}

fn roundtrip(v: &Value) -> Value {
    let conn = rusqlite::Connection::open_in_memory().expect("open");
    let mut sql = String::from("SELECT ");
    Dialect::Sqlite.literal(v, &mut sql).expect("render");
    conn.query_row(&sql, [], |r| Ok(Value::from(r.get_ref(0)?)))
        .expect(&sql)
}

#[test]
fn sqlite_literals_round_trip_exactly() {
    let mut all_bytes = Vec::new();
    for b in 0..=255u8 {
        all_bytes.push(b);
    }
    let cases = vec![
        Value::Null,
        Value::Integer(0),
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Integer(-1),
        Value::Real(0.1),
        Value::Real(1e-300),
        Value::Real(1.7976931348623157e308),
        Value::Real(-1.7976931348623157e308),
        Value::Real(5e-324),
        Value::Real(1.0),
        Value::Real(-0.0),
        Value::Real(123456789.12345679),
        Value::Real(f64::INFINITY),
        Value::Real(f64::NEG_INFINITY),
        Value::Text(String::new()),
        Value::Text("it's \"quoted\" \\ back\\slash".into()),
        Value::Text("line1\nline2\r\nline3".into()),
        Value::Text("中文名称 电厂 🚀".into()),
        Value::Text("NUL\0inside".into()),
        Value::Text("x\\'); DROP TABLE t; --".into()),
        Value::RawText(vec![0xC4, 0xE3, 0xBA, 0xC3, 0xFF]),
        Value::Blob(vec![]),
        Value::Blob(all_bytes),
    ];
    for v in &cases {
        let back = roundtrip(v);
        assert!(back.same(v), "{v} came back as {back}");
    }
    // SQLite cannot store NaN: it is written as NULL on purpose.
    assert!(roundtrip(&Value::Real(f64::NAN)).same(&Value::Null));
}

#[test]
fn sqlite_typed_values_become_their_text_or_integer() {
    for (v, back) in [
        (Value::Decimal("1.10".into()), Value::Text("1.10".into())),
        (
            Value::Decimal("-123456789012345678901234567890.000001".into()),
            Value::Text("-123456789012345678901234567890.000001".into()),
        ),
        (
            Value::Date("2026-01-02".into()),
            Value::Text("2026-01-02".into()),
        ),
        (
            Value::Time("23:59:59.123456789".into()),
            Value::Text("23:59:59.123456789".into()),
        ),
        (
            Value::Timestamp("2026-01-02 03:04:05.5".into()),
            Value::Text("2026-01-02 03:04:05.5".into()),
        ),
        (
            Value::TimestampTz("2026-01-02 03:04:05+00:00".into()),
            Value::Text("2026-01-02 03:04:05+00:00".into()),
        ),
        (Value::Bool(true), Value::Integer(1)),
        (Value::Bool(false), Value::Integer(0)),
    ] {
        assert!(roundtrip(&v).same(&back), "{v}");
    }
}

#[test]
fn statements_are_one_line() {
    let mut s = String::new();
    Dialect::Sqlite
        .render_update(
            "t",
            &["a", "b\"c"],
            &[Value::Text("x\ny".into()), Value::Integer(1)],
            &["a"],
            &[Value::Null],
            &mut s,
        )
        .expect("render");
    assert_eq!(
        s,
        "UPDATE \"t\" SET \"a\" = CAST(X'780A79' AS TEXT), \"b\"\"c\" = 1 WHERE \"a\" IS NULL;"
    );
    assert!(!s.contains('\n'));
}

/// Every text that any dialect accepts comes out on one line, without NUL.
#[test]
fn no_dialect_writes_a_line_break_or_nul() {
    let texts = [
        "a\nb",
        "a\rb",
        "a\r\nb",
        "\n",
        "\0",
        "x\\'); DROP TABLE t; --\n",
        "中\n文\r🚀\0",
        "\u{2028}\u{85}\u{b}\u{c}",
    ];
    for d in Dialect::ALL {
        for t in texts {
            for v in [Value::Text(t.into()), Value::RawText(t.as_bytes().to_vec())] {
                let mut s = String::from("keep");
                match d.render_insert("t\"]", &["c"], std::slice::from_ref(&v), &mut s) {
                    Ok(()) => assert!(!s.contains(['\n', '\r', '\0']), "{d}: {s}"),
                    Err(e) => assert_eq!(s, "keep", "{d}: output left behind after {e}"),
                }
            }
        }
    }
}

#[test]
fn identifiers_are_quoted_and_checked() {
    let mut s = String::new();
    Dialect::SqlServer.quote_ident("a]b[c\"", &mut s);
    assert_eq!(s, "[a]]b[c\"]");
    s.clear();
    Dialect::Postgres.quote_ident("a\"b]", &mut s);
    assert_eq!(s, "\"a\"\"b]\"");
    for d in Dialect::ALL {
        let e = d
            .render_insert("t", &["a\nb"], &[Value::Null], &mut s)
            .expect_err("newline in a column name");
        assert!(matches!(e, RenderError::Identifier { .. }), "{e}");
        let e = d
            .render_delete("t", &["k\r"], &[Value::Integer(1)], &mut s)
            .expect_err("CR in a key name");
        assert!(matches!(e, RenderError::Identifier { .. }), "{e}");
        let e = d
            .render_clear("t\0", &mut s)
            .expect_err("NUL in a table name");
        assert!(matches!(e, RenderError::Identifier { .. }), "{e}");
    }
}

#[test]
fn arity_and_missing_keys_are_errors() {
    let mut s = String::new();
    for d in Dialect::ALL {
        let e = d
            .render_insert("t", &["a", "b"], &[Value::Null], &mut s)
            .expect_err("arity");
        assert_eq!(e.to_string(), "INSERT: 2 column names but 1 values");
        let e = d
            .render_update("t", &["a"], &[Value::Null], &[], &[], &mut s)
            .expect_err("no key");
        assert_eq!(e.to_string(), "UPDATE needs at least one key column");
        let e = d
            .render_delete("t", &["k"], &[], &mut s)
            .expect_err("key arity");
        assert!(matches!(e, RenderError::Arity { .. }));
        assert!(s.is_empty());
    }
}

#[test]
fn all_names_parse() {
    for name in KNOWN_DIALECTS {
        let d: Dialect = name.parse().expect(name);
        assert_eq!(d.name(), *name);
        assert_eq!(d.to_string(), *name);
    }
    assert_eq!(Dialect::ALL.len(), KNOWN_DIALECTS.len());
    let e = "postgresql".parse::<Dialect>().expect_err("unknown");
    assert!(
        e.to_string().starts_with("unknown dialect \"postgresql\""),
        "{e}"
    );
}

#[test]
fn malformed_typed_values_are_refused_everywhere() {
    for d in Dialect::ALL {
        for v in [
            Value::Decimal("1); DROP TABLE t; --".into()),
            Value::Date("2026-01-02'); --".into()),
            Value::Time("25:00:00".into()),
            Value::Timestamp("2026-01-02 03:04:05' --".into()),
            Value::TimestampTz("2026-01-02 03:04:05+08:00".into()),
        ] {
            let mut s = String::from("x");
            let e = d.literal(&v, &mut s).expect_err(&v.to_string());
            assert!(matches!(e, RenderError::Invalid(_)), "{d} {v}: {e}");
            assert_eq!(s, "x");
        }
    }
}

#[test]
fn fractional_seconds_beyond_the_dialect_are_dropped_only_when_zero() {
    let ok = Value::Timestamp("2026-01-02 03:04:05.123456000".into());
    assert_eq!(
        lit(Dialect::Postgres, &ok).expect("zeros"),
        "TIMESTAMP '2026-01-02 03:04:05.123456'"
    );
    assert_eq!(
        lit(Dialect::SqlServer, &ok).expect("zeros"),
        "'2026-01-02T03:04:05.1234560'"
    );
    let e = lit(Dialect::Mysql, &Value::Time("12:00:00.1234567".into())).expect_err("7 digits");
    assert_eq!(
        e.to_string(),
        "MySQL cannot store this time value: MySQL keeps at most 6 fractional digits of a second, and .1234567 would be rounded"
    );
    assert_eq!(
        lit(Dialect::Oracle, &Value::Time("12:00:00.123456789".into())).expect("9"),
        "INTERVAL '0 12:00:00.123456789' DAY TO SECOND(9)"
    );
}

#[test]
fn reals_parse_back_to_the_same_bits() {
    // The text inside each dialect's float literal is a valid Rust float that parses
    // back to the same bits (the dialect's parser is trusted to round correctly).
    let cases = [
        0.1,
        -2.5,
        1e-300,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        123456789.12345679,
        1e16,
        9_223_372_036_854_775_808.0,
        std::f64::consts::PI,
        0.0,
        -0.0,
    ];
    for d in Dialect::ALL {
        for r in cases {
            let s = match lit(d, &Value::Real(r)) {
                Ok(s) => s,
                // MySQL and Oracle do not keep the sign of zero.
                Err(_)
                    if matches!(d, Dialect::Mysql | Dialect::Oracle)
                        && r.to_bits() == (-0.0f64).to_bits() =>
                {
                    continue;
                }
                // Nor does SQL Server have subnormal floats.
                Err(_) if d == Dialect::SqlServer && r == 5e-324 => continue,
                Err(e) => panic!("{d} {r:?}: {e}"),
            };
            let inner = s.trim_matches('\'').trim_end_matches('d');
            let back: f64 = inner.parse().expect(&s);
            assert_eq!(back.to_bits(), r.to_bits(), "{d}: {r:?} written as {s}");
        }
    }
}

#[test]
fn map_type_follows_affinity_and_names() {
    let m = |d: Dialect, t: &str, key: bool| d.map_type("c", t, key);
    assert_eq!(m(Dialect::Sqlite, "", false).expect("typeless"), "");
    assert_eq!(
        m(Dialect::Sqlite, " varchar(10) ", true).expect("kept"),
        "varchar(10)"
    );
    assert_eq!(
        m(Dialect::Sqlite, "\"odd\" type", false).expect("dropped"),
        ""
    );
    for (t, pg) in [
        ("INTEGER", "BIGINT"),
        ("unsigned big int", "BIGINT"),
        ("VARCHAR(20)", "TEXT"),
        ("NATIVE CHARACTER(70)", "TEXT"),
        ("clob", "TEXT"),
        ("BLOB", "BYTEA"),
        ("REAL", "DOUBLE PRECISION"),
        ("Double Precision", "DOUBLE PRECISION"),
        ("FLOAT", "DOUBLE PRECISION"),
        ("NUMERIC", "NUMERIC"),
        ("money", "NUMERIC"),
        ("DECIMAL(10,2)", "NUMERIC(10,2)"),
        ("decimal( 10 , 2 )", "NUMERIC(10,2)"),
        ("NUMBER(12)", "NUMERIC(12)"),
        ("DATE", "DATE"),
        ("TIME", "TIME(6)"),
        ("TIME(3)", "TIME(3)"),
        ("DATETIME", "TIMESTAMP(6)"),
        ("timestamp(0)", "TIMESTAMP(0)"),
        ("TIMESTAMP(3) WITH TIME ZONE", "TIMESTAMP(3) WITH TIME ZONE"),
        ("timestamptz", "TIMESTAMP(6) WITH TIME ZONE"),
        ("BOOLEAN", "SMALLINT"),
    ] {
        assert_eq!(m(Dialect::Postgres, t, false).expect(t), pg, "{t}");
    }
    assert_eq!(
        m(Dialect::Mysql, "TEXT", true).expect("key"),
        "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    );
    assert_eq!(
        m(Dialect::Mysql, "TEXT", false).expect("text"),
        "LONGTEXT CHARACTER SET utf8mb4"
    );
    assert_eq!(
        m(Dialect::SqlServer, "BLOB", true).expect("key"),
        "VARBINARY(900)"
    );
    assert_eq!(
        m(Dialect::Oracle, "TEXT", true).expect("key"),
        "NVARCHAR2(1000)"
    );
    assert_eq!(
        m(Dialect::Oracle, "TIME", false).expect("time"),
        "INTERVAL DAY(0) TO SECOND(9)"
    );
    let e = m(Dialect::Postgres, "", false).expect_err("typeless");
    assert!(
        e.to_string()
            .starts_with("column \"c\" has no declared type"),
        "{e}"
    );
    let e = m(Dialect::Mysql, "TIMESTAMP(9)", false).expect_err("precision");
    assert_eq!(
        e.to_string(),
        "column \"c\": declared type \"TIMESTAMP(9)\" cannot be mapped to MySQL: MySQL keeps at most 6 fractional digits of a second, not 9"
    );
    assert!(m(Dialect::SqlServer, "DECIMAL(39,2)", false).is_err());
    assert!(m(Dialect::Postgres, "DECIMAL(2,5)", false).is_err());
    assert!(m(Dialect::Postgres, "DECIMAL(x)", false).is_err());
}

#[test]
fn create_table_checks_its_types() {
    let mut s = String::new();
    let e = Dialect::Postgres
        .render_create_table("t", &[("a", "TEXT); DROP TABLE x; --")], &[], &mut s)
        .expect_err("not a type");
    assert!(matches!(e, RenderError::BadType { .. }), "{e}");
    let e = Dialect::Postgres
        .render_create_table("t", &[("a", "")], &[], &mut s)
        .expect_err("typeless");
    assert!(matches!(e, RenderError::BadType { .. }), "{e}");
    Dialect::Sqlite
        .render_create_table("t", &[("a", "")], &[], &mut s)
        .expect("sqlite takes typeless columns");
    assert_eq!(s, "CREATE TABLE IF NOT EXISTS \"t\" (\"a\");");
}

#[test]
fn decimal_scale_zeros_give_way_only_when_needed() {
    let v = Value::Decimal(format!("-1.5{}", "0".repeat(40)));
    assert_eq!(
        lit(Dialect::Postgres, &v).expect("pg"),
        format!("-1.5{}", "0".repeat(40))
    );
    assert_eq!(lit(Dialect::Mysql, &v).expect("mysql"), "-1.5");
    assert_eq!(lit(Dialect::SqlServer, &v).expect("mssql"), "-1.5");
    assert_eq!(
        lit(Dialect::Oracle, &v).expect("oracle"),
        format!("-1.5{}", "0".repeat(40))
    );
    let v = Value::Decimal("1.000".into());
    assert_eq!(lit(Dialect::Mysql, &v).expect("kept"), "1.000");
    let v = Value::Decimal(format!("0.{}1", "0".repeat(30)));
    assert!(lit(Dialect::Mysql, &v).is_err());
}
