//! Last-error notes: a running service leaves the newest link error and the newest apply
//! (or target) error, each with its time, in its `state/` folder, where `status` (another
//! process) reads them. A note is written at most once every `every` (a stranger's
//! connections that fail a thousand times a second cost one small write every few
//! seconds: [`NOTE_EVERY`]), and the same error again at most once a minute (a target
//! that stays down); private and synced like everything in the work directory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The least time between two writes of one note.
pub const NOTE_EVERY: Duration = Duration::from_secs(5);

/// An error and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNote {
    /// UTC, RFC 3339.
    pub at: String,
    pub error: String,
}

impl ErrorNote {
    /// Seconds since the error (None: `at` does not parse).
    pub fn age_secs(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        let at = chrono::DateTime::parse_from_rfc3339(&self.at).ok()?;
        Some((now - at.with_timezone(&chrono::Utc)).num_seconds().max(0) as u64)
    }

    /// `2026-12-04T10:00:00Z (35 s ago): error` for the human reports.
    pub fn line(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        match self.age_secs(now) {
            Some(s) => format!("{} ({s} s ago): {}", self.at, self.error),
            None => format!("{}: {}", self.at, self.error),
        }
    }
}

/// Characters that reorder what a terminal shows (bidirectional controls): escaped.
const BIDI: [char; 12] = [
    '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// The least time between two writes of the same error.
const SAME_EVERY: Duration = Duration::from_secs(60);

/// One note file, and when it was last written with what.
#[derive(Debug)]
pub struct Note {
    path: PathBuf,
    every: Duration,
    written: Mutex<Option<(Instant, String)>>,
}

impl Note {
    /// A note at `path`, written at most once every `every`.
    pub fn new(path: PathBuf, every: Duration) -> Note {
        Note {
            path,
            every,
            written: Mutex::new(None),
        }
    }

    /// Notes `error` now, unless this note was written less than `every` ago (or the
    /// same error less than a minute ago). A failure to write is returned for the caller
    /// to log: a missing note only makes `status` less telling, it loses nothing.
    pub fn note(&self, error: &str) -> std::io::Result<()> {
        // Control characters escaped: a peer's bytes in an error never reach the
        // operator's terminal as terminal commands.
        let error: String = error
            .chars()
            .take(1000)
            .flat_map(|c| {
                let e = c.escape_default();
                let plain = !c.is_control() && !BIDI.contains(&c);
                std::iter::once(c)
                    .filter(move |_| plain)
                    .chain(e.filter(move |_| !plain))
            })
            .collect();
        if let Ok(mut w) = self.written.lock() {
            if let Some((t, last)) = w.as_ref()
                && (t.elapsed() < self.every || (*last == error && t.elapsed() < SAME_EVERY))
            {
                return Ok(());
            }
            *w = Some((Instant::now(), error.clone()));
        }
        let n = ErrorNote {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            error,
        };
        let text = serde_json::to_string(&n).map_err(std::io::Error::other)?;
        crate::fsx::write_private_synced(&self.path, text.as_bytes())
    }
}

/// The note at `path` (None: none written, or unreadable).
pub fn read(path: &Path) -> Option<ErrorNote> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A note is read back with its time; a second error within `every` is not
    /// written (the first stays); without a throttle a new error is written at once,
    /// the same one again is not; a damaged note reads as none.
    #[test]
    fn a_note_round_trips_and_is_written_at_most_every_few_seconds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("link-error.json");
        assert_eq!(read(&p), None);
        let n = Note::new(p.clone(), NOTE_EVERY);
        n.note("connection refused").unwrap();
        n.note("something else").unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.error, "connection refused");
        let q = d.path().join("apply-error.json");
        let n = Note::new(q.clone(), Duration::ZERO);
        n.note("failed").unwrap();
        n.note("quarantined").unwrap();
        assert_eq!(read(&q).unwrap().error, "quarantined");
        std::fs::remove_file(&q).unwrap();
        n.note("quarantined").unwrap();
        assert_eq!(read(&q), None, "the same error was written again at once");
        let age = got.age_secs(chrono::Utc::now()).unwrap();
        assert!(age < 60, "{age}");
        assert!(
            got.line(chrono::Utc::now())
                .ends_with("s ago): connection refused")
        );
        let r = d.path().join("escaped.json");
        Note::new(r.clone(), NOTE_EVERY)
            .note("bad \u{1b}[2J node\n \u{202e}txt")
            .unwrap();
        assert_eq!(
            read(&r).unwrap().error,
            "bad \\u{1b}[2J node\\n \\u{202e}txt"
        );
        std::fs::write(&p, "{not json").unwrap();
        assert_eq!(read(&p), None);
    }
}
