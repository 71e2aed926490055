//! The receiver's metrics (`[metrics]`): counters of batches received, applied, failed
//! and quarantined, bytes received, time spent applying, and per node the last seq
//! applied and the last contact (the only liveness signal the outside zone has). Served
//! as Prometheus text on `[metrics] listen` (`GET /metrics`, a bounded server over httparse), and written to
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
    ///
    /// The endpoint may face the outside network, so it is bounded: at most
    /// [`MAX_SCRAPES`] connections are served at once (more are closed at once), each
    /// has [`SCRAPE_TIMEOUT`] to send its request head (at most 8 KiB, parsed by
    /// httparse) and to take the answer, and every connection is closed after one
    /// answer. Idle or garbage connections cost a thread for a few seconds, never more.
    pub fn serve_metrics(
        &self,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Option<std::thread::JoinHandle<()>>> {
        let Some(addr) = self.shared.cfg.metrics_listen.clone() else {
            return Ok(None);
        };
        let listen_err = |source| ReceiverError::Listen {
            addr: addr.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(&addr).map_err(listen_err)?;
        listener.set_nonblocking(true).map_err(listen_err)?;
        let a = listener.local_addr().map_err(listen_err)?;
        let p = self.shared.cfg.work_dir.join("state").join("metrics.addr");
        fsx::write_private_synced(&p, format!("{a}\n").as_bytes()).map_err(work_err(&p))?;
        tracing::info!(listen = %a, "metrics served on /metrics");
        let shared = std::sync::Arc::clone(&self.shared);
        let stop = std::sync::Arc::clone(stop);
        Ok(Some(std::thread::spawn(move || {
            use std::sync::atomic::{AtomicUsize, Ordering};
            let active = std::sync::Arc::new(AtomicUsize::new(0));
            while !stop.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "metrics endpoint: cannot accept");
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        continue;
                    }
                };
                if active.load(Ordering::SeqCst) >= MAX_SCRAPES {
                    // Busy: this connection is closed unanswered (a scraper retries).
                    drop(stream);
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let active = std::sync::Arc::clone(&active);
                let shared = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || {
                    // A scraper that went away or timed out: nothing to do about it.
                    let _ = answer_scrape(stream, &shared);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        })))
    }
}

/// Connections the metrics endpoint serves at once.
const MAX_SCRAPES: usize = 8;

/// How long a scraper has to send its request head, and to take the answer.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads one request head (at most 8 KiB) and answers it: the metrics for `GET
/// /metrics`, 404 for another path, 400 for what does not parse; then closes.
fn answer_scrape(mut stream: std::net::TcpStream, shared: &Shared) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    let deadline = std::time::Instant::now() + SCRAPE_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let (status, body, kind) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break match (req.method, req.path) {
                    (Some("GET"), Some("/metrics")) => (
                        "200 OK",
                        shared.metrics.encode(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    _ => (
                        "404 Not Found",
                        "not found: GET /metrics\n".to_owned(),
                        "text/plain; charset=utf-8",
                    ),
                };
            }
            Ok(httparse::Status::Partial) if head.len() < 8192 => {}
            _ => {
                break (
                    "400 Bad Request",
                    "bad request: GET /metrics\n".to_owned(),
                    "text/plain; charset=utf-8",
                );
            }
        }
        if std::time::Instant::now() >= deadline {
            return Ok(()); // too slow: closed unanswered
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // closed before a whole request
        }
        head.extend_from_slice(&buf[..n]);
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
