//! END: the signature check, the checks of the upload against its END, the no-replace
//! link into the spool, and what happens to a refused or replayed upload.

use super::*;

impl Conn {
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
        self.shared.metrics.received.inc();
        self.shared.metrics.received_bytes.inc_by(info.size);
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
        sh.set(&self.node, seq, Outcome::Replayed);
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
