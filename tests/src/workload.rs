//! Workloads written into the source.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::*;

// ------------------------------------------------------------------------ workloads

/// A small deterministic PRNG (xorshift64*), so workloads are reproducible by seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A thread writing to a source database until stopped: one call of `op` per step,
/// with `pause` between steps. `op` gets the connection, the thread's RNG and the step
/// number; SQLite "busy" errors are retried, any other error fails the writer.
#[derive(Debug)]
pub struct BackgroundWriter {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) steps: Arc<AtomicU64>,
    pub(crate) handle: Option<JoinHandle<Result<u64, String>>>,
}

impl BackgroundWriter {
    pub fn start<F>(db: &Path, seed: u64, pause: Duration, mut op: F) -> BackgroundWriter
    where
        F: FnMut(&Connection, &mut Rng, u64) -> rusqlite::Result<()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicU64::new(0));
        let db = db.to_path_buf();
        let handle = {
            let stop = Arc::clone(&stop);
            let steps = Arc::clone(&steps);
            std::thread::spawn(move || {
                let conn = open_db(&db);
                let mut rng = Rng::new(seed);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    match op(&conn, &mut rng, n) {
                        Ok(()) => {
                            n += 1;
                            steps.store(n, Ordering::SeqCst);
                        }
                        Err(rusqlite::Error::SqliteFailure(f, _))
                            if matches!(
                                f.code,
                                rusqlite::ErrorCode::DatabaseBusy
                                    | rusqlite::ErrorCode::DatabaseLocked
                            ) =>
                        {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                        Err(e) => return Err(format!("writer step {n}: {e}")),
                    }
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                Ok(n)
            })
        };
        BackgroundWriter {
            stop,
            steps,
            handle: Some(handle),
        }
    }

    /// [`start`](Self::start) at a steady rate: step n is due at start + n * `period`,
    /// whatever a step costs (a late step is not waited for).
    pub fn paced<F>(db: &Path, seed: u64, period: Duration, mut op: F) -> BackgroundWriter
    where
        F: FnMut(&Connection, &mut Rng, u64) -> rusqlite::Result<()> + Send + 'static,
    {
        let t0 = Instant::now();
        BackgroundWriter::start(db, seed, Duration::ZERO, move |c, rng, n| {
            let due = t0 + period.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            op(c, rng, n)
        })
    }

    /// Steps completed so far.
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    /// Stop, join, and return the number of steps; panics if the writer failed.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().expect("writer handle");
        match h.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("background writer failed: {e}"),
            Err(_) => panic!("background writer panicked"),
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
