//! Reading a batch file: the streaming statement reader ([`StatementReader`]) with its
//! limits, and the full verification pass ([`verify_batch`]).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;

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
        parse: impl FnOnce(&str) -> Result<T, Rule>,
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
                true => Err(Rule::TooMany(n, limits.max_statements)),
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
