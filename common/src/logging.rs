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

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text the
/// line already holds (many errors print their source in their own message).
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading x: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn causes_are_not_repeated() {
        let e = Outer {
            source: std::io::Error::other("disk gone"),
        };
        assert_eq!(super::error_line(&e), "reading x: disk gone");
    }
}
