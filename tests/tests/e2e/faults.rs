//! Fault tests: poison batches (quarantine on both sides, `drop` and `halt`), kill -9 of
//! either side during a heavy workload, a locked target (transient, never a failure),
//! and receivers that answer badly (garbage, silence, floods) through the one-byte link.
//!
//! Included from `e2e.rs` (one test binary shares the set-up and its helpers).

use std::sync::Mutex;
use std::time::Instant;

use super::{LINE_FLOW, T, three_table_step};
use gapsync_tests::plant::{self, METER_READING};
use gapsync_tests::*;
use rusqlite::{Connection, params};

// ------------------------------------------------------------------------ helpers

/// The table the poison tests break on the target.
const P: &str = "CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)";

/// The SQLite error a batch touching `p.v` gets once the target column is renamed.
const BROKEN: &str = "no column named v";
/// ... and once the target table `p` is dropped.
const DROPPED: &str = "no such table: p";

/// Alter the TARGET table `p` so that any statement naming column `v` fails.
fn break_target(rx: &ReceiverNode) {
    rx.target()
        .execute_batch("ALTER TABLE p RENAME COLUMN v TO v_renamed")
        .unwrap();
}

/// Drop the TARGET table `p` (its rows kept aside in `p_keep`).
fn drop_target_table(rx: &ReceiverNode) {
    rx.target()
        .execute_batch("CREATE TABLE p_keep AS SELECT * FROM p; DROP TABLE p;")
        .unwrap();
}

/// Undo [`drop_target_table`].
fn recreate_target_table(rx: &ReceiverNode) {
    rx.target()
        .execute_batch(&format!(
            "{P}; INSERT INTO p SELECT * FROM p_keep; DROP TABLE p_keep;"
        ))
        .unwrap();
}

/// Undo [`break_target`].
fn restore_target(rx: &ReceiverNode) {
    rx.target()
        .execute_batch("ALTER TABLE p RENAME COLUMN v_renamed TO v")
        .unwrap();
}

fn insert_t(conn: &Connection, id: i64) {
    conn.execute(
        "INSERT INTO t VALUES (?1, ?2)",
        params![id, format!("row {id}")],
    )
    .unwrap();
}

fn insert_p(conn: &Connection, id: i64, v: &str) {
    conn.execute("INSERT INTO p VALUES (?1, ?2, ?3)", params![id, v, id * 10])
        .unwrap();
}

/// Good changes on `t` and `p` in one transaction: 5 inserts into `t`, an update and a
/// delete of earlier `t` rows, an insert into `p` (id `1000 + round`) and an update of
/// the previous round's `p` row. Never touches `p` rows below 1000.
fn good_round(conn: &Connection, round: i64, next_t: &mut i64) {
    let tx = conn.unchecked_transaction().unwrap();
    for _ in 0..5 {
        insert_t(&tx, *next_t);
        *next_t += 1;
    }
    tx.execute(
        "UPDATE t SET v = v || ' (upd)' WHERE id = ?1",
        [*next_t - 3],
    )
    .unwrap();
    tx.execute("DELETE FROM t WHERE id = ?1", [*next_t - 5])
        .unwrap();
    insert_p(&tx, 1000 + round, &format!("good {round}"));
    if round > 0 {
        tx.execute(
            "UPDATE p SET n = n + 1, v = v || '+' WHERE id = ?1",
            [1000 + round - 1],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The `changes` column of batch `seq`: the tracking rows it carries (statements can be
/// fewer: displaced-row markers render no statement of their own).
fn changes_of(tx: &SenderNode, seq: u64) -> u64 {
    tx.source()
        .query_row(
            "SELECT changes FROM _gapsync_batches WHERE seq = ?1",
            [seq as i64],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// Count of `what` in `events`.
fn count(events: &[String], what: &str) -> usize {
    events.iter().filter(|e| *e == what).count()
}

/// The ledger of `node` holds exactly the seqs `1..=last` except `quarantined`, each
/// once, and `_gapsync_quarantine` holds exactly `quarantined`.
fn assert_ledger_with_quarantine(rx: &ReceiverNode, node: &str, last: u64, quarantined: &[u64]) {
    let seqs = rx.ledger_seqs(node);
    let want: Vec<u64> = (1..=last).filter(|s| !quarantined.contains(s)).collect();
    assert_eq!(
        seqs, want,
        "ledger of {node}: expected every seq 1..={last} except the quarantined {quarantined:?}, \
         each exactly once"
    );
    assert_eq!(
        rx.quarantined_seqs(node),
        quarantined,
        "_gapsync_quarantine of {node}"
    );
}

/// Batch `seq` failed twice and is quarantined on both sides, with its reasons, its
/// files and its audit trail; the receiver's reason carries the SQLite error.
fn assert_quarantined_both_sides(tx: &SenderNode, rx: &ReceiverNode, seq: u64, error: &str) {
    let node = tx.cfg.node.as_str();
    let b = tx.batch(seq);
    assert_eq!(b.state, "quarantined", "sender state of seq {seq}: {b:?}");
    assert_eq!(
        b.attempts, 2,
        "seq {seq} must have failed exactly twice: {b:?}"
    );
    assert!(b.statements > 0);
    assert_eq!(
        tx.tracking_rows_of(seq),
        changes_of(tx, seq),
        "the tracking rows of quarantined seq {seq} must stay as its record"
    );
    let reason: Option<String> = tx
        .source()
        .query_row(
            "SELECT reason FROM _gapsync_batches WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        reason.as_deref().is_some_and(|r| !r.trim().is_empty()),
        "_gapsync_batches.reason of seq {seq}: {reason:?}"
    );

    // Sender: file and reason in quarantine/, nothing left in outbox/ or archive/.
    let sq = tx.work_dir.join("quarantine");
    assert!(
        sq.join(&b.file).is_file(),
        "sender quarantine lacks {}: {:?}",
        b.file,
        tx.work_files("quarantine")
    );
    let sreason = std::fs::read_to_string(sq.join(format!("{}.reason", b.file))).unwrap();
    assert!(
        !sreason.trim().is_empty(),
        "empty sender .reason for {}",
        b.file
    );
    for sub in ["outbox", "archive"] {
        assert!(
            !tx.work_dir.join(sub).join(&b.file).exists(),
            "{} still in the sender's {sub}/",
            b.file
        );
    }

    // Receiver: file and the database error in quarantine/, the quarantine row.
    let rq = rx.work_dir.join("quarantine");
    assert!(
        rq.join(&b.file).is_file(),
        "receiver quarantine lacks {}: {:?}",
        b.file,
        rx.work_files("quarantine")
    );
    let rreason = std::fs::read_to_string(rq.join(format!("{}.reason", b.file))).unwrap();
    assert!(
        rreason.contains(error),
        "the receiver's reason must carry the SQLite error ({error:?}): {rreason:?}"
    );
    assert!(
        rx.quarantined_seqs(node).contains(&seq),
        "_gapsync_quarantine lacks ({node}, {seq})"
    );
    assert!(
        !rx.ledger_seqs(node).contains(&seq),
        "quarantined seq {seq} is in the ledger"
    );
    let leftovers: Vec<_> = rx
        .work_files("spool")
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&b.file))
        .collect();
    assert!(
        leftovers.is_empty(),
        "spool still holds {leftovers:?} for quarantined seq {seq}"
    );

    // The audit records show two sends and two failures, then the drop.
    let sev = audit_events_of(&tx.audit(), seq);
    assert_eq!(
        (
            count(&sev, "sent"),
            count(&sev, "failed"),
            count(&sev, "dropped"),
            count(&sev, "applied")
        ),
        (2, 2, 1, 0),
        "sender audit of seq {seq} (sent, failed, dropped, applied): {sev:?}"
    );
    let rev = audit_events_of(&rx.audit(), seq);
    assert_eq!(
        (
            count(&rev, "received"),
            count(&rev, "failed"),
            count(&rev, "dropped"),
            count(&rev, "applied")
        ),
        (2, 1, 1, 0),
        "receiver audit of seq {seq} (received, failed, dropped, applied): {rev:?}"
    );
    let dropped = rx
        .audit()
        .into_iter()
        .find(|l| l["seq"].as_u64() == Some(seq) && l["event"] == "dropped")
        .unwrap();
    assert!(
        dropped["detail"]
            .as_str()
            .is_some_and(|d| d.contains(error)),
        "receiver's 'dropped' audit line lacks the database error: {dropped}"
    );
}

/// Both `status --json` report exactly the seqs in `all` as quarantined (with file and
/// reason), `last` as the last seq, and nothing unanswered, pending or spooled.
fn assert_status_reports(tx: &SenderNode, rx: &ReceiverNode, all: &[u64], last: u64) {
    let node = tx.cfg.node.as_str();
    let st = tx.status();
    let q: Vec<u64> = st["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["seq"].as_u64())
        .collect();
    assert_eq!(q, all, "sender status quarantined: {st}");
    for entry in st["quarantined"].as_array().unwrap() {
        let seq = entry["seq"].as_u64().unwrap();
        assert_eq!(entry["file"], tx.batch(seq).file.as_str(), "{st}");
        assert!(
            entry["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{st}"
        );
    }
    assert_eq!(st["unanswered"].as_array().map(Vec::len), Some(0), "{st}");
    assert_eq!(st["pending_changes"], 0, "{st}");
    assert_eq!(st["last_seq_cut"], last, "{st}");

    let rst = rx.status();
    let n = rst["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("receiver status lacks node {node}: {rst}"));
    let rq: Vec<u64> = n["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert_eq!(rq, all, "receiver status quarantined seqs: {rst}");
    assert_eq!(n["last_applied"], last, "{rst}");
    assert_eq!(n["applied_batches"], last - all.len() as u64, "{rst}");
    let files: Vec<String> = all.iter().map(|s| tx.batch(*s).file).collect();
    assert_eq!(rst["quarantined"], serde_json::json!(files), "{rst}");
    assert_eq!(rst["failed_once"], serde_json::json!([]), "{rst}");
    assert_eq!(rst["spooled"], serde_json::json!([]), "{rst}");
}

/// `t` is complete, `p` lacks the rows of the quarantined batches (ids `lost`) and so
/// differs from the source; then a snapshot of `p` heals it and every table compares
/// equal.
fn heal_p_and_compare(rig: &Rig, lost: &[i64], once: bool) {
    compare_tables(&rig.tx.source_db, "t", &rig.rx.target_db, "t", &[])
        .unwrap_or_else(|e| panic!("t must be complete: {e}\n{}", rig.ws.logs(30)));
    let tgt = rig.rx.target();
    for id in lost {
        let n: i64 = tgt
            .query_row("SELECT count(*) FROM p WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n, 0,
            "p row {id} came from a quarantined batch: not on the target"
        );
    }
    let diff = compare_tables(&rig.tx.source_db, "p", &rig.rx.target_db, "p", &[]);
    assert!(
        diff.is_err(),
        "p cannot equal the source: the quarantined change is missing"
    );
    rig.tx.snapshot(&["p"]);
    if once {
        rig.tx.once();
    }
    rig.wait_synced(secs(30));
    rig.assert_synced();
}

// ------------------------------------------------------------------------ 5. poison batch

/// A batch that fails deterministically on the target (its table was altered there) is
/// sent twice, answered "failed" twice, then dropped: both sides keep it in quarantine
/// with the reason (the receiver's holds the SQLite error), both statuses report it,
/// and the batches after it apply.
#[test]
fn poison_batch_is_quarantined_on_both_sides_and_the_stream_goes_on() {
    let cfg = SenderConfig::new("poison")
        .table(Table::new("t"))
        .table(Table::new("p"))
        .max_rows(10);
    let mut rig = Rig::new("poison", cfg, &format!("{T}; {P}"));
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.start();
    rig.wait_synced(secs(20));
    let mut next_t = 1;
    for round in 0..4 {
        good_round(&src, round, &mut next_t);
        rig.wait_synced(secs(20));
    }
    let before = rig.rx.ledger_seqs("poison").len() as u64;
    assert!(before >= 6, "only {before} batches before the poison");

    break_target(&rig.rx);
    insert_p(&src, 100, "poison");
    let bad = rig.ws.wait_for(
        "the poison batch to be quarantined by the sender",
        secs(30),
        || {
            rig.tx
                .batches()
                .into_iter()
                .find(|b| b.state == "quarantined")
        },
    );
    assert_eq!(bad.seq, before + 1, "{bad:?}");
    assert_eq!(bad.statements, 1, "{bad:?}");
    restore_target(&rig.rx);

    for round in 4..8 {
        good_round(&src, round, &mut next_t);
    }
    rig.wait_synced(secs(30));
    let last = rig.tx.progress().last_cut;
    assert!(last > bad.seq, "no batch after the poison one");
    assert_quarantined_both_sides(&rig.tx, &rig.rx, bad.seq, BROKEN);
    assert_ledger_with_quarantine(&rig.rx, "poison", last, &[bad.seq]);
    assert_status_reports(&rig.tx, &rig.rx, &[bad.seq], last);
    // Exactly one batch failed; every other batch was applied at the first attempt.
    for b in rig.tx.batches() {
        if b.seq != bad.seq {
            assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
        }
    }
    assert!(rig.tx.is_running(), "drop mode: the service goes on");

    heal_p_and_compare(&rig, &[100], false);
    let last = rig.tx.progress().last_cut;
    assert_ledger_with_quarantine(&rig.rx, "poison", last, &[bad.seq]);
    rig.tx.stop();
    rig.rx.stop();
}

/// `on_second_failure = "halt"`: `run` quarantines the poison batch, then exits non-zero
/// naming it; the batches cut after it are not shipped (still 'ready', unknown to the
/// receiver). Once the cause is fixed, a restarted service ships them.
#[test]
fn poison_batch_with_halt_stops_the_service() {
    let cfg = SenderConfig::new("halt")
        .table(Table::new("t"))
        .table(Table::new("p"))
        .compress(true) // quarantine of `.sql.zst` files
        .max_rows(1)
        .on_second_failure("halt");
    let mut rig = Rig::new("halt", cfg, &format!("{T}; {P}"));
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.start();
    rig.wait_synced(secs(20));
    for id in 1..=3 {
        insert_t(&src, id);
    }
    rig.wait_synced(secs(20));
    rig.tx.stop();

    // One poison change, then three good ones: with max_rows = 1, four batches.
    break_target(&rig.rx);
    let bad = rig.tx.progress().last_cut + 1;
    insert_p(&src, 100, "poison");
    for id in 4..=6 {
        insert_t(&src, id);
    }
    rig.tx.start();
    let st = rig
        .tx
        .wait_exit(secs(60))
        .unwrap_or_else(|| panic!("halt: `run` did not exit\n{}", rig.ws.logs(40)));
    assert!(
        !st.success(),
        "halt: `run` must exit non-zero after dropping a batch, got {st}\n{}",
        rig.tx.log_tail(30)
    );
    let halt_exit = st.code();
    let log = rig.tx.log_tail(20);
    assert!(
        log.contains(&format!("batch {bad} was dropped")),
        "the halt error must name seq {bad}:\n{log}"
    );
    assert_quarantined_both_sides(&rig.tx, &rig.rx, bad, BROKEN);
    assert!(rig.tx.batch(bad).file.ends_with(".sql.zst"));
    let later: Vec<BatchRow> = rig
        .tx
        .batches()
        .into_iter()
        .filter(|b| b.seq > bad)
        .collect();
    assert_eq!(later.len(), 3, "{later:?}");
    let raudit = rig.rx.audit();
    for b in &later {
        assert_eq!((b.state.as_str(), b.attempts), ("ready", 0), "{b:?}");
        assert!(
            audit_events_of(&raudit, b.seq).is_empty(),
            "halted: seq {} must not have been shipped",
            b.seq
        );
        assert!(rig.tx.work_dir.join("outbox").join(&b.file).is_file());
    }
    assert_eq!(rig.rx.last_seq("halt"), bad);
    let st = rig.tx.status();
    assert_eq!(
        st["unanswered"],
        serde_json::json!([bad + 1, bad + 2, bad + 3]),
        "{st}"
    );

    // The halt holds: the exit status is 3 (the unit does not restart on it), a plain
    // restart refuses to ship past the dropped batch, and status says so.
    assert_eq!(halt_exit, Some(3), "a halted node exits with status 3");
    restore_target(&rig.rx);
    insert_t(&src, 7);
    rig.tx.start();
    let again = rig
        .tx
        .wait_exit(secs(20))
        .unwrap_or_else(|| panic!("a halted node must not run again\n{}", rig.ws.logs(40)));
    assert_eq!(again.code(), Some(3), "{}", rig.tx.log_tail(10));
    assert!(
        rig.tx.log_tail(5).contains("gapsync-sender resume"),
        "the refusal names the repair: {}",
        rig.tx.log_tail(5)
    );
    assert_eq!(
        rig.rx.last_seq("halt"),
        bad,
        "nothing shipped past the halt"
    );
    let out = rig.tx.exec(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a halted node is critical: {out:?}"
    );
    assert!(out.stdout.contains("HALTED since"), "{out:?}");
    assert!(
        rig.tx.status()["halted"]["seq"] == bad,
        "{}",
        rig.tx.status()
    );

    // Fixed and resumed: the waiting batches go.
    let out = rig.tx.exec(&["resume"]);
    assert!(out.success() && out.stdout.contains("resumed"), "{out:?}");
    rig.tx.start();
    rig.wait_synced(secs(30));
    let last = rig.tx.progress().last_cut;
    assert_eq!(last, bad + 4);
    assert_status_reports(&rig.tx, &rig.rx, &[bad], last);
    heal_p_and_compare(&rig, &[100], false);
    let last = rig.tx.progress().last_cut;
    assert_ledger_with_quarantine(&rig.rx, "halt", last, &[bad]);
    rig.tx.stop();
    rig.rx.stop();
}

/// `once` exits non-zero naming a batch it dropped, in `halt` mode (the later batches
/// stay 'ready') and in `drop` mode (the later batches apply); a batch quarantined by an
/// earlier run does not make a later `once` fail. The first poison is a renamed target
/// column, the second a dropped target table.
#[test]
fn poison_batch_with_once() {
    let cfg = SenderConfig::new("once")
        .table(Table::new("t"))
        .table(Table::new("p"))
        .max_rows(1)
        .on_second_failure("halt");
    let mut rig = Rig::new("poison-once", cfg, &format!("{T}; {P}"));
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.once();
    for id in 1..=3 {
        insert_t(&src, id);
    }
    rig.tx.once();

    // halt
    break_target(&rig.rx);
    let bad1 = rig.tx.progress().last_cut + 1;
    insert_p(&src, 100, "poison 1");
    insert_t(&src, 10);
    insert_t(&src, 11);
    let out = rig.tx.exec(&["once"]).expect_failure();
    assert!(
        out.stderr.contains(&format!("batch {bad1} was dropped")),
        "once (halt) must name seq {bad1}: {}",
        out.stderr
    );
    assert_quarantined_both_sides(&rig.tx, &rig.rx, bad1, BROKEN);
    for seq in [bad1 + 1, bad1 + 2] {
        let b = rig.tx.batch(seq);
        assert_eq!((b.state.as_str(), b.attempts), ("ready", 0), "{b:?}");
    }
    assert_eq!(rig.rx.last_seq("once"), bad1);
    restore_target(&rig.rx);
    // Halted until resumed: `once` refuses (status 3) and ships nothing.
    let out = rig.tx.exec(&["once"]).expect_failure();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stderr.contains("the node is halted"), "{}", out.stderr);
    assert_eq!(rig.rx.last_seq("once"), bad1);
    rig.tx.exec(&["resume"]).expect_success();
    let out = rig.tx.exec(&["once"]).expect_success();
    assert!(
        out.stdout
            .contains(&format!("quarantined earlier: [{bad1}]")),
        "{}",
        out.stdout
    );
    assert_ledger_with_quarantine(&rig.rx, "once", bad1 + 2, &[bad1]);

    // drop
    rig.tx.cfg.on_second_failure = "drop".to_owned();
    rig.tx.write_config();
    drop_target_table(&rig.rx); // this time the whole target table is gone
    let bad2 = rig.tx.progress().last_cut + 1;
    insert_p(&src, 101, "poison 2");
    insert_t(&src, 20);
    insert_t(&src, 21);
    let out = rig.tx.exec(&["once"]).expect_failure();
    assert!(
        out.stderr.contains(&format!("seq [{bad2}]")),
        "once (drop) must name the dropped seq {bad2}: {}",
        out.stderr
    );
    assert_quarantined_both_sides(&rig.tx, &rig.rx, bad2, DROPPED);
    assert_ledger_with_quarantine(&rig.rx, "once", bad2 + 2, &[bad1, bad2]);
    recreate_target_table(&rig.rx);
    insert_t(&src, 30);
    let out = rig.tx.exec(&["once"]).expect_success();
    assert!(
        out.stdout
            .contains(&format!("quarantined earlier: [{bad1}, {bad2}]")),
        "{}",
        out.stdout
    );
    let last = rig.tx.progress().last_cut;
    assert_status_reports(&rig.tx, &rig.rx, &[bad1, bad2], last);
    heal_p_and_compare(&rig, &[100, 101], true);
    let last = rig.tx.progress().last_cut;
    assert_ledger_with_quarantine(&rig.rx, "once", last, &[bad1, bad2]);
    rig.rx.stop();
}

// ------------------------------------------------------------------------ 6. kill -9

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Receiver,
    Sender,
    Both,
}

/// ARCHITECTURE.md invariant I6: kill -9 of the receiver and of the sender (and of both at
/// once) at seeded moments while a writer makes 20k+ changes on three tables (inserts,
/// updates, key changes, deletes; small batches so many are in flight) converges to the
/// same target state: every seq applied exactly once, nothing unanswered, nothing lost.
#[test]
fn kill_9_either_side_during_a_heavy_workload() {
    const CHANGES: u64 = 20_000;
    // GAPSYNC_SEED=<n> replays other kill moments (the default is fixed: no flakiness);
    // GAPSYNC_ZST=1 runs it with compressed batch files.
    let seed: u64 = std::env::var("GAPSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b69_6c6c);
    let cfg = SenderConfig::new("crash")
        .table(Table::new("meter_reading"))
        .table(Table::new("line_flow"))
        .table(Table::new("alarm"))
        .compress(std::env::var_os("GAPSYNC_ZST").is_some())
        .max_rows(200);
    let schema = format!("{METER_READING}; {LINE_FLOW}; {}", plant::ALARM);
    let mut rig = Rig::new("kill9", cfg, &schema);
    rig.rx.pin_port();
    rig.tx.snapshot(&[]);
    rig.tx.start();
    rig.wait_synced(secs(20));
    let snapshot_batches = rig.tx.progress().last_cut;
    assert_eq!(rig.tx.captured_changes(), 0);

    // ~10 changes per transaction, paced so the workload spans the kills.
    let mut next = 1i64;
    let writer = BackgroundWriter::start(&rig.tx.source_db, seed, ms(3), move |c, rng, _| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..10 {
            if let Err(e) = three_table_step(c, rng, &mut next) {
                let _ = c.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        c.execute_batch("COMMIT")
    });

    let kills = [
        Victim::Receiver,
        Victim::Sender,
        Victim::Receiver,
        Victim::Both,
        Victim::Sender,
        Victim::Receiver,
    ];
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    let mut log = Vec::new();
    for (i, victim) in kills.iter().enumerate() {
        // Seeded moments spread over the workload; each kill only after the pipeline
        // made progress since the previous restart (so it lands mid-stream).
        let at = (i as u64 + 1) * CHANGES / (kills.len() as u64 + 2) + rng.below(1500);
        let applied = rig.rx.ledger_seqs("crash").len();
        rig.ws.wait_until(
            &format!("kill {i}: {at} changes captured and progress since the last restart"),
            secs(40),
            || rig.tx.captured_changes() >= at && rig.rx.ledger_seqs("crash").len() >= applied + 2,
        );
        std::thread::sleep(ms(rng.below(120)));
        assert!(
            rig.rx.is_running() && rig.tx.is_running(),
            "a service exited by itself before kill {i}\n{}",
            rig.ws.logs(40)
        );
        let down = ms(50 + rng.below(600));
        if matches!(victim, Victim::Receiver | Victim::Both) {
            rig.rx.kill();
        }
        if matches!(victim, Victim::Sender | Victim::Both) {
            rig.tx.kill();
        }
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
    rig.ws
        .wait_until("the workload to reach its size", secs(40), || {
            rig.tx.captured_changes() >= CHANGES
        });
    let steps = writer.stop();
    rig.wait_synced(secs(60));
    rig.tx.stop();

    let (tables, rows) = rig.assert_synced();
    assert_eq!(tables, 3);
    assert!(rows > 1000, "only {rows} rows at the end ({log:?})");
    let batches = rig.tx.batches();
    let seqs = rig.rx.ledger_seqs("crash");
    assert_contiguous("crash", &seqs);
    assert_eq!(
        seqs.len(),
        batches.len(),
        "every batch cut must be in the ledger exactly once ({log:?})"
    );
    assert!(rig.rx.quarantined_seqs("crash").is_empty(), "{log:?}");
    for b in &batches {
        assert_eq!(
            (b.state.as_str(), b.attempts),
            ("applied", 0),
            "after the kills: {b:?} ({log:?})"
        );
    }
    // Every captured change travelled in exactly one batch, and none is left behind.
    let captured = rig.tx.captured_changes();
    let shipped: u64 = batches
        .iter()
        .filter(|b| b.kind == "changes")
        .map(|b| changes_of(&rig.tx, b.seq))
        .sum();
    assert_eq!(shipped, captured, "changes shipped vs captured ({log:?})");
    assert!(captured >= CHANGES, "only {captured} changes");
    let left: i64 = rig
        .tx
        .source()
        .query_row("SELECT count(*) FROM _gapsync_changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "tracking rows left after every batch was applied");
    assert!(
        batches.len() as u64 >= snapshot_batches + CHANGES / 200,
        "{} batches",
        batches.len()
    );
    assert_eq!(
        rig.tx.work_files("outbox"),
        Vec::<std::path::PathBuf>::new()
    );
    eprintln!(
        "kill -9 test (seed {seed}): {captured} changes in {steps} writer steps, {} batches, {rows} rows, \
         {:.1}s; kills: {log:#?}",
        batches.len(),
        t0.elapsed().as_secs_f64()
    );
    rig.rx.stop();
}

// ------------------------------------------------------------------------ 7. locked target

/// ARCHITECTURE.md invariant I7: the target held under `BEGIN EXCLUSIVE` by another process for
/// ~5 s while the sender streams is a transient failure: batches wait (spooled,
/// unanswered), then apply once the lock is gone; nothing is counted as failed, nothing
/// quarantined.
#[test]
fn locked_target_is_transient_not_a_failure() {
    let ws = Workspace::new("locked");
    let mut rx = ws.receiver(ReceiverConfig {
        busy_timeout: ms(300),
        retry_interval: ms(200),
        result_wait: secs(1),
        ..ReceiverConfig::default()
    });
    rx.start();
    let mut tx = ws.sender(
        SenderConfig::new("locked")
            .table(Table::new("t"))
            .max_rows(20)
            .connect(rx.addr()),
    );
    tx.source().execute_batch(T).unwrap();
    tx.install();
    tx.snapshot(&[]);
    tx.start();
    ws.wait_synced(&tx, &rx, secs(20));

    let writer = BackgroundWriter::start(&tx.source_db, 77, ms(15), |c, rng, n| {
        let id = n as i64 + 1;
        c.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            params![id, format!("row {id}")],
        )?;
        if id > 10 && rng.chance(30) {
            c.execute(
                "UPDATE t SET v = v || '+' WHERE id = ?1",
                [rng.range(1, id - 1)],
            )?;
        }
        Ok(())
    });
    ws.wait_until("batches applied while streaming", secs(20), || {
        rx.ledger_seqs("locked").len() >= 4
    });

    let lock = rx.target();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let held_from = Instant::now();
    let ledger_at_lock: i64 = lock
        .query_row("SELECT count(*) FROM _gapsync_ledger", [], |r| r.get(0))
        .unwrap();
    let cut_at_lock = tx.progress().last_cut;
    ws.wait_until(
        "batches cut during the lock to wait unanswered",
        secs(10),
        || {
            let p = tx.progress();
            p.last_cut > cut_at_lock && p.unanswered >= 2
        },
    );
    std::thread::sleep(secs(5).saturating_sub(held_from.elapsed()));
    let spooled: Vec<_> = rx
        .work_files("spool")
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".sql"))
        .collect();
    let p = tx.progress();
    let ledger_in_lock: i64 = lock
        .query_row("SELECT count(*) FROM _gapsync_ledger", [], |r| r.get(0))
        .unwrap();
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let released = Instant::now();
    assert_eq!(ledger_in_lock, ledger_at_lock);
    assert!(
        !spooled.is_empty(),
        "a batch must have been received and wait for the locked target"
    );
    assert!(p.unanswered >= 2, "{p:?}");
    assert_eq!(p.quarantined, 0, "{p:?}");
    assert!(
        tx.batches().iter().all(|b| b.attempts == 0),
        "a locked target was counted as a failed apply: {:?}",
        tx.batches()
            .iter()
            .filter(|b| b.attempts > 0)
            .collect::<Vec<_>>()
    );

    ws.wait_until(
        "the batches held by the lock to be applied",
        secs(20),
        || rx.ledger_seqs("locked").len() as u64 >= p.last_cut,
    );
    let catch_up = released.elapsed();
    std::thread::sleep(ms(500));
    let steps = writer.stop();
    ws.wait_synced(&tx, &rx, secs(30));
    tx.stop();

    assert_synced(&tx, &rx);
    let batches = tx.batches();
    for b in &batches {
        assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
    }
    let seqs = rx.ledger_seqs("locked");
    assert_contiguous("locked", &seqs);
    assert_eq!(seqs.len(), batches.len());
    assert!(rx.quarantined_seqs("locked").is_empty());
    assert!(rx.work_files("quarantine").is_empty());
    assert!(tx.work_files("quarantine").is_empty());
    for (side, audit) in [("sender", tx.audit()), ("receiver", rx.audit())] {
        let bad: Vec<&serde_json::Value> = audit
            .iter()
            .filter(|l| matches!(l["event"].as_str(), Some("failed" | "dropped" | "rejected")))
            .collect();
        assert!(bad.is_empty(), "{side} audit records failures: {bad:?}");
    }
    assert!(steps > 200, "the writer made only {steps} steps");
    eprintln!("locked target: caught up {catch_up:?} after the release");
    rx.stop();
}

// ------------------------------------------------------------------------ 8. bad answers

/// What a fake receiver does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fake {
    /// 0x41 to every frame.
    Garbage,
    /// Reads every frame, never answers, keeps the connection open.
    Silent,
    /// 0xFF to HELLO, DATA and END, garbage to RESULT.
    GarbageResult,
    /// 0xFF to HELLO, DATA and END, no answer to RESULT (connection kept open).
    SilentResult,
    /// 0xFF to HELLO, DATA and END, closes the connection at RESULT.
    CloseAtResult,
    /// 0xFF to every frame, plus 4096 more 0xFF right after the HELLO answer.
    FloodAfterHello,
    /// 0xFF to every frame, plus 4096 more 0xFF right after the first DATA answer.
    FloodAfterData,
    /// 0x00 to HELLO: the receiver refuses.
    RefuseHello,
    /// 0xFF to HELLO, 0x00 to every DATA chunk.
    NoToData,
    /// 0xFF to HELLO and DATA, 0x00 to END.
    NoToEnd,
}

fn fake_answer(fake: Fake, f: &FakeFrame) -> Option<Vec<u8>> {
    const YES: u8 = 0xFF;
    const NO: u8 = 0x00;
    let (hello, data, end, result) = (
        f.kind == frame::HELLO,
        f.kind == frame::DATA,
        f.kind == frame::END,
        f.kind == frame::RESULT,
    );
    Some(match fake {
        Fake::Garbage => vec![0x41],
        Fake::Silent => Vec::new(),
        Fake::GarbageResult if result => vec![0x41],
        Fake::SilentResult if result => Vec::new(),
        Fake::CloseAtResult if result => return None,
        Fake::FloodAfterHello if hello => vec![YES; 4097],
        Fake::FloodAfterData if data && f.index == 1 => vec![YES; 4097],
        Fake::RefuseHello if hello => vec![NO],
        Fake::NoToData if data => vec![NO],
        Fake::NoToEnd if end => vec![NO],
        _ => vec![YES],
    })
}

/// The sender against receivers that answer badly: garbage bytes, silence, garbage /
/// silence / a close at RESULT, floods of 0xFF, "no" to HELLO, DATA or END. `once`
/// (once_connect_attempts = 2) must give up in bounded time with a non-zero exit,
/// leaving the batch 'ready' (never applied, never quarantined, attempts 0, tracking
/// rows kept). Then, pointed at a real receiver, the same batch is applied and the
/// target matches the source.
#[test]
fn bad_answers_never_apply_or_quarantine_a_batch() {
    let mut cfg = SenderConfig::new("bad")
        .table(Table::new("t"))
        .table(Table::new("p"));
    cfg.once_connect_attempts = 2;
    cfg.frame_timeout = secs(5);
    cfg.result_timeout = secs(5);
    let mut rig = Rig::new("bad-answers", cfg, &format!("{T}; {P}"));
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.once();
    let first = rig.tx.progress().last_cut;
    assert_eq!(rig.rx.ledger_seqs("bad").len() as u64, first);

    // The batch every fake gets: inserts, updates, deletes on both tables.
    let w = src.unchecked_transaction().unwrap();
    for id in 1..=40 {
        insert_t(&w, id);
        insert_p(&w, id, "p 'row' 行");
    }
    w.execute_batch(
        "UPDATE t SET v = 'changed' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;
         UPDATE p SET id = id + 1000 WHERE id = 5; DELETE FROM p WHERE id = 6;",
    )
    .unwrap();
    w.commit().unwrap();
    let seq = first + 1;

    let real = rig.rx.addr().to_owned();
    let cases = [
        (Fake::Garbage, "0x41"),
        (Fake::Silent, "HELLO"),
        (Fake::GarbageResult, "RESULT"),
        (Fake::SilentResult, "RESULT"),
        (Fake::CloseAtResult, "RESULT"),
        (Fake::FloodAfterHello, ""),
        (Fake::FloodAfterData, ""),
        (Fake::RefuseHello, "refused"),
        (Fake::NoToData, ""),
        (Fake::NoToEnd, "END"),
    ];
    for (fake, says) in cases {
        let rcv = FakeReceiver::start(move |f| fake_answer(fake, f));
        rig.tx.cfg.frame_timeout = if fake == Fake::Silent {
            secs(1)
        } else {
            secs(5)
        };
        rig.tx.cfg.result_timeout = if fake == Fake::SilentResult {
            secs(1)
        } else {
            secs(5)
        };
        rig.tx.set_connect(rcv.addr());
        let t0 = Instant::now();
        let out = rig.tx.exec_timeout(&["once"], secs(60));
        let took = t0.elapsed();
        let what = format!("{fake:?}: frames seen {}", rcv.describe());
        assert!(
            !out.success(),
            "{what}: `once` exited 0 against a bad receiver\n{}",
            out.stderr
        );
        assert!(took < secs(20), "{what}: `once` took {took:?}");
        assert!(
            out.stderr.contains(says),
            "{what}: the error should mention {says:?}: {}",
            out.stderr
        );
        let b = rig.tx.batch(seq);
        assert_eq!(
            (b.state.as_str(), b.attempts),
            ("ready", 0),
            "{what}: the batch must stay unanswered, with no failure counted: {b:?}"
        );
        assert_eq!(rig.tx.progress().last_cut, seq, "{what}: one batch only");
        assert!(b.statements > 0, "{what}");
        assert_eq!(
            rig.tx.tracking_rows_of(seq),
            changes_of(&rig.tx, seq),
            "{what}: the tracking rows stay until the batch is answered"
        );
        assert!(
            rig.tx.work_dir.join("outbox").join(&b.file).is_file(),
            "{what}"
        );
        assert!(rig.tx.work_files("quarantine").is_empty(), "{what}");
        let sev = audit_events_of(&rig.tx.audit(), seq);
        assert!(
            !sev.iter()
                .any(|e| matches!(e.as_str(), "applied" | "failed" | "dropped")),
            "{what}: sender audit of seq {seq}: {sev:?}"
        );
        assert!(rig.rx.ledger_seqs("bad").len() as u64 == first, "{what}");
        let hellos = rcv.count(frame::HELLO);
        let expect_hellos = if fake == Fake::RefuseHello { 1 } else { 2 };
        assert_eq!(
            hellos, expect_hellos,
            "{what}: once_connect_attempts = 2 means two connections (one if refused)"
        );
        let (data, end, result) = (
            rcv.count(frame::DATA),
            rcv.count(frame::END),
            rcv.count(frame::RESULT),
        );
        match fake {
            Fake::Garbage | Fake::Silent | Fake::RefuseHello => {
                assert_eq!(rcv.frames().len(), hellos, "{what}: only HELLO can be sent");
            }
            Fake::GarbageResult | Fake::SilentResult | Fake::CloseAtResult => {
                assert_eq!(
                    (end, result),
                    (2, 2),
                    "{what}: the batch is sent and asked for twice"
                );
            }
            Fake::FloodAfterHello | Fake::FloodAfterData => {
                assert_eq!(
                    (end, result),
                    (0, 0),
                    "{what}: the flood must be seen as a fault before END"
                );
            }
            Fake::NoToData => {
                assert!(data >= 4, "{what}: refused chunks are resent");
                assert_eq!((end, result), (0, 0), "{what}");
            }
            Fake::NoToEnd => assert_eq!((end, result), (2, 0), "{what}"),
        }
        if matches!(fake, Fake::Silent | Fake::SilentResult) {
            assert!(
                took >= secs(2),
                "{what}: two attempts with a 1 s timeout cannot fail in {took:?}"
            );
        }
    }

    // A real receiver: the same batch goes through.
    rig.tx.cfg.frame_timeout = secs(5);
    rig.tx.set_connect(&real);
    rig.tx.once();
    let b = rig.tx.batch(seq);
    assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
    assert_eq!(rig.tx.tracking_rows_of(seq), 0);
    rig.wait_synced(secs(10));
    let (_, rows) = rig.assert_synced();
    assert!(rows > 60, "{rows} rows");
    assert_contiguous("bad", &rig.rx.ledger_seqs("bad"));
    assert!(rig.rx.quarantined_seqs("bad").is_empty());
    rig.rx.stop();
}

/// What the lossy gap does to the first real 0xFF answer to a frame.
fn garble_first(f: &FakeFrame) -> Option<Vec<u8>> {
    match f.kind {
        frame::RESULT => match f.seq % 3 {
            0 => Some(vec![0x41]),
            1 => None,         // close
            _ => Some(vec![]), // silence: the sender's result_timeout
        },
        frame::END if f.seq.is_multiple_of(2) => Some(vec![0x41]),
        frame::DATA if f.offset > 0 && f.seq % 2 == 1 => Some(vec![0x41]),
        _ => Some(vec![0xFF]),
    }
}

/// Answers lost between a REAL receiver and the sender (a gap that garbles them): the
/// first RESULT answer of every batch becomes garbage, silence or a closed connection,
/// the first END answer of every other batch garbage, and some DATA answers garbage.
/// The receiver has applied (or spooled) the batch each time; the sender must treat the
/// result as unknown, send the batch again and ask again, and the receiver must answer
/// from its ledger without applying anything twice.
#[test]
fn lost_answers_are_asked_again_and_never_applied_twice() {
    use std::collections::HashSet;
    let mut cfg = SenderConfig::new("lossy")
        .table(Table::new("t"))
        .table(Table::new("p"))
        .max_rows(40);
    cfg.max_frame = Some(4096); // several DATA chunks per batch
    cfg.result_timeout = secs(1);
    let mut rig = Rig::new("lossy", cfg, &format!("{T}; {P}"));
    let seen = Mutex::new(HashSet::new());
    let proxy = FakeReceiver::proxy(rig.rx.addr(), move |f, real| {
        let first = seen.lock().unwrap().insert((f.kind, f.seq, f.offset));
        let real = real?; // the receiver closed: close too
        if !first || real != 0xFF {
            return Some(vec![real]);
        }
        garble_first(f)
    });
    rig.tx.set_connect(proxy.addr());
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.start();
    rig.wait_synced(secs(30));
    let long = "长文本 long text 'q' ".repeat(12);
    for round in 0..3i64 {
        let w = src.unchecked_transaction().unwrap();
        for i in 0..30 {
            let id = round * 100 + i;
            w.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![id, format!("{long}{id}")],
            )
            .unwrap();
            insert_p(&w, id, &long);
        }
        w.execute("UPDATE p SET n = -n WHERE id % 4 = 0", [])
            .unwrap();
        w.execute("DELETE FROM t WHERE id % 5 = 0", []).unwrap();
        w.commit().unwrap();
    }
    rig.wait_synced(secs(60));
    rig.tx.stop();
    rig.assert_synced();

    let batches = rig.tx.batches();
    let changes = rig.tx.change_batches().len();
    assert!(changes >= 5, "only {changes} change batches");
    let seqs = rig.rx.ledger_seqs("lossy");
    assert_contiguous("lossy", &seqs);
    assert_eq!(seqs.len(), batches.len());
    let raudit = rig.rx.audit();
    let saudit = rig.tx.audit();
    let frames = proxy.frames();
    for b in &batches {
        assert_eq!(
            (b.state.as_str(), b.attempts),
            ("applied", 0),
            "a lost answer was counted as a failure: {b:?}"
        );
        let rev = audit_events_of(&raudit, b.seq);
        assert_eq!(
            count(&rev, "applied"),
            1,
            "seq {}: applied more than once? receiver audit {rev:?}",
            b.seq
        );
        assert_eq!(count(&rev, "failed") + count(&rev, "dropped"), 0, "{rev:?}");
        let sent = count(&audit_events_of(&saudit, b.seq), "sent");
        assert!(
            sent >= 2,
            "seq {}: sent {sent} times, expected a resend",
            b.seq
        );
        let asked = frames
            .iter()
            .filter(|f| f.kind == frame::RESULT && f.seq == b.seq)
            .count();
        assert!(asked >= 2, "seq {}: RESULT asked {asked} times", b.seq);
    }
    assert!(rig.rx.quarantined_seqs("lossy").is_empty());
    let garbled_data = frames
        .iter()
        .filter(|f| f.kind == frame::DATA && f.offset > 0)
        .count();
    assert!(
        garbled_data > 0,
        "no multi-chunk batch: {}",
        proxy.describe()
    );
    rig.rx.stop();
}
