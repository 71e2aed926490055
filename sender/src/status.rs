//! `gapsync-sender status`: what is pending, cut, unanswered and quarantined.

use serde::Serialize;

use crate::capture::{BatchState, ChangeSource};

/// A quarantined batch as status shows it.
#[derive(Debug, Serialize)]
pub struct Dropped {
    pub seq: u64,
    pub file: String,
    pub reason: String,
}

/// The sender's status.
#[derive(Debug, Serialize)]
pub struct SenderStatus {
    pub node: String,
    /// Captured changes not yet in a batch.
    pub pending_changes: u64,
    /// Highest seq cut so far (0: none).
    pub last_seq_cut: u64,
    /// Highest seq the receiver answered "applied" (0: none).
    pub last_seq_applied: u64,
    /// Batches cut and not yet answered "applied", by seq.
    pub unanswered: Vec<u64>,
    pub quarantined: Vec<Dropped>,
    /// Queued snapshot requests (table names).
    pub queued_snapshots: Vec<String>,
    /// Changes and snapshots the target's dialect cannot express (kept in the source's
    /// `_gapsync_rejected`, with the reason).
    pub rejected: u64,
    /// The node is halted (`on_second_failure = "halt"`): nothing ships until
    /// `gapsync-sender resume`.
    pub halted: Option<crate::halt::Halt>,
    /// Folder link and media: published, manifested and exported seqs.
    pub media: Media,
}

/// Where batches go without a live link (`[link] dir`, `export`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Media {
    /// `[link] dir`, when batches are published to a folder (then "applied" above means
    /// published: nothing answers).
    pub folder: Option<String>,
    /// The last seq a manifest covers (0: none).
    pub last_seq_manifested: u64,
    /// The highest seq exported to a medium (0: none).
    pub last_seq_exported: u64,
    /// The newest receipt carried back (`import-receipt`).
    pub receipt: Option<crate::ReceiptSummary>,
}

pub fn status(
    node: &str,
    work_dir: &std::path::Path,
    src: &mut dyn ChangeSource,
    media: Media,
) -> Result<SenderStatus, crate::capture::SourceError> {
    let batches = src.batches(None)?;
    Ok(SenderStatus {
        node: node.to_owned(),
        pending_changes: src.pending_count()?,
        last_seq_cut: src.next_seq()? - 1,
        last_seq_applied: batches
            .iter()
            .filter(|b| b.state == BatchState::Applied)
            .map(|b| b.seq)
            .max()
            .unwrap_or(0),
        unanswered: batches
            .iter()
            .filter(|b| b.state == BatchState::Ready)
            .map(|b| b.seq)
            .collect(),
        quarantined: batches
            .iter()
            .filter(|b| b.state == BatchState::Quarantined)
            .map(|b| Dropped {
                seq: b.seq,
                file: b.file.clone(),
                reason: b.reason.clone().unwrap_or_default(),
            })
            .collect(),
        queued_snapshots: src
            .snapshot_requests()?
            .into_iter()
            .map(|(_, t)| t)
            .collect(),
        rejected: src.rejected_count()?,
        halted: crate::halt::read_halt(work_dir),
        media,
    })
}

impl SenderStatus {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(h) = &self.halted {
            s.push_str(&format!(
                "HALTED since {} at batch {} ({}): nothing ships; fix the cause, then `gapsync-sender resume`\n",
                h.since, h.seq, h.file
            ));
        }
        s += &format!(
            "node {}\npending changes: {}\nlast seq cut: {}\nlast seq applied: {}\nunanswered batches: {}\n",
            self.node,
            self.pending_changes,
            self.last_seq_cut,
            self.last_seq_applied,
            list(&self.unanswered)
        );
        if let Some(f) = &self.media.folder {
            s.push_str(&format!(
                "folder link: {f} (published = applied; no answer)\nlast seq in a manifest: {}\n",
                self.media.last_seq_manifested
            ));
        }
        if self.media.last_seq_exported > 0 {
            s.push_str(&format!(
                "last seq exported: {}\n",
                self.media.last_seq_exported
            ));
        }
        if let Some(r) = &self.media.receipt {
            s.push_str(&format!(
                "receipt from {} ({}): confirmed up to seq {}\n",
                r.receiver, r.created, r.confirmed_up_to
            ));
            for (seq, why) in &r.quarantined {
                s.push_str(&format!(
                    "  quarantined at the receiver: seq {seq}: {why}\n"
                ));
            }
            if !r.missing.is_empty() {
                s.push_str(&format!(
                    "  missing at the receiver: {} (gapsync-sender export --missing --to DIR)\n",
                    list(&r.missing)
                ));
            }
        }
        if !self.queued_snapshots.is_empty() {
            s.push_str(&format!(
                "queued snapshots: {}\n",
                self.queued_snapshots.join(", ")
            ));
        }
        s.push_str(&format!(
            "quarantined batches: {}\n",
            self.quarantined.len()
        ));
        for q in &self.quarantined {
            s.push_str(&format!("  seq {} {}: {}\n", q.seq, q.file, q.reason));
        }
        s
    }
}

fn list(v: &[u64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v
        .iter()
        .take(20)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if v.len() > 20 {
        s.push_str(&format!(" … ({} in all)", v.len()));
    }
    s
}
