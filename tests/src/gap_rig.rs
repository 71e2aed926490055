//! Starting the gap emulator in a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

use crate::*;

// ------------------------------------------------------------------------ gap emulator

/// A `gapsync-gap` process (see [`gap`]) between a sender and a receiver; killed on drop.
#[derive(Debug)]
pub struct GapNode {
    pub(crate) service: Service,
    pub(crate) addr: String,
    /// Its log file (stderr and stdout).
    pub log: PathBuf,
}

impl GapNode {
    /// Start `gapsync-gap --listen 127.0.0.1:0 --forward <forward> <args...>` in `dir`
    /// (log `dir/gap.log`) and wait until it listens.
    pub fn start(dir: &Path, forward: &str, args: &[&str]) -> GapNode {
        fs::create_dir_all(dir).expect("create gap dir");
        let log = dir.join("gap.log");
        let mut all = vec!["--listen", "127.0.0.1:0", "--forward", forward];
        all.extend_from_slice(args);
        let mut service = Service::spawn(&gap_bin(), &all, dir, &log);
        let start = Instant::now();
        let addr = loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let found = text
                .lines()
                .find(|l| l.contains("gap listening"))
                .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
                .map(str::to_owned);
            if let Some(a) = found {
                break a;
            }
            if let Some(st) = service.exited() {
                panic!("`{}` exited with {st}\n{}", service.what, tail(&log, 40));
            }
            assert!(
                start.elapsed() < secs(10),
                "`{}` did not start listening\n{}",
                service.what,
                tail(&log, 40)
            );
            std::thread::sleep(ms(20));
        };
        GapNode { service, addr, log }
    }

    /// `host:port` for the sender's `[link] connect`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The whole log.
    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Number of log lines containing `what`.
    pub fn count(&self, what: &str) -> usize {
        self.log_text().lines().filter(|l| l.contains(what)).count()
    }

    /// Kill it (SIGKILL).
    pub fn kill(&mut self) -> ExitStatus {
        self.service.kill()
    }
}
