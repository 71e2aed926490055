//! The folder link (`[link] dir`): batch files a ferry (or an operator) puts into an
//! inbox folder, with no answer going back.
//!
//! The inbox is hostile input like the TCP port: whoever can write into the folder can
//! put anything there. So a file is taken only under a final batch name (never a dot
//! name, a temp name or a symlink), copied into this receiver's private spool (its
//! `.inbox/` staging folder), and verified there (header, SHA-256, signature by a trusted key of its
//! node) before it takes its batch name in the spool. From there the applier does what
//! it does for the TCP link: seq order per node, one descriptor verified and executed,
//! a deterministic failure retried once (the inbox copy is taken again) and quarantined
//! after the second. A file that fails verification never reaches the spool and never
//! counts as a failure: it is reported (an alarm once per file) and left where it is.
//!
//! Only seqs from the node's next one up to [`AHEAD`] later are copied (a far-future
//! seq waits in the inbox, not in the spool). A file whose seq the ledger has settled
//! (applied or quarantined) moves to `done/` in the inbox; on a read-only folder it
//! stays. Manifests (`manifest-*.xml`) are verified too: a valid one names seqs that
//! must come, so a missing last file is seen as well as a hole; settled, it moves to
//! `done/`.
//!
//! A gap (the node's next seq missing while later seqs wait, or a manifest names it)
//! older than `[link] gap_alarm` is an alarm, shown by `status` with its age and a
//! non-zero exit.
//!
//! The folder is watched (notify, debounced) and rescanned in full at start, after
//! every event (an overflow included), and every `[link] rescan`: inotify is not fully
//! reliable, and network file systems send no events at all.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::applier::{authenticate, file_name};
use crate::apply::{ApplyError, Target};
use crate::*;
use gapsync_common::audit::AuditEvent;
use gapsync_common::batch;
use gapsync_common::fsx;
use gapsync_common::manifest::{Manifest, parse_manifest_name};
use gapsync_common::stop::sleep_unless;
use tracing::{error, info, warn};

/// How many seqs past a node's next one are copied into the spool at a time.
pub const AHEAD: u64 = 64;

/// The spool's subfolder where an inbox file is copied and verified under its own
/// name (the name is part of what its signature covers) before it takes that name in
/// the spool; emptied at start.
pub(crate) const STAGING_DIR: &str = ".inbox";

/// What an inbox holds: batch files by node and seq, and manifest files.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: BTreeMap<String, BTreeMap<u64, PathBuf>>,
    pub manifests: Vec<PathBuf>,
    /// Names that look like batches or manifests but are not regular files.
    pub odd: Vec<String>,
}

/// Lists `dir`: regular files under final batch or manifest names only.
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::default();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let batch_name = batch::parse_batch_file_name(&name);
        let manifest_name = parse_manifest_name(&name).is_ok();
        if batch_name.is_err() && !manifest_name {
            continue;
        }
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            out.odd.push(name);
            continue;
        }
        match batch_name {
            Ok((node, seq, _)) => {
                out.files.entry(node).or_default().insert(seq, e.path());
            }
            Err(_) => out.manifests.push(e.path()),
        }
    }
    out.manifests.sort();
    Ok(out)
}

/// A node waiting for a seq that has not arrived.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub node: String,
    /// The seq the node needs next.
    pub missing: u64,
    /// The first seq that waits behind it (None: only a manifest names later seqs).
    pub waiting: Option<u64>,
    /// Seconds since the gap was first visible (the oldest waiting file or manifest).
    pub age_secs: u64,
    /// Older than `[link] gap_alarm`.
    pub alarm: bool,
}

fn age(path: &Path, now: SystemTime) -> u64 {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .map_or(0, |d| d.as_secs())
}

/// The gaps of an inbox listing: per node, the next seq (`next`) missing while later
/// files wait, or while a valid manifest names it (`manifests`: node, seqs, the
/// manifest's path).
pub fn gaps(
    listing: &Listing,
    manifests: &[(String, Vec<u64>, PathBuf)],
    next: &mut dyn FnMut(&str) -> std::result::Result<u64, ApplyError>,
    gap_alarm: Duration,
) -> std::result::Result<Vec<Gap>, ApplyError> {
    let now = SystemTime::now();
    let mut nodes: Vec<&String> = listing.files.keys().collect();
    for (n, _, _) in manifests {
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        let want = next(node)?;
        let files = listing.files.get(node);
        if files.is_some_and(|f| f.contains_key(&want)) {
            continue;
        }
        let waiting = files.and_then(|f| f.range(want..).next().map(|(s, p)| (*s, p)));
        let named = manifests
            .iter()
            .filter(|(n, seqs, _)| n == node && seqs.iter().any(|s| *s >= want))
            .map(|(_, _, p)| age(p, now))
            .max();
        let from_file = waiting.map(|(_, p)| age(p, now));
        let Some(age_secs) = from_file.into_iter().chain(named).max() else {
            continue;
        };
        out.push(Gap {
            node: node.clone(),
            missing: want,
            waiting: waiting.map(|(s, _)| s),
            age_secs,
            alarm: age_secs >= gap_alarm.as_secs(),
        });
    }
    Ok(out)
}

/// What the inbox thread remembers between scans (alarms are raised once).
#[derive(Debug, Default)]
struct Memory {
    refused: HashSet<(String, u64, u64)>,
    alarmed_gaps: HashSet<(String, u64)>,
    read_only: bool,
    /// What the last receipt of each node said (`receipts::write_receipts`).
    receipts: BTreeMap<String, String>,
}

impl Receiver {
    /// The folder link's thread: watch `dir`, scan it at start, after every event and
    /// every `[link] rescan`, until `stop`.
    pub fn inbox_loop(&self, dir: &Path, stop: &AtomicBool) {
        let sh = &self.shared;
        let (tx, rx) = mpsc::channel();
        // Events only wake the scan; what the scan does never depends on them.
        let watcher = notify_debouncer_full::new_debouncer(
            Duration::from_millis(500),
            None,
            move |ev: notify_debouncer_full::DebounceEventResult| {
                // A full channel or a gone receiver: the next rescan finds the file.
                let _ = tx.send(ev.is_ok());
            },
        )
        .and_then(|mut d| {
            d.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Ok(d)
        });
        match &watcher {
            Ok(_) => {
                info!(dir = %dir.display(), rescan = ?sh.cfg.link.rescan, "watching the inbox")
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, rescan = ?sh.cfg.link.rescan, "cannot watch the inbox (a network file system?): scanning it every [link] rescan only")
            }
        }
        let mut target: Option<Target> = None;
        let mut memory = Memory::default();
        while !stop.load(Ordering::SeqCst) {
            let t = match target.as_mut() {
                Some(t) => t,
                None => match sh.open_target() {
                    Ok(t) => target.insert(t),
                    Err(e) => {
                        warn!(error = %e, "inbox: target unavailable; retrying");
                        sleep_unless(stop, sh.cfg.retry_interval);
                        continue;
                    }
                },
            };
            if let Err(e) = self.scan_inbox(dir, t, &mut memory) {
                warn!(error = %e, "inbox scan failed; retrying");
                target = None;
                sleep_unless(stop, sh.cfg.retry_interval);
                continue;
            }
            // Wait for an event or the rescan period, in short steps so that `stop`
            // is seen.
            let until = std::time::Instant::now() + sh.cfg.link.rescan;
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(_) => {
                        // Coalesce a burst, then scan.
                        while rx.try_recv().is_ok() {}
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        sleep_unless(stop, Duration::from_millis(200));
                    }
                }
            }
        }
        drop(watcher);
    }

    /// One scan of the inbox (see the module docs). Err: the target is unavailable.
    fn scan_inbox(
        &self,
        dir: &Path,
        t: &mut Target,
        memory: &mut Memory,
    ) -> std::result::Result<(), ApplyError> {
        let sh = &self.shared;
        let listing = match list(dir) {
            Ok(l) => l,
            Err(e) => {
                return Err(ApplyError::unavailable(format!(
                    "reading the inbox {}: {e}",
                    dir.display()
                )));
            }
        };
        for name in &listing.odd {
            if memory.refused.insert((name.clone(), 0, 0)) {
                error!(alarm = true, file = %name, "inbox entry under a batch or manifest name is not a regular file (a symlink planted?): ignored, never followed");
            }
        }
        // Bounded memory of refused files (an inbox written to by a stranger): past the
        // cap the alarms of files still there are raised once more.
        if memory.refused.len() > 10_000 {
            memory.refused.clear();
        }
        let mut woke = false;
        for (node, files) in &listing.files {
            let next = t.next_expected(node)?;
            for (&seq, path) in files {
                if seq < next {
                    self.settle(dir, path, memory);
                } else if seq < next.saturating_add(AHEAD) {
                    woke |= self.ingest(node, seq, path, memory);
                }
            }
        }
        if woke {
            sh.wake_applier();
        }
        // Manifests: verified; a valid one's seqs count for gaps; settled ones move.
        let mut valid = Vec::new();
        for path in &listing.manifests {
            let name = file_name(path);
            match Manifest::read(path).and_then(|m| m.verify(&sh.trust, sh.cfg.insecure).map(|_| m))
            {
                Ok(m) => {
                    if m.last < t.next_expected(&m.node)? {
                        self.settle(dir, path, memory);
                    } else {
                        valid.push((
                            m.node.clone(),
                            m.files.iter().map(|f| f.seq).collect(),
                            path.clone(),
                        ));
                    }
                }
                Err(e) => {
                    let key = stamp(path, &name);
                    if memory.refused.insert(key) {
                        error!(alarm = true, manifest = %name, error = %e, "inbox manifest refused: its files are taken only on their own signatures");
                    }
                }
            }
        }
        // Gaps are judged on what can be taken: a refused file (forged, damaged) does
        // not count as there, and a node with no trust entry (unless `insecure`) is not
        // watched for gaps (a planted name cannot raise an alarm).
        let mut judged = Listing {
            files: listing.files.clone(),
            ..Listing::default()
        };
        judged
            .files
            .retain(|node, _| sh.cfg.insecure || sh.trust.has_node(node));
        for files in judged.files.values_mut() {
            files.retain(|_, p| !memory.refused.contains(&stamp(p, &file_name(p))));
        }
        let gaps = gaps(
            &judged,
            &valid,
            &mut |n| t.next_expected(n),
            sh.cfg.link.gap_alarm,
        )?;
        for g in gaps.iter().filter(|g| g.alarm) {
            if memory.alarmed_gaps.insert((g.node.clone(), g.missing)) {
                error!(alarm = true, node = %g.node, missing = g.missing, waiting = ?g.waiting, age_s = g.age_secs, "inbox gap: the node's next batch has not arrived (check the ferry, or bring it on a medium: gapsync-sender export --from SEQ)");
            }
        }
        let mut missing: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for g in &gaps {
            missing.entry(g.node.clone()).or_default().push(g.missing);
        }
        if let Err(e) = crate::receipts::write_receipts(&sh.cfg, t, &missing, &mut memory.receipts)
        {
            warn!(error = %e, "cannot write the receipts; trying again at the next scan");
        }
        Ok(())
    }

    /// Copies an inbox file into the spool under a staging name, verifies the copy and
    /// gives it its batch name. true: a file was spooled.
    fn ingest(&self, node: &str, seq: u64, path: &Path, memory: &mut Memory) -> bool {
        let sh = &self.shared;
        let name = file_name(path);
        let spool = sh.spool();
        let dest = spool.join(&name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return false; // spooled already, the applier has it
        }
        let key = stamp(path, &name);
        if memory.refused.contains(&key) {
            return false; // refused before, unchanged since
        }
        let size = std::fs::symlink_metadata(path).map_or(0, |m| m.len());
        if size > sh.cfg.limits.max_batch_bytes {
            memory.refused.insert(key);
            error!(alarm = true, %node, seq, file = %name, size, max = sh.cfg.limits.max_batch_bytes, "inbox file larger than [limits] max_batch_bytes: not taken");
            return false;
        }
        let stage_dir = spool.join(STAGING_DIR);
        let staging = stage_dir.join(&name);
        // A staging file left by an interrupted scan is replaced (gone is as good).
        let _ = std::fs::remove_file(&staging);
        let copied = fsx::private_dir(&stage_dir)
            .map_err(std::io::Error::from)
            .and_then(|()| fsx::copy_new_capped(path, &staging, sh.cfg.limits.max_batch_bytes));
        if let Err(e) = copied {
            warn!(%node, seq, file = %name, error = %e, "cannot copy the inbox file into the spool; trying again at the next scan");
            return false;
        }
        let verdict = batch::verify_batch(&staging, &sh.limits)
            .map_err(|e| format!("verification failed: {e}"))
            .and_then(|v| {
                authenticate(&sh.cfg, &sh.trust, Some(node), &v)
                    .map(|k| (v, k))
                    .map_err(|e| e.to_string())
            });
        match verdict {
            Ok((v, key_id)) if v.header.seq == seq => {
                if let Err(e) =
                    std::fs::rename(&staging, &dest).and_then(|()| fsx::sync_dir(&spool))
                {
                    warn!(%node, seq, file = %name, error = %e, "cannot spool the inbox file; trying again at the next scan");
                    let _ = std::fs::remove_file(&staging);
                    return false;
                }
                let sha = hex::encode(v.content_sha256);
                sh.audit(
                    AuditEvent::new("received", node, seq, &name, size, &sha)
                        .key(key_id.as_deref().unwrap_or(""))
                        .verdict("ok", "inbox"),
                );
                sh.metrics.received.inc();
                sh.metrics.received_bytes.inc_by(size);
                sh.metrics.contact(node);
                info!(%node, seq, file = %name, "inbox file verified and spooled");
                true
            }
            other => {
                // Never spooled, never counted as a failure: a forged or damaged file
                // cannot make a genuine seq fail.
                let _ = std::fs::remove_file(&staging);
                let reason = match other {
                    Err(r) => r,
                    Ok((v, _)) => format!("its header says seq {}", v.header.seq),
                };
                memory.refused.insert(key);
                error!(alarm = true, %node, seq, file = %name, %reason, "inbox file refused: nothing of it runs; it stays in the inbox (remove it; the genuine file is taken when it arrives)");
                sh.audit(
                    AuditEvent::new("rejected", node, seq, &name, size, "")
                        .verdict("rejected", &format!("inbox: {reason}")),
                );
                false
            }
        }
    }

    /// Moves a settled inbox file (its seq applied or quarantined, or a manifest whose
    /// seqs all are) to `done/`; on a read-only folder it stays.
    fn settle(&self, dir: &Path, path: &Path, memory: &mut Memory) {
        if memory.read_only {
            return;
        }
        let done = dir.join("done");
        let moved = fsx::private_dir(&done)
            .map_err(std::io::Error::from)
            .and_then(|()| std::fs::rename(path, done.join(file_name(path))));
        match moved {
            Ok(()) => {}
            // Gone meanwhile (the ferry or an operator took it): nothing to settle.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A read-only folder (a medium): processed files stay; not tried again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                memory.read_only = true;
                warn!(dir = %dir.display(), error = %e, "cannot move processed inbox files to done/ (a read-only folder?): they stay; the ledger knows they are applied");
            }
            Err(e) => {
                warn!(dir = %dir.display(), file = %file_name(path), error = %e, "cannot move a processed inbox file to done/; trying again at the next scan");
            }
        }
    }
}

/// A file's identity for "refused before": name, size and modification time.
fn stamp(path: &Path, name: &str) -> (String, u64, u64) {
    let m = std::fs::symlink_metadata(path).ok();
    let size = m.as_ref().map_or(0, |m| m.len());
    let mtime = m
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (name.to_owned(), size, mtime)
}
