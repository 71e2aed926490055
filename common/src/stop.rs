//! Cooperative stopping for the services: SIGTERM, SIGINT and SIGHUP set a flag, loops
//! check it. SIGHUP is a reload: the service stops cleanly between batches, reads its
//! configuration again and starts again in the same process (the units' `ExecReload`
//! sends it); a configuration that does not load keeps the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sleep `d`, waking early (within 50 ms) when `stop` is set.
pub fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The stop flag of a service and whether SIGHUP (a reload) set it.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Set by SIGTERM, SIGINT and SIGHUP.
    pub stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers (flags only: nothing runs in the signal handler).
    pub fn install() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&hup))?;
        Ok(Signals { stop, hup })
    }

    /// Whether the stop was a SIGHUP (reload); clears it.
    pub fn take_reload(&self) -> bool {
        self.hup.swap(false, Ordering::SeqCst)
    }
}

/// Runs the service with `cfg` until it stops; when the stop was a SIGHUP, reads the
/// configuration again with `reload` (one that does not load keeps the old one, with an
/// alarm) and runs again, in the same process.
pub fn run_reloading<C: Clone, E: std::fmt::Display, R>(
    signals: &Signals,
    mut cfg: C,
    reload: impl Fn() -> Result<C, E>,
    mut run: impl FnMut(C, &Arc<AtomicBool>) -> Result<(), R>,
) -> Result<(), R> {
    loop {
        run(cfg.clone(), &signals.stop)?;
        if !signals.take_reload() {
            return Ok(());
        }
        match reload() {
            Ok(c) => {
                tracing::info!("SIGHUP: configuration re-read; starting again with it");
                cfg = c;
            }
            Err(e) => {
                tracing::error!(alarm = true, error = %e, "SIGHUP: the configuration does not load; going on with the old one (fix it and send SIGHUP again)");
            }
        }
        signals.stop.store(false, Ordering::SeqCst);
    }
}
