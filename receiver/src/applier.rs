//! The applier: one thread that takes, per node, the spooled file whose seq is next,
//! verifies and executes it through one descriptor, and counts failures (first: wait
//! for the resend; second: quarantine). Also the file-level signature check.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::apply::{ApplyError, ApplyOutcome, Target};
use crate::config::ReceiverConfig;
use crate::shared::Outcome;
use crate::*;
use gapsync_common::audit::AuditEvent;
use gapsync_common::batch::{self};
use gapsync_common::fsx;
use gapsync_common::sign::TrustStore;
pub use gapsync_common::stop::sleep_unless;
use tracing::{error, info, warn};

/// How often a running receiver logs its statistics line.
const STATS_EVERY: Duration = Duration::from_secs(300);

impl Receiver {
    /// The applier: apply spooled batches in seq order per node until `stop`.
    pub fn apply_loop(&self, stop: &AtomicBool) {
        let sh = &self.shared;
        let mut target: Option<Target> = None;
        let mut waiting_logged: HashMap<String, u64> = HashMap::new();
        // Consecutive failures to reach the target: logged at the 1st, 2nd, 4th, 8th,
        // ... (a target down for an hour is a handful of lines, not one a second).
        let mut down: u64 = 0;
        let mut stats = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if stats.elapsed() >= STATS_EVERY {
                stats = std::time::Instant::now();
                let m = &sh.metrics;
                info!(
                    received = m.received.get(),
                    applied = m.applied.get(),
                    failed = m.failed.get(),
                    quarantined = m.quarantined.get(),
                    received_bytes = m.received_bytes.get(),
                    "statistics since start"
                );
            }
            let t = match target.as_mut() {
                Some(t) => t,
                None => match sh.open_target() {
                    Ok(mut t) => {
                        if down > 0 {
                            info!(failed_attempts = down, "target available again");
                            down = 0;
                        }
                        // The ledger's next seq of every node it knows, for the seq
                        // window of the connections (they do not read the ledger).
                        if let Ok(nodes) = t.progress() {
                            for n in nodes {
                                let last =
                                    n.quarantined.iter().copied().fold(n.last_applied, u64::max);
                                sh.note_next(&n.node, last + 1);
                            }
                            self.check_ledger_marks(&mut t, &mut waiting_logged);
                        }
                        target.insert(t)
                    }
                    Err(e @ ApplyError::Deterministic(_)) => {
                        // Not a passing outage (a missing target file, a bad URL): the
                        // operator must act; nothing is applied meanwhile.
                        down += 1;
                        sh.note_apply(&format_args!("target cannot be opened: {e}"));
                        if down.is_power_of_two() {
                            error!(alarm = true, error = %e, attempts = down, "target cannot be opened; nothing is applied until it is repaired");
                        }
                        sleep_unless(stop, sh.cfg.retry_interval);
                        continue;
                    }
                    Err(e) => {
                        down += 1;
                        sh.note_apply(&format_args!("target unavailable: {e}"));
                        if down.is_power_of_two() {
                            warn!(error = %e, attempts = down, "target unavailable; retrying (logged at attempts 1, 2, 4, 8, ...)");
                        }
                        sleep_unless(stop, sh.cfg.retry_interval);
                        continue;
                    }
                },
            };
            self.write_metrics_textfile();
            self.write_contacts();
            match self.apply_spooled(t, &mut waiting_logged) {
                Ok(true) => {}
                Ok(false) => sh.wait_for_spool(Duration::from_millis(500)),
                Err(e) => {
                    down += 1;
                    sh.note_apply(&format_args!("target unavailable: {e}"));
                    if down.is_power_of_two() {
                        warn!(error = %e, retry_in = ?sh.cfg.retry_interval, attempts = down, "target unavailable; will retry");
                    }
                    target = None;
                    sleep_unless(stop, sh.cfg.retry_interval);
                }
            }
        }
    }

    /// Compares the target's ledger with the high-water marks: raises a mark the ledger
    /// is ahead of (a manual apply), and returns the nodes whose ledger went backwards
    /// (a replaced or restored target), raising one alarm per node.
    pub(crate) fn check_ledger_marks(
        &self,
        t: &mut Target,
        alarmed: &mut HashMap<String, u64>,
    ) -> Vec<String> {
        let sh = &self.shared;
        let Ok(nodes) = t.progress() else {
            return Vec::new();
        };
        let mut ledger_next = std::collections::BTreeMap::new();
        for n in nodes {
            let last = n.quarantined.iter().copied().fold(n.last_applied, u64::max);
            if last > 0 && sh.mark(&n.node).is_none_or(|m| m < last) {
                sh.raise_mark(&n.node, last);
            }
            ledger_next.insert(n.node, last + 1);
        }
        let marks = sh.marks.lock().map(|m| m.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for (node, mark, have) in crate::marks::regressed(&marks, &ledger_next) {
            regressed_alarm(alarmed, &node, mark, have);
            out.push(node);
        }
        out
    }

    /// One pass over the spool. Ok(true): something was done. Err: transient failure.
    pub(crate) fn apply_spooled(
        &self,
        t: &mut Target,
        waiting_logged: &mut HashMap<String, u64>,
    ) -> std::result::Result<bool, ApplyError> {
        let sh = &self.shared;
        let mut did = false;
        let mut odd = Vec::new();
        let spooled = spooled_files(&sh.spool(), &mut odd);
        for name in odd {
            if waiting_logged.insert(format!("odd:{name}"), 0).is_none() {
                error!(alarm = true, file = %name, "spool entry under a batch name is not a regular file (a symlink planted?): ignored, never followed; its seq waits until it is removed");
            }
        }
        for (node, files) in spooled {
            let next = t.next_expected(&node)?;
            sh.note_next(&node, next);
            // The ledger against its high-water mark (one query per node and pass, the
            // one above; the full check runs when the target is opened).
            match sh.mark(&node) {
                Some(mark) if next.saturating_sub(1) < mark => {
                    regressed_alarm(waiting_logged, &node, mark, next.saturating_sub(1));
                    continue;
                }
                Some(mark) if next.saturating_sub(1) > mark => sh.raise_mark(&node, next - 1),
                None if next > 1 => sh.raise_mark(&node, next - 1),
                _ => {}
            }
            for (&seq, path) in files.range(..next) {
                // Applied or quarantined before: a resent copy.
                let applied = t.applied_sha(&node, seq)?.is_some();
                sh.set(
                    &node,
                    seq,
                    if applied {
                        Outcome::Applied
                    } else {
                        Outcome::Failed
                    },
                );
                // Gone already is as good: the entry is stale either way.
                let _ = fs::remove_file(path);
                did = true;
            }
            match files.get(&next) {
                Some(path) => {
                    self.apply_file(t, &node, next, path)?;
                    did = true;
                }
                None => {
                    if let Some((&first, _)) = files.range(next..).next()
                        && waiting_logged.get(&node) != Some(&first)
                    {
                        warn!(%node, waiting = first, missing = next, "batch waits for an earlier seq that has not arrived");
                        waiting_logged.insert(node.clone(), first);
                    }
                }
            }
        }
        Ok(did)
    }

    pub(crate) fn apply_file(
        &self,
        t: &mut Target,
        node: &str,
        seq: u64,
        path: &Path,
    ) -> std::result::Result<(), ApplyError> {
        let sh = &self.shared;
        let name = file_name(path);
        // One descriptor, opened without following a symlink, for verification and
        // execution: what is verified is what runs, whatever happens to the name.
        let mut input = match fsx::open_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ApplyError::unavailable(format!("opening {name}: {e}"))),
        };
        let size = input.metadata().map(|m| m.len()).unwrap_or(0);
        let checked = input
            .try_clone()
            .map_err(|e| batch::BatchError::Io {
                path: path.to_owned(),
                source: e,
            })
            .and_then(|f| batch::verify_open_batch(f, path, &sh.limits));
        let verified = match checked {
            Ok(v) => v,
            Err(e) => {
                let detail = e.to_string();
                warn!(%node, seq, file = %name, reason = %detail, "batch refused: verification failed, nothing executed");
                sh.audit(
                    AuditEvent::new("rejected", node, seq, &name, size, "")
                        .verdict("rejected", &detail),
                );
                return self.failed(t, node, seq, path, &format!("verification failed: {e}"));
            }
        };
        let sha = hex::encode(verified.content_sha256);
        let key = match authenticate(&sh.cfg, &sh.trust, Some(node), &verified) {
            Ok(k) => k.unwrap_or_default(),
            Err(reason) => {
                let reason = reason.to_string();
                warn!(%node, seq, file = %name, %reason, "batch rejected: nothing executed");
                sh.audit(
                    AuditEvent::new("rejected", node, seq, &name, size, &sha)
                        .key(claimed_key(&verified))
                        .verdict("rejected", &reason),
                );
                return self.failed(t, node, seq, path, &reason);
            }
        };
        sh.audit(AuditEvent::new("verified", node, seq, &name, size, &sha).key(&key));
        input
            .seek(SeekFrom::Start(0))
            .map_err(|e| ApplyError::unavailable(format!("rewinding {name}: {e}")))?;
        // One applier at a time: an `apply` or `import` by hand runs to its end first.
        let lock = crate::applylock::ApplyLock::acquire(&sh.cfg.work_dir).map_err(|e| {
            ApplyError::unavailable(format!("state/apply.lock cannot be taken: {e}"))
        })?;
        let started = std::time::Instant::now();
        let applied = t.apply_open(input, path, node, seq, &sha, &sh.limits);
        drop(lock);
        sh.metrics
            .apply_millis
            .inc_by(started.elapsed().as_millis() as u64);
        match applied {
            Ok(outcome) => {
                sh.metrics.applied.inc();
                sh.metrics
                    .last_applied_seq
                    .get_or_create(&gapsync_common::metrics::node(node))
                    .set(seq as i64);
                let n = match outcome {
                    ApplyOutcome::Applied { statements } => statements,
                    ApplyOutcome::AlreadyApplied => 0,
                };
                info!(%node, seq, file = %name, statements = n, "batch applied");
                let detail = format!("{n} statements");
                sh.audit(
                    AuditEvent::new("applied", node, seq, &name, size, &sha)
                        .key(&key)
                        .verdict("ok", &detail),
                );
                // Applied and in the ledger: a file left behind is answered from the
                // ledger and removed on the next pass.
                let _ = fs::remove_file(path);
                let _ = fs::remove_file(marker(path));
                sh.set(node, seq, Outcome::Applied);
                sh.note_next(node, seq + 1);
                sh.raise_mark(node, seq);
                Ok(())
            }
            Err(ApplyError::Deterministic(e)) => self.failed(t, node, seq, path, &e.described()),
            Err(e) => Err(e),
        }
    }

    /// A deterministic failure: first time, mark and wait for the resend; second time,
    /// quarantine.
    pub(crate) fn failed(
        &self,
        t: &mut Target,
        node: &str,
        seq: u64,
        path: &Path,
        reason: &str,
    ) -> std::result::Result<(), ApplyError> {
        let sh = &self.shared;
        let name = file_name(path);
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mark = marker(path);
        let io = |e: std::io::Error| ApplyError::unavailable(format!("spool: {e}"));
        // Only a regular file this receiver wrote counts as a first failure (a symlink
        // or anything else planted under the marker's name does not).
        if fs::symlink_metadata(&mark).is_ok_and(|m| m.is_file()) {
            let qdir = sh.quarantine_dir();
            let dest = qdir.join(&name);
            fsx::move_file(path, &dest).map_err(io)?;
            fsx::write_private_synced(
                &qdir.join(format!("{name}.reason")),
                format!("{reason}\n").as_bytes(),
            )
            .map_err(io)?;
            let sha = batch::sha256_file(&dest)
                .map(|(_, h)| hex::encode(h))
                .unwrap_or_default();
            t.record_quarantine(node, seq, &sha, &name, reason)?;
            sh.raise_mark(node, seq);
            // The ledger has the quarantine row now; a marker left over is inert.
            let _ = fs::remove_file(&mark);
            sh.metrics.failed.inc();
            sh.metrics.quarantined.inc();
            error!(alarm = true, %node, seq, file = %name, reason, "batch failed twice: dropped to quarantine");
            sh.note_apply(&format_args!(
                "node {node} seq {seq} failed twice, quarantined: {reason}"
            ));
            sh.audit(
                AuditEvent::new("dropped", node, seq, &name, size, &sha)
                    .verdict("quarantined", reason),
            );
        } else {
            fsx::write_private_synced(&mark, reason.as_bytes()).map_err(io)?;
            fs::remove_file(path).map_err(io)?;
            sh.metrics.failed.inc();
            warn!(%node, seq, file = %name, reason, "batch failed; waiting for the sender to send it once more");
            sh.note_apply(&format_args!(
                "node {node} seq {seq} failed (the sender sends it once more): {reason}"
            ));
            sh.audit(
                AuditEvent::new("failed", node, seq, &name, size, "").verdict("failed", reason),
            );
        }
        sh.set(node, seq, Outcome::Failed);
        Ok(())
    }
}

/// The signature check of a verified batch (name, header and sha256 already checked),
/// done before any statement runs. `expected_node`: the node the batch must be of (the
/// connection's HELLO node, via the spooled file name). Ok(Some(key id)): signed by a
/// trusted key; Ok(None): unsigned or unverifiable and accepted because of `insecure =
/// true`. Err: why it is rejected.
///
/// Every batch of a node that has `[[trust]]` keys must carry a valid signature by one
/// of them, with or without `insecure`. `insecure = true` only lets batches of nodes
/// *without* keys through unsigned.
pub fn authenticate(
    cfg: &ReceiverConfig,
    trust: &TrustStore,
    expected_node: Option<&str>,
    v: &batch::VerifiedBatch,
) -> std::result::Result<Option<String>, Unauthentic> {
    let node = &v.header.node;
    if let Some(want) = expected_node
        && want != node
    {
        return Err(Unauthentic::WrongNode {
            says: node.clone(),
            from: want.to_owned(),
        });
    }
    if cfg.insecure && !trust.has_node(node) {
        return Ok(None);
    }
    trust
        .verify(
            node,
            v.header.seq,
            &v.name,
            &v.content_sha256,
            v.signature.as_deref(),
        )
        .map(Some)
        .map_err(Unauthentic::Signature)
}

/// Why a verified batch is not taken as its node's ([`authenticate`]).
#[derive(Debug, thiserror::Error)]
pub enum Unauthentic {
    #[error("wrong node: the batch header says node {says}, but it came from node {from}")]
    WrongNode { says: String, from: String },
    #[error("signature check failed: {0}")]
    Signature(gapsync_common::sign::SignError),
}

/// The key id a batch's signature line claims ("" when unsigned), for the audit record
/// of a rejection.
pub(crate) fn claimed_key(v: &batch::VerifiedBatch) -> &str {
    let id = v
        .signature
        .as_deref()
        .and_then(|s| s.split(' ').next())
        .unwrap_or("");
    match id.char_indices().nth(64) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn marker(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".fail1");
    PathBuf::from(s)
}

/// The alarm of a node whose ledger went backwards (once per node and ledger state).
fn regressed_alarm(alarmed: &mut HashMap<String, u64>, node: &str, mark: u64, have: u64) {
    if alarmed.insert(format!("regressed:{node}"), have) != Some(have) {
        error!(alarm = true, %node, mark, ledger = have, "the target's ledger went backwards (replaced or restored target?): it records seq {have} for this node, this receiver saw seq {mark}; nothing of the node is applied: restore the target, or accept the new one with `gapsync-receiver accept-ledger {node}` (receiver stopped) and resync its tables from the sender");
    }
}

/// Spooled final files by node and seq. Entries under a batch name that are not regular
/// files are left out and named in `odd` (the caller warns once per name).
pub(crate) fn spooled_files(
    spool: &Path,
    odd: &mut Vec<String>,
) -> BTreeMap<String, BTreeMap<u64, PathBuf>> {
    let mut out: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir(spool) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok((node, seq, _)) = batch::parse_batch_file_name(&name) {
            // Only regular files: a symlink (or anything else) under a batch name was
            // not put there by this receiver and is never followed.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                odd.push(name);
                continue;
            }
            out.entry(node).or_default().insert(seq, e.path());
        }
    }
    out
}
