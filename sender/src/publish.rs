//! Links without an answer: publishing to a folder (`[link] dir`, a ferry's inside
//! folder) and exporting to removable media (`export --to DIR`). Both copy batch files
//! durably (temp name, fsync, rename; an existing different file is never replaced) and
//! write a signed manifest ([`gapsync_common::manifest`]) last.
//!
//! With no answer possible, a published batch counts as delivered: its tracking rows
//! are cleared and its file moves to `archive/` (kept `[archive] keep_days`, so it can be
//! published or exported again). `state/manifested` holds the last seq a manifest
//! covers and when it was written; `state/exported` the highest seq exported.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::capture::{BatchRecord, BatchState};
use crate::*;
use gapsync_common::batch;
use gapsync_common::fsx;
use gapsync_common::manifest::{Manifest, ManifestFile};
use tracing::{info, warn};

/// The largest cluster removable media use (exFAT, FAT32): the room check rounds to it.
const CLUSTER: u64 = 64 << 10;

/// What `export` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Files copied to the medium.
    pub copied: Vec<String>,
    /// Files that were on the medium already, with the same content.
    pub present: Vec<String>,
    /// The manifest written last (None: nothing to export).
    pub manifest: Option<String>,
}

/// Why a file cannot go to a folder or medium.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{0} is on the medium already with other content: refusing to overwrite it (use an empty folder, or remove that file)"
    )]
    Conflict(PathBuf),
    #[error(
        "{dir} has {available} bytes free, the export needs {needed}: nothing was written (use a larger medium, or export a smaller range with --from/--to-seq)"
    )]
    NoRoom {
        dir: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("{0}: not a folder (create it, or mount the medium)")]
    NotADir(PathBuf),
    #[error(
        "no archived batch in seq {from}..={to} (archive/ keeps applied and published batches [archive] keep_days)"
    )]
    Nothing { from: u64, to: u64 },
    #[error(
        "seq {0:?} asked for but no longer in archive/ ([archive] keep_days pruned them, or they were never applied here): nothing was written; heal the receiver with `gapsync-sender resync TABLE` instead"
    )]
    NotArchived(Vec<u64>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] gapsync_common::manifest::ManifestError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Size and SHA-256 (hex) of a file's bytes.
fn file_digest(path: &Path) -> Result<(u64, String)> {
    let (size, sha) = batch::sha256_file(path)?;
    Ok((size, hex::encode(sha)))
}

/// Copies `from` to `dir/name` unless a file of the same content is there; Ok(true):
/// copied, Ok(false): present already. A different file under the name is refused.
fn put(from: &Path, dir: &Path, name: &str) -> Result<bool> {
    let to = dir.join(name);
    if std::fs::symlink_metadata(&to).is_ok() {
        let same = std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_file())
            && file_digest(&to).ok() == Some(file_digest(from)?);
        if same {
            return Ok(false);
        }
        return Err(PublishError::Conflict(to).into());
    }
    fsx::copy_new(from, &to).map_err(io_at(&to))?;
    Ok(true)
}

/// Writes `m` into `dir` under its name (temp, fsync, rename), signed when `signer`.
fn write_manifest(dir: &Path, mut m: Manifest, signer: Option<&BatchSigner>) -> Result<String> {
    if let Some(s) = signer {
        m.sign(s);
    }
    let name = m.file_name();
    let path = dir.join(&name);
    let xml = m.to_xml().map_err(PublishError::from)?;
    fsx::write_private_synced(&path, xml.as_bytes()).map_err(io_at(&path))?;
    Ok(name)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sender {
    /// The folder link: publish every ready batch in seq order, each counted delivered
    /// once it is in the folder, then write the manifest if one is due.
    pub(crate) fn publish_ready(&mut self, dir: &Path, stop: &AtomicBool) -> Result<ShipReport> {
        if !dir.is_dir() {
            return Err(PublishError::NotADir(dir.to_owned()).into());
        }
        let mut report = ShipReport::default();
        for rec in self.source.batches(Some(BatchState::Ready))? {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let from = self.dir("outbox").join(&rec.file);
            put(&from, dir, &rec.file)?;
            // Delivered: nothing will answer. The record first, then the move (the
            // outbox recovery finishes a move a crash interrupted).
            self.source.mark_applied(rec.seq)?;
            let dest = self.dir("archive").join(&rec.file);
            std::fs::rename(&from, &dest).map_err(work_err(&dest))?;
            self.metrics.batches_applied.inc();
            self.metrics.sent_bytes.inc_by(rec.size);
            info!(seq = rec.seq, file = %rec.file, dir = %dir.display(), "batch published");
            self.audit("published", &rec, "ok", &dir.display().to_string());
            report.applied.push(rec.seq);
        }
        self.manifest_if_due(dir, !report.applied.is_empty())?;
        Ok(report)
    }

    /// The last seq a manifest covers and when it was written (unix seconds).
    pub fn manifested(&self) -> (u64, u64) {
        let text =
            std::fs::read_to_string(self.dir("state").join("manifested")).unwrap_or_default();
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    /// Writes the manifest of every batch published since the last one, when
    /// `[link] manifest_every` has passed since it (when zero: after a cycle that
    /// published something). Cheap when nothing is due: the service calls it every pass.
    fn manifest_if_due(&mut self, dir: &Path, published_now: bool) -> Result<()> {
        let (last, at) = self.manifested();
        let every = self.cfg.link.manifest_every;
        if every.is_zero() && !published_now {
            return Ok(());
        }
        if !every.is_zero() && unix_now().saturating_sub(at) < every.as_secs() {
            return Ok(());
        }
        let recs: Vec<BatchRecord> = self
            .source
            .batches(Some(BatchState::Applied))?
            .into_iter()
            .filter(|r| r.seq > last)
            .collect();
        let state = self.dir("state").join("manifested");
        let Some(high) = recs.iter().map(|r| r.seq).max() else {
            // Nothing new: the period starts again (no query every pass until then).
            fsx::write_private_synced(&state, format!("{last} {}\n", unix_now()).as_bytes())
                .map_err(work_err(&state))?;
            return Ok(());
        };
        let mut files = Vec::new();
        for r in &recs {
            let path = self.dir("archive").join(&r.file);
            match file_digest(&path) {
                Ok((size, sha256)) => files.push(ManifestFile {
                    seq: r.seq,
                    name: r.file.clone(),
                    size,
                    sha256,
                }),
                // Pruned from the archive before a manifest was due: published all the
                // same; the manifest cannot vouch for it.
                Err(e) => {
                    warn!(seq = r.seq, file = %r.file, error = %e, "published batch no longer in archive/: left out of the manifest")
                }
            }
        }
        if !files.is_empty() {
            let m = Manifest::new(&self.cfg.node, files).map_err(PublishError::from)?;
            let name = write_manifest(dir, m, self.signer.as_ref())?;
            info!(manifest = %name, "manifest written");
        }
        fsx::write_private_synced(&state, format!("{high} {}\n", unix_now()).as_bytes())
            .map_err(work_err(&state))?;
        Ok(())
    }

    /// `export --to DIR`: copies the archived batches of `from..=to` (all when absent;
    /// of them only the seqs in `only` when given) to `dir`, then their manifest. Adds to a medium that holds earlier exports;
    /// refuses, before writing anything, a file of the same name with other content and
    /// a medium without room.
    pub fn export(
        &mut self,
        dir: &Path,
        from: Option<u64>,
        to: Option<u64>,
        only: Option<&[u64]>,
    ) -> Result<ExportReport> {
        if !dir.is_dir() {
            return Err(PublishError::NotADir(dir.to_owned()).into());
        }
        let (lo, hi) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
        let (mut recs, gone): (Vec<BatchRecord>, Vec<BatchRecord>) = self
            .source
            .batches(Some(BatchState::Applied))?
            .into_iter()
            .filter(|r| r.seq >= lo && r.seq <= hi)
            .filter(|r| only.is_none_or(|o| o.contains(&r.seq)))
            .partition(|r| self.dir("archive").join(&r.file).is_file());
        recs.sort_by_key(|r| r.seq);
        // Asked for by seq (a range or `--missing`), a batch no longer archived is named:
        // the medium would silently lack it.
        let explicit = from.is_some() || to.is_some() || only.is_some();
        let mut lacking: Vec<u64> = gone.iter().map(|r| r.seq).collect();
        if let Some(o) = only {
            lacking.extend(o.iter().filter(|s| !recs.iter().any(|r| r.seq == **s)));
        }
        lacking.sort_unstable();
        lacking.dedup();
        if explicit && !lacking.is_empty() {
            return Err(PublishError::NotArchived(lacking).into());
        }
        if recs.is_empty() {
            return Err(PublishError::Nothing { from: lo, to: hi }.into());
        }
        // Everything is checked before anything is written.
        let mut needed = 0u64;
        let mut files = Vec::new();
        let mut todo = Vec::new();
        for r in &recs {
            let src = self.dir("archive").join(&r.file);
            let (size, sha256) = file_digest(&src)?;
            let there = dir.join(&r.file);
            if std::fs::symlink_metadata(&there).is_ok() {
                let same = std::fs::symlink_metadata(&there).is_ok_and(|m| m.is_file())
                    && file_digest(&there).ok().as_ref() == Some(&(size, sha256.clone()));
                if !same {
                    return Err(PublishError::Conflict(there).into());
                }
            } else {
                // Rounded up to 64 KiB: removable media use clusters up to that size.
                needed += size.div_ceil(CLUSTER) * CLUSTER;
                todo.push((src, r.file.clone()));
            }
            files.push(ManifestFile {
                seq: r.seq,
                name: r.file.clone(),
                size,
                sha256,
            });
        }
        // The manifest's own size: a line a file, and a cluster of margin.
        needed += (256 * files.len() as u64).div_ceil(CLUSTER) * CLUSTER + CLUSTER;
        let available = fs4::available_space(dir).map_err(io_at(dir))?;
        if available < needed {
            return Err(PublishError::NoRoom {
                dir: dir.to_owned(),
                available,
                needed,
            }
            .into());
        }
        let mut report = ExportReport::default();
        for (src, name) in todo {
            match put(&src, dir, &name) {
                Ok(true) => report.copied.push(name),
                Ok(false) => report.present.push(name),
                Err(e) => {
                    // A medium that filled up after all (or failed): this export's copies
                    // go again, so no medium is left with files and no manifest.
                    for n in &report.copied {
                        let _ = std::fs::remove_file(dir.join(n));
                    }
                    return Err(e);
                }
            }
        }
        for f in &files {
            if !report.copied.contains(&f.name) && !report.present.contains(&f.name) {
                report.present.push(f.name.clone());
            }
        }
        let high = files.last().map_or(0, |f| f.seq);
        let m = Manifest::new(&self.cfg.node, files).map_err(PublishError::from)?;
        let name = write_manifest(dir, m, self.signer.as_ref())?;
        for r in &recs {
            self.audit("exported", r, "ok", &dir.display().to_string());
        }
        let state = self.dir("state").join("exported");
        let before = self.exported();
        if high > before {
            fsx::write_private_synced(&state, format!("{high}\n").as_bytes())
                .map_err(work_err(&state))?;
        }
        info!(dir = %dir.display(), files = recs.len(), manifest = %name, "exported");
        report.manifest = Some(name);
        Ok(report)
    }

    /// What status shows of the folder link and the exports.
    pub fn media_status(&self) -> crate::status::Media {
        crate::status::Media {
            folder: self.cfg.link.dir.as_ref().map(|d| d.display().to_string()),
            last_seq_manifested: self.manifested().0,
            last_seq_exported: self.exported(),
            receipt: self.receipt_summary(),
        }
    }

    /// The highest seq exported so far (0: none).
    pub fn exported(&self) -> u64 {
        std::fs::read_to_string(self.dir("state").join("exported"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }
}
