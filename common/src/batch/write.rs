//! Writing a batch file: streamed, hashed, signed, compressed, written to a temporary
//! name, fsynced and renamed ([`BatchWriter`]).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;

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
            // Best effort while failing: a temp name is never read as a batch, and the
            // sender's outbox recovery removes `.tmp-` files at the next start.
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
            return Err(BatchError::BadHeader(Rule::SignerNode {
                key: s.node().to_owned(),
                batch: self.header.node.clone(),
            }));
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
        let bad = |reason: Rule| BatchError::BadStatement {
            path: self.final_path.clone(),
            line,
            reason,
        };
        check_statement(statement, DEFAULT_MAX_STATEMENT_LEN).map_err(bad)?;
        if self.pushed == self.header.statements {
            return Err(bad(Rule::BeyondDeclared(self.header.statements)));
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
