//! `gapsync-soak`: the reliability suite's mix (every gap fault, kill -9 of either side,
//! target outages, a full spool, a steady mixed workload) for a chosen duration, with a summary line
//! every minute and a final verdict. `tests/soak.sh HOURS` builds and runs it.
//!
//! See `gapsync_tests::soak` for what it does. Exit status 0 on PASS, 1 on FAIL, 2 on
//! bad arguments.

use std::process::ExitCode;

use clap::Parser;
use gapsync_tests::soak::{SoakOptions, parse_duration, run};

/// Soak test of gapsync: sender, gap emulator with faults and receiver, for hours.
#[derive(Debug, Parser)]
#[command(name = "gapsync-soak", version)]
struct Args {
    /// How long the workload runs: e.g. 90s, 30m, 8h (the drain and the checks follow).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Source changes per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// The gap injects a fault on about one frame in N.
    #[arg(long, default_value_t = 20)]
    fault_every: u64,
    /// Mean time between kill -9 of the sender, the receiver or both.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    kill_every: std::time::Duration,
    /// Mean time between target outages (the target database locked).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    outage_every: std::time::Duration,
    /// How long each target outage lasts.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    outage: std::time::Duration,
    /// Mean time between episodes of a full receiver spool (0: never; needs root to
    /// mount the spool's own tmpfs, skipped with a note otherwise).
    #[arg(long, default_value = "15m", value_parser = parse_duration_or_zero)]
    spool_full_every: std::time::Duration,
    /// How long the spool stays full.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    spool_full: std::time::Duration,
    /// How often a summary line is printed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    summary_every: std::time::Duration,
    /// Seed of the workload, the faults and the kill moments (default: drawn from the
    /// clock and printed, so a failing run can be replayed with it).
    #[arg(long)]
    seed: Option<u64>,
}

/// A duration, or `0` / `0s` for "never".
fn parse_duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    if matches!(s.trim(), "0" | "0s") {
        Ok(std::time::Duration::ZERO)
    } else {
        parse_duration(s)
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    let opts = SoakOptions {
        duration: a.duration,
        seed: a.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
                .unwrap_or(1)
        }),
        rate: a.rate.max(20),
        fault_every: a.fault_every.max(1),
        kill_every: a.kill_every,
        outage_every: a.outage_every,
        outage: a.outage,
        spool_full_every: (!a.spool_full_every.is_zero()).then_some(a.spool_full_every),
        spool_full: a.spool_full,
        summary_every: a.summary_every,
    };
    let mut out = std::io::stdout();
    if run(&opts, &mut out) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
