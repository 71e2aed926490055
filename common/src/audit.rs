//! The append-only audit record: one JSON line per batch event.
//!
//! `<work>/audit/audit-YYYY-MM.jsonl` (UTC month), opened in append mode for every
//! event and flushed; lines are never rewritten. Each line:
//! `{"time":"2026-11-21T10:00:00.123456Z","side":"sender","event":"applied","node":"plant1",
//!   "seq":42,"file":"plant1-00000000000000000042.sql","size":1234,"sha256":"…",
//!   "key_id":"0123456789abcdef","verdict":"ok","detail":""}`
//! Events: built, sent, received, verified, rejected, applied, failed, dropped.
//! `key_id` is the signing key (sender: the key that signed the batch; receiver: the
//! trusted key whose signature was verified, or the key a rejected signature claims);
//! empty for unsigned batches.
//!
//! Retention: [`Audit::prune`] deletes whole month files older than `keep_months`
//! (`[audit] keep_months`, default 12, at least 6), by the month in the file name; the
//! current month's file is never deleted.
//!
//! Modes: `audit/` is `0700` and the files `0600` ([`fsx`]); an `audit/` or a month
//! file that is a symbolic link is refused with an error naming it, never followed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsx;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub event: &'a str,
    pub node: &'a str,
    pub seq: u64,
    pub file: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    /// The signing key id ("" when unsigned).
    pub key_id: &'a str,
    pub verdict: &'a str,
    pub detail: &'a str,
}

impl<'a> AuditEvent<'a> {
    /// An event with verdict `ok` and no detail.
    pub fn new(
        event: &'a str,
        node: &'a str,
        seq: u64,
        file: &'a str,
        size: u64,
        sha256: &'a str,
    ) -> Self {
        AuditEvent {
            event,
            node,
            seq,
            file,
            size,
            sha256,
            key_id: "",
            verdict: "ok",
            detail: "",
        }
    }

    /// Set the signing key id.
    pub fn key(mut self, key_id: &'a str) -> Self {
        self.key_id = key_id;
        self
    }

    /// Set the verdict and a detail (reason, counts).
    pub fn verdict(mut self, verdict: &'a str, detail: &'a str) -> Self {
        self.verdict = verdict;
        self.detail = detail;
        self
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    side: &'a str,
    #[serde(flatten)]
    ev: &'a AuditEvent<'a>,
}

/// Appends audit lines under a work directory.
#[derive(Debug, Clone)]
pub struct Audit {
    dir: PathBuf,
    side: &'static str,
}

impl Audit {
    pub fn new(work_dir: &Path, side: &'static str) -> Audit {
        Audit {
            dir: work_dir.join("audit"),
            side,
        }
    }

    /// Append one event. Errors are returned so the caller can log them; an audit
    /// failure never stops a batch.
    pub fn record(&self, ev: &AuditEvent<'_>) -> std::io::Result<()> {
        let now = chrono::Utc::now();
        // 0700, tightened if older; a symlink or a non-directory is refused (the error
        // names the path).
        fsx::private_dir(&self.dir)?;
        let path = self
            .dir
            .join(format!("audit-{}.jsonl", now.format("%Y-%m")));
        let line = Line {
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            side: self.side,
            ev,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        // 0600 (an older 0644 file is tightened), never through a symlink.
        let at =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut f = fsx::open_append_private(&path).map_err(at)?;
        f.write_all(text.as_bytes()).map_err(at)?;
        f.flush().map_err(at)
    }

    /// Delete the month files (`audit-YYYY-MM.jsonl`) older than `keep_months` months
    /// before the current UTC month (judged by the month in the name; the current month
    /// and the `keep_months` before it are kept). Returns the removed paths.
    pub fn prune(&self, keep_months: u32) -> std::io::Result<Vec<PathBuf>> {
        prune_at(&self.dir, keep_months, chrono::Utc::now())
    }
}

/// `YYYY * 12 + (MM - 1)` of an `audit-YYYY-MM.jsonl` name.
fn month_index(name: &str) -> Option<i64> {
    let ym = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let (y, m) = ym.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then_some(y * 12 + m - 1)
}

fn prune_at(
    dir: &Path,
    keep_months: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<Vec<PathBuf>> {
    use chrono::Datelike;
    let current = i64::from(now.year()) * 12 + i64::from(now.month0());
    let oldest_kept = current - i64::from(keep_months);
    let mut removed = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    let mut old = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(i) = month_index(&name)
            && i < oldest_kept
            && i < current
        {
            old.push(e.path());
        }
    }
    old.sort();
    for p in old {
        std::fs::remove_file(&p)?;
        removed.push(p);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_on_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::new(dir.path(), "receiver");
        a.record(&AuditEvent::new("verified", "n1", 3, "f", 10, "ab").key("k1"))
            .expect("record");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("audit"))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        let text = std::fs::read_to_string(&files[0]).expect("read");
        assert!(text.contains("\"key_id\":\"k1\""), "{text}");
    }

    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    fn month_file(work: &Path) -> PathBuf {
        work.join("audit").join(format!(
            "audit-{}.jsonl",
            chrono::Utc::now().format("%Y-%m")
        ))
    }

    #[test]
    fn the_directory_is_0700_and_the_file_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Audit::new(dir.path(), "sender");
        a.record(&AuditEvent::new("built", "n1", 1, "f", 1, "ab"))
            .expect("record");
        assert_eq!(mode_of(&dir.path().join("audit")), 0o700);
        assert_eq!(mode_of(&month_file(dir.path())), 0o600);
    }

    #[test]
    fn an_older_world_readable_directory_and_file_are_tightened_and_appended_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = dir.path().join("audit");
        std::fs::create_dir(&audit).expect("mkdir");
        std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = month_file(dir.path());
        std::fs::write(&file, "{\"old\":1}\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        Audit::new(dir.path(), "sender")
            .record(&AuditEvent::new("sent", "n1", 2, "f", 1, "ab"))
            .expect("record");
        assert_eq!(mode_of(&audit), 0o700);
        assert_eq!(mode_of(&file), 0o600);
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.starts_with("{\"old\":1}\n"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_month_file_that_is_a_symlink_is_refused_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious\n").expect("write");
        std::fs::create_dir(dir.path().join("audit")).expect("mkdir");
        let file = month_file(dir.path());
        std::os::unix::fs::symlink(&victim, &file).expect("symlink");
        let e = Audit::new(dir.path(), "receiver")
            .record(&AuditEvent::new("applied", "n1", 3, "f", 1, "ab"))
            .expect_err("symlink refused");
        let text = e.to_string();
        assert!(text.contains("symbolic link"), "{text}");
        assert!(
            text.contains(&*file.to_string_lossy()),
            "names the file: {text}"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read"),
            "precious\n"
        );
        // A dangling link is refused too: its target is not created.
        std::fs::remove_file(&file).expect("rm");
        let nowhere = outside.path().join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &file).expect("symlink");
        Audit::new(dir.path(), "receiver")
            .record(&AuditEvent::new("applied", "n1", 3, "f", 1, "ab"))
            .expect_err("dangling symlink refused");
        assert!(!nowhere.exists());
    }

    #[test]
    fn an_audit_directory_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("audit")).expect("symlink");
        let e = Audit::new(dir.path(), "receiver")
            .record(&AuditEvent::new("applied", "n1", 3, "f", 1, "ab"))
            .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("symbolic link") && text.contains("audit"),
            "{text}"
        );
        let written: Vec<_> = std::fs::read_dir(outside.path()).expect("dir").collect();
        assert!(written.is_empty(), "nothing written through the link");
    }

    #[test]
    fn prune_keeps_the_months_asked_for_and_the_current_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "audit-2025-05.jsonl",
            "audit-2025-06.jsonl",
            "audit-2025-07.jsonl",
            "audit-2025-12.jsonl",
            "audit-2026-01.jsonl",
            "audit-2026-07.jsonl",
            "audit-2030-01.jsonl",
            "audit-2025-13.jsonl",
            "notes.txt",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), "x\n").expect("write");
        }
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-15T00:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let removed = prune_at(dir.path(), 6, now).expect("prune");
        let removed: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(removed, ["audit-2025-05.jsonl", "audit-2025-06.jsonl"]);
        for n in &names[2..] {
            assert!(dir.path().join(n).exists(), "{n} kept");
        }
    }
}
