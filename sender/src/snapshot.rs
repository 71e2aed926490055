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
    /// an INSERT, in batches of at most `max_rows` rows. The rows are read in the same
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
        let mut writer: Option<(BatchWriter, BatchHeader)> = None;
        let mut records: Vec<BatchRecord> = Vec::new();
        let mut total = 0u64;
        let mut in_batch = 0u64;
        let mut buf = String::new();
        let mut rows_seen = 0u64;
        // Opens batch `i` of the snapshot, sized from the row count read in the same
        // transaction (the header states the statement count up front).
        let open = |i: u64, total: u64| -> Result<(BatchWriter, BatchHeader)> {
            let rows = total.saturating_sub(i * per).min(per);
            let extra = if i == 0 { 2 } else { 0 };
            let header = BatchHeader {
                node: node.clone(),
                seq: first_seq + i,
                created: batch::format_created(chrono::Utc::now()),
                dialect: d.name().to_owned(),
                kind: BatchKind::Snapshot,
                changes: None,
                statements: rows + extra,
            };
            let mut w = BatchWriter::create(&outbox, header.clone(), compress, 3)?
                .with_signer(signer.clone())?;
            if i == 0 {
                w.push(&create)?;
                w.push(&clear)?;
            }
            Ok((w, header))
        };
        let mut finished: Vec<(batch::WrittenBatch, BatchHeader)> = Vec::new();
        let mut sink = |ev: SnapshotEvent<'_>| -> Result<()> {
            let row = match ev {
                SnapshotEvent::Start { rows, .. } => {
                    total = rows;
                    writer = Some(open(0, total)?);
                    return Ok(());
                }
                SnapshotEvent::Row(row) => row,
            };
            if in_batch == per {
                if let Some((w, h)) = writer.take() {
                    finished.push((w.finish()?, h));
                }
                writer = Some(open(finished.len() as u64, total)?);
                in_batch = 0;
            }
            rows_seen += 1;
            if rows_seen > total {
                return Err(crate::capture::SourceError::Corrupt(format!(
                    "table {table} returned more rows than it counted"
                ))
                .into());
            }
            let (w, _) = writer.as_mut().ok_or_else(|| {
                crate::capture::SourceError::Corrupt("snapshot row before start".into())
            })?;
            buf.clear();
            d.render_insert(&spec.target, &cols, row, &mut buf)?;
            w.push(&buf)?;
            in_batch += 1;
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
                // their seqs are free for the next batch.
                drop(writer.take());
                for (w, _) in &finished {
                    let _ = std::fs::remove_file(&w.path);
                }
                return Err(e);
            }
        };
        if let Some((w, h)) = writer.take() {
            finished.push((w.finish()?, h));
        }
        for (w, h) in &finished {
            records.push(self.record(w, h));
        }
        let carried = vec![Vec::new(); records.len()];
        self.source
            .commit_batches(&records, &carried, Some((table, &absorbed)))?;
        for r in &records {
            self.audit("built", r, "ok", &format!("snapshot {table}"));
        }
        info!(
            table,
            rows = rows_seen,
            batches = records.len(),
            "snapshot cut"
        );
        Ok(records.iter().map(|r| r.seq).collect())
    }
}
