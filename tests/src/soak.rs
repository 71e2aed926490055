//! The soak run (`gapsync-soak`, `tests/soak.sh`): the reliability suite's mix for a
//! chosen duration. One sender streams the mixed workload at a steady rate through a
//! `gapsync-gap` injecting every fault kind into one receiver; at seeded moments the run
//! kills the sender, the receiver or both with SIGKILL and restarts them, and holds the
//! target database locked (`BEGIN EXCLUSIVE` from this process) for a while, and (as
//! root) fills the receiver's spool, a small tmpfs of its own, for a while. It prints a
//! summary line every `summary_every` and, at the end, stops the writer, waits for the
//! stream to drain, compares source and target row by row and checks the ledger holds
//! every seq exactly once: the verdict line says PASS or FAIL (and why).
//!
//! The run's directory is kept when the verdict is FAIL (or with `GAPSYNC_KEEP=1`).

use std::fmt::Write as _;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::suite::{
    GapRig, Tmpfs, assert_exactly_once, fill_fs, mix_schema, mix_tables, mix_writer,
};
use crate::{ReceiverConfig, Rng, SenderConfig, assert_synced, ms, secs};

/// What the soak run does, and how often.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long the workload runs (the drain and checks come after).
    pub duration: Duration,
    pub seed: u64,
    /// Source changes per second (in transactions of a twentieth of it, every 50 ms).
    pub rate: u32,
    /// The gap injects a fault on about one frame in this many.
    pub fault_every: u64,
    /// Mean time between two kills (each kill is drawn at 0.5..1.5 of it).
    pub kill_every: Duration,
    /// Mean time between two target outages.
    pub outage_every: Duration,
    /// How long the target stays locked.
    pub outage: Duration,
    /// Mean time between two episodes of a full receiver spool (None: never). The
    /// spool gets its own small tmpfs (needs root; without it the episodes are skipped
    /// with a note).
    pub spool_full_every: Option<Duration>,
    /// How long the spool stays full.
    pub spool_full: Duration,
    /// How often a summary line is printed.
    pub summary_every: Duration,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            duration: secs(3600),
            seed: 1,
            rate: 200,
            fault_every: 20,
            kill_every: secs(120),
            outage_every: secs(600),
            outage: secs(30),
            spool_full_every: Some(secs(900)),
            spool_full: secs(30),
            summary_every: secs(60),
        }
    }
}

/// Counters of one soak run.
#[derive(Debug, Default, Clone)]
pub struct SoakStats {
    pub kills: u32,
    pub outages: u32,
    pub spool_fulls: u32,
}

/// A positive duration in gapsync's one grammar (`gapsync_common::config::
/// parse_duration`: `90s`, `15m`, `2h`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match gapsync_common::config::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err(format!("`{s}`: a duration must be positive")),
        None => Err(format!(
            "`{s}` is not a duration (use e.g. 90s, 15m, 2h, 1h 30m)"
        )),
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// A random moment `mean * [0.5, 1.5)` from now.
fn next_at(rng: &mut Rng, mean: Duration) -> Instant {
    Instant::now() + mean.mul_f64(0.5 + rng.unit())
}

/// Run the soak; summary lines and the verdict go to `out`. Returns true on PASS.
pub fn run(opts: &SoakOptions, out: &mut dyn Write) -> bool {
    let mut stats = SoakStats::default();
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| soak(opts, out, &mut stats)));
    let took = hms(started.elapsed());
    let (pass, line) = match result {
        Ok(summary) => (true, format!("soak verdict: PASS after {took}: {summary}")),
        Err(p) => {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            (
                false,
                format!(
                    "soak verdict: FAIL after {took} ({} kills, {} outages, {} full spools): {why}",
                    stats.kills, stats.outages, stats.spool_fulls
                ),
            )
        }
    };
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    pass
}

/// The run itself; panics (with the reason) on any broken invariant.
fn soak(opts: &SoakOptions, out: &mut dyn Write, stats: &mut SoakStats) -> String {
    let mut cfg = mix_tables(SenderConfig::new("soak"))
        .max_rows(500)
        .compress(true);
    cfg.frame_timeout = secs(2);
    cfg.result_timeout = secs(3);
    cfg.connect_timeout = secs(2);
    let rx_cfg = ReceiverConfig {
        result_wait: secs(1),
        busy_timeout: ms(500),
        retry_interval: ms(500),
        ..ReceiverConfig::default()
    };
    let fault_every = opts.fault_every.to_string();
    let seed = opts.seed.to_string();
    let mut rig = GapRig::start(
        "soak",
        rx_cfg,
        cfg,
        &mix_schema(),
        &[
            "--faults",
            "reset,flip,swallow,stall",
            "--fault-every",
            &fault_every,
            "--stall",
            "300ms",
            "--seed",
            &seed,
        ],
    );
    let _ = writeln!(
        out,
        "soak: {} of {} changes/s through every gap fault (1 frame in {}), a kill every ~{:?}, \
         the target locked {:?} every ~{:?}; seed {}; directory {}",
        hms(opts.duration),
        opts.rate,
        opts.fault_every,
        opts.kill_every,
        opts.outage,
        opts.outage_every,
        opts.seed,
        rig.ws.path().display()
    );
    // The spool on its own small file system, for the full-spool episodes.
    let mut spool_fs: Option<(Tmpfs, std::path::PathBuf)> = None;
    if opts.spool_full_every.is_some() {
        let spool = rig.rx.work_dir.join("spool");
        let empty = std::fs::read_dir(&spool)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        rig.rx.stop();
        match (empty, Tmpfs::mount(&spool, "64m")) {
            (true, Ok(t)) => spool_fs = Some((t, spool)),
            (false, _) => {
                let _ = writeln!(
                    out,
                    "soak: full-spool episodes skipped: the spool is not empty"
                );
            }
            (true, Err(why)) => {
                let _ = writeln!(
                    out,
                    "soak: full-spool episodes skipped: cannot mount a tmpfs on the spool (needs root): {why}"
                );
            }
        }
        rig.rx.start();
    }
    let per_step = (opts.rate / 20).max(1);
    let writer = mix_writer(&rig.tx.source_db, opts.seed, per_step, ms(50));
    let mut rng = Rng::new(opts.seed ^ 0x50a4);
    let t0 = Instant::now();
    let mut kill_at = next_at(&mut rng, opts.kill_every);
    let mut outage_at = next_at(&mut rng, opts.outage_every);
    let mut lock: Option<(Connection, Instant)> = None;
    let mut spool_full_at = opts.spool_full_every.map(|d| next_at(&mut rng, d));
    let mut ballast: Option<(std::path::PathBuf, Instant)> = None;
    let mut summary_at = t0 + opts.summary_every;

    while t0.elapsed() < opts.duration {
        std::thread::sleep(ms(200));
        let now = Instant::now();
        if lock.as_ref().is_some_and(|(_, until)| now >= *until)
            && let Some((c, _)) = lock.take()
        {
            c.execute_batch("COMMIT")
                .unwrap_or_else(|e| panic!("releasing the target lock: {e}"));
        }
        if lock.is_none() && now >= outage_at {
            let c = rig.rx.target();
            c.execute_batch("BEGIN EXCLUSIVE")
                .unwrap_or_else(|e| panic!("locking the target: {e}"));
            lock = Some((c, now + opts.outage));
            stats.outages += 1;
            outage_at = next_at(&mut rng, opts.outage_every) + opts.outage;
        }
        if let Some((p, until)) = &ballast
            && now >= *until
        {
            std::fs::remove_file(p)
                .unwrap_or_else(|e| panic!("removing the spool ballast {}: {e}", p.display()));
            ballast = None;
        }
        if let (Some((_, spool)), Some(at), None) = (&spool_fs, spool_full_at, &ballast)
            && now >= at
        {
            let p = fill_fs(spool, 0)
                .unwrap_or_else(|e| panic!("filling the spool {}: {e}", spool.display()));
            ballast = Some((p, now + opts.spool_full));
            stats.spool_fulls += 1;
            spool_full_at = opts
                .spool_full_every
                .map(|d| next_at(&mut rng, d) + opts.spool_full);
        }
        if now >= kill_at {
            assert!(
                rig.tx.is_running() && rig.rx.is_running(),
                "a service exited by itself\n{}",
                rig.ws.logs(40)
            );
            let victim = rng.below(3);
            if victim != 1 {
                rig.tx.kill();
            }
            if victim != 0 {
                rig.rx.kill();
            }
            std::thread::sleep(ms(20 + rng.below(500)));
            if victim != 1 {
                rig.tx.start();
            }
            if victim != 0 {
                rig.rx.start();
            }
            stats.kills += 1;
            kill_at = next_at(&mut rng, opts.kill_every);
        }
        if now >= summary_at {
            summary_at += opts.summary_every;
            let line = summary(&rig, t0.elapsed(), stats, lock.is_some(), ballast.is_some());
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    let steps = writer.stop();
    if let Some((p, _)) = ballast.take() {
        std::fs::remove_file(&p)
            .unwrap_or_else(|e| panic!("removing the spool ballast {}: {e}", p.display()));
    }
    if let Some((c, _)) = lock.take() {
        c.execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("releasing the target lock: {e}"));
    }
    assert!(
        rig.tx.is_running() && rig.rx.is_running(),
        "a service exited by itself\n{}",
        rig.ws.logs(40)
    );
    let _ = writeln!(
        out,
        "soak: writer stopped after {steps} transactions; draining"
    );
    rig.wait_synced(secs(600));
    let (tables, rows) = assert_synced(&rig.tx, &rig.rx);
    assert_exactly_once(&rig.tx, &rig.rx, &[]);
    let faults = rig.faults();
    let s = format!(
        "{} changes in {} batches, {tables} tables / {rows} rows identical, every seq applied \
         exactly once, nothing quarantined; {} kills, {} target outages, {} full spools, faults {}",
        rig.tx.captured_changes(),
        rig.tx.progress().last_cut,
        stats.kills,
        stats.outages,
        stats.spool_fulls,
        fault_text(&faults)
    );
    rig.tx.stop();
    rig.rx.stop();
    drop(spool_fs);
    s
}

fn fault_text(faults: &[(&str, usize)]) -> String {
    let mut s = String::new();
    for (k, n) in faults {
        let _ = write!(s, "{}{k}:{n}", if s.is_empty() { "" } else { "," });
    }
    s
}

/// One summary line: elapsed time, changes, batches applied, the backlog and its age,
/// faults, kills, outages, and the exactly-once check of the ledger so far.
fn summary(
    rig: &GapRig,
    elapsed: Duration,
    stats: &SoakStats,
    locked: bool,
    spool_full: bool,
) -> String {
    let p = rig.tx.progress();
    let changes = rig.tx.captured_changes();
    let oldest_ready = rig
        .tx
        .batches()
        .into_iter()
        .find(|b| b.state == "ready")
        .and_then(|b| chrono::DateTime::parse_from_rfc3339(&b.created).ok())
        .map(|t| {
            let age = chrono::Utc::now().signed_duration_since(t);
            age.num_milliseconds() as f64 / 1000.0
        })
        .unwrap_or(0.0);
    // The ledger cannot be read while this process holds the target locked.
    let ledger = if locked {
        "ledger=(target locked)".to_owned()
    } else {
        let seqs = rig.rx.ledger_seqs("soak");
        let ok = seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1);
        assert!(ok, "the ledger is not 1..=n exactly once: {seqs:?}");
        format!("ledger=1..{} once", seqs.len())
    };
    let q = p.quarantined;
    assert_eq!(q, 0, "a batch was quarantined on the sender");
    format!(
        "soak {} changes={changes} ({:.0}/s) batches={} {ledger} backlog={} changes + {} batches \
         lag={oldest_ready:.1}s faults={} kills={} outages={}{} spool_full={}{} quarantined={q}",
        hms(elapsed),
        changes as f64 / elapsed.as_secs_f64().max(1.0),
        p.last_cut,
        p.pending,
        p.unanswered,
        fault_text(&rig.faults()),
        stats.kills,
        stats.outages,
        if locked { " (target locked now)" } else { "" },
        stats.spool_fulls,
        if spool_full { " (spool full now)" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("15m"), Ok(secs(900)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(secs(2 * 86400)));
        assert!(
            parse_duration("40")
                .expect_err("a bare number has no unit")
                .contains("not a duration")
        );
        assert!(
            parse_duration("x")
                .expect_err("must be refused")
                .contains("not a duration")
        );
        assert!(
            parse_duration("0h")
                .expect_err("must be refused")
                .contains("positive")
        );
    }
}
