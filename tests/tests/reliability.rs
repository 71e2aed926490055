//! The reliability suite (ARCHITECTURE.md's invariants under faults): the real `gapsync-sender`
//! and `gapsync-receiver` binaries, mostly with a `gapsync-gap` between them, through
//! link faults, kill -9 of either side, target outages, poison batches, a slow device and
//! a full spool. Every case ends with a row-by-row comparison of source and target and a
//! check that the ledger holds every seq exactly once.
//!
//! Run `cargo build --workspace --features odbc` first (the tests start the binaries);
//! `cargo test -p gapsync-tests --features odbc --test reliability` runs only this suite.
#![allow(clippy::unwrap_used)]

#[path = "reliability/outage.rs"]
mod outage;

#[path = "reliability/spool_full.rs"]
mod spool_full;

#[path = "reliability/source_outage.rs"]
mod source_outage;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gapsync_tests::plant;

use gapsync_tests::suite::*;
use gapsync_tests::*;
use rusqlite::params;

/// Short link timeouts so injected faults cost seconds, not minutes.
fn faulty_link(mut cfg: SenderConfig) -> SenderConfig {
    cfg.frame_timeout = secs(2);
    cfg.result_timeout = secs(3);
    cfg.connect_timeout = secs(2);
    cfg
}

/// A receiver that answers RESULT? within a second (the sender asks again).
fn quick_receiver() -> ReceiverConfig {
    ReceiverConfig {
        result_wait: secs(1),
        ..ReceiverConfig::default()
    }
}

/// Every fault kind of the gap.
const EVERY_FAULT: &str = "reset,flip,swallow,stall";

// ------------------------------------------------------------------------ 1. link faults

/// 50k changes (two tables, 50 per source transaction, 1250 changes/s) through a gap
/// injecting every fault kind on about one frame in eight: the target equals the source
/// row by row, every seq is in the ledger exactly once, nothing is quarantined.
#[test]
fn fifty_thousand_changes_through_every_fault() {
    const CHANGES: u64 = 50_000;
    let cfg = faulty_link(mix_tables(SenderConfig::new("faults50k")))
        .max_rows(500)
        .compress(true);
    let rig = GapRig::start(
        "r-faults",
        quick_receiver(),
        cfg,
        &mix_schema(),
        &[
            "--faults",
            EVERY_FAULT,
            "--fault-every",
            "8",
            "--stall",
            "300ms",
            "--seed",
            "50",
        ],
    );
    let t0 = Instant::now();
    let writer = mix_writer(&rig.tx.source_db, 50, 50, ms(40));
    rig.ws.wait_until("50k changes written", secs(300), || {
        rig.tx.captured_changes() >= CHANGES
    });
    let steps = writer.stop();
    rig.wait_synced(secs(240));
    let (tables, rows) = rig.assert_converged();
    let faults = rig.faults();
    let captured = rig.tx.captured_changes();
    eprintln!(
        "50k through faults: {captured} changes in {steps} transactions, {} batches, \
         {tables} tables / {rows} rows identical, faults {faults:?}, {:.1}s",
        rig.tx.progress().last_cut,
        t0.elapsed().as_secs_f64()
    );
    for (kind, n) in faults {
        assert!(n >= 1, "the gap injected no {kind} fault: {faults:?}");
    }
}

// ------------------------------------------------------------------------ 2. kill -9

/// Who gets killed.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Sender,
    Receiver,
    Both,
}

/// 24 kill -9 at seeded moments (sender, receiver or both, each restarted by the test
/// after a random pause) while a steady writer streams through the gap: converges with
/// every change shipped in exactly one batch, every seq applied exactly once.
#[test]
fn twenty_four_kills_of_either_side() {
    const KILLS: usize = 24;
    let seed: u64 = std::env::var("GAPSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x24_4b);
    let cfg = faulty_link(mix_tables(SenderConfig::new("kills"))).max_rows(100);
    let mut rig = GapRig::start(
        "r-kills",
        quick_receiver(),
        cfg,
        &mix_schema(),
        &["--latency", "5ms"],
    );
    let writer = mix_writer(&rig.tx.source_db, seed, 10, ms(8));
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    let mut log = Vec::new();
    for i in 0..KILLS {
        let victim = *rng.pick(&[Victim::Sender, Victim::Receiver, Victim::Both]);
        // Each kill only after progress since the previous restart: it lands mid-stream.
        let applied = rig.rx.ledger_seqs("kills").len();
        rig.ws
            .wait_until(&format!("progress before kill {i}"), secs(60), || {
                rig.rx.ledger_seqs("kills").len() > applied
            });
        std::thread::sleep(ms(rng.below(300)));
        assert!(
            rig.rx.is_running() && rig.tx.is_running(),
            "a service exited by itself before kill {i}\n{}",
            rig.ws.logs(40)
        );
        if matches!(victim, Victim::Receiver | Victim::Both) {
            rig.rx.kill();
        }
        if matches!(victim, Victim::Sender | Victim::Both) {
            rig.tx.kill();
        }
        let down = ms(20 + rng.below(500));
        log.push(format!(
            "{victim:?} at {:.2}s, {} changes, down {down:?}",
            t0.elapsed().as_secs_f64(),
            rig.tx.captured_changes()
        ));
        std::thread::sleep(down);
        if matches!(victim, Victim::Receiver | Victim::Both) {
            rig.rx.start();
        }
        if matches!(victim, Victim::Sender | Victim::Both) {
            rig.tx.start();
        }
    }
    let steps = writer.stop();
    rig.wait_synced(secs(120));
    let (_, rows) = rig.assert_converged();
    // Every captured change travelled in exactly one batch; no tracking row is left.
    let captured = rig.tx.captured_changes();
    let shipped: u64 = rig
        .tx
        .batches()
        .iter()
        .filter(|b| b.kind == "changes")
        .map(|b| b.changes)
        .sum();
    assert_eq!(shipped, captured, "changes shipped vs captured: {log:#?}");
    let left: i64 = rig
        .tx
        .source()
        .query_row("SELECT count(*) FROM _gapsync_changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "tracking rows left after every batch was applied");
    eprintln!(
        "{KILLS} kills (seed {seed}): {captured} changes in {steps} transactions, {} batches, \
         {rows} rows, {:.1}s; kills: {log:#?}",
        rig.tx.progress().last_cut,
        t0.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------ 4. poison batch

const T_AND_P: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); \
                       CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT)";

/// A poison batch (its table altered on the target) among good ones, through a gap that
/// resets, flips and swallows, under `policy`:
/// - `drop`: the poison batch is quarantined on both sides and the batches after it apply
///   while the service runs on;
/// - `halt`: the service exits naming the batch, the batches after it wait; once the
///   target is repaired a restarted service ships them.
///
/// Then `resync p` (a snapshot of `p`) heals the lost change; the target equals the source and the
/// ledger holds every other seq exactly once.
fn poison_among_good_batches(policy: &str) {
    let node = format!("poison{policy}");
    let cfg = faulty_link(SenderConfig::new(&node))
        .table(Table::new("t"))
        .table(Table::new("p"))
        .on_second_failure(policy);
    let mut rig = GapRig::start(
        &format!("r-poison-{policy}"),
        quick_receiver(),
        cfg,
        T_AND_P,
        &[
            "--faults",
            "reset,flip,swallow",
            "--fault-every",
            "7",
            "--seed",
            "44",
        ],
    );
    let src = rig.tx.source();
    let insert_t = |from: i64, to: i64| {
        for id in from..=to {
            src.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![id, format!("row {id}")],
            )
            .unwrap();
        }
    };
    insert_t(1, 20);
    rig.wait_synced(secs(60));

    // Break the target's `p`, then write one change to it alone in its batch.
    rig.rx
        .target()
        .execute_batch("ALTER TABLE p RENAME COLUMN v TO v_renamed")
        .unwrap();
    let bad = rig.tx.progress().last_cut + 1;
    src.execute("INSERT INTO p VALUES (1, 'poison')", [])
        .unwrap();
    rig.ws
        .wait_until("the poison batch to be cut", secs(30), || {
            rig.tx.progress().last_cut >= bad
        });
    insert_t(21, 40);

    if policy == "halt" {
        let st = rig
            .tx
            .wait_exit(secs(120))
            .unwrap_or_else(|| panic!("halt: `run` did not exit\n{}", rig.ws.logs(40)));
        assert_eq!(
            st.code(),
            Some(3),
            "halt: `run` must exit with status 3, got {st}"
        );
        let log = rig.tx.log_tail(20);
        assert!(
            log.contains(&format!("batch {bad} was dropped")),
            "the halt error must name seq {bad}:\n{log}"
        );
        let waiting: Vec<BatchRow> = rig
            .tx
            .batches()
            .into_iter()
            .filter(|b| b.seq > bad)
            .collect();
        assert!(
            waiting.iter().all(|b| b.state == "ready"),
            "halted: later batches must wait: {waiting:?}"
        );
        assert_eq!(
            rig.rx.last_seq(&node),
            bad,
            "nothing after the poison batch applied"
        );
    } else {
        rig.ws.wait_until(
            "the batches after the poison one to apply",
            secs(120),
            || {
                let p = rig.tx.progress();
                p.pending == 0 && p.unanswered == 0 && rig.rx.last_seq(&node) == p.last_cut
            },
        );
        assert!(rig.tx.is_running(), "drop: the service must go on");
    }
    assert_eq!(rig.tx.batch(bad).state, "quarantined");
    assert_eq!(rig.rx.quarantined_seqs(&node), vec![bad]);

    // Repair the target; under halt restart the service. Then heal `p` with a snapshot.
    rig.rx
        .target()
        .execute_batch("ALTER TABLE p RENAME COLUMN v_renamed TO v")
        .unwrap();
    if policy == "halt" {
        // The halt holds across a restart until the operator resumes.
        rig.tx.start();
        let again = rig
            .tx
            .wait_exit(secs(30))
            .unwrap_or_else(|| panic!("a halted node must not run again\n{}", rig.ws.logs(40)));
        assert_eq!(again.code(), Some(3));
        let out = rig.tx.exec(&["resume"]);
        assert!(out.success(), "{out:?}");
        rig.tx.start();
    }
    insert_t(41, 45);
    rig.wait_synced(secs(120));
    assert!(
        compare_tables(&rig.tx.source_db, "p", &rig.rx.target_db, "p", &[]).is_err(),
        "p cannot equal the source before the snapshot: the quarantined change is missing"
    );
    // `resync` is `snapshot` under the name operators look for.
    rig.tx.exec(&["resync", "p"]).expect_success();
    rig.wait_synced(secs(120));
    assert_synced(&rig.tx, &rig.rx);
    assert_exactly_once(&rig.tx, &rig.rx, &[bad]);
    rig.tx.stop();
}

#[test]
fn poison_batch_under_drop() {
    poison_among_good_batches("drop");
}

#[test]
fn poison_batch_under_halt() {
    poison_among_good_batches("halt");
}

// ------------------------------------------------------------------------ 5. slow device

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap()
}

/// A device with a 1.5 s round trip (one-way latency on every frame) and 1 MiB frames:
/// a 200 changes/s workload (10 rows every 50 ms, each stamped with its write time) for
/// 45 s. The lag (now minus the write time of the newest row on the target) is sampled
/// every 500 ms; the stream keeps up: the lag stays bounded (a stream that falls behind
/// would lag by most of the run) and the backlog drains once the writer stops. Prints
/// changes/s, bytes/change and the lag.
#[test]
fn slow_device_keeps_up_with_200_changes_per_second() {
    const RATE: i64 = 200;
    const RUN: Duration = Duration::from_secs(45);
    let mut cfg = SenderConfig::new("slow")
        .table(Table::new("feed"))
        .compress(true);
    cfg.max_frame = Some(1 << 20);
    cfg.frame_timeout = secs(20);
    cfg.result_timeout = secs(30);
    let rig = GapRig::start(
        "r-slow",
        ReceiverConfig::default(),
        cfg,
        "CREATE TABLE feed(id INTEGER PRIMARY KEY, written_ms INTEGER NOT NULL, \
         meter TEXT NOT NULL, value REAL, quality INTEGER)",
        &["--latency", "1500ms"],
    );
    let archived_before: u64 = archive_bytes(&rig.tx);
    let t0 = Instant::now();
    // A transaction every 50 ms: a steady 200 changes/s whatever a step costs.
    let writer = BackgroundWriter::paced(&rig.tx.source_db, 9, ms(50), move |c, rng, n| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let stamp = now_ms();
        for k in 0..RATE / 20 {
            let id = i64::try_from(n).unwrap() * (RATE / 20) + k + 1;
            c.execute(
                "INSERT INTO feed VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id,
                    stamp,
                    *rng.pick(plant::METERS),
                    rng.unit() * 500.0,
                    rng.range(0, 3)
                ],
            )?;
        }
        c.execute_batch("COMMIT")
    });

    let target = rig.rx.target();
    let mut lags: Vec<f64> = Vec::new();
    while t0.elapsed() < RUN {
        std::thread::sleep(ms(500));
        let newest: Option<i64> = target
            .query_row("SELECT max(written_ms) FROM feed", [], |r| r.get(0))
            .unwrap();
        if let Some(w) = newest {
            lags.push((now_ms() - w) as f64 / 1000.0);
        }
    }
    let steps = writer.stop();
    let written = steps * u64::try_from(RATE / 20).unwrap();
    let wrote_for = t0.elapsed();
    rig.wait_synced(secs(60));
    let drained = t0.elapsed() - wrote_for;
    let (_, rows) = rig.assert_converged();
    assert_eq!(rows as u64, written);

    let bytes = archive_bytes(&rig.tx) - archived_before;
    let batches = rig.tx.change_batches().len();
    lags.sort_by(f64::total_cmp);
    let p50 = lags.get(lags.len() / 2).copied().unwrap_or(f64::NAN);
    let max = lags.last().copied().unwrap_or(f64::NAN);
    eprintln!(
        "slow device (1.5 s round trip, 1 MiB frames): wrote {written} changes in {:.1}s = \
         {:.0} changes/s; applied all {:.1}s after the writer stopped; {batches} batches, \
         {:.1} bytes/change on the wire (zstd); lag p50 {p50:.1}s, max {max:.1}s",
        wrote_for.as_secs_f64(),
        written as f64 / wrote_for.as_secs_f64(),
        drained.as_secs_f64(),
        bytes as f64 / written as f64,
    );
    assert!(
        written as f64 / wrote_for.as_secs_f64() >= 150.0,
        "the writer did not reach the workload's rate"
    );
    // Each batch costs about three round trips (DATA, END, RESULT?): keeping up means a
    // lag of a few batch cycles; falling behind would grow it towards the run's length.
    assert!(
        max < 30.0,
        "the stream fell behind: lag up to {max:.1}s (p50 {p50:.1}s) over a {RUN:?} run"
    );
    assert!(
        lags.len() > 60,
        "the target saw the first rows too late: {} samples",
        lags.len()
    );
}

/// Total size of the batch files in the sender's archive (what crossed the gap).
fn archive_bytes(tx: &SenderNode) -> u64 {
    tx.work_files("archive")
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

// ------------------------------------------------------------------------ soak

/// `gapsync-soak` (what `tests/soak.sh` runs for hours) for 80 s with kills every ~10 s,
/// a target outage and a full spool every ~30 s and summaries every 20 s: it prints its summary lines and
/// a PASS verdict (after its own row-by-row and exactly-once checks) and exits 0.
#[test]
fn soak_runs_the_mix_and_gives_a_verdict() {
    let out = run_command(
        &bin("gapsync-soak"),
        &[
            "--duration",
            "80s",
            "--kill-every",
            "10s",
            "--outage-every",
            "30s",
            "--outage",
            "8s",
            "--spool-full-every",
            "30s",
            "--spool-full",
            "6s",
            "--summary-every",
            "20s",
            "--fault-every",
            "12",
            "--seed",
            "3",
        ],
        &std::env::temp_dir(),
        secs(400),
    );
    eprintln!("{}", out.stdout);
    let out = out.expect_success();
    let summaries = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("soak 00:"))
        .count();
    assert!(
        summaries >= 3,
        "expected a summary line every 20 s:\n{}",
        out.stdout
    );
    let verdict = out.stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("soak verdict: PASS") && verdict.contains("exactly once"),
        "{verdict}"
    );
    let kills: u32 = verdict
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(kills >= 4, "expected kills in the mix: {verdict}");
    if std::env::var_os("CI").is_some() {
        assert!(
            !out.stdout.contains("full-spool episodes skipped"),
            "CI runs as root: the soak must fill its spool\n{}",
            out.stdout
        );
        assert!(!verdict.contains(" 0 full spools"), "{verdict}");
    }
}
