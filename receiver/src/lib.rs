//! gapsync receiver: listens for senders, spools their batch files, verifies them and
//! applies them on the target, exactly once and in seq order per node.
//!
//! Threads: one accept loop, one thread per connection (a [`Conn`], the link's
//! [`FrameHandler`]), and one applier ([`Receiver::apply_loop`]) that owns the target
//! connection used for applying. They share [`Shared`]: the outcome of the latest attempt
//! of every batch in flight, with a condition variable that `result?` waits on.
//!
//! Trust boundary (DESIGN.md invariant 8): a connection is unauthenticated until its
//! HELLO verified ([`Conn::hello`]: receiver id, time, node key, fresh nonce); until
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
//! - `state/listen.addr`: the address actually listened on; `audit/`: the audit record.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::ReceiverConfig;
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::{self, ReadLimits};
use gapsync_common::fsx;
use gapsync_common::sign::TrustStore;
pub use gapsync_common::stop::sleep_unless;
use gapsync_common::target::{ApplyError, ApplyOutcome, Target};
use gapsync_protocol::{EndInfo, FrameHandler, Hello, ServerOptions, serve_connection};
use tracing::{debug, error, info, warn};

pub mod config;
pub mod sessions;
pub mod status;

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

/// The latest attempt of a batch, as `result?` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Spooled; the applier has not finished with it yet.
    Pending,
    Applied,
    /// Failed deterministically (first or second time).
    Failed,
}

/// State shared by connections and the applier.
#[derive(Debug)]
pub struct Shared {
    pub cfg: ReceiverConfig,
    outcomes: Mutex<HashMap<(String, u64), Outcome>>,
    changed: Condvar,
    /// Wakes the applier when a file was spooled.
    spooled: Condvar,
    spool_flag: Mutex<bool>,
    audit: Audit,
    /// Open connections and their slots.
    pub sessions: Sessions,
    /// Nonces of accepted HELLOs, with when they may be forgotten.
    nonces: Mutex<HashMap<(String, [u8; 16]), Instant>>,
    /// Bytes in part files (received, not yet authenticated by END), all connections.
    unverified: AtomicU64,
    /// The ledger's next expected seq per node, as last read (for the seq window).
    next_seen: Mutex<HashMap<String, u64>>,
    pub limits: ReadLimits,
    /// The `[[trust]]` keys, parsed at start.
    pub trust: TrustStore,
}

impl Shared {
    fn spool(&self) -> PathBuf {
        self.cfg.work_dir.join("spool")
    }
    fn quarantine_dir(&self) -> PathBuf {
        self.cfg.work_dir.join("quarantine")
    }

    fn set(&self, node: &str, seq: u64, o: Outcome) {
        if let Ok(mut m) = self.outcomes.lock() {
            m.insert((node.to_owned(), seq), o);
        }
        self.changed.notify_all();
    }

    fn forget(&self, node: &str, seq: u64) {
        if let Ok(mut m) = self.outcomes.lock() {
            m.remove(&(node.to_owned(), seq));
        }
    }

    /// Wait until the outcome of (node, seq) is no longer Pending, or `until`.
    fn wait_settled(&self, node: &str, seq: u64, until: Instant) -> Option<Outcome> {
        let key = (node.to_owned(), seq);
        let mut m = self.outcomes.lock().ok()?;
        loop {
            match m.get(&key).copied() {
                Some(Outcome::Pending) => {}
                other => return other,
            }
            let now = Instant::now();
            if now >= until {
                return Some(Outcome::Pending);
            }
            m = self.changed.wait_timeout(m, until - now).ok()?.0;
        }
    }

    fn wake_applier(&self) {
        if let Ok(mut f) = self.spool_flag.lock() {
            *f = true;
        }
        self.spooled.notify_all();
    }

    fn wait_for_spool(&self, d: Duration) {
        if let Ok(mut f) = self.spool_flag.lock() {
            if !*f {
                if let Ok((g, _)) = self.spooled.wait_timeout(f, d) {
                    f = g;
                } else {
                    return;
                }
            }
            *f = false;
        }
    }

    pub fn audit(&self, ev: AuditEvent<'_>) {
        if let Err(e) = self.audit.record(&ev) {
            error!(error = %e, "cannot write the audit record");
        }
    }

    pub fn open_target(&self) -> std::result::Result<Target, ApplyError> {
        Target::open(&self.cfg.target, &self.cfg.target_options())
    }

    /// Most bytes all connections together may hold in part files.
    fn max_unverified(&self) -> u64 {
        self.cfg.limits.max_batch_bytes.saturating_mul(2)
    }

    fn note_next(&self, node: &str, next: u64) {
        if let Ok(mut m) = self.next_seen.lock() {
            m.insert(node.to_owned(), next);
        }
    }

    /// Whether `seq` of `node` is within [`SEQ_WINDOW`] of the ledger's next expected
    /// seq (as last read). Unknown (target not read yet): within.
    fn in_window(&self, node: &str, seq: u64) -> bool {
        let next = self
            .next_seen
            .lock()
            .ok()
            .and_then(|m| m.get(node).copied());
        next.is_none_or(|n| seq <= n.saturating_add(SEQ_WINDOW))
    }

    /// Records a HELLO nonce; false if it was seen before (a replay).
    fn fresh_nonce(&self, node: &str, nonce: [u8; 16]) -> bool {
        let Ok(mut m) = self.nonces.lock() else {
            return false;
        };
        let now = Instant::now();
        m.retain(|_, until| *until > now);
        let keep = now + self.cfg.link.hello_max_skew * 2;
        m.insert((node.to_owned(), nonce), keep).is_none()
    }

    /// Checks a HELLO (see the protocol docs, "Authentication"). Ok(key id, "" when
    /// unsigned and accepted because of `insecure`); Err: the reason for the log.
    pub fn authenticate_hello(
        &self,
        node: &str,
        hello: &Hello,
        message: &[u8],
    ) -> std::result::Result<String, String> {
        let link = &self.cfg.link;
        if hello.receiver_id != link.id {
            return Err(format!(
                "HELLO is for receiver {:?}, this is {:?} (set [link] receiver_id in the sender's config to this receiver's [link] id)",
                hello.receiver_id, link.id
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let skew = now.abs_diff(hello.time);
        if skew > link.hello_max_skew.as_secs() {
            return Err(format!(
                "HELLO time is {skew} s off this clock, over [link] hello_max_skew = {} s (a replay, or the clocks of the two zones disagree: fix the time source)",
                link.hello_max_skew.as_secs()
            ));
        }
        let key = if self.trust.has_node(node) {
            let Some(auth) = &hello.auth else {
                return Err(format!(
                    "unsigned HELLO for node {node}, which has [[trust]] keys"
                ));
            };
            self.trust
                .verify_link(node, &auth.key_id, message, &auth.signature)
                .map_err(|e| format!("HELLO signature: {e}"))?
        } else if self.cfg.insecure {
            // `insecure` lets nodes without keys in unauthenticated; a signature that
            // there is no key to check against proves nothing and changes nothing.
            String::new()
        } else {
            return Err(format!(
                "node {node} has no [[trust]] entry (add its .pub line to [[trust]])"
            ));
        };
        if !self.fresh_nonce(node, hello.nonce) {
            return Err("HELLO nonce seen before: a replayed HELLO".to_owned());
        }
        Ok(key)
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
            next_seen: Mutex::new(HashMap::new()),
            limits: cfg_limits,
            trust,
        });
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
        while !stop.load(Ordering::SeqCst) {
            if pruned.elapsed() >= AUDIT_PRUNE_EVERY {
                self.prune_audit();
                pruned = Instant::now();
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
                            warn!(%peer, error = %e, "cannot register the connection; closing it");
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

    /// The applier: apply spooled batches in seq order per node until `stop`.
    pub fn apply_loop(&self, stop: &AtomicBool) {
        let sh = &self.shared;
        let mut target: Option<Target> = None;
        let mut waiting_logged: HashMap<String, u64> = HashMap::new();
        while !stop.load(Ordering::SeqCst) {
            let t = match target.as_mut() {
                Some(t) => t,
                None => match sh.open_target() {
                    Ok(t) => target.insert(t),
                    Err(e) => {
                        warn!(error = %e, "target unavailable; retrying");
                        sleep_unless(stop, sh.cfg.retry_interval);
                        continue;
                    }
                },
            };
            match self.apply_spooled(t, &mut waiting_logged) {
                Ok(true) => {}
                Ok(false) => sh.wait_for_spool(Duration::from_millis(500)),
                Err(e) => {
                    warn!(error = %e, retry_in = ?sh.cfg.retry_interval, "target unavailable; will retry");
                    target = None;
                    sleep_unless(stop, sh.cfg.retry_interval);
                }
            }
        }
    }

    /// One pass over the spool. Ok(true): something was done. Err: transient failure.
    fn apply_spooled(
        &self,
        t: &mut Target,
        waiting_logged: &mut HashMap<String, u64>,
    ) -> std::result::Result<bool, ApplyError> {
        let sh = &self.shared;
        let mut did = false;
        for (node, files) in spooled_files(&sh.spool()) {
            let next = t.next_expected(&node)?;
            sh.note_next(&node, next);
            for (&seq, path) in files.range(..next) {
                // Applied or quarantined before: a resent copy.
                let applied = t.applied_sha(&node, seq)?.is_some();
                sh.set(
                    &node,
                    seq,
                    if applied {
                        Outcome::Applied
                    } else {
                        Outcome::Failed
                    },
                );
                // Gone already is as good: the entry is stale either way.
                let _ = fs::remove_file(path);
                did = true;
            }
            match files.get(&next) {
                Some(path) => {
                    self.apply_file(t, &node, next, path)?;
                    did = true;
                }
                None => {
                    if let Some((&first, _)) = files.range(next..).next()
                        && waiting_logged.get(&node) != Some(&first)
                    {
                        warn!(%node, waiting = first, missing = next, "batch waits for an earlier seq that has not arrived");
                        waiting_logged.insert(node.clone(), first);
                    }
                }
            }
        }
        Ok(did)
    }

    fn apply_file(
        &self,
        t: &mut Target,
        node: &str,
        seq: u64,
        path: &Path,
    ) -> std::result::Result<(), ApplyError> {
        let sh = &self.shared;
        let name = file_name(path);
        // One descriptor, opened without following a symlink, for verification and
        // execution: what is verified is what runs, whatever happens to the name.
        let mut input = match fsx::open_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ApplyError::Transient(format!("opening {name}: {e}"))),
        };
        let size = input.metadata().map(|m| m.len()).unwrap_or(0);
        let checked = input
            .try_clone()
            .map_err(|e| batch::BatchError::Io {
                path: path.to_owned(),
                source: e,
            })
            .and_then(|f| batch::verify_open_batch(f, path, &sh.limits));
        let verified = match checked {
            Ok(v) => v,
            Err(e) => {
                let detail = e.to_string();
                warn!(%node, seq, file = %name, reason = %detail, "batch refused: verification failed, nothing executed");
                sh.audit(
                    AuditEvent::new("rejected", node, seq, &name, size, "")
                        .verdict("rejected", &detail),
                );
                return self.failed(t, node, seq, path, &format!("verification failed: {e}"));
            }
        };
        let sha = hex::encode(verified.content_sha256);
        let key = match authenticate(&sh.cfg, &sh.trust, Some(node), &verified) {
            Ok(k) => k.unwrap_or_default(),
            Err(reason) => {
                warn!(%node, seq, file = %name, %reason, "batch rejected: nothing executed");
                sh.audit(
                    AuditEvent::new("rejected", node, seq, &name, size, &sha)
                        .key(claimed_key(&verified))
                        .verdict("rejected", &reason),
                );
                return self.failed(t, node, seq, path, &reason);
            }
        };
        sh.audit(AuditEvent::new("verified", node, seq, &name, size, &sha).key(&key));
        input
            .seek(SeekFrom::Start(0))
            .map_err(|e| ApplyError::Transient(format!("rewinding {name}: {e}")))?;
        match t.apply_open(input, path, node, seq, &sha, &sh.limits) {
            Ok(outcome) => {
                let n = match outcome {
                    ApplyOutcome::Applied { statements } => statements,
                    ApplyOutcome::AlreadyApplied => 0,
                };
                info!(%node, seq, file = %name, statements = n, "batch applied");
                let detail = format!("{n} statements");
                sh.audit(
                    AuditEvent::new("applied", node, seq, &name, size, &sha)
                        .key(&key)
                        .verdict("ok", &detail),
                );
                // Applied and in the ledger: a file left behind is answered from the
                // ledger and removed on the next pass.
                let _ = fs::remove_file(path);
                let _ = fs::remove_file(marker(path));
                sh.set(node, seq, Outcome::Applied);
                sh.note_next(node, seq + 1);
                Ok(())
            }
            Err(ApplyError::Deterministic(msg)) => self.failed(t, node, seq, path, &msg),
            Err(e) => Err(e),
        }
    }

    /// A deterministic failure: first time, mark and wait for the resend; second time,
    /// quarantine.
    fn failed(
        &self,
        t: &mut Target,
        node: &str,
        seq: u64,
        path: &Path,
        reason: &str,
    ) -> std::result::Result<(), ApplyError> {
        let sh = &self.shared;
        let name = file_name(path);
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mark = marker(path);
        let io = |e: std::io::Error| ApplyError::Transient(format!("spool: {e}"));
        if mark.exists() {
            let qdir = sh.quarantine_dir();
            let dest = qdir.join(&name);
            fsx::move_file(path, &dest).map_err(io)?;
            fsx::write_private_synced(
                &qdir.join(format!("{name}.reason")),
                format!("{reason}\n").as_bytes(),
            )
            .map_err(io)?;
            let sha = batch::sha256_file(&dest)
                .map(|(_, h)| hex::encode(h))
                .unwrap_or_default();
            t.record_quarantine(node, seq, &sha, &name, reason)?;
            // The ledger has the quarantine row now; a marker left over is inert.
            let _ = fs::remove_file(&mark);
            error!(alarm = true, %node, seq, file = %name, reason, "batch failed twice: dropped to quarantine");
            sh.audit(
                AuditEvent::new("dropped", node, seq, &name, size, &sha)
                    .verdict("quarantined", reason),
            );
        } else {
            fsx::write_private_synced(&mark, reason.as_bytes()).map_err(io)?;
            fs::remove_file(path).map_err(io)?;
            warn!(%node, seq, file = %name, reason, "batch failed; waiting for the sender to send it once more");
            sh.audit(
                AuditEvent::new("failed", node, seq, &name, size, "").verdict("failed", reason),
            );
        }
        sh.set(node, seq, Outcome::Failed);
        Ok(())
    }
}

/// The signature check of a verified batch (name, header and sha256 already checked),
/// done before any statement runs. `expected_node`: the node the batch must be of (the
/// connection's HELLO node, via the spooled file name). Ok(Some(key id)): signed by a
/// trusted key; Ok(None): unsigned or unverifiable and accepted because of `insecure =
/// true`. Err: the rejection reason.
///
/// Every batch of a node that has `[[trust]]` keys must carry a valid signature by one
/// of them, with or without `insecure`. `insecure = true` only lets batches of nodes
/// *without* keys through unsigned.
pub fn authenticate(
    cfg: &ReceiverConfig,
    trust: &TrustStore,
    expected_node: Option<&str>,
    v: &batch::VerifiedBatch,
) -> std::result::Result<Option<String>, String> {
    let node = &v.header.node;
    if let Some(want) = expected_node
        && want != node
    {
        return Err(format!(
            "wrong node: the batch header says node {node}, but it came from node {want}"
        ));
    }
    if cfg.insecure && !trust.has_node(node) {
        return Ok(None);
    }
    trust
        .verify(
            node,
            v.header.seq,
            &v.name,
            &v.content_sha256,
            v.signature.as_deref(),
        )
        .map(Some)
        .map_err(|e| format!("signature check failed: {e}"))
}

/// The key id a batch's signature line claims ("" when unsigned), for the audit record
/// of a rejection.
fn claimed_key(v: &batch::VerifiedBatch) -> &str {
    let id = v
        .signature
        .as_deref()
        .and_then(|s| s.split(' ').next())
        .unwrap_or("");
    match id.char_indices().nth(64) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn marker(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".fail1");
    PathBuf::from(s)
}

/// Spooled final files by node and seq.
fn spooled_files(spool: &Path) -> BTreeMap<String, BTreeMap<u64, PathBuf>> {
    let mut out: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir(spool) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok((node, seq, _)) = batch::parse_batch_file_name(&name) {
            // Only regular files: a symlink (or anything else) under a batch name was
            // not put there by this receiver and is never followed.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                warn!(file = %name, "spool entry is not a regular file (a symlink?): ignored, never followed; remove it");
                continue;
            }
            out.entry(node).or_default().insert(seq, e.path());
        }
    }
    out
}

fn serve(shared: &Arc<Shared>, stream: TcpStream, peer: String, id: u64) {
    let opts = ServerOptions {
        max_frame: shared.cfg.link.max_frame,
        idle_timeout: shared.cfg.link.idle_timeout,
        frame_timeout: shared.cfg.link.frame_timeout,
        hello_timeout: shared.cfg.link.hello_timeout,
    };
    let mut conn = Conn {
        shared: Arc::clone(shared),
        id,
        peer: peer.clone(),
        node: String::new(),
        keyed: false,
        part: None,
        target: None,
    };
    match serve_connection(stream, &mut conn, opts) {
        Ok(end) => debug!(%peer, node = %conn.node, ?end, "connection ended"),
        Err(e) => warn!(%peer, node = %conn.node, error = %e, "connection closed"),
    }
}

/// A batch being received on one connection.
#[derive(Debug)]
struct Part {
    seq: u64,
    path: PathBuf,
    file: File,
    /// Bytes stored so far.
    len: u64,
}

/// One sender connection. Until [`FrameHandler::hello`] accepted the peer, `node` is
/// empty and nothing else of the handler runs (the protocol's server closes a
/// connection whose first frame is not HELLO).
struct Conn {
    shared: Arc<Shared>,
    /// The connection id (unique in this process): part files carry it.
    id: u64,
    peer: String,
    node: String,
    /// Whether the node has `[[trust]]` keys (then every END must be signed).
    keyed: bool,
    /// The batch being received on this connection.
    part: Option<Part>,
    /// A target connection for ledger look-ups (opened lazily).
    target: Option<Target>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.drop_part();
    }
}

impl Conn {
    fn part_path(&self, seq: u64) -> PathBuf {
        self.shared
            .spool()
            .join(format!(".part-{}-{seq:020}-{}", self.node, self.id))
    }

    fn unverified_add(&self, n: u64) {
        self.shared.unverified.fetch_add(n, Ordering::SeqCst);
    }

    fn unverified_sub(&self, n: u64) {
        // Saturating: the counter never wraps below zero on a bookkeeping slip.
        let _ = self
            .shared
            .unverified
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Takes the part out of the connection (its bytes no longer count as
    /// unverified); the caller owns its file now.
    fn take_part(&mut self) -> Option<Part> {
        let p = self.part.take()?;
        self.unverified_sub(p.len);
        Some(p)
    }

    /// Removes the part file, if any.
    fn drop_part(&mut self) {
        if let Some(p) = self.take_part() {
            drop(p.file);
            if let Err(e) = fs::remove_file(&p.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                // Left for the next start, which removes every part file.
                warn!(file = %p.path.display(), error = %e, "cannot remove a part file");
            }
        }
    }

    /// Ledger look-up: Some(true) applied, Some(false) quarantined, None unknown.
    fn recorded(&mut self, seq: u64) -> Option<bool> {
        if self.target.is_none() {
            self.target = self.shared.open_target().ok();
        }
        let t = self.target.as_mut()?;
        let r = (|| -> std::result::Result<Option<bool>, ApplyError> {
            if t.applied_sha(&self.node, seq)?.is_some() {
                return Ok(Some(true));
            }
            Ok(t.quarantine_reason(&self.node, seq)?.map(|_| false))
        })();
        match r {
            Ok(v) => v,
            Err(_) => {
                self.target = None;
                None
            }
        }
    }

    /// The seq window (see [`SEQ_WINDOW`]): refuses a seq far ahead of the ledger.
    fn seq_in_window(&mut self, seq: u64) -> bool {
        let known = self
            .shared
            .next_seen
            .lock()
            .is_ok_and(|m| m.contains_key(&self.node));
        if known && self.shared.in_window(&self.node, seq) {
            return true;
        }
        // Not read yet, or the cached value may be old: read the ledger (a target that
        // cannot be read leaves the window open: only an authenticated node gets here).
        if self.target.is_none() {
            self.target = self.shared.open_target().ok();
        }
        match self.target.as_mut().map(|t| t.next_expected(&self.node)) {
            Some(Ok(next)) => self.shared.note_next(&self.node, next),
            Some(Err(_)) => self.target = None,
            None => {}
        }
        if self.shared.in_window(&self.node, seq) {
            return true;
        }
        warn!(node = %self.node, seq, window = SEQ_WINDOW, "upload refused: seq too far ahead of the ledger's next expected seq");
        false
    }

    fn store_chunk(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> std::io::Result<bool> {
        let max = self.shared.cfg.limits.max_batch_bytes;
        if offset.saturating_add(chunk.len() as u64) > max {
            warn!(
                node = %self.node,
                seq,
                offset,
                max_batch_bytes = max,
                "batch refused: larger than [limits] max_batch_bytes; partial file dropped"
            );
            self.drop_part();
            return Ok(false);
        }
        if offset == 0 {
            if !self.seq_in_window(seq) {
                self.drop_part();
                return Ok(false);
            }
            match self.part.as_mut() {
                // The sender starts the batch again: this connection's own part.
                Some(p) if p.seq == seq => {
                    p.file.set_len(0)?;
                    let was = p.len;
                    p.len = 0;
                    self.unverified_sub(was);
                }
                _ => {
                    self.drop_part();
                    let path = self.part_path(seq);
                    // Exclusive, 0600, never through a symlink.
                    let file = fsx::create_private(&path)?;
                    self.part = Some(Part {
                        seq,
                        path,
                        file,
                        len: 0,
                    });
                }
            }
        }
        let Some(p) = self.part.as_mut() else {
            return Ok(false);
        };
        if p.seq != seq || offset > p.len {
            return Ok(false);
        }
        if offset < p.len {
            p.file.set_len(offset)?;
            let cut = p.len - offset;
            p.len = offset;
            self.unverified_sub(cut);
        }
        let n = chunk.len() as u64;
        let held = self.shared.unverified.load(Ordering::SeqCst);
        let cap = self.shared.max_unverified();
        if held.saturating_add(n) > cap {
            warn!(node = %self.node, seq, offset, held, cap, "chunk refused: too many unverified bytes held in part files; answering no");
            return Ok(false);
        }
        let Some(p) = self.part.as_mut() else {
            return Ok(false);
        };
        let written = p
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| p.file.write_all(chunk));
        let Err(e) = written else {
            p.len += n;
            self.unverified_add(n);
            return Ok(true);
        };
        // Disk full (or another write error) part-way through the chunk: cut the file
        // back to the bytes already stored, so nothing of the half-written chunk stays
        // and its resend at the same offset lands on a clean end (and the space the
        // partial chunk took is free again). If even that fails, drop the part: the
        // sender starts the batch again from offset 0.
        if let Err(cut) = p.file.set_len(p.len) {
            warn!(node = %self.node, seq, offset, error = %cut, "cannot cut the partial file back; dropping it");
            self.drop_part();
        }
        Err(e)
    }

    /// The END signature check: a node with keys must sign its END with one of them.
    fn authenticate_end(&self, seq: u64, info: &EndInfo) -> std::result::Result<(), String> {
        if !self.keyed {
            return Ok(()); // insecure, node without keys: accepted unsigned at HELLO
        }
        let Some(auth) = &info.auth else {
            return Err(format!(
                "unsigned END for node {}, which has [[trust]] keys",
                self.node
            ));
        };
        let message = info.message(&self.node, seq).map_err(|e| e.to_string())?;
        self.shared
            .trust
            .verify_link(&self.node, &auth.key_id, &message, &auth.signature)
            .map(|_| ())
            .map_err(|e| format!("END signature: {e}"))
    }

    fn finish(&mut self, seq: u64, info: &EndInfo) -> std::result::Result<bool, String> {
        // Authenticity first: nothing of an END the node key did not sign is looked at
        // further (no ledger query, no hashing, no name taken).
        if let Err(reason) = self.authenticate_end(seq, info) {
            self.drop_part();
            warn!(peer = %self.peer, node = %self.node, seq, file = %info.name, %reason, "END refused: upload dropped, nothing spooled, not counted as a failure");
            return Err(reason);
        }
        let (node, fseq, _) =
            batch::parse_batch_file_name(&info.name).map_err(|e| e.to_string())?;
        if node != self.node || fseq != seq {
            let reason = format!(
                "wrong node or seq: file name {} does not match the connection's node {} and seq {seq}",
                info.name, self.node
            );
            self.reject_part(seq, info, &reason);
            return Err(reason);
        }
        let max = self.shared.cfg.limits.max_batch_bytes;
        if info.size > max {
            self.drop_part();
            return Err(format!(
                "END declares {} bytes, over [limits] max_batch_bytes = {max}",
                info.size
            ));
        }
        if !self.seq_in_window(seq) {
            self.drop_part();
            return Err(format!("seq {seq} is too far ahead of the ledger"));
        }
        match self.recorded(seq) {
            Some(true) => return self.check_replay(seq, info),
            Some(false) => {
                // Quarantined: nothing to spool again.
                self.drop_part();
                return Ok(true);
            }
            None => {}
        }
        let Some(part) = self.take_part() else {
            return Err("END without data".into());
        };
        let Part {
            seq: pseq,
            path,
            file,
            len,
        } = part;
        // From here on the part file is removed on every way out but one (linked).
        let dropped = |what: &str, e: &dyn std::fmt::Display| {
            // Gone already is as good.
            let _ = fs::remove_file(&path);
            format!("{what}: {e}")
        };
        if pseq != seq || len != info.size {
            return Err(dropped(
                "size",
                &format!("received {len} bytes, END says {}", info.size),
            ));
        }
        // Any failure from here on (a full disk at fsync, a failed link) answers "no"
        // and drops the part, freeing its space: the sender resends the whole batch.
        let synced = file.sync_all();
        drop(file);
        synced.map_err(|e| dropped("cannot make the received file durable", &e))?;
        let sha = sha256_nofollow(&path)
            .map_err(|e| dropped("cannot read the received file back", &e))?;
        if sha != info.sha256 {
            return Err(dropped(
                "sha256",
                &"the received file does not match the signed END",
            ));
        }
        let spool = self.shared.spool();
        let dest = spool.join(&info.name);
        // Pending before the file is visible to the applier: set after, it could
        // overwrite the outcome of an apply that finished in between.
        self.shared.set(&self.node, seq, Outcome::Pending);
        // A hard link never replaces an existing name (a file spooled by another
        // connection, or anything else placed there): what the applier may be
        // verifying right now stays as it is.
        match fs::hard_link(&path, &dest) {
            Ok(()) => {
                // The batch name holds the file now; the part name is surplus (and
                // removed at the next start if this fails).
                let _ = fs::remove_file(&path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let same = sha256_nofollow(&dest).is_ok_and(|d| d == sha);
                // The part is surplus either way.
                let _ = fs::remove_file(&path);
                if same {
                    debug!(node = %self.node, seq, file = %info.name, "already spooled with the same content");
                    return Ok(true);
                }
                error!(alarm = true, node = %self.node, seq, file = %info.name, "a different signed file for a seq that is already spooled: refused, the spooled one stays");
                return Err(format!(
                    "{} is already spooled with other content",
                    info.name
                ));
            }
            Err(e) => return Err(dropped("cannot link into the spool", &e)),
        }
        // The file is visible to the applier now: never removed here. If the directory
        // cannot be made durable the answer is "no" and the resend finds it applied or
        // spooled with the same content.
        fsx::sync_dir(&spool)
            .map_err(|e| format!("cannot make the spool directory durable: {e}"))?;
        let sha_hex = hex::encode(sha);
        self.shared.audit(AuditEvent::new(
            "received", &self.node, seq, &info.name, info.size, &sha_hex,
        ));
        self.shared.wake_applier();
        Ok(true)
    }

    /// Keep a refused transfer in `quarantine/rejected/` with its reason, audit and log
    /// it (nothing of it is spooled or executed).
    fn reject_part(&mut self, seq: u64, info: &EndInfo, reason: &str) {
        let dir = self.shared.quarantine_dir().join("rejected");
        let safe = batch::parse_batch_file_name(&info.name).is_ok();
        if let Some(part) = self.take_part() {
            if safe && fsx::private_dir(&dir).is_ok() {
                let dest = dir.join(&info.name);
                if fsx::move_file(&part.path, &dest).is_ok()
                    && let Err(e) = fsx::write_private_synced(
                        &dir.join(format!("{}.reason", info.name)),
                        format!("{reason}\n").as_bytes(),
                    )
                {
                    warn!(file = %info.name, error = %e, "cannot write the .reason of a rejected upload (the audit record has it)");
                }
            }
            // Moved, or dropped here: never left under the part name.
            let _ = fs::remove_file(&part.path);
        }
        error!(alarm = true, node = %self.node, seq, file = %info.name, reason, "batch rejected at END: nothing spooled");
        self.shared.audit(
            AuditEvent::new("rejected", &self.node, seq, &info.name, info.size, "")
                .verdict("rejected", reason),
        );
    }

    /// A batch whose seq is already applied arrived again. The same content is a resend
    /// (answered "applied" from the ledger); different content is a replay: rejected,
    /// kept in `quarantine/replayed/` with a `.reason`, audited, and answered "failed".
    fn check_replay(&mut self, seq: u64, info: &EndInfo) -> std::result::Result<bool, String> {
        let complete = self
            .part
            .as_ref()
            .is_some_and(|p| p.seq == seq && p.len == info.size);
        if !complete {
            self.drop_part();
            return Ok(true);
        }
        let sh = Arc::clone(&self.shared);
        let dir = sh.quarantine_dir().join("replayed");
        fsx::private_dir(&dir).map_err(|e| e.to_string())?;
        let dest = dir.join(&info.name);
        let Some(part) = self.take_part() else {
            return Ok(true);
        };
        fsx::move_file(&part.path, &dest).map_err(|e| {
            // Removed on the way out; it never gets a batch name.
            let _ = fs::remove_file(&part.path);
            format!("cannot move the resent copy out of the spool: {e}")
        })?;
        let (size, file_sha) = batch::sha256_file(&dest).map_err(|e| e.to_string())?;
        if file_sha != info.sha256 {
            let _ = fs::remove_file(&dest);
            return Err("sha256 of the received file does not match END".into());
        }
        // The ledger's sha256 of the applied copy. If it cannot be read now (the target
        // went down since `recorded`), there is no verdict: answer "no" so that the
        // sender sends and asks again. Never take an unread ledger row for a replay:
        // that would answer "failed" for an applied batch.
        let prev = match self.target.as_mut().map(|t| t.applied_sha(&self.node, seq)) {
            Some(Ok(prev)) => prev,
            lost => {
                let _ = fs::remove_file(&dest);
                let _ = fs::remove_dir(&dir);
                self.target = None;
                let error = match lost {
                    Some(Err(e)) => e.to_string(),
                    _ => "no target connection".to_owned(),
                };
                warn!(node = %self.node, seq, file = %info.name, %error, "resent copy of an applied batch: cannot read its ledger row; the sender asks again");
                return Err(format!("cannot read the ledger row of seq {seq}: {error}"));
            }
        };
        let (content, reason) = match batch::verify_batch(&dest, &sh.limits) {
            Ok(v) => {
                let content = hex::encode(v.content_sha256);
                if prev.as_deref() == Some(content.as_str()) {
                    let _ = fs::remove_file(&dest);
                    // A plain resend: leave no empty `replayed/` behind (removed only
                    // when empty).
                    let _ = fs::remove_dir(&dir);
                    return Ok(true);
                }
                let reason = format!(
                    "replayed: seq {seq} of node {} was already applied with different content (ledger sha256 {}, this file {content})",
                    self.node,
                    prev.as_deref().unwrap_or("unknown")
                );
                (content, reason)
            }
            Err(e) => (
                String::new(),
                format!(
                    "replayed: seq {seq} of node {} was already applied; this copy fails verification: {e}",
                    self.node
                ),
            ),
        };
        if let Err(e) = fsx::write_private_synced(
            &dir.join(format!("{}.reason", info.name)),
            format!("{reason}\n").as_bytes(),
        ) {
            warn!(file = %info.name, error = %e, "cannot write the .reason of a replayed copy (the audit record has it)");
        }
        error!(alarm = true, node = %self.node, seq, file = %info.name, %reason, "batch rejected: nothing executed");
        sh.audit(
            AuditEvent::new("rejected", &self.node, seq, &info.name, size, &content)
                .verdict("rejected", &reason),
        );
        sh.set(&self.node, seq, Outcome::Failed);
        Ok(true)
    }
}

/// SHA-256 of a file, opened without following a symlink.
fn sha256_nofollow(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = fsx::open_nofollow(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl FrameHandler for Conn {
    fn hello(&mut self, node: &str, hello: &Hello, message: &[u8]) -> bool {
        match self.shared.authenticate_hello(node, hello, message) {
            Ok(key) => {
                if !self.shared.sessions.authenticated(self.id, node) {
                    return false;
                }
                self.node = node.to_owned();
                self.keyed = self.shared.trust.has_node(node);
                let key = if key.is_empty() {
                    "none (insecure)"
                } else {
                    &key
                };
                info!(peer = %self.peer, %node, key, peer_says = %hello.text, "sender authenticated");
                true
            }
            Err(reason) => {
                warn!(peer = %self.peer, %node, %reason, "HELLO refused");
                false
            }
        }
    }

    fn heartbeat(&mut self) -> bool {
        true
    }

    fn data(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> bool {
        match self.store_chunk(seq, offset, chunk) {
            Ok(ok) => ok,
            Err(e) => {
                // The part (if any) is kept at its last good length: the resent chunk
                // continues it once the spool can take it (e.g. disk space returns).
                warn!(node = %self.node, seq, offset, error = %e, "cannot spool chunk; answering no");
                false
            }
        }
    }

    fn end(&mut self, seq: u64, info: &EndInfo) -> bool {
        match self.finish(seq, info) {
            Ok(ok) => ok,
            Err(e) => {
                warn!(node = %self.node, seq, error = %e, "batch not accepted; the sender resends it");
                false
            }
        }
    }

    fn result(&mut self, seq: u64) -> Option<bool> {
        let until = Instant::now() + self.shared.cfg.link.result_wait;
        let node = self.node.clone();
        match self.shared.wait_settled(&node, seq, until) {
            Some(Outcome::Applied) => {
                self.shared.forget(&node, seq);
                Some(true)
            }
            Some(Outcome::Failed) => Some(false),
            Some(Outcome::Pending) => {
                // The ledger is the last word (e.g. a resent copy marked Pending after
                // the first copy had been applied).
                let known = self.recorded(seq);
                if known.is_none() {
                    info!(%node, seq, "apply not finished within result_wait; closing so the sender asks again");
                }
                known
            }
            None => self.recorded(seq),
        }
    }
}

/// `gapsync-receiver apply FILE...`: verify and apply batch files by hand, through the
/// same ledger (exactly once), in seq order per node. Returns one line per file.
///
/// Every file is verified first (name, header, sha256, signature, not a replay of an
/// applied seq with different content); if any is rejected, nothing is executed, the
/// rejection is audited and returned as [`ReceiverError::Rejected`] naming the reason.
pub fn apply_files(cfg: &ReceiverConfig, files: &[PathBuf]) -> Result<Vec<String>> {
    let limits = cfg.limits.read.clone();
    let trust = TrustStore::from_config(&cfg.trust)?;
    let audit = Audit::new(&cfg.work_dir, "receiver");
    let mut t = Target::open(&cfg.target, &cfg.target_options())?;
    let reject = |name: &str, node: &str, seq: u64, size: u64, sha: &str, reason: String| {
        warn!(%node, seq, file = %name, %reason, "batch rejected: nothing executed");
        let _ = audit.record(
            &AuditEvent::new("rejected", node, seq, name, size, sha).verdict("rejected", &reason),
        );
        ReceiverError::Rejected {
            name: name.to_owned(),
            reason,
        }
    };
    let mut sorted: Vec<(String, u64, PathBuf, String, u64, String)> = Vec::new();
    for f in files {
        let name = file_name(f);
        let size = fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let (node, seq, _) = batch::parse_batch_file_name(&name)?;
        let v = match batch::verify_batch(f, &limits) {
            Ok(v) => v,
            Err(e) => {
                return Err(reject(
                    &name,
                    &node,
                    seq,
                    size,
                    "",
                    format!("verification failed: {e}"),
                ));
            }
        };
        let sha = hex::encode(v.content_sha256);
        let key = match authenticate(cfg, &trust, Some(&node), &v) {
            Ok(k) => k.unwrap_or_default(),
            Err(reason) => return Err(reject(&name, &node, seq, size, &sha, reason)),
        };
        if let Some(prev) = t.applied_sha(&node, seq)?
            && prev != sha
        {
            let reason = format!(
                "replayed: seq {seq} of node {node} was already applied with different content (ledger sha256 {prev}, this file {sha})"
            );
            return Err(reject(&name, &node, seq, size, &sha, reason));
        }
        sorted.push((node, seq, f.clone(), sha, size, key));
    }
    sorted.sort();
    let mut out = Vec::new();
    for (node, seq, path, sha, size, key) in sorted {
        let name = file_name(&path);
        let next = t.next_expected(&node)?;
        if seq < next {
            if t.applied_sha(&node, seq)?.is_some() {
                out.push(format!("{name}: already applied, skipped"));
                continue;
            }
            return Err(ReceiverError::Order(format!(
                "{name}: seq {seq} of node {node} is quarantined"
            )));
        }
        if seq > next {
            return Err(ReceiverError::Order(format!(
                "{name}: node {node} needs seq {next} first (apply the missing batches, in order)"
            )));
        }
        let ev = |event: &str, verdict: &str, detail: &str| {
            let _ = audit.record(&AuditEvent {
                event,
                node: &node,
                seq,
                file: &name,
                size,
                sha256: &sha,
                key_id: &key,
                verdict,
                detail,
            });
        };
        match t.apply(&path, &node, seq, &sha, &limits) {
            Ok(ApplyOutcome::Applied { statements }) => {
                ev("applied", "ok", "by hand");
                out.push(format!("{name}: applied ({statements} statements)"));
            }
            Ok(ApplyOutcome::AlreadyApplied) => {
                out.push(format!("{name}: already applied, skipped"))
            }
            Err(e) => {
                ev("failed", "failed", &e.to_string());
                return Err(ReceiverError::Order(format!("{name}: {e}")));
            }
        }
    }
    Ok(out)
}

/// The spool on a full disk: a small tmpfs mounted on `spool/` (needs root; skipped
/// with a note otherwise, and failing when `CI` is set).
#[cfg(test)]
mod spool_full_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sha2::{Digest, Sha256};
    use std::process::Command;

    /// Unmounts (lazily) on drop, so a failed test leaves no mount behind.
    struct Mount(PathBuf);

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Mount(dir.to_owned())),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs on {}: {why}",
            dir.display()
        );
        eprintln!("skipped: cannot mount a tmpfs on {}: {why}", dir.display());
        None
    }

    /// Fill the file system of `dir` with `dir/ballast` until it is full.
    fn fill(dir: &Path) -> PathBuf {
        let p = dir.join("ballast");
        let mut f = File::create(&p).unwrap();
        let block = vec![0x5au8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                return p;
            }
        }
    }

    fn conn(work: &Path) -> Conn {
        let cfg_path = work.join("receiver.toml");
        let toml = format!(
            "insecure = true\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\n[work]\ndir = \"{}\"\n",
            work.join("replica.db").display(),
            work.join("rwork").display()
        );
        fs::write(&cfg_path, toml).unwrap();
        let cfg = ReceiverConfig::load(&cfg_path).unwrap();
        let rx = Receiver::new(cfg).unwrap();
        Conn {
            shared: rx.shared,
            id: 1,
            peer: "test".to_owned(),
            node: "plant1".to_owned(),
            keyed: false,
            part: None,
            target: None,
        }
    }

    /// A chunk cut short by a full disk is answered "no" and leaves the part at its last
    /// good length; the resend at the same offset (not only a restart from offset 0) is
    /// stored once space returns, and END spools a correct file.
    #[test]
    fn a_chunk_cut_short_by_a_full_spool_is_taken_again_when_space_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("rwork").join("spool");
        fs::create_dir_all(&spool).unwrap();
        let Some(_mount) = mount_tmpfs(&spool, "64k") else {
            return;
        };
        let mut c = conn(tmp.path());
        let ballast = fill(&spool);
        // Two pages free: the first chunk fits, the second only in part.
        let len = fs::metadata(&ballast).unwrap().len();
        File::options()
            .write(true)
            .open(&ballast)
            .unwrap()
            .set_len(len - 8192)
            .unwrap();
        let a = vec![b'a'; 4096];
        let b = vec![b'b'; 6000];
        assert!(c.data(1, 0, &a), "the first chunk fits");
        let part = c.part_path(1);
        for _ in 0..3 {
            assert!(!c.data(1, 4096, &b), "no space: answered no");
            assert_eq!(
                fs::metadata(&part).unwrap().len(),
                4096,
                "the partial chunk is cut off again"
            );
        }
        fs::remove_file(&ballast).unwrap();
        assert!(c.data(1, 4096, &b), "space is back: the resend is stored");
        let mut whole = a.clone();
        whole.extend_from_slice(&b);
        assert_eq!(fs::read(&part).unwrap(), whole);
        let name = "plant1-00000000000000000001.sql".to_owned();
        let info = EndInfo {
            size: whole.len() as u64,
            sha256: Sha256::digest(&whole).into(),
            name: name.clone(),
            auth: None,
        };
        assert!(c.end(1, &info), "END spools the file");
        assert_eq!(fs::read(spool.join(&name)).unwrap(), whole);
        assert!(!part.exists());
    }

    /// END that cannot make the file durable answers "no" and frees the part's space;
    /// the resend from offset 0 goes through.
    #[test]
    fn a_full_spool_at_end_answers_no_and_the_resend_goes_through() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("rwork").join("spool");
        fs::create_dir_all(&spool).unwrap();
        let Some(_mount) = mount_tmpfs(&spool, "64k") else {
            return;
        };
        let mut c = conn(tmp.path());
        let body = vec![b'x'; 5000];
        let name = "plant1-00000000000000000002.sql".to_owned();
        let info = EndInfo {
            size: body.len() as u64,
            sha256: Sha256::digest(&body).into(),
            name: name.clone(),
            auth: None,
        };
        assert!(c.data(2, 0, &body));
        // END names another size than was received: refused, the part is gone.
        let short = EndInfo {
            size: 4999,
            ..info.clone()
        };
        assert!(!c.end(2, &short));
        assert!(!c.part_path(2).exists());
        // The whole batch again, while the disk is full: every chunk answered no.
        let ballast = fill(&spool);
        assert!(!c.data(2, 0, &body));
        assert!(!c.end(2, &info), "END without the data: no");
        fs::remove_file(&ballast).unwrap();
        assert!(c.data(2, 0, &body));
        assert!(c.end(2, &info));
        assert_eq!(fs::read(spool.join(&name)).unwrap(), body);
    }
}

/// A target that goes down between two ledger look-ups of the same END (DESIGN.md
/// invariant 7).
#[cfg(test)]
mod outage_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gapsync_common::allow::AllowList;
    use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
    use gapsync_common::dialect::Dialect;
    use gapsync_common::target::{Backend, DbError, Param, SqliteBackend};
    use sha2::{Digest, Sha256};

    /// A SQLite target whose queries fail like a lost server connection once
    /// `queries_left` is used up.
    #[derive(Debug)]
    struct Dropping {
        inner: SqliteBackend,
        queries_left: u32,
    }

    impl Backend for Dropping {
        fn begin(&mut self) -> std::result::Result<(), DbError> {
            self.inner.begin()
        }
        fn commit(&mut self) -> std::result::Result<(), DbError> {
            self.inner.commit()
        }
        fn rollback(&mut self) {
            self.inner.rollback();
        }
        fn execute(&mut self, sql: &str) -> std::result::Result<u64, DbError> {
            self.inner.execute(sql)
        }
        fn execute_params(
            &mut self,
            sql: &str,
            params: &[Param<'_>],
        ) -> std::result::Result<u64, DbError> {
            self.inner.execute_params(sql, params)
        }
        fn query(
            &mut self,
            sql: &str,
            params: &[Param<'_>],
        ) -> std::result::Result<Vec<Vec<Option<String>>>, DbError> {
            if self.queries_left == 0 {
                return Err(DbError {
                    transient: true,
                    message: "State: 08S01: server closed the connection unexpectedly".into(),
                });
            }
            self.queries_left -= 1;
            self.inner.query(sql, params)
        }
        fn ledger_ddl(&self) -> Vec<String> {
            self.inner.ledger_ddl()
        }
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }
    }

    /// The resend of an applied batch arrives; the ledger read of `recorded` works, the
    /// target goes down before the replay check reads the ledger row again. The END is
    /// answered "no" (the sender sends and asks again): no replay rejection, nothing in
    /// `quarantine/replayed/`, no "rejected" audit, no "failed" outcome; RESULT? answers
    /// "applied" from the ledger once it can be read, and the next resend is a plain one.
    #[test]
    fn a_resend_of_an_applied_batch_is_not_a_replay_when_the_ledger_is_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = tmp.path().join("replica.db");
        let cfg_path = tmp.path().join("receiver.toml");
        fs::write(
            &cfg_path,
            format!(
                "insecure = true\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\nresult_wait = \"1s\"\n[work]\ndir = \"{}\"\n",
                replica.display(),
                tmp.path().join("rwork").display()
            ),
        )
        .unwrap();
        let rx = Receiver::new(ReceiverConfig::load(&cfg_path).unwrap()).unwrap();
        rusqlite::Connection::open(&replica)
            .unwrap()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            .unwrap();

        // Seq 1 of plant1, applied.
        let out = tmp.path().join("outbox");
        fs::create_dir_all(&out).unwrap();
        let header = BatchHeader {
            node: "plant1".into(),
            seq: 1,
            created: batch::format_created(chrono::Utc::now()),
            dialect: "sqlite".into(),
            kind: BatchKind::Changes,
            changes: Some((1, 1)),
            statements: 1,
        };
        let mut w = BatchWriter::create(&out, header, false, 3).unwrap();
        w.push(r#"INSERT INTO "t"("id") VALUES (1);"#).unwrap();
        let written = w.finish().unwrap();
        let mut t = rx.shared.open_target().unwrap();
        t.apply(
            &written.path,
            "plant1",
            1,
            &hex::encode(written.content_sha256),
            &ReadLimits::default(),
        )
        .unwrap();

        let bytes = fs::read(&written.path).unwrap();
        let info = EndInfo {
            size: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).into(),
            name: written.name.clone(),
            auth: None,
        };
        let dropping = Dropping {
            inner: SqliteBackend::open(&replica, Duration::from_secs(1)).unwrap(),
            // The seq window's ledger read at DATA offset 0 (two queries), then
            // `recorded` at END (one).
            queries_left: 3,
        };
        let mut c = Conn {
            shared: Arc::clone(&rx.shared),
            id: 1,
            peer: "test".to_owned(),
            node: "plant1".into(),
            keyed: false,
            part: None,
            target: Some(
                Target::with_backend_allowing(Box::new(dropping), AllowList::default()).unwrap(),
            ),
        };
        assert!(c.data(1, 0, &bytes));
        assert!(
            !c.end(1, &info),
            "END must be answered no while the ledger row cannot be read"
        );
        let q = rx.shared.quarantine_dir();
        assert!(
            !q.join("replayed").join(&written.name).exists(),
            "an applied batch was taken for a replay"
        );
        assert!(!c.part_path(1).exists());
        let outcome = rx
            .shared
            .outcomes
            .lock()
            .unwrap()
            .get(&("plant1".to_owned(), 1))
            .copied();
        assert_ne!(outcome, Some(Outcome::Failed));
        let audit = fs::read_dir(tmp.path().join("rwork").join("audit"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<String>()
            })
            .unwrap_or_default();
        assert!(!audit.contains("\"rejected\""), "{audit}");

        // The target is back: RESULT? answers "applied" from the ledger, and the
        // resend is a plain resend.
        assert_eq!(c.result(1), Some(true));
        assert!(c.data(1, 0, &bytes));
        assert!(c.end(1, &info));
        assert!(!q.join("replayed").exists());
        assert_eq!(c.result(1), Some(true));
    }
}

/// The trust boundary at the unit level (DESIGN.md invariant 8): HELLO and END
/// authentication, part files, the spool's regular-files-only rule, and the applier's
/// one descriptor (what is verified is what runs). The same attacks through the real
/// binaries and raw frames are in `tests/tests/e2e/trust_boundary.rs`.
#[cfg(test)]
mod trust_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
    use gapsync_common::sign::BatchSigner;
    use gapsync_protocol::LinkSigner;
    use sha2::{Digest, Sha256};

    #[derive(Debug)]
    struct Key(BatchSigner);
    impl LinkSigner for Key {
        fn key_id(&self) -> [u8; 8] {
            self.0.key_id_bytes()
        }
        fn sign(&self, m: &[u8]) -> [u8; 64] {
            self.0.sign_link(m)
        }
    }

    struct Setup {
        tmp: tempfile::TempDir,
        rx: Receiver,
        key: Key,
        other: Key,
    }

    /// A receiver trusting one key of plant1 (`extra`: more TOML at the top level).
    fn setup(extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let (_, _, signer) = gapsync_common::sign::generate("plant1", tmp.path()).unwrap();
        let odir = tmp.path().join("other");
        fs::create_dir_all(&odir).unwrap();
        let (_, _, other) = gapsync_common::sign::generate("plant1", &odir).unwrap();
        let cfg_path = tmp.path().join("receiver.toml");
        fs::write(
            &cfg_path,
            format!(
                "{extra}\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\nid = \"mis-1\"\nresult_wait = \"1s\"\n[work]\ndir = \"{}\"\n[[trust]]\nnode = \"plant1\"\nkey = \"{}\"\n",
                tmp.path().join("replica.db").display(),
                tmp.path().join("rwork").display(),
                signer.public_line()
            ),
        )
        .unwrap();
        let rx = Receiver::new(ReceiverConfig::load(&cfg_path).unwrap()).unwrap();
        rusqlite::Connection::open(tmp.path().join("replica.db"))
            .unwrap()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            .unwrap();
        Setup {
            tmp,
            rx,
            key: Key(signer),
            other: Key(other),
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn check(
        s: &Setup,
        node: &str,
        rid: &str,
        time: u64,
        nonce: u8,
        key: Option<&Key>,
    ) -> std::result::Result<String, String> {
        let p = Hello::encode(
            node,
            rid,
            time,
            [nonce; 16],
            "t",
            key.map(|k| k as &dyn LinkSigner),
        )
        .unwrap();
        let h = Hello::decode(&p).unwrap();
        s.rx.shared
            .authenticate_hello(node, &h, &h.message(node, &p))
    }

    #[test]
    fn hello_is_accepted_only_signed_fresh_for_this_receiver_and_once() {
        let s = setup("");
        let t = now();
        let ok = check(&s, "plant1", "mis-1", t, 1, Some(&s.key));
        assert_eq!(ok, Ok(s.key.0.key_id().to_owned()));
        let refused = |r: std::result::Result<String, String>, why: &str| {
            let e = r.unwrap_err();
            assert!(e.contains(why), "{e:?} lacks {why:?}");
        };
        refused(check(&s, "plant1", "mis-1", t, 1, Some(&s.key)), "replayed");
        refused(
            check(&s, "plant1", "mis-2", t, 2, Some(&s.key)),
            "is for receiver",
        );
        refused(
            check(&s, "plant1", "mis-1", t - 600, 3, Some(&s.key)),
            "hello_max_skew",
        );
        refused(
            check(&s, "plant1", "mis-1", t + 600, 4, Some(&s.key)),
            "hello_max_skew",
        );
        refused(check(&s, "plant1", "mis-1", t, 5, None), "unsigned HELLO");
        refused(
            check(&s, "plant1", "mis-1", t, 6, Some(&s.other)),
            "not a trusted key",
        );
        refused(
            check(&s, "plant9", "mis-1", t, 7, Some(&s.key)),
            "no [[trust]] entry",
        );
        // A signature over another node's message (the node is signed) fails.
        let p = Hello::encode("plant1", "mis-1", t, [8; 16], "t", Some(&s.key)).unwrap();
        let h = Hello::decode(&p).unwrap();
        let e =
            s.rx.shared
                .authenticate_hello("plant1", &h, &h.message("plant2", &p))
                .unwrap_err();
        assert!(e.contains("bad signature"), "{e}");
    }

    #[test]
    fn insecure_opens_only_nodes_without_keys() {
        let s = setup("insecure = true");
        let t = now();
        assert_eq!(
            check(&s, "stranger", "mis-1", t, 1, None),
            Ok(String::new())
        );
        let e = check(&s, "plant1", "mis-1", t, 2, None).unwrap_err();
        assert!(e.contains("unsigned HELLO for node plant1"), "{e}");
        // The file-level check: a batch of a node with keys needs its signature.
        let v = batch::VerifiedBatch {
            header: BatchHeader {
                node: "plant1".into(),
                seq: 1,
                created: batch::format_created(chrono::Utc::now()),
                dialect: "sqlite".into(),
                kind: BatchKind::Changes,
                changes: Some((1, 1)),
                statements: 1,
            },
            content_sha256: [0; 32],
            signature: None,
            name: "plant1-00000000000000000001.sql".into(),
        };
        let sh = &s.rx.shared;
        assert!(authenticate(&sh.cfg, &sh.trust, Some("plant1"), &v).is_err());
        let mut w = v.clone();
        w.header.node = "stranger".into();
        assert_eq!(
            authenticate(&sh.cfg, &sh.trust, Some("stranger"), &w),
            Ok(None)
        );
    }

    fn conn(s: &Setup) -> Conn {
        Conn {
            shared: Arc::clone(&s.rx.shared),
            id: 7,
            peer: "test".into(),
            node: "plant1".into(),
            keyed: true,
            part: None,
            target: None,
        }
    }

    fn write_batch(dir: &Path, seq: u64, stmts: &[&str], key: Option<&Key>) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        let header = BatchHeader {
            node: "plant1".into(),
            seq,
            created: batch::format_created(chrono::Utc::now()),
            dialect: "sqlite".into(),
            kind: BatchKind::Changes,
            changes: Some((1, stmts.len() as i64)),
            statements: stmts.len() as u64,
        };
        let mut w = BatchWriter::create(dir, header, false, 3)
            .unwrap()
            .with_signer(key.map(|k| k.0.clone()))
            .unwrap();
        for st in stmts {
            w.push(st).unwrap();
        }
        w.finish().unwrap().path
    }

    fn ids(s: &Setup) -> Vec<i64> {
        let c = rusqlite::Connection::open(s.tmp.path().join("replica.db")).unwrap();
        let mut st = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn an_end_the_node_key_did_not_sign_spools_nothing_and_counts_nothing() {
        let s = setup("");
        let out = s.tmp.path().join("out");
        let path = write_batch(
            &out,
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let bytes = fs::read(&path).unwrap();
        let name = file_name(&path);
        let spooled = s.rx.shared.spool().join(&name);
        let unsigned = EndInfo::new(bytes.len() as u64, Sha256::digest(&bytes).into(), &name);
        let mut by_other = unsigned.clone();
        by_other.sign("plant1", 1, &s.other).unwrap();
        let mut other_seq = unsigned.clone();
        other_seq.sign("plant1", 2, &s.key).unwrap();
        let mut forged_sha = unsigned.clone();
        forged_sha.sha256 = [0; 32];
        forged_sha.sign("plant1", 1, &s.key).unwrap();
        let mut c = conn(&s);
        for bad in [&unsigned, &by_other, &other_seq, &forged_sha] {
            assert!(c.data(1, 0, &bytes));
            let part = c.part.as_ref().unwrap().path.clone();
            assert!(part.exists());
            assert!(!c.end(1, bad), "{bad:?}");
            assert!(!part.exists(), "the refused upload's part is removed");
            assert!(!spooled.exists(), "nothing takes the batch name");
        }
        assert_eq!(s.rx.shared.unverified.load(Ordering::SeqCst), 0);
        assert!(
            !s.rx
                .shared
                .outcomes
                .lock()
                .unwrap()
                .contains_key(&("plant1".to_owned(), 1)),
            "a refused END is no failure of the seq"
        );
        // The signed END goes through; a part left by a closing connection is removed.
        let mut good = unsigned.clone();
        good.sign("plant1", 1, &s.key).unwrap();
        assert!(c.data(1, 0, &bytes));
        assert!(c.end(1, &good));
        assert_eq!(fs::read(&spooled).unwrap(), bytes);
        assert!(c.data(2, 0, b"half a batch"));
        let part = c.part.as_ref().unwrap().path.clone();
        drop(c);
        assert!(!part.exists(), "a connection's part file goes with it");
        assert_eq!(s.rx.shared.unverified.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_seq_far_ahead_of_the_ledger_is_refused() {
        let s = setup("");
        let mut c = conn(&s);
        for seq in [SEQ_WINDOW + 2, 1_000_000_000_000, 1 << 63] {
            assert!(!c.data(seq, 0, b"x"), "seq {seq}");
            assert!(c.part.is_none());
        }
        assert!(c.data(SEQ_WINDOW + 1, 0, b"x"), "the edge of the window");
    }

    #[test]
    fn two_connections_never_share_a_part_file() {
        let s = setup("");
        let mut a = conn(&s);
        let mut b = conn(&s);
        b.id = 8;
        assert!(a.data(1, 0, b"the real upload, first chunk"));
        assert!(b.data(1, 0, b"x"));
        assert_ne!(a.part.as_ref().unwrap().path, b.part.as_ref().unwrap().path);
        assert_eq!(
            fs::read(&a.part.as_ref().unwrap().path).unwrap(),
            b"the real upload, first chunk",
            "another connection's offset 0 does not truncate it"
        );
    }

    /// The file under the spooled name is replaced after verification: the applier
    /// runs the verified bytes (its descriptor), never the replacement.
    #[test]
    fn what_is_verified_is_what_runs() {
        let s = setup("");
        let good = write_batch(
            &s.tmp.path().join("good"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let forged = write_batch(
            &s.tmp.path().join("forged"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (666);"#],
            None,
        );
        let spooled = s.rx.shared.spool().join(file_name(&good));
        fs::copy(&good, &spooled).unwrap();
        let mut input = fsx::open_nofollow(&spooled).unwrap();
        let v = batch::verify_open_batch(input.try_clone().unwrap(), &spooled, &s.rx.shared.limits)
            .unwrap();
        // The swap, at the worst moment.
        fs::rename(&forged, &spooled).unwrap();
        input.seek(SeekFrom::Start(0)).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let sha = hex::encode(v.content_sha256);
        t.apply_open(input, &spooled, "plant1", 1, &sha, &s.rx.shared.limits)
            .unwrap();
        assert_eq!(ids(&s), vec![1]);
        assert_eq!(t.applied_sha("plant1", 1).unwrap(), Some(sha));
    }

    /// The same inode rewritten after verification: the executed content's hash differs
    /// from the verified one, so nothing is committed.
    #[test]
    fn a_file_rewritten_after_verification_commits_nothing() {
        let s = setup("");
        let good = write_batch(
            &s.tmp.path().join("good"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let forged = write_batch(
            &s.tmp.path().join("forged"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (666);"#],
            None,
        );
        let spooled = s.rx.shared.spool().join(file_name(&good));
        fs::copy(&good, &spooled).unwrap();
        let mut input = fsx::open_nofollow(&spooled).unwrap();
        let v = batch::verify_open_batch(input.try_clone().unwrap(), &spooled, &s.rx.shared.limits)
            .unwrap();
        fs::write(&spooled, fs::read(&forged).unwrap()).unwrap();
        input.seek(SeekFrom::Start(0)).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let e = t
            .apply_open(
                input,
                &spooled,
                "plant1",
                1,
                &hex::encode(v.content_sha256),
                &s.rx.shared.limits,
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("changed between verification and apply"),
            "{e}"
        );
        assert!(ids(&s).is_empty());
        assert_eq!(t.applied_sha("plant1", 1).unwrap(), None);
    }

    /// A symlink under a batch name in the spool is never followed: not applied, not
    /// counted as a failure; the file it points to is untouched.
    #[test]
    fn a_symlink_in_the_spool_is_not_followed() {
        let s = setup("");
        let outside = write_batch(
            &s.tmp.path().join("outside"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let before = fs::read(&outside).unwrap();
        let link = s.rx.shared.spool().join(file_name(&outside));
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let mut logged = HashMap::new();
        assert!(!s.rx.apply_spooled(&mut t, &mut logged).unwrap());
        assert!(ids(&s).is_empty());
        assert_eq!(fs::read(&outside).unwrap(), before);
        assert!(!marker(&link).exists(), "no failure counted");
        // A symlink planted as the quarantine's .reason is replaced, not written
        // through.
        let victim = s.tmp.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let qname = "plant1-00000000000000000005.sql";
        std::os::unix::fs::symlink(
            &victim,
            s.rx.shared.quarantine_dir().join(format!("{qname}.reason")),
        )
        .unwrap();
        fsx::write_private_synced(
            &s.rx.shared.quarantine_dir().join(format!("{qname}.reason")),
            b"why\n",
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn work_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let s = setup("");
        for d in ["spool", "quarantine", "state"] {
            let mode = fs::metadata(s.rx.shared.cfg.work_dir.join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }
        let mut c = conn(&s);
        assert!(c.data(1, 0, b"x"));
        let mode = fs::metadata(&c.part.as_ref().unwrap().path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
