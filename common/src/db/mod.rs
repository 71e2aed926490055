//! The database layer both sides share: a classified error ([`DbError`]: transient or
//! not), query parameters, the [`Backend`] connection trait, SQLite's error
//! classification, the session set-up per dialect and (feature `odbc`) the ODBC
//! connection. It knows no batch, no capture and no apply.

use rusqlite::ErrorCode;

use crate::dialect::Dialect;

#[cfg(feature = "odbc")]
pub mod odbc;

/// An error of a backend, already classified: whether running the same thing again
/// later may succeed, and what the database itself said (its SQL state and native
/// code), for a caller that decides on them and for the operator.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// Retry later (locked, busy, unreachable, out of disk); never counts as a failure.
    pub transient: bool,
    pub message: String,
    /// The five-character SQLSTATE of the database's diagnostic (ODBC), if it gave one.
    pub sql_state: Option<String>,
    /// The database's own error code: the ODBC native error (`ORA-00955` is 955, MySQL's
    /// deadlock 1213) or SQLite's extended result code.
    pub native: Option<i32>,
}

impl DbError {
    /// The same error with `ctx` in front of its message.
    pub fn context(self, ctx: &str) -> DbError {
        DbError {
            message: format!("{ctx}: {}", self.message),
            ..self
        }
    }

    /// A deterministic error (running it again gives the same result).
    pub fn deterministic(message: impl Into<String>) -> DbError {
        DbError {
            transient: false,
            message: message.into(),
            sql_state: None,
            native: None,
        }
    }

    /// The message with the database's SQL state, where it gave one (for quarantine
    /// reasons and the operator): `... [SQLSTATE 23505]`.
    pub fn described(&self) -> String {
        match &self.sql_state {
            Some(s) => format!("{} [SQLSTATE {s}]", self.message),
            None => self.message.clone(),
        }
    }

    /// A transient error (running it again later may succeed).
    pub fn transient(message: impl Into<String>) -> DbError {
        DbError {
            transient: true,
            ..DbError::deterministic(message)
        }
    }
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// A database connection as both sides use it (a source's ODBC connection for capture,
/// a target's for apply). Parameters are written `?` in SQL.
pub trait Backend: Send + std::fmt::Debug {
    /// Begin a transaction (autocommit off until commit/rollback).
    fn begin(&mut self) -> std::result::Result<(), DbError>;
    fn commit(&mut self) -> std::result::Result<(), DbError>;
    /// Roll back; errors are ignored (a dead connection rolls back by itself).
    fn rollback(&mut self);
    /// Execute one statement of a batch; returns the number of rows it changed.
    fn execute(&mut self, sql: &str) -> std::result::Result<u64, DbError>;
    /// Execute with parameters; returns the number of rows changed.
    fn execute_params(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<u64, DbError>;
    /// Run a query; every value as text (NULL as None).
    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Vec<Option<String>>>, DbError>;
    /// The SQL dialect of the database.
    fn dialect(&self) -> Dialect;
    /// Run a batch's statements: `each` gets an executor and calls it once per
    /// statement, in order. A backend may keep one statement handle for the whole batch
    /// (ODBC); the default executes each statement with [`execute`](Self::execute).
    fn execute_each(
        &mut self,
        each: &mut dyn FnMut(&mut Exec<'_>) -> std::result::Result<u64, DbError>,
    ) -> std::result::Result<u64, DbError> {
        each(&mut |sql| self.execute(sql))
    }
}

/// The executor [`Backend::execute_each`] hands out: runs one statement, returns the
/// number of rows it changed.
pub type Exec<'a> = dyn FnMut(&str) -> std::result::Result<u64, DbError> + 'a;

/// Whether a SQLite error is worth retrying.
pub fn is_transient(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ReadOnly
                | ErrorCode::NotADatabase
        ),
        _ => false,
    }
}

pub fn sqlite_err(e: rusqlite::Error) -> DbError {
    let native = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    };
    DbError {
        transient: is_transient(&e),
        message: e.to_string(),
        sql_state: None,
        native,
    }
}

/// What a target session runs first so that the batch files' literals mean what the
/// sender wrote (strings without backslash escapes, identifiers in double quotes or
/// brackets, UTC).
pub fn session_setup(d: Dialect) -> &'static [&'static str] {
    match d {
        Dialect::Postgres => &[
            "SET standard_conforming_strings = on",
            "SET TIME ZONE 'UTC'",
            "SET client_encoding = 'UTF8'",
            "SET extra_float_digits = 3",
        ],
        Dialect::Mysql => &[
            "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_ALL_TABLES')",
            "SET time_zone = '+00:00'",
        ],
        Dialect::SqlServer => &[
            "SET QUOTED_IDENTIFIER ON",
            "SET ANSI_NULLS ON",
            "SET XACT_ABORT ON",
            "SET NOCOUNT OFF",
        ],
        Dialect::Oracle | Dialect::Dm => &[
            "ALTER SESSION SET TIME_ZONE = '+00:00'",
            "ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,'",
        ],
        Dialect::Sqlite | Dialect::Sql92 => &[],
    }
}
