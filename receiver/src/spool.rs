//! One sender connection ([`Conn`], the link's `FrameHandler`): HELLO authentication,
//! DATA into the connection's own part file, END authentication and the no-replace link
//! into the spool, RESULT answers.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::apply::{ApplyError, Target};
use crate::shared::Outcome;
use crate::*;
use gapsync_common::audit::AuditEvent;
use gapsync_common::batch::{self};
use gapsync_common::fsx;
use gapsync_protocol::{EndInfo, FrameHandler, Hello, ServerOptions, serve_connection};
use tracing::{debug, error, info, warn};

pub(crate) fn serve(shared: &Arc<Shared>, stream: TcpStream, peer: String, id: u64) {
    let opts = ServerOptions {
        max_frame: shared.cfg.link.max_frame,
        idle_timeout: shared.cfg.link.idle_timeout,
        frame_timeout: shared.cfg.link.frame_timeout,
        hello_timeout: shared.cfg.link.hello_timeout,
    };
    let mut conn = Conn {
        shared: Arc::clone(shared),
        id,
        peer: peer.clone(),
        node: String::new(),
        keyed: false,
        part: None,
        target: None,
    };
    match serve_connection(stream, &mut conn, opts) {
        Ok(end) => debug!(%peer, node = %conn.node, ?end, "connection ended"),
        // A stranger's faults are not worth a line each (a flood would drown the
        // alarms); an authenticated sender's are.
        Err(e) if conn.node.is_empty() => debug!(%peer, error = %e, "connection closed"),
        Err(e) => warn!(%peer, node = %conn.node, error = %e, "connection closed"),
    }
}

/// A batch being received on one connection.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Bytes stored so far.
    pub(crate) len: u64,
}

/// One sender connection. Until [`FrameHandler::hello`] accepted the peer, `node` is
/// empty and nothing else of the handler runs (the protocol's server closes a
/// connection whose first frame is not HELLO).
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    /// The connection id (unique in this process): part files carry it.
    pub(crate) id: u64,
    pub(crate) peer: String,
    pub(crate) node: String,
    /// Whether the node has `[[trust]]` keys (then every END must be signed).
    pub(crate) keyed: bool,
    /// The batch being received on this connection.
    pub(crate) part: Option<Part>,
    /// A target connection for ledger look-ups (opened lazily).
    pub(crate) target: Option<Target>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.drop_part();
    }
}

impl Conn {
    pub(crate) fn part_path(&self, seq: u64) -> PathBuf {
        self.shared
            .spool()
            .join(format!(".part-{}-{seq:020}-{}", self.node, self.id))
    }

    /// The pool of unverified bytes this connection draws from (keyed nodes and
    /// nodes admitted by `insecure` have separate ones).
    fn pool(&self) -> &AtomicU64 {
        if self.keyed {
            &self.shared.unverified
        } else {
            &self.shared.unverified_unkeyed
        }
    }

    /// Reserves `n` unverified bytes before they are written; false (nothing reserved)
    /// if the pool would go over its cap.
    pub(crate) fn unverified_reserve(&self, n: u64) -> bool {
        let cap = self.shared.max_unverified();
        self.pool()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                let after = v.saturating_add(n);
                (after <= cap).then_some(after)
            })
            .is_ok()
    }

    pub(crate) fn unverified_sub(&self, n: u64) {
        // Saturating: the counter never wraps below zero on a bookkeeping slip.
        let _ = self
            .pool()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Takes the part out of the connection (its bytes no longer count as
    /// unverified); the caller owns its file now.
    pub(crate) fn take_part(&mut self) -> Option<Part> {
        let p = self.part.take()?;
        self.unverified_sub(p.len);
        Some(p)
    }

    /// Removes the part file, if any.
    pub(crate) fn drop_part(&mut self) {
        if let Some(p) = self.take_part() {
            drop(p.file);
            if let Err(e) = fs::remove_file(&p.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                // Left for the next start, which removes every part file.
                warn!(file = %p.path.display(), error = %e, "cannot remove a part file");
            }
        }
    }

    /// Ledger look-up: Some(true) applied, Some(false) quarantined, None unknown.
    pub(crate) fn recorded(&mut self, seq: u64) -> Option<bool> {
        if self.target.is_none() {
            self.target = self.shared.open_target().ok();
        }
        let t = self.target.as_mut()?;
        let r = (|| -> std::result::Result<Option<bool>, ApplyError> {
            if t.applied_sha(&self.node, seq)?.is_some() {
                return Ok(Some(true));
            }
            Ok(t.quarantine_reason(&self.node, seq)?.map(|_| false))
        })();
        match r {
            Ok(v) => v,
            Err(_) => {
                self.target = None;
                None
            }
        }
    }

    /// The seq window (see [`SEQ_WINDOW`]): refuses a seq far ahead of the ledger.
    pub(crate) fn seq_in_window(&mut self, seq: u64) -> bool {
        // Within the window of the last known next seq (1 when none is known yet): no
        // ledger read on the connection's thread (a target that hangs must not hold
        // the uploads). Beyond it, the cached value may be old: read once, then decide.
        let next = self
            .shared
            .next_seen
            .lock()
            .ok()
            .and_then(|m| m.get(&self.node).copied())
            .unwrap_or(1);
        if seq <= next.saturating_add(SEQ_WINDOW) {
            return true;
        }
        // Not read yet, or the cached value may be old: read the ledger (a target that
        // cannot be read leaves the window open: only an authenticated node gets here).
        if self.target.is_none() {
            self.target = self.shared.open_target().ok();
        }
        match self.target.as_mut().map(|t| t.next_expected(&self.node)) {
            Some(Ok(next)) => self.shared.note_next(&self.node, next),
            Some(Err(_)) => self.target = None,
            None => {}
        }
        if self.shared.in_window(&self.node, seq) {
            return true;
        }
        warn!(node = %self.node, seq, window = SEQ_WINDOW, "upload refused: seq too far ahead of the ledger's next expected seq");
        false
    }

    pub(crate) fn store_chunk(
        &mut self,
        seq: u64,
        offset: u64,
        chunk: &[u8],
    ) -> std::io::Result<bool> {
        let max = self.shared.cfg.limits.max_batch_bytes;
        if offset.saturating_add(chunk.len() as u64) > max {
            warn!(
                node = %self.node,
                seq,
                offset,
                max_batch_bytes = max,
                "batch refused: larger than [limits] max_batch_bytes; partial file dropped"
            );
            self.drop_part();
            return Ok(false);
        }
        if offset == 0 {
            if !self.seq_in_window(seq) {
                self.drop_part();
                return Ok(false);
            }
            match self.part.as_mut() {
                // The sender starts the batch again: this connection's own part.
                Some(p) if p.seq == seq => {
                    p.file.set_len(0)?;
                    let was = p.len;
                    p.len = 0;
                    self.unverified_sub(was);
                }
                _ => {
                    self.drop_part();
                    let path = self.part_path(seq);
                    // Exclusive, 0600, never through a symlink.
                    let file = fsx::create_private(&path)?;
                    self.part = Some(Part {
                        seq,
                        path,
                        file,
                        len: 0,
                    });
                }
            }
        }
        let Some(p) = self.part.as_mut() else {
            return Ok(false);
        };
        if p.seq != seq || offset > p.len {
            return Ok(false);
        }
        if offset < p.len {
            p.file.set_len(offset)?;
            let cut = p.len - offset;
            p.len = offset;
            self.unverified_sub(cut);
        }
        let n = chunk.len() as u64;
        // Reserved before the write (backed out if it fails), so concurrent chunks
        // cannot overshoot the cap together.
        if !self.unverified_reserve(n) {
            warn!(node = %self.node, seq, offset, cap = self.shared.max_unverified(), "chunk refused: too many unverified bytes held in part files; answering no");
            return Ok(false);
        }
        let Some(p) = self.part.as_mut() else {
            self.unverified_sub(n);
            return Ok(false);
        };
        let written = p
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| p.file.write_all(chunk));
        let Err(e) = written else {
            p.len += n;
            return Ok(true);
        };
        self.unverified_sub(n);
        let Some(p) = self.part.as_mut() else {
            return Err(e);
        };
        // Disk full (or another write error) part-way through the chunk: cut the file
        // back to the bytes already stored, so nothing of the half-written chunk stays
        // and its resend at the same offset lands on a clean end (and the space the
        // partial chunk took is free again). If even that fails, drop the part: the
        // sender starts the batch again from offset 0.
        if let Err(cut) = p.file.set_len(p.len) {
            warn!(node = %self.node, seq, offset, error = %cut, "cannot cut the partial file back; dropping it");
            self.drop_part();
        }
        Err(e)
    }

    /// The END signature check: a node with keys must sign its END with one of them.
    pub(crate) fn authenticate_end(
        &self,
        seq: u64,
        info: &EndInfo,
    ) -> std::result::Result<(), EndRefused> {
        if !self.keyed {
            return Ok(()); // insecure, node without keys: accepted unsigned at HELLO
        }
        let Some(auth) = &info.auth else {
            return Err(EndRefused::Upload(format!(
                "unsigned END for node {}, which has [[trust]] keys",
                self.node
            )));
        };
        let message = info
            .message(&self.node, seq)
            .map_err(|e| EndRefused::Upload(e.to_string()))?;
        self.shared
            .trust
            .verify_link(&self.node, &auth.key_id, &message, &auth.signature)
            .map(|_| ())
            .map_err(|e| EndRefused::Upload(format!("END signature: {e}")))
    }

    pub(crate) fn finish(
        &mut self,
        seq: u64,
        info: &EndInfo,
    ) -> std::result::Result<bool, EndRefused> {
        // Authenticity first: nothing of an END the node key did not sign is looked at
        // further (no ledger query, no hashing, no name taken).
        if let Err(reason) = self.authenticate_end(seq, info) {
            self.drop_part();
            warn!(peer = %self.peer, node = %self.node, seq, file = %info.name, %reason, "END refused: upload dropped, nothing spooled, not counted as a failure");
            return Err(reason);
        }
        let max = self.shared.cfg.limits.max_batch_bytes;
        if info.size > max {
            self.drop_part();
            return Err(EndRefused::Upload(format!(
                "END declares {} bytes, over [limits] max_batch_bytes = {max}",
                info.size
            )));
        }
        if !self.seq_in_window(seq) {
            self.drop_part();
            return Err(EndRefused::Upload(format!(
                "seq {seq} is too far ahead of the ledger"
            )));
        }
        let named = batch::parse_batch_file_name(&info.name);
        let (node, fseq, _) = match named {
            Ok(n) => n,
            Err(e) => {
                self.drop_part();
                return Err(EndRefused::Upload(e.to_string()));
            }
        };
        if node != self.node || fseq != seq {
            let reason = format!(
                "wrong node or seq: file name {} does not match the connection's node {} and seq {seq}",
                info.name, self.node
            );
            if self.keyed {
                // Signed by the node key: the sender's own mistake, kept for the record.
                self.reject_part(seq, info, &reason);
            } else {
                // Unauthenticated (`insecure`): dropped, never kept under anyone's name.
                self.drop_part();
                warn!(peer = %self.peer, node = %self.node, seq, file = %info.name, %reason, "END refused: upload dropped");
            }
            return Err(EndRefused::Upload(reason));
        }
        if let Some(other) = other_spooled_name(&self.shared.spool(), &info.name) {
            self.drop_part();
            return Err(EndRefused::Upload(format!(
                "seq {seq} is already spooled as {other}: one name per seq"
            )));
        }
        match self.recorded(seq) {
            Some(true) => return self.check_replay(seq, info),
            Some(false) => {
                // Quarantined: nothing to spool again.
                self.drop_part();
                return Ok(true);
            }
            None => {}
        }
        let Some(part) = self.take_part() else {
            return Err(EndRefused::Upload("END without data".into()));
        };
        let Part {
            seq: pseq,
            path,
            file,
            len,
        } = part;
        // From here on the part file is removed on every way out but one (linked).
        let drop_part = || {
            // Gone already is as good.
            let _ = fs::remove_file(&path);
        };
        let dropped = |what: &str, source: std::io::Error| {
            drop_part();
            EndRefused::Spool {
                what: what.to_owned(),
                source,
            }
        };
        if pseq != seq || len != info.size {
            drop_part();
            return Err(EndRefused::Upload(format!(
                "size: received {len} bytes, END says {}",
                info.size
            )));
        }
        // Any failure from here on (a full disk at fsync, a failed link) answers "no"
        // and drops the part, freeing its space: the sender resends the whole batch.
        let synced = file.sync_all();
        drop(file);
        synced.map_err(|e| dropped("cannot make the received file durable", e))?;
        let sha =
            sha256_nofollow(&path).map_err(|e| dropped("cannot read the received file back", e))?;
        if sha != info.sha256 {
            drop_part();
            return Err(EndRefused::Upload(
                "sha256: the received file does not match the signed END".into(),
            ));
        }
        let spool = self.shared.spool();
        let dest = spool.join(&info.name);
        // Pending before the file is visible to the applier: set after, it could
        // overwrite the outcome of an apply that finished in between.
        self.shared.set(&self.node, seq, Outcome::Pending);
        // A hard link never replaces an existing name (a file spooled by another
        // connection, or anything else placed there): what the applier may be
        // verifying right now stays as it is.
        match fs::hard_link(&path, &dest) {
            Ok(()) => {
                // The batch name holds the file now; the part name is surplus (and
                // removed at the next start if this fails).
                let _ = fs::remove_file(&path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let same = sha256_nofollow(&dest).is_ok_and(|d| d == sha);
                // The part is surplus either way.
                let _ = fs::remove_file(&path);
                if same {
                    debug!(node = %self.node, seq, file = %info.name, "already spooled with the same content");
                    return Ok(true);
                }
                if !fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file()) {
                    error!(alarm = true, node = %self.node, seq, file = %info.name, "the batch name in the spool is taken by something that is not a regular file (a symlink planted?): remove it; the batch is refused until then");
                    self.shared.forget(&self.node, seq);
                    return Err(EndRefused::Upload(format!(
                        "spool/{} is not a regular file: remove it",
                        info.name
                    )));
                }
                error!(alarm = true, node = %self.node, seq, file = %info.name, "a different signed file for a seq that is already spooled: refused, the spooled one stays");
                // The spooled one's outcome is the applier's to set.
                return Err(EndRefused::Upload(format!(
                    "{} is already spooled with other content",
                    info.name
                )));
            }
            Err(e) => {
                // Not spooled: RESULT must not wait for an apply that will not come.
                self.shared.forget(&self.node, seq);
                return Err(dropped("cannot link into the spool", e));
            }
        }
        // The file is visible to the applier now: never removed here. If the directory
        // cannot be made durable the answer is "no" and the resend finds it applied or
        // spooled with the same content.
        fsx::sync_dir(&spool).map_err(|source| EndRefused::Spool {
            what: "cannot make the spool directory durable".into(),
            source,
        })?;
        let sha_hex = hex::encode(sha);
        self.shared.audit(AuditEvent::new(
            "received", &self.node, seq, &info.name, info.size, &sha_hex,
        ));
        self.shared.wake_applier();
        Ok(true)
    }

    /// Keep a refused transfer in `quarantine/rejected/` with its reason, audit and log
    /// it (nothing of it is spooled or executed).
    pub(crate) fn reject_part(&mut self, seq: u64, info: &EndInfo, reason: &str) {
        let dir = self.shared.quarantine_dir().join("rejected");
        let safe = batch::parse_batch_file_name(&info.name).is_ok();
        if let Some(part) = self.take_part() {
            if safe && fsx::private_dir(&dir).is_ok() {
                let dest = dir.join(&info.name);
                if fsx::move_file(&part.path, &dest).is_ok()
                    && let Err(e) = fsx::write_private_synced(
                        &dir.join(format!("{}.reason", info.name)),
                        format!("{reason}\n").as_bytes(),
                    )
                {
                    warn!(file = %info.name, error = %e, "cannot write the .reason of a rejected upload (the audit record has it)");
                }
            }
            // Moved, or dropped here: never left under the part name.
            let _ = fs::remove_file(&part.path);
        }
        error!(alarm = true, node = %self.node, seq, file = %info.name, reason, "batch rejected at END: nothing spooled");
        self.shared.audit(
            AuditEvent::new("rejected", &self.node, seq, &info.name, info.size, "")
                .verdict("rejected", reason),
        );
    }

    /// A batch whose seq is already applied arrived again. The same content is a resend
    /// (answered "applied" from the ledger); different content is a replay: rejected,
    /// kept in `quarantine/replayed/` with a `.reason`, audited, and answered "failed".
    pub(crate) fn check_replay(
        &mut self,
        seq: u64,
        info: &EndInfo,
    ) -> std::result::Result<bool, EndRefused> {
        let complete = self
            .part
            .as_ref()
            .is_some_and(|p| p.seq == seq && p.len == info.size);
        if !complete {
            self.drop_part();
            return Ok(true);
        }
        let sh = Arc::clone(&self.shared);
        let dir = sh.quarantine_dir().join("replayed");
        let spool_err = |what: &str| {
            let what = what.to_owned();
            move |source| EndRefused::Spool { what, source }
        };
        fsx::private_dir(&dir).map_err(EndRefused::Dir)?;
        let dest = dir.join(&info.name);
        let Some(part) = self.take_part() else {
            return Ok(true);
        };
        fsx::move_file(&part.path, &dest).map_err(|e| {
            // Removed on the way out; it never gets a batch name.
            let _ = fs::remove_file(&part.path);
            spool_err("cannot move the resent copy out of the spool")(e)
        })?;
        let (size, file_sha) = batch::sha256_file(&dest)
            .map_err(|e| EndRefused::Upload(format!("the resent copy: {e}")))?;
        if file_sha != info.sha256 {
            // A copy that is not what END declared is worth nothing; left behind it
            // would only sit in `replayed/`, never be applied.
            let _ = fs::remove_file(&dest);
            return Err(EndRefused::Upload(
                "sha256 of the received file does not match END".into(),
            ));
        }
        // The ledger's sha256 of the applied copy. If it cannot be read now (the target
        // went down since `recorded`), there is no verdict: answer "no" so that the
        // sender sends and asks again. Never take an unread ledger row for a replay:
        // that would answer "failed" for an applied batch.
        let prev = match self.target.as_mut().map(|t| t.applied_sha(&self.node, seq)) {
            Some(Ok(prev)) => prev,
            lost => {
                // No verdict without the ledger: the copy is dropped (the sender sends
                // again); the directory goes only if empty.
                let _ = fs::remove_file(&dest);
                let _ = fs::remove_dir(&dir);
                self.target = None;
                let error = match lost {
                    Some(Err(e)) => e.to_string(),
                    _ => "no target connection".to_owned(),
                };
                warn!(node = %self.node, seq, file = %info.name, %error, "resent copy of an applied batch: cannot read its ledger row; the sender asks again");
                return Err(EndRefused::Ledger(format!(
                    "cannot read the ledger row of seq {seq}: {error}"
                )));
            }
        };
        let (content, reason) = match batch::verify_batch(&dest, &sh.limits) {
            Ok(v) => {
                let content = hex::encode(v.content_sha256);
                if prev.as_deref() == Some(content.as_str()) {
                    // The same content as applied: nothing to keep.
                    let _ = fs::remove_file(&dest);
                    // A plain resend: leave no empty `replayed/` behind (removed only
                    // when empty).
                    let _ = fs::remove_dir(&dir);
                    return Ok(true);
                }
                let reason = format!(
                    "replayed: seq {seq} of node {} was already applied with different content (ledger sha256 {}, this file {content})",
                    self.node,
                    prev.as_deref().unwrap_or("unknown")
                );
                (content, reason)
            }
            Err(e) => (
                String::new(),
                format!(
                    "replayed: seq {seq} of node {} was already applied; this copy fails verification: {e}",
                    self.node
                ),
            ),
        };
        if let Err(e) = fsx::write_private_synced(
            &dir.join(format!("{}.reason", info.name)),
            format!("{reason}\n").as_bytes(),
        ) {
            warn!(file = %info.name, error = %e, "cannot write the .reason of a replayed copy (the audit record has it)");
        }
        error!(alarm = true, node = %self.node, seq, file = %info.name, %reason, "batch rejected: nothing executed");
        sh.audit(
            AuditEvent::new("rejected", &self.node, seq, &info.name, size, &content)
                .verdict("rejected", &reason),
        );
        sh.set(&self.node, seq, Outcome::Failed);
        Ok(true)
    }
}

/// Why an END is answered "no": nothing is spooled, the sender resends the batch, and
/// it never counts as a failed apply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EndRefused {
    /// The upload is at fault: unsigned or forged, too large, out of the seq window,
    /// misnamed, not what its END declared, or in conflict with what is spooled.
    #[error("{0}")]
    Upload(String),
    /// This side could not keep it (a full disk, a failed fsync or link): an operator's
    /// matter, not the sender's.
    #[error("{what}: {source}")]
    Spool {
        what: String,
        source: std::io::Error,
    },
    /// A quarantine directory could not be made (as `Spool`).
    #[error(transparent)]
    Dir(fsx::DirError),
    /// No verdict on a resend of an applied seq: the target's ledger cannot be read.
    #[error("{0}")]
    Ledger(String),
}

/// The other name (`.sql` / `.sql.zst`) of the same batch, if it is in the spool.
fn other_spooled_name(spool: &Path, name: &str) -> Option<String> {
    let other = match name.strip_suffix(".zst") {
        Some(plain) => plain.to_owned(),
        None => format!("{name}.zst"),
    };
    fs::symlink_metadata(spool.join(&other))
        .is_ok()
        .then_some(other)
}

/// SHA-256 of a file, opened without following a symlink.
pub(crate) fn sha256_nofollow(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = fsx::open_nofollow(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl FrameHandler for Conn {
    fn hello(&mut self, node: &str, hello: &Hello, message: &[u8]) -> bool {
        match self.shared.authenticate_hello(node, hello, message) {
            Ok(key) => {
                let keyed = self.shared.trust.has_node(node);
                if !self.shared.sessions.authenticated(self.id, node, keyed) {
                    return false;
                }
                self.node = node.to_owned();
                self.keyed = self.shared.trust.has_node(node);
                let key = if key.is_empty() {
                    "none (insecure)"
                } else {
                    &key
                };
                info!(peer = %self.peer, %node, key, peer_says = %hello.text, "sender authenticated");
                true
            }
            Err(reason) => {
                // One line per address and minute, with the count of the others.
                // A trusted node's name: per node and kind of reason (the real sender
                // misconfigured must be seen); any other name: per address.
                let ip = self
                    .peer
                    .rsplit_once(':')
                    .map_or(self.peer.as_str(), |(ip, _)| ip);
                let key = if self.shared.trust.has_node(node) {
                    format!("{ip} {node} {}", reason.kind())
                } else {
                    ip.to_owned()
                };
                if let Some(suppressed) = self.shared.refusal_to_log(&key) {
                    warn!(peer = %self.peer, %node, %reason, suppressed, "HELLO refused");
                } else {
                    debug!(peer = %self.peer, %node, %reason, "HELLO refused");
                }
                false
            }
        }
    }

    fn heartbeat(&mut self) -> bool {
        true
    }

    fn data(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> bool {
        match self.store_chunk(seq, offset, chunk) {
            Ok(ok) => ok,
            Err(e) => {
                // The part (if any) is kept at its last good length: the resent chunk
                // continues it once the spool can take it (e.g. disk space returns).
                warn!(node = %self.node, seq, offset, error = %e, "cannot spool chunk; answering no");
                false
            }
        }
    }

    fn end(&mut self, seq: u64, info: &EndInfo) -> bool {
        match self.finish(seq, info) {
            Ok(ok) => ok,
            Err(e @ (EndRefused::Spool { .. } | EndRefused::Dir(_))) => {
                error!(alarm = true, node = %self.node, seq, error = %e, "cannot spool a received batch (disk full?): answered no, the sender resends it");
                false
            }
            Err(e) => {
                warn!(node = %self.node, seq, error = %e, "batch not accepted; the sender resends it");
                false
            }
        }
    }

    fn result(&mut self, seq: u64) -> Option<bool> {
        let until = Instant::now() + self.shared.cfg.link.result_wait;
        let node = self.node.clone();
        match self.shared.wait_settled(&node, seq, until) {
            Some(Outcome::Applied) => {
                self.shared.forget(&node, seq);
                Some(true)
            }
            Some(Outcome::Failed) => Some(false),
            Some(Outcome::Pending) => {
                // The ledger is the last word (e.g. a resent copy marked Pending after
                // the first copy had been applied).
                let known = self.recorded(seq);
                if known.is_none() {
                    info!(%node, seq, "apply not finished within result_wait; closing so the sender asks again");
                }
                known
            }
            None => self.recorded(seq),
        }
    }
}
