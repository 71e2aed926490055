//! Shipping: the link to the receiver (HELLO and END signed by the node key), each
//! ready batch sent and its result asked, applied batches archived, the second
//! failure quarantined.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::{BatchRecord, BatchState};
use crate::config::OnSecondFailure;
use crate::*;
use gapsync_common::sign::BatchSigner;
pub use gapsync_common::stop::sleep_unless;
use gapsync_protocol::{Identity, LinkClient, LinkError, LinkOptions, LinkSigner, ResultAnswer};
use tracing::{error, info, warn};

impl Sender {
    pub(crate) fn link_options(&self) -> LinkOptions {
        let l = &self.cfg.link;
        LinkOptions {
            max_frame: l.max_frame,
            frame_timeout: l.frame_timeout,
            result_timeout: l.result_timeout,
            connect_timeout: l.connect_timeout,
            chunk_retries: 5,
        }
    }

    /// Connect if not connected. Refusal is fatal; other failures are returned for the
    /// caller's backoff.
    pub(crate) fn ensure_link(&mut self) -> Result<&mut LinkClient> {
        if self.link.as_ref().is_some_and(LinkClient::is_broken) {
            self.link = None;
        }
        if self.link.is_none() {
            let hello = format!("gapsync-sender {}", env!("CARGO_PKG_VERSION"));
            let id = Identity {
                node: self.cfg.node.clone(),
                receiver_id: self.cfg.link.receiver_id.clone(),
                signer: self
                    .signer
                    .clone()
                    .map(|s| Arc::new(NodeKey(s)) as Arc<dyn LinkSigner>),
            };
            let c = LinkClient::connect(&self.cfg.link.connect, &id, &hello, self.link_options())?;
            info!(receiver = %self.cfg.link.connect, "link up");
            self.backoff.reset();
            self.link = Some(c);
        }
        match self.link.as_mut() {
            Some(l) => Ok(l),
            None => Err(SenderError::Link(LinkError::Broken)),
        }
    }

    /// The receiver answered: `state/contact` holds the time (unix seconds), for
    /// `status` (the receiver silent). Written at most every 5 s (private, like the whole
    /// work directory); a failure to write it is only logged.
    pub(crate) fn note_contact(&mut self) {
        if self
            .contact_written
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(5))
        {
            return;
        }
        self.contact_written = Some(std::time::Instant::now());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let p = self.dir("state").join("contact");
        if let Err(e) = gapsync_common::fsx::write_private_synced(&p, format!("{now}\n").as_bytes())
        {
            warn!(file = %p.display(), error = %e, "cannot note the receiver's last answer (status cannot tell how long it has been silent)");
        }
    }

    /// Send a heartbeat if connected (or connect). Errors drop the link.
    pub fn heartbeat(&mut self) -> Result<()> {
        if self.cfg.link.dir.is_some() {
            return Ok(()); // a folder answers nothing
        }
        let r = self
            .ensure_link()
            .and_then(|l| l.heartbeat().map_err(SenderError::from));
        match &r {
            Ok(()) => self.note_contact(),
            Err(e) => {
                self.link = None;
                self.note_link_error(e);
            }
        }
        r
    }

    /// Notes a link error with its time in `state/link-error.json` for `status`.
    fn note_link_error(&self, e: &SenderError) {
        if let Err(w) = self.link_note.note(&e.to_string()) {
            warn!(error = %w, "cannot note the link error in state/ (status will not show it)");
        }
    }

    pub(crate) fn link_fault(&mut self, e: &SenderError, stop: &AtomicBool) {
        self.link = None;
        self.note_link_error(e);
        let delay = self.backoff.next_delay();
        warn!(error = %e, retry_in = ?delay, "link fault");
        sleep_unless(stop, delay);
    }

    /// Ship every ready batch in seq order. `max_faults`: give up (return the last link
    /// error) after this many link faults in a row; `None` retries until `stop` is set.
    pub fn ship_ready(&mut self, stop: &AtomicBool, max_faults: Option<u32>) -> Result<ShipReport> {
        if let Some(dir) = self.cfg.link.dir.clone() {
            return self.publish_ready(&dir, stop);
        }
        let mut report = ShipReport::default();
        for rec in self.source.batches(Some(BatchState::Ready))? {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match self.ship_one(&rec, stop, max_faults)? {
                Some(true) => report.applied.push(rec.seq),
                Some(false) => {
                    report.dropped.push(rec.seq);
                    if self.cfg.batch.on_second_failure == OnSecondFailure::Halt {
                        // The halt record is written (before the quarantine).
                        return Err(SenderError::Halted { seq: rec.seq });
                    }
                }
                None => break,
            }
        }
        Ok(report)
    }

    /// Ship one batch until it is applied (Some(true)), dropped (Some(false)) or `stop`
    /// is set (None).
    pub(crate) fn ship_one(
        &mut self,
        rec: &BatchRecord,
        stop: &AtomicBool,
        max_faults: Option<u32>,
    ) -> Result<Option<bool>> {
        let path = self.dir("outbox").join(&rec.file);
        let sha: [u8; 32] = hex::decode(&rec.sha256)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                crate::capture::SourceError::Corrupt(format!("batch {} sha256", rec.seq))
            })?;
        let mut faults = 0u32;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            // Every attempt sends the file and then asks: after a link fault the sender
            // cannot know what the receiver kept, and a repeated END or RESULT for a batch
            // the receiver already has is answered from its spool and ledger.
            let answer = self.try_ship(rec, &path, sha);
            if answer.is_ok() {
                self.note_contact();
            }
            match answer {
                Ok(ResultAnswer::Applied) => {
                    self.source.mark_applied(rec.seq)?;
                    let dest = self.dir("archive").join(&rec.file);
                    std::fs::rename(&path, &dest).map_err(work_err(&dest))?;
                    self.metrics.batches_applied.inc();
                    self.metrics.sent_bytes.inc_by(rec.size);
                    info!(seq = rec.seq, file = %rec.file, "batch applied");
                    self.audit("applied", rec, "ok", "");
                    return Ok(Some(true));
                }
                Ok(ResultAnswer::Failed) => {
                    let attempts = self
                        .source
                        .record_failure(rec.seq, "receiver answered: apply failed")?;
                    self.audit("failed", rec, "failed", &format!("attempt {attempts}"));
                    if attempts >= 2 {
                        if self.cfg.batch.on_second_failure == OnSecondFailure::Halt {
                            // Before the quarantine: a crash in between must leave the
                            // node halted, never quietly past the dropped batch.
                            self.record_halt(rec.seq, &rec.file)?;
                        }
                        self.quarantine(rec, &path)?;
                        return Ok(Some(false));
                    }
                    warn!(seq = rec.seq, file = %rec.file, "receiver reports the apply failed; sending the batch once more");
                }
                Err(SenderError::Link(LinkError::Refused)) => {
                    let e = SenderError::Link(LinkError::Refused);
                    self.note_link_error(&e);
                    return Err(e);
                }
                Err(SenderError::Link(e)) => {
                    faults += 1;
                    let e = SenderError::Link(e);
                    if max_faults.is_some_and(|m| faults >= m) {
                        self.link = None;
                        self.note_link_error(&e);
                        return Err(e);
                    }
                    self.link_fault(&e, stop);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send the file, then ask for the result.
    pub(crate) fn try_ship(
        &mut self,
        rec: &BatchRecord,
        path: &Path,
        sha: [u8; 32],
    ) -> Result<ResultAnswer> {
        self.ensure_link()?;
        let mut f = gapsync_common::fsx::open_nofollow(path).map_err(work_err(path))?;
        self.audit("sent", rec, "pending", "");
        let link = match self.link.as_mut() {
            Some(l) => l,
            None => return Err(SenderError::Link(LinkError::Broken)),
        };
        link.send_file(rec.seq, &rec.file, &mut f, rec.size, sha)?;
        Ok(link.ask_result(rec.seq)?)
    }

    pub(crate) fn quarantine(&mut self, rec: &BatchRecord, path: &Path) -> Result<()> {
        let reason = format!(
            "the receiver answered 'failed' to both applies of batch {} ({}); the database error is in the receiver's quarantine",
            rec.seq, rec.file
        );
        let qdir = self.dir("quarantine");
        let rpath = qdir.join(format!("{}.reason", rec.file));
        gapsync_common::fsx::write_private_synced(&rpath, format!("{reason}\n").as_bytes())
            .map_err(work_err(&rpath))?;
        self.source.mark_quarantined(rec.seq, &reason)?;
        let dest = qdir.join(&rec.file);
        std::fs::rename(path, &dest).map_err(work_err(&dest))?;
        self.metrics.batches_quarantined.inc();
        error!(alarm = true, seq = rec.seq, file = %rec.file, "{reason}: batch dropped to quarantine");
        self.audit("dropped", rec, "quarantined", &reason);
        Ok(())
    }

    /// `once`: cut everything pending (and queued snapshots), ship every ready batch,
    /// wait for the answers.
    pub fn once(&mut self, stop: &AtomicBool) -> Result<ShipReport> {
        self.refuse_if_halted()?;
        self.cut_snapshots()?;
        self.cut_pending()?;
        let attempts = self.cfg.link.once_connect_attempts;
        self.ship_ready(stop, Some(attempts))
    }
}

/// The node key as the link's signer: the key that signs batch files also signs HELLO
/// and END (with the link's own domain prefixes, so neither signature can stand for the
/// other).
#[derive(Debug)]
pub(crate) struct NodeKey(BatchSigner);

impl LinkSigner for NodeKey {
    fn key_id(&self) -> [u8; 8] {
        self.0.key_id_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign_link(message)
    }
}
