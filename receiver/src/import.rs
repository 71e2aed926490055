//! `gapsync-receiver import DIR`: a medium carried from the inside (`gapsync-sender
//! export`). The manifests are checked against the files first, each problem reported by
//! name (a manifest that is not signed by a trusted key, a file missing, of another size
//! or content, a batch file no valid manifest lists); then what is new is applied in seq
//! order per node through the same verification and ledger as `apply`, up to the first
//! seq the medium does not hold. Nothing is written to the medium (read-only media
//! work), and a second import of the same medium applies nothing and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::apply::Target;
use crate::config::ReceiverConfig;
use crate::*;
use gapsync_common::manifest::Manifest;
use gapsync_common::sign::TrustStore;

/// What an import found and did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// One line per file applied or skipped (from `apply`).
    pub lines: Vec<String>,
    /// Every problem, by name; a non-empty list makes the command fail (after applying
    /// what could be).
    pub problems: Vec<String>,
    /// Batches applied now.
    pub applied: usize,
    /// Batches on the medium that the ledger had already.
    pub already: usize,
    /// Receipts written (`[receipts] dir`).
    pub receipts: Vec<String>,
}

/// Checks and applies the medium at `dir` (see the module docs).
pub fn import_dir(cfg: &ReceiverConfig, dir: &Path) -> Result<ImportReport> {
    let mut r = ImportReport::default();
    let listing = crate::inbox::list(dir).map_err(work_err(dir))?;
    for name in &listing.odd {
        r.problems
            .push(format!("{name}: not a regular file (a symlink?): not read"));
    }
    if listing.manifests.is_empty() {
        r.problems.push(format!(
            "{}: no manifest (gapsync-sender export writes one last: without it the medium may be incomplete); nothing is imported",
            dir.display()
        ));
    }
    let trust = TrustStore::from_config(&cfg.trust)?;
    // (node, seq) -> path of every file a valid manifest vouches for.
    let mut good: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    for mpath in &listing.manifests {
        let mname = crate::applier::file_name(mpath);
        let m = match Manifest::read(mpath).and_then(|m| m.verify(&trust, cfg.insecure).map(|_| m))
        {
            Ok(m) => m,
            Err(e) => {
                r.problems
                    .push(format!("{mname}: {e}: its files are not imported"));
                continue;
            }
        };
        for f in &m.files {
            listed.insert(f.name.clone());
            let path = dir.join(&f.name);
            let Some(found) = listing.files.get(&m.node).and_then(|n| n.get(&f.seq)) else {
                r.problems
                    .push(format!("{}: missing (listed in {mname})", f.name));
                continue;
            };
            if found != &path {
                // Another name of the same seq (.sql vs .sql.zst).
                r.problems.push(format!(
                    "{}: the medium holds {} for seq {} instead (listed in {mname})",
                    f.name,
                    crate::applier::file_name(found),
                    f.seq
                ));
                continue;
            }
            // A regular file no larger than the manifest says, read once for its hash
            // (no FIFO waited on, no sparse giant read).
            let sha = digest_capped(&path, f.size);
            match sha {
                Ok((size, sha)) if size == f.size && sha == f.sha256 => {
                    good.entry(m.node.clone()).or_default().insert(f.seq, path);
                }
                Ok(_) => r.problems.push(format!(
                    "{}: size or sha256 differs from {mname} (damaged or altered): not imported",
                    f.name
                )),
                Err(e) => r.problems.push(format!("{}: cannot read it: {e}", f.name)),
            }
        }
    }
    for (node, files) in &listing.files {
        for path in files.values() {
            let name = crate::applier::file_name(path);
            if !listed.contains(&name) {
                r.problems.push(format!(
                    "{name}: not in any valid manifest of the medium (node {node}): not imported"
                ));
            }
        }
    }
    // What is new, in order, up to the first seq the medium lacks.
    let mut todo = Vec::new();
    let mut missing: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    {
        let mut t = Target::open(&cfg.target, &cfg.target_options())?;
        for (node, files) in &good {
            let mut next = t.next_expected(node)?;
            for (&seq, path) in files {
                if seq < next {
                    r.already += 1;
                } else if seq == next {
                    todo.push(path.clone());
                    next += 1;
                } else {
                    let m = missing.entry(node.clone()).or_default();
                    if !m.contains(&next) {
                        m.push(next);
                    }
                    r.problems.push(format!(
                        "{}: node {node} needs seq {next} first, which is not on this medium: not imported",
                        crate::applier::file_name(path)
                    ));
                }
            }
        }
    }
    if !todo.is_empty() {
        match apply_files(cfg, &todo) {
            Ok(lines) => r.lines = lines,
            // A batch the target refused (quarantined, named in the error) or a target
            // that went away: reported with the rest, the receipts still written.
            Err(e) => r.problems.push(e.to_string()),
        }
        r.applied = r.lines.iter().filter(|l| l.contains(": applied (")).count();
        r.already += r.lines.len() - r.applied;
    }
    if cfg.receipts_dir.is_some() {
        let mut t = Target::open(&cfg.target, &cfg.target_options())?;
        r.receipts = crate::receipts::write_receipts(cfg, &mut t, &missing, &mut BTreeMap::new())?;
    }
    Ok(r)
}

/// Size and SHA-256 (hex) of a medium's file: a regular file of at most `max` bytes.
fn digest_capped(path: &Path, max: u64) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let f = fsx::open_regular_capped(path, max)?;
    let mut r = f.take(max + 1);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((n, hex::encode(h.finalize()))),
            Ok(k) => {
                n += k as u64;
                h.update(&buf[..k]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
