//! `gapsync-receiver status`: per node progress, spooled and quarantined batches.

use std::path::Path;

use serde::Serialize;

use gapsync_common::target::{NodeProgress, Target};

/// The receiver's status.
#[derive(Debug, Serialize)]
pub struct ReceiverStatus {
    pub nodes: Vec<NodeProgress>,
    /// Batch files received and waiting to be applied.
    pub spooled: Vec<String>,
    /// Batches that failed once and wait for the sender's resend.
    pub failed_once: Vec<String>,
    /// Files in the quarantine directory.
    pub quarantined: Vec<String>,
}

fn list(dir: &Path, keep: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| keep(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn status(
    target: &mut Target,
    work_dir: &Path,
) -> Result<ReceiverStatus, gapsync_common::target::ApplyError> {
    let spool = work_dir.join("spool");
    let batch = |n: &str| {
        gapsync_common::batch::parse_batch_file_name(n)
            .is_ok()
            .then(|| n.to_owned())
    };
    Ok(ReceiverStatus {
        nodes: target.progress()?,
        spooled: list(&spool, batch),
        failed_once: list(&spool, |n| n.strip_suffix(".fail1").map(str::to_owned)),
        quarantined: list(&work_dir.join("quarantine"), batch),
    })
}

impl ReceiverStatus {
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.nodes.is_empty() {
            s.push_str("no batch applied yet\n");
        }
        for n in &self.nodes {
            s.push_str(&format!(
                "node {}: last seq applied {}, {} batches applied, quarantined seqs {:?}\n",
                n.node, n.last_applied, n.applied_batches, n.quarantined
            ));
        }
        s.push_str(&format!(
            "spooled, waiting to apply: {}\n",
            self.spooled.len()
        ));
        for f in &self.failed_once {
            s.push_str(&format!("failed once, waiting for resend: {f}\n"));
        }
        s.push_str(&format!("quarantined files: {}\n", self.quarantined.len()));
        for f in &self.quarantined {
            s.push_str(&format!("  {f}\n"));
        }
        s
    }
}
