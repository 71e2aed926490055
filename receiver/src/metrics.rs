//! The receiver's metrics (`[metrics]`): counters of batches received, applied, failed
//! and quarantined, bytes received, time spent applying, and per node the last seq
//! applied and the last contact (the only liveness signal the outside zone has). Served
//! as Prometheus text on `[metrics] listen` (tiny_http, `GET /metrics`), and written to
//! `[metrics] textfile` for node_exporter at most once a second.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gapsync_common::metrics::{Count, Metrics, NodeLabels, node};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tracing::warn;

use crate::*;

/// The receiver's counters and gauges.
#[derive(Debug)]
pub struct RxMetrics {
    registry: Metrics,
    pub received: Count,
    pub received_bytes: Count,
    pub applied: Count,
    pub failed: Count,
    pub quarantined: Count,
    pub apply_millis: Count,
    pub last_applied_seq: Family<NodeLabels, Gauge>,
    pub last_contact: Family<NodeLabels, Gauge>,
    written: Mutex<Option<Instant>>,
    /// Last contact per node (unix seconds), for `state/contact.json` and `status`.
    contacts: Mutex<std::collections::BTreeMap<String, i64>>,
    /// When `state/contact.json` was last written, and what it said.
    contacts_written: Mutex<Option<(Instant, String)>>,
}

impl Default for RxMetrics {
    fn default() -> Self {
        let mut m = Metrics::default();
        RxMetrics {
            received: m.counter(
                "batches_received",
                "Batches spooled (TCP END or inbox), verified.",
            ),
            received_bytes: m.counter("received_bytes", "Bytes of batch files spooled."),
            applied: m.counter("batches_applied", "Batches applied on the target."),
            failed: m.counter(
                "batches_failed",
                "Batch applies that failed deterministically.",
            ),
            quarantined: m.counter("batches_quarantined", "Batches dropped to quarantine."),
            apply_millis: m.counter("apply_milliseconds", "Milliseconds spent applying batches."),
            last_applied_seq: m.node_gauge("last_applied_seq", "The last seq applied, per node."),
            last_contact: m.node_gauge(
                "last_contact_timestamp_seconds",
                "When the node was last heard from (HELLO, heartbeat, a batch), unix seconds.",
            ),
            registry: m,
            written: Mutex::new(None),
            contacts: Mutex::new(std::collections::BTreeMap::new()),
            contacts_written: Mutex::new(None),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl RxMetrics {
    /// The node was heard from now.
    pub fn contact(&self, n: &str) {
        let now = unix_now();
        self.last_contact.get_or_create(&node(n)).set(now);
        if let Ok(mut c) = self.contacts.lock() {
            c.insert(n.to_owned(), now);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        self.registry.encode()
    }
}

impl Receiver {
    /// Writes `[metrics] textfile` if configured and a second has passed since the last
    /// write; a failure is logged (metrics never stop the service).
    pub fn write_metrics_textfile(&self) {
        let Some(path) = &self.shared.cfg.metrics_textfile else {
            return;
        };
        let m = &self.shared.metrics;
        if let Ok(mut w) = m.written.lock() {
            if w.is_some_and(|t| t.elapsed().as_secs() < 1) {
                return;
            }
            *w = Some(Instant::now());
        }
        if let Err(e) = m.registry.write_textfile(path) {
            warn!(file = %path.display(), error = %e, "cannot write the metrics textfile");
        }
    }

    /// Writes `state/contact.json` (each node's last contact, unix seconds) for `status`,
    /// at most once a second (private, like everything in the work directory); a failure
    /// is only logged.
    pub fn write_contacts(&self) {
        let m = &self.shared.metrics;
        let text = match m.contacts.lock() {
            Ok(c) if !c.is_empty() => serde_json::to_string(&*c).unwrap_or_default(),
            _ => return,
        };
        // Only when a contact changed, and at most once a second (the applier calls this
        // every pass).
        if let Ok(mut w) = m.contacts_written.lock() {
            if w.as_ref()
                .is_some_and(|(t, last)| *last == text || t.elapsed().as_secs() < 1)
            {
                return;
            }
            *w = Some((Instant::now(), text.clone()));
        }
        let path = self.shared.cfg.work_dir.join("state").join("contact.json");
        if let Err(e) = fsx::write_private_synced(&path, text.as_bytes()) {
            warn!(file = %path.display(), error = %e, "cannot note the nodes' last contact (status cannot tell how long they have been silent)");
        }
    }

    /// Serves `GET /metrics` on `[metrics] listen` until `stop`, in a thread of its own;
    /// writes the bound address to `state/metrics.addr`.
    pub fn serve_metrics(
        &self,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Option<std::thread::JoinHandle<()>>> {
        let Some(addr) = self.shared.cfg.metrics_listen.clone() else {
            return Ok(None);
        };
        let server = tiny_http::Server::http(&addr).map_err(|e| ReceiverError::Listen {
            addr: addr.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if let Some(a) = server.server_addr().to_ip() {
            let p = self.shared.cfg.work_dir.join("state").join("metrics.addr");
            fsx::write_private_synced(&p, format!("{a}\n").as_bytes()).map_err(work_err(&p))?;
            tracing::info!(listen = %a, "metrics served on /metrics");
        }
        let shared = std::sync::Arc::clone(&self.shared);
        let stop = std::sync::Arc::clone(stop);
        Ok(Some(std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !stop.load(Ordering::SeqCst) {
                let req = match server.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(error = %e, "metrics endpoint: cannot accept");
                        continue;
                    }
                };
                let resp = if req.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    );
                    let r = tiny_http::Response::from_string(shared.metrics.encode());
                    match header {
                        Ok(h) => r.with_header(h),
                        Err(()) => r,
                    }
                } else {
                    tiny_http::Response::from_string("not found: GET /metrics\n")
                        .with_status_code(404)
                };
                // A scraper that went away: nothing to do about it.
                let _ = req.respond(resp);
            }
        })))
    }
}
