//! The SQLite source's batch bookkeeping: batch records written with the changes they
//! carry (and the changes a snapshot absorbs), rejected changes, and the records read back.
//! [`ChangeSource`]'s methods for them in `mod.rs` call these.

use super::*;

impl SqliteSource {
    /// [`ChangeSource::commit_batches`] on SQLite.
    pub(super) fn write_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
        progress: Option<(i64, &SnapshotProgress)>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO _gapsync_batches(seq, kind, file, size, sha256, statements, \
                 changes, first_id, last_id, state, attempts, reason, created, updated) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?13, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
            )?;
            let mut mark = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch=?1 WHERE id=?2 AND batch IS NULL",
            )?;
            let mut mark_range = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch=?1 WHERE id BETWEEN ?2 AND ?3 AND batch IS NULL",
            )?;
            for (i, r) in records.iter().enumerate() {
                ins.execute(params![
                    r.seq as i64,
                    r.kind,
                    r.file,
                    r.size as i64,
                    r.sha256,
                    r.statements as i64,
                    r.first_id,
                    r.last_id,
                    r.state.as_str(),
                    r.attempts,
                    r.reason,
                    r.created,
                    r.changes as i64
                ])?;
                let ids = carried.get(i).map(Vec::as_slice).unwrap_or_default();
                // Consecutive ids (the usual cut): one range update marks exactly them,
                // and its count proves every one of them was still pending.
                if let (Some(&lo), Some(&hi)) = (ids.first(), ids.last())
                    && hi.checked_sub(lo).and_then(|d| d.checked_add(1))
                        == i64::try_from(ids.len()).ok()
                {
                    let n = mark_range.execute(params![r.seq as i64, lo, hi])?;
                    if n != ids.len() {
                        return Err(SourceError::Corrupt(format!(
                            "changes {lo}..={hi}: {n} of {} still pending; some vanished or were already in a batch",
                            ids.len()
                        )));
                    }
                    continue;
                }
                for id in ids {
                    if mark.execute(params![r.seq as i64, id])? != 1 {
                        return Err(SourceError::Corrupt(format!(
                            "change {id} vanished or was already in a batch"
                        )));
                    }
                }
            }
            if let (Some((table, absorbed)), Some(last)) = (absorbed, records.last()) {
                let n = match absorbed {
                    Absorbed::UpTo(max_id) => tx.execute(
                        "UPDATE _gapsync_changes SET batch=?1 WHERE tbl=?2 AND id<=?3 AND batch IS NULL",
                        params![last.seq as i64, table, max_id],
                    )?,
                    Absorbed::Ids(ids) => {
                        let mut n = 0;
                        for (lo, hi) in id_runs(ids) {
                            n += mark_range.execute(params![last.seq as i64, lo, hi])?;
                        }
                        n
                    }
                };
                tx.execute(
                    "UPDATE _gapsync_batches SET changes = changes + ?2 WHERE seq=?1",
                    params![last.seq as i64, n as i64],
                )?;
            }
            if let Some(last) = records.last() {
                tx.execute(
                    "INSERT INTO _gapsync_state(key, value) VALUES ('next_seq', ?1) \
                     ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    [last.seq as i64 + 1],
                )?;
            }
            if let Some((req, p)) = progress {
                tx.execute(
                    "DELETE FROM _gapsync_state WHERE substr(key, 1, ?2) = ?1",
                    params![
                        SnapshotProgress::prefix(req),
                        SnapshotProgress::prefix(req).len() as i64
                    ],
                )?;
                for (name, value) in p.entries(req) {
                    tx.execute(
                        "INSERT INTO _gapsync_state(key, value) VALUES (?1, ?2)",
                        params![name, value],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// [`ChangeSource::reject`] on SQLite.
    pub(super) fn write_rejected(
        &mut self,
        rejected: &[(Option<i64>, String, String)],
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO _gapsync_rejected(change_id, tbl, what, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut mark = tx.prepare_cached(
                "UPDATE _gapsync_changes SET batch = 0 WHERE id = ?1 AND batch IS NULL",
            )?;
            for (id, tbl, reason) in rejected {
                let what = if id.is_some() { "change" } else { "snapshot" };
                ins.execute(params![id, tbl, what, reason, now()])?;
                if let Some(id) = id {
                    mark.execute([id])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// [`ChangeSource::batches`] on SQLite.
    pub(super) fn read_batches(&mut self, state: Option<BatchState>) -> Result<Vec<BatchRecord>> {
        self.require_installed()?;
        let mut stmt = self.conn.prepare(
            "SELECT seq, kind, file, size, sha256, statements, first_id, last_id, state, \
             attempts, reason, created, changes, updated FROM _gapsync_batches \
             WHERE ?1 IS NULL OR state=?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([state.map(BatchState::as_str)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, u32>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, String>(13)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                seq,
                kind,
                file,
                size,
                sha256,
                statements,
                first_id,
                last_id,
                st,
                attempts,
                reason,
                created,
                changes,
                updated,
            ) = row?;
            out.push(BatchRecord {
                seq: seq as u64,
                kind,
                file,
                size: size as u64,
                sha256,
                statements: statements as u64,
                changes: changes as u64,
                first_id,
                last_id,
                state: BatchState::parse(&st)?,
                attempts,
                reason,
                created,
                updated,
            });
        }
        Ok(out)
    }
}
