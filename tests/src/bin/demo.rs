//! `gapsync-demo`: the whole pipeline on one machine, in a few seconds.
//!
//! `cargo build --release --workspace && target/release/gapsync-demo`
//!
//! It creates a temporary directory with a plant-like source database (meter readings,
//! breaker states, alarms; Chinese names included), installs capture, starts
//! `gapsync-receiver run` and `gapsync-sender run` as real processes on loopback, runs
//! a workload of a few thousand inserts, updates and deletes, waits until the target
//! has caught up, compares every table row by row (typed values), stops both services
//! with SIGTERM and prints the verdict. Exit status 0 only if source and target are
//! identical. The binaries are taken from the directory of this executable.
//!
//! `GAPSYNC_KEEP=1` keeps the temporary directory (it is always kept on failure).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gapsync_tests::plant::{self, ALARM, BREAKER_STATE, METER_READING};
use gapsync_tests::*;
use rusqlite::{Connection, params};

/// How long the workload runs.
const WORKLOAD: Duration = Duration::from_secs(4);
/// Source writes per second (each write is one captured change, or none when it hits a
/// missing row).
const WRITES_PER_SEC: u64 = 1000;

struct Summary {
    tables: usize,
    rows: usize,
    changes: u64,
    batches: usize,
    snapshot_rows: u64,
}

/// Writes a line of the demo's report; a reader that went away (`| head`) ends the
/// report quietly (the demo still runs to its verdict), a full disk is an error.
fn say(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    match gapsync_common::logging::write_stdout(format_args!("{line}\n")) {
        Err(e) if !e.is_broken_pipe() => Err(e.to_string()),
        _ => Ok(()),
    }
}

macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("gapsync demo: FAILED: {info}");
    }));
    match std::panic::catch_unwind(demo) {
        Ok(Ok(s)) => say!(
            "gapsync demo: source and target are identical: {} tables, {} rows, {} changes \
                 moved in {} batches (after an initial snapshot of {} rows)",
            s.tables,
            s.rows,
            s.changes,
            s.batches,
            s.snapshot_rows
        )
        .map_or_else(
            |e| {
                eprintln!("gapsync demo: {e}");
                ExitCode::FAILURE
            },
            |()| ExitCode::SUCCESS,
        ),
        Ok(Err(e)) => {
            eprintln!("gapsync demo: FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn demo() -> Result<Summary, String> {
    let started = Instant::now();
    let ws = Workspace::new("demo");
    say!("gapsync demo: working in {}", ws.path().display())?;
    say!(
        "  binaries: {}",
        sender_bin().parent().unwrap_or(ws.path()).display()
    )?;

    let mut rx = ws.receiver(ReceiverConfig::default());
    let addr = rx.start();
    say!(
        "  receiver listening on {addr}, target {}",
        rx.target_db.display()
    )?;

    let cfg = SenderConfig::new("plant1")
        .table(Table::new("meter_reading").target("plant1_meter_reading"))
        .table(
            Table::new("breaker_state")
                .target("plant1_breaker_state")
                .rename("closed", "合闸"),
        )
        .table(
            Table::new("alarm")
                .target("plant1_alarm")
                .rename("text", "告警内容"),
        )
        .strategy(Strategy::Interval(ms(300)))
        .compress(true)
        .connect(rx.addr());
    let mut tx = ws.sender(cfg);

    // The plant: tables that already hold data before gapsync is installed.
    let src = tx.source();
    src.execute_batch(&format!("{METER_READING}; {BREAKER_STATE}; {ALARM};"))
        .map_err(|e| format!("creating the source schema: {e}"))?;
    let mut rng = Rng::new(2026);
    plant::seed_meter_readings(&src, 1, 2000, &mut rng);
    for (i, b) in plant::BREAKERS.iter().enumerate() {
        src.execute(
            "INSERT INTO breaker_state VALUES (?1, ?2, ?3)",
            params![b, (i % 2) as i64, plant::at(i as u64)],
        )
        .map_err(|e| e.to_string())?;
    }
    src.execute("INSERT INTO alarm VALUES (1, '系统启动', X'0001FEFF')", [])
        .map_err(|e| e.to_string())?;
    say!(
        "  source {}: meter_reading, breaker_state, alarm seeded",
        tx.source_db.display()
    )?;

    tx.install();
    tx.snapshot(&[]);
    say!("  capture installed, initial snapshot queued")?;
    tx.start();
    say!("  sender running (strategy interval 300ms, zstd), node plant1 -> {addr}")?;

    // The workload.
    let t0 = Instant::now();
    let mut writes = 0u64;
    let mut next_id = 100_000i64;
    let mut next_alarm = 2i64;
    let mut last_report = Instant::now();
    while t0.elapsed() < WORKLOAD {
        let due = (t0.elapsed().as_secs_f64() * WRITES_PER_SEC as f64) as u64;
        if writes < due {
            let tx_db = src
                .unchecked_transaction()
                .map_err(|e| format!("begin: {e}"))?;
            for _ in 0..(due - writes).min(50) {
                step(&tx_db, &mut rng, &mut next_id, &mut next_alarm)
                    .map_err(|e| format!("workload: {e}"))?;
                writes += 1;
            }
            tx_db.commit().map_err(|e| format!("commit: {e}"))?;
        } else {
            std::thread::sleep(ms(5));
        }
        if last_report.elapsed() >= secs(1) {
            last_report = Instant::now();
            let p = tx.progress();
            say!(
                "  {:>4.1}s: {writes} writes on the source; {} changes pending, {} batches cut, \
                 target at seq {}",
                t0.elapsed().as_secs_f64(),
                p.pending,
                p.last_cut,
                rx.last_seq("plant1")
            )?;
        }
    }
    say!(
        "  workload done: {writes} writes in {:.1}s",
        t0.elapsed().as_secs_f64()
    )?;

    let t1 = Instant::now();
    ws.wait_synced(&tx, &rx, secs(120));
    let st = tx.status();
    if st["pending_changes"] != 0 || st["unanswered"].as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("sender status is not idle: {st}"));
    }
    say!(
        "  caught up in {:.1}s: sender has nothing pending or unanswered, target at seq {}",
        t1.elapsed().as_secs_f64(),
        rx.last_seq("plant1")
    )?;

    // Compare every table, row by row.
    let mut rows = 0;
    for t in &tx.cfg.tables {
        let renames: Vec<(&str, &str)> = t
            .rename
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let n = compare_tables(
            &tx.source_db,
            &t.source,
            &rx.target_db,
            t.target_name(),
            &renames,
        )?;
        say!(
            "  {} -> {}: {n} rows identical (typed values)",
            t.source,
            t.target_name()
        )?;
        rows += n;
    }
    let quarantined = rx.quarantined_seqs("plant1");
    if !quarantined.is_empty() {
        return Err(format!("batches were quarantined: {quarantined:?}"));
    }
    let seqs = rx.ledger_seqs("plant1");
    if seqs != (1..=seqs.len() as u64).collect::<Vec<_>>() {
        return Err(format!("the ledger has gaps: {seqs:?}"));
    }

    tx.stop();
    rx.stop();
    say!("  sender and receiver stopped with SIGTERM (exit 0)")?;

    let batches = tx.batches();
    let changes: u64 = batches
        .iter()
        .filter(|b| b.kind == "changes")
        .map(|b| b.statements)
        .sum();
    let snapshot_rows: u64 = batches
        .iter()
        .filter(|b| b.kind == "snapshot")
        .map(|b| b.statements.saturating_sub(2))
        .sum();
    say!("  total time {:.1}s", started.elapsed().as_secs_f64())?;
    Ok(Summary {
        tables: tx.cfg.tables.len(),
        rows,
        changes,
        batches: batches.len(),
        snapshot_rows,
    })
}

/// One write of the demo workload on one of the three tables.
fn step(
    c: &Connection,
    rng: &mut Rng,
    next_id: &mut i64,
    next_alarm: &mut i64,
) -> rusqlite::Result<()> {
    match rng.below(100) {
        0..=64 => {
            let hi = *next_id;
            plant::meter_step(c, rng, next_id, 1, hi)
        }
        65..=89 => {
            let b = *rng.pick(plant::BREAKERS);
            c.execute(
                "UPDATE breaker_state SET closed = 1 - closed, changed_at = ?2 WHERE breaker = ?1",
                params![b, plant::at(rng.below(86_400))],
            )?;
            Ok(())
        }
        90..=95 => {
            let raw: Vec<u8> = (0..rng.below(16)).map(|_| rng.below(256) as u8).collect();
            c.execute(
                "INSERT INTO alarm VALUES (?1, ?2, ?3)",
                params![*next_alarm, *rng.pick(plant::ALARMS), raw],
            )?;
            *next_alarm += 1;
            Ok(())
        }
        96..=97 => {
            c.execute(
                "UPDATE alarm SET text = text || ' 已确认' WHERE id = ?1",
                params![rng.range(1, *next_alarm)],
            )?;
            Ok(())
        }
        _ => {
            c.execute(
                "DELETE FROM alarm WHERE id = ?1",
                params![rng.range(1, *next_alarm)],
            )?;
            Ok(())
        }
    }
}
