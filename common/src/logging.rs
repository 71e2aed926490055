//! Log set-up shared by the binaries: tracing to stderr, key/value fields, level from
//! `GAPSYNC_LOG` (e.g. `GAPSYNC_LOG=debug`), default `info`.

/// Install the global tracing subscriber (once; later calls do nothing).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAPSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
