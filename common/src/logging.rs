//! Output set-up shared by the binaries: tracing to stderr, key/value fields, level from
//! `GAPSYNC_LOG` (e.g. `GAPSYNC_LOG=debug`), default `info`; and standard output that
//! reports a closed pipe or a full disk as an error instead of panicking ([`outln!`]).

use std::io;

/// `GAPSYNC_LOG` holds no valid filter.
#[derive(Debug, thiserror::Error)]
#[error(
    "GAPSYNC_LOG={value:?} is not a valid log filter ({reason}): use e.g. info, debug, warn or gapsync_receiver=debug, or unset it"
)]
pub struct LogFilterError {
    pub value: String,
    pub reason: String,
}

/// Install the global tracing subscriber (once; later calls do nothing). An invalid
/// `GAPSYNC_LOG` is an error: silencing every log line (errors included) because of a
/// typo would hide exactly what the operator needs.
pub fn init() -> Result<(), LogFilterError> {
    let filter = match std::env::var("GAPSYNC_LOG") {
        Ok(value) => {
            tracing_subscriber::EnvFilter::try_new(&value).map_err(|e| LogFilterError {
                value: value.clone(),
                reason: e.to_string(),
            })?
        }
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
    };
    // Already installed (a second call): the first one stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// Writing to standard output failed (a closed pipe, a full disk).
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
pub struct StdoutError(#[source] pub io::Error);

impl StdoutError {
    /// The reader went away (`... | head`): the usual quiet end of a command's output.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes `text` to standard output and flushes it.
pub fn write_stdout(text: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    use std::io::Write as _;
    let mut out = io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// `println!` that returns a [`StdoutError`] instead of panicking on a closed pipe or a
/// full disk: `outln!("{x}")?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::logging::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
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
