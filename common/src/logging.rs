//! Output set-up shared by the binaries: tracing to stderr, key/value fields, level from
//! `GAPSYNC_LOG` (e.g. `GAPSYNC_LOG=debug`), default `info`, one JSON object a line with
//! `GAPSYNC_LOG_FORMAT=json` (for log shippers); the final error line of a command in
//! the same form, with its time ([`final_error`]); and standard output that reports a
//! closed pipe or a full disk as an error instead of panicking ([`outln!`]).

use std::io;
use std::io::Write as _;
use std::sync::OnceLock;

/// `GAPSYNC_LOG_FORMAT=json` was set at [`init`].
static JSON: OnceLock<bool> = OnceLock::new();

/// `GAPSYNC_LOG` or `GAPSYNC_LOG_FORMAT` holds no valid value.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not valid ({reason}): {hint}, or unset it")]
pub struct LogFilterError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
    pub hint: &'static str,
}

/// Install the global tracing subscriber (once; later calls do nothing). An invalid
/// `GAPSYNC_LOG` is an error: silencing every log line (errors included) because of a
/// typo would hide exactly what the operator needs.
pub fn init() -> Result<(), LogFilterError> {
    let filter = match std::env::var("GAPSYNC_LOG") {
        Ok(value) => {
            tracing_subscriber::EnvFilter::try_new(&value).map_err(|e| LogFilterError {
                var: "GAPSYNC_LOG",
                value: value.clone(),
                reason: format!("not a valid log filter: {e}"),
                hint: "use e.g. info, debug, warn or gapsync_receiver=debug",
            })?
        }
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
    };
    let json = match std::env::var("GAPSYNC_LOG_FORMAT").as_deref() {
        Err(_) | Ok("text") => false,
        Ok("json") => true,
        Ok(other) => {
            return Err(LogFilterError {
                var: "GAPSYNC_LOG_FORMAT",
                value: other.to_owned(),
                reason: "not a log format".to_owned(),
                hint: "use text or json",
            });
        }
    };
    let _ = JSON.set(json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // Already installed (a second call): the first one stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

/// The last line of a command that failed: `<time> <program>: error: <line>`, or with
/// `GAPSYNC_LOG_FORMAT=json` one JSON object with the same fields as the log lines.
pub fn final_error(program: &str, line: &str) {
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let text = if JSON.get().copied().unwrap_or(false) {
        serde_json::json!({
            "timestamp": time.to_string(),
            "level": "ERROR",
            "target": program,
            "message": format!("error: {line}"),
        })
        .to_string()
    } else {
        format!("{time} {program}: error: {line}")
    };
    // Nothing is left to report a failure to when standard error itself is closed.
    let _ = writeln!(io::stderr().lock(), "{text}");
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
