//! Receipts for the senders (`[receipts] dir`), where site rules allow carrying them
//! back: per node, the applied seqs, the quarantined ones with their reasons, and the
//! seqs known to be missing ([`gapsync_common::receipt`]), signed with this receiver's
//! key (`[receipts] key`, its node id is `[link] id`) when one is configured.
//!
//! Applied ranges come from the ledger's progress: a node's batches are applied (or
//! quarantined) strictly in seq order, so every seq up to its last one is one or the
//! other.

use std::collections::BTreeMap;

use crate::apply::{ApplyError, Target};
use crate::config::ReceiverConfig;
use crate::*;
use gapsync_common::receipt::{Receipt, ranges};
use gapsync_common::sign::BatchSigner;
use tracing::info;

/// Writes one receipt per node into `[receipts] dir` (nothing without it); `missing`:
/// seqs known missing per node. Returns the file names written. A node whose receipt
/// would say what its last one said is left alone (`written` remembers it).
pub fn write_receipts(
    cfg: &ReceiverConfig,
    t: &mut Target,
    missing: &BTreeMap<String, Vec<u64>>,
    written: &mut BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let Some(dir) = &cfg.receipts_dir else {
        return Ok(Vec::new());
    };
    let signer = match &cfg.receipts_key {
        Some(k) => Some(BatchSigner::load(k, &cfg.link.id)?),
        None => None,
    };
    fsx::private_dir(dir).map_err(|e| ReceiverError::Work {
        path: dir.clone(),
        source: e.into_io(),
    })?;
    let mut out = Vec::new();
    for n in t.progress()? {
        let high = n.quarantined.iter().copied().fold(n.last_applied, u64::max);
        let applied = ranges((1..=high).filter(|s| !n.quarantined.contains(s)));
        let mut quarantined = Vec::new();
        for &s in &n.quarantined {
            let reason = t.quarantine_reason(&n.node, s)?.unwrap_or_default();
            quarantined.push((s, reason));
        }
        let miss = missing.get(&n.node).cloned().unwrap_or_default();
        let fingerprint = format!("{high} {:?} {miss:?}", n.quarantined);
        if written.get(&n.node) == Some(&fingerprint) {
            continue;
        }
        let mut r = Receipt::new(&n.node, &cfg.link.id, applied, quarantined, miss)
            .map_err(|e| ApplyError::refused(e.to_string()))?;
        if let Some(s) = &signer {
            r.sign(s);
        }
        let name = r.file_name();
        let path = dir.join(&name);
        let xml = r.to_xml().map_err(|e| ApplyError::refused(e.to_string()))?;
        fsx::write_private_synced(&path, xml.as_bytes()).map_err(work_err(&path))?;
        info!(node = %n.node, last = high, file = %name, "receipt written");
        written.insert(n.node.clone(), fingerprint);
        out.push(name);
    }
    Ok(out)
}
