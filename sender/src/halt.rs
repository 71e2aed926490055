//! The halt record: with `[batch] on_second_failure = "halt"`, a batch quarantined after
//! two failed applies stops the node, and it stays stopped across restarts (a service
//! manager restarting it must not ship the next batch past the missing one) until an
//! operator has repaired the cause and run `gapsync-sender resume`.
//!
//! `state/halted` holds three lines, `seq <n>`, `file <name>`, `since <UTC time>`,
//! written durably (0600, never through a symlink). `run` and `once` refuse to start
//! while it exists ([`SenderError::StillHalted`], exit status 3, which the shipped unit
//! does not restart on); `status` shows it; `resume` removes it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::*;

/// Where the halt record lives in the work directory.
pub fn halt_path(work_dir: &Path) -> PathBuf {
    work_dir.join("state").join("halted")
}

/// A halted node: the batch that stopped it and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    pub seq: u64,
    pub file: String,
    pub since: String,
}

impl Halt {
    fn text(&self) -> String {
        format!(
            "seq {}\nfile {}\nsince {}\n",
            self.seq, self.file, self.since
        )
    }

    fn parse(text: &str) -> Option<Halt> {
        let mut seq = None;
        let mut file = None;
        let mut since = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("seq", v)) => seq = v.parse().ok(),
                Some(("file", v)) => file = Some(v.to_owned()),
                Some(("since", v)) => since = Some(v.to_owned()),
                _ => {}
            }
        }
        Some(Halt {
            seq: seq?,
            file: file.unwrap_or_default(),
            since: since.unwrap_or_default(),
        })
    }
}

/// The halt record of a work directory, if the node is halted. A record that cannot
/// be read or parsed still means "halted" (seq 0): a damaged record must not release
/// the node.
pub fn read_halt(work_dir: &Path) -> Option<Halt> {
    let p = halt_path(work_dir);
    if std::fs::symlink_metadata(&p).is_err() {
        return None;
    }
    let text = gapsync_common::fsx::open_nofollow(&p).and_then(|mut f| {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).map(|_| s)
    });
    Some(text.ok().and_then(|t| Halt::parse(&t)).unwrap_or(Halt {
        seq: 0,
        file: String::new(),
        since: "unknown (the halt record is unreadable)".to_owned(),
    }))
}

impl Sender {
    /// Records that batch `rec` halted the node (before the service exits).
    pub(crate) fn record_halt(&self, seq: u64, file: &str) -> Result<()> {
        let h = Halt {
            seq,
            file: file.to_owned(),
            since: gapsync_common::batch::format_created(chrono::Utc::now()),
        };
        let p = halt_path(&self.cfg.work_dir);
        gapsync_common::fsx::write_private_synced(&p, h.text().as_bytes())
            .map_err(|source| SenderError::Work { path: p, source })
    }

    /// Refuses to go on while the node is halted.
    pub(crate) fn refuse_if_halted(&self) -> Result<()> {
        match read_halt(&self.cfg.work_dir) {
            Some(h) => Err(SenderError::StillHalted {
                seq: h.seq,
                file: h.file,
                since: h.since,
            }),
            None => Ok(()),
        }
    }

    /// `gapsync-sender resume`: removes the halt record (the operator has repaired the
    /// cause). Returns the record removed, `None` if the node was not halted.
    pub fn resume(&mut self) -> Result<Option<Halt>> {
        let Some(h) = read_halt(&self.cfg.work_dir) else {
            return Ok(None);
        };
        let p = halt_path(&self.cfg.work_dir);
        std::fs::remove_file(&p).map_err(|source| SenderError::Work { path: p, source })?;
        let dir = self.cfg.work_dir.join("state");
        gapsync_common::fsx::sync_dir(&dir)
            .map_err(|source| SenderError::Work { path: dir, source })?;
        let ev = gapsync_common::audit::AuditEvent::new(
            "resumed",
            &self.cfg.node,
            h.seq,
            &h.file,
            0,
            "",
        )
        .verdict("resumed", "halt record removed by the operator");
        if let Err(e) = self.audit.record(&ev) {
            tracing::error!(error = %e, "cannot write the audit record");
        }
        Ok(Some(h))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_halt_record_round_trips_and_a_damaged_one_still_halts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("state")).unwrap();
        assert_eq!(read_halt(d.path()), None);
        let h = Halt {
            seq: 7,
            file: "n-00000000000000000007.sql".into(),
            since: "2026-12-04T10:00:00.000000Z".into(),
        };
        std::fs::write(halt_path(d.path()), h.text()).unwrap();
        assert_eq!(read_halt(d.path()), Some(h));
        std::fs::write(halt_path(d.path()), "garbage").unwrap();
        assert_eq!(read_halt(d.path()).map(|h| h.seq), Some(0));
    }
}
