//! gapsync common library: everything both sides share that is not the link.
//!
//! - [`config`]: sender and receiver TOML configuration, validated with errors that name
//!   the file and the key.
//! - [`value`]: the value model (SQLite's five storage classes).
//! - [`dialect`]: SQL dialects: identifier quoting, literal rendering, statement rendering.
//! - [`batch`]: the batch file format (writer, verifier, statement reader).
//! - [`audit`]: the append-only audit record.
//! - [`fsx`]: file-system rules of the work directories (private modes, no symlinks followed).
//! - [`sign`]: Ed25519 key files, batch signing and verification against trusted keys.
//! - [`manifest`]: the signed list of batch files on a folder or medium (no live link).
//! - [`receipt`]: the receiver's signed account of a node's seqs, carried back by hand.
//!
//! This crate opens no sockets.

pub mod audit;
pub mod batch;
pub mod config;
pub mod db;
pub mod dialect;
pub mod docs;
pub mod fsx;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod note;
pub mod progress;
pub mod receipt;
pub mod sign;
mod signed_xml;
pub mod stop;
pub mod value;
