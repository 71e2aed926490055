//! Cutting: pending tracking rows are rendered into statements (REPLACE pairs
//! resolved), written as a batch file in `outbox/`, and recorded with the rows they
//! carry in one source transaction.

use crate::capture::{Change, Op};
use crate::*;
use gapsync_common::batch::{BatchKind, BatchWriter};
use gapsync_common::value::Value;
use tracing::{error, info};

impl Sender {
    /// The rendering data of a layout, computed once (this runs for every change).
    pub(crate) fn render_info(&mut self, layout: i64) -> Result<&Render> {
        if !self.renders.contains_key(&layout) {
            let l = self.source.layout(layout)?;
            let t = self
                .cfg
                .tables
                .iter()
                .find(|t| t.source == l.table)
                .ok_or_else(|| SenderError::UnknownTable(l.table.clone()))?;
            let map = |c: &String| t.rename.get(c).cloned().unwrap_or_else(|| c.clone());
            let r = Render {
                target: t.target.clone(),
                columns: l.columns.iter().map(map).collect(),
                key: l.key.iter().map(map).collect(),
            };
            self.renders.insert(layout, r);
        }
        Ok(&self.renders[&layout])
    }

    pub(crate) fn render_change(&mut self, c: &Change, out: &mut String) -> Result<()> {
        let d = self.cfg.dialect;
        let r = self.render_info(c.layout)?;
        let cols: Vec<&str> = r.columns.iter().map(String::as_str).collect();
        let key: Vec<&str> = r.key.iter().map(String::as_str).collect();
        out.clear();
        match c.op {
            Op::Insert => d.render_insert(&r.target, &cols, &c.row, out)?,
            Op::Update => d.render_update(&r.target, &cols, &c.row, &key, &c.old_key, out)?,
            Op::Delete | Op::Displaced => d.render_delete(&r.target, &key, &c.old_key, out)?,
        }
        Ok(())
    }

    /// Render changes into statements: `text` holds them back to back, `ends[i]` is
    /// where statement `i` ends. `R` rows (rows a REPLACE displaced) become a DELETE
    /// only when the next change is the INSERT of the very row they recorded; otherwise
    /// the insert was ignored, failed or turned into an upsert's UPDATE, and they are
    /// dropped (see `crate::capture`).
    ///
    /// A change the target's dialect cannot express (e.g. NUL in PostgreSQL text) is
    /// returned in `rejected` with the reason instead of stopping the pipeline.
    pub(crate) fn render_changes(&mut self, changes: &[Change]) -> Result<Rendered> {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(changes.len());
        let mut rejected = Vec::new();
        let mut buf = String::new();
        let mut i = 0;
        while i < changes.len() {
            let c = &changes[i];
            if c.op != Op::Displaced {
                match self.render_change(c, &mut buf) {
                    Ok(()) => {
                        text.push_str(&buf);
                        ends.push(text.len());
                    }
                    Err(SenderError::Render(e)) => {
                        rejected.push((Some(c.id), c.table.clone(), e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
                i += 1;
                continue;
            }
            let j = changes[i..]
                .iter()
                .position(|d| d.op != Op::Displaced)
                .map_or(changes.len(), |p| i + p);
            if let Some(ins) = changes
                .get(j)
                .filter(|n| n.op == Op::Insert && n.table == c.table)
            {
                let mut deleted: Vec<&[Value]> = Vec::new();
                for d in &changes[i..j] {
                    let replaced = d.table == ins.table && same_row(&d.row, &ins.row);
                    if replaced && !deleted.iter().any(|k| same_row(k, &d.old_key)) {
                        deleted.push(&d.old_key);
                        let dialect = self.cfg.dialect;
                        let r = self.render_info(d.layout)?;
                        let key: Vec<&str> = r.key.iter().map(String::as_str).collect();
                        buf.clear();
                        dialect.render_delete(&r.target, &key, &d.old_key, &mut buf)?;
                        text.push_str(&buf);
                        ends.push(text.len());
                    }
                }
            }
            i = j;
        }
        Ok(Rendered {
            text,
            ends,
            rejected,
        })
    }

    /// Cut one batch of up to `limit` pending changes with ids up to `up_to`. Returns
    /// its seq, or None when nothing is pending.
    pub fn cut_batch(&mut self, limit: u64, up_to: i64) -> Result<Option<u64>> {
        Ok(self
            .cut_batch_after(i64::MIN, limit, up_to)?
            .map(|(seq, _)| seq))
    }

    /// [`cut_batch`](Self::cut_batch) for the next cut of a pass that has just cut every
    /// pending change up to `after` ([`ChangeSource::read_pending_after`]: without it
    /// each cut of a large backlog would step over every row cut before it, quadratic
    /// in the backlog). Returns the seq and the last change id it carries.
    pub(crate) fn cut_batch_after(
        &mut self,
        after: i64,
        limit: u64,
        up_to: i64,
    ) -> Result<Option<(u64, i64)>> {
        let changes = self.source.read_pending_after(after, limit, up_to)?;
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return Ok(None);
        };
        let (first, last) = (first.id, last.id);
        let Rendered {
            text,
            ends,
            rejected,
        } = self.render_changes(&changes)?;
        if !rejected.is_empty() {
            for (id, table, reason) in &rejected {
                error!(alarm = true, change = ?id, table, reason, "change rejected: the target dialect cannot express it; its tracking row is kept (status shows it)");
            }
            self.source.reject(&rejected)?;
        }
        let seq = self.source.next_seq()?;
        let header = self.header(
            seq,
            BatchKind::Changes,
            Some((first, last)),
            ends.len() as u64,
        );
        let mut w = BatchWriter::create(
            &self.dir("outbox"),
            header.clone(),
            self.cfg.batch.compress,
            3,
        )?
        .with_signer(self.signer.clone())?;
        let mut start = 0;
        for end in ends {
            w.push(&text[start..end])?;
            start = end;
        }
        let written = w.finish()?;
        let mut rec = Self::record(&written, &header);
        let ids: Vec<i64> = changes
            .iter()
            .map(|c| c.id)
            .filter(|id| !rejected.iter().any(|r| r.0 == Some(*id)))
            .collect();
        rec.changes = ids.len() as u64;
        self.source
            .commit_batches(std::slice::from_ref(&rec), &[ids], None)?;
        self.metrics.batches_cut.inc();
        self.metrics.changes_cut.inc_by(changes.len() as u64);
        info!(seq, file = %rec.file, changes = changes.len(), size = rec.size, "batch cut");
        self.audit("built", &rec, "ok", "changes");
        Ok(Some((seq, last)))
    }

    /// Cut every change pending now into batches of at most `max_rows`; changes that
    /// arrive meanwhile wait for the next cut.
    pub fn cut_pending(&mut self) -> Result<Vec<u64>> {
        let up_to = self.source.max_change_id()?;
        let mut seqs = Vec::new();
        let mut after = i64::MIN;
        while let Some((seq, last)) = self.cut_batch_after(after, self.cfg.batch.max_rows, up_to)? {
            seqs.push(seq);
            after = last;
        }
        Ok(seqs)
    }
}

/// Per-layout rendering data: target table, target column names, target key names.
#[derive(Debug, Clone)]
pub(crate) struct Render {
    pub(crate) target: String,
    pub(crate) columns: Vec<String>,
    pub(crate) key: Vec<String>,
}

/// Statements rendered back to back (`ends[i]`: where statement `i` ends) and the
/// changes that could not be rendered: (change id, table, reason).
pub(crate) struct Rendered {
    pub(crate) text: String,
    pub(crate) ends: Vec<usize>,
    pub(crate) rejected: Vec<(Option<i64>, String, String)>,
}

/// Two rows (or keys) hold exactly the same values (floats by bit pattern).
pub(crate) fn same_row(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
}
