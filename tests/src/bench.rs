//! `gapsync-bench`: the performance budgets (BENCHMARKS.md), each measured as a ratio
//! against a peer run beside it in the same run (never a timed assertion in a test).
//!
//! Every measurement runs the REAL binaries where a user would run them, and the peer on
//! the very same work:
//!
//! | row | ours | peer |
//! |---|---|---|
//! | `triggers` | the plant's writes (transactions of 1000) on a source with `gapsync-sender install`'s triggers | the same writes, same schema and WAL mode, no triggers |
//! | `sqlite` | `gapsync-receiver apply` of a 200k-statement batch cut by `gapsync-sender once` | `sqlite3 -bail` running the same file between `BEGIN;` / `COMMIT;` |
//! | `postgres` | the same, rendered for PostgreSQL, applied through ODBC | `psql -X -q -v ON_ERROR_STOP=1 -1 -f` of the same file |
//! | `mariadb` | the same, rendered for MySQL, applied through ODBC | `mariadb` of the same file between `START TRANSACTION;` / `COMMIT;`, session as the receiver's |
//! | `cut` | `gapsync-sender once` cutting 1M pending inserts (render, SHA-256, Ed25519, zstd, fsync, source bookkeeping) | `sqlite3 .dump` of the resulting 1M-row table into a file |
//! | `bytes` | bytes crossing a counting TCP relay between sender and receiver (both directions), compressed and signed, per change | the uncompressed SQL text of the same changes, per change |
//! | `memory` | peak RSS (VmHWM polled from `/proc`) of `gapsync-receiver apply` on a ~1 GiB snapshot batch | — |
//!
//! Before each apply the target gets the batch's table by applying the sender's
//! snapshot batch (seq 1) with `gapsync-receiver apply` (untimed), for ours and the peer
//! alike, so both start from the same state. After each run the row counts of ours
//! and the peer's target are compared (a peer that did less work would be a lie).

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::{
    ReceiverConfig, Rng, SenderConfig, SenderNode, Table, Workspace, receiver_bin, secs, sender_bin,
};

/// The plant-like source table.
pub const TABLE: &str = "plant_reading";

/// Its schema: integer key, Chinese point names, REAL, text timestamps, a BLOB.
pub const SCHEMA: &str = "CREATE TABLE plant_reading(\
    id INTEGER PRIMARY KEY, \
    point TEXT NOT NULL, \
    value REAL, \
    quality INTEGER, \
    ts TEXT, \
    raw BLOB)";

const POINTS: [&str; 12] = [
    "1号机组主汽温度",
    "1号机组主汽压力",
    "2号机组给水流量",
    "2号主变油温",
    "#3炉膛负压",
    "升压站220kV母线电压",
    "脱硫塔入口SO2浓度",
    "凝汽器真空",
    "发电机有功功率",
    "厂用电率",
    "汽包水位",
    "引风机电流",
];

/// Every measurement, by the name `--only` takes.
pub const ALL: [&str; 7] = [
    "triggers", "sqlite", "postgres", "mariadb", "cut", "bytes", "memory",
];

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Repetitions per measurement (the median is reported).
    pub reps: usize,
    /// Statements in the apply batches and writes in the trigger measurement.
    pub changes: u64,
    /// Changes cut in the `cut` measurement.
    pub cut_changes: u64,
    /// Size of the batch of the `memory` measurement.
    pub big_bytes: u64,
    /// Measurements to run (names from [`ALL`]).
    pub only: Vec<String>,
    /// Seed of the workload.
    pub seed: u64,
}

impl Opts {
    /// the budgets' sizes (`quick`: 20k statements, 100k changes, a 100 MiB batch).
    pub fn new(quick: bool, reps: usize) -> Opts {
        Opts {
            reps: reps.max(1),
            changes: if quick { 20_000 } else { 200_000 },
            cut_changes: if quick { 100_000 } else { 1_000_000 },
            big_bytes: if quick {
                100 << 20
            } else {
                (1 << 30) - (4 << 20)
            },
            only: ALL.iter().map(|s| (*s).to_owned()).collect(),
            seed: 7,
        }
    }

    fn wants(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }
}

/// The result of one measurement.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Durations of ours and the peer, one per repetition; budget as a ratio.
    Time {
        ours: Vec<Duration>,
        peer: Vec<Duration>,
        budget: f64,
    },
    /// Bytes per change, ours and the peer's; budget as a ratio.
    Bytes { ours: f64, peer: f64, budget: f64 },
    /// Peak resident memory in bytes (one per repetition) against a budget in bytes;
    /// `secs`: how long the apply took.
    Memory {
        peaks: Vec<u64>,
        budget: u64,
        secs: Vec<f64>,
        note: String,
    },
    /// Not measured, with the reason.
    Skipped(String),
    /// The measurement itself failed (the panic message).
    Failed(String),
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub outcome: Outcome,
}

fn median_d(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn fmt_d(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

impl Row {
    /// `| what | ours | peer | ratio | budget | verdict |`
    pub fn markdown(&self) -> String {
        let (ours, peer, ratio, budget, verdict) = match &self.outcome {
            Outcome::Time { ours, peer, budget } => {
                let (o, p) = (median_d(ours), median_d(peer));
                let r = o.as_secs_f64() / p.as_secs_f64().max(1e-9);
                (
                    fmt_d(o),
                    fmt_d(p),
                    format!("{r:.2}×"),
                    format!("≤ {budget:.1}×"),
                    verdict(r <= *budget),
                )
            }
            Outcome::Bytes { ours, peer, budget } => {
                let r = ours / peer.max(1e-9);
                (
                    format!("{ours:.1} B/change"),
                    format!("{peer:.1} B/change"),
                    format!("{r:.3}×"),
                    format!("≤ {budget:.1}×"),
                    verdict(r <= *budget),
                )
            }
            Outcome::Memory {
                peaks,
                budget,
                secs,
                note,
            } => {
                let max = peaks.iter().copied().max().unwrap_or(0);
                let t = secs.iter().copied().fold(0.0_f64, f64::max);
                (
                    format!("{} peak RSS ({t:.1} s; {note})", mib(max)),
                    "—".to_owned(),
                    "—".to_owned(),
                    format!("≤ {}", mib(*budget)),
                    verdict(max <= *budget),
                )
            }
            Outcome::Skipped(r) => (
                format!("skipped ({r})"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ),
            Outcome::Failed(r) => (
                format!("FAILED ({r})"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        format!(
            "| {} | {ours} | {peer} | {ratio} | {budget} | {verdict} |",
            self.what
        )
    }

    /// Every repetition, for the log.
    pub fn detail(&self) -> String {
        let list = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.outcome {
            Outcome::Time { ours, peer, .. } => format!(
                "{}: ours [{}] s, peer [{}] s",
                self.what,
                list(ours),
                list(peer)
            ),
            Outcome::Memory { peaks, secs, .. } => format!(
                "{}: peaks [{}], apply times [{}] s",
                self.what,
                peaks.iter().map(|p| mib(*p)).collect::<Vec<_>>().join(", "),
                secs.iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Outcome::Bytes { ours, peer, .. } => format!(
                "{}: {ours:.1} bytes per change crossed the gap, {peer:.1} bytes per change of uncompressed SQL",
                self.what
            ),
            o => format!("{}: {o:?}", self.what),
        }
    }
}

fn verdict(ok: bool) -> String {
    if ok { "within" } else { "OVER" }.to_owned()
}

/// The header of the result table.
pub const TABLE_HEADER: &str =
    "| what | ours | peer | ratio | budget | verdict |\n|---|---|---|---|---|---|";

fn log(msg: &str) {
    eprintln!("[bench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

// ------------------------------------------------------------------------ workload

/// The mix of a workload.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Percent of changes that update a live row.
    pub update_pct: u64,
    /// Percent of changes that delete a live row.
    pub delete_pct: u64,
    /// BLOB size in bytes.
    pub blob: usize,
    /// Writes per source transaction.
    pub tx_size: u64,
}

/// Inserts with some updates and deletes (80/15/5), 16-byte BLOBs, 1000 per transaction.
pub const PLANT_MIX: Mix = Mix {
    update_pct: 15,
    delete_pct: 5,
    blob: 16,
    tx_size: 1000,
};

/// Inserts only (for the cut: "as many rows" as changes).
pub const INSERTS: Mix = Mix {
    update_pct: 0,
    delete_pct: 0,
    blob: 16,
    tx_size: 1000,
};

struct Reading {
    point: &'static str,
    value: f64,
    quality: i64,
    ts: String,
    raw: Vec<u8>,
}

fn reading(rng: &mut Rng, id: i64, blob: usize) -> Reading {
    let p = rng.below(POINTS.len() as u64) as usize;
    let base = 50.0 * (p as f64 + 1.0);
    let value = base + rng.unit() * base * 0.05;
    let quality = if rng.chance(2) { 0 } else { 192 };
    let secs_ = 1_795_000_000 + id;
    let millis = rng.below(1000) as u32;
    let ts = chrono::DateTime::from_timestamp(secs_, millis * 1_000_000)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let mut raw = Vec::with_capacity(blob);
    raw.extend_from_slice(&(id as u32).to_le_bytes());
    raw.push(quality as u8);
    raw.push(p as u8);
    while raw.len() < blob {
        raw.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    raw.truncate(blob);
    Reading {
        point: POINTS[p],
        value,
        quality,
        ts,
        raw,
    }
}

/// The plant's writes: `n` changes by `mix` on [`TABLE`], deterministic for a seed
/// (ids start after the table's highest id).
pub fn write_mix(conn: &mut Connection, n: u64, seed: u64, mix: Mix) {
    let mut rng = Rng::new(seed);
    let mut next: i64 = conn
        .query_row(
            &format!("SELECT coalesce(max(id), 0) + 1 FROM {TABLE}"),
            [],
            |r| r.get(0),
        )
        .expect("max id");
    let mut live: Vec<i64> = Vec::new();
    let mut done = 0u64;
    while done < n {
        let tx = conn.transaction().expect("begin");
        {
            let mut ins = tx
                .prepare_cached(&format!(
                    "INSERT INTO {TABLE}(id, point, value, quality, ts, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))
                .expect("prepare insert");
            let mut upd = tx
                .prepare_cached(&format!(
                    "UPDATE {TABLE} SET value = ?2, quality = ?3, ts = ?4 WHERE id = ?1"
                ))
                .expect("prepare update");
            let mut del = tx
                .prepare_cached(&format!("DELETE FROM {TABLE} WHERE id = ?1"))
                .expect("prepare delete");
            let end = (done + mix.tx_size).min(n);
            while done < end {
                let roll = rng.below(100);
                if !live.is_empty() && roll < mix.delete_pct {
                    let i = rng.below(live.len() as u64) as usize;
                    let id = live.swap_remove(i);
                    del.execute([id]).expect("delete");
                } else if !live.is_empty() && roll < mix.delete_pct + mix.update_pct {
                    let id = live[rng.below(live.len() as u64) as usize];
                    let r = reading(&mut rng, id, 0);
                    upd.execute(params![id, r.value, r.quality, r.ts])
                        .expect("update");
                } else {
                    let id = next;
                    next += 1;
                    let r = reading(&mut rng, id, mix.blob);
                    ins.execute(params![id, r.point, r.value, r.quality, r.ts, r.raw])
                        .expect("insert");
                    live.push(id);
                }
                done += 1;
            }
        }
        tx.commit().expect("commit");
    }
}

// ------------------------------------------------------------------------ processes

/// Whether `program --version` runs.
fn have_cli(program: &str) -> Result<(), String> {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} --version` exited with {s}")),
        Err(e) => Err(format!("`{program}` not found: {e}")),
    }
}

/// Run a command to completion (stdin from `stdin` or null, stdout to `stdout` or
/// null); returns the elapsed wall time, or the error with the stderr tail.
fn timed(
    mut cmd: Command,
    stdin: Option<&Path>,
    stdout: Option<&Path>,
) -> Result<Duration, String> {
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Stdio::null(),
    });
    cmd.stdout(match stdout {
        Some(p) => Stdio::from(fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Stdio::null(),
    });
    cmd.stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let t0 = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    let t = t0.elapsed();
    if out.status.success() {
        Ok(t)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        Err(format!(
            "{what} exited with {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

fn must(r: Result<Duration, String>) -> Duration {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn capture(mut cmd: Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Run a command and poll its `VmHWM` (peak resident set) from `/proc/<pid>/status`
/// until it exits; returns (elapsed, peak bytes).
fn peak_rss(mut cmd: Command) -> (Duration, u64) {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut stderr = child.stderr.take();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kb * 1024);
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let t = t0.elapsed();
    let err = errs.join().unwrap_or_default();
    assert!(status.success(), "{what} exited with {status}: {err}");
    (t, peak)
}

fn receiver_apply_cmd(cfg: &Path, file: &Path) -> Command {
    let mut c = Command::new(receiver_bin());
    c.arg("-c").arg(cfg).arg("apply").arg(file);
    c
}

/// A TCP port on 127.0.0.1 nobody listens on (a receiver that is not there).
fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("local_addr");
    drop(l);
    a.to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for e in fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            fs::copy(&p, &t).unwrap_or_else(|e| panic!("copy {}: {e}", p.display()));
        }
    }
}

fn outbox_files(tx: &SenderNode) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(tx.work_dir.join("outbox"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
    });
    v.sort();
    v
}

/// `once` against a receiver that is not there: cuts everything pending into the
/// outbox, then fails to ship (expected). Returns the elapsed time.
fn once_offline(tx: &SenderNode) -> Duration {
    let mut cmd = Command::new(sender_bin());
    cmd.arg("-c").arg(&tx.config_path).arg("once");
    let t0 = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("gapsync-sender once: {e}"));
    let t = t0.elapsed();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        log(&format!(
            "once (no receiver, expected to fail shipping): {last}"
        ));
    }
    t
}

fn offline_sender(ws: &Workspace, sub: &str, dialect: &str, max_rows: u64) -> SenderNode {
    let mut cfg = SenderConfig::new("plant1")
        .table(Table::new(TABLE))
        .dialect(dialect)
        .max_rows(max_rows)
        .connect(&dead_addr());
    cfg.once_connect_attempts = 1;
    cfg.connect_timeout = secs(2);
    ws.sender_in(sub, cfg)
}

fn wrap(file: &Path, begin: &str, out: &Path) {
    let mut w = std::io::BufWriter::new(fs::File::create(out).expect("create wrapped file"));
    w.write_all(begin.as_bytes()).expect("write");
    let mut r = fs::File::open(file).expect("open batch");
    std::io::copy(&mut r, &mut w).expect("copy batch");
    w.write_all(b"COMMIT;\n").expect("write");
    w.flush().expect("flush");
}

// ------------------------------------------------------------------------ measurements

/// Run every measurement `opts` asks for; one row each.
pub fn run(opts: &Opts) -> Vec<Row> {
    let ws = Workspace::new("bench");
    log(&format!(
        "workspace {} (reps {}, {} statements, {} changes to cut, {} batch)",
        ws.path().display(),
        opts.reps,
        opts.changes,
        opts.cut_changes,
        mib(opts.big_bytes)
    ));
    let mut rows = Vec::new();
    let guard = |what: &str, f: &mut dyn FnMut() -> Outcome| -> Row {
        log(&format!("{what}: start"));
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(o) => o,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Outcome::Failed(msg.replace('\n', " "))
            }
        };
        let row = Row {
            what: what.to_owned(),
            outcome,
        };
        log(&row.detail());
        row
    };
    let n = opts.changes;
    if opts.wants("triggers") {
        rows.push(guard(
            &format!("source write cost with capture triggers ({n} writes, 1000 per transaction)"),
            &mut || triggers(&ws, opts),
        ));
    }
    // The apply batches: cut once per dialect by the real sender.
    let targets: [(&str, &str, &str); 3] = [
        ("sqlite", "sqlite", "SQLite"),
        ("postgres", "postgres", "PostgreSQL via ODBC"),
        ("mariadb", "mysql", "MariaDB via ODBC"),
    ];
    for (name, dialect, title) in targets {
        if !opts.wants(name) {
            continue;
        }
        let what = format!("apply a {n}-statement batch to {title}");
        let row = match target_skip(name) {
            Some(reason) => Row {
                what,
                outcome: Outcome::Skipped(reason),
            },
            None => guard(&what, &mut || {
                let (snap, changes) = cut_apply_batch(&ws, dialect, opts);
                apply_bench(&ws, name, &snap, &changes, opts)
            }),
        };
        rows.push(row);
    }
    if opts.wants("cut") {
        rows.push(guard(
            &format!(
                "render + hash + sign + compress {} changes",
                opts.cut_changes
            ),
            &mut || cut_bench(&ws, opts),
        ));
    }
    if opts.wants("bytes") {
        rows.push(guard(
            &format!("bytes crossing the gap per change ({n} changes, zstd, signed)"),
            &mut || bytes_bench(&ws, opts),
        ));
    }
    if opts.wants("memory") {
        rows.push(guard(
            &format!(
                "receiver peak memory on a {} batch (SQLite target)",
                mib(opts.big_bytes)
            ),
            &mut || memory_bench(&ws, opts),
        ));
    }
    rows
}

fn target_skip(name: &str) -> Option<String> {
    let r = match name {
        "sqlite" => have_cli("sqlite3"),
        "postgres" => have_cli("psql").and_then(|()| {
            let out = Command::new("psql")
                .args(pg_args("postgres"))
                .args(["-tAc", "SELECT 1"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "PostgreSQL not reachable on 127.0.0.1:5432: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }),
        _ => have_cli("mariadb").and_then(|()| {
            let out = Command::new("mariadb")
                .args(maria_args())
                .args(["-e", "SELECT 1"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "MariaDB not reachable on 127.0.0.1:3306: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }),
    };
    r.err()
}

/// Trigger cost: the same writes on a source with capture installed and on one without.
fn triggers(ws: &Workspace, opts: &Opts) -> Outcome {
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for rep in 0..opts.reps {
        // ours: the real `install` (tracking table, triggers, WAL).
        let tx = offline_sender(ws, &format!("trig-{rep}"), "sqlite", 10_000);
        tx.source().execute_batch(SCHEMA).expect("schema");
        tx.install();
        let mut c = tx.source();
        let t0 = Instant::now();
        write_mix(&mut c, opts.changes, opts.seed, PLANT_MIX);
        ours.push(t0.elapsed());
        drop(c);
        // peer: same schema, WAL, no triggers.
        let dir = ws.path().join(format!("trig-peer-{rep}"));
        fs::create_dir_all(&dir).expect("dir");
        let mut p = Connection::open(dir.join("plant.db")).expect("open peer db");
        p.execute_batch(SCHEMA).expect("schema");
        let _: String = p
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("wal");
        let t0 = Instant::now();
        write_mix(&mut p, opts.changes, opts.seed, PLANT_MIX);
        peer.push(t0.elapsed());
        drop(p);
        let pending: i64 = tx
            .source()
            .query_row("SELECT count(*) FROM _gapsync_changes", [], |r| r.get(0))
            .expect("count changes");
        assert_eq!(
            pending as u64, opts.changes,
            "every write should be captured"
        );
        let _ = fs::remove_dir_all(&tx.dir);
        let _ = fs::remove_dir_all(&dir);
    }
    Outcome::Time {
        ours,
        peer,
        budget: 2.0,
    }
}

/// The real sender cuts the snapshot (seq 1: CREATE TABLE) and then the changes of the
/// plant mix into ONE batch (seq 2, `max_rows` = the count). Returns both files.
fn cut_apply_batch(ws: &Workspace, dialect: &str, opts: &Opts) -> (PathBuf, PathBuf) {
    let tx = offline_sender(ws, &format!("cut-{dialect}"), dialect, opts.changes);
    tx.source().execute_batch(SCHEMA).expect("schema");
    tx.install();
    tx.snapshot(&[]);
    once_offline(&tx);
    let files = outbox_files(&tx);
    assert_eq!(files.len(), 1, "the snapshot batch: {files:?}");
    let mut c = tx.source();
    write_mix(&mut c, opts.changes, opts.seed, PLANT_MIX);
    drop(c);
    let t = once_offline(&tx);
    let files = outbox_files(&tx);
    assert_eq!(files.len(), 2, "snapshot and changes batches: {files:?}");
    log(&format!(
        "cut {} ({} bytes) in {:.2} s",
        files[1].display(),
        fs::metadata(&files[1]).map(|m| m.len()).unwrap_or(0),
        t.as_secs_f64()
    ));
    (files[0].clone(), files[1].clone())
}

fn pg_args(db: &str) -> Vec<String> {
    [
        "-X",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-U",
        "postgres",
        "-d",
        db,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn maria_args() -> Vec<String> {
    [
        "-h",
        "127.0.0.1",
        "-P",
        "3306",
        "-u",
        "root",
        "--default-character-set=utf8mb4",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The receiver's MySQL session (common/src/db/odbc.rs), for the `mariadb` CLI.
const MARIA_SESSION: &str = "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_ALL_TABLES'), time_zone = '+00:00'";

/// A fresh database on a server, dropped on drop.
struct ServerDb {
    server: &'static str,
    name: String,
}

impl ServerDb {
    fn create(server: &'static str, name: String) -> ServerDb {
        let db = ServerDb { server, name };
        db.admin(&format!(
            "CREATE DATABASE {}{}",
            db.name,
            if server == "postgres" {
                " ENCODING 'UTF8' TEMPLATE template0"
            } else {
                " CHARACTER SET utf8mb4"
            }
        ));
        db
    }

    fn admin(&self, sql: &str) {
        let mut c = if self.server == "postgres" {
            Command::new("psql")
        } else {
            Command::new("mariadb")
        };
        if self.server == "postgres" {
            c.args(pg_args("postgres")).arg("-c").arg(sql);
        } else {
            c.args(maria_args()).arg("-e").arg(sql);
        }
        capture(c);
    }

    fn conn_str(&self) -> String {
        if self.server == "postgres" {
            format!(
                "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database={};Uid=postgres;",
                self.name
            )
        } else {
            format!(
                "Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database={};Uid=root;Pwd=;",
                self.name
            )
        }
    }

    fn count(&self) -> u64 {
        let sql = format!("SELECT count(*) FROM {TABLE}");
        let out = if self.server == "postgres" {
            let mut c = Command::new("psql");
            c.args(pg_args(&self.name)).arg("-tAc").arg(&sql);
            capture(c)
        } else {
            let mut c = Command::new("mariadb");
            c.args(maria_args())
                .arg("-N")
                .arg("-e")
                .arg(&sql)
                .arg(&self.name);
            capture(c)
        };
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("count {out:?}: {e}"))
    }
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        let sql = if self.server == "postgres" {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        } else {
            format!("DROP DATABASE IF EXISTS {}", self.name)
        };
        let mut c = if self.server == "postgres" {
            let mut c = Command::new("psql");
            c.args(pg_args("postgres")).arg("-c").arg(&sql);
            c
        } else {
            let mut c = Command::new("mariadb");
            c.args(maria_args()).arg("-e").arg(&sql);
            c
        };
        let _ = c.stdin(Stdio::null()).output();
    }
}

/// One target to apply to: its receiver config, and how to count the applied rows.
enum Tgt {
    Sqlite(PathBuf),
    Server(ServerDb),
}

impl Tgt {
    fn count(&self) -> u64 {
        match self {
            Tgt::Sqlite(p) => {
                let c = Connection::open(p).expect("open target");
                let n: i64 = c
                    .query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))
                    .expect("count");
                n as u64
            }
            Tgt::Server(db) => db.count(),
        }
    }
}

/// A fresh target prepared with the snapshot batch (untimed); returns it and the
/// receiver config path.
fn fresh_target(ws: &Workspace, name: &str, sub: &str, snap: &Path) -> (Tgt, PathBuf) {
    static N: AtomicU64 = AtomicU64::new(0);
    let (tgt, cfg) = match name {
        "sqlite" => {
            let rx = ws.receiver_in(sub, ReceiverConfig::default());
            (Tgt::Sqlite(rx.target_db.clone()), rx.config_path.clone())
        }
        server => {
            let k = N.fetch_add(1, Ordering::SeqCst);
            let db = ServerDb::create(
                if server == "postgres" {
                    "postgres"
                } else {
                    "mariadb"
                },
                format!("gs_bench_{}_{k}", std::process::id()),
            );
            let rx = ws.receiver_in(sub, ReceiverConfig::odbc(&db.conn_str()));
            (Tgt::Server(db), rx.config_path.clone())
        }
    };
    must(timed(receiver_apply_cmd(&cfg, snap), None, None));
    (tgt, cfg)
}

fn apply_bench(ws: &Workspace, name: &str, snap: &Path, changes: &Path, opts: &Opts) -> Outcome {
    let dir = changes.parent().expect("outbox").to_owned();
    let wrapped = dir.join("peer-wrapped.sql");
    match name {
        "sqlite" => wrap(changes, "BEGIN;\n", &wrapped),
        "mariadb" => wrap(changes, "START TRANSACTION;\n", &wrapped),
        _ => {}
    }
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for rep in 0..opts.reps {
        // ours
        let (tgt, cfg) = fresh_target(ws, name, &format!("rx-{name}-{rep}-ours"), snap);
        let t = must(timed(receiver_apply_cmd(&cfg, changes), None, None));
        let ours_rows = tgt.count();
        ours.push(t);
        drop(tgt);
        // peer
        let (tgt, _) = fresh_target(ws, name, &format!("rx-{name}-{rep}-peer"), snap);
        let t = match &tgt {
            Tgt::Sqlite(db) => {
                let mut c = Command::new("sqlite3");
                c.arg("-bail").arg(db);
                must(timed(c, Some(&wrapped), None))
            }
            Tgt::Server(db) if name == "postgres" => {
                let mut c = Command::new("psql");
                c.args(pg_args(&db.name))
                    .args(["-v", "ON_ERROR_STOP=1", "-1", "-f"])
                    .arg(changes)
                    .env(
                        "PGOPTIONS",
                        "-c standard_conforming_strings=on -c TimeZone=UTC",
                    )
                    .env("PGCLIENTENCODING", "UTF8");
                must(timed(c, None, None))
            }
            Tgt::Server(db) => {
                let mut c = Command::new("mariadb");
                c.args(maria_args())
                    .arg(format!("--init-command={MARIA_SESSION}"))
                    .arg(&db.name);
                must(timed(c, Some(&wrapped), None))
            }
        };
        let peer_rows = tgt.count();
        peer.push(t);
        drop(tgt);
        assert_eq!(
            ours_rows, peer_rows,
            "ours and the peer must leave the same rows"
        );
        log(&format!(
            "{name} rep {rep}: ours {:.2} s, peer {:.2} s, {ours_rows} rows each",
            ours[rep].as_secs_f64(),
            peer[rep].as_secs_f64()
        ));
    }
    Outcome::Time {
        ours,
        peer,
        budget: 1.0,
    }
}

/// Cut `cut_changes` pending inserts (compressed, signed, default `max_rows`) with
/// `gapsync-sender once`, against `sqlite3 .dump` of the same table's rows.
fn cut_bench(ws: &Workspace, opts: &Opts) -> Outcome {
    let mut tx = offline_sender(ws, "cut1m", "sqlite", 10_000);
    tx.cfg.compress = true;
    tx.write_config();
    let keys = tx.dir.join("keys");
    fs::create_dir_all(&keys).expect("keys dir");
    tx.exec(&["keygen", "--out", &keys.display().to_string()])
        .expect_success();
    tx.cfg.sign_key = Some(keys.join("plant1.key"));
    tx.write_config();
    tx.source().execute_batch(SCHEMA).expect("schema");
    tx.install();
    {
        let mut c = tx.source();
        write_mix(&mut c, opts.cut_changes, opts.seed, INSERTS);
        let _: (i64, i64, i64) = c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("checkpoint");
    }
    let backup = ws.path().join("cut1m-backup");
    fs::create_dir_all(&backup).expect("backup dir");
    fs::copy(&tx.source_db, backup.join("plant.db")).expect("backup db");
    if tx.work_dir.exists() {
        copy_dir(&tx.work_dir, &backup.join("swork"));
    }
    let dump = tx.dir.join("dump.sql");
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    let mut files = 0;
    for rep in 0..opts.reps {
        if rep > 0 {
            for ext in ["", "-wal", "-shm"] {
                let _ = fs::remove_file(format!("{}{ext}", tx.source_db.display()));
            }
            fs::copy(backup.join("plant.db"), &tx.source_db).expect("restore db");
            let _ = fs::remove_dir_all(&tx.work_dir);
            if backup.join("swork").exists() {
                copy_dir(&backup.join("swork"), &tx.work_dir);
            }
        }
        let t = once_offline(&tx);
        let out = outbox_files(&tx);
        files = out.len();
        let expect = opts.cut_changes.div_ceil(10_000) as usize;
        assert_eq!(files, expect, "batches cut");
        ours.push(t);
        let mut c = Command::new("sqlite3");
        c.arg(&tx.source_db).arg(format!(".dump {TABLE}"));
        peer.push(must(timed(c, None, Some(&dump))));
        log(&format!(
            "cut rep {rep}: ours {:.2} s ({files} files), peer {:.2} s (dump {} bytes)",
            t.as_secs_f64(),
            peer[rep].as_secs_f64(),
            fs::metadata(&dump).map(|m| m.len()).unwrap_or(0)
        ));
    }
    let _ = files;
    let _ = fs::remove_dir_all(&backup);
    let _ = fs::remove_dir_all(&tx.dir);
    Outcome::Time {
        ours,
        peer,
        budget: 1.0,
    }
}

/// A TCP relay that counts the bytes it forwards (both directions).
struct CountingRelay {
    addr: String,
    bytes: Arc<AtomicU64>,
}

impl CountingRelay {
    fn start(upstream: String) -> CountingRelay {
        let l = TcpListener::bind("127.0.0.1:0").expect("relay bind");
        let addr = l.local_addr().expect("relay addr").to_string();
        let bytes = Arc::new(AtomicU64::new(0));
        let b = bytes.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(down) = s else { continue };
                let Ok(up) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (
                        down.try_clone().expect("clone"),
                        up.try_clone().expect("clone"),
                    ),
                    (up, down),
                ] {
                    let b = b.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => {
                                    if to.write_all(&buf[..k]).is_err() {
                                        break;
                                    }
                                    b.fetch_add(k as u64, Ordering::SeqCst);
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        CountingRelay { addr, bytes }
    }
}

/// Bytes through the link (compressed, signed, default `max_rows`) per change, against
/// the uncompressed SQL text of the same changes.
fn bytes_bench(ws: &Workspace, opts: &Opts) -> Outcome {
    let mut rx = ws.receiver_in("bytes-rx", ReceiverConfig::default());
    rx.start();
    let relay = CountingRelay::start(rx.addr().to_owned());
    // Plain text of the same changes, as one uncompressed batch.
    let plain = offline_sender(ws, "bytes-plain", "sqlite", opts.changes);
    plain.source().execute_batch(SCHEMA).expect("schema");
    plain.install();
    {
        let mut c = plain.source();
        write_mix(&mut c, opts.changes, opts.seed, PLANT_MIX);
    }
    once_offline(&plain);
    let text: u64 = outbox_files(&plain)
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    // Ours: compressed and signed, through the relay into a real receiver.
    let mut cfg = SenderConfig::new("plant1")
        .table(Table::new(TABLE))
        .compress(true)
        .connect(&relay.addr);
    cfg.once_connect_attempts = 2;
    let mut tx = ws.sender_in("bytes-tx", cfg);
    let keys = tx.dir.join("keys");
    fs::create_dir_all(&keys).expect("keys dir");
    tx.exec(&["keygen", "--out", &keys.display().to_string()])
        .expect_success();
    tx.cfg.sign_key = Some(keys.join("plant1.key"));
    tx.write_config();
    tx.source().execute_batch(SCHEMA).expect("schema");
    tx.install();
    tx.snapshot(&[]);
    tx.once().expect_success();
    std::thread::sleep(Duration::from_millis(300));
    let before = relay.bytes.load(Ordering::SeqCst);
    {
        let mut c = tx.source();
        write_mix(&mut c, opts.changes, opts.seed, PLANT_MIX);
    }
    tx.exec_timeout(&["once"], secs(1800)).expect_success();
    std::thread::sleep(Duration::from_millis(300));
    let crossed = relay.bytes.load(Ordering::SeqCst) - before;
    let rows: i64 = rx
        .target()
        .query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))
        .expect("count");
    let src: i64 = tx
        .source()
        .query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, src, "the receiver should have every row");
    log(&format!(
        "bytes: {crossed} bytes crossed for {} changes; uncompressed text {text} bytes",
        opts.changes
    ));
    rx.stop();
    Outcome::Bytes {
        ours: crossed as f64 / opts.changes as f64,
        peer: text as f64 / opts.changes as f64,
        budget: 0.2,
    }
}

/// Peak RSS of `gapsync-receiver apply` on a snapshot batch of about `big_bytes`.
fn memory_bench(ws: &Workspace, opts: &Opts) -> Outcome {
    const BLOB: usize = 1024;
    // A snapshot INSERT line is about 2 * BLOB + 190 bytes (hex blob, Chinese text).
    let rows = opts.big_bytes / (2 * BLOB as u64 + 190);
    let tx = offline_sender(ws, "big", "sqlite", rows + 10);
    tx.source().execute_batch(SCHEMA).expect("schema");
    {
        let mut c = tx.source();
        write_mix(
            &mut c,
            rows,
            opts.seed,
            Mix {
                blob: BLOB,
                tx_size: 10_000,
                ..INSERTS
            },
        );
    }
    tx.install();
    tx.snapshot(&[]);
    let t = once_offline(&tx);
    let files = outbox_files(&tx);
    assert_eq!(files.len(), 1, "one snapshot batch: {files:?}");
    let big = files[0].clone();
    let size = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    log(&format!(
        "memory: snapshot batch of {rows} rows, {} cut in {:.1} s",
        mib(size),
        t.as_secs_f64()
    ));
    let _ = fs::remove_file(&tx.source_db);
    let mut peaks = Vec::new();
    let mut times = Vec::new();
    for rep in 0..opts.reps.min(2) {
        let rx = ws.receiver_in(&format!("big-rx-{rep}"), ReceiverConfig::default());
        let (t, peak) = peak_rss(receiver_apply_cmd(&rx.config_path, &big));
        let n: i64 = rx
            .target()
            .query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!(n as u64, rows, "every row applied");
        log(&format!(
            "memory rep {rep}: peak {} in {:.1} s",
            mib(peak),
            t.as_secs_f64()
        ));
        peaks.push(peak);
        times.push(t.as_secs_f64());
        let _ = fs::remove_dir_all(&rx.dir);
    }
    Outcome::Memory {
        peaks,
        budget: 64 << 20,
        secs: times,
        note: format!("{rows}-row snapshot batch of {}", mib(size)),
    }
}

/// The machine, for the report: cores, CPU model, peer versions.
pub fn machine() -> String {
    let mut s = String::new();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let _ = writeln!(s, "- cores: {cores}, CPU: {cpu}");
    for (p, a) in [
        ("sqlite3", "--version"),
        ("psql", "--version"),
        ("mariadb", "--version"),
    ] {
        let v = Command::new(p)
            .arg(a)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| format!("not available ({e})"));
        let _ = writeln!(s, "- {p}: {v}");
    }
    s
}
