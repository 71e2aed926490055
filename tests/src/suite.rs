//! Building blocks of the reliability suite (`tests/tests/reliability.rs`) and of the
//! soak run (`gapsync-soak`): a sender and a receiver with a `gapsync-gap` between them,
//! and the end-of-case checks every case shares (row-by-row comparison, every seq in the
//! ledger exactly once).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::plant::{self, ALARM, ALARMS, METER_READING};
use crate::{
    BackgroundWriter, BatchRow, GapNode, ReceiverConfig, ReceiverNode, Rng, SenderConfig,
    SenderNode, Table, Workspace, assert_contiguous, assert_synced, secs,
};

/// The mixed workload's tables: `meter_reading` (inserts, updates, key changes,
/// deletes) and `alarm` (Chinese and hostile text, binary data).
pub fn mix_schema() -> String {
    format!("{METER_READING}; {ALARM}")
}

/// `cfg` with the mixed workload's tables.
pub fn mix_tables(cfg: SenderConfig) -> SenderConfig {
    cfg.table(Table::new("meter_reading"))
        .table(Table::new("alarm"))
}

/// Where the mixed workload's ids continue (ids of both tables only grow).
#[derive(Debug, Clone, Copy)]
pub struct MixIds {
    pub meter: i64,
    pub alarm: i64,
}

impl Default for MixIds {
    fn default() -> Self {
        MixIds { meter: 1, alarm: 1 }
    }
}

/// One random change of the mixed workload: 4 in 5 on `meter_reading`, 1 in 5 on
/// `alarm` (insert with a random blob, text update, delete).
pub fn mix_change(conn: &Connection, rng: &mut Rng, ids: &mut MixIds) -> rusqlite::Result<()> {
    if rng.below(5) > 0 {
        let hi = ids.meter.max(2);
        return plant::meter_step(conn, rng, &mut ids.meter, 1, hi);
    }
    let pick = rng.range(1, ids.alarm.max(2));
    match rng.below(10) {
        0..=5 => {
            let id = ids.alarm;
            ids.alarm += 1;
            let raw: Vec<u8> = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect();
            conn.execute(
                "INSERT INTO alarm(id, text, raw) VALUES (?1, ?2, ?3)",
                params![id, *rng.pick(ALARMS), raw],
            )?;
        }
        6..=8 => {
            conn.execute(
                "UPDATE alarm SET text = ?2 || ' (确认)' WHERE id = ?1",
                params![pick, *rng.pick(ALARMS)],
            )?;
        }
        _ => {
            conn.execute("DELETE FROM alarm WHERE id = ?1", params![pick])?;
        }
    }
    Ok(())
}

/// A writer making `per_step` mixed changes per source transaction, one transaction
/// every `period` (step n is due at start + n * period, whatever a step costs: a steady
/// rate).
pub fn mix_writer(db: &Path, seed: u64, per_step: u32, period: Duration) -> BackgroundWriter {
    let mut ids = MixIds::default();
    BackgroundWriter::paced(db, seed, period, move |c, rng, _| {
        // Ids taken by a transaction that failed busy stay taken: harmless.
        c.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..per_step {
            if let Err(e) = mix_change(c, rng, &mut ids) {
                let _ = c.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        c.execute_batch("COMMIT")
    })
}

/// A receiver, a `gapsync-gap` in front of it and a sender connected through the gap.
/// Fields drop in order: sender, gap, receiver, then the workspace directory.
#[derive(Debug)]
pub struct GapRig {
    pub tx: SenderNode,
    pub gap: GapNode,
    pub rx: ReceiverNode,
    pub ws: Workspace,
}

impl GapRig {
    /// Workspace `name`; receiver from `rx_cfg`, started; `gapsync-gap` with `gap_args`
    /// in front of it; sender from `cfg` connected through the gap, `schema` run on its
    /// source, capture installed, every table snapshotted and the service started once
    /// the snapshot batches are in the ledger.
    pub fn start(
        name: &str,
        rx_cfg: ReceiverConfig,
        cfg: SenderConfig,
        schema: &str,
        gap_args: &[&str],
    ) -> GapRig {
        let ws = Workspace::new(name);
        let mut rx = ws.receiver(rx_cfg);
        rx.start();
        // Restarts (kill -9 cases) keep the port the gap forwards to.
        rx.pin_port();
        let gap = GapNode::start(&ws.path().join("gap"), rx.addr(), gap_args);
        let mut tx = ws.sender(cfg.connect(gap.addr()));
        tx.source()
            .execute_batch(schema)
            .unwrap_or_else(|e| panic!("creating the source schema: {e}\n{schema}"));
        tx.install();
        tx.snapshot(&[]);
        tx.start();
        ws.wait_synced(&tx, &rx, secs(60));
        GapRig { tx, gap, rx, ws }
    }

    /// [`Workspace::wait_synced`] for this rig's pair.
    pub fn wait_synced(&self, timeout: Duration) {
        self.ws.wait_synced(&self.tx, &self.rx, timeout);
    }

    /// Row-by-row comparison of every table plus [`assert_exactly_once`]; returns
    /// (tables, rows) compared.
    pub fn assert_converged(&self) -> (usize, usize) {
        let r = assert_synced(&self.tx, &self.rx);
        assert_exactly_once(&self.tx, &self.rx, &[]);
        r
    }

    /// Number of faults the gap logged, per kind (reset, flip, swallow, stall).
    pub fn faults(&self) -> [(&'static str, usize); 4] {
        ["reset", "flip", "swallow", "stall"].map(|k| (k, self.gap.count(&format!("fault: {k}"))))
    }
}

/// The ledger of the sender's node holds every seq it cut exactly once, except the seqs
/// in `quarantined`, which both sides hold in quarantine (and no other); every other
/// batch is 'applied' on the sender and nothing is left in its outbox.
pub fn assert_exactly_once(tx: &SenderNode, rx: &ReceiverNode, quarantined: &[u64]) {
    let node = tx.cfg.node.as_str();
    let ledger = rx.ledger_seqs(node);
    let last = tx.progress().last_cut;
    let want: Vec<u64> = (1..=last).filter(|s| !quarantined.contains(s)).collect();
    if quarantined.is_empty() {
        assert_contiguous(node, &ledger);
    }
    assert_eq!(
        ledger, want,
        "node {node}: the ledger must hold every seq 1..={last} exactly once, except the quarantined {quarantined:?}"
    );
    assert_eq!(
        rx.quarantined_seqs(node),
        quarantined,
        "node {node}: receiver quarantine"
    );
    let batches = tx.batches();
    let sender_q: Vec<u64> = batches
        .iter()
        .filter(|b| b.state == "quarantined")
        .map(|b| b.seq)
        .collect();
    assert_eq!(sender_q, quarantined, "node {node}: sender quarantine");
    let not_applied: Vec<&BatchRow> = batches
        .iter()
        .filter(|b| b.state != "applied" && !quarantined.contains(&b.seq))
        .collect();
    assert!(
        not_applied.is_empty(),
        "node {node}: batches not applied: {not_applied:?}"
    );
    assert_eq!(
        tx.work_files("outbox"),
        Vec::<std::path::PathBuf>::new(),
        "node {node}: files left in the sender's outbox"
    );
}

/// A tmpfs mounted on a directory (a small, separate file system, e.g. a receiver's
/// spool that can fill up); unmounted (lazily) on drop, so a failing test or run never
/// leaves a mount behind. Mounting needs root.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`2m`, `64m`, ...) on `dir`; Err names why not (not
    /// root, no `mount`).
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(Tmpfs(dir.to_owned())),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Err(format!("cannot run mount: {e}")),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system of `dir` with `dir/ballast` until it is full (ENOSPC), then
/// give back `free` bytes; returns the ballast's path (delete it: space returns).
pub fn fill_fs(dir: &Path, free: u64) -> std::io::Result<PathBuf> {
    let p = dir.join("ballast");
    let mut f = File::create(&p)?;
    let block = vec![0x5au8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let len = fs::metadata(&p)?.len();
    f.set_len(len.saturating_sub(free))?;
    f.sync_all()?;
    Ok(p)
}

/// A separate `sqlite3` process (the shell, installed by `deploy/ci-deps.sh`) holding
/// `BEGIN EXCLUSIVE` on a database file: another process locking a source or a target,
/// as an operator's tool or a stuck job would. Released by [`release`](Self::release)
/// (stdin closed: it rolls back and exits) or on drop (killed).
#[derive(Debug)]
pub struct SqliteLock {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl SqliteLock {
    /// Start `sqlite3 <db>` and take the lock (waiting up to 30 s for a transaction under
    /// way); returns once it is held.
    pub fn take(db: &Path) -> SqliteLock {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the sqlite3 shell (deploy/ci-deps.sh installs it): {e}")
            });
        let stdin = child.stdin.take().expect("sqlite3 stdin");
        let stdout = BufReader::new(child.stdout.take().expect("sqlite3 stdout"));
        let mut lock = SqliteLock {
            child,
            stdin: Some(stdin),
            stdout,
        };
        lock.send(".bail on\n.timeout 30000\nBEGIN EXCLUSIVE;\n");
        lock.ints("1");
        lock
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("lock released");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to the sqlite3 lock holder: {e}"));
    }

    /// `SELECT <exprs>` inside the lock, each expression an integer.
    pub fn ints(&mut self, exprs: &str) -> Vec<i64> {
        self.send(&format!("SELECT 'gapsync-lock', {exprs};\n"));
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line);
        let v: Option<Vec<i64>> = line
            .trim()
            .strip_prefix("gapsync-lock|")
            .map(|r| r.split('|').map(|x| x.parse().ok()).collect::<Option<_>>())
            .and_then(|v| v);
        v.unwrap_or_else(|| {
            panic!(
                "the sqlite3 lock holder answered {line:?} ({read:?}, exit: {:?})",
                self.child.try_wait()
            )
        })
    }

    /// Close the shell's stdin: it rolls back and exits, releasing the lock.
    pub fn release(mut self) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            assert!(
                t0.elapsed() < secs(10),
                "sqlite3 did not exit at end of input"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SqliteLock {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Held by every test of the reliability suite that uses the machine's PostgreSQL
/// server: the target-outage case stops that server, so no other test may use it
/// meanwhile (tests of one binary run in parallel).
pub fn postgres_exclusive() -> std::sync::MutexGuard<'static, ()> {
    static PG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked while holding it leaves nothing to repair: its guards
    // (e.g. the one restarting PostgreSQL) have run.
    PG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
