//! `gapsync-gap`: a forward isolation device emulator for tests and site acceptance.
//!
//! `gapsync-gap --listen 0.0.0.0:7071 --forward receiver:7070 --latency 50ms
//!  --faults reset,flip,swallow,stall --fault-every 50 --seed 42`
//!
//! See `gapsync_tests::gap` for what it does. Logs go to stderr (`GAPSYNC_LOG=debug`
//! logs every frame).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gapsync_tests::gap::{Fault, Gap, GapConfig};

/// Frame-aware TCP relay emulating a one-way isolation device (one answer byte back).
#[derive(Debug, Parser)]
#[command(name = "gapsync-gap", version)]
struct Args {
    /// Address senders connect to (`127.0.0.1:0`: a free port, logged).
    #[arg(long)]
    listen: String,
    /// The receiver's address.
    #[arg(long)]
    forward: String,
    /// One-way latency added to every forwarded frame (`50ms`, `1s`; gapsync's one
    /// duration grammar).
    #[arg(long, default_value = "0s", value_parser = duration)]
    latency: Duration,
    /// Forward bandwidth limit in bytes per second (0: unlimited).
    #[arg(long, default_value_t = 0)]
    bandwidth: u64,
    /// Faults to inject: a comma-separated subset of reset,flip,swallow,stall.
    #[arg(long, default_value = "")]
    faults: String,
    /// Inject a fault on about one frame in N.
    #[arg(long, default_value_t = 100)]
    fault_every: u64,
    /// PRNG seed (the same seed gives the same fault sequence for the same traffic).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A stall holds a frame for three times this long (`5s`).
    #[arg(long, default_value = "5s", value_parser = duration)]
    stall: Duration,
}

/// A duration in gapsync's one grammar (`500ms`, `5s`, `2m`, `1h 30m`).
fn duration(s: &str) -> Result<Duration, String> {
    gapsync_common::config::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (use e.g. 50ms, 5s, 2m)"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = gapsync_common::logging::init() {
        eprintln!("gapsync-gap: error: {e}");
        return ExitCode::from(2);
    }
    let faults = match Fault::parse_list(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gapsync-gap: --faults: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = GapConfig {
        listen: args.listen,
        forward: args.forward,
        latency: args.latency,
        bandwidth: (args.bandwidth > 0).then_some(args.bandwidth),
        faults,
        fault_every: args.fault_every.max(1),
        seed: args.seed,
        stall: args.stall,
    };
    match Gap::start(cfg) {
        Ok(gap) => {
            gap.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            ExitCode::FAILURE
        }
    }
}
