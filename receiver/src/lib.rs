//! gapsync receiver: listens for senders, spools their batch files, verifies them and
//! applies them on the target, exactly once and in seq order per node.
//!
//! Threads and the module each lives in: one accept loop ([`Receiver::accept_loop`],
//! here; slots in [`sessions`]), one thread per connection (`spool::Conn`, the link's
//! `FrameHandler`: authentication, part files, the link into the spool), and one
//! applier ([`Receiver::apply_loop`], `applier`) that owns the target connection used
//! for applying. They share [`Shared`] (`shared`): the outcome of the latest attempt of
//! every batch in flight, with a condition variable that `result?` waits on. Manual
//! apply of files is [`apply_files`] (`manual`). Unit tests across them: `tests`.
//!
//! Trust boundary (ARCHITECTURE.md invariant I8): a connection is unauthenticated until its
//! HELLO verified ([`Shared::authenticate_hello`]: receiver id, time, node key, fresh
//! nonce); until
//! then it holds only a slot ([`sessions`]) and nothing it sends reaches the spool,
//! the ledger or a RESULT answer. An upload takes its (node, seq) name in the spool
//! only after its END signature by the node key and its SHA-256 checked out; the
//! applier then verifies and executes one open descriptor of that file.
//!
//! Work directory (directories 0700, files 0600, nothing followed through a symlink):
//! - `spool/.part-<node>-<seq>-<connection>`: a batch being received on one connection
//!   (created exclusively, removed when the connection ends);
//! - `spool/<file name>`: received, authenticated, fsynced and linked at END (never
//!   over an existing file): waiting to be applied;
//! - `spool/<file name>.fail1`: the batch failed once (holds the reason); the file was
//!   removed and the sender sends it once more;
//! - `quarantine/<file name>` + `.reason`: failed twice: dropped, with the reason (a
//!   database error, or a rejection: bad name/header/sha256, unsigned, untrusted key,
//!   bad signature, wrong node);
//! - `quarantine/replayed/<file name>` + `.reason`: a copy of an applied seq with
//!   different content (a replay), rejected at END and answered "failed";
//! - `state/listen.addr`: the address actually listened on; `state/hello-nonces`: the
//!   nonces of signed HELLOs of the last `2 × hello_max_skew` (kept across restarts);
//!   `state/ledger-marks`: each node's highest seq seen in the target's ledger
//!   ([`marks`]); `audit/`: the audit record.

use std::collections::HashMap;
use std::fs::{self};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::apply::ApplyError;
use crate::config::ReceiverConfig;
use gapsync_common::audit::Audit;
use gapsync_common::batch::{self};
use gapsync_common::fsx;
use gapsync_common::sign::TrustStore;
pub use gapsync_common::stop::sleep_unless;
use tracing::{info, warn};

pub mod allow;
mod applier;
pub mod apply;
mod applylock;
pub mod config;
mod import;
pub mod inbox;
mod manual;
pub mod marks;
pub mod metrics;
pub mod quarantine;
pub mod receipts;
pub mod sessions;
mod shared;
mod spool;
pub mod status;
#[cfg(test)]
mod tests;

pub use applier::authenticate;
pub use import::{ImportReport, import_dir};
pub use manual::apply_files;
pub use shared::Shared;
use spool::serve;

use sessions::Sessions;

/// How far ahead of the ledger's next expected seq an upload may be. The sender ships
/// in order, so a legitimate upload is at most a few seqs ahead; a far-future seq
/// (10^12, 2^63) would wait in the spool forever.
pub const SEQ_WINDOW: u64 = 10_000;

/// How often a running receiver prunes old audit files.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("work directory {path}: {source}")]
    Work {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error("{0}")]
    Order(String),
    #[error("[[trust]]: {0}")]
    Trust(#[from] gapsync_common::sign::SignError),
    #[error("{name}: rejected: {reason}")]
    Rejected { name: String, reason: String },
}

type Result<T> = std::result::Result<T, ReceiverError>;

fn work_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReceiverError + '_ {
    move |source| ReceiverError::Work {
        path: path.to_owned(),
        source,
    }
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub shared: Arc<Shared>,
}

impl Receiver {
    pub fn new(cfg: ReceiverConfig) -> Result<Receiver> {
        fsx::private_dir(&cfg.work_dir).map_err(|e| ReceiverError::Work {
            path: cfg.work_dir.clone(),
            source: e.into_io(),
        })?;
        for d in ["spool", "quarantine", "state"] {
            let p = cfg.work_dir.join(d);
            fsx::private_dir(&p).map_err(|e| ReceiverError::Work {
                path: p.clone(),
                source: e.into_io(),
            })?;
        }
        let trust = TrustStore::from_config(&cfg.trust)?;
        let audit = Audit::new(&cfg.work_dir, "receiver");
        let cfg_limits = cfg.limits.read.clone();
        let sessions = Sessions::new(cfg.link.max_connections as usize);
        let cfg_work_dir = cfg.work_dir.clone();
        let shared = Arc::new(Shared {
            cfg,
            outcomes: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            spooled: Condvar::new(),
            spool_flag: Mutex::new(true),
            audit,
            sessions,
            nonces: Mutex::new(HashMap::new()),
            unverified: AtomicU64::new(0),
            unverified_unkeyed: AtomicU64::new(0),
            next_seen: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            marks: Mutex::new(marks::read_marks(&cfg_work_dir)),
            limits: cfg_limits,
            trust,
            metrics: crate::metrics::RxMetrics::default(),
            link_note: gapsync_common::note::Note::new(
                cfg_work_dir.join("state").join(shared::LINK_NOTE),
                gapsync_common::note::NOTE_EVERY,
            ),
            apply_note: gapsync_common::note::Note::new(
                cfg_work_dir.join("state").join(shared::APPLY_NOTE),
                std::time::Duration::ZERO,
            ),
        });
        shared.load_nonces();
        // Partial files of interrupted transfers (the sender starts them again) and
        // temporary files of interrupted durable writes.
        let spool = shared.spool();
        for e in fs::read_dir(&spool).map_err(work_err(&spool))? {
            let e = e.map_err(work_err(&spool))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".part-") || fsx::is_temp_name(&name) {
                // A part that cannot be removed now is removed at the next start;
                // it is never given a batch name.
                let _ = fs::remove_file(e.path());
            }
        }
        // Files staged by an interrupted inbox scan or `apply`/`import` (taken again
        // from where they came from).
        // The staging folder of `apply`/`import` is left alone while one runs (it
        // holds the apply lock).
        let idle = applylock::ApplyLock::try_acquire(&cfg_work_dir)
            .ok()
            .flatten();
        for dir in [inbox::STAGING_DIR, manual::STAGING_DIR] {
            if dir == manual::STAGING_DIR && idle.is_none() {
                continue;
            }
            if let Ok(rd) = fs::read_dir(spool.join(dir)) {
                for e in rd.flatten() {
                    // As above: removed at the next start if not now; never spooled as is.
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        drop(idle);
        Ok(Receiver { shared })
    }

    /// Bind the listen address; writes the bound address to `state/listen.addr`.
    pub fn bind(&self) -> Result<TcpListener> {
        let addr = &self.shared.cfg.link.listen;
        let l = TcpListener::bind(addr).map_err(|source| ReceiverError::Listen {
            addr: addr.clone(),
            source,
        })?;
        let local = l.local_addr().map_err(|source| ReceiverError::Listen {
            addr: addr.clone(),
            source,
        })?;
        let p = self.shared.cfg.work_dir.join("state").join("listen.addr");
        fsx::write_private_synced(&p, format!("{local}\n").as_bytes()).map_err(work_err(&p))?;
        info!(listen = %local, "receiver listening");
        Ok(l)
    }

    /// Accept connections until `stop`; each gets its own thread.
    pub fn accept_loop(&self, listener: TcpListener, stop: &AtomicBool) -> Result<()> {
        listener
            .set_nonblocking(true)
            .map_err(|source| ReceiverError::Listen {
                addr: self.shared.cfg.link.listen.clone(),
                source,
            })?;
        self.prune_audit();
        let mut pruned = Instant::now();
        let mut summarised: Option<Instant> = None;
        while !stop.load(Ordering::SeqCst) {
            if pruned.elapsed() >= AUDIT_PRUNE_EVERY {
                self.prune_audit();
                pruned = Instant::now();
            }
            // One summary line for connections closed or refused to make room (at most
            // every 10 s): a flood of strangers must not drown the alarms in the log.
            if summarised.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                let n = self.shared.sessions.take_evicted();
                if n > 0 {
                    warn!(
                        count = n,
                        "unauthenticated connections closed or refused to make room (a flood of strangers, or a sender reconnecting fast)"
                    );
                    summarised = Some(Instant::now());
                }
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nonblocking(false) {
                        warn!(%peer, error = %e, "cannot set up the connection; closing it");
                        continue;
                    }
                    let id = match self.shared.sessions.admit(&stream, peer.ip()) {
                        Ok(id) => id,
                        Err(e) => {
                            // Counted in the summary above (refused for room).
                            tracing::debug!(%peer, error = %e, "connection not registered; closing it");
                            continue;
                        }
                    };
                    let shared = Arc::clone(&self.shared);
                    std::thread::spawn(move || {
                        serve(&shared, stream, peer.to_string(), id);
                        shared.sessions.leave(id);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        // Stopping (or reloading): no connection outlives this receiver's state.
        self.shared.sessions.close_all();
        Ok(())
    }

    /// Delete audit month files older than `[audit] keep_months` (at start and once a
    /// day); logs what was removed.
    pub fn prune_audit(&self) {
        let keep = self.shared.cfg.audit_keep_months;
        match self.shared.audit.prune(keep) {
            Ok(removed) => {
                for p in removed {
                    info!(file = %p.display(), keep_months = keep, "audit retention: removed an old audit file");
                }
            }
            Err(e) => warn!(error = %e, "audit retention: cannot prune old audit files"),
        }
    }
}
