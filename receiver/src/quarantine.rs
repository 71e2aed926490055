//! `gapsync-receiver quarantine list | show | retry | ack`: the operator's tools for a
//! batch that failed twice (or by hand) and was dropped.
//!
//! - `list`: every quarantined batch with its reason, and whether it was acknowledged.
//! - `show NODE SEQ`: the reason (the database's message, with its SQL state where the
//!   driver gave one), the failing statement's line and text, the tables the batch
//!   touches, and the batches of the node applied after it.
//! - `retry NODE SEQ [--force]`: after the target was repaired, the kept file is
//!   verified again (signature included) and applied in its place, exactly once: its
//!   quarantine record goes and its ledger row comes in the same transaction as its
//!   statements. When later batches of the node were applied since, they may have
//!   touched the same rows: that is said, and `--force` is needed.
//! - `ack NODE SEQ [--by NAME]`: the loss is accepted; the audit records who and when,
//!   and `list`/`status` show it closed (`quarantine/<file>.acked`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::{ApplyOutcome, QuarantineRecord, Target};
use crate::config::ReceiverConfig;
use crate::*;
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::{self, ReadLimits};
use gapsync_common::sign::TrustStore;

/// A quarantined batch as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub record: QuarantineRecord,
    /// Whether its file is kept in `quarantine/` (a retry needs it).
    pub file_kept: bool,
    /// `who at` of an `ack`.
    pub acked: Option<String>,
}

/// What `show` tells of one quarantined batch.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub entry: Entry,
    /// (line, text) of the statement the reason names, when the file is kept.
    pub statement: Option<Line>,
    /// Tables its statements write.
    pub tables: Vec<String>,
    /// Seqs of the node applied after it.
    pub applied_after: Vec<u64>,
}

fn kept_path(work_dir: &Path, file: &str) -> PathBuf {
    work_dir.join("quarantine").join(file)
}

fn acked_path(work_dir: &Path, file: &str) -> PathBuf {
    work_dir.join("quarantine").join(format!("{file}.acked"))
}

fn entry(work_dir: &Path, r: QuarantineRecord) -> Entry {
    let kept = kept_path(work_dir, &r.file);
    let acked = fsx::open_nofollow(&acked_path(work_dir, &r.file))
        .ok()
        .and_then(|f| std::io::read_to_string(f).ok())
        .map(|t| t.trim().to_owned());
    Entry {
        file_kept: std::fs::symlink_metadata(&kept).is_ok_and(|m| m.is_file()),
        acked,
        record: r,
    }
}

/// Every quarantined batch.
pub fn list(cfg: &ReceiverConfig) -> Result<Vec<Entry>> {
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    Ok(t.quarantined()?
        .into_iter()
        .map(|r| entry(&cfg.work_dir, r))
        .collect())
}

fn find(cfg: &ReceiverConfig, t: &mut Target, node: &str, seq: u64) -> Result<Entry> {
    t.quarantined()?
        .into_iter()
        .find(|r| r.node == node && r.seq == seq)
        .map(|r| entry(&cfg.work_dir, r))
        .ok_or_else(|| {
            ReceiverError::Order(format!(
                "seq {seq} of node {node} is not quarantined on this target (see `quarantine list`)"
            ))
        })
}

/// The table a rendered statement writes (`INSERT INTO "t"`, `UPDATE "t"`,
/// `DELETE FROM "t"`, `CREATE TABLE [IF NOT EXISTS] "t"`, SQL Server's `[t]` and its
/// `IF OBJECT_ID(..) IS NULL CREATE TABLE [t]`).
fn table_of(stmt: &str) -> Option<String> {
    let s = match stmt.find("CREATE TABLE ") {
        Some(i) if stmt.starts_with("IF OBJECT_ID(") => &stmt[i..],
        _ => stmt,
    };
    let rest = [
        "INSERT INTO ",
        "UPDATE ",
        "DELETE FROM ",
        "CREATE TABLE IF NOT EXISTS ",
        "CREATE TABLE ",
    ]
    .iter()
    .find_map(|k| s.strip_prefix(k))?;
    let (open, close) = match rest.chars().next()? {
        '"' => ('"', '"'),
        '[' => ('[', ']'),
        _ => return rest.split([' ', '(']).next().map(str::to_owned),
    };
    let mut name = String::new();
    let mut chars = rest[open.len_utf8()..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == close {
            if chars.peek() == Some(&close) {
                chars.next();
                name.push(c);
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

/// A statement of a batch: its line and text.
type Line = (u64, String);

/// The statement at `line` (if any) and every table the batch writes.
fn read_batch(
    path: &Path,
    limits: &ReadLimits,
    line: Option<u64>,
) -> Result<(Option<Line>, Vec<String>)> {
    let f = fsx::open_nofollow(path).map_err(work_err(path))?;
    let mut reader = batch::read_statements(f, path, limits)?;
    let mut buf = String::new();
    let mut found = None;
    let mut tables: Vec<String> = Vec::new();
    while let Some(l) = reader.next_statement(&mut buf)? {
        if Some(l) == line {
            let text: String = buf.chars().take(2000).collect();
            found = Some((l, text));
        }
        if let Some(t) = table_of(&buf)
            && !tables.contains(&t)
        {
            tables.push(t);
        }
    }
    Ok((found, tables))
}

/// The line number a reason names (`<file> line N: ...`).
fn reason_line(reason: &str) -> Option<u64> {
    let i = reason.find(" line ")?;
    let digits: String = reason[i + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `show NODE SEQ`.
pub fn show(cfg: &ReceiverConfig, node: &str, seq: u64) -> Result<Detail> {
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    let e = find(cfg, &mut t, node, seq)?;
    let applied_after = t.applied_after(node, seq)?;
    let (statement, tables) = if e.file_kept {
        read_batch(
            &kept_path(&cfg.work_dir, &e.record.file),
            &cfg.limits.read,
            reason_line(&e.record.reason),
        )?
    } else {
        (None, Vec::new())
    };
    Ok(Detail {
        entry: e,
        statement,
        tables,
        applied_after,
    })
}

fn audit(cfg: &ReceiverConfig, ev: &AuditEvent<'_>) {
    if let Err(e) = Audit::new(&cfg.work_dir, "receiver").record(ev) {
        tracing::error!(error = %e, "cannot write the audit record");
    }
}

/// `retry NODE SEQ [--force]`; returns the line to print.
pub fn retry(cfg: &ReceiverConfig, node: &str, seq: u64, force: bool) -> Result<String> {
    // As `apply`: the running service applies nothing meanwhile.
    let _lock = crate::applylock::ApplyLock::acquire(&cfg.work_dir).map_err(|e| {
        crate::ReceiverError::Work {
            path: cfg.work_dir.join("state").join("apply.lock"),
            source: e,
        }
    })?;
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    let e = find(cfg, &mut t, node, seq)?;
    let name = e.record.file.clone();
    if !e.file_kept {
        return Err(ReceiverError::Order(format!(
            "{name}: its file is not in quarantine/ any more: the batch cannot be retried here; heal its tables with `gapsync-sender resync TABLE`"
        )));
    }
    let path = kept_path(&cfg.work_dir, &name);
    let later = t.applied_after(node, seq)?;
    if !later.is_empty() && !force {
        let (_, tables) = read_batch(&path, &cfg.limits.read, None)?;
        return Err(ReceiverError::Order(format!(
            "{name}: {} later batch(es) of node {node} were applied after it (seq {}..={}); they may have changed the same rows of {}: check the target, then run `quarantine retry {node} {seq} --force` (or resync those tables from the sender instead)",
            later.len(),
            later[0],
            later[later.len() - 1],
            tables.join(", ")
        )));
    }
    // Verified again, through the descriptor that is then executed.
    let mut input = fsx::open_nofollow(&path).map_err(work_err(&path))?;
    let checked = input
        .try_clone()
        .map_err(|source| batch::BatchError::Io {
            path: path.clone(),
            source,
        })
        .and_then(|f| batch::verify_open_batch(f, &path, &cfg.limits.read))?;
    if checked.header.node != node || checked.header.seq != seq {
        return Err(ReceiverError::Rejected {
            name,
            reason: format!(
                "its header says node {} seq {}",
                checked.header.node, checked.header.seq
            ),
        });
    }
    let trust = TrustStore::from_config(&cfg.trust)?;
    let key = authenticate(cfg, &trust, Some(node), &checked)
        .map_err(|reason| ReceiverError::Rejected {
            name: name.clone(),
            reason: reason.to_string(),
        })?
        .unwrap_or_default();
    let sha = hex::encode(checked.content_sha256);
    use std::io::Seek;
    input
        .seek(std::io::SeekFrom::Start(0))
        .map_err(work_err(&path))?;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    match t.retry_quarantined(input, &path, node, seq, &sha, &cfg.limits.read)? {
        ApplyOutcome::Applied { statements } => {
            let detail = format!(
                "retried by hand{}",
                if later.is_empty() {
                    ""
                } else {
                    " (--force: later batches applied before it)"
                }
            );
            audit(
                cfg,
                &AuditEvent::new("applied", node, seq, &name, size, &sha)
                    .key(&key)
                    .verdict("ok", &detail),
            );
            // The kept copy goes to quarantine/retried/ (the ledger has the batch now).
            let done = cfg.work_dir.join("quarantine").join("retried");
            let moved = fsx::private_dir(&done)
                .map_err(std::io::Error::from)
                .and_then(|()| fsx::move_file(&path, &done.join(&name)));
            if let Err(e) = moved {
                tracing::warn!(file = %name, error = %e, "applied, but the kept copy stays in quarantine/ (the ledger has the batch: it is not retried again)");
            }
            Ok(format!(
                "{name}: applied ({statements} statements) in its place; on the sender, `gapsync-sender quarantine retry {seq}` lets it learn so (the receiver answers from its ledger)"
            ))
        }
        ApplyOutcome::AlreadyApplied => Ok(format!("{name}: already applied")),
    }
}

/// `ack NODE SEQ --by NAME`: the loss accepted; returns the line to print.
pub fn ack(cfg: &ReceiverConfig, node: &str, seq: u64, by: &str) -> Result<String> {
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    let e = find(cfg, &mut t, node, seq)?;
    let at = batch::format_created(chrono::Utc::now());
    let path = acked_path(&cfg.work_dir, &e.record.file);
    fsx::private_dir(&cfg.work_dir.join("quarantine")).map_err(|err| ReceiverError::Work {
        path: path.clone(),
        source: err.into_io(),
    })?;
    fsx::write_private_synced(&path, format!("{by} {at}\n").as_bytes()).map_err(work_err(&path))?;
    audit(
        cfg,
        &AuditEvent::new("acked", node, seq, &e.record.file, 0, &e.record.sha256)
            .verdict("loss accepted", &format!("by {by}: {}", e.record.reason)),
    );
    Ok(format!(
        "{}: the loss is accepted by {by} at {at} (recorded in the audit); heal its tables with `gapsync-sender resync TABLE` when the source should win",
        e.record.file
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_each_rendered_statement() {
        for (stmt, want) in [
            (r#"INSERT INTO "t" ("id") VALUES (1);"#, "t"),
            (r#"UPDATE "a""b" SET "v" = 1 WHERE "id" = 1;"#, "a\"b"),
            (r#"DELETE FROM "t";"#, "t"),
            (r#"CREATE TABLE IF NOT EXISTS "t" ("id" BIGINT);"#, "t"),
            (r#"CREATE TABLE "T" ("ID" NUMBER(19));"#, "T"),
            (
                "IF OBJECT_ID(N'[t]', N'U') IS NULL CREATE TABLE [t] ([id] BIGINT);",
                "t",
            ),
            ("DELETE FROM [x]]y] WHERE [id] = 1;", "x]y"),
        ] {
            assert_eq!(table_of(stmt).as_deref(), Some(want), "{stmt}");
        }
        assert_eq!(reason_line("n1-1.sql line 12: no such column: v"), Some(12));
        assert_eq!(reason_line("verification failed"), None);
    }
}
