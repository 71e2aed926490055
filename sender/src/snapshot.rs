//! Snapshots (`snapshot` / `resync TABLE`): a consistent read of a table, rendered as
//! `CREATE TABLE` plus its rows in batches, marking the pending changes it contains.

use crate::capture::{
    Absorbed, BatchRecord, ChangeSource, SnapshotEvent, SnapshotProgress, TableSpec,
};
use crate::*;
use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter};
use gapsync_common::value::Value;
use tracing::{error, info, warn};

/// Pending changes a resumed snapshot reads at a time (to sort them by key).
const PENDING_PAGE: u64 = 10_000;

/// Rejected snapshot rows kept in memory at most before they are written.
const REJECTED_PAGE: usize = 10_000;

/// How often a snapshot logs its progress (when no observer shows it).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Shows a snapshot's progress (the binary's progress bar on a terminal).
pub trait SnapshotObserver: std::fmt::Debug {
    /// `done` of `total` rows of `table` are in committed batches; `finished` last.
    fn progress(&mut self, table: &str, done: u64, total: u64, finished: bool);
}

/// What one read of a snapshot ended with.
enum Part {
    /// Every row is in a committed batch: their seqs.
    Done(Vec<u64>),
    /// The part cannot continue where the last one stopped (why): start over.
    StartOver(String),
}

/// A resumed read found that it cannot continue where the last one stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StartOver(String);

impl Sender {
    /// Queue a snapshot of each table (all configured tables when `tables` is empty).
    pub fn queue_snapshots(&mut self, tables: &[String]) -> Result<Vec<String>> {
        let names: Vec<String> = if tables.is_empty() {
            self.cfg.tables.iter().map(|t| t.source.clone()).collect()
        } else {
            tables.to_vec()
        };
        for t in &names {
            self.spec(t)?;
        }
        for t in &names {
            self.source.queue_snapshot(t)?;
        }
        Ok(names)
    }

    /// Show snapshot progress through `observer` instead of periodic log lines.
    pub fn observe_snapshots(&mut self, observer: Box<dyn SnapshotObserver>) {
        self.observer = Some(observer);
    }

    /// Build the batches of every queued snapshot.
    pub fn cut_snapshots(&mut self) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for (req, table) in self.source.snapshot_requests()? {
            match self.cut_snapshot(req, &table) {
                Ok(s) => seqs.extend(s),
                Err(SenderError::Render(e)) => {
                    let reason = e.to_string();
                    error!(
                        alarm = true,
                        table,
                        reason,
                        "snapshot rejected: the target dialect cannot express a row of it"
                    );
                    self.source.reject(&[(None, table.clone(), reason)])?;
                }
                Err(e) => return Err(e),
            }
            self.source.finish_request(req)?;
        }
        Ok(seqs)
    }

    /// Snapshot one table for request `req`, resuming where an interrupted run of it
    /// stopped when it can (see [`snapshot_part`](Self::snapshot_part)).
    fn cut_snapshot(&mut self, req: i64, table: &str) -> Result<Vec<u64>> {
        let spec = self.spec(table)?;
        let shape = shape_of(&spec, self.cfg.dialect);
        let mut from = match self.source.snapshot_progress(req)? {
            None => None,
            Some(p) if p.shape != shape => {
                warn!(
                    table,
                    rows = p.rows,
                    total = p.total,
                    "snapshot was interrupted and starts over: the table (its columns, key or unique constraints, or the target) changed since"
                );
                None
            }
            Some(p) => match p.key {
                Some(key) => {
                    info!(
                        table,
                        rows = p.rows,
                        total = p.total,
                        "snapshot resumes where it stopped"
                    );
                    Some((p.rows, key))
                }
                None => {
                    warn!(
                        table,
                        rows = p.rows,
                        total = p.total,
                        "snapshot was interrupted and starts over: its key is not made of integers, or the table has unique constraints besides its key, so a read cannot continue after the last row shipped"
                    );
                    None
                }
            },
        };
        loop {
            match self.snapshot_part(req, &spec, shape, from.take())? {
                Part::Done(seqs) => return Ok(seqs),
                Part::StartOver(why) => {
                    warn!(table, reason = %why, "snapshot starts over from the first row");
                }
            }
        }
    }

    /// Snapshot one table (or, with `resume` = (rows done, key of the last row done),
    /// the rest of it): `CREATE TABLE IF NOT EXISTS`, `DELETE FROM` (not when
    /// resuming), then every row as an INSERT, in batches of at most `max_rows` rows. A
    /// row the target's dialect cannot carry is left out alone, recorded in
    /// `_gapsync_rejected` with its key and the reason.
    ///
    /// The rows are read in ONE read transaction with the pending changes they contain
    /// ([`SnapshotEvent::Start`]); those are marked as carried by the first batch, changes
    /// after it follow the snapshot. Nothing is lost or applied twice across the
    /// boundary, even with writers running. Each batch is recorded as soon as it is
    /// written, on a second connection, with the request's progress (rows done, key of
    /// the last row): a crash loses at most the batch being written.
    ///
    /// Resuming reads the rows after the last key done, in a new transaction. Of the
    /// pending changes it contains, those whose keys all come after that key are carried
    /// by it; those whose keys all come before follow the snapshot (the rows shipped
    /// before the crash do not contain them); one that moved a row across the key
    /// (an update of the key), or whose key is not made of integers, cannot be placed:
    /// then the snapshot starts over ([`Part::StartOver`]).
    fn snapshot_part(
        &mut self,
        req: i64,
        spec: &TableSpec,
        shape: i64,
        resume: Option<(u64, Vec<i64>)>,
    ) -> Result<Part> {
        let table = spec.source.as_str();
        let d = self.cfg.dialect;
        let cols: Vec<String> = spec.columns.iter().map(|c| c.target.clone()).collect();
        let key: Vec<&str> = spec
            .key
            .iter()
            .map(|&i| spec.columns[i].target.as_str())
            .collect();
        let typed: Vec<(&str, String)> = spec
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok((
                    c.target.as_str(),
                    d.map_type(&c.source, &c.decl_type, spec.key.contains(&i))?,
                ))
            })
            .collect::<Result<_>>()?;
        let typed: Vec<(&str, &str)> = typed.iter().map(|(c, t)| (*c, t.as_str())).collect();
        let mut create = String::new();
        d.render_create_table(&spec.target, &typed, &key, &mut create)?;
        let mut clear = String::new();
        d.render_clear(&spec.target, &mut clear)?;
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        let key_names: Vec<String> = spec
            .key
            .iter()
            .map(|&i| spec.columns[i].source.clone())
            .collect();
        // Only a table whose one unique constraint is its key resumes: rows read before
        // and after an interruption come from two reads, and another unique constraint
        // on the target could refuse their mix.
        let only_key_unique = spec.unique.iter().all(|u| {
            let mut u = u.clone();
            let mut k = spec.key.clone();
            u.sort_unstable();
            k.sort_unstable();
            u == k
        });

        // Batches are recorded on a second connection while the first one reads
        // (after the read, where the source cannot write beside a read).
        let mut state = open_source(&self.cfg)?;
        let mut deferred: Option<Vec<BatchRecord>> = if state.commits_beside_reads()? {
            None
        } else {
            Some(Vec::new())
        };
        let audit = BatchAudit::of(&self.audit, &self.cfg.node, self.signer.as_ref());
        let built = format!("snapshot {table}");
        let per = self.cfg.batch.max_rows.max(1);
        let first_seq = self.source.next_seq()?;
        let outbox = self.dir("outbox");
        let compress = self.cfg.batch.compress;
        let node = self.cfg.node.clone();
        let signer = self.signer.clone();
        let fresh = resume.is_none();
        let (rows_before, after) = match resume {
            Some((rows, key)) => (rows, Some(key)),
            None => (0, None),
        };
        let mut observer = self.observer.take();
        let mut pending = Pending::new(outbox.clone());
        let mut committed: Vec<BatchRecord> = Vec::new();
        let mut rejected: Vec<(Option<i64>, String, String)> = Vec::new();
        let mut rejected_total = 0usize;
        let mut absorb: Option<Absorbed> = None;
        let mut counted = 0u64;
        let mut total = rows_before;
        let mut buf = String::new();
        let mut rows_seen = 0u64;
        // The key of the last row read; None once a row's key is not all integers.
        let mut last_key: Option<Vec<i64>> = after.clone();
        let mut integer_keys = only_key_unique;
        let mut logged = std::time::Instant::now();
        // Whether the records of deferred batches were (maybe) committed.
        let mut attempted = false;
        // Writes the filled batch (its statement count is known before its header is)
        // and records it with the progress made, in one transaction.
        let flush = |pending: &mut Pending,
                     state: &mut Box<dyn ChangeSource>,
                     committed: &mut Vec<BatchRecord>,
                     deferred: &mut Option<Vec<BatchRecord>>,
                     rejected: &mut Vec<(Option<i64>, String, String)>,
                     absorb: &mut Option<Absorbed>,
                     progress: SnapshotProgress|
         -> Result<()> {
            let i = (committed.len() + deferred.as_ref().map_or(0, Vec::len)) as u64;
            let extra = if fresh && i == 0 { 2 } else { 0 };
            let header = BatchHeader {
                node: node.clone(),
                seq: first_seq + i,
                created: batch::format_created(chrono::Utc::now()),
                dialect: d.name().to_owned(),
                kind: BatchKind::Snapshot,
                changes: None,
                statements: pending.count() + extra,
            };
            let mut w = BatchWriter::create(&outbox, header.clone(), compress, 3)?
                .with_signer(signer.clone())?;
            if extra > 0 {
                w.push(&create)?;
                w.push(&clear)?;
            }
            pending.drain(&mut |s| Ok(w.push(s)?))?;
            let written = w.finish()?;
            let rec = Self::record(&written, &header);
            if let Some(later) = deferred.as_mut() {
                later.push(rec);
                return Ok(());
            }
            // Rejected rows first: after a crash between the two they are read and
            // rejected again (listed twice), never lost.
            if !rejected.is_empty()
                && let Err(e) = state.reject(rejected)
            {
                // Nothing recorded: the file goes (or the outbox recovery removes it).
                let _ = std::fs::remove_file(&written.path);
                return Err(e.into());
            }
            rejected.clear();
            let a = absorb.take();
            // A failed COMMIT of a server source may have committed all the same: the
            // file stays, and the outbox recovery (at the next start, or when the
            // source is back) keeps it if it was recorded and removes it if not.
            state.commit_snapshot_batches(
                std::slice::from_ref(&rec),
                a.as_ref().map(|a| (table, a)),
                req,
                &progress,
            )?;
            audit.record("built", &rec, "ok", &built);
            committed.push(rec);
            Ok(())
        };
        let mut sink = |ev: SnapshotEvent<'_>| -> Result<()> {
            let row = match ev {
                SnapshotEvent::Start { rows, absorbed } => {
                    counted = rows;
                    total = rows_before + rows;
                    absorb = Some(match &after {
                        None => absorbed,
                        Some(k) => {
                            match carried_after(state.as_mut(), table, &key_names, k, absorbed)? {
                                Ok(ids) => Absorbed::Ids(ids),
                                Err(why) => return Err(StartOver(why).into_sender()),
                            }
                        }
                    });
                    if let Some(o) = observer.as_mut() {
                        o.progress(table, rows_before, total, false);
                    }
                    return Ok(());
                }
                SnapshotEvent::Row(row) => row,
            };
            rows_seen += 1;
            if rows_seen > counted {
                return Err(crate::capture::SourceError::Corrupt(format!(
                    "table {table} returned more rows than it counted"
                ))
                .into());
            }
            if integer_keys {
                let k: Option<Vec<i64>> = spec
                    .key
                    .iter()
                    .map(|&i| match row[i] {
                        Value::Integer(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                // Where a resumed read starts is only right if the rows come in key
                // order: checked, never assumed.
                if let (Some(prev), Some(k)) = (&last_key, &k)
                    && k <= prev
                {
                    return Err(crate::capture::SourceError::Corrupt(format!(
                        "table {table}: the snapshot read returned key {k:?} after {prev:?} (not in key order)"
                    ))
                    .into());
                }
                integer_keys = k.is_some();
                last_key = k;
            }
            buf.clear();
            match d.render_insert(&spec.target, &cols, row, &mut buf) {
                Ok(()) => pending.push(&buf)?,
                // A value the target's dialect cannot carry: this row is left out,
                // alone, with its key and the reason (the rest of the table goes).
                Err(e) => {
                    let key: Vec<String> = spec
                        .key
                        .iter()
                        .map(|&i| format!("{}={}", spec.columns[i].source, row[i]))
                        .collect();
                    let reason = format!("row ({}): {e}", key.join(", "));
                    rejected_total += 1;
                    if rejected_total <= 20 {
                        error!(
                            alarm = true,
                            table,
                            reason,
                            "snapshot row rejected: the target dialect cannot express it; the rest of the table is shipped (status shows it)"
                        );
                    }
                    rejected.push((None, table.to_owned(), reason));
                    // Memory stays bounded however many rows are rejected (written
                    // ahead of their batch: after a crash they are listed twice).
                    if rejected.len() >= REJECTED_PAGE && deferred.is_none() {
                        state.reject(&rejected)?;
                        rejected.clear();
                    }
                }
            }
            if pending.count() == per {
                let done = rows_before + rows_seen;
                flush(
                    &mut pending,
                    &mut state,
                    &mut committed,
                    &mut deferred,
                    &mut rejected,
                    &mut absorb,
                    SnapshotProgress {
                        rows: done,
                        total,
                        key: last_key.clone(),
                        shape,
                    },
                )?;
                match observer.as_mut() {
                    Some(o) => o.progress(table, done, total, false),
                    None if logged.elapsed() >= PROGRESS_EVERY => {
                        logged = std::time::Instant::now();
                        info!(
                            table,
                            rows = done,
                            total,
                            percent = done * 100 / total.max(1),
                            "snapshot progress"
                        );
                    }
                    None => {}
                }
            }
            Ok(())
        };
        let read = self
            .source
            .snapshot_each(spec, after.as_deref(), &mut |ev| {
                sink(ev).map_err(|e| -> crate::capture::SinkError { Box::new(e) })
            });
        let read = match read {
            Ok(()) => {
                // The last batch (the first, too, of a table with no row left: it
                // carries the CREATE TABLE and DELETE, or the changes a resumed read
                // contains).
                let none_yet = committed.is_empty() && deferred.as_ref().is_none_or(Vec::is_empty);
                let progress = SnapshotProgress {
                    rows: rows_before + rows_seen,
                    total,
                    key: last_key.clone(),
                    shape,
                };
                let last = if pending.count() > 0 || none_yet {
                    flush(
                        &mut pending,
                        &mut state,
                        &mut committed,
                        &mut deferred,
                        &mut rejected,
                        &mut absorb,
                        progress.clone(),
                    )
                } else {
                    Ok(())
                };
                last.and_then(|()| {
                    if !rejected.is_empty() {
                        state.reject(&rejected)?;
                    }
                    // Recorded after the read (the source cannot write beside it),
                    // all in one transaction.
                    if let Some(later) = deferred.take()
                        && !later.is_empty()
                    {
                        attempted = true;
                        let a = absorb.take();
                        state.commit_snapshot_batches(
                            &later,
                            a.as_ref().map(|a| (table, a)),
                            req,
                            &progress,
                        )?;
                        for r in &later {
                            audit.record("built", r, "ok", &built);
                        }
                        committed.extend(later);
                    }
                    Ok(())
                })
            }
            Err(e) => Err(sink_error(e)),
        };
        // Files written for a record that was never attempted are removed (one that
        // cannot be is removed by the outbox recovery at the next start).
        if read.is_err()
            && !attempted
            && let Some(later) = &deferred
        {
            for r in later {
                let _ = std::fs::remove_file(outbox.join(&r.file));
            }
        }
        if let Some(o) = observer.as_mut() {
            o.progress(table, rows_before + rows_seen, total, true);
        }
        self.observer = observer;
        match read {
            Ok(()) => {}
            Err(SenderError::StartOver(why)) => return Ok(Part::StartOver(why)),
            Err(e) => return Err(e),
        }
        if rejected_total > 20 {
            error!(
                alarm = true,
                table,
                rows = rejected_total,
                "snapshot rows rejected (the first 20 are logged; all are in _gapsync_rejected)"
            );
        }
        info!(
            table,
            rows = rows_before + rows_seen - rejected_total as u64,
            rejected = rejected_total,
            batches = committed.len(),
            resumed_at = rows_before,
            "snapshot cut"
        );
        Ok(Part::Done(committed.iter().map(|r| r.seq).collect()))
    }
}

/// A fingerprint of a table as a snapshot reads and renders it (see
/// [`SnapshotProgress::shape`]): 63 bits of a SHA-256 over the target's dialect and
/// name, every column (source, target, declared type), the key and the unique sets.
fn shape_of(spec: &TableSpec, d: gapsync_common::dialect::Dialect) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    field(d.name());
    field(&spec.target);
    for c in &spec.columns {
        field(&c.source);
        field(&c.target);
        field(&c.decl_type);
    }
    let mut unique: Vec<Vec<usize>> = spec
        .unique
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.sort_unstable();
            u
        })
        .collect();
    unique.sort();
    field(&format!("{:?} {unique:?}", spec.key));
    let b = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(first) >> 1) as i64
}

/// The sender's error behind a snapshot sink's error.
fn sink_error(e: crate::capture::SinkError) -> SenderError {
    let e = match e.downcast::<SenderError>() {
        Ok(e) => return *e,
        Err(e) => e,
    };
    let e = match e.downcast::<StartOver>() {
        Ok(e) => return SenderError::StartOver(e.0),
        Err(e) => e,
    };
    let e = match e.downcast::<crate::capture::SourceError>() {
        Ok(e) => return SenderError::Source(*e),
        Err(e) => e,
    };
    match e.downcast::<gapsync_common::db::DbError>() {
        Ok(e) => SenderError::Source((*e).into()),
        Err(e) => SenderError::Source(crate::capture::SourceError::Corrupt(e.to_string())),
    }
}

impl StartOver {
    fn into_sender(self) -> SenderError {
        SenderError::StartOver(self.0)
    }
}

/// Which of the pending changes a resumed read contains (`absorbed`, read with its
/// rows) the rows after `after` carry: those whose keys all come after it. Err(why):
/// a change that cannot be placed (see [`Sender::snapshot_part`]).
fn carried_after(
    source: &mut dyn ChangeSource,
    table: &str,
    key: &[String],
    after: &[i64],
    absorbed: Absorbed,
) -> Result<std::result::Result<Vec<i64>, String>> {
    let (up_to, only) = match absorbed {
        Absorbed::UpTo(id) => (id, None),
        Absorbed::Ids(ids) => (
            ids.iter().copied().max().unwrap_or(0),
            Some(ids.into_iter().collect::<std::collections::HashSet<i64>>()),
        ),
    };
    let mut carried = Vec::new();
    let mut follow = 0u64;
    let mut from = i64::MIN;
    loop {
        let page = source.table_pending(table, from, up_to, PENDING_PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.id;
        let full = page.len() as u64 == PENDING_PAGE;
        for c in page {
            if only.as_ref().is_some_and(|s| !s.contains(&c.id)) {
                continue;
            }
            let layout = source.layout(c.layout)?;
            if layout.key != key {
                return Ok(Err(format!(
                    "change {} was captured with another key ({})",
                    c.id,
                    layout.key.join(", ")
                )));
            }
            let positions: Vec<usize> = layout
                .key
                .iter()
                .filter_map(|k| layout.columns.iter().position(|c| c == k))
                .collect();
            let mut keys: Vec<Vec<&Value>> = Vec::new();
            if !c.old_key.is_empty() {
                keys.push(c.old_key.iter().collect());
            }
            if !c.row.is_empty() {
                keys.push(positions.iter().filter_map(|&p| c.row.get(p)).collect());
            }
            let mut later = 0;
            for k in &keys {
                let ints: Option<Vec<i64>> = k
                    .iter()
                    .map(|v| match v {
                        Value::Integer(i) => Some(*i),
                        _ => None,
                    })
                    .collect();
                match ints {
                    Some(ints) if ints.len() == after.len() => {
                        if ints.as_slice() > after {
                            later += 1;
                        }
                    }
                    _ => {
                        return Ok(Err(format!(
                            "change {} has a key that is not made of integers",
                            c.id
                        )));
                    }
                }
            }
            if later == keys.len() {
                carried.push(c.id);
            } else if later == 0 {
                follow += 1;
            } else {
                return Ok(Err(format!(
                    "change {} moved a row across the key where the snapshot stopped",
                    c.id
                )));
            }
        }
        if !full {
            break;
        }
    }
    info!(
        table,
        carried = carried.len(),
        follow,
        "snapshot read resumed: pending changes after the row where it stopped are in it, those before it follow it"
    );
    Ok(Ok(carried))
}

/// Memory a snapshot batch's statements may take before they go to a spill file.
const SPILL_AT: usize = 32 << 20;

/// The statements of the snapshot batch being filled. A batch's header states its
/// statement count, and a row the target's dialect cannot carry is left out of it, so
/// the rows are rendered first and written once the batch is full: in memory up to
/// [`SPILL_AT`] bytes, then in an unnamed temporary file in the outbox (gone with the
/// process, whatever happens), one statement a line (a rendered statement never holds
/// a line break).
struct Pending {
    dir: PathBuf,
    mem: Vec<String>,
    bytes: usize,
    /// Bytes kept in memory at most ([`SPILL_AT`]).
    limit: usize,
    spill: Option<std::io::BufWriter<std::fs::File>>,
    count: u64,
}

impl Pending {
    fn new(dir: PathBuf) -> Pending {
        Pending {
            dir,
            mem: Vec::new(),
            bytes: 0,
            limit: SPILL_AT,
            spill: None,
            count: 0,
        }
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn push(&mut self, stmt: &str) -> Result<()> {
        use std::io::Write;
        self.count += 1;
        if self.spill.is_none() && self.bytes + stmt.len() <= self.limit {
            self.bytes += stmt.len();
            self.mem.push(stmt.to_owned());
            return Ok(());
        }
        let w = match &mut self.spill {
            Some(w) => w,
            None => self.spill.insert(std::io::BufWriter::new(
                tempfile::tempfile_in(&self.dir).map_err(work_err(&self.dir))?,
            )),
        };
        w.write_all(stmt.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(work_err(&self.dir))
    }

    /// Hands every statement to `each`, in order, and empties the batch.
    fn drain(&mut self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
        use std::io::{BufRead, Seek};
        for s in self.mem.drain(..) {
            each(&s)?;
        }
        if let Some(w) = self.spill.take() {
            let io = work_err(&self.dir);
            let mut f = match w.into_inner().map_err(|e| e.into_error()) {
                Ok(f) => f,
                Err(e) => return Err(io(e)),
            };
            if let Err(e) = f.rewind() {
                return Err(work_err(&self.dir)(e));
            }
            let mut r = std::io::BufReader::new(f);
            let mut line = String::new();
            while r.read_line(&mut line).map_err(work_err(&self.dir))? > 0 {
                each(line.trim_end_matches('\n'))?;
                line.clear();
            }
        }
        self.bytes = 0;
        self.count = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A source in rollback-journal mode (WAL switched off, or a filesystem without it)
    /// cannot take a write beside the snapshot's read: the batches are recorded after
    /// the read instead, all of them, and the request is done (it waited for the busy
    /// timeout and failed, and the service retried it forever, before).
    #[test]
    fn a_snapshot_of_a_source_without_wal_records_its_batches_after_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("plant.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for i in 1..=95 {
            c.execute("INSERT INTO t VALUES (?1, 'x')", [i]).unwrap();
        }
        drop(c);
        let cfg_path = dir.path().join("sender.toml");
        std::fs::write(
            &cfg_path,
            "node = \"n1\"\ninsecure = true\n[source]\nurl = \"sqlite:plant.db\"\n\
             [target]\ndialect = \"sqlite\"\n[batch]\nmax_rows = 10\n[[table]]\nsource = \"t\"\n\
             [link]\nconnect = \"127.0.0.1:9\"\n[work]\ndir = \"work\"\n",
        )
        .unwrap();
        let cfg = crate::config::SenderConfig::load(&cfg_path).unwrap();
        let mut s = Sender::open(cfg.clone(), false).unwrap();
        let specs = s.specs().unwrap();
        s.source().install(&specs).unwrap();
        drop(s);
        let c = rusqlite::Connection::open(&db).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        drop(c);
        let mut s = Sender::open(cfg, true).unwrap();
        assert!(!s.source().commits_beside_reads().unwrap());
        s.queue_snapshots(&[]).unwrap();
        let seqs = s.cut_snapshots().unwrap();
        assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
        assert!(s.source().snapshot_requests().unwrap().is_empty());
        let b = s.source().batches(None).unwrap();
        assert_eq!(b.iter().map(|r| r.statements).sum::<u64>(), 95 + 2);
        let files = std::fs::read_dir(dir.path().join("work").join("outbox"))
            .unwrap()
            .count();
        assert_eq!(files, 10);
    }

    /// A batch's statements come back in order, across memory and the spill file, and
    /// the batch is empty afterwards; the spill file leaves nothing in the directory.
    #[test]
    fn pending_statements_come_back_in_order_across_the_spill() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Pending::new(d.path().to_owned());
        p.limit = 25;
        let stmts: Vec<String> = (0..5)
            .map(|i| format!("INSERT INTO t VALUES ({i});"))
            .collect();
        for round in 0..2 {
            for s in &stmts {
                p.push(s).unwrap();
            }
            assert_eq!(p.count(), 5);
            assert!(p.spill.is_some(), "round {round}: nothing spilled");
            let mut got = Vec::new();
            p.drain(&mut |s| {
                got.push(s.to_owned());
                Ok(())
            })
            .unwrap();
            assert_eq!(got, stmts);
            assert_eq!(p.count(), 0);
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
