//! The sender's metrics, written to `[metrics] textfile` for node_exporter's textfile
//! collector (the inside zone usually has no scraper) at most once a second: batches
//! cut, applied (published) and quarantined, changes cut, bytes sent, and the pending
//! changes and lag at the last pass.

use std::time::Instant;

use gapsync_common::metrics::{Count, Metrics};
use prometheus_client::metrics::gauge::Gauge;
use tracing::warn;

use crate::*;

/// The sender's counters and gauges.
#[derive(Debug)]
pub struct TxMetrics {
    registry: Metrics,
    pub batches_cut: Count,
    pub changes_cut: Count,
    pub batches_applied: Count,
    pub batches_quarantined: Count,
    pub sent_bytes: Count,
    pub pending_changes: Gauge,
    pub lag_seconds: Gauge,
    written: Option<Instant>,
}

impl Default for TxMetrics {
    fn default() -> Self {
        let mut m = Metrics::default();
        TxMetrics {
            batches_cut: m.counter("batches_cut", "Batches cut (changes and snapshots)."),
            changes_cut: m.counter("changes_cut", "Captured changes put into batches."),
            batches_applied: m.counter(
                "batches_applied",
                "Batches answered applied (or published, on a folder link).",
            ),
            batches_quarantined: m.counter("batches_quarantined", "Batches dropped to quarantine."),
            sent_bytes: m.counter("sent_bytes", "Bytes of batch files sent or published."),
            pending_changes: m.gauge("pending_changes", "Captured changes not yet in a batch."),
            lag_seconds: m.gauge(
                "lag_seconds",
                "Age of the oldest change not yet in a batch, at the last pass.",
            ),
            registry: m,
            written: None,
        }
    }
}

impl Sender {
    /// Updates the gauges and writes `[metrics] textfile` (at most once a second); a
    /// failure is logged (metrics never stop the service).
    pub(crate) fn write_metrics(&mut self) {
        let Some(path) = self.cfg.metrics_textfile.clone() else {
            return;
        };
        if self
            .metrics
            .written
            .is_some_and(|t| t.elapsed().as_secs() < 1)
        {
            return;
        }
        self.metrics.written = Some(Instant::now());
        if let Ok(n) = self.source.pending_count() {
            self.metrics.pending_changes.set(n as i64);
        }
        let lag = self
            .source
            .oldest_pending_at()
            .ok()
            .flatten()
            .and_then(|t| crate::capture::parse_at(&t))
            .map_or(0, |t| (chrono::Utc::now() - t).num_seconds().max(0));
        self.metrics.lag_seconds.set(lag);
        if let Err(e) = self.metrics.registry.write_textfile(&path) {
            warn!(file = %path.display(), error = %e, "cannot write the metrics textfile");
        }
    }
}
