//! The append-only audit record: one JSON line per batch event.
//!
//! `<work>/audit/audit-YYYY-MM.jsonl` (UTC month), opened in append mode for every
//! event and flushed; lines are never rewritten. Each line:
//! `{"time":"2026-11-21T10:00:00.123456Z","side":"sender","event":"applied","node":"plant1",
//!   "seq":42,"file":"plant1-00000000000000000042.sql","size":1234,"sha256":"…",
//!   "verdict":"ok","detail":""}`
//! Events: built, sent, received, verified, rejected, applied, failed, dropped.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub event: &'a str,
    pub node: &'a str,
    pub seq: u64,
    pub file: &'a str,
    pub size: u64,
    pub sha256: &'a str,
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
            verdict: "ok",
            detail: "",
        }
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
        std::fs::create_dir_all(&self.dir)?;
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
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(text.as_bytes())?;
        f.flush()
    }
}
