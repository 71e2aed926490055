//! `gapsync-receiver apply FILE...`: manual apply (media transfer), through the same
//! verification and ledger.

use std::fs::{self};
use std::path::PathBuf;

use crate::applier::file_name;
use crate::apply::{ApplyOutcome, Target};
use crate::config::ReceiverConfig;
use crate::*;
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::{self};
use gapsync_common::sign::TrustStore;
use tracing::{error, warn};

/// `gapsync-receiver apply FILE...`: verify and apply batch files by hand, through the
/// same ledger (exactly once), in seq order per node. Returns one line per file.
///
/// Every file is verified first (name, header, sha256, signature, not a replay of an
/// applied seq with different content); if any is rejected, nothing is executed, the
/// rejection is audited and returned as [`ReceiverError::Rejected`] naming the reason.
pub fn apply_files(cfg: &ReceiverConfig, files: &[PathBuf]) -> Result<Vec<String>> {
    // Held to the end: the running service applies nothing meanwhile (on a server
    // target nothing else would keep the two from racing for a seq), and its start
    // leaves the staging folder alone.
    let _lock =
        crate::applylock::ApplyLock::acquire(&cfg.work_dir).map_err(|e| ReceiverError::Work {
            path: cfg.work_dir.join("state").join("apply.lock"),
            source: e,
        })?;
    // Every file is first copied into a private staging folder (a regular file, no
    // symlink followed, no FIFO waited on, at most [limits] max_batch_bytes): what is
    // verified and what runs is that copy, whatever happens to the original on a medium
    // or a share meanwhile.
    let staging = cfg.work_dir.join("spool").join(STAGING_DIR);
    fsx::private_dir(&staging).map_err(|e| ReceiverError::Work {
        path: staging.clone(),
        source: e.into_io(),
    })?;
    let mut staged = Vec::with_capacity(files.len());
    let mut cleanup = Staged(Vec::new());
    for f in files {
        let name = file_name(f);
        batch::parse_batch_file_name(&name)?;
        let to = staging.join(&name);
        // Left by an interrupted earlier run: replaced (gone is as good).
        let _ = fs::remove_file(&to);
        fsx::copy_new_capped(f, &to, cfg.limits.max_batch_bytes).map_err(work_err(f))?;
        cleanup.0.push(to.clone());
        staged.push(to);
    }
    apply_staged(cfg, &staged)
}

/// Staged copies, removed when the apply is over (whatever its outcome).
struct Staged(Vec<PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        for p in &self.0 {
            // A copy left behind is removed at the next start of the receiver.
            let _ = fs::remove_file(p);
        }
    }
}

/// The spool's subfolder `apply` and `import` stage their files in (emptied at start).
pub(crate) const STAGING_DIR: &str = ".manual";

fn apply_staged(cfg: &ReceiverConfig, files: &[PathBuf]) -> Result<Vec<String>> {
    let limits = cfg.limits.read.clone();
    let trust = TrustStore::from_config(&cfg.trust)?;
    let audit = Audit::new(&cfg.work_dir, "receiver");
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    let reject = |name: &str, node: &str, seq: u64, size: u64, sha: &str, reason: String| {
        warn!(%node, seq, file = %name, %reason, "batch rejected: nothing executed");
        if let Err(e) = audit.record(
            &AuditEvent::new("rejected", node, seq, name, size, sha).verdict("rejected", &reason),
        ) {
            error!(error = %e, "cannot write the audit record");
        }
        ReceiverError::Rejected {
            name: name.to_owned(),
            reason,
        }
    };
    let mut sorted: Vec<(String, u64, PathBuf, String, u64, String)> = Vec::new();
    // On a terminal: verified, then applied, file by file.
    let bar = gapsync_common::progress::bar("verifying", files.len() as u64, "files");
    for f in files {
        bar.inc(1);
        let name = file_name(f);
        let size = fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let (node, seq, _) = batch::parse_batch_file_name(&name)?;
        let v = match batch::verify_batch(f, &limits) {
            Ok(v) => v,
            Err(e) => {
                return Err(reject(
                    &name,
                    &node,
                    seq,
                    size,
                    "",
                    format!("verification failed: {e}"),
                ));
            }
        };
        let sha = hex::encode(v.content_sha256);
        let key = match authenticate(cfg, &trust, Some(&node), &v) {
            Ok(k) => k.unwrap_or_default(),
            Err(reason) => {
                return Err(reject(&name, &node, seq, size, &sha, reason.to_string()));
            }
        };
        if let Some(prev) = t.applied_sha(&node, seq)?
            && prev != sha
        {
            let reason = format!(
                "replayed: seq {seq} of node {node} was already applied with different content (ledger sha256 {prev}, this file {sha})"
            );
            return Err(reject(&name, &node, seq, size, &sha, reason));
        }
        sorted.push((node, seq, f.clone(), sha, size, key));
    }
    sorted.sort();
    bar.finish_and_clear();
    let bar = gapsync_common::progress::bar("applying", sorted.len() as u64, "files");
    let mut out = Vec::new();
    for (node, seq, path, sha, size, key) in sorted {
        bar.inc(1);
        let name = file_name(&path);
        let next = t.next_expected(&node)?;
        if seq < next {
            if t.applied_sha(&node, seq)?.is_some() {
                out.push(format!("{name}: already applied, skipped"));
                continue;
            }
            return Err(ReceiverError::Order(format!(
                "{name}: seq {seq} of node {node} is quarantined"
            )));
        }
        if seq > next {
            return Err(ReceiverError::Order(format!(
                "{name}: node {node} needs seq {next} first (apply the missing batches, in order)"
            )));
        }
        let ev = |event: &str, verdict: &str, detail: &str| {
            let recorded = audit.record(&AuditEvent {
                event,
                node: &node,
                seq,
                file: &name,
                size,
                sha256: &sha,
                key_id: &key,
                verdict,
                detail,
            });
            if let Err(e) = recorded {
                error!(error = %e, "cannot write the audit record");
            }
        };
        match t.apply(&path, &node, seq, &sha, &limits) {
            Ok(ApplyOutcome::Applied { statements }) => {
                ev("applied", "ok", "by hand");
                out.push(format!("{name}: applied ({statements} statements)"));
            }
            Ok(ApplyOutcome::AlreadyApplied) => {
                out.push(format!("{name}: already applied, skipped"))
            }
            Err(e @ ApplyError::Deterministic(_)) => {
                // A verified batch that cannot apply: quarantined at once (the operator
                // ran it; there is no second attempt to wait for), so the node's later
                // files can go on; its tables are healed with `resync`.
                let reason = e.db().described();
                let kept = quarantine_copy(&cfg.work_dir, &path, &name, &reason);
                t.record_quarantine(&node, seq, &sha, &name, &reason)?;
                ev("dropped", "quarantined", &reason);
                error!(alarm = true, %node, seq, file = %name, %reason, "batch applied by hand failed: quarantined");
                let kept = match kept {
                    Ok(()) => "a copy and the reason are in quarantine/".to_owned(),
                    Err(e) => format!("its copy could not be kept in quarantine/: {e}"),
                };
                return Err(ReceiverError::Order(format!(
                    "{name}: {e}; quarantined ({kept}): the node's next files apply after it; heal its tables with `gapsync-sender resync TABLE`"
                )));
            }
            Err(e) => {
                ev("failed", "failed", &e.to_string());
                return Err(ReceiverError::Order(format!(
                    "{name}: {e} (nothing applied, nothing counted: run it again once the target is back)"
                )));
            }
        }
    }
    Ok(out)
}

/// Copies a hand-applied file that failed into `quarantine/` (private, never through a
/// symlink) with its `.reason`; the operator's own file stays where it was.
fn quarantine_copy(work_dir: &Path, from: &Path, name: &str, reason: &str) -> std::io::Result<()> {
    let qdir = work_dir.join("quarantine");
    fsx::private_dir(&qdir).map_err(std::io::Error::from)?;
    let dest = qdir.join(name);
    if fs::symlink_metadata(&dest).is_err() {
        let mut src = fsx::open_nofollow(from)?;
        let mut out = fsx::create_private(&dest)?;
        std::io::copy(&mut src, &mut out)?;
        out.sync_all()?;
    }
    fsx::write_private_synced(
        &qdir.join(format!("{name}.reason")),
        format!("{reason}\n").as_bytes(),
    )
}
