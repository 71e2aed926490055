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
        Err(e) => {
            warn!(%peer, node = %conn.node, error = %e, "connection closed");
            shared.note_link(&format_args!(
                "node {} ({peer}): connection closed: {e}",
                conn.node
            ));
        }
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
                self.shared.metrics.contact(node);
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
                    // Only for a node this receiver knows: a stranger's refusals would
                    // otherwise hide the real sender's error from `status`.
                    if self.shared.trust.has_node(node) {
                        self.shared.note_link(&format_args!(
                            "HELLO from {} as node {node} refused: {reason}",
                            self.peer
                        ));
                    }
                } else {
                    debug!(peer = %self.peer, %node, %reason, "HELLO refused");
                }
                false
            }
        }
    }

    fn heartbeat(&mut self) -> bool {
        self.shared.metrics.contact(&self.node);
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
                self.shared.note_link(&format_args!(
                    "node {} seq {seq}: cannot spool it: {e}",
                    self.node
                ));
                false
            }
            Err(e) => {
                warn!(node = %self.node, seq, error = %e, "batch not accepted; the sender resends it");
                self.shared.note_link(&format_args!(
                    "node {} seq {seq} not accepted: {e}",
                    self.node
                ));
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
            // The ledger is the last word: a batch retried by hand (`quarantine retry`,
            // another process) is applied although this process remembers it failed.
            Some(Outcome::Failed) => match self.recorded(seq) {
                Some(true) => {
                    self.shared.forget(&node, seq);
                    Some(true)
                }
                _ => Some(false),
            },
            Some(Outcome::Replayed) => Some(false),
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

mod end;
pub(crate) use end::EndRefused;
