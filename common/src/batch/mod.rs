//! Batch files: the unit that crosses the gap (design §5).
//!
//! A batch is one UTF-8 text file of SQL statements, one per line, that the target's own
//! SQL client (e.g. the `sqlite3` CLI) can run unchanged: everything that is not a
//! statement is a `--` comment line.
//!
//! # Format v1
//!
//! Every line ends in exactly one `\n` byte (0x0A); `\r` appears nowhere. Line by line:
//!
//! ```text
//! line  bytes (each line followed by 0x0A)
//! ----  ----------------------------------------------------------------------------
//!  1    -- gapsync batch v1
//!  2    -- node: <node id>              1..=32 of [A-Za-z0-9_-]
//!  3    -- seq: <u64>                   decimal, no sign, no leading zeros
//!  4    -- created: <UTC time>          YYYY-MM-DDTHH:MM:SS.ffffffZ (27 bytes)
//!  5    -- dialect: <name>              1..=32 of [A-Za-z0-9_-], e.g. sqlite
//!  6    -- kind: changes|snapshot
//!  7    -- changes: <first>-<last>      source change ids, 0 <= first <= last; "-" if none
//!  8    -- statements: <u64>            number N of statement lines that follow
//!  9    <statement 1>                   non-empty, ends in ';', does not start with "--",
//! ...   ...                             no '\n' or '\r' inside
//! 8+N   <statement N>
//! 9+N   -- sha256: <64 lowercase hex>   SHA-256 of bytes 0 .. start of this line
//! 10+N  -- signature: <key id> <hex>    optional, NOT covered by the sha256; written by
//!                                       a writer with a signer: Ed25519 over (node, seq,
//!                                       file name, sha256), see [`crate::sign`]
//!       (end of file: nothing else may follow)
//! ```
//!
//! Header keys appear exactly once each, in exactly this order, with exactly one space
//! after `--` and after `:`; values are in canonical form (what the writer produces), so
//! a given header has exactly one valid spelling.
//!
//! # Names
//!
//! `<node>-<seq as 20 digits>.sql`, or `.sql.zst` when the whole file is one zstd
//! stream (the sha256 trailer is always of the uncompressed text). ASCII only. A file is
//! written as `.tmp-<final name>` in the same directory, fsynced, renamed to the final
//! name and the directory fsynced; readers act only on final names.
//!
//! # Reading
//!
//! [`verify_batch`] makes one streaming pass (decompressing on the fly, with a cap on
//! the decompressed size) and checks everything; [`open_statements`] makes the second
//! pass for execution, yielding statements into a reused buffer. The second pass repeats
//! all checks, so a file changed between the passes yields an error at the end (the
//! caller rolls back). Memory stays bounded by the I/O buffers plus the longest allowed
//! statement, whatever the file size.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// First line of every v1 batch file.
pub const FORMAT_LINE: &str = "-- gapsync batch v1";
/// Default [`ReadLimits::max_statement_len`]; also enforced by [`BatchWriter::push`].
pub const DEFAULT_MAX_STATEMENT_LEN: usize = 16 << 20;
/// Default [`ReadLimits::max_decompressed`] (4 GiB).
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 4 << 30;
/// Default [`ReadLimits::max_statements`].
pub const DEFAULT_MAX_STATEMENTS: u64 = 100_000_000;

const KEYS: [&str; 7] = [
    "node",
    "seq",
    "created",
    "dialect",
    "kind",
    "changes",
    "statements",
];
const HEADER_LINES: u64 = 1 + KEYS.len() as u64;
const SHA_PREFIX: &str = "-- sha256: ";
const SIG_PREFIX: &str = "-- signature: ";
const TMP_PREFIX: &str = ".tmp-";
/// Longest header, trailer or signature line (without its `\n`).
const MAX_META_LINE: usize = 4096;
const IO_BUF: usize = 256 * 1024;
const CREATED_FMT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

type Result<T, E = BatchError> = std::result::Result<T, E>;

/// Everything that can go wrong writing or reading a batch file.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid batch file name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("invalid batch header: {0}")]
    BadHeader(Rule),
    #[error("{path}: line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: line {line}: invalid statement: {reason}")]
    BadStatement {
        path: PathBuf,
        line: u64,
        reason: Rule,
    },
    #[error(
        "{path}: line {line}: sha256 mismatch: trailer says {expected}, content hashes to {actual}"
    )]
    ChecksumMismatch {
        path: PathBuf,
        line: u64,
        expected: String,
        actual: String,
    },
    #[error("{path}: header declares {declared} statements but the batch has {actual}")]
    CountMismatch {
        path: PathBuf,
        declared: u64,
        actual: u64,
    },
    #[error("{path}: {reason}")]
    NameMismatch { path: PathBuf, reason: String },
    #[error(
        "{path}: content exceeds the limit of {limit} bytes (decompression bomb or oversized file)"
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: already exists")]
    AlreadyExists { path: PathBuf },
}

/// What a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Captured changes (INSERT / UPDATE / DELETE).
    Changes,
    /// A table snapshot (CREATE TABLE plus rows).
    Snapshot,
}

impl BatchKind {
    /// The header spelling: `changes` or `snapshot`.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchKind::Changes => "changes",
            BatchKind::Snapshot => "snapshot",
        }
    }
}

impl fmt::Display for BatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header lines 2..=8 of a batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub node: String,
    pub seq: u64,
    /// RFC 3339 UTC with microseconds and `Z`, see [`format_created`].
    pub created: String,
    pub dialect: String,
    pub kind: BatchKind,
    /// First and last source change id, inclusive.
    pub changes: Option<(i64, i64)>,
    /// Number of statement lines.
    pub statements: u64,
}

/// Formats a time as the header's `created` value: `2026-11-21T10:00:00.123456Z`.
pub fn format_created(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format(CREATED_FMT).to_string()
}

/// Limits applied while reading (all inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// Cap on the (decompressed) content bytes read; more is refused, not inflated.
    pub max_decompressed: u64,
    /// Longest statement line in bytes, without its `\n`.
    pub max_statement_len: usize,
    /// Most statements a batch may declare.
    pub max_statements: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
            max_statement_len: DEFAULT_MAX_STATEMENT_LEN,
            max_statements: DEFAULT_MAX_STATEMENTS,
        }
    }
}

/// A batch file renamed to its final name by [`BatchWriter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBatch {
    pub name: String,
    pub path: PathBuf,
    /// Bytes on disk.
    pub size: u64,
    /// SHA-256 of the bytes on disk (compressed if compressed).
    pub file_sha256: [u8; 32],
    /// SHA-256 of the uncompressed text before the trailer (the trailer's value).
    pub content_sha256: [u8; 32],
}

/// Result of a successful [`verify_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBatch {
    pub header: BatchHeader,
    pub content_sha256: [u8; 32],
    /// Text after `-- signature: ` (`<key id> <hex>`), if the line is present.
    pub signature: Option<String>,
    /// The file name (final name).
    pub name: String,
}

// ---------------------------------------------------------------------------------------
// Names and header values

/// `<node>-<seq as 20 digits>.sql` (`.sql.zst` when compressed). Does not validate `node`.
pub fn batch_file_name(node: &str, seq: u64, compressed: bool) -> String {
    let ext = if compressed { ".sql.zst" } else { ".sql" };
    format!("{node}-{seq:020}{ext}")
}

/// Splits a final batch file name into (node, seq, compressed).
pub fn parse_batch_file_name(name: &str) -> Result<(String, u64, bool)> {
    let bad = |reason: &str| BatchError::BadName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if !name.is_ascii() {
        return Err(bad("not ASCII"));
    }
    if name.contains(['/', '\\']) {
        return Err(bad("contains a path separator"));
    }
    if name.contains("..") {
        return Err(bad("contains '..'"));
    }
    let (stem, compressed) = if let Some(s) = name.strip_suffix(".sql.zst") {
        (s, true)
    } else if let Some(s) = name.strip_suffix(".sql") {
        (s, false)
    } else {
        return Err(bad("must end in .sql or .sql.zst"));
    };
    let (node, digits) = stem
        .rsplit_once('-')
        .ok_or_else(|| bad("expected <node>-<20-digit sequence>"))?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(&format!(
            "sequence must be exactly 20 decimal digits, found {:?} ({} chars)",
            digits,
            digits.len()
        )));
    }
    let seq = digits
        .parse::<u64>()
        .map_err(|_| bad("sequence does not fit in 64 bits"))?;
    check_token(node).map_err(|r| bad(&r.of("node id").to_string()))?;
    Ok((node.to_owned(), seq, compressed))
}

/// A header value or a statement line that breaks the format's rules (the reader and
/// the writer wrap it in a [`BatchError`] with the file and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    /// A node id or dialect name outside the node-id rule.
    #[error("{value:?}: {reason}")]
    Token { value: String, reason: String },
    #[error("{0:?} is not a canonical unsigned decimal number")]
    NotCanonical(String),
    #[error("{0:?} is not a UTC time like 2026-11-21T10:00:00.123456Z")]
    Created(String),
    #[error("{0:?} is not <first>-<last> or -")]
    Changes(String),
    #[error("change range {0}-{1} needs 0 <= first <= last")]
    ChangeRange(i64, i64),
    #[error("change id {0} too large")]
    ChangeId(u64),
    #[error("{0:?} is not changes or snapshot")]
    Kind(String),
    #[error("{0} is over the limit of {1}")]
    TooMany(u64, u64),
    /// A header field's rule, named.
    #[error("{field}: {rule}")]
    Field {
        field: &'static str,
        rule: Box<Rule>,
    },
    #[error("empty line")]
    Empty,
    #[error("{len} bytes, longer than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("contains a line break (\\n or \\r)")]
    LineBreak,
    #[error("starts with \"--\"")]
    Comment,
    #[error("does not end with ';'")]
    NoSemicolon,
    #[error("header declares {0} statements, refusing one more")]
    BeyondDeclared(u64),
    #[error("signing key is for node {key}, the batch is of node {batch}")]
    SignerNode { key: String, batch: String },
}

impl Rule {
    fn of(self, field: &'static str) -> Rule {
        Rule::Field {
            field,
            rule: Box::new(self),
        }
    }
}

/// Node ids and dialect names: the link's node-id rule (1..=32 of `[A-Za-z0-9_-]`,
/// [`gapsync_protocol::validate_node`]), the one definition of it.
fn check_token(s: &str) -> Result<(), Rule> {
    gapsync_protocol::validate_node(s).map_err(|e| Rule::Token {
        value: s.to_owned(),
        reason: match e {
            gapsync_protocol::FrameError::BadNode { reason, .. } => reason.to_string(),
            other => other.to_string(),
        },
    })
}

fn parse_u64(s: &str) -> Result<u64, Rule> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| Rule::NotCanonical(s.to_owned()))
}

/// Whether `s` is a `created` time as batch headers (and manifests) write it.
pub fn valid_created(s: &str) -> bool {
    check_created(s).is_ok()
}

fn check_created(s: &str) -> Result<(), Rule> {
    let ok = chrono::NaiveDateTime::parse_from_str(s, CREATED_FMT)
        .is_ok_and(|t| t.format(CREATED_FMT).to_string() == s);
    ok.then_some(()).ok_or_else(|| Rule::Created(s.to_owned()))
}

fn check_changes(c: Option<(i64, i64)>) -> Result<(), Rule> {
    match c {
        Some((a, b)) if a < 0 || a > b => Err(Rule::ChangeRange(a, b)),
        _ => Ok(()),
    }
}

fn parse_changes(s: &str) -> Result<Option<(i64, i64)>, Rule> {
    if s == "-" {
        return Ok(None);
    }
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| Rule::Changes(s.to_owned()))?;
    let id = |v: &str| -> Result<i64, Rule> {
        let n = parse_u64(v)?;
        i64::try_from(n).map_err(|_| Rule::ChangeId(n))
    };
    let c = Some((id(a)?, id(b)?));
    check_changes(c)?;
    Ok(c)
}

fn parse_kind(s: &str) -> Result<BatchKind, Rule> {
    match s {
        "changes" => Ok(BatchKind::Changes),
        "snapshot" => Ok(BatchKind::Snapshot),
        _ => Err(Rule::Kind(s.to_owned())),
    }
}

fn check_header(h: &BatchHeader) -> Result<(), Rule> {
    check_token(&h.node).map_err(|r| r.of("node id"))?;
    check_created(&h.created).map_err(|r| r.of("created"))?;
    check_token(&h.dialect).map_err(|r| r.of("dialect"))?;
    check_changes(h.changes)
}

fn render_header(h: &BatchHeader) -> String {
    let changes = match h.changes {
        Some((a, b)) => format!("{a}-{b}"),
        None => "-".to_owned(),
    };
    format!(
        "{FORMAT_LINE}\n-- node: {}\n-- seq: {}\n-- created: {}\n-- dialect: {}\n-- kind: {}\n\
         -- changes: {changes}\n-- statements: {}\n",
        h.node, h.seq, h.created, h.dialect, h.kind, h.statements
    )
}

/// The statement line rules (the line is given without its `\n`).
fn check_statement(s: &str, max_len: usize) -> Result<(), Rule> {
    if s.is_empty() {
        Err(Rule::Empty)
    } else if s.len() > max_len {
        Err(Rule::TooLong {
            len: s.len(),
            max: max_len,
        })
    } else if s.contains(['\n', '\r']) {
        Err(Rule::LineBreak)
    } else if s.starts_with("--") {
        Err(Rule::Comment)
    } else if !s.ends_with(';') {
        Err(Rule::NoSemicolon)
    } else {
        Ok(())
    }
}

/// At most 60 chars of `s`, for error messages.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Size and SHA-256 of a file, streaming.
pub fn sha256_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_at(path)(e)),
        }
    }
    Ok((size, hasher.finalize().into()))
}

mod read;
#[cfg(test)]
mod tests;
mod write;

pub use read::{
    StatementReader, open_statements, read_statements, verify_batch, verify_open_batch,
};
pub use write::BatchWriter;
