//! gapsync common library: everything both sides share that is not the link.
//!
//! - [`config`]: sender and receiver TOML configuration, validated with errors that name
//!   the file and the key.
//! - [`value`]: the value model (SQLite's five storage classes).
//! - [`dialect`]: SQL dialects: identifier quoting, literal rendering, statement rendering.
//! - [`batch`]: the batch file format (writer, verifier, statement reader).
//! - [`source`]: change capture on a source database (tracking table, triggers, reads).
//! - [`target`]: applying batches on a target database with the ledger, exactly once.
//! - [`audit`]: the append-only audit record.
//! - [`fsx`]: file-system rules of the work directories (private modes, no symlinks followed).
//! - [`sign`]: Ed25519 key files, batch signing and verification against trusted keys.
//!
//! This crate opens no sockets.

pub mod allow;
pub mod audit;
pub mod batch;
pub mod capture_ddl;
pub mod config;
pub mod dialect;
pub mod fsx;
pub mod logging;
#[cfg(feature = "odbc")]
pub mod odbc;
#[cfg(feature = "odbc")]
pub mod odbc_source;
pub mod sign;
pub mod source;
pub mod stop;
pub mod target;
pub mod value;
