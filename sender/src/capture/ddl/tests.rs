#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn decode_per_dialect() {
    let o = CaptureDialect::Oracle;
    let got = Class::Float.decode(o, Some("3FB999999999999A")).unwrap();
    assert!(got.same(&Value::Real(0.1)));
    let got = Class::Float.decode(o, Some("8000000000000000")).unwrap();
    assert!(matches!(got, Value::Real(r) if r == 0.0 && r.is_sign_negative()));
    assert!(Class::Float.decode(o, Some("0.1")).is_err());
    // SQL Server style 3: 17 digits in E notation.
    let s = CaptureDialect::SqlServer;
    let got = Class::Float
        .decode(s, Some("1.0000000000000001E-001"))
        .unwrap();
    assert!(got.same(&Value::Real(0.1)));
    let got = Class::Float
        .decode(s, Some("-1.7976931348623157E+308"))
        .unwrap();
    assert!(got.same(&Value::Real(f64::MIN)));
    assert!(
        Class::Decimal
            .decode(o, Some("-.5"))
            .unwrap()
            .same(&Value::Decimal("-0.5".into()))
    );
    assert!(
        Class::Decimal
            .decode(CaptureDialect::Postgres, Some(".5"))
            .unwrap()
            .same(&Value::Decimal(".5".into()))
    );
    assert!(
        Class::TimestampTz
            .decode(s, Some("2026-01-02 03:04:05.1234500"))
            .unwrap()
            .same(&Value::TimestampTz(
                "2026-01-02 03:04:05.12345+00:00".into()
            ))
    );
    assert!(
        Class::Binary
            .decode(s, Some("DEAD00"))
            .unwrap()
            .same(&Value::Blob(vec![0xDE, 0xAD, 0]))
    );
}

#[test]
fn classes_of_catalog_types() {
    use CaptureDialect as D;
    assert_eq!(Class::of(D::Oracle, "NUMBER", "NUMBER(10,0)"), Class::Int);
    assert_eq!(Class::of(D::Oracle, "NUMBER", "NUMBER(5)"), Class::Int);
    assert_eq!(
        Class::of(D::Oracle, "NUMBER", "NUMBER(19,0)"),
        Class::Decimal
    );
    assert_eq!(Class::of(D::Oracle, "NUMBER", "NUMBER"), Class::Decimal);
    assert_eq!(Class::of(D::Oracle, "FLOAT", "FLOAT(126)"), Class::Decimal);
    assert_eq!(Class::of(D::Dm, "FLOAT", "FLOAT"), Class::Float);
    assert_eq!(Class::of(D::Oracle, "DATE", ""), Class::Timestamp);
    assert_eq!(Class::of(D::Dm, "DATE", ""), Class::Date);
    assert_eq!(
        Class::of(D::Oracle, "TIMESTAMP(6) WITH LOCAL TIME ZONE", ""),
        Class::TimestampTz
    );
    assert_eq!(Class::of(D::Oracle, "TIMESTAMP(9)", ""), Class::Timestamp);
    assert_eq!(
        Class::of(D::Oracle, "INTERVAL DAY(0) TO SECOND(6)", ""),
        Class::Time
    );
    assert_eq!(
        Class::of(D::SqlServer, "datetimeoffset", ""),
        Class::TimestampTz
    );
    assert_eq!(Class::of(D::SqlServer, "money", ""), Class::Decimal);
    assert_eq!(Class::of(D::SqlServer, "bit", ""), Class::Bool);
    assert_eq!(
        Class::of(D::Mysql, "bigint", "bigint(20) unsigned"),
        Class::Decimal
    );
    assert_eq!(Class::of(D::Postgres, "bigint", "bigint"), Class::Int);
    for c in Class::ALL {
        assert_eq!(Class::from_name(c.name()), c);
        assert_eq!(Class::of_declared(&c.declared(Some("10"), Some("2"))), c);
    }
}

/// One family rule: every capture dialect is a statement dialect of the same name and
/// back; SQLite (its own source) and SQL92 (no database) are not capture dialects.
#[test]
fn capture_dialects_are_the_statement_dialects_of_their_family() {
    for cd in CaptureDialect::ALL {
        let d = Dialect::from(cd);
        assert_eq!(d.name(), cd.name());
        assert_eq!(CaptureDialect::try_from(d), Ok(cd));
    }
    assert_eq!(
        CaptureDialect::try_from(Dialect::Sqlite),
        Err(Dialect::Sqlite)
    );
    assert_eq!(
        CaptureDialect::try_from(Dialect::Sql92),
        Err(Dialect::Sql92)
    );
}
