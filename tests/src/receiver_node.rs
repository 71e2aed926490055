//! A receiver node: its config, target database, service process and views.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use rusqlite::Connection;

use crate::*;

// ------------------------------------------------------------------------ receiver

/// A row of the target's `_gapsync_ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub node: String,
    pub seq: u64,
    pub sha256: String,
    pub file: String,
    pub statements: u64,
}

/// The receiver: its directory, config, target database and (maybe) running service.
#[derive(Debug)]
pub struct ReceiverNode {
    pub cfg: ReceiverConfig,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub target_db: PathBuf,
    /// `[work] dir`: spool/, quarantine/, audit/, state/.
    pub work_dir: PathBuf,
    pub log: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) addr_text: String,
    pub(crate) service: Option<Service>,
}

impl ReceiverNode {
    /// (Re)write `receiver.toml` from `self.cfg`.
    pub fn write_config(&self) {
        fs::write(
            &self.config_path,
            self.cfg.toml(&self.target_db, &self.work_dir),
        )
        .expect("write receiver.toml");
    }

    /// Start `gapsync-receiver run` and wait (20 s) until it listens; returns the address.
    pub fn start(&mut self) -> SocketAddr {
        assert!(self.service.is_none(), "receiver already started");
        let addr_file = self.work_dir.join("state").join("listen.addr");
        let _ = fs::remove_file(&addr_file);
        let cfg = self.config_path.display().to_string();
        let mut svc = Service::spawn(&receiver_bin(), &["-c", &cfg, "run"], &self.dir, &self.log);
        let log = self.log.clone();
        let addr = wait_for_with(
            "the receiver to write state/listen.addr",
            secs(20),
            || tail(&log, 40),
            || {
                if let Some(st) = svc.exited() {
                    panic!("receiver exited with {st} at start\n{}", tail(&log, 40));
                }
                let text = fs::read_to_string(&addr_file).ok()?;
                if !text.ends_with('\n') {
                    return None;
                }
                text.trim().parse::<SocketAddr>().ok()
            },
        );
        self.service = Some(svc);
        self.addr = Some(addr);
        self.addr_text = addr.to_string();
        addr
    }

    /// Start a folder-link receiver (`[link] dir`): there is no address to wait for;
    /// waits until its log says it runs.
    pub fn start_inbox(&mut self) {
        assert!(self.service.is_none(), "receiver already started");
        let cfg = self.config_path.display().to_string();
        let mut svc = Service::spawn(&receiver_bin(), &["-c", &cfg, "run"], &self.dir, &self.log);
        let log = self.log.clone();
        wait_for_with(
            "the receiver to watch its inbox",
            secs(20),
            || tail(&log, 40),
            || {
                if let Some(st) = svc.exited() {
                    panic!("receiver exited with {st} at start\n{}", tail(&log, 40));
                }
                fs::read_to_string(&log)
                    .ok()?
                    .contains("receiver running (folder link")
                    .then_some(())
            },
        );
        self.service = Some(svc);
    }

    /// The address the running receiver listens on, as `host:port`.
    pub fn addr(&self) -> &str {
        assert!(!self.addr_text.is_empty(), "receiver not started");
        &self.addr_text
    }

    /// Reuse the current port on the next [`start`](Self::start) (for restarts: the
    /// senders' configs keep pointing at it).
    pub fn pin_port(&mut self) {
        let a = self.addr.expect("receiver not started");
        self.cfg.listen = a.to_string();
        self.write_config();
    }

    pub fn is_running(&mut self) -> bool {
        self.service.as_mut().is_some_and(|s| s.exited().is_none())
    }

    /// SIGTERM the service and wait (30 s); panics unless it exits 0.
    pub fn stop(&mut self) -> ExitStatus {
        let mut svc = self.service.take().expect("receiver not started");
        let st = terminate(&mut svc, secs(30), &self.log);
        assert!(
            st.success(),
            "receiver exited with {st} after SIGTERM\n{}",
            tail(&self.log, 40)
        );
        st
    }

    /// SIGHUP the running service (a reload).
    pub fn hangup(&self) {
        let svc = self.service.as_ref().expect("receiver not started");
        sighup(svc.child.id());
    }

    /// SIGKILL the service (a crash).
    pub fn kill(&mut self) -> ExitStatus {
        self.service.take().expect("receiver not started").kill()
    }

    /// A new connection to the target database.
    pub fn target(&self) -> Connection {
        open_db(&self.target_db)
    }

    /// Run `gapsync-receiver -c receiver.toml ARGS` to completion (120 s limit).
    pub fn exec(&self, args: &[&str]) -> CmdOutput {
        let cfg = self.config_path.display().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        run_command(&receiver_bin(), &all, &self.dir, secs(120))
    }

    /// `apply FILE...` (the result is returned, not checked).
    pub fn apply(&self, files: &[&Path]) -> CmdOutput {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut args = vec!["apply"];
        args.extend(names.iter().map(String::as_str));
        self.exec(&args)
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.exec(&["status", "--json"]).expect_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// The ledger rows of `node`, by seq (empty if the target has no ledger yet).
    pub fn ledger(&self, node: &str) -> Vec<LedgerRow> {
        if !self.target_db.exists() {
            return Vec::new();
        }
        let c = self.target();
        let Ok(mut st) = c.prepare(
            "SELECT node, seq, sha256, file, statements FROM _gapsync_ledger \
             WHERE node=?1 ORDER BY seq",
        ) else {
            return Vec::new();
        };
        st.query_map([node], |r| {
            Ok(LedgerRow {
                node: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                sha256: r.get(2)?,
                file: r.get(3)?,
                statements: r.get::<_, i64>(4)? as u64,
            })
        })
        .and_then(Iterator::collect)
        .expect("reading _gapsync_ledger")
    }

    /// The seqs of `node` in the ledger, ascending.
    pub fn ledger_seqs(&self, node: &str) -> Vec<u64> {
        self.ledger(node).into_iter().map(|r| r.seq).collect()
    }

    /// The seqs of `node` in `_gapsync_quarantine`, ascending.
    pub fn quarantined_seqs(&self, node: &str) -> Vec<u64> {
        if !self.target_db.exists() {
            return Vec::new();
        }
        let c = self.target();
        let Ok(mut st) =
            c.prepare("SELECT seq FROM _gapsync_quarantine WHERE node=?1 ORDER BY seq")
        else {
            return Vec::new();
        };
        st.query_map([node], |r| Ok(r.get::<_, i64>(0)? as u64))
            .and_then(Iterator::collect)
            .expect("reading _gapsync_quarantine")
    }

    /// Highest seq of `node` the target recorded, applied or quarantined (0: none).
    pub fn last_seq(&self, node: &str) -> u64 {
        let a = self.ledger_seqs(node).last().copied().unwrap_or(0);
        let q = self.quarantined_seqs(node).last().copied().unwrap_or(0);
        a.max(q)
    }

    /// Files in a work sub-directory (`spool`, `quarantine`), sorted.
    pub fn work_files(&self, sub: &str) -> Vec<PathBuf> {
        sorted_files(&self.work_dir.join(sub))
    }

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

/// Panic unless `seqs` is exactly `1..=seqs.len()`.
pub fn assert_contiguous(node: &str, seqs: &[u64]) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "ledger seqs of node {node} are not exactly 1..=N"
    );
}
