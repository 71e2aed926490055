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
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
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
    BadHeader(String),
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
        reason: String,
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
    check_token(node).map_err(|r| bad(&format!("node id: {r}")))?;
    Ok((node.to_owned(), seq, compressed))
}

/// Node ids and dialect names: the link's node-id rule (1..=32 of `[A-Za-z0-9_-]`,
/// [`gapsync_protocol::validate_node`]), the one definition of it.
fn check_token(s: &str) -> Result<(), String> {
    gapsync_protocol::validate_node(s).map_err(|e| match e {
        gapsync_protocol::FrameError::BadNode { reason, .. } => format!("{s:?}: {reason}"),
        other => other.to_string(),
    })
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| format!("{s:?} is not a canonical unsigned decimal number"))
}

fn check_created(s: &str) -> Result<(), String> {
    let ok = chrono::NaiveDateTime::parse_from_str(s, CREATED_FMT)
        .is_ok_and(|t| t.format(CREATED_FMT).to_string() == s);
    ok.then_some(())
        .ok_or_else(|| format!("{s:?} is not a UTC time like 2026-11-21T10:00:00.123456Z"))
}

fn check_changes(c: Option<(i64, i64)>) -> Result<(), String> {
    match c {
        Some((a, b)) if a < 0 || a > b => {
            Err(format!("change range {a}-{b} needs 0 <= first <= last"))
        }
        _ => Ok(()),
    }
}

fn parse_changes(s: &str) -> Result<Option<(i64, i64)>, String> {
    if s == "-" {
        return Ok(None);
    }
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not <first>-<last> or -"))?;
    let id = |v: &str| -> Result<i64, String> {
        i64::try_from(parse_u64(v)?).map_err(|_| format!("change id {v} too large"))
    };
    let c = Some((id(a)?, id(b)?));
    check_changes(c)?;
    Ok(c)
}

fn parse_kind(s: &str) -> Result<BatchKind, String> {
    match s {
        "changes" => Ok(BatchKind::Changes),
        "snapshot" => Ok(BatchKind::Snapshot),
        _ => Err(format!("{s:?} is not changes or snapshot")),
    }
}

fn check_header(h: &BatchHeader) -> Result<(), String> {
    check_token(&h.node).map_err(|r| format!("node id: {r}"))?;
    check_created(&h.created).map_err(|r| format!("created: {r}"))?;
    check_token(&h.dialect).map_err(|r| format!("dialect: {r}"))?;
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
fn check_statement(s: &str, max_len: usize) -> Result<(), String> {
    if s.is_empty() {
        Err("empty line".to_owned())
    } else if s.len() > max_len {
        Err(format!(
            "{} bytes, longer than the limit of {max_len}",
            s.len()
        ))
    } else if s.contains(['\n', '\r']) {
        Err("contains a line break (\\n or \\r)".to_owned())
    } else if s.starts_with("--") {
        Err("starts with \"--\"".to_owned())
    } else if !s.ends_with(';') {
        Err("does not end with ';'".to_owned())
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

// ---------------------------------------------------------------------------------------
// Writer

/// Hashes and counts what passes through to `inner`.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Stage {
    Plain(HashingWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<File>>),
}

impl Write for Stage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stage::Plain(w) => w.write(buf),
            Stage::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stage::Plain(w) => w.flush(),
            Stage::Zstd(w) => w.flush(),
        }
    }
}

/// Removes the temp file on drop unless disarmed.
#[derive(Debug)]
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Streaming batch file writer: `create`, `push` each statement, `finish`.
///
/// Dropping it without a successful `finish` removes the temp file.
pub struct BatchWriter {
    header: BatchHeader,
    name: String,
    dir: PathBuf,
    final_path: PathBuf,
    tmp_path: PathBuf,
    out: BufWriter<Stage>,
    content: Sha256,
    pushed: u64,
    guard: TempGuard,
    signer: Option<crate::sign::BatchSigner>,
}

impl fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchWriter")
            .field("tmp_path", &self.tmp_path)
            .field("pushed", &self.pushed)
            .field("declared", &self.header.statements)
            .finish_non_exhaustive()
    }
}

impl BatchWriter {
    /// Opens `dir/.tmp-<final name>` (replacing a stale one) and writes the header.
    /// Refuses if the final name already exists.
    pub fn create(
        dir: &Path,
        header: BatchHeader,
        compress: bool,
        zstd_level: i32,
    ) -> Result<Self> {
        check_header(&header).map_err(BatchError::BadHeader)?;
        let name = batch_file_name(&header.node, header.seq, compress);
        let final_path = dir.join(&name);
        let tmp_path = dir.join(format!("{TMP_PREFIX}{name}"));
        if final_path.try_exists().map_err(io_at(&final_path))? {
            return Err(BatchError::AlreadyExists { path: final_path });
        }
        // A stale temp file (or a symlink) of an interrupted writer is removed, not
        // followed; the new one is 0600, created O_EXCL | O_NOFOLLOW.
        match fs::remove_file(&tmp_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&tmp_path)(e)),
            _ => {}
        }
        let file = crate::fsx::create_private(&tmp_path).map_err(io_at(&tmp_path))?;
        let guard = TempGuard(Some(tmp_path.clone()));
        let hw = HashingWriter {
            inner: file,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let stage = if compress {
            Stage::Zstd(
                zstd::stream::write::Encoder::new(hw, zstd_level).map_err(io_at(&tmp_path))?,
            )
        } else {
            Stage::Plain(hw)
        };
        let mut w = BatchWriter {
            name,
            dir: dir.to_owned(),
            final_path,
            tmp_path,
            out: BufWriter::with_capacity(IO_BUF, stage),
            content: Sha256::new(),
            pushed: 0,
            guard,
            header,
            signer: None,
        };
        let text = render_header(&w.header);
        w.emit(text.as_bytes())?;
        Ok(w)
    }

    /// Sign the batch at [`finish`](Self::finish): the `-- signature:` line follows
    /// the sha256 trailer. The signer's node must be the header's node.
    pub fn with_signer(mut self, signer: Option<crate::sign::BatchSigner>) -> Result<Self> {
        if let Some(s) = &signer
            && s.node() != self.header.node
        {
            return Err(BatchError::BadHeader(format!(
                "signing key is for node {}, the batch is of node {}",
                s.node(),
                self.header.node
            )));
        }
        self.signer = signer;
        Ok(self)
    }

    /// The final file name this writer will produce.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.content.update(bytes);
        self.out.write_all(bytes).map_err(io_at(&self.tmp_path))
    }

    /// Appends one statement (with its `;`, without a newline).
    pub fn push(&mut self, statement: &str) -> Result<()> {
        let line = HEADER_LINES + self.pushed + 1;
        let bad = |reason: String| BatchError::BadStatement {
            path: self.final_path.clone(),
            line,
            reason,
        };
        check_statement(statement, DEFAULT_MAX_STATEMENT_LEN).map_err(bad)?;
        if self.pushed == self.header.statements {
            return Err(bad(format!(
                "header declares {} statements, refusing one more",
                self.header.statements
            )));
        }
        self.emit(statement.as_bytes())?;
        self.emit(b"\n")?;
        self.pushed += 1;
        Ok(())
    }

    /// Writes the trailer, fsyncs, renames to the final name and fsyncs the directory.
    pub fn finish(self) -> Result<WrittenBatch> {
        let BatchWriter {
            header,
            name,
            dir,
            final_path,
            tmp_path,
            mut out,
            content,
            pushed,
            mut guard,
            signer,
        } = self;
        if pushed != header.statements {
            return Err(BatchError::CountMismatch {
                path: final_path,
                declared: header.statements,
                actual: pushed,
            });
        }
        let io = io_at(&tmp_path);
        let content_sha256: [u8; 32] = content.finalize().into();
        let mut trailer = format!("{SHA_PREFIX}{}\n", hex::encode(content_sha256));
        if let Some(s) = &signer {
            let sig = s.sign(header.seq, &name, &content_sha256);
            trailer.push_str(&format!("{SIG_PREFIX}{sig}\n"));
        }
        out.write_all(trailer.as_bytes()).map_err(&io)?;
        let hw = match out.into_inner().map_err(|e| io(e.into_error()))? {
            Stage::Plain(hw) => hw,
            Stage::Zstd(enc) => enc.finish().map_err(&io)?,
        };
        hw.inner.sync_all().map_err(&io)?;
        drop(hw.inner);
        if final_path.try_exists().map_err(io_at(&final_path))? {
            return Err(BatchError::AlreadyExists { path: final_path });
        }
        fs::rename(&tmp_path, &final_path).map_err(&io)?;
        guard.0 = None;
        sync_dir(&dir)?;
        Ok(WrittenBatch {
            name,
            path: final_path,
            size: hw.bytes,
            file_sha256: hw.hasher.finalize().into(),
            content_sha256,
        })
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    crate::fsx::sync_dir(dir).map_err(io_at(dir))
}

// ---------------------------------------------------------------------------------------
// Reader

enum Source {
    Plain(File),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<File>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Zstd(r) => r.read(buf),
        }
    }
}

#[derive(Debug)]
struct LimitExceeded;

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("content size limit exceeded")
    }
}

impl std::error::Error for LimitExceeded {}

/// Passes at most `remaining` bytes, then fails if the source has more.
struct Capped<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            return match self.inner.read(&mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(io::Error::other(LimitExceeded)),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Bounded line reading with line numbers and error context.
struct Lines {
    input: BufReader<Capped<Source>>,
    path: PathBuf,
    line_no: u64,
    cap: u64,
}

impl Lines {
    fn err(&self, reason: impl Into<String>) -> BatchError {
        BatchError::Malformed {
            path: self.path.clone(),
            line: self.line_no,
            reason: reason.into(),
        }
    }

    /// Reads the next line, without its `\n`, into `buf` (reusing its allocation).
    /// `Ok(false)` at a clean end of file.
    fn next(&mut self, buf: &mut String, max_len: usize) -> Result<bool> {
        self.line_no += 1;
        let mut bytes = std::mem::take(buf).into_bytes();
        bytes.clear();
        let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut bytes)
            .map_err(
                |e| match e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
                    true => BatchError::TooLarge {
                        path: self.path.clone(),
                        limit: self.cap,
                    },
                    false => io_at(&self.path)(e),
                },
            )?;
        if n == 0 {
            return Ok(false);
        }
        if bytes.pop() != Some(b'\n') {
            return Err(if n as u64 == limit {
                self.err(format!("line longer than {max_len} bytes"))
            } else {
                self.err("unexpected end of file inside a line (truncated?)")
            });
        }
        *buf = String::from_utf8(bytes).map_err(|_| self.err("not valid UTF-8"))?;
        Ok(true)
    }

    /// Reads, hashes and returns the value of header line `idx` (key `KEYS[idx]`).
    fn field<T>(
        &mut self,
        buf: &mut String,
        hasher: &mut Sha256,
        idx: usize,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T> {
        let expected = KEYS[idx];
        if !self.next(buf, MAX_META_LINE)? {
            return Err(self.err(format!(
                "unexpected end of file: missing header key '{expected}'"
            )));
        }
        hasher.update(buf.as_bytes());
        hasher.update(b"\n");
        let Some((key, value)) = buf.strip_prefix("-- ").and_then(|r| r.split_once(": ")) else {
            return Err(self.err(format!(
                "expected header line '-- {expected}: <value>', found {}",
                snippet(buf)
            )));
        };
        if key != expected {
            let reason = if KEYS[..idx].contains(&key) {
                format!("duplicate header key '{key}'")
            } else if KEYS[idx..].contains(&key) {
                format!("missing header key '{expected}' (found '{key}')")
            } else {
                format!(
                    "unknown header key {} where '{expected}' was expected",
                    snippet(key)
                )
            };
            return Err(self.err(reason));
        }
        parse(value).map_err(|r| self.err(format!("header '{expected}': {r}")))
    }
}

enum State {
    Statements,
    Done {
        content_sha256: [u8; 32],
        signature: Option<String>,
    },
    Failed,
}

/// Streaming statement reader, see [`open_statements`].
pub struct StatementReader {
    lines: Lines,
    name: String,
    header: BatchHeader,
    max_statement_len: usize,
    hasher: Sha256,
    count: u64,
    state: State,
}

impl fmt::Debug for StatementReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementReader")
            .field("path", &self.lines.path)
            .field("line", &self.lines.line_no)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Opens a batch file for a streaming pass: parses and checks the name and the header.
pub fn open_statements(path: &Path, limits: &ReadLimits) -> Result<StatementReader> {
    let file = File::open(path).map_err(io_at(path))?;
    read_statements(file, path, limits)
}

/// [`open_statements`] on a file that is already open (read from its current
/// position), named by `path`. Verifying and then applying through the same open file
/// (rewound in between) reads the same bytes both times, whatever happens to the
/// directory entry meanwhile.
pub fn read_statements(file: File, path: &Path, limits: &ReadLimits) -> Result<StatementReader> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BatchError::BadName {
            name: path.display().to_string(),
            reason: "no file name, or not UTF-8".to_owned(),
        })?
        .to_owned();
    let (name_node, name_seq, compressed) = parse_batch_file_name(&name)?;
    let source = if compressed {
        Source::Zstd(zstd::stream::read::Decoder::new(file).map_err(io_at(path))?)
    } else {
        Source::Plain(file)
    };
    let capped = Capped {
        inner: source,
        remaining: limits.max_decompressed,
    };
    let mut lines = Lines {
        input: BufReader::with_capacity(IO_BUF, capped),
        path: path.to_owned(),
        line_no: 0,
        cap: limits.max_decompressed,
    };
    let mut hasher = Sha256::new();
    let mut buf = String::new();

    if !lines.next(&mut buf, MAX_META_LINE)? || buf != FORMAT_LINE {
        return Err(lines.err(format!("expected {FORMAT_LINE:?}, found {}", snippet(&buf))));
    }
    hasher.update(buf.as_bytes());
    hasher.update(b"\n");
    let h = &mut hasher;
    let b = &mut buf;
    let header = BatchHeader {
        node: lines.field(b, h, 0, |v| check_token(v).map(|()| v.to_owned()))?,
        seq: lines.field(b, h, 1, parse_u64)?,
        created: lines.field(b, h, 2, |v| check_created(v).map(|()| v.to_owned()))?,
        dialect: lines.field(b, h, 3, |v| check_token(v).map(|()| v.to_owned()))?,
        kind: lines.field(b, h, 4, parse_kind)?,
        changes: lines.field(b, h, 5, parse_changes)?,
        statements: lines.field(b, h, 6, |v| {
            let n = parse_u64(v)?;
            match n > limits.max_statements {
                true => Err(format!(
                    "{n} is over the limit of {}",
                    limits.max_statements
                )),
                false => Ok(n),
            }
        })?,
    };
    let mismatch =
        |what: &str, a: &dyn fmt::Display, b: &dyn fmt::Display| BatchError::NameMismatch {
            path: path.to_owned(),
            reason: format!("file name says {what} {a} but header says {what} {b}"),
        };
    if name_node != header.node {
        return Err(mismatch("node", &name_node, &header.node));
    }
    if name_seq != header.seq {
        return Err(mismatch("seq", &name_seq, &header.seq));
    }
    Ok(StatementReader {
        lines,
        name,
        header,
        max_statement_len: limits.max_statement_len,
        hasher,
        count: 0,
        state: State::Statements,
    })
}

impl StatementReader {
    /// The checked header. Note: it is only proven authentic once the trailer matched
    /// (`next_statement` returned `Ok(None)`).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verified content hash, once the end was reached.
    pub fn content_sha256(&self) -> Option<[u8; 32]> {
        match &self.state {
            State::Done { content_sha256, .. } => Some(*content_sha256),
            _ => None,
        }
    }

    /// The signature line's text, once the end was reached.
    pub fn signature(&self) -> Option<&str> {
        match &self.state {
            State::Done { signature, .. } => signature.as_deref(),
            _ => None,
        }
    }

    /// Reads the next statement (without `\n`) into `buf` and returns its line number.
    /// `Ok(None)` means the end was reached and the trailer (sha256, count) checked out.
    /// Any `Err` (also at the very end) means the batch must not be applied; the reader
    /// refuses further use after an error.
    pub fn next_statement(&mut self, buf: &mut String) -> Result<Option<u64>> {
        match self.state {
            State::Statements => {}
            State::Done { .. } => {
                buf.clear();
                return Ok(None);
            }
            State::Failed => return Err(self.lines.err("reader used after an earlier error")),
        }
        let r = self.step(buf);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn step(&mut self, buf: &mut String) -> Result<Option<u64>> {
        let max = self.max_statement_len.max(MAX_META_LINE);
        if !self.lines.next(buf, max)? {
            return Err(self
                .lines
                .err("unexpected end of file: missing sha256 trailer (truncated?)"));
        }
        if buf.starts_with("--") {
            self.finish_trailer(buf)?;
            buf.clear();
            return Ok(None);
        }
        let line = self.lines.line_no;
        check_statement(buf, self.max_statement_len).map_err(|reason| {
            BatchError::BadStatement {
                path: self.lines.path.clone(),
                line,
                reason,
            }
        })?;
        if self.count == self.header.statements {
            return Err(self.lines.err(format!(
                "more statements than the {} declared in the header",
                self.header.statements
            )));
        }
        self.hasher.update(buf.as_bytes());
        self.hasher.update(b"\n");
        self.count += 1;
        Ok(Some(line))
    }

    fn finish_trailer(&mut self, line: &mut String) -> Result<()> {
        let Some(expected) = line.strip_prefix(SHA_PREFIX) else {
            return Err(self.lines.err(format!(
                "expected a statement or the '{SHA_PREFIX}<hex>' trailer, found {}",
                snippet(line)
            )));
        };
        if expected.len() != 64
            || !expected
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(self
                .lines
                .err("sha256 trailer must hold 64 lowercase hex digits"));
        }
        let content_sha256: [u8; 32] = self.hasher.clone().finalize().into();
        let actual = hex::encode(content_sha256);
        if actual != expected {
            return Err(BatchError::ChecksumMismatch {
                path: self.lines.path.clone(),
                line: self.lines.line_no,
                expected: expected.to_owned(),
                actual,
            });
        }
        if self.count != self.header.statements {
            return Err(BatchError::CountMismatch {
                path: self.lines.path.clone(),
                declared: self.header.statements,
                actual: self.count,
            });
        }
        let mut signature = None;
        if self.lines.next(line, MAX_META_LINE)? {
            let Some(sig) = line.strip_prefix(SIG_PREFIX) else {
                return Err(self.lines.err(format!(
                    "only an optional '{SIG_PREFIX}...' line may follow the sha256 trailer, found {}",
                    snippet(line)
                )));
            };
            if sig.is_empty() || sig.chars().any(char::is_control) {
                return Err(self
                    .lines
                    .err("signature line is empty or holds control characters"));
            }
            signature = Some(sig.to_owned());
            if self.lines.next(line, MAX_META_LINE)? {
                return Err(self.lines.err("nothing may follow the signature line"));
            }
        }
        self.state = State::Done {
            content_sha256,
            signature,
        };
        Ok(())
    }
}

/// One full streaming pass: checks name, header, every statement line, the count and the
/// sha256 trailer. Does not check the signature (returned as text).
pub fn verify_batch(path: &Path, limits: &ReadLimits) -> Result<VerifiedBatch> {
    verify_statements(open_statements(path, limits)?)
}

/// [`verify_batch`] on an open file named by `path` (see [`read_statements`]).
pub fn verify_open_batch(file: File, path: &Path, limits: &ReadLimits) -> Result<VerifiedBatch> {
    verify_statements(read_statements(file, path, limits)?)
}

fn verify_statements(mut r: StatementReader) -> Result<VerifiedBatch> {
    let mut buf = String::new();
    while r.next_statement(&mut buf)?.is_some() {}
    match r.state {
        State::Done {
            content_sha256,
            signature,
        } => Ok(VerifiedBatch {
            header: r.header,
            content_sha256,
            signature,
            name: r.name,
        }),
        _ => Err(r.lines.err("internal error: reader stopped before the end")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64, statements: u64) -> BatchHeader {
        BatchHeader {
            node: "plant1".to_owned(),
            seq,
            created: "2026-11-21T10:00:00.123456Z".to_owned(),
            dialect: "sqlite".to_owned(),
            kind: BatchKind::Changes,
            changes: Some((101, 103)),
            statements,
        }
    }

    fn write(dir: &Path, seq: u64, stmts: &[String], compress: bool) -> WrittenBatch {
        let mut w =
            BatchWriter::create(dir, header(seq, stmts.len() as u64), compress, 3).expect("create");
        for s in stmts {
            w.push(s).expect("push");
        }
        w.finish().expect("finish")
    }

    fn read_all(path: &Path, limits: &ReadLimits) -> Result<Vec<(u64, String)>> {
        let mut r = open_statements(path, limits)?;
        let mut buf = String::new();
        let mut out = Vec::new();
        while let Some(line) = r.next_statement(&mut buf)? {
            out.push((line, buf.clone()));
        }
        Ok(out)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        v.sort();
        v
    }

    /// Writes `text` plus a correct sha256 trailer (and optional extra tail, unhashed).
    fn craft(dir: &Path, name: &str, text: &str, tail: &str) -> PathBuf {
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        let path = dir.join(name);
        fs::write(&path, format!("{text}{SHA_PREFIX}{sha}\n{tail}")).expect("write");
        path
    }

    const HEAD: &str = "-- gapsync batch v1\n-- node: plant1\n-- seq: 1\n-- created: 2026-11-21T10:00:00.123456Z\n\
                        -- dialect: sqlite\n-- kind: changes\n-- changes: 101-103\n-- statements: 2\n";
    const NAME1: &str = "plant1-00000000000000000001.sql";

    fn sample() -> Vec<String> {
        let mut v = vec![
            r#"INSERT INTO "t" ("id", "s") VALUES (1, 'it''s "quoted" -- not a comment');"#
                .to_owned(),
            "INSERT INTO \"t\" (\"id\", \"s\") VALUES (2, '中文测试 😀🚀 𝄞');".to_owned(),
            format!("INSERT INTO t VALUES (3, '{}');", "x".repeat(3 << 20)),
            "DELETE FROM \"t\" WHERE \"id\" = 4;".to_owned(),
        ];
        v.extend((0..2000).map(|i| format!("UPDATE t SET v = {i} WHERE id = {i};")));
        v
    }

    #[test]
    fn round_trip_plain_and_zstd() {
        let stmts = sample();
        for compress in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let w = write(dir.path(), 42, &stmts, compress);
            assert_eq!(w.name, batch_file_name("plant1", 42, compress));
            assert_eq!(listing(dir.path()), vec![w.name.clone()]);
            assert_eq!(sha256_file(&w.path).expect("sha"), (w.size, w.file_sha256));
            assert_eq!(fs::metadata(&w.path).expect("meta").len(), w.size);

            let v = verify_batch(&w.path, &ReadLimits::default()).expect("verify");
            assert_eq!(v.header, header(42, stmts.len() as u64));
            assert_eq!(v.content_sha256, w.content_sha256);
            assert_eq!(v.signature, None);
            assert_eq!(v.name, w.name);

            let got = read_all(&w.path, &ReadLimits::default()).expect("read");
            let want: Vec<(u64, String)> = stmts
                .iter()
                .cloned()
                .zip(9u64..)
                .map(|(s, l)| (l, s))
                .collect();
            assert!(got == want, "statements differ");

            // Independent check of the plain text: header text, trailer = sha of all before it.
            let raw = fs::read(&w.path).expect("read");
            let text = if compress {
                assert_eq!(&raw[..4], &[0x28, 0xB5, 0x2F, 0xFD], "zstd magic");
                zstd::stream::decode_all(&raw[..]).expect("decode")
            } else {
                raw.clone()
            };
            assert_ne!(raw == text, compress);
            let text = String::from_utf8(text).expect("utf8");
            let (body, trailer) = text.rsplit_once(SHA_PREFIX).expect("trailer");
            assert!(
                body.starts_with(
                    HEAD.replace("seq: 1\n", "seq: 42\n")
                        .split("-- statements")
                        .next()
                        .expect("x")
                )
            );
            assert_eq!(
                trailer,
                format!("{}\n", hex::encode(Sha256::digest(body.as_bytes())))
            );
            assert_eq!(hex::encode(w.content_sha256), trailer.trim_end());
            assert!(!text.contains('\r'));
        }
    }

    #[test]
    fn empty_batch_and_snapshot_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = header(0, 0);
        h.kind = BatchKind::Snapshot;
        h.changes = None;
        let w = BatchWriter::create(dir.path(), h.clone(), false, 3)
            .expect("create")
            .finish()
            .expect("finish");
        let text = fs::read_to_string(&w.path).expect("read");
        assert!(text.contains("\n-- seq: 0\n-- created"));
        assert!(text.contains("\n-- kind: snapshot\n-- changes: -\n-- statements: 0\n-- sha256: "));
        assert_eq!(
            verify_batch(&w.path, &ReadLimits::default())
                .expect("verify")
                .header,
            h
        );
    }

    #[test]
    fn temp_name_only_until_finish_and_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = BatchWriter::create(dir.path(), header(7, 1), false, 3).expect("create");
        w.push("SELECT 1;").expect("push");
        assert_eq!(listing(dir.path()), vec![format!(".tmp-{}", w.name())]);
        let done = w.finish().expect("finish");
        assert_eq!(listing(dir.path()), vec![done.name.clone()]);
        // Same name again is refused, the existing file untouched.
        let err = BatchWriter::create(dir.path(), header(7, 1), false, 3).expect_err("exists");
        assert!(matches!(err, BatchError::AlreadyExists { .. }), "{err}");

        let w = BatchWriter::create(dir.path(), header(8, 1), true, 3).expect("create");
        assert_eq!(listing(dir.path()).len(), 2);
        drop(w);
        assert_eq!(listing(dir.path()), vec![done.name]);
    }

    #[test]
    fn push_refuses_bad_statements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = BatchWriter::create(dir.path(), header(1, 1), false, 3).expect("create");
        for bad in [
            "SELECT 1;\nSELECT 2;",
            "SELECT 1;\r",
            "",
            "-- x;",
            "SELECT 1",
            "SELECT 1;\n",
        ] {
            let err = w.push(bad).expect_err(bad);
            assert!(
                matches!(err, BatchError::BadStatement { line: 9, .. }),
                "{err}"
            );
        }
        let long = format!("SELECT '{}';", "y".repeat(DEFAULT_MAX_STATEMENT_LEN));
        assert!(w.push(&long).is_err());
        w.push("SELECT 1;").expect("good");
        let err = w.push("SELECT 2;").expect_err("one too many");
        assert!(err.to_string().contains("refusing one more"), "{err}");
    }

    #[test]
    fn bad_headers_refused_by_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cases = Vec::new();
        for node in ["", "a/b", "ü", &"n".repeat(33)] {
            cases.push(BatchHeader {
                node: node.to_owned(),
                ..header(1, 0)
            });
        }
        for created in [
            "2026-11-21T10:00:00Z",
            "2026-11-21 10:00:00.123456Z",
            "2026-11-21T10:00:00.123456+00:00",
        ] {
            cases.push(BatchHeader {
                created: created.to_owned(),
                ..header(1, 0)
            });
        }
        cases.push(BatchHeader {
            dialect: "sql lite".to_owned(),
            ..header(1, 0)
        });
        cases.push(BatchHeader {
            changes: Some((5, 4)),
            ..header(1, 0)
        });
        cases.push(BatchHeader {
            changes: Some((-1, 4)),
            ..header(1, 0)
        });
        for h in cases {
            let err = BatchWriter::create(dir.path(), h.clone(), false, 3).expect_err("bad header");
            assert!(matches!(err, BatchError::BadHeader(_)), "{h:?}: {err}");
        }
        assert!(listing(dir.path()).is_empty());
        let now = format_created(chrono::Utc::now());
        assert!(check_created(&now).is_ok(), "{now}");
    }

    #[test]
    fn tampered_byte_is_checksum_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write(dir.path(), 3, &sample()[..2], false);
        let mut raw = fs::read(&w.path).expect("read");
        let pos = raw.windows(4).position(|x| x == b"(1, ").expect("find");
        raw[pos + 1] = b'7';
        fs::write(&w.path, &raw).expect("write");
        let err = verify_batch(&w.path, &ReadLimits::default()).expect_err("tampered");
        assert!(
            matches!(err, BatchError::ChecksumMismatch { line: 11, .. }),
            "{err}"
        );
        // The execution pass hands out the statements but fails at the end.
        let err = read_all(&w.path, &ReadLimits::default()).expect_err("tampered");
        assert!(matches!(err, BatchError::ChecksumMismatch { .. }), "{err}");

        // Same inside a zstd stream (tamper the plain text, recompress).
        let w = write(dir.path(), 4, &sample()[..2], true);
        let mut text =
            zstd::stream::decode_all(&fs::read(&w.path).expect("read")[..]).expect("decode");
        let pos = text.windows(4).position(|x| x == b"(2, ").expect("find");
        text[pos + 1] = b'8';
        fs::write(
            &w.path,
            zstd::stream::encode_all(&text[..], 3).expect("encode"),
        )
        .expect("write");
        let err = verify_batch(&w.path, &ReadLimits::default()).expect_err("tampered");
        assert!(matches!(err, BatchError::ChecksumMismatch { .. }), "{err}");
        // Flipping a compressed byte fails too (decoder or checksum).
        let mut raw = fs::read(&w.path).expect("read");
        let mid = raw.len() / 2;
        raw[mid] ^= 0x55;
        fs::write(&w.path, &raw).expect("write");
        assert!(verify_batch(&w.path, &ReadLimits::default()).is_err());
    }

    #[test]
    fn truncation_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write(dir.path(), 5, &sample()[..4], false);
        let raw = fs::read(&w.path).expect("read");
        let trailer_at = raw.len() - (SHA_PREFIX.len() + 65);
        for (cut, what) in [
            (raw.len() - 1, "inside a line"),
            (trailer_at, "missing sha256 trailer"),
            (trailer_at - 10, "inside a line"),
            (50, "inside a line"),
            (HEAD.len() - 15, "inside a line"),
            (0, "expected"),
        ] {
            fs::write(&w.path, &raw[..cut]).expect("write");
            let err = verify_batch(&w.path, &ReadLimits::default()).expect_err(what);
            assert!(err.to_string().contains(what), "cut {cut}: {err}");
        }
        let w = write(dir.path(), 6, &sample()[..4], true);
        let raw = fs::read(&w.path).expect("read");
        for cut in [raw.len() - 1, raw.len() / 2, 10] {
            fs::write(&w.path, &raw[..cut]).expect("write");
            assert!(
                verify_batch(&w.path, &ReadLimits::default()).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn wrong_statement_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = BatchWriter::create(dir.path(), header(9, 3), true, 3).expect("create");
        w.push("SELECT 1;").expect("push");
        w.push("SELECT 2;").expect("push");
        let err = w.finish().expect_err("short");
        assert!(
            matches!(
                err,
                BatchError::CountMismatch {
                    declared: 3,
                    actual: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(listing(dir.path()).is_empty(), "temp file left behind");

        // A file with a correct checksum but a wrong count (buggy writer).
        let p = craft(dir.path(), NAME1, &format!("{HEAD}SELECT 1;\n"), "");
        let err = verify_batch(&p, &ReadLimits::default()).expect_err("count");
        assert!(
            matches!(
                err,
                BatchError::CountMismatch {
                    declared: 2,
                    actual: 1,
                    ..
                }
            ),
            "{err}"
        );
        let p = craft(
            dir.path(),
            NAME1,
            &format!("{HEAD}SELECT 1;\nSELECT 2;\nSELECT 3;\n"),
            "",
        );
        let err = verify_batch(&p, &ReadLimits::default()).expect_err("count");
        assert!(
            err.to_string()
                .contains("line 11: more statements than the 2"),
            "{err}"
        );
        // Limit on the declared count.
        let limits = ReadLimits {
            max_statements: 1,
            ..ReadLimits::default()
        };
        let p = craft(
            dir.path(),
            NAME1,
            &format!("{HEAD}SELECT 1;\nSELECT 2;\n"),
            "",
        );
        let err = verify_batch(&p, &limits).expect_err("limit");
        assert!(
            err.to_string()
                .contains("line 8: header 'statements': 2 is over the limit of 1"),
            "{err}"
        );
        assert!(verify_batch(&p, &ReadLimits::default()).is_ok());
    }

    #[test]
    fn renamed_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write(dir.path(), 5, &sample()[..1], false);
        let renamed = dir.path().join(batch_file_name("plant1", 6, false));
        fs::rename(&w.path, &renamed).expect("rename");
        let err = verify_batch(&renamed, &ReadLimits::default()).expect_err("renamed");
        assert!(
            err.to_string()
                .contains("file name says seq 6 but header says seq 5"),
            "{err}"
        );
        let other = dir.path().join(batch_file_name("plant2", 5, false));
        fs::rename(&renamed, &other).expect("rename");
        let err = verify_batch(&other, &ReadLimits::default()).expect_err("renamed");
        assert!(
            err.to_string()
                .contains("file name says node plant2 but header says node plant1"),
            "{err}"
        );
        // Compressed content under a plain name (and vice versa) fails too.
        let w = write(dir.path(), 7, &sample()[..1], true);
        let plain = dir.path().join(batch_file_name("plant1", 7, false));
        fs::rename(&w.path, &plain).expect("rename");
        assert!(verify_batch(&plain, &ReadLimits::default()).is_err());
        // Temp names are not batch names.
        assert!(
            verify_batch(
                &dir.path().join(format!(".tmp-{NAME1}")),
                &ReadLimits::default()
            )
            .is_err()
        );
    }

    #[test]
    fn file_names() {
        let n = batch_file_name("plant-1", 42, false);
        assert_eq!(n, "plant-1-00000000000000000042.sql");
        assert_eq!(
            parse_batch_file_name(&n).expect("ok"),
            ("plant-1".to_owned(), 42, false)
        );
        let n = batch_file_name("P_2", u64::MAX, true);
        assert_eq!(n, "P_2-18446744073709551615.sql.zst");
        assert_eq!(
            parse_batch_file_name(&n).expect("ok"),
            ("P_2".to_owned(), u64::MAX, true)
        );
        let max_node = "n".repeat(32);
        assert!(parse_batch_file_name(&batch_file_name(&max_node, 0, false)).is_ok());
        for (bad, why) in [
            ("../x-00000000000000000001.sql", "path separator"),
            ("..x-00000000000000000001.sql", "'..'"),
            ("a/b-00000000000000000001.sql", "path separator"),
            ("a\\b-00000000000000000001.sql", "path separator"),
            ("ü-00000000000000000001.sql", "not ASCII"),
            ("x-0000000000000000001.sql", "20 decimal digits"),
            ("x-000000000000000000001.sql", "20 decimal digits"),
            ("x-0000000000000000000a.sql", "20 decimal digits"),
            ("x-99999999999999999999.sql", "64 bits"),
            ("x-00000000000000000001.sql.gz", "must end in"),
            ("x-00000000000000000001.SQL", "must end in"),
            ("x00000000000000000001.sql", "expected <node>"),
            ("-00000000000000000001.sql", "node id"),
            ("a b-00000000000000000001.sql", "node id"),
            (".tmp-x-00000000000000000001.sql", "node id"),
            (
                &format!("{}-00000000000000000001.sql", "n".repeat(33)),
                "node id",
            ),
            ("", "must end in"),
        ] {
            let err = parse_batch_file_name(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn header_errors_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = "SELECT 1;\nSELECT 2;\n";
        let cases = [
            (
                HEAD.replace("-- created", "-- node: plant1\n-- created"),
                4,
                "duplicate header key 'node'",
            ),
            (
                HEAD.replace("-- dialect: sqlite\n", ""),
                5,
                "missing header key 'dialect' (found 'kind')",
            ),
            (
                HEAD.replace("-- kind", "-- flavour: x\n-- kind"),
                6,
                "unknown header key \"flavour\"",
            ),
            (HEAD.replace("-- seq: 1", "-- seq: 01"), 3, "header 'seq'"),
            (HEAD.replace("-- seq: 1", "-- seq: +1"), 3, "header 'seq'"),
            (
                HEAD.replace("-- kind: changes", "-- kind: delta"),
                6,
                "header 'kind'",
            ),
            (HEAD.replace("101-103", "103-101"), 7, "header 'changes'"),
            (
                HEAD.replace("-- node: plant1", "-- node: plant1\r"),
                2,
                "header 'node'",
            ),
            (
                HEAD.replace("-- node: ", "--node: "),
                2,
                "expected header line",
            ),
            (
                HEAD.replace("v1", "v2"),
                1,
                "expected \"-- gapsync batch v1\"",
            ),
            (HEAD.replace(".123456Z", "Z"), 4, "header 'created'"),
            (
                HEAD.replace("-- statements: 2\n", ""),
                8,
                "expected header line '-- statements",
            ),
        ];
        for (head, line, why) in cases {
            let p = craft(dir.path(), NAME1, &format!("{head}{body}"), "");
            match verify_batch(&p, &ReadLimits::default()) {
                Err(e @ BatchError::Malformed { line: l, .. }) => {
                    assert_eq!(l, line, "{e}");
                    assert!(e.to_string().contains(why), "{e}");
                    assert!(e.to_string().contains(NAME1), "{e}");
                }
                other => panic!("{why}: {other:?}"),
            }
        }
        // Bad statement lines in the body.
        for (stmt, why) in [
            ("SELECT 1", "';'"),
            ("", "empty"),
            ("SELECT 1;\r", "line break"),
            ("-- x;", "trailer"),
        ] {
            let p = craft(dir.path(), NAME1, &format!("{HEAD}SELECT 0;\n{stmt}\n"), "");
            let err = verify_batch(&p, &ReadLimits::default()).expect_err(why);
            assert!(
                err.to_string().contains("line 10") && err.to_string().contains(why),
                "{err}"
            );
        }
        // Invalid UTF-8.
        let p = dir.path().join(NAME1);
        let mut raw = format!("{HEAD}SELECT 'x';\n").into_bytes();
        let n = raw.len();
        raw[n - 4] = 0xFF;
        fs::write(&p, raw).expect("write");
        let err = verify_batch(&p, &ReadLimits::default()).expect_err("utf8");
        assert!(err.to_string().contains("line 9: not valid UTF-8"), "{err}");
    }

    #[test]
    fn signature_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("{HEAD}SELECT 1;\nSELECT 2;\n");
        let p = craft(dir.path(), NAME1, &text, "-- signature: k1 abcd\n");
        let v = verify_batch(&p, &ReadLimits::default()).expect("verify");
        assert_eq!(v.signature.as_deref(), Some("k1 abcd"));
        let mut r = open_statements(&p, &ReadLimits::default()).expect("open");
        let mut buf = String::new();
        while r.next_statement(&mut buf).expect("next").is_some() {}
        assert_eq!(r.signature(), Some("k1 abcd"));
        assert_eq!(r.content_sha256(), Some(v.content_sha256));
        assert_eq!(r.next_statement(&mut buf).expect("again"), None);

        for (tail, why) in [
            ("-- signature: k1 abcd\nSELECT 3;\n", "nothing may follow"),
            ("-- signature: k1 abcd\n\n", "nothing may follow"),
            ("-- signature: k1 abcd", "inside a line"),
            ("-- signature: \n", "empty"),
            ("SELECT 3;\n", "only an optional"),
            ("\n", "only an optional"),
        ] {
            let p = craft(dir.path(), NAME1, &text, tail);
            let err = verify_batch(&p, &ReadLimits::default()).expect_err(tail);
            assert!(err.to_string().contains(why), "{tail:?}: {err}");
        }
    }

    #[test]
    fn long_lines_against_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stmt = format!("SELECT '{}';", "z".repeat(10_000));
        let w = write(dir.path(), 2, std::slice::from_ref(&stmt), false);
        let exact = ReadLimits {
            max_statement_len: stmt.len(),
            ..ReadLimits::default()
        };
        assert!(verify_batch(&w.path, &exact).is_ok());
        let small = ReadLimits {
            max_statement_len: stmt.len() - 1,
            ..ReadLimits::default()
        };
        let err = verify_batch(&w.path, &small).expect_err("too long");
        assert!(
            err.to_string().contains("line 9: line longer than"),
            "{err}"
        );
        let tiny = ReadLimits {
            max_statement_len: 20,
            ..ReadLimits::default()
        };
        let p = craft(
            dir.path(),
            NAME1,
            &format!("{HEAD}SELECT 1;\nSELECT '1234567890123';\n"),
            "",
        );
        let err = verify_batch(&p, &tiny).expect_err("too long");
        assert!(
            matches!(err, BatchError::BadStatement { line: 10, .. }),
            "{err}"
        );
        // The content cap also applies to plain files.
        let capped = ReadLimits {
            max_decompressed: 5000,
            ..ReadLimits::default()
        };
        let err = verify_batch(&w.path, &capped).expect_err("cap");
        assert!(
            matches!(err, BatchError::TooLarge { limit: 5000, .. }),
            "{err}"
        );
        let size = fs::metadata(&w.path).expect("meta").len();
        assert!(
            verify_batch(
                &w.path,
                &ReadLimits {
                    max_decompressed: size,
                    ..ReadLimits::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn zstd_bomb_from_encoder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("plant1-00000000000000000001.sql.zst");
        let mut enc =
            zstd::stream::write::Encoder::new(File::create(&p).expect("create"), 19).expect("enc");
        enc.write_all(HEAD.as_bytes()).expect("write");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..32 {
            enc.write_all(&zeros).expect("write");
        }
        enc.finish().expect("finish");
        assert!(fs::metadata(&p).expect("meta").len() < 64 * 1024);
        let limits = ReadLimits {
            max_decompressed: 1 << 20,
            max_statement_len: 16 << 20,
            ..ReadLimits::default()
        };
        let err = verify_batch(&p, &limits).expect_err("bomb");
        assert!(
            matches!(
                err,
                BatchError::TooLarge {
                    limit: 1_048_576,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A hand-made zstd frame: a raw block with a valid header, then 2^19 RLE blocks of
    /// 128 KiB each: a 2 MiB file inflating to 64 GiB. Reading must stop at the cap (an
    /// implementation that inflates first would run out of memory or time).
    #[test]
    fn zstd_bomb_64gib_stops_at_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = Vec::with_capacity(3 << 20);
        f.extend_from_slice(&0xFD2F_B528u32.to_le_bytes()); // magic
        f.push(0x00); // frame header descriptor: no content size, no checksum, no dict
        f.push(7 << 3); // window descriptor: 2^(10+7) = 128 KiB
        let block = |f: &mut Vec<u8>, last: bool, kind: u32, size: u32| {
            let v = (size << 3) | (kind << 1) | u32::from(last);
            f.extend_from_slice(&v.to_le_bytes()[..3]);
        };
        block(&mut f, false, 0, HEAD.len() as u32);
        f.extend_from_slice(HEAD.as_bytes());
        let n = 1 << 19;
        for i in 0..n {
            block(&mut f, i == n - 1, 1, 128 * 1024);
            f.push(b'A');
        }
        let p = dir.path().join("plant1-00000000000000000001.sql.zst");
        fs::write(&p, &f).expect("write");
        // Sanity: the frame is valid and the start decodes to our header.
        let mut d = zstd::stream::read::Decoder::new(File::open(&p).expect("open")).expect("dec");
        let mut start = vec![0u8; HEAD.len() + 3];
        d.read_exact(&mut start).expect("read");
        assert_eq!(&start[HEAD.len()..], b"AAA");

        let limits = ReadLimits {
            max_decompressed: 4 << 20,
            max_statement_len: 1 << 30,
            ..ReadLimits::default()
        };
        let t = std::time::Instant::now();
        let err = verify_batch(&p, &limits).expect_err("bomb");
        assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
        // With default limits the 16 MiB line limit trips first, also without inflating.
        let err = verify_batch(&p, &ReadLimits::default()).expect_err("bomb");
        assert!(
            err.to_string().contains("line 9: line longer than"),
            "{err}"
        );
    }
}
