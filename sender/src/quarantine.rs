//! `gapsync-sender quarantine list | show | retry | ack`: the sender's side of a batch
//! the receiver answered "failed" twice.
//!
//! - `retry SEQ`: the batch is ready again and ships at the next `run` pass or `once`;
//!   the receiver answers from its ledger: "applied" once its own `quarantine retry`
//!   applied it (then the tracking rows go, as for any applied batch), "failed" while
//!   it is still quarantined there (then it is quarantined here again).
//! - `ack SEQ`: the loss is accepted; the audit records who and when
//!   (`quarantine/<file>.acked`).

use serde::Serialize;

use crate::capture::{BatchRecord, BatchState};
use crate::*;
use gapsync_common::fsx;

/// A quarantined batch as `list` and `show` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub seq: u64,
    pub file: String,
    pub reason: String,
    pub changes: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub created: String,
    /// `who at` of an `ack`.
    pub acked: Option<String>,
}

impl Sender {
    fn quarantined_record(&mut self, seq: u64) -> Result<BatchRecord> {
        self.source
            .batches(Some(BatchState::Quarantined))?
            .into_iter()
            .find(|b| b.seq == seq)
            .ok_or_else(|| {
                crate::capture::SourceError::Corrupt(format!(
                    "batch {seq} is not quarantined (see `gapsync-sender quarantine list`)"
                ))
                .into()
            })
    }

    fn describe_quarantined(&self, b: BatchRecord) -> Quarantined {
        let acked =
            std::fs::read_to_string(self.dir("quarantine").join(format!("{}.acked", b.file)))
                .ok()
                .map(|t| t.trim().to_owned());
        Quarantined {
            seq: b.seq,
            file: b.file,
            reason: b.reason.unwrap_or_default(),
            changes: b.changes,
            first_id: b.first_id,
            last_id: b.last_id,
            created: b.created,
            acked,
        }
    }

    /// `quarantine list`.
    pub fn quarantine_list(&mut self) -> Result<Vec<Quarantined>> {
        let v = self.source.batches(Some(BatchState::Quarantined))?;
        Ok(v.into_iter()
            .map(|b| self.describe_quarantined(b))
            .collect())
    }

    /// `quarantine show SEQ`.
    pub fn quarantine_show(&mut self, seq: u64) -> Result<Quarantined> {
        let b = self.quarantined_record(seq)?;
        Ok(self.describe_quarantined(b))
    }

    /// `quarantine retry SEQ`: ready again; the file back in `outbox/`.
    pub fn quarantine_retry(&mut self, seq: u64) -> Result<String> {
        let b = self.quarantined_record(seq)?;
        let from = self.dir("quarantine").join(&b.file);
        let to = self.dir("outbox").join(&b.file);
        if !from.is_file() {
            return Err(crate::capture::SourceError::Corrupt(format!(
                "{}: not in quarantine/ any more: it cannot be sent again (resync its tables)",
                b.file
            ))
            .into());
        }
        // The file first, then the record: a crash in between leaves a quarantined
        // record whose file is in the outbox, which the outbox recovery moves back.
        fsx::move_file(&from, &to).map_err(work_err(&to))?;
        if !self.source.requeue(seq)? {
            return Err(crate::capture::SourceError::Corrupt(format!(
                "batch {seq} changed while it was retried"
            ))
            .into());
        }
        self.audit("requeued", &b, "pending", "quarantine retry by hand");
        Ok(format!(
            "{}: ready again; it ships at the next pass of `run` (or `once`). The receiver answers \"applied\" once it has the batch (its own `quarantine retry`), \"failed\" while it is still quarantined there",
            b.file
        ))
    }

    /// `quarantine ack SEQ --by NAME`.
    pub fn quarantine_ack(&mut self, seq: u64, by: &str) -> Result<String> {
        let b = self.quarantined_record(seq)?;
        let at = gapsync_common::batch::format_created(chrono::Utc::now());
        let p = self.dir("quarantine").join(format!("{}.acked", b.file));
        fsx::write_private_synced(&p, format!("{by} {at}\n").as_bytes()).map_err(work_err(&p))?;
        self.audit(
            "acked",
            &b,
            "loss accepted",
            &format!("by {by}: {}", b.reason.clone().unwrap_or_default()),
        );
        Ok(format!(
            "{}: the loss is accepted by {by} at {at} (recorded in the audit); `resync TABLE` heals its tables",
            b.file
        ))
    }
}
