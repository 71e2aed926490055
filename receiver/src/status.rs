//! `gapsync-receiver status`: per node progress, spooled and quarantined batches.

use std::path::Path;

use serde::Serialize;

use crate::apply::{NodeProgress, Target};

/// The receiver's status.
#[derive(Debug, Serialize)]
pub struct ReceiverStatus {
    /// Per node progress, read from the target's ledger (empty when the target is
    /// unavailable: see `target_error`).
    pub nodes: Vec<NodeProgress>,
    /// Why the target database could not be read (None: it could).
    pub target_error: Option<String>,
    /// Batch files received and waiting to be applied.
    pub spooled: Vec<String>,
    /// Batches that failed once and wait for the sender's resend.
    pub failed_once: Vec<String>,
    /// Files in the quarantine directory.
    pub quarantined: Vec<String>,
    /// Nodes whose ledger on the target is below this receiver's high-water mark (a
    /// replaced or restored target): nothing of them is applied.
    pub ledger_regressed: Vec<String>,
    /// The folder link's inbox (`[link] dir`), when configured.
    pub inbox: Option<InboxStatus>,
    /// Each node's last contact (HELLO, heartbeat, a batch), as the running service
    /// noted it in `state/contact.json`.
    pub contacts: Vec<Contact>,
    /// The newest error of an authenticated connection (or a refused HELLO, a batch
    /// not accepted) the running service noted, with its time.
    pub last_link_error: Option<gapsync_common::note::ErrorNote>,
    /// The newest failed apply or unavailable target the running service noted.
    pub last_apply_error: Option<gapsync_common::note::ErrorNote>,
}

/// How long ago a node was last heard from.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub node: String,
    pub silent_secs: u64,
}

/// Which inbox `status` looks at, and how.
#[derive(Clone, Copy)]
pub struct InboxQuery<'a> {
    pub dir: &'a Path,
    /// `[link] gap_alarm`.
    pub gap_alarm: std::time::Duration,
    /// Whether gaps of this node count (a trust entry, or `insecure`).
    pub watched: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for InboxQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxQuery")
            .field("dir", &self.dir)
            .field("gap_alarm", &self.gap_alarm)
            .finish()
    }
}

/// What waits in the inbox of a folder link.
#[derive(Debug, Serialize)]
pub struct InboxStatus {
    pub dir: String,
    /// Batch files in the inbox (not yet moved to `done/`).
    pub files: usize,
    /// Nodes waiting for a seq that has not arrived, with the age of the gap.
    pub gaps: Vec<crate::inbox::Gap>,
    /// Why the inbox could not be read (None: it could).
    pub error: Option<String>,
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

/// The status from the work directory and, when it can be reached, the target's
/// ledger: a target that cannot be opened or read still gives the spool and quarantine
/// state, with the reason in `target_error`.
pub fn status(
    target: Result<Target, crate::apply::ApplyError>,
    work_dir: &Path,
    inbox: Option<InboxQuery<'_>>,
) -> ReceiverStatus {
    let spool = work_dir.join("spool");
    let batch = |n: &str| {
        gapsync_common::batch::parse_batch_file_name(n)
            .is_ok()
            .then(|| n.to_owned())
    };
    let (nodes, target_error) = match target.and_then(|mut t| t.progress()) {
        Ok(nodes) => (nodes, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let ledger_regressed = if target_error.is_none() {
        let next = nodes
            .iter()
            .map(|n| {
                let last = n.quarantined.iter().copied().fold(n.last_applied, u64::max);
                (n.node.clone(), last + 1)
            })
            .collect();
        crate::marks::regressed(&crate::marks::read_marks(work_dir), &next)
            .into_iter()
            .map(|(node, mark, have)| format!("{node} (ledger at seq {have}, was at {mark})"))
            .collect()
    } else {
        Vec::new()
    };
    let next_of = |node: &str| -> u64 {
        nodes.iter().find(|n| n.node == node).map_or(1, |n| {
            n.quarantined.iter().copied().fold(n.last_applied, u64::max) + 1
        })
    };
    let inbox = inbox.map(|q| inbox_status(q.dir, q.gap_alarm, q.watched, &next_of));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let contacts = std::fs::read_to_string(work_dir.join("state").join("contact.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, i64>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(node, at)| Contact {
            node,
            silent_secs: (now - at).max(0) as u64,
        })
        .collect();
    let state = work_dir.join("state");
    ReceiverStatus {
        last_link_error: gapsync_common::note::read(&state.join(crate::shared::LINK_NOTE)),
        last_apply_error: gapsync_common::note::read(&state.join(crate::shared::APPLY_NOTE)),
        contacts,
        inbox,
        nodes,
        target_error,
        ledger_regressed,
        spooled: list(&spool, batch),
        failed_once: list(&spool, |n| n.strip_suffix(".fail1").map(str::to_owned)),
        quarantined: list(&work_dir.join("quarantine"), batch),
    }
}

fn inbox_status(
    dir: &Path,
    gap_alarm: std::time::Duration,
    watched: &dyn Fn(&str) -> bool,
    next_of: &dyn Fn(&str) -> u64,
) -> InboxStatus {
    let listing = crate::inbox::list(dir);
    let (files, gaps, error) = match listing {
        Ok(mut l) => {
            // A node with no trust entry (unless `insecure`): a planted name, no alarm.
            l.files.retain(|node, _| watched(node));
            let files = l.files.values().map(|f| f.len()).sum();
            // Manifests are not verified here (status reads no keys): their seqs count
            // only in the service's own alarms.
            match crate::inbox::gaps(&l, &[], &mut |n| Ok(next_of(n)), gap_alarm) {
                Ok(g) => (files, g, None),
                Err(e) => (files, Vec::new(), Some(e.to_string())),
            }
        }
        Err(e) => (0, Vec::new(), Some(e.to_string())),
    };
    InboxStatus {
        dir: dir.display().to_string(),
        files,
        gaps,
        error,
    }
}

impl ReceiverStatus {
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.target_error {
            s.push_str(&format!("target database unavailable: {e}\n"));
        } else if self.nodes.is_empty() {
            s.push_str("no batch applied yet\n");
        }
        for r in &self.ledger_regressed {
            s.push_str(&format!(
                "LEDGER WENT BACKWARDS: {r}: nothing of it is applied; restore the target, or `accept-ledger NODE`\n"
            ));
        }
        for n in &self.nodes {
            s.push_str(&format!(
                "node {}: last seq applied {}{}, {} batches applied, quarantined seqs {:?}\n",
                n.node,
                n.last_applied,
                n.last_applied_at
                    .as_deref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default(),
                n.applied_batches,
                n.quarantined
            ));
        }
        for c in &self.contacts {
            s.push_str(&format!(
                "node {}: last heard from {} s ago\n",
                c.node, c.silent_secs
            ));
        }
        let now = chrono::Utc::now();
        if let Some(n) = &self.last_link_error {
            s.push_str(&format!("last link error: {}\n", n.line(now)));
        }
        if let Some(n) = &self.last_apply_error {
            s.push_str(&format!("last apply error: {}\n", n.line(now)));
        }
        s.push_str(&format!(
            "spooled, waiting to apply: {}\n",
            self.spooled.len()
        ));
        for f in &self.failed_once {
            s.push_str(&format!("failed once, waiting for resend: {f}\n"));
        }
        if let Some(i) = &self.inbox {
            s.push_str(&format!("inbox {}: {} file(s) waiting\n", i.dir, i.files));
            if let Some(e) = &i.error {
                s.push_str(&format!("  cannot read it: {e}\n"));
            }
            for g in &i.gaps {
                s.push_str(&format!(
                    "  {}node {} waits for seq {} ({} s){}\n",
                    if g.alarm { "GAP: " } else { "" },
                    g.node,
                    g.missing,
                    g.age_secs,
                    g.waiting
                        .map(|w| format!(", seq {w} and later are here"))
                        .unwrap_or_default()
                ));
            }
        }
        s.push_str(&format!("quarantined files: {}\n", self.quarantined.len()));
        for f in &self.quarantined {
            s.push_str(&format!("  {f}\n"));
        }
        s
    }
}
