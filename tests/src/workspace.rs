//! A temporary workspace holding the nodes of a test.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::*;

// ------------------------------------------------------------------------ workspace

/// A temporary directory holding one receiver and one or more senders.
#[derive(Debug)]
pub struct Workspace {
    pub(crate) dir: Option<tempfile::TempDir>,
    pub(crate) path: PathBuf,
}

impl Workspace {
    /// A fresh temporary workspace; `name` appears in the directory name.
    pub fn new(name: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix(&format!("gapsync-{name}-"))
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        Workspace {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The receiver in `receiver/` (target database `receiver/replica.db`).
    pub fn receiver(&self, cfg: ReceiverConfig) -> ReceiverNode {
        self.receiver_in("receiver", cfg)
    }

    /// A receiver in `<sub>/` (e.g. a second, fresh target).
    pub fn receiver_in(&self, sub: &str, cfg: ReceiverConfig) -> ReceiverNode {
        let dir = self.path.join(sub);
        fs::create_dir_all(&dir).expect("create receiver dir");
        let node = ReceiverNode {
            config_path: dir.join("receiver.toml"),
            target_db: dir.join("replica.db"),
            work_dir: dir.join("rwork"),
            log: dir.join("receiver.log"),
            dir,
            root: self.path.clone(),
            cfg,
            addr: None,
            addr_text: String::new(),
            service: None,
        };
        node.write_config();
        node
    }

    /// The sender in `sender/` (source database `sender/plant.db`).
    pub fn sender(&self, cfg: SenderConfig) -> SenderNode {
        self.sender_in("sender", cfg)
    }

    /// A sender in `<sub>/`, for tests with several nodes (e.g. `sender-plant2`).
    pub fn sender_in(&self, sub: &str, cfg: SenderConfig) -> SenderNode {
        let dir = self.path.join(sub);
        fs::create_dir_all(&dir).expect("create sender dir");
        let node = SenderNode {
            config_path: dir.join("sender.toml"),
            source_db: dir.join("plant.db"),
            work_dir: dir.join("swork"),
            log: dir.join("sender.log"),
            dir,
            root: self.path.clone(),
            cfg,
            service: None,
        };
        node.write_config();
        node
    }

    /// The last `n` lines of every `*.log` file in the workspace (service logs).
    pub fn logs(&self, n: usize) -> String {
        logs_under(&self.path, n)
    }

    /// Poll until `f` returns `Some`; on timeout panic with `what` and the log tails.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        wait_for_with(what, timeout, || self.logs(30), f)
    }

    /// Poll until `f` returns true; on timeout panic with `what` and the log tails.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        self.wait_for(what, timeout, || f().then_some(()))
    }

    /// Wait until `tx` has nothing pending, no unanswered batch and no queued snapshot,
    /// and `rx`'s target has recorded (applied or quarantined) every seq `tx` cut.
    /// Only meaningful once the writers of the source have stopped.
    pub fn wait_synced(&self, tx: &SenderNode, rx: &ReceiverNode, timeout: Duration) {
        self.wait_until(
            &format!("node {} to be caught up on the target", tx.cfg.node),
            timeout,
            || {
                let p = tx.progress();
                p.pending == 0
                    && p.unanswered == 0
                    && p.queued_snapshots == 0
                    && rx.last_seq(&tx.cfg.node) == p.last_cut
            },
        );
    }
}

pub(crate) fn logs_under(root: &Path, n: usize) -> String {
    let mut out = String::new();
    let mut files = Vec::new();
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(rd2) = fs::read_dir(&p) {
                    files.extend(rd2.flatten().map(|e| e.path()));
                }
            } else {
                files.push(p);
            }
        }
    }
    files.retain(|p| p.extension().is_some_and(|x| x == "log"));
    files.sort();
    for f in files {
        let _ = writeln!(out, "--- last {n} lines of {}", f.display());
        let _ = writeln!(out, "{}", tail(&f, n));
    }
    out
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("GAPSYNC_KEEP").is_some();
        if keep && let Some(d) = self.dir.take() {
            let p = d.keep();
            eprintln!("gapsync test workspace kept at {}", p.display());
        }
    }
}

/// The common single-node set-up: a workspace, a started receiver and a sender whose
/// source database has `schema` and capture installed. Fields drop in order (sender,
/// receiver, workspace), so processes are gone before the directory.
#[derive(Debug)]
pub struct Rig {
    pub tx: SenderNode,
    pub rx: ReceiverNode,
    pub ws: Workspace,
}

impl Rig {
    /// Workspace `name`, receiver started with defaults, sender from `cfg` (its
    /// `connect` is set to the receiver), `schema` run on the source, `install` done.
    /// Nothing is snapshotted and the sender service is not started.
    pub fn new(name: &str, cfg: SenderConfig, schema: &str) -> Rig {
        let ws = Workspace::new(name);
        let mut rx = ws.receiver(ReceiverConfig::default());
        rx.start();
        let tx = ws.sender(cfg.connect(rx.addr()));
        tx.source()
            .execute_batch(schema)
            .unwrap_or_else(|e| panic!("creating the source schema: {e}\n{schema}"));
        tx.install();
        Rig { tx, rx, ws }
    }

    /// [`Workspace::wait_synced`] for this rig's pair.
    pub fn wait_synced(&self, timeout: Duration) {
        self.ws.wait_synced(&self.tx, &self.rx, timeout);
    }

    /// [`assert_synced`] for this rig's pair.
    pub fn assert_synced(&self) -> (usize, usize) {
        assert_synced(&self.tx, &self.rx)
    }
}
