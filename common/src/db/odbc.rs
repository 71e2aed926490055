//! ODBC targets (feature `odbc`): PostgreSQL, MySQL/MariaDB and any database reachable
//! through unixODBC, behind the same [`Backend`] trait as SQLite.
//!
//! One process-wide ODBC environment; one connection per [`OdbcBackend`]. The DBMS is
//! detected from the driver (`SQLGetInfo(SQL_DBMS_NAME)`) unless the config names the
//! dialect, and the session is set up so that the batch files' literals mean what the
//! sender meant:
//!
//! The session set-up per dialect is [`super::session_setup`] (the ledger DDL is
//! apply's, `ledger_ddl_for`; both pinned by `tests/golden/ledger.sql`); in short:
//!
//! | DBMS | session set-up |
//! |---|---|
//! | PostgreSQL | `standard_conforming_strings = on`, `TIME ZONE 'UTC'`, `client_encoding = 'UTF8'` |
//! | MySQL / MariaDB | `sql_mode` + `NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_ALL_TABLES`, `time_zone = '+00:00'`, connector flag FOUND_ROWS (`Option=2`) |
//! | SQL Server | `QUOTED_IDENTIFIER ON`, `ANSI_NULLS ON`, `XACT_ABORT ON` (not yet run live) |
//! | Oracle, DM | `TIME_ZONE = '+00:00'`, `NLS_NUMERIC_CHARACTERS = '.,'` (not yet run live) |
//!
//! With `NO_BACKSLASH_ESCAPES` a value like `x\'); DROP TABLE t; --` stays one string.
//!
//! Errors are classified by SQLSTATE: connection exceptions (class 08), serialization
//! failures and deadlocks (40001, 40P01), timeouts (HYT00/HYT01), server shutdown or
//! start-up (57P01-57P03), resource shortages (class 53) and MySQL's lock-wait timeout,
//! deadlock and lost-connection codes are transient; everything else is deterministic.

use std::sync::OnceLock;

use odbc_api::{
    Connection, ConnectionOptions, Cursor, Environment, IntoParameter, ResultSetMetadata,
    parameter::InputParameter,
};

use crate::db::{Backend, DbError, Exec, Param};
use crate::dialect::Dialect;

/// Seconds an ODBC login may take before it fails (transient: retried).
pub const LOGIN_TIMEOUT_SECS: u32 = 10;

static ENV: OnceLock<Result<Environment, DbError>> = OnceLock::new();

fn env() -> Result<&'static Environment, DbError> {
    ENV.get_or_init(|| {
        Environment::new().map_err(|e| DbError {
            transient: false,
            ..odbc_err(e).context("cannot set up the ODBC environment (is unixODBC installed?)")
        })
    })
    .as_ref()
    .map_err(DbError::clone)
}

/// The dialect of a target from a dialect name or a driver's DBMS name (`SQL_DBMS_NAME`:
/// "PostgreSQL", "MariaDB", "MySQL", "Microsoft SQL Server", "Oracle", "DM ..."); an
/// unknown DBMS gets SQL92.
pub fn detect_dialect(name: &str) -> Dialect {
    if let Ok(d) = name.parse::<Dialect>() {
        return d;
    }
    let n = name.to_ascii_lowercase();
    if n.contains("postgres") {
        Dialect::Postgres
    } else if n.contains("mysql") || n.contains("mariadb") {
        Dialect::Mysql
    } else if n.contains("sql server") {
        Dialect::SqlServer
    } else if n.contains("oracle") {
        Dialect::Oracle
    } else if n == "dm" || n.starts_with("dm ") || n.contains("dameng") || n.contains("dmdbms") {
        Dialect::Dm
    } else {
        Dialect::Sql92
    }
}

/// Classify an ODBC error.
pub fn odbc_err(e: odbc_api::Error) -> DbError {
    let (mut sql_state, mut native) = (None, None);
    let transient = match &e {
        odbc_api::Error::Diagnostics { record, .. } => {
            let state = std::str::from_utf8(&record.state.0).unwrap_or("");
            sql_state = Some(state.to_owned()).filter(|s| !s.is_empty());
            native = Some(record.native_error);
            state.starts_with("08")
                || state.starts_with("53")
                || matches!(
                    state,
                    "40001" | "40P01" | "HYT00" | "HYT01" | "57P01" | "57P02" | "57P03"
                )
                || matches!(record.native_error, 1205 | 1213 | 2002 | 2003 | 2006 | 2013)
        }
        // No diagnostic record: the driver could not even say what went wrong; retrying
        // is the safe reading (nothing is dropped on a guess).
        _ => true,
    };
    DbError {
        transient,
        message: e.to_string().replace('\n', " "),
        sql_state,
        native,
    }
}

/// A target reached through ODBC.
pub struct OdbcBackend {
    conn: Connection<'static>,
    dialect: Dialect,
}

impl std::fmt::Debug for OdbcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdbcBackend")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl OdbcBackend {
    /// Connect with an ODBC connection string and set the session up.
    pub fn connect(conn_str: &str, dialect: Option<&str>) -> Result<OdbcBackend, DbError> {
        let conn_str = with_found_rows(conn_str);
        let conn = env()?
            .connect_with_connection_string(
                &conn_str,
                ConnectionOptions {
                    // A server that does not answer (a host dropping packets) must not hold
                    // a caller for the driver's default, often minutes: well below the
                    // link's frame timeout, so a connection thread's ledger read cannot
                    // outlast the sender's wait.
                    login_timeout_sec: Some(LOGIN_TIMEOUT_SECS),
                    ..ConnectionOptions::default()
                },
            )
            .map_err(odbc_err)?;
        let name = match dialect {
            Some(d) => d.to_owned(),
            None => conn.database_management_system_name().map_err(odbc_err)?,
        };
        let dialect = detect_dialect(&name);
        let mut b = OdbcBackend { conn, dialect };
        for s in super::session_setup(dialect) {
            b.execute(s)?;
        }
        Ok(b)
    }
}

/// MySQL/MariaDB connectors report rows *changed* by an UPDATE unless asked for rows
/// *matched* (the FOUND_ROWS client flag, bit 2 of `Option`): an UPDATE that writes the
/// values a row already has must count as a match, or it would read as divergence.
fn with_found_rows(conn_str: &str) -> String {
    let lower = conn_str.to_ascii_lowercase();
    let driver_is_mysql = lower.split(';').any(|kv| {
        kv.trim_start().starts_with("driver") && (kv.contains("mariadb") || kv.contains("mysql"))
    });
    if !driver_is_mysql {
        return conn_str.to_owned();
    }
    let mut parts: Vec<String> = conn_str
        .split(';')
        .filter(|kv| !kv.trim().is_empty())
        .map(str::to_owned)
        .collect();
    match parts
        .iter_mut()
        .find(|kv| kv.trim_start().to_ascii_lowercase().starts_with("option="))
    {
        Some(kv) => {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), "0"));
            let n: u64 = v.trim().parse().unwrap_or(0);
            *kv = format!("{k}={}", n | 2);
        }
        None => parts.push("Option=2".into()),
    }
    let mut out = parts.join(";");
    out.push(';');
    out
}

fn to_params(params: &[Param<'_>]) -> Vec<Box<dyn InputParameter>> {
    params
        .iter()
        .map(|p| -> Box<dyn InputParameter> {
            match p {
                Param::Text(t) => Box::new((*t).to_owned().into_parameter()),
                Param::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

/// The consumer of [`OdbcBackend::query_each`]'s rows.
/// What a row sink may fail with (the caller's own error, boxed).
pub type RowError = Box<dyn std::error::Error + Send + Sync>;

pub type RowSink<'a> = dyn FnMut(&[Option<String>]) -> Result<(), RowError> + 'a;

impl OdbcBackend {
    /// Run a query and hand every row (values as text, NULL as None) to `f`, streaming:
    /// memory stays bounded by one row. Errors of `f` end the query and come back as
    /// they are.
    pub fn query_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut RowSink<'_>,
    ) -> Result<(), RowError> {
        let p = to_params(params);
        let Some(mut cursor) = self.conn.execute(sql, &p[..], None).map_err(odbc_err)? else {
            return Ok(());
        };
        let cols = cursor.num_result_cols().map_err(odbc_err)?.max(0) as u16;
        let mut buf = Vec::new();
        let mut vals: Vec<Option<String>> = Vec::with_capacity(usize::from(cols));
        while let Some(mut row) = cursor.next_row().map_err(odbc_err)? {
            vals.clear();
            for c in 1..=cols {
                buf.clear();
                let present = row.get_text(c, &mut buf).map_err(odbc_err)?;
                vals.push(present.then(|| String::from_utf8_lossy(&buf).into_owned()));
            }
            f(&vals)?;
        }
        Ok(())
    }
}

impl Backend for OdbcBackend {
    fn begin(&mut self) -> Result<(), DbError> {
        self.conn.set_autocommit(false).map_err(odbc_err)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.commit().map_err(odbc_err)?;
        self.conn.set_autocommit(true).map_err(odbc_err)
    }

    fn rollback(&mut self) {
        let _ = self.conn.rollback();
        let _ = self.conn.set_autocommit(true);
    }

    fn execute(&mut self, sql: &str) -> Result<u64, DbError> {
        self.execute_params(sql, &[])
    }

    /// One statement handle for the whole batch (allocating and freeing one per
    /// statement was a measurable part of the client's CPU: BENCHMARKS.md).
    fn execute_each(
        &mut self,
        each: &mut dyn FnMut(&mut Exec<'_>) -> Result<u64, DbError>,
    ) -> Result<u64, DbError> {
        let mut stmt = self
            .conn
            .preallocate()
            .map_err(|e| odbc_err(e).context("allocating a statement handle"))?;
        each(&mut |sql| {
            drop(stmt.execute(sql, ()).map_err(odbc_err)?);
            Ok(stmt.row_count().map_err(odbc_err)?.unwrap_or(0) as u64)
        })
    }

    fn execute_params(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.conn.preallocate().map_err(odbc_err)?;
        let p = to_params(params);
        drop(stmt.execute(sql, &p[..]).map_err(odbc_err)?);
        Ok(stmt.row_count().map_err(odbc_err)?.unwrap_or(0) as u64)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let mut out = Vec::new();
        self.query_each(sql, params, &mut |row| {
            out.push(row.to_vec());
            Ok(())
        })
        .map_err(|e| match e.downcast::<DbError>() {
            Ok(e) => *e,
            Err(e) => DbError::deterministic(e.to_string()),
        })?;
        Ok(out)
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn found_rows_flag_is_added_for_mysql_drivers_only() {
        use super::with_found_rows as f;
        assert_eq!(
            f("Driver={MariaDB Unicode};Server=127.0.0.1;Uid=root;Pwd=;"),
            "Driver={MariaDB Unicode};Server=127.0.0.1;Uid=root;Pwd=;Option=2;"
        );
        assert_eq!(
            f("DRIVER={MySQL ODBC 8.0};OPTION=8"),
            "DRIVER={MySQL ODBC 8.0};OPTION=10;"
        );
        let pg = "Driver={PostgreSQL Unicode};Server=x;";
        assert_eq!(f(pg), pg);
    }
}
