//! The service loop (`run`): cut by strategy, ship, heartbeat, ride out source
//! outages, and retention of audit files and applied batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::capture::BatchState;
use crate::config::Strategy;
use crate::*;
use gapsync_common::batch::{self};
pub use gapsync_common::stop::sleep_unless;
use gapsync_protocol::LinkError;
use tracing::{error, info, warn};

impl Sender {
    /// Delete audit month files older than `[audit] keep_months` (at the start of the
    /// service and once a day); logs what was removed.
    pub fn prune_audit(&self) {
        let keep = self.cfg.audit_keep_months;
        match self.audit.prune(keep) {
            Ok(removed) => {
                for p in removed {
                    info!(file = %p.display(), keep_months = keep, "audit retention: removed an old audit file");
                }
            }
            Err(e) => warn!(error = %e, "audit retention: cannot prune old audit files"),
        }
    }

    /// Archive retention (`[archive] keep_days`; 0 keeps everything): delete the applied
    /// batches cut more than `keep_days` ago, by the `created` time of their record (the
    /// cut time, also in the file's header; a file's mtime can be touched by a copy or a
    /// backup restore): first their file in `archive/`, then their record in the source's
    /// `_gapsync_batches` ([`ChangeSource::prune_applied`]). Never a 'ready' or
    /// 'quarantined' batch, never the applied batch with the highest seq (status reports
    /// it as "last seq applied"), never a file in `outbox/` or `quarantine/`: an applied
    /// record whose file is still in `outbox/` (a move an interruption left for
    /// [`recover_outbox`](Self::recover_outbox)) is kept, and so is every record not older
    /// than it, so records and files always go together. A file that cannot be deleted
    /// keeps its record (and the newer ones) for the next day. The next seq lives in
    /// `_gapsync_state` and an applied batch has no tracking rows left, so cutting,
    /// shipping and the receiver's ledger are unaffected.
    pub fn prune_archive(&mut self) -> Result<ArchivePruned> {
        let mut done = ArchivePruned::default();
        let days = self.cfg.archive_keep_days;
        if days == 0 {
            return Ok(done);
        }
        let Some(cutoff) = chrono::TimeDelta::try_days(i64::from(days))
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        else {
            return Ok(done);
        };
        let mut before = batch::format_created(cutoff);
        let applied = self.source.batches(Some(BatchState::Applied))?;
        let Some(newest) = applied.iter().map(|r| r.seq).max() else {
            return Ok(done);
        };
        let outbox = self.dir("outbox");
        for r in &applied {
            if r.seq < newest && r.created < before && outbox.join(&r.file).exists() {
                warn!(seq = r.seq, file = %r.file, "archive retention: an applied batch is still in outbox/; keeping it and every newer record");
                before.clone_from(&r.created);
            }
        }
        let archive = self.dir("archive");
        for r in &applied {
            if r.seq >= newest || r.created >= before {
                continue;
            }
            let path = archive.join(&r.file);
            match std::fs::remove_file(&path) {
                Ok(()) => done.files += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "archive retention: cannot delete an archived batch; its record is kept");
                    if r.created < before {
                        before.clone_from(&r.created);
                    }
                }
            }
        }
        done.records = self.source.prune_applied(&before)?;
        done.oldest_kept = applied
            .iter()
            .filter(|r| r.seq >= newest || r.created >= before)
            .min_by_key(|r| r.seq)
            .map(|r| (r.seq, r.created.clone()));
        if done.files > 0 || done.records > 0 {
            let (kept_seq, kept_created) = done.oldest_kept.clone().unwrap_or_default();
            info!(
                files = done.files,
                records = done.records,
                keep_days = days,
                oldest_kept_seq = kept_seq,
                oldest_kept_created = %kept_created,
                "archive retention: removed old applied batches"
            );
        }
        Ok(done)
    }

    /// Audit and archive retention (at the start of the service and once a day). A
    /// failure is logged and tried again the next day: retention never stops the service.
    pub(crate) fn retention(&mut self) {
        self.prune_audit();
        if let Err(e) = self.prune_archive() {
            warn!(error = %e, "archive retention: cannot prune old applied batches (tried again in a day)");
        }
    }

    /// The service loop: cut by strategy, ship, heartbeat while idle, until `stop`.
    ///
    /// A source database that is unavailable ([`SenderError::source_unavailable`]: locked
    /// beyond the busy timeout, its disk failing, a server restarting or its connection
    /// cut) does not stop the service: the error is logged (an alarm when the outage
    /// starts), the pass is retried after a capped backoff, and when the source answers
    /// again (a server source reconnected) the outbox is first reconciled with the batch
    /// records ([`recover_outbox`](Self::recover_outbox)). So a cut the outage interrupted
    /// leaves no file behind (its changes are still pending and are cut again), and a
    /// batch answered "applied" whose record could not be updated stays 'ready' and is
    /// sent again: the receiver answers it from its ledger without executing it. Nothing
    /// is counted as a failed apply. Every other error stops the service.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        self.refuse_if_halted()?;
        let mut clock: Option<StrategyClock> = None;
        let mut last_beat = Instant::now();
        self.retention();
        let mut pruned = Instant::now();
        let mut down_since: Option<Instant> = None;
        let mut stats = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if pruned.elapsed() >= AUDIT_PRUNE_EVERY {
                self.retention();
                pruned = Instant::now();
            }
            if stats.elapsed() >= STATS_EVERY {
                stats = Instant::now();
                let m = &self.metrics;
                info!(
                    batches_cut = m.batches_cut.get(),
                    changes_cut = m.changes_cut.get(),
                    applied = m.batches_applied.get(),
                    quarantined = m.batches_quarantined.get(),
                    sent_bytes = m.sent_bytes.get(),
                    pending = m.pending_changes.get(),
                    lag_s = m.lag_seconds.get(),
                    "statistics since start"
                );
            }
            let pass = if down_since.is_some() {
                self.source_back()
                    .and_then(|()| self.pass(&mut clock, &mut last_beat, stop))
            } else {
                self.pass(&mut clock, &mut last_beat, stop)
            };
            match pass {
                Ok(idle) => {
                    if let Some(since) = down_since.take() {
                        self.source_backoff.reset();
                        info!(down_for = ?since.elapsed(), "source database available again");
                    }
                    if idle {
                        sleep_unless(stop, self.cfg.batch.poll);
                    }
                }
                Err(e) if e.source_unavailable() => {
                    let delay = self.source_backoff.next_delay();
                    match down_since {
                        None => {
                            down_since = Some(Instant::now());
                            warn!(alarm = true, error = %e, retry_in = ?delay, "source database unavailable: waiting for it (nothing cut is lost)");
                        }
                        Some(since) => {
                            warn!(error = %e, retry_in = ?delay, down_for = ?since.elapsed(), "source database still unavailable");
                        }
                    }
                    sleep_unless(stop, delay);
                }
                Err(e) => return Err(e),
            }
        }
        info!("stopping: no frame in flight");
        Ok(())
    }

    /// After the source was unavailable: reconnect (a server source) and reconcile the
    /// outbox with the batch records before cutting or shipping again.
    pub(crate) fn source_back(&mut self) -> Result<()> {
        self.source.reconnect()?;
        self.recover_outbox()
    }

    /// One pass of the service loop: snapshots, a cut by strategy, shipping, a heartbeat
    /// when idle for long. Ok(true): wait `poll` before the next pass; Ok(false): go on
    /// at once (a link fault already waited its backoff).
    pub(crate) fn pass(
        &mut self,
        clock: &mut Option<StrategyClock>,
        last_beat: &mut Instant,
        stop: &AtomicBool,
    ) -> Result<bool> {
        if clock.is_none() {
            *clock = Some(StrategyClock::new(self.source.last_change_id()?));
        }
        let Some(clock) = clock.as_mut() else {
            return Ok(true);
        };
        self.cut_snapshots()?;
        self.cut_by_strategy(clock)?;
        self.write_metrics();
        match self.ship_ready(stop, Some(1)) {
            Ok(r) => {
                if !r.applied.is_empty() || !r.dropped.is_empty() {
                    *last_beat = Instant::now();
                }
            }
            Err(SenderError::Link(LinkError::Refused)) => {
                return Err(SenderError::Link(LinkError::Refused));
            }
            Err(SenderError::Link(e)) => {
                let e = SenderError::Link(e);
                self.link_fault(&e, stop);
                return Ok(false);
            }
            // The ferry's folder is gone (unmounted), full, unwritable or holds a
            // conflicting file: an alarm, then the same backoff as a link fault. Cutting
            // goes on; what waits stays in outbox/ and `status` shows the error.
            Err(SenderError::Publish(e)) => {
                let e = SenderError::Publish(e);
                error!(alarm = true, error = %e, "cannot publish to the folder link; retrying with backoff");
                self.link_fault(&e, stop);
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        if last_beat.elapsed() >= self.cfg.link.heartbeat {
            *last_beat = Instant::now();
            match self.heartbeat() {
                Err(SenderError::Link(LinkError::Refused)) => {
                    return Err(SenderError::Link(LinkError::Refused));
                }
                Err(e) => self.link_fault(&e, stop),
                Ok(()) => {}
            }
        }
        Ok(true)
    }

    pub(crate) fn cut_by_strategy(&mut self, clock: &mut StrategyClock) -> Result<()> {
        let now = Instant::now();
        let last_id = self.source.last_change_id()?;
        if last_id != clock.last_id {
            clock.last_id = last_id;
            clock.last_activity = now;
        }
        match &self.cfg.batch.strategy {
            Strategy::Immediate => {
                self.cut_pending()?;
            }
            Strategy::Interval(d) => {
                if now.duration_since(clock.last_cut) >= *d {
                    clock.last_cut = now;
                    self.cut_pending()?;
                }
            }
            Strategy::Count(n) => {
                let n = *n;
                while self.source.pending_at_least(n)? {
                    self.cut_batch(n, i64::MAX)?;
                }
            }
            Strategy::Idle(d) => {
                if now.duration_since(clock.last_activity) >= *d {
                    self.cut_pending()?;
                }
            }
            Strategy::At(times) => {
                let wall = chrono::Utc::now();
                if crate::schedule::due(&chrono::Local, times, clock.last_check, wall) {
                    self.cut_pending()?;
                }
                clock.last_check = wall;
            }
        }
        Ok(())
    }
}

/// Timing state of the batch strategies.
#[derive(Debug)]
pub(crate) struct StrategyClock {
    pub(crate) last_cut: Instant,
    pub(crate) last_activity: Instant,
    pub(crate) last_id: i64,
    /// `at`: the wall-clock time of the last check (times before the service started
    /// are not caught up: what is pending then waits for the next time).
    pub(crate) last_check: chrono::DateTime<chrono::Utc>,
}

impl StrategyClock {
    pub(crate) fn new(last_id: i64) -> Self {
        let now = Instant::now();
        StrategyClock {
            last_cut: now,
            last_activity: now,
            last_id,
            last_check: chrono::Utc::now(),
        }
    }
}
