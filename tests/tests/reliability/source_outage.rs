//! Source database unavailable mid-stream, then back: the sender SERVICE rides it out
//! (a transient source failure is not fatal) and nothing is lost or doubled (ARCHITECTURE.md
//! invariants I1, I3 and I6).
//!
//! - [`sqlite_source_locked_by_another_process_for_20s`]: a separate `sqlite3` process
//!   holds `BEGIN EXCLUSIVE` on the sender's SQLite source for 20 s, longer than the
//!   sender's busy timeout: its writes (batch records, "applied" marks) fail with
//!   "database is locked".
//! - [`postgres_source_connection_cut_for_15s`] (feature `odbc`): the sender reaches its
//!   PostgreSQL source through a TCP proxy that cuts every connection and refuses new
//!   ones for 15 s while the plant keeps writing (directly); the sender reconnects.
//!
//! - [`a_deterministic_source_error_still_stops_the_service`]: the other side of the
//!   classification.
//!
//! In the outages the service keeps running (the same process), logs the source as
//! unavailable, counts no failed apply, and after the outage everything is shipped:
//! source and target compared row by row, every seq in the ledger exactly once, every
//! batch 'applied' once in the sender's audit record.

use std::time::{Duration, Instant};

use gapsync_tests::suite::{SqliteLock, assert_exactly_once};
use gapsync_tests::*;
use rusqlite::params;

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);";

/// One writer step: an insert, sometimes an update and a delete of an earlier row.
fn step(c: &rusqlite::Connection, rng: &mut Rng, n: u64) -> rusqlite::Result<()> {
    let id = n as i64 + 1;
    c.execute(
        "INSERT INTO t VALUES (?1, ?2, ?3)",
        params![id, format!("row {id} 'q' ü"), rng.range(0, 1_000_000)],
    )?;
    if id > 10 && rng.chance(30) {
        c.execute(
            "UPDATE t SET v = v || '+', n = n + 1 WHERE id = ?1",
            [rng.range(1, id - 1)],
        )?;
    }
    if id > 10 && rng.chance(10) {
        c.execute("DELETE FROM t WHERE id = ?1", [rng.range(1, id - 1)])?;
    }
    Ok(())
}

/// The sender's audit record says each batch was applied exactly once, and nothing
/// failed, was dropped or rejected (a batch sent again after an outage is "sent" twice,
/// "applied" once).
fn assert_applied_once_audited(tx: &SenderNode, last: u64) {
    let audit = tx.audit();
    let bad: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|l| matches!(l["event"].as_str(), Some("failed" | "dropped" | "rejected")))
        .collect();
    assert!(bad.is_empty(), "sender audit records failures: {bad:?}");
    for seq in 1..=last {
        let applied = audit_events_of(&audit, seq)
            .iter()
            .filter(|e| *e == "applied")
            .count();
        assert_eq!(
            applied,
            1,
            "batch {seq}: audited 'applied' {applied} times: {:?}",
            audit_events_of(&audit, seq)
        );
    }
}

// ------------------------------------------------------------------------ SQLite

/// (pending changes, ready batches, last seq cut) read inside the lock.
fn source_state(lock: &mut SqliteLock) -> (i64, i64, i64) {
    match lock.ints(
        "(SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL), \
         (SELECT count(*) FROM _gapsync_batches WHERE state = 'ready'), \
         (SELECT coalesce(max(seq), 0) FROM _gapsync_batches)",
    )[..]
    {
        [a, b, c] => (a, b, c),
        ref v => panic!("source state: {v:?}"),
    }
}

/// The sender's SQLite source is locked by ANOTHER PROCESS (`sqlite3` holding `BEGIN
/// EXCLUSIVE`) for 20 s, four times the sender's busy timeout, with changes pending and
/// batches in flight: the service keeps running, logs the source as unavailable, counts
/// no failed apply and cuts no batch during the lock; after the release it cuts and
/// ships everything (a batch the receiver applied while the sender could not record it
/// is sent again and answered from the ledger, not executed twice).
#[test]
fn sqlite_source_locked_by_another_process_for_20s() {
    const OUTAGE: Duration = Duration::from_secs(20);
    let t_start = Instant::now();
    let cfg = SenderConfig::new("srclock")
        .table(Table::new("t"))
        .max_rows(25)
        .strategy(Strategy::Interval(ms(500)))
        .poll(ms(100));
    let mut rig = Rig::new("source-locked", cfg, SCHEMA);
    rig.rx.pin_port();
    rig.tx.snapshot(&[]);
    rig.tx.start();
    let writer = BackgroundWriter::start(&rig.tx.source_db, 2020, ms(10), step);
    rig.ws
        .wait_until("batches applied while streaming", secs(60), || {
            rig.rx.ledger_seqs("srclock").len() >= 4
        });

    // Batches wait unanswered (receiver stopped) and everything written is cut, so that
    // during the lock the sender only ships: the receiver applies a batch whose
    // "applied" the sender cannot record.
    rig.rx.stop();
    rig.ws
        .wait_until("a batch cut and not yet answered", secs(30), || {
            rig.tx.progress().unanswered >= 1
        });
    let steps_before = writer.stop();
    rig.ws.wait_until("everything written cut", secs(30), || {
        rig.tx.progress().pending == 0
    });
    let mut lock = SqliteLock::take(&rig.tx.source_db);
    let (pending, ready, cut_at_lock) = source_state(&mut lock);
    let locked_at = Instant::now();
    let ledger_at_lock = rig.rx.ledger_seqs("srclock").len();
    rig.rx.start();
    assert!(
        ready >= 1 && pending == 0,
        "the lock was taken with {ready} batch(es) in flight and {pending} change(s) pending"
    );
    let mut looks = 0;
    while locked_at.elapsed() < OUTAGE {
        assert!(
            rig.tx.is_running(),
            "the sender exited while its source was locked\n{}",
            rig.tx.log_tail(30)
        );
        looks += 1;
        std::thread::sleep(ms(500));
    }
    let log = rig.tx.log_text();
    assert!(
        log.contains("source database unavailable"),
        "the sender never logged its locked source as unavailable\n{}",
        rig.tx.log_tail(30)
    );
    let mut lock = lock;
    let (_, ready_in_lock, cut_in_lock) = source_state(&mut lock);
    let ledger_in_lock = rig.rx.ledger_seqs("srclock").len();
    lock.release();
    let released = Instant::now();
    assert_eq!(
        cut_in_lock, cut_at_lock,
        "a batch was recorded while another process held the lock"
    );
    assert!(
        ledger_in_lock > ledger_at_lock && ready_in_lock == ready,
        "the receiver must apply a batch during the lock that the sender cannot record as \
         applied: ledger {ledger_at_lock} -> {ledger_in_lock}, ready {ready} -> {ready_in_lock}"
    );

    rig.ws
        .wait_until("the sender to see its source again", secs(30), || {
            rig.tx
                .log_text()
                .contains("source database available again")
        });
    let back_after = released.elapsed();
    // The plant writes again after the release (ids go on where the first writer ended).
    let writer = BackgroundWriter::start(&rig.tx.source_db, 2021, ms(10), move |c, rng, n| {
        step(c, rng, steps_before + n)
    });
    rig.ws
        .wait_until("the writer to go on after the release", secs(30), || {
            writer.steps() > 200
        });
    let steps = steps_before + writer.stop();
    rig.wait_synced(secs(90));
    assert!(rig.tx.is_running(), "the sender exited");
    rig.tx.stop();

    let (tables, rows) = rig.assert_synced();
    assert_exactly_once(&rig.tx, &rig.rx, &[]);
    let batches = rig.tx.batches();
    for b in &batches {
        assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
    }
    assert!(rig.tx.work_files("quarantine").is_empty());
    assert!(rig.rx.work_files("quarantine").is_empty());
    let last = rig.tx.progress().last_cut;
    assert_applied_once_audited(&rig.tx, last);
    let log = rig.tx.log_text();
    let retries = log.matches("source database still unavailable").count();
    let swept = log.matches("removing unrecorded outbox file").count();
    let audit = rig.tx.audit();
    let resent: Vec<u64> = (1..=last)
        .filter(|&seq| {
            audit_events_of(&audit, seq)
                .iter()
                .filter(|e| *e == "sent")
                .count()
                > 1
        })
        .collect();
    assert!(
        !resent.is_empty(),
        "no batch was sent again after its 'applied' could not be recorded"
    );
    eprintln!(
        "sqlite source locked {OUTAGE:?} by another process ({looks} looks): sender kept \
         running, {retries} retries logged, {swept} unrecorded file(s) swept, batches {resent:?} \
         applied during the lock and sent again after it, back {back_after:?} after the release; {last} batches, {steps} writer steps, {tables} table(s) / {rows} \
         rows equal, exactly once; test took {:?}",
        t_start.elapsed()
    );
    rig.rx.stop();
}

/// The other side of the classification: a source error that retrying cannot fix (here
/// gapsync's batch table dropped under the running service) still stops the service,
/// non-zero, with the error on one line, instead of being retried forever.
#[test]
fn a_deterministic_source_error_still_stops_the_service() {
    let cfg = SenderConfig::new("srcgone")
        .table(Table::new("t"))
        .poll(ms(100));
    let mut rig = Rig::new("source-deterministic", cfg, SCHEMA);
    rig.tx.snapshot(&[]);
    rig.tx.start();
    rig.ws.wait_until("the snapshot applied", secs(30), || {
        rig.rx.ledger_seqs("srcgone") == [1]
    });
    rig.tx
        .source()
        .execute_batch("DROP TABLE _gapsync_batches")
        .unwrap();
    let st = rig
        .tx
        .wait_exit(secs(30))
        .unwrap_or_else(|| panic!("the sender kept running\n{}", rig.tx.log_tail(20)));
    assert!(!st.success(), "the sender exited 0");
    let log = rig.tx.log_text();
    assert!(
        log.lines().any(|l| l.contains(" gapsync-sender: error: ")
            && (l.contains("_gapsync_batches") || l.contains("not installed"))),
        "{}",
        rig.tx.log_tail(20)
    );
    assert!(
        !log.contains("source database unavailable"),
        "a deterministic error was taken for an outage\n{}",
        rig.tx.log_tail(20)
    );
    rig.rx.stop();
}

// ------------------------------------------------------------------------ PostgreSQL

#[cfg(feature = "odbc")]
mod postgres {
    use super::*;
    use gapsync_tests::odbc::{Server, TestDb, assert_sender_has_odbc, exec_in, use_odbc_source};
    use rusqlite::types::Value;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A writer on the PostgreSQL source through its OWN connection (not the proxy): the
    /// plant goes on writing while the sender's connection is cut.
    struct PgWriter {
        stop: Arc<AtomicBool>,
        steps: Arc<AtomicU64>,
        handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
    }

    impl PgWriter {
        fn start(db: &TestDb, seed: u64) -> PgWriter {
            let conn = db.connect();
            let stop = Arc::new(AtomicBool::new(false));
            let steps = Arc::new(AtomicU64::new(0));
            let handle = {
                let stop = Arc::clone(&stop);
                let steps = Arc::clone(&steps);
                std::thread::spawn(move || {
                    let mut rng = Rng::new(seed);
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let id = n as i64 + 1;
                        let mut sql = vec![format!(
                            "INSERT INTO t VALUES ({id}, 'row {id} ''q'' ü', {})",
                            rng.range(0, 1_000_000)
                        )];
                        if id > 10 && rng.chance(30) {
                            sql.push(format!(
                                "UPDATE t SET v = v || '+', n = n + 1 WHERE id = {}",
                                rng.range(1, id - 1)
                            ));
                        }
                        if id > 10 && rng.chance(10) {
                            sql.push(format!("DELETE FROM t WHERE id = {}", rng.range(1, id - 1)));
                        }
                        for s in &sql {
                            exec_in(&conn, s).map_err(|e| format!("writer step {n}: {s}: {e}"))?;
                        }
                        n += 1;
                        steps.store(n, Ordering::SeqCst);
                        std::thread::sleep(ms(15));
                    }
                    Ok(n)
                })
            };
            PgWriter {
                stop,
                steps,
                handle: Some(handle),
            }
        }

        fn steps(&self) -> u64 {
            self.steps.load(Ordering::SeqCst)
        }

        fn stop(mut self) -> u64 {
            self.stop.store(true, Ordering::SeqCst);
            match self.handle.take().expect("writer").join() {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => panic!("PostgreSQL writer failed: {e}"),
                Err(_) => panic!("PostgreSQL writer panicked"),
            }
        }
    }

    impl Drop for PgWriter {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    /// Row-by-row comparison of the PostgreSQL source table `t` with the SQLite target's.
    fn compare(src: &TestDb, rx: &ReceiverNode) -> Result<usize, String> {
        let cols: Vec<String> = ["id", "v", "n"].map(String::from).to_vec();
        let mut a = src.read_table("t", &cols)?;
        a.sort_by_key(|r| match r[0] {
            Value::Integer(i) => i,
            _ => i64::MIN,
        });
        let b = read_rows(&rx.target(), "t", &cols, &cols[..1])
            .map_err(|e| format!("reading the target: {e}"))?;
        for (ra, rb) in a.iter().zip(&b) {
            if !ra.iter().zip(rb).all(|(x, y)| same_value(x, y)) {
                return Err(format!(
                    "row differs: source {:?}, target {:?}",
                    ra.iter().map(describe).collect::<Vec<_>>(),
                    rb.iter().map(describe).collect::<Vec<_>>()
                ));
            }
        }
        if a.len() != b.len() {
            return Err(format!("source has {} rows, target {}", a.len(), b.len()));
        }
        Ok(a.len())
    }

    /// The sender reaches its PostgreSQL source through a TCP proxy; mid-stream the proxy
    /// cuts every connection and refuses new ones for 15 s while the plant keeps writing
    /// (on its own connection). The sender service keeps running, logs the source as
    /// unavailable, reconnects when the proxy listens again and ships everything to a
    /// SQLite target: rows equal, every seq in the ledger exactly once, no failed apply.
    #[test]
    fn postgres_source_connection_cut_for_15s() {
        const OUTAGE: Duration = Duration::from_secs(15);
        const TEST: &str = "source_outage::postgres_source_connection_cut_for_15s";
        // outage::postgres_target_stopped_for_30s stops the server: not meanwhile.
        let _pg = gapsync_tests::suite::postgres_exclusive();
        if !Server::Postgres.require(TEST) {
            return;
        }
        assert_sender_has_odbc();
        let t_start = Instant::now();
        let src = Server::Postgres.fresh_database("srcoutage");
        src.exec(&["CREATE TABLE t(id bigint PRIMARY KEY, v text, n bigint)"]);
        let proxy = TcpProxy::start(&Server::Postgres.addr());
        let ws = Workspace::new("source-outage-pg");
        let mut rx = ws.receiver(ReceiverConfig::default());
        rx.start();
        let cfg = SenderConfig::new("pgsrc")
            .table(Table::new("t"))
            .max_rows(25)
            .strategy(Strategy::Interval(ms(500)))
            .poll(ms(100))
            .dialect("sqlite")
            .connect(rx.addr());
        let mut tx = ws.sender(cfg);
        use_odbc_source(&tx, &src.conn_str_via(proxy.port()));
        tx.exec(&["install"]).expect_success(); // queues the initial snapshot
        tx.start();
        let writer = PgWriter::start(&src, 1515);
        ws.wait_until("batches applied while streaming", secs(60), || {
            rx.ledger_seqs("pgsrc").len() >= 3
        });

        proxy.cut();
        let cut_at = Instant::now();
        let steps_at_cut = writer.steps();
        while cut_at.elapsed() < OUTAGE {
            assert!(
                tx.is_running(),
                "the sender exited while its source connection was cut\n{}",
                tx.log_tail(30)
            );
            std::thread::sleep(ms(500));
        }
        let log = tx.log_text();
        assert!(
            log.contains("source database unavailable"),
            "the sender never logged its source as unavailable\n{}",
            tx.log_tail(30)
        );
        assert!(
            writer.steps() > steps_at_cut + 100,
            "the plant must go on writing during the cut"
        );
        let ledger_before = rx.ledger_seqs("pgsrc").len();
        proxy.restore();
        let restored = Instant::now();
        ws.wait_until("the sender to reconnect to its source", secs(30), || {
            tx.log_text().contains("source database available again")
        });
        let back_after = restored.elapsed();
        ws.wait_until("batches after the cut", secs(30), || {
            rx.ledger_seqs("pgsrc").len() > ledger_before + 2
        });
        let steps = writer.stop();

        let node = "pgsrc";
        ws.wait_until("the sender to be caught up", secs(90), || {
            let p = src.sender_progress();
            p.pending == 0 && p.unanswered == 0 && rx.last_seq(node) >= p.last_cut
        });
        assert!(tx.is_running(), "the sender exited");
        tx.stop();

        let rows = compare(&src, &rx).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL source and SQLite target differ: {e}\n{}",
                tx.all_logs()
            )
        });
        // The exactly-once check of `suite::assert_exactly_once`, with the sender's
        // tables read on the PostgreSQL source.
        let last = src.sender_progress().last_cut;
        let ledger = rx.ledger_seqs(node);
        assert_eq!(
            ledger,
            (1..=last).collect::<Vec<u64>>(),
            "the ledger must hold every seq 1..={last} exactly once"
        );
        assert!(rx.quarantined_seqs(node).is_empty());
        for b in src.sender_batches() {
            assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
        }
        assert_eq!(tx.work_files("outbox"), Vec::<std::path::PathBuf>::new());
        assert!(tx.work_files("quarantine").is_empty());
        assert!(rx.work_files("quarantine").is_empty());
        assert_applied_once_audited(&tx, last);
        let retries = tx
            .log_text()
            .matches("source database still unavailable")
            .count();
        eprintln!(
            "postgres source connection cut {OUTAGE:?}: sender kept running, {retries} retries \
             logged, reconnected {back_after:?} after the restore; {last} batches, {steps} \
             writer steps, {rows} rows equal, exactly once; test took {:?}",
            t_start.elapsed()
        );
        rx.stop();
    }
}
