//! Binaries, waiting and TOML helpers.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::*;

// ------------------------------------------------------------------------ binaries

/// Path of a workspace binary (`gapsync-sender`, `gapsync-receiver`, ...).
///
/// Looked up next to the running executable: an integration test runs from
/// `target/<profile>/deps/`, a binary of this crate (the demo) from `target/<profile>/`,
/// and cargo puts the workspace binaries in `target/<profile>/`. Panics with a hint when
/// the binary has not been built.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(&file));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(&file));
        }
    }
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "{file} not found (looked at {candidates:?}): run `cargo build --workspace` first \
         (with --release for a release test run)"
    );
}

/// `gapsync-sender`.
pub fn sender_bin() -> PathBuf {
    bin("gapsync-sender")
}

/// `gapsync-receiver`.
pub fn receiver_bin() -> PathBuf {
    bin("gapsync-receiver")
}

/// `gapsync-gap`.
pub fn gap_bin() -> PathBuf {
    bin("gapsync-gap")
}

// ------------------------------------------------------------------------ waiting

/// Poll `f` every [`POLL`] until it returns `Some`, or panic after `timeout` with
/// `what` and `diag()` (e.g. log tails).
pub fn wait_for_with<T>(
    what: &str,
    timeout: Duration,
    diag: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                diag()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The last `n` lines of a text file ("" if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------------ TOML

pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn toml_dur(d: Duration) -> String {
    toml_str(&format!("{}ms", d.as_millis()))
}

pub(crate) fn sqlite_url(p: &Path) -> String {
    toml_str(&format!("sqlite:{}", p.display()))
}
