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
