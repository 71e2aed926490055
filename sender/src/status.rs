//! `gapsync-sender status`: what is pending, cut, unanswered and quarantined, how far
//! behind it is and whether the receiver answers; its exit status follows the monitoring
//! convention (0 ok, 1 warning, 2 critical; [`Health`]).

use serde::Serialize;

use crate::capture::{BatchState, ChangeSource};

/// A quarantined batch as status shows it.
#[derive(Debug, Serialize)]
pub struct Dropped {
    pub seq: u64,
    pub file: String,
    pub reason: String,
}

/// A queued snapshot's progress.
#[derive(Debug, Serialize)]
pub struct SnapshotStatus {
    pub table: String,
    /// Rows in batches already cut (0: not started).
    pub rows_done: u64,
    /// Rows the table had when it was read (0: not started).
    pub rows_total: u64,
    /// An interruption resumes after the rows done (the key is made of integers); false:
    /// it starts over.
    pub resumable: bool,
}

/// A failed apply, as the receiver answered it.
#[derive(Debug, Serialize)]
pub struct ApplyFailure {
    pub seq: u64,
    /// When the answer was recorded (the source's clock, RFC 3339).
    pub at: String,
    pub attempts: u32,
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
    /// When that answer was recorded (UTC, RFC 3339).
    pub last_applied_at: Option<String>,
    /// Batches cut and not yet answered "applied", by seq.
    pub unanswered: Vec<u64>,
    pub quarantined: Vec<Dropped>,
    /// Queued snapshot requests (table names).
    pub queued_snapshots: Vec<String>,
    /// Each queued snapshot's progress, in request order.
    pub snapshots: Vec<SnapshotStatus>,
    /// The newest failed apply the receiver answered (a batch's last reason), if any
    /// batch not yet applied has one.
    pub last_apply_error: Option<ApplyFailure>,
    /// The newest link error the running service noted (TCP link), with its time.
    pub last_link_error: Option<gapsync_common::note::ErrorNote>,
    /// Changes and snapshots the target's dialect cannot express (kept in the source's
    /// `_gapsync_rejected`, with the reason).
    pub rejected: u64,
    /// The node is halted (`on_second_failure = "halt"`): nothing ships until
    /// `gapsync-sender resume`.
    pub halted: Option<crate::halt::Halt>,
    /// Folder link and media: published, manifested and exported seqs.
    pub media: Media,
    /// How far behind, whether the receiver answers, and the verdict.
    pub health: Health,
}

/// The monitoring verdict: `status` exits with it (0 ok, 1 warning, 2 critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

/// Lag and liveness, judged by `[alarm]`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub level: Level,
    /// Why the level is not ok, one line each.
    pub reasons: Vec<String>,
    /// Age of the oldest change not yet in a batch (seconds).
    pub oldest_pending_secs: Option<u64>,
    /// Age of the oldest batch cut and not yet answered "applied" (seconds).
    pub oldest_unanswered_secs: Option<u64>,
    /// Bytes of the batches cut and not yet answered.
    pub unanswered_bytes: u64,
    /// Seconds since the receiver last answered (TCP link; None: never noted).
    pub last_contact_secs: Option<u64>,
}

impl Health {
    fn raise(&mut self, level: Level, why: String) {
        self.level = self.level.max(level);
        self.reasons.push(why);
    }
}

fn age(
    now: chrono::DateTime<chrono::Utc>,
    t: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<u64> {
    t.map(|t| (now - t).num_seconds().max(0) as u64)
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
    alarm: &crate::config::AlarmConfig,
) -> Result<SenderStatus, crate::capture::SourceError> {
    let batches = src.batches(None)?;
    let now = chrono::Utc::now();
    let ready: Vec<_> = batches
        .iter()
        .filter(|b| b.state == BatchState::Ready)
        .collect();
    let mut health = Health {
        level: Level::Ok,
        reasons: Vec::new(),
        oldest_pending_secs: age(
            now,
            src.oldest_pending_at()?
                .as_deref()
                .and_then(crate::capture::parse_at),
        ),
        oldest_unanswered_secs: age(
            now,
            ready
                .iter()
                .filter_map(|b| crate::capture::parse_at(&b.created))
                .min(),
        ),
        unanswered_bytes: ready.iter().map(|b| b.size).sum(),
        last_contact_secs: std::fs::read_to_string(work_dir.join("state").join("contact"))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .map(|t| (now.timestamp() - t).max(0) as u64),
    };
    let lag = health
        .oldest_pending_secs
        .into_iter()
        .chain(health.oldest_unanswered_secs)
        .max();
    if let Some(lag) = lag {
        if lag >= alarm.lag_critical.as_secs() {
            health.raise(
                Level::Critical,
                format!("{lag} s behind, over [alarm] lag_critical"),
            );
        } else if lag >= alarm.lag.as_secs() {
            health.raise(Level::Warning, format!("{lag} s behind, over [alarm] lag"));
        }
    }
    if media.folder.is_none()
        && !ready.is_empty()
        && let Some(quiet) = health.last_contact_secs
    {
        if quiet >= alarm.silence_critical.as_secs() {
            health.raise(
                Level::Critical,
                format!(
                    "the receiver has not answered for {quiet} s, over [alarm] silence_critical"
                ),
            );
        } else if quiet >= alarm.silence.as_secs() {
            health.raise(
                Level::Warning,
                format!("the receiver has not answered for {quiet} s, over [alarm] silence"),
            );
        }
    }
    let open: Vec<u64> = batches
        .iter()
        .filter(|b| {
            b.state == BatchState::Quarantined
                && !work_dir
                    .join("quarantine")
                    .join(format!("{}.acked", b.file))
                    .exists()
        })
        .map(|b| b.seq)
        .collect();
    if !open.is_empty() {
        health.raise(
            Level::Critical,
            format!(
                "quarantined batches {open:?}: repair and `quarantine retry`, or `quarantine ack` the loss"
            ),
        );
    }
    if let Some(r) = &media.receipt {
        if !r.quarantined.is_empty() {
            let seqs: Vec<u64> = r.quarantined.iter().map(|q| q.0).collect();
            health.raise(
                Level::Warning,
                format!(
                    "the newest receipt says the receiver quarantined {seqs:?} (its `quarantine show` has the reason)"
                ),
            );
        }
        if !r.missing.is_empty() {
            health.raise(
                Level::Warning,
                format!(
                    "the newest receipt says the receiver misses {:?} (export --missing --to DIR)",
                    r.missing
                ),
            );
        }
    }
    let halted = crate::halt::read_halt(work_dir);
    if let Some(h) = &halted {
        health.raise(Level::Critical, format!("halted at batch {}", h.seq));
    }
    let requests = src.snapshot_requests()?;
    let mut snapshots = Vec::with_capacity(requests.len());
    for (req, table) in &requests {
        let p = src.snapshot_progress(*req)?;
        snapshots.push(SnapshotStatus {
            table: table.clone(),
            rows_done: p.as_ref().map_or(0, |p| p.rows),
            rows_total: p.as_ref().map_or(0, |p| p.total),
            resumable: p.as_ref().is_none_or(|p| p.key.is_some()),
        });
    }
    let rejected = src.rejected_count()?;
    if rejected > 0 {
        health.raise(
            Level::Warning,
            format!("{rejected} change(s) or snapshot row(s) the target's dialect cannot carry were rejected"),
        );
    }
    Ok(SenderStatus {
        health,
        node: node.to_owned(),
        pending_changes: src.pending_count()?,
        last_seq_cut: src.next_seq()? - 1,
        last_seq_applied: batches
            .iter()
            .filter(|b| b.state == BatchState::Applied)
            .map(|b| b.seq)
            .max()
            .unwrap_or(0),
        last_applied_at: batches
            .iter()
            .filter(|b| b.state == BatchState::Applied)
            .max_by_key(|b| b.seq)
            .map(|b| b.updated.clone()),
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
        queued_snapshots: requests.iter().map(|(_, t)| t.clone()).collect(),
        snapshots,
        last_link_error: gapsync_common::note::read(&work_dir.join("state").join(crate::LINK_NOTE)),
        last_apply_error: batches
            .iter()
            .filter(|b| b.state != BatchState::Applied && b.attempts > 0)
            .max_by(|a, b| a.updated.cmp(&b.updated))
            .map(|b| ApplyFailure {
                seq: b.seq,
                at: b.updated.clone(),
                attempts: b.attempts,
                reason: b.reason.clone().unwrap_or_default(),
            }),
        rejected,
        halted,
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
            "health: {:?}{}\n",
            self.health.level,
            self.health
                .reasons
                .iter()
                .map(|r| format!("\n  {r}"))
                .collect::<String>()
        );
        if let Some(l) = self.health.oldest_pending_secs {
            s += &format!("oldest pending change: {l} s\n");
        }
        if let Some(l) = self.health.oldest_unanswered_secs {
            s += &format!(
                "oldest unanswered batch: {l} s ({} bytes waiting)\n",
                self.health.unanswered_bytes
            );
        }
        if let Some(c) = self.health.last_contact_secs {
            s += &format!("receiver last answered: {c} s ago\n");
        }
        s += &format!(
            "node {}\npending changes: {}\nlast seq cut: {}\nlast seq applied: {}{}\nunanswered batches: {}\n",
            self.node,
            self.pending_changes,
            self.last_seq_cut,
            self.last_seq_applied,
            self.last_applied_at
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default(),
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
        for p in &self.snapshots {
            if p.rows_total == 0 && p.rows_done == 0 {
                s.push_str(&format!("snapshot {}: queued\n", p.table));
            } else {
                s.push_str(&format!(
                    "snapshot {}: {} of {} rows cut ({}%){}\n",
                    p.table,
                    p.rows_done,
                    p.rows_total,
                    p.rows_done * 100 / p.rows_total.max(1),
                    if p.resumable {
                        ""
                    } else {
                        "; starts over if interrupted (its key is not made of integers)"
                    }
                ));
            }
        }
        if let Some(n) = &self.last_link_error {
            s.push_str(&format!(
                "last link error: {}\n",
                n.line(chrono::Utc::now())
            ));
        }
        if let Some(f) = &self.last_apply_error {
            s.push_str(&format!(
                "last failed apply: seq {} at {} (attempt {}): {}\n",
                f.seq, f.at, f.attempts, f.reason
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
