//! Target database unavailable for 30 s mid-stream, then back: no batch dropped
//! (ARCHITECTURE.md invariant I7: a transient target failure is not an apply failure).
//!
//! - [`sqlite_target_locked_by_another_process_for_30s`]: a separate `sqlite3` process
//!   holds an EXCLUSIVE lock on the receiver's target file for 30 s.
//! - [`postgres_target_stopped_for_30s`] (feature `odbc`): the PostgreSQL server itself
//!   is stopped for 30 s and started again; the receiver's ODBC connection dies with it.
//!
//! In both, the sender streams changes at a steady rate through a `gapsync-gap`; during
//! the outage batches wait (spooled, unanswered), no apply is counted as failed
//! (`attempts == 0`), nothing is quarantined and the receiver keeps running (the same
//! process, never restarted); after it everything catches up, source and target are
//! compared row by row and the ledger holds every seq exactly once.

use std::time::{Duration, Instant};

use gapsync_tests::suite::{GapRig, SqliteLock, assert_exactly_once};
use gapsync_tests::*;
use rusqlite::params;

/// How long the target stays unavailable.
const OUTAGE: Duration = Duration::from_secs(30);

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL);";

/// One writer step: an insert, sometimes an update and a delete of an earlier row.
fn step(c: &rusqlite::Connection, rng: &mut Rng, n: u64) -> rusqlite::Result<()> {
    let id = n as i64 + 1;
    c.execute(
        "INSERT INTO t VALUES (?1, ?2, ?3)",
        params![id, format!("row {id} 'q' \\ ü"), rng.unit() * 1e6],
    )?;
    if id > 10 && rng.chance(30) {
        c.execute(
            "UPDATE t SET v = v || '+', n = n + 1.5 WHERE id = ?1",
            [rng.range(1, id - 1)],
        )?;
    }
    if id > 10 && rng.chance(10) {
        c.execute("DELETE FROM t WHERE id = ?1", [rng.range(1, id - 1)])?;
    }
    Ok(())
}

/// Spooled batch files (`*.sql`) waiting in the receiver's spool.
fn spooled(rx: &ReceiverNode) -> usize {
    rx.work_files("spool")
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".sql"))
        .count()
}

/// What one look during the outage saw.
#[derive(Debug, Default, Clone, Copy)]
struct Watch {
    max_unanswered: u64,
    max_spooled: usize,
    looks: u32,
}

/// Watch the pair until `until`: the receiver keeps running, no batch is counted as a
/// failed apply, nothing is quarantined on either side.
fn watch_outage(ws: &Workspace, tx: &SenderNode, rx: &mut ReceiverNode, until: Instant) -> Watch {
    let mut w = Watch::default();
    loop {
        assert!(
            rx.is_running(),
            "the receiver exited during the target outage\n{}",
            ws.logs(40)
        );
        let p = tx.progress();
        assert_eq!(p.quarantined, 0, "quarantined during the outage: {p:?}");
        let failed: Vec<BatchRow> = tx
            .batches()
            .into_iter()
            .filter(|b| b.attempts > 0)
            .collect();
        assert!(
            failed.is_empty(),
            "the outage was counted as failed applies: {failed:?}\n{}",
            ws.logs(40)
        );
        assert!(
            rx.work_files("quarantine").is_empty(),
            "the receiver quarantined during the outage: {:?}",
            rx.work_files("quarantine")
        );
        w.max_unanswered = w.max_unanswered.max(p.unanswered);
        w.max_spooled = w.max_spooled.max(spooled(rx));
        w.looks += 1;
        if Instant::now() >= until {
            return w;
        }
        std::thread::sleep(ms(500).min(until.saturating_duration_since(Instant::now())));
    }
}

/// Neither side's audit record has a failed, dropped or rejected batch.
fn assert_no_failure_audited(tx: &SenderNode, rx: &ReceiverNode) {
    for (side, audit) in [("sender", tx.audit()), ("receiver", rx.audit())] {
        let bad: Vec<&serde_json::Value> = audit
            .iter()
            .filter(|l| matches!(l["event"].as_str(), Some("failed" | "dropped" | "rejected")))
            .collect();
        assert!(bad.is_empty(), "{side} audit records failures: {bad:?}");
    }
}

// ------------------------------------------------------------------------ SQLite

/// The receiver's SQLite target is locked by ANOTHER PROCESS (`sqlite3` holding `BEGIN
/// EXCLUSIVE`) for 30 s while the sender streams changes: batches are received and wait
/// in the spool, unanswered; "database is locked" is transient (never a failed apply,
/// never quarantine); the receiver keeps running. After the release everything is
/// applied: row-by-row equal, every seq in the ledger exactly once, no failure audited.
#[test]
fn sqlite_target_locked_by_another_process_for_30s() {
    let rcfg = ReceiverConfig {
        busy_timeout: ms(500),
        retry_interval: ms(300),
        result_wait: secs(2),
        ..ReceiverConfig::default()
    };
    let cfg = SenderConfig::new("lock30")
        .table(Table::new("t"))
        .max_rows(25);
    let mut rig = GapRig::start("outage-sqlite", rcfg, cfg, SCHEMA, &[]);
    let writer = BackgroundWriter::start(&rig.tx.source_db, 3030, ms(20), step);
    rig.ws
        .wait_until("batches applied while streaming", secs(60), || {
            rig.rx.ledger_seqs("lock30").len() >= 4
        });

    let mut lock = SqliteLock::take(&rig.rx.target_db);
    let ledger_at_lock = lock.ints("(SELECT count(*) FROM _gapsync_ledger)")[0];
    let locked_at = Instant::now();
    // The lock is real: a writer that does not wait is refused.
    {
        let probe = rusqlite::Connection::open(&rig.rx.target_db).unwrap();
        probe.busy_timeout(Duration::ZERO).unwrap();
        let e = probe.execute_batch("BEGIN IMMEDIATE").unwrap_err();
        assert!(
            gapsync_common::db::is_transient(&e),
            "the probe expected 'database is locked', got {e}"
        );
    }
    let cut_at_lock = rig.tx.progress().last_cut;
    let w = watch_outage(&rig.ws, &rig.tx, &mut rig.rx, locked_at + OUTAGE);
    let p = rig.tx.progress();
    let spooled_at_end = spooled(&rig.rx);
    let ledger_in_lock = lock.ints("(SELECT count(*) FROM _gapsync_ledger)")[0];
    lock.release();
    let released = Instant::now();

    assert_eq!(
        ledger_in_lock, ledger_at_lock,
        "a batch was applied while another process held the lock"
    );
    assert!(
        p.last_cut > cut_at_lock + 1,
        "the sender must keep cutting during the lock: {p:?}"
    );
    assert!(
        p.unanswered >= 2 && w.max_unanswered >= 2,
        "batches must wait unanswered during the lock: {p:?} {w:?}"
    );
    assert!(
        spooled_at_end >= 1 && w.max_spooled >= 1,
        "received batches must wait in the spool: {w:?}"
    );
    let log = rig.rx.log_text();
    assert!(
        log.contains("target unavailable"),
        "the receiver never logged the locked target as unavailable\n{}",
        rig.rx.log_tail(30)
    );

    rig.ws.wait_until(
        "the batches held by the lock to be applied",
        secs(90),
        || rig.rx.last_seq("lock30") >= p.last_cut,
    );
    let catch_up = released.elapsed();
    // The stream goes on after the release.
    let steps_at_catch_up = writer.steps();
    rig.ws
        .wait_until("the writer to go on after the release", secs(30), || {
            writer.steps() > steps_at_catch_up + 50
        });
    let steps = writer.stop();
    rig.wait_synced(secs(90));
    assert!(rig.rx.is_running(), "the receiver exited");
    rig.tx.stop();

    let (tables, rows) = assert_synced(&rig.tx, &rig.rx);
    assert_exactly_once(&rig.tx, &rig.rx, &[]);
    for b in rig.tx.batches() {
        assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
    }
    assert!(rig.tx.work_files("quarantine").is_empty());
    assert!(rig.rx.work_files("quarantine").is_empty());
    assert_no_failure_audited(&rig.tx, &rig.rx);
    assert!(steps > 500, "the writer made only {steps} steps");
    eprintln!(
        "sqlite target locked {:?} by another process: {} batches ({} cut during the lock, \
         up to {} unanswered, {} spooled), {steps} writer steps, {tables} table(s) / {rows} \
         rows equal, caught up {catch_up:?} after the release",
        OUTAGE,
        p.last_cut,
        p.last_cut - cut_at_lock,
        w.max_unanswered,
        w.max_spooled
    );
    rig.rx.stop();
}

// ------------------------------------------------------------------------ PostgreSQL

#[cfg(feature = "odbc")]
mod postgres {
    use super::*;
    use std::process::{Command, Stdio};

    /// Skip (print why) or, with `CI` set, fail loudly.
    pub(super) fn skip_or_panic(test: &str, why: &str) {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
            panic!("{test}: {why}, but CI is set: this test must run in CI");
        }
        eprintln!("SKIPPED {test}: {why}");
    }

    fn pg_ready() -> bool {
        Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The local PostgreSQL cluster `<version>/main` (version: the first directory of
    /// `/etc/postgresql`), stopped by [`stop`](PgCluster::stop); its Drop always starts
    /// it again, so a failing test never leaves the server down for the rest of the
    /// suite.
    pub(super) struct PgCluster {
        version: String,
        stopped: bool,
    }

    impl PgCluster {
        /// The cluster, or why it cannot be stopped and started here.
        pub(super) fn find() -> Result<PgCluster, String> {
            let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
                .map_err(|e| format!("no /etc/postgresql ({e})"))?
                .flatten()
                .filter(|e| e.path().join("main").is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            versions.sort();
            let version = versions
                .into_iter()
                .next()
                .ok_or("no cluster <version>/main under /etc/postgresql")?;
            for tool in ["pg_ctlcluster", "pg_isready"] {
                Command::new(tool)
                    .arg("--help")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("{tool} is not available ({e})"))?;
            }
            if !pg_ready() {
                return Err("pg_isready -h 127.0.0.1 -p 5432 fails".into());
            }
            Ok(PgCluster {
                version,
                stopped: false,
            })
        }

        fn ctl(&self, action: &str) -> Result<(), String> {
            let mut args = vec!["--skip-systemctl-redirect", &self.version, "main", action];
            if action == "stop" {
                args.extend(["-m", "fast"]);
            }
            let out = Command::new("pg_ctlcluster")
                .args(&args)
                .output()
                .map_err(|e| format!("pg_ctlcluster {args:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "pg_ctlcluster {args:?}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }

        /// Stop the server (`-m fast`: sessions are terminated) and check it is down.
        pub(super) fn stop(&mut self) {
            self.stopped = true;
            self.ctl("stop").unwrap_or_else(|e| panic!("{e}"));
            assert!(!pg_ready(), "PostgreSQL still answers after the stop");
        }

        /// Start the server and wait (60 s) until it accepts connections.
        pub(super) fn start(&mut self) {
            if let Err(e) = self.ctl("start") {
                // Already running (someone else started it) is fine; pg_isready decides.
                eprintln!("{e}");
            }
            let t0 = Instant::now();
            while !pg_ready() {
                assert!(
                    t0.elapsed() < secs(60),
                    "PostgreSQL did not come back within 60 s"
                );
                std::thread::sleep(ms(100));
            }
            self.stopped = false;
        }
    }

    impl Drop for PgCluster {
        fn drop(&mut self) {
            if !self.stopped {
                return;
            }
            if let Err(e) = self.ctl("start") {
                eprintln!("restarting PostgreSQL after the test: {e}");
            }
            let t0 = Instant::now();
            while !pg_ready() && t0.elapsed() < secs(60) {
                std::thread::sleep(ms(100));
            }
            if !pg_ready() {
                eprintln!("PostgreSQL is still down after the test: start it by hand");
            }
        }
    }
}

/// The receiver's target is a fresh PostgreSQL database; the PostgreSQL SERVER is stopped
/// (`pg_ctlcluster ... stop -m fast`) for 30 s while the sender streams changes, then
/// started again. The receiver's connection dies ("terminating connection due to
/// administrator command", then "connection refused" and "the database system is
/// starting up" on reconnects): all transient. Batches wait spooled and unanswered, no
/// attempt is counted, nothing is quarantined, the same receiver process reconnects on
/// its own and catches up; the server's rows equal the source's row by row, its ledger
/// holds every seq exactly once.
///
/// This test stops the SHARED PostgreSQL server, and tests of one binary run in parallel
/// (other binaries run after this one under `cargo test`): every test of this binary
/// (`tests/tests/reliability.rs`) that uses PostgreSQL holds
/// [`gapsync_tests::suite::postgres_exclusive`], and so does this one.
/// Skipped when PostgreSQL or `pg_ctlcluster` is not available, except with `CI` set,
/// where it fails.
#[cfg(feature = "odbc")]
#[test]
fn postgres_target_stopped_for_30s() {
    use gapsync_tests::odbc::{Server, assert_receiver_has_odbc, assert_synced_with, wait_synced};
    const TEST: &str = "postgres_target_stopped_for_30s";
    // This test stops the server: no other test of this binary may use it meanwhile.
    let _pg = gapsync_tests::suite::postgres_exclusive();
    if !Server::Postgres.require(TEST) {
        return;
    }
    assert_receiver_has_odbc();
    // Declared before the cluster guard: dropped after it, once the server is back.
    let db = Server::Postgres.fresh_database("outage30");
    let mut cluster = match postgres::PgCluster::find() {
        Ok(c) => c,
        Err(why) => {
            postgres::skip_or_panic(TEST, &why);
            return;
        }
    };
    let node = "pgstop";
    let ws = Workspace::new("outage-pg");
    let mut rx = ws.receiver(ReceiverConfig {
        retry_interval: ms(300),
        result_wait: secs(2),
        target_url: Some(format!("odbc:{}", db.conn_str())),
        ..ReceiverConfig::default()
    });
    rx.start();
    let gap = GapNode::start(&ws.path().join("gap"), rx.addr(), &[]);
    let mut tx = ws.sender(
        SenderConfig::new(node)
            .table(Table::new("t"))
            .max_rows(25)
            .dialect(Server::Postgres.dialect())
            .connect(gap.addr()),
    );
    tx.source().execute_batch(SCHEMA).unwrap();
    tx.install();
    tx.snapshot(&[]);
    tx.start();
    wait_synced(&ws, &tx, &db, secs(60));

    let writer = BackgroundWriter::start(&tx.source_db, 5432, ms(20), step);
    ws.wait_until("batches applied while streaming", secs(60), || {
        db.ledger_seqs(node).len() >= 4
    });
    let ledger_at_stop = db.ledger_seqs(node).len() as u64;
    let cut_at_stop = tx.progress().last_cut;
    let log_at_stop = rx.log_text().len();
    cluster.stop();
    let stopped_at = Instant::now();
    let w = watch_outage(&ws, &tx, &mut rx, stopped_at + OUTAGE);
    let p = tx.progress();
    let spooled_at_end = spooled(&rx);
    let restarted = Instant::now();
    cluster.start();
    let start_took = restarted.elapsed();

    assert!(
        p.last_cut > cut_at_stop + 1,
        "the sender must keep cutting during the outage: {p:?}"
    );
    assert!(
        p.unanswered >= 2 && w.max_unanswered >= 2,
        "batches must wait unanswered during the outage: {p:?} {w:?}"
    );
    assert!(
        spooled_at_end >= 1 && w.max_spooled >= 1,
        "received batches must wait in the spool: {w:?}"
    );
    let during: String = rx.log_text().get(log_at_stop..).unwrap_or("").to_owned();
    assert!(
        during.contains("target unavailable"),
        "the receiver never logged the stopped server as unavailable\n{}",
        rx.log_tail(30)
    );

    ws.wait_until(
        "the batches held by the outage to be applied",
        secs(90),
        || db.last_seq(node) >= p.last_cut,
    );
    let catch_up = restarted.elapsed();
    let applied_in_outage = p.last_cut - ledger_at_stop;
    let steps_at_catch_up = writer.steps();
    ws.wait_until("the writer to go on after the restart", secs(30), || {
        writer.steps() > steps_at_catch_up + 50
    });
    let steps = writer.stop();
    wait_synced(&ws, &tx, &db, secs(90));
    assert!(rx.is_running(), "the receiver exited\n{}", rx.log_tail(30));
    tx.stop();

    // Row by row, then the ledger: every seq the sender cut exactly once, all applied on
    // the first attempt, nothing quarantined on either side, nothing left in the outbox.
    let (tables, rows) = assert_synced_with(&tx, &db);
    let last = tx.progress().last_cut;
    let want: Vec<u64> = (1..=last).collect();
    assert_eq!(
        db.ledger_seqs(node),
        want,
        "PostgreSQL ledger of {node}: every seq 1..={last} exactly once"
    );
    assert!(db.quarantined_seqs(node).is_empty());
    for b in tx.batches() {
        assert_eq!((b.state.as_str(), b.attempts), ("applied", 0), "{b:?}");
    }
    assert!(tx.work_files("outbox").is_empty());
    assert!(tx.work_files("quarantine").is_empty());
    assert!(rx.work_files("quarantine").is_empty());
    assert_no_failure_audited(&tx, &rx);
    assert!(steps > 500, "the writer made only {steps} steps");
    eprintln!(
        "PostgreSQL stopped {:?}: {last} batches ({applied_in_outage} waited for the \
         server, up to {} unanswered, {} spooled), {steps} writer steps, {tables} table(s) / \
         {rows} rows equal, server up {start_took:?} and caught up {catch_up:?} after the \
         start command",
        OUTAGE, w.max_unanswered, w.max_spooled
    );
    rx.stop();
    drop(gap);
}
