//! A sender node: its config, source database, service process and views.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use rusqlite::Connection;

use crate::*;

// ------------------------------------------------------------------------ sender

/// What the sender's own tables say (read directly from the source database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderProgress {
    /// Tracking rows with `batch IS NULL`.
    pub pending: u64,
    /// Batches in state 'ready' (cut, not answered "applied").
    pub unanswered: u64,
    pub quarantined: u64,
    /// Queued snapshot requests.
    pub queued_snapshots: u64,
    /// Highest seq cut (0: none).
    pub last_cut: u64,
}

/// A row of the source's `_gapsync_batches`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub seq: u64,
    /// `changes` or `snapshot`.
    pub kind: String,
    pub file: String,
    pub statements: u64,
    /// Tracking rows the batch carries (a REPLACE's displaced-row markers make this
    /// differ from `statements`).
    pub changes: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// `ready`, `applied` or `quarantined`.
    pub state: String,
    pub attempts: u32,
    /// UTC time the batch was cut (RFC 3339).
    pub created: String,
}

/// One sender node: its directory, config, source database and (maybe) running service.
#[derive(Debug)]
pub struct SenderNode {
    pub cfg: SenderConfig,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub source_db: PathBuf,
    /// `[work] dir`: outbox/, archive/, quarantine/, audit/, state/.
    pub work_dir: PathBuf,
    /// stderr+stdout of `run`.
    pub log: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) service: Option<Service>,
}

impl SenderNode {
    /// (Re)write `sender.toml` from `self.cfg`.
    pub fn write_config(&self) {
        fs::write(
            &self.config_path,
            self.cfg.toml(&self.source_db, &self.work_dir),
        )
        .expect("write sender.toml");
    }

    /// Point the sender at a receiver address (rewrites the config).
    pub fn set_connect(&mut self, addr: &str) {
        self.cfg.connect = addr.to_owned();
        self.write_config();
    }

    /// A new connection to the source database (the plant's side).
    pub fn source(&self) -> Connection {
        open_db(&self.source_db)
    }

    /// Run `gapsync-sender -c sender.toml ARGS` to completion (120 s limit).
    pub fn exec(&self, args: &[&str]) -> CmdOutput {
        self.exec_timeout(args, secs(120))
    }

    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let cfg = self.config_path.display().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        run_command(&sender_bin(), &all, &self.dir, timeout)
    }

    /// `install` (must succeed).
    pub fn install(&self) -> CmdOutput {
        // The tests queue their snapshots themselves (`snapshot`), when they want one.
        self.exec(&["install", "--no-snapshot"]).expect_success()
    }

    /// `snapshot TABLE...` (empty: all tables); only queues (must succeed).
    pub fn snapshot(&self, tables: &[&str]) -> CmdOutput {
        let mut args = vec!["snapshot"];
        args.extend_from_slice(tables);
        self.exec(&args).expect_success()
    }

    /// `once` (must succeed).
    pub fn once(&self) -> CmdOutput {
        self.exec(&["once"]).expect_success()
    }

    /// `status --json`, parsed.
    /// `status --json` (exit 0, 1 or 2: ok, warning, critical; a halted node has `halted`).
    pub fn status(&self) -> serde_json::Value {
        // The exit status is the monitoring verdict (0 ok, 1 warning, 2 critical): the
        // JSON is there in every case.
        let out = self.exec(&["status", "--json"]);
        let out = if matches!(out.status.code(), Some(1 | 2)) {
            out
        } else {
            out.expect_success()
        };
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// Start `gapsync-sender run` in the background.
    pub fn start(&mut self) {
        assert!(
            self.service.is_none(),
            "sender {} already started",
            self.cfg.node
        );
        let cfg = self.config_path.display().to_string();
        self.service = Some(Service::spawn(
            &sender_bin(),
            &["-c", &cfg, "run"],
            &self.dir,
            &self.log,
        ));
    }

    /// Whether `run` was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        self.service.as_mut().is_some_and(|s| s.exited().is_none())
    }

    /// SIGTERM the service and wait (30 s) for it to exit; panics unless it exits 0.
    pub fn stop(&mut self) -> ExitStatus {
        let st = self.terminate(secs(30));
        assert!(
            st.success(),
            "sender {} exited with {st} after SIGTERM\n{}",
            self.cfg.node,
            tail(&self.log, 40)
        );
        st
    }

    /// SIGTERM the service and return its exit status (SIGKILL after `timeout`, then
    /// panic).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut svc = self.service.take().expect("sender not started");
        terminate(&mut svc, timeout, &self.log)
    }

    /// SIGHUP the running service (a reload).
    pub fn hangup(&self) {
        let svc = self.service.as_ref().expect("sender not started");
        sighup(svc.child.id());
    }

    /// SIGKILL the service (a crash).
    pub fn kill(&mut self) -> ExitStatus {
        self.service.take().expect("sender not started").kill()
    }

    /// Wait for the service to exit by itself (e.g. a halt); None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = self
            .service
            .as_mut()
            .expect("sender not started")
            .wait_exit(timeout);
        if st.is_some() {
            self.service = None;
        }
        st
    }

    /// Pending / unanswered / queued counts and the last seq cut, read directly from the
    /// source database in one query.
    pub fn progress(&self) -> SenderProgress {
        let c = self.source();
        c.query_row(
            "SELECT (SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state='ready'), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state='quarantined'), \
                    (SELECT count(*) FROM _gapsync_requests), \
                    (SELECT coalesce(max(seq), 0) FROM _gapsync_batches)",
            [],
            |r| {
                Ok(SenderProgress {
                    pending: r.get::<_, i64>(0)? as u64,
                    unanswered: r.get::<_, i64>(1)? as u64,
                    quarantined: r.get::<_, i64>(2)? as u64,
                    queued_snapshots: r.get::<_, i64>(3)? as u64,
                    last_cut: r.get::<_, i64>(4)? as u64,
                })
            },
        )
        .unwrap_or_else(|e| panic!("reading sender progress (is it installed?): {e}"))
    }

    /// Every row of `_gapsync_batches`, by seq.
    pub fn batches(&self) -> Vec<BatchRow> {
        let c = self.source();
        let mut st = c
            .prepare(
                "SELECT seq, kind, file, statements, first_id, last_id, state, attempts, created, \
                 changes FROM _gapsync_batches ORDER BY seq",
            )
            .expect("prepare batches query");
        st.query_map([], |r| {
            Ok(BatchRow {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                file: r.get(2)?,
                statements: r.get::<_, i64>(3)? as u64,
                first_id: r.get(4)?,
                last_id: r.get(5)?,
                state: r.get(6)?,
                attempts: r.get(7)?,
                created: r.get(8)?,
                changes: r.get::<_, i64>(9)? as u64,
            })
        })
        .and_then(Iterator::collect)
        .expect("reading _gapsync_batches")
    }

    /// Batches of kind `changes` only.
    pub fn change_batches(&self) -> Vec<BatchRow> {
        self.batches()
            .into_iter()
            .filter(|b| b.kind == "changes")
            .collect()
    }

    /// Files in a work sub-directory (`outbox`, `archive`, `quarantine`), sorted.
    pub fn work_files(&self, sub: &str) -> Vec<PathBuf> {
        sorted_files(&self.work_dir.join(sub))
    }

    /// Log tail of this node's service.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// The whole log of this service ("" before it was written).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The workspace's log tails (all services), for messages.
    pub fn all_logs(&self) -> String {
        logs_under(&self.root, 30)
    }
}

pub(crate) fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub(crate) fn terminate(svc: &mut Service, timeout: Duration, log: &Path) -> ExitStatus {
    if let Some(st) = svc.exited() {
        return st;
    }
    sigterm(svc.child.id());
    match svc.wait_exit(timeout) {
        Some(st) => st,
        None => {
            svc.kill();
            panic!(
                "`{}` did not exit within {timeout:?} of SIGTERM\n{}",
                svc.what,
                tail(log, 40)
            );
        }
    }
}
