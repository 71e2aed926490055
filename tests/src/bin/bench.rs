//! `gapsync-bench`: the performance budgets (BENCHMARKS.md) as ratios against a peer
//! run beside it (see `gapsync_tests::bench`). Prints a markdown table on stdout, the
//! progress and every repetition on stderr.
//!
//! ```sh
//! cargo build --release --workspace --features odbc && target/release/gapsync-bench
//! ```

use std::process::ExitCode;

use clap::Parser;
use gapsync_tests::bench::{ALL, Opts, TABLE_HEADER, machine, run};

/// Measure gapsync against its peers (sqlite3, psql, mariadb, sqlite3 .dump).
#[derive(Debug, Parser)]
#[command(name = "gapsync-bench", version)]
struct Args {
    /// Repetitions per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Scaled-down sizes (20k statements, 100k changes to cut, a 100 MiB batch).
    #[arg(long)]
    quick: bool,
    /// Only these measurements (comma-separated): triggers, sqlite, postgres, mariadb,
    /// cut, bytes, memory.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Statements per apply batch and writes in the trigger measurement (overrides
    /// the size chosen by --quick).
    #[arg(long)]
    changes: Option<u64>,
    /// Changes cut in the `cut` measurement.
    #[arg(long)]
    cut_changes: Option<u64>,
    /// Size of the `memory` measurement's batch in MiB.
    #[arg(long)]
    big_mib: Option<u64>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let mut opts = Opts::new(a.quick, a.reps);
    if !a.only.is_empty() {
        for o in &a.only {
            if !ALL.contains(&o.as_str()) {
                eprintln!("gapsync-bench: unknown measurement {o:?} (known: {ALL:?})");
                return ExitCode::from(2);
            }
        }
        opts.only = a.only;
    }
    if let Some(n) = a.changes {
        opts.changes = n;
    }
    if let Some(n) = a.cut_changes {
        opts.cut_changes = n;
    }
    if let Some(n) = a.big_mib {
        opts.big_bytes = n << 20;
    }
    // A failing measurement becomes a FAILED row with its message: no backtraces.
    std::panic::set_hook(Box::new(|_| {}));
    let rows = run(&opts);
    println!("{}", machine());
    println!("{TABLE_HEADER}");
    for r in &rows {
        println!("{}", r.markdown());
    }
    println!();
    for r in &rows {
        println!("- {}", r.detail());
    }
    ExitCode::SUCCESS
}
