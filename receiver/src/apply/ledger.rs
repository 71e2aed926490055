//! gapsync's bookkeeping tables on the target: the ledger and the quarantine, their
//! DDL per dialect.

use gapsync_common::dialect::Dialect;

/// Ledger DDL for SQLite, PostgreSQL, MySQL/MariaDB and SQL92 (`CREATE TABLE IF NOT EXISTS`).
pub const LEDGER_DDL: [&str; 2] = [
    r#"CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#,
    r#"CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#,
];

/// The ledger and quarantine tables for a target of dialect `d`, created if absent.
/// SQL Server, Oracle and DM have no `CREATE TABLE IF NOT EXISTS` (Oracle only from 23ai):
/// SQL Server tests `OBJECT_ID`, Oracle and DM run the CREATE in a PL/SQL block that
/// ignores "name already used" (ORA-00955 / DM -2124). Those three have not yet run
/// against a live server; `tests/golden/ledger.sql` pins what they get.
pub fn ledger_ddl_for(d: Dialect) -> Vec<String> {
    // Every name quoted: Oracle refuses unquoted names that start with `_`, and `file`
    // is reserved in Oracle and SQL Server.
    let cols = |text: &str, big: &str, clob: &str| {
        [
            format!(
                r#""_gapsync_ledger"("node" {text}(32) NOT NULL, "seq" {big} NOT NULL, "sha256" {text}(64) NOT NULL, "file" {text}(255) NOT NULL, "statements" {big} NOT NULL, "applied_at" {text}(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#
            ),
            format!(
                r#""_gapsync_quarantine"("node" {text}(32) NOT NULL, "seq" {big} NOT NULL, "sha256" {text}(64) NOT NULL, "file" {text}(255) NOT NULL, "reason" {clob} NOT NULL, "at" {text}(32) NOT NULL, PRIMARY KEY ("node", "seq"))"#
            ),
        ]
    };
    match d {
        Dialect::SqlServer => cols("NVARCHAR", "BIGINT", "NVARCHAR(MAX)")
            .iter()
            .map(|t| {
                let name = t.split("\"(").next().unwrap_or_default().trim_matches('"');
                format!("IF OBJECT_ID(N'{name}', N'U') IS NULL CREATE TABLE {t}")
            })
            .collect(),
        Dialect::Oracle | Dialect::Dm => {
            let (code, clob, big) = if d == Dialect::Oracle {
                (-955, "NCLOB", "NUMBER(19)")
            } else {
                (-2124, "CLOB", "BIGINT")
            };
            cols("VARCHAR2", big, clob)
                .iter()
                .map(|t| {
                    format!(
                        "BEGIN EXECUTE IMMEDIATE 'CREATE TABLE {t}'; EXCEPTION WHEN OTHERS THEN \
                         IF SQLCODE != {code} THEN RAISE; END IF; END;"
                    )
                })
                .collect()
        }
        _ => LEDGER_DDL.iter().map(|s| (*s).to_owned()).collect(),
    }
}
