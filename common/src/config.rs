//! What both sides' configurations share (TOML): the error type, the value rules
//! (durations, node and receiver ids, frame sizes, audit retention), database URLs and
//! the helpers that read a file and turn serde's errors into one line. Each side's own
//! configuration is in its crate (`gapsync_sender::config`, `gapsync_receiver::config`).
//!
//! Loading is two steps: serde parses the file (unknown keys are errors), then the
//! side's `load` checks what serde cannot (durations, node ids, strategy parameters,
//! URLs). Every error is one line that names the file, the key and what is wrong, e.g.
//! `sender.toml: [batch] interval = "5x": invalid duration (use e.g. 500ms, 5s, 2m, 1h)`.
//!
//! Relative paths (`sqlite:` URLs, `[work] dir`) are resolved against the directory of
//! the configuration file, so a config and its data can move together.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration error; `Display` is the one line to show the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

pub fn invalid(path: &Path, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        msg: msg.into(),
    }
}

/// A duration in the one grammar of every option and tool (humantime's): `500ms`, `5s`,
/// `2m`, `1h 30m`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    // humantime's grammar: a number and a unit, repeated ("500ms", "5s", "2m", "1h 30m",
    // "1d"); a bare number has no unit and is refused.
    humantime::parse_duration(s.trim()).ok()
}

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite:<path>`
    Sqlite(PathBuf),
    /// `odbc:<connection string>`, e.g. `odbc:Driver={PostgreSQL Unicode};Server=...`
    Odbc(String),
}

/// A `[source] url` / `[target] url` that names no database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbUrlError {
    #[error("sqlite URL has no path (write sqlite:/path/to/file.db)")]
    NoPath,
    #[error("odbc URL has no connection string (write odbc:Driver={{...}};Server=...)")]
    NoConnectionString,
    #[error("unsupported URL {0:?} (write sqlite:/path/to/file.db or odbc:<connection string>)")]
    Unsupported(String),
}

impl DbUrl {
    /// `sqlite:<path>` (relative to `base`) or `odbc:<connection string>`.
    pub fn parse(s: &str, base: &Path) -> Result<DbUrl, DbUrlError> {
        if let Some(p) = s.strip_prefix("sqlite:") {
            if p.is_empty() {
                return Err(DbUrlError::NoPath);
            }
            return Ok(DbUrl::Sqlite(base.join(p)));
        }
        if let Some(cs) = s.strip_prefix("odbc:") {
            if cs.trim().is_empty() {
                return Err(DbUrlError::NoConnectionString);
            }
            return Ok(DbUrl::Odbc(cs.to_owned()));
        }
        Err(DbUrlError::Unsupported(s.to_owned()))
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Connection strings may hold passwords: show only the driver part.
            DbUrl::Odbc(cs) => {
                let shown: Vec<&str> = cs
                    .split(';')
                    .filter(|kv| {
                        let k = kv
                            .split('=')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase();
                        !matches!(k.as_str(), "pwd" | "password")
                    })
                    .collect();
                write!(f, "odbc:{}", shown.join(";"))
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub keep_months: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWork {
    pub dir: String,
}

/// The default receiver id on both sides (`[link] id`, `[link] receiver_id`).
pub const DEFAULT_RECEIVER_ID: &str = "gapsync-receiver";

/// A receiver id: 1..=64 of `[A-Za-z0-9._-]` (the link protocol's rule,
/// [`gapsync_protocol::auth::validate_receiver_id`]).
pub fn valid_receiver_id(id: &str) -> bool {
    gapsync_protocol::auth::validate_receiver_id(id).is_ok()
}

pub fn receiver_id(path: &Path, key: &str, v: Option<String>) -> Result<String, ConfigError> {
    let id = v.unwrap_or_else(|| DEFAULT_RECEIVER_ID.to_owned());
    if !valid_receiver_id(&id) {
        return Err(invalid(
            path,
            format!("{key} = {id:?}: write 1 to 64 of A-Z a-z 0-9 . _ -"),
        ));
    }
    Ok(id)
}

/// Default `[audit] keep_months`.
pub const DEFAULT_AUDIT_KEEP_MONTHS: u32 = 12;

/// Smallest accepted `[audit] keep_months`.
pub const MIN_AUDIT_KEEP_MONTHS: u32 = 6;

pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Turn a toml/serde error into one line: `line N ([section] key = value): message`.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return invalid(path, msg);
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|s| format!("{s} "))
        .unwrap_or_default();
    invalid(path, format!("line {line_no} ({section}{line}): {msg}"))
}

pub fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn duration(
    path: &Path,
    key: &str,
    v: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).ok_or_else(|| {
            invalid(
                path,
                format!("{key} = {s:?}: invalid duration (use e.g. 500ms, 5s, 2m, 1h)"),
            )
        }),
    }
}

/// `[link]`: a TCP address (`addr_key`: `connect` or `listen`) or a folder (`dir`,
/// relative to `base`), exactly one of them. Returns (address or "", folder). `side`
/// names the program in the message ("sender", "receiver").
pub fn link_target(
    path: &Path,
    side: &str,
    addr_key: &str,
    addr: Option<String>,
    dir: Option<PathBuf>,
    base: &Path,
    allow_zero_port: bool,
) -> Result<(String, Option<PathBuf>), ConfigError> {
    match (addr, dir) {
        (Some(a), None) => {
            if a.trim().is_empty() {
                return Err(invalid(
                    path,
                    format!("[link] {addr_key} is empty (write host:port)"),
                ));
            }
            host_port(path, &format!("[link] {addr_key}"), &a, allow_zero_port)?;
            Ok((a, None))
        }
        (None, Some(d)) => {
            if d.as_os_str().is_empty() {
                return Err(invalid(path, "[link] dir is empty (write a folder path)"));
            }
            Ok((String::new(), Some(base.join(d))))
        }
        (Some(_), Some(_)) => Err(invalid(
            path,
            format!(
                "[link] has both {addr_key} and dir: one link per {side} ({addr_key} = \"host:port\" for the isolation device, or dir = \"/path\" for a ferry's folder)"
            ),
        )),
        (None, None) => Err(invalid(
            path,
            format!(
                "[link] needs {addr_key} = \"host:port\" (the isolation device) or dir = \"/path\" (a ferry's folder)"
            ),
        )),
    }
}

/// Node ids appear in file names and frames: 1 to 32 of `[A-Za-z0-9_-]`.
/// Checks a `host:port` address of `[link]` (`key` names it): a host, and a port
/// 0..=65535 (0 only where `allow_zero`, a listen address picking a free port).
pub fn host_port(path: &Path, key: &str, v: &str, allow_zero: bool) -> Result<(), ConfigError> {
    let bad = |why: &str| invalid(path, format!("{key} = {v:?}: {why} (write host:port)"));
    let Some((host, port)) = v.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if host.trim().is_empty() {
        return Err(bad("no host"));
    }
    match port.parse::<u16>() {
        Ok(0) if !allow_zero => Err(bad("port 0")),
        Ok(_) => Ok(()),
        Err(_) => Err(bad("the port is not a number 0..=65535")),
    }
}

pub fn valid_node(node: &str) -> bool {
    gapsync_protocol::validate_node(node).is_ok()
}

pub fn max_frame(path: &Path, key: &str, v: Option<u64>) -> Result<usize, ConfigError> {
    let v = v.unwrap_or(1 << 20);
    if !(4096..=64 << 20).contains(&v) {
        return Err(invalid(
            path,
            format!("{key} = {v}: must be between 4096 and 67108864 bytes"),
        ));
    }
    usize::try_from(v).map_err(|_| invalid(path, format!("{key} = {v}: too large")))
}

/// `[audit] keep_months`: default 12, at least 6.
pub fn keep_months(path: &Path, a: &RawAudit) -> Result<u32, ConfigError> {
    let v = a.keep_months.unwrap_or(DEFAULT_AUDIT_KEEP_MONTHS);
    if v < MIN_AUDIT_KEEP_MONTHS {
        return Err(invalid(
            path,
            format!(
                "[audit] keep_months = {v}: must be at least {MIN_AUDIT_KEEP_MONTHS} (the audit record is kept at least 6 months)"
            ),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("s"), None);
    }
}
