//! Running commands of the binaries and checking their output.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::*;

// ------------------------------------------------------------------------ commands

/// The result of a finished command (`once`, `status`, `apply`, ...).
#[derive(Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panic (with both outputs) unless the command exited 0.
    pub fn expect_success(self) -> CmdOutput {
        assert!(
            self.success(),
            "`{}` failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless the command exited non-zero.
    pub fn expect_failure(self) -> CmdOutput {
        assert!(
            !self.success(),
            "`{}` was expected to fail but exited 0\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }
}

pub(crate) static CMD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Run `program args` in `dir` to completion (stdout/stderr captured through files in
/// `dir`), killing it and panicking after `timeout`.
pub fn run_command(program: &Path, args: &[&str], dir: &Path, timeout: Duration) -> CmdOutput {
    let n = CMD_COUNTER.fetch_add(1, Ordering::SeqCst);
    let out_path = dir.join(format!("cmd-{n}.out"));
    let err_path = dir.join(format!("cmd-{n}.err"));
    let what = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("create stdout file"))
        .stderr(fs::File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{what}` did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                tail(&out_path, 40),
                tail(&err_path, 40)
            );
        }
        std::thread::sleep(ms(20));
    };
    let read = |p: &Path| {
        fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let out = CmdOutput {
        what,
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    out
}

/// Send SIGHUP to a process (through `kill(1)`).
pub fn sighup(pid: u32) {
    let st = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .expect("running kill -HUP");
    assert!(st.success(), "kill -HUP {pid} failed: {st}");
}

/// Send SIGTERM to a process (through `kill(1)`: no unsafe code needed).
pub fn sigterm(pid: u32) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("running kill -TERM");
    assert!(st.success(), "kill -TERM {pid} failed: {st}");
}

/// A long-running service process with its stderr/stdout appended to a log file.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) what: String,
}

impl Service {
    pub(crate) fn spawn(program: &Path, args: &[&str], dir: &Path, log: &Path) -> Service {
        let what = format!(
            "{} {}",
            program.file_name().unwrap_or_default().to_string_lossy(),
            args.join(" ")
        );
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let f2 = f.try_clone().expect("clone log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        Service { child, what }
    }

    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(ms(20));
        }
    }

    pub(crate) fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait after kill")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn open_db(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    c.busy_timeout(secs(20)).expect("busy_timeout");
    c
}
