//! State shared by the connections and the applier: the outcome of the latest attempt
//! of every batch in flight (with the condition variable `result?` waits on), the seen
//! HELLO nonces, the bytes held in part files, the ledger's next expected seq per node,
//! and the HELLO check ([`Shared::authenticate_hello`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::apply::{ApplyError, Target};
use crate::config::ReceiverConfig;
use crate::*;
use gapsync_common::audit::{Audit, AuditEvent};
use gapsync_common::batch::ReadLimits;
use gapsync_common::sign::TrustStore;
use gapsync_protocol::Hello;
use tracing::error;

/// The latest attempt of a batch, as `result?` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Spooled; the applier has not finished with it yet.
    Pending,
    Applied,
    /// Failed deterministically (first or second time).
    Failed,
    /// A copy of an applied seq with other content: refused, whatever the ledger says.
    Replayed,
}

/// State shared by connections and the applier.
#[derive(Debug)]
pub struct Shared {
    pub cfg: ReceiverConfig,
    pub(crate) outcomes: Mutex<HashMap<(String, u64), Outcome>>,
    pub(crate) changed: Condvar,
    /// Wakes the applier when a file was spooled.
    pub(crate) spooled: Condvar,
    pub(crate) spool_flag: Mutex<bool>,
    pub(crate) audit: Audit,
    /// Open connections and their slots.
    pub sessions: Sessions,
    /// Nonces of accepted HELLOs, with when they may be forgotten.
    pub(crate) nonces: Mutex<HashMap<(String, [u8; 16]), Instant>>,
    /// Bytes in part files (received, not yet authenticated by END), all connections.
    pub(crate) unverified: AtomicU64,
    /// The same for nodes without `[[trust]]` keys (admitted by `insecure`): a pool of
    /// its own, so that unauthenticated uploads can never fill the keyed nodes' one.
    pub(crate) unverified_unkeyed: AtomicU64,
    /// The ledger's next expected seq per node, as last read (for the seq window).
    pub(crate) next_seen: Mutex<HashMap<String, u64>>,
    /// The ledger's high-water marks (see [`crate::marks`]).
    pub(crate) marks: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Per peer address: when a HELLO refusal was last logged, and how many were not.
    pub(crate) refusals: Mutex<HashMap<String, (Instant, u64)>>,
    pub limits: ReadLimits,
    /// The `[[trust]]` keys, parsed at start.
    pub trust: TrustStore,
    /// Counters and gauges (`[metrics]`).
    pub metrics: crate::metrics::RxMetrics,
    /// `state/link-error.json`: the newest error of an authenticated connection (or a
    /// refused HELLO), for `status`.
    pub(crate) link_note: gapsync_common::note::Note,
    /// `state/apply-error.json`: the newest failed apply or unavailable target.
    pub(crate) apply_note: gapsync_common::note::Note,
}

/// The notes of the newest link and apply errors in `state/` (see
/// [`gapsync_common::note`]).
pub const LINK_NOTE: &str = "link-error.json";
pub const APPLY_NOTE: &str = "apply-error.json";

/// Most HELLO nonces remembered at once.
pub const MAX_NONCES: usize = 100_000;

fn nonce_path(work_dir: &Path) -> PathBuf {
    work_dir.join("state").join("hello-nonces")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Shared {
    /// Notes a link error for `status` (a failure to write is only logged).
    pub(crate) fn note_link(&self, error: &dyn std::fmt::Display) {
        if let Err(e) = self.link_note.note(&error.to_string()) {
            tracing::warn!(error = %e, "cannot note the link error in state/ (status will not show it)");
        }
    }

    /// Notes an apply error for `status` (a failure to write is only logged).
    pub(crate) fn note_apply(&self, error: &dyn std::fmt::Display) {
        if let Err(e) = self.apply_note.note(&error.to_string()) {
            tracing::warn!(error = %e, "cannot note the apply error in state/ (status will not show it)");
        }
    }

    pub(crate) fn spool(&self) -> PathBuf {
        self.cfg.work_dir.join("spool")
    }
    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.cfg.work_dir.join("quarantine")
    }

    pub(crate) fn set(&self, node: &str, seq: u64, o: Outcome) {
        if let Ok(mut m) = self.outcomes.lock() {
            m.insert((node.to_owned(), seq), o);
        }
        self.changed.notify_all();
    }

    pub(crate) fn forget(&self, node: &str, seq: u64) {
        if let Ok(mut m) = self.outcomes.lock() {
            m.remove(&(node.to_owned(), seq));
        }
    }

    /// Wait until the outcome of (node, seq) is no longer Pending, or `until`.
    pub(crate) fn wait_settled(&self, node: &str, seq: u64, until: Instant) -> Option<Outcome> {
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

    pub(crate) fn wake_applier(&self) {
        if let Ok(mut f) = self.spool_flag.lock() {
            *f = true;
        }
        self.spooled.notify_all();
    }

    pub(crate) fn wait_for_spool(&self, d: Duration) {
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
    pub(crate) fn max_unverified(&self) -> u64 {
        self.cfg.limits.max_batch_bytes.saturating_mul(2)
    }

    /// Whether to log a HELLO refusal of kind `key` now (at most once a minute per
    /// key): `Some(refusals not logged since the last line)`, or `None`.
    pub(crate) fn refusal_to_log(&self, key: &str) -> Option<u64> {
        let key = key.to_owned();
        let mut m = self.refusals.lock().ok()?;
        let now = Instant::now();
        if m.len() > 10_000 {
            m.retain(|_, (at, _)| now.duration_since(*at) < Duration::from_secs(60));
        }
        match m.get_mut(&key) {
            Some((at, n)) if now.duration_since(*at) < Duration::from_secs(60) => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let suppressed = *n;
                *at = now;
                *n = 0;
                Some(suppressed)
            }
            None => {
                m.insert(key, (now, 0));
                Some(0)
            }
        }
    }

    /// The mark of `node` (highest seq seen recorded in its ledger).
    pub(crate) fn mark(&self, node: &str) -> Option<u64> {
        self.marks.lock().ok()?.get(node).copied()
    }

    /// Raises the mark of `node` to `seq` (persisted); never lowers it.
    pub(crate) fn raise_mark(&self, node: &str, seq: u64) {
        let Ok(mut m) = self.marks.lock() else {
            return;
        };
        if m.get(node).is_some_and(|&have| have >= seq) {
            return;
        }
        m.insert(node.to_owned(), seq);
        if let Err(e) = crate::marks::write_marks(&self.cfg.work_dir, &m) {
            error!(error = %e, "cannot record the ledger's high-water mark");
        }
    }

    pub(crate) fn note_next(&self, node: &str, next: u64) {
        if let Ok(mut m) = self.next_seen.lock() {
            m.insert(node.to_owned(), next);
        }
    }

    /// Whether `seq` of `node` is within [`SEQ_WINDOW`] of the ledger's next expected
    /// seq (as last read). Unknown (target not read yet): within.
    pub(crate) fn in_window(&self, node: &str, seq: u64) -> bool {
        let next = self
            .next_seen
            .lock()
            .ok()
            .and_then(|m| m.get(node).copied());
        next.is_none_or(|n| seq <= n.saturating_add(SEQ_WINDOW))
    }

    /// Records a HELLO nonce; false if it was seen before (a replay).
    ///
    /// Only signed HELLOs get here, so the map stays as small as the legitimate
    /// reconnect rate; it is also written to `state/hello-nonces` (one synced line per
    /// HELLO) and read back at start, so a restart does not make a HELLO captured in
    /// the last `2 × hello_max_skew` usable again. Over [`MAX_NONCES`] entries, a new
    /// HELLO is refused rather than an old nonce forgotten.
    pub(crate) fn fresh_nonce(&self, node: &str, nonce: [u8; 16]) -> bool {
        let Ok(mut m) = self.nonces.lock() else {
            return false;
        };
        let now = Instant::now();
        m.retain(|_, until| *until > now);
        if m.len() >= MAX_NONCES || m.contains_key(&(node.to_owned(), nonce)) {
            return false;
        }
        let keep = now + self.cfg.link.hello_max_skew * 2;
        m.insert((node.to_owned(), nonce), keep);
        let p = nonce_path(&self.cfg.work_dir);
        let line = format!("{} {node} {}\n", unix_now(), hex::encode(nonce));
        let written = fsx::open_append_private(&p).and_then(|mut f| {
            std::io::Write::write_all(&mut f, line.as_bytes())?;
            f.sync_data()
        });
        if let Err(e) = written {
            // Still refused as a replay in this process; only a restart could forget it.
            warn!(file = %p.display(), error = %e, "cannot record a HELLO nonce");
        }
        true
    }

    /// Reads back the nonces of `state/hello-nonces` younger than `2 × hello_max_skew`
    /// and rewrites the file with only those.
    pub(crate) fn load_nonces(&self) {
        let p = nonce_path(&self.cfg.work_dir);
        let Ok(text) = fsx::open_nofollow(&p).and_then(|mut f| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).map(|_| s)
        }) else {
            return;
        };
        let horizon = self.cfg.link.hello_max_skew.as_secs() * 2;
        let now = unix_now();
        let mut kept = String::new();
        let Ok(mut m) = self.nonces.lock() else {
            return;
        };
        for line in text.lines() {
            let mut it = line.split(' ');
            let (Some(t), Some(node), Some(hexn)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (Ok(t), Ok(bytes)) = (t.parse::<u64>(), hex::decode(hexn)) else {
                continue;
            };
            let Ok(nonce) = <[u8; 16]>::try_from(bytes.as_slice()) else {
                continue;
            };
            let age = now.saturating_sub(t);
            if age >= horizon {
                continue;
            }
            let left = Duration::from_secs(horizon - age);
            m.insert((node.to_owned(), nonce), Instant::now() + left);
            kept.push_str(line);
            kept.push('\n');
        }
        if let Err(e) = fsx::write_private_synced(&p, kept.as_bytes()) {
            warn!(file = %p.display(), error = %e, "cannot rewrite the HELLO nonce record");
        }
    }

    /// Checks a HELLO (see the protocol docs, "Authentication"). Ok(key id, "" when
    /// unsigned and accepted because of `insecure`); Err: why, for the log.
    pub fn authenticate_hello(
        &self,
        node: &str,
        hello: &Hello,
        message: &[u8],
    ) -> std::result::Result<String, HelloRefused> {
        let link = &self.cfg.link;
        if hello.receiver_id != link.id {
            return Err(HelloRefused::OtherReceiver {
                asked: hello.receiver_id.clone(),
                ours: link.id.clone(),
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let skew = now.abs_diff(hello.time);
        if skew > link.hello_max_skew.as_secs() {
            return Err(HelloRefused::Skew {
                skew,
                max: link.hello_max_skew.as_secs(),
            });
        }
        let key = if self.trust.has_node(node) {
            let Some(auth) = &hello.auth else {
                return Err(HelloRefused::Unsigned(node.to_owned()));
            };
            self.trust
                .verify_link(node, &auth.key_id, message, &auth.signature)
                .map_err(HelloRefused::Signature)?
        } else if self.cfg.insecure {
            // `insecure` lets nodes without keys in unauthenticated; a signature that
            // there is no key to check against proves nothing and changes nothing.
            String::new()
        } else {
            return Err(HelloRefused::Untrusted(node.to_owned()));
        };
        // An unsigned HELLO (insecure, a node without keys) proves nothing; its nonce
        // is not worth remembering.
        if hello.auth.is_some() && !self.fresh_nonce(node, hello.nonce) {
            return Err(HelloRefused::Replayed);
        }
        if skew * 2 > link.hello_max_skew.as_secs() {
            warn!(%node, skew_s = skew, max_s = link.hello_max_skew.as_secs(), "HELLO time is more than half of hello_max_skew off this clock: fix the time source before senders are refused");
        }
        Ok(key)
    }
}

/// Why a HELLO was refused (the connection is closed; the log says this).
#[derive(Debug, thiserror::Error)]
pub enum HelloRefused {
    #[error(
        "HELLO is for receiver {asked:?}, this is {ours:?} (set [link] receiver_id in the sender's config to this receiver's [link] id)"
    )]
    OtherReceiver { asked: String, ours: String },
    #[error(
        "HELLO time is {skew} s off this clock, over [link] hello_max_skew = {max} s (a replay, or the clocks of the two zones disagree: fix the time source)"
    )]
    Skew { skew: u64, max: u64 },
    #[error("unsigned HELLO for node {0}, which has [[trust]] keys")]
    Unsigned(String),
    #[error("HELLO signature: {0}")]
    Signature(gapsync_common::sign::SignError),
    #[error("node {0} has no [[trust]] entry (add its .pub line to [[trust]])")]
    Untrusted(String),
    #[error(
        "HELLO nonce seen before (a replayed HELLO), or too many HELLOs within 2 × hello_max_skew"
    )]
    Replayed,
}

impl HelloRefused {
    /// The kind, for grouping log lines (one per address, node and kind a minute).
    pub fn kind(&self) -> &'static str {
        match self {
            HelloRefused::OtherReceiver { .. } => "other receiver",
            HelloRefused::Skew { .. } => "clock skew",
            HelloRefused::Unsigned(_) => "unsigned",
            HelloRefused::Signature(_) => "bad signature",
            HelloRefused::Untrusted(_) => "untrusted node",
            HelloRefused::Replayed => "replayed",
        }
    }
}
