//! Snapshots of large tables (issue "Operations"): their progress in `status`, and a
//! snapshot interrupted by a crash (SIGKILL of the running sender) that resumes where it
//! stopped instead of starting over, with the plant writing meanwhile on both sides of
//! the row where it stopped; or, when a change moved a row across that row, starts over.
//! Either way target equals source, row by row.

use gapsync_tests::plant::{self, METER_READING};
use gapsync_tests::*;

const ROWS: i64 = 150_000;

/// A sender of `meter_reading` (ROWS rows, 500 rows a batch) killed in the middle of its
/// snapshot (cut first: nothing of it is shipped yet), its receiver running; returns
/// the rows done when it was killed.
fn killed_mid_snapshot(ws: &Workspace) -> (ReceiverNode, SenderNode, u64) {
    let mut rx = ws.receiver(ReceiverConfig::default());
    rx.start();
    let mut tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("meter_reading"))
            .max_rows(500)
            .connect(rx.addr()),
    );
    let src = tx.source();
    src.execute_batch(METER_READING).unwrap();
    plant::seed_meter_readings(&src, 1, ROWS, &mut Rng::new(7));
    tx.install();
    tx.snapshot(&["meter_reading"]);
    tx.start();
    let mut done = 0;
    ws.wait_until("the snapshot to be partly cut", secs(120), || {
        done = tx.status()["snapshots"][0]["rows_done"]
            .as_u64()
            .unwrap_or(0);
        done >= 5_000
    });
    tx.kill();
    let st = tx.status();
    let p = &st["snapshots"][0];
    assert_eq!(p["table"], "meter_reading", "{st:#}");
    let done = p["rows_done"].as_u64().unwrap();
    assert_eq!(p["rows_total"].as_u64().unwrap(), ROWS as u64, "{st:#}");
    assert!(
        done < ROWS as u64,
        "the snapshot finished before the kill: make ROWS larger\n{st:#}"
    );
    assert_eq!(p["resumable"], true, "{st:#}");
    // The human report says the same.
    let text = tx.exec(&["status"]).stdout;
    let pct = done * 100 / ROWS as u64;
    assert!(
        text.contains(&format!(
            "snapshot meter_reading: {done} of {ROWS} rows cut ({pct}%)"
        )),
        "{text}"
    );
    (rx, tx, done)
}

/// Starts the sender again, waits until the target is caught up and equals the source
/// row by row; returns the sender's log.
fn restart_until_synced(ws: &Workspace, rx: &ReceiverNode, tx: &mut SenderNode) -> String {
    tx.start();
    ws.wait_synced(tx, rx, secs(180));
    tx.stop();
    compare_tables(
        &tx.source_db,
        "meter_reading",
        &rx.target_db,
        "meter_reading",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", ws.logs(30)));
    tx.log_text()
}

/// Rows of every snapshot batch cut (the statements of snapshot batches, less the
/// CREATE TABLE and DELETE of each start).
fn snapshot_rows(tx: &SenderNode) -> u64 {
    let b = tx.batches();
    let snaps: Vec<&BatchRow> = b.iter().filter(|b| b.kind == "snapshot").collect();
    snaps.iter().map(|b| b.statements).sum()
}

#[test]
fn a_snapshot_interrupted_by_a_crash_resumes_where_it_stopped() {
    let ws = Workspace::new("snapshot-resume");
    let (rx, mut tx, done) = killed_mid_snapshot(&ws);
    let before = snapshot_rows(&tx);
    // The plant goes on while the sender is down: updates and deletes on both sides of
    // the row where the snapshot stopped (ids 1..=done were cut), new rows after it.
    let src = tx.source();
    src.execute_batch(&format!(
        "UPDATE meter_reading SET value = value + 1000, quality = 7 WHERE id % 97 = 0;
         DELETE FROM meter_reading WHERE id % 101 = 0;
         DELETE FROM meter_reading WHERE id = {done};
         UPDATE meter_reading SET quality = 8 WHERE id = {} OR id = 1;
         INSERT INTO meter_reading(id, meter, value, quality, at)
           SELECT id + {ROWS}, meter, value, quality, at FROM meter_reading WHERE id <= 100;",
        done + 1
    ))
    .unwrap();
    let log = restart_until_synced(&ws, &rx, &mut tx);
    assert!(log.contains("snapshot resumes where it stopped"), "{log}");
    assert!(!log.contains("starts over"), "{log}");
    // It did not start over: the rows cut before the crash and after it add up to the
    // table (plus the CREATE TABLE and DELETE of the start), not to twice the table.
    let rows = snapshot_rows(&tx);
    assert!(before >= done, "{before} rows in batches, {done} done");
    assert!(
        rows <= ROWS as u64 + 100 + 2,
        "{rows} snapshot statements for {ROWS} rows: the snapshot started over"
    );
    let st = tx.status();
    assert_eq!(st["snapshots"].as_array().map(Vec::len), Some(0), "{st:#}");
}

#[test]
fn a_snapshot_whose_stopping_row_was_moved_starts_over() {
    let ws = Workspace::new("snapshot-restart");
    let (rx, mut tx, done) = killed_mid_snapshot(&ws);
    // A row cut before the crash moves past the row where the snapshot stopped: the
    // rows read after it cannot say where that row went, so the snapshot starts over.
    let src = tx.source();
    src.execute("UPDATE meter_reading SET id = ?1 WHERE id = 3", [ROWS * 10])
        .unwrap();
    src.execute(
        "UPDATE meter_reading SET value = -1 WHERE id = ?1",
        [done as i64 + 10],
    )
    .unwrap();
    let log = restart_until_synced(&ws, &rx, &mut tx);
    assert!(
        log.contains("snapshot starts over from the first row") && log.contains("moved a row"),
        "{log}"
    );
}

#[test]
fn a_snapshot_of_a_table_whose_key_changed_meanwhile_starts_over() {
    let ws = Workspace::new("snapshot-reshaped");
    let (rx, mut tx, done) = killed_mid_snapshot(&ws);
    // While the sender is down, the table's configured key changes (re-installed): the
    // key saved where the snapshot stopped means nothing for the new key, so it starts
    // over (resuming would read "after" a shorter key and skip rows).
    tx.cfg.tables = vec![Table::new("meter_reading").key(&["meter", "id"])];
    tx.write_config();
    tx.install();
    tx.source()
        .execute(
            "UPDATE meter_reading SET value = -2 WHERE id IN (1, ?1)",
            [done as i64 + 5],
        )
        .unwrap();
    let log = restart_until_synced(&ws, &rx, &mut tx);
    assert!(
        log.contains("starts over: the table (its columns, key or unique constraints, or the target) changed since"),
        "{log}"
    );
    assert!(!log.contains("snapshot resumes where it stopped"), "{log}");
}
