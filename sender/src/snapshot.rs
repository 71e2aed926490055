//! Snapshots (`snapshot` / `resync TABLE`): a consistent read of a table, rendered as
//! `CREATE TABLE` plus its rows in batches, marking the pending changes it contains.

use crate::capture::{BatchRecord, SnapshotEvent};
use crate::*;
use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter};
use tracing::{error, info};

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

    /// Build the batches of every queued snapshot.
    pub fn cut_snapshots(&mut self) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for (req, table) in self.source.snapshot_requests()? {
            match self.cut_snapshot(&table) {
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

    /// Snapshot one table: `CREATE TABLE IF NOT EXISTS`, `DELETE FROM`, then every row as
    /// an INSERT, in batches of at most `max_rows` rows. A row the target's dialect
    /// cannot carry is left out alone, recorded in `_gapsync_rejected` with its key and
    /// the reason. The rows are read in the same
    /// read transaction as the highest tracking id; pending changes of the table up to
    /// that id are contained in the snapshot and are marked as carried by it, changes
    /// after it follow the snapshot. Nothing is lost or applied twice across the
    /// boundary, even with writers running.
    pub(crate) fn cut_snapshot(&mut self, table: &str) -> Result<Vec<u64>> {
        let spec = self.spec(table)?;
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

        let per = self.cfg.batch.max_rows.max(1);
        let first_seq = self.source.next_seq()?;
        let outbox = self.dir("outbox");
        let compress = self.cfg.batch.compress;
        let node = self.cfg.node.clone();
        let signer = self.signer.clone();
        let mut pending = Pending::new(outbox.clone());
        let mut finished: Vec<(batch::WrittenBatch, BatchHeader)> = Vec::new();
        let mut rejected: Vec<(Option<i64>, String, String)> = Vec::new();
        let mut total = 0u64;
        let mut buf = String::new();
        let mut rows_seen = 0u64;
        // Writes the filled batch: its statement count is known before its header is.
        let flush = |pending: &mut Pending,
                     finished: &mut Vec<(batch::WrittenBatch, BatchHeader)>|
         -> Result<()> {
            let i = finished.len() as u64;
            let extra = if i == 0 { 2 } else { 0 };
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
            if i == 0 {
                w.push(&create)?;
                w.push(&clear)?;
            }
            pending.drain(&mut |s| Ok(w.push(s)?))?;
            finished.push((w.finish()?, header));
            Ok(())
        };
        let mut sink = |ev: SnapshotEvent<'_>| -> Result<()> {
            let row = match ev {
                SnapshotEvent::Start { rows, .. } => {
                    total = rows;
                    return Ok(());
                }
                SnapshotEvent::Row(row) => row,
            };
            rows_seen += 1;
            if rows_seen > total {
                return Err(crate::capture::SourceError::Corrupt(format!(
                    "table {table} returned more rows than it counted"
                ))
                .into());
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
                    rejected.push((
                        None,
                        table.to_owned(),
                        format!("row ({}): {e}", key.join(", ")),
                    ));
                }
            }
            if pending.count() == per {
                flush(&mut pending, &mut finished)?;
            }
            Ok(())
        };
        let absorbed = self.source.snapshot_each(&spec, &mut |ev| {
            sink(ev).map_err(|e| -> crate::capture::SinkError { Box::new(e) })
        });
        let absorbed = match absorbed {
            Ok(a) => a,
            Err(e) => {
                let e = match e.downcast::<SenderError>() {
                    Ok(e) => *e,
                    Err(e) => match e.downcast::<crate::capture::SourceError>() {
                        Ok(e) => SenderError::Source(*e),
                        Err(e) => match e.downcast::<gapsync_common::db::DbError>() {
                            Ok(e) => SenderError::Source((*e).into()),
                            Err(e) => SenderError::Source(crate::capture::SourceError::Corrupt(
                                e.to_string(),
                            )),
                        },
                    },
                };
                // Files of an abandoned snapshot have no record: remove them now, so
                // their seqs are free for the next batch. One that cannot be removed is
                // removed by the outbox recovery (`recover_outbox`) at the next start.
                for (w, _) in &finished {
                    let _ = std::fs::remove_file(&w.path);
                }
                return Err(e);
            }
        };
        // The last batch (the first, too, of a table with no row left: it carries the
        // CREATE TABLE and DELETE).
        if (pending.count() > 0 || finished.is_empty())
            && let Err(e) = flush(&mut pending, &mut finished)
        {
            for (w, _) in &finished {
                // As above: unrecorded files; one left behind is removed (and named in
                // the log) by the outbox recovery at the next start.
                let _ = std::fs::remove_file(&w.path);
            }
            return Err(e);
        }
        let records: Vec<BatchRecord> = finished.iter().map(|(w, h)| self.record(w, h)).collect();
        let carried = vec![Vec::new(); records.len()];
        self.source
            .commit_batches(&records, &carried, Some((table, &absorbed)))?;
        for r in &records {
            self.audit("built", r, "ok", &format!("snapshot {table}"));
        }
        if !rejected.is_empty() {
            for (_, _, reason) in rejected.iter().take(20) {
                error!(
                    alarm = true,
                    table,
                    reason,
                    "snapshot row rejected: the target dialect cannot express it; the rest of the table is shipped (status shows it)"
                );
            }
            if rejected.len() > 20 {
                error!(
                    alarm = true,
                    table,
                    rows = rejected.len(),
                    "snapshot rows rejected (the first 20 are logged; all are in _gapsync_rejected)"
                );
            }
            self.source.reject(&rejected)?;
        }
        info!(
            table,
            rows = rows_seen - rejected.len() as u64,
            rejected = rejected.len(),
            batches = records.len(),
            "snapshot cut"
        );
        Ok(records.iter().map(|r| r.seq).collect())
    }
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
