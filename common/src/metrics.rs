//! Metrics of both services in the Prometheus text format (prometheus-client encodes
//! it): a registry each service fills with its counters and gauges, and the
//! node_exporter textfile (`[metrics] textfile`) written atomically (temp name, rename)
//! so the collector never reads half a file. The receiver also serves the same text
//! over HTTP (`[metrics] listen`, in the receiver: this crate opens no sockets).

use std::path::Path;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a per-node metric.
pub type NodeLabels = Vec<(String, String)>;

/// A counter of whole events.
pub type Count = Counter<u64, AtomicU64>;

/// The labels `node="<node>"`.
pub fn node(node: &str) -> NodeLabels {
    vec![("node".to_owned(), node.to_owned())]
}

/// A service's metrics registry (names get the `gapsync_` prefix).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            registry: Registry::with_prefix("gapsync"),
        }
    }
}

impl Metrics {
    /// A counter (exposed as `gapsync_<name>_total`).
    pub fn counter(&mut self, name: &str, help: &str) -> Count {
        let c = Count::default();
        self.registry.register(name, help, c.clone());
        c
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.registry.register(name, help, g.clone());
        g
    }

    /// A gauge per node.
    pub fn node_gauge(&mut self, name: &str, help: &str) -> Family<NodeLabels, Gauge> {
        let f = Family::<NodeLabels, Gauge>::default();
        self.registry.register(name, help, f.clone());
        f
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an empty text is the worst case.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Writes the text exposition to `path` for node_exporter's textfile collector:
    /// a temp name beside it (`.<name>.tmp`, which the collector skips), then a rename.
    pub fn write_textfile(&self, path: &Path) -> std::io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        std::fs::write(&tmp, self.encode())?;
        // Counters only, read by node_exporter's own user: readable by all, whatever
        // the service's umask.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counters_and_gauges_encode_as_prometheus_text() {
        let mut m = Metrics::default();
        let c = m.counter("batches_applied", "Batches applied.");
        let g = m.node_gauge("last_applied_seq", "Last seq applied.");
        c.inc_by(3);
        g.get_or_create(&node("plant1")).set(42);
        let t = m.encode();
        assert!(t.contains("gapsync_batches_applied_total 3"), "{t}");
        assert!(
            t.contains("gapsync_last_applied_seq{node=\"plant1\"} 42"),
            "{t}"
        );
        assert!(t.trim_end().ends_with("# EOF"), "{t}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("gapsync.prom");
        m.write_textfile(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), t);
    }
}
