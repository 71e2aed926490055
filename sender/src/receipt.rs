//! `import-receipt FILE`: a receiver's receipt carried back by hand (folder link or
//! media), verified against `[receipts] trust` (a forged or altered one is refused),
//! kept as `state/receipt.xml` (the newest one), and shown by `status`: confirmed
//! seqs, seqs the receiver quarantined with their reasons, and seqs it misses
//! (`export --missing` brings those again).

use std::path::Path;

use serde::Serialize;

use crate::*;
use gapsync_common::fsx;
use gapsync_common::receipt::{Receipt, ReceiptError};
use gapsync_common::sign::TrustStore;

/// What status shows of the newest receipt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReceiptSummary {
    pub receiver: String,
    pub created: String,
    /// Every seq up to this one is applied or quarantined at the receiver.
    pub confirmed_up_to: u64,
    /// (seq, reason) the receiver quarantined.
    pub quarantined: Vec<(u64, String)>,
    /// Seqs the receiver knows it misses.
    pub missing: Vec<u64>,
}

impl ReceiptSummary {
    fn of(r: &Receipt) -> ReceiptSummary {
        let mut up_to = 0;
        while r.is_applied(up_to + 1) || r.quarantined.iter().any(|q| q.0 == up_to + 1) {
            up_to += 1;
        }
        ReceiptSummary {
            receiver: r.receiver.clone(),
            created: r.created.clone(),
            confirmed_up_to: up_to,
            quarantined: r.quarantined.clone(),
            missing: r.missing.clone(),
        }
    }
}

impl Sender {
    /// Verifies and records a receipt; returns what it says.
    pub fn import_receipt(&mut self, file: &Path) -> Result<ReceiptSummary> {
        let r = Receipt::read(file)?;
        if r.node != self.cfg.node {
            return Err(ReceiptError::Invalid(format!(
                "the receipt is for node {}, this sender is node {}",
                r.node, self.cfg.node
            ))
            .into());
        }
        let trust = TrustStore::from_config(&self.cfg.receipts_trust)?;
        r.verify(&trust, self.cfg.insecure)?;
        let summary = ReceiptSummary::of(&r);
        let older = self
            .last_receipt()
            .is_some_and(|prev| prev.receiver == r.receiver && prev.created > r.created);
        if !older {
            let path = self.dir("state").join("receipt.xml");
            let xml = r.to_xml()?;
            fsx::write_private_synced(&path, xml.as_bytes()).map_err(work_err(&path))?;
        }
        Ok(summary)
    }

    /// The newest receipt recorded (verified when it was imported).
    pub fn last_receipt(&self) -> Option<Receipt> {
        Receipt::read(&self.dir("state").join("receipt.xml")).ok()
    }

    /// What status shows of the newest receipt.
    pub fn receipt_summary(&self) -> Option<ReceiptSummary> {
        self.last_receipt().as_ref().map(ReceiptSummary::of)
    }
}
