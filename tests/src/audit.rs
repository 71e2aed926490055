//! Reading the audit record.

use std::fs;
use std::path::Path;

use crate::*;

// ------------------------------------------------------------------------ audit record

/// Every line of the audit record under a work directory (`<work>/audit/audit-*.jsonl`,
/// files in name order, i.e. by month), parsed. Empty if there is none yet; panics on a
/// line that is not a JSON object.
pub fn read_audit(work_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in sorted_files(&work_dir.join("audit")) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !(name.starts_with("audit-") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{} line {}: not JSON ({e}): {line}", f.display(), i + 1)
            });
            assert!(
                v.is_object(),
                "{} line {}: not an object: {line}",
                f.display(),
                i + 1
            );
            out.push(v);
        }
    }
    out
}

/// The `event` fields of the audit lines about `seq` (any node), in record order.
pub fn audit_events_of(lines: &[serde_json::Value], seq: u64) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["seq"].as_u64() == Some(seq))
        .filter_map(|l| l["event"].as_str().map(str::to_owned))
        .collect()
}

impl SenderNode {
    /// The sender's audit record ([`read_audit`] of its work directory).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_audit(&self.work_dir)
    }

    /// Tracking rows (`_gapsync_changes`) that batch `seq` carries.
    pub fn tracking_rows_of(&self, seq: u64) -> u64 {
        self.source()
            .query_row(
                "SELECT count(*) FROM _gapsync_changes WHERE batch = ?1",
                [seq as i64],
                |r| r.get::<_, i64>(0),
            )
            .expect("counting tracking rows") as u64
    }

    /// Every change captured so far (the AUTOINCREMENT counter of `_gapsync_changes`;
    /// tracking rows of applied batches are deleted, the counter is not).
    pub fn captured_changes(&self) -> u64 {
        self.source()
            .query_row(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence \
                 WHERE name = '_gapsync_changes'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .expect("reading sqlite_sequence") as u64
    }

    /// The batch row of `seq` (panics if there is none).
    pub fn batch(&self, seq: u64) -> BatchRow {
        self.batches()
            .into_iter()
            .find(|b| b.seq == seq)
            .unwrap_or_else(|| panic!("node {} has no batch {seq}", self.cfg.node))
    }
}

impl ReceiverNode {
    /// The receiver's audit record ([`read_audit`] of its work directory).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_audit(&self.work_dir)
    }
}
