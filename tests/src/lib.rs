//! Harness for gapsync's end-to-end tests and demo: it runs the REAL binaries
//! (`gapsync-sender`, `gapsync-receiver`) as child processes in a temporary workspace
//! and looks at their databases and work directories from the outside.
//!
//! # Layout of a workspace
//!
//! ```text
//! <tmp>/gapsync-<name>-XXXX/
//!   receiver/receiver.toml  receiver/replica.db  receiver/rwork/  receiver/receiver.log
//!   sender/sender.toml      sender/plant.db      sender/swork/    sender/sender.log
//!   sender-<node>/...       (more sender nodes, see [`Workspace::sender_in`])
//! ```
//!
//! # Typical test
//!
//! ```no_run
//! use gapsync_tests::*;
//! let ws = Workspace::new("example");
//! let mut rx = ws.receiver(ReceiverConfig::default());
//! rx.start();
//! let mut tx = ws.sender(SenderConfig::new("plant1").table(Table::new("t")).connect(rx.addr()));
//! tx.source().execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").unwrap();
//! tx.install();
//! tx.snapshot(&[]); // creates the target table
//! tx.start(); // `gapsync-sender run`
//! tx.source().execute("INSERT INTO t VALUES (1, 'x')", []).unwrap();
//! ws.wait_synced(&tx, &rx, secs(30));
//! assert_synced(&tx, &rx);
//! tx.stop(); rx.stop();
//! ```
//!
//! # Real database servers (feature `odbc`)
//!
//! [`odbc`] runs the same pipeline into PostgreSQL and MariaDB through ODBC: a
//! [`odbc::Server`] per server (skipped with a message when unreachable, a failure with
//! `CI=true`), a fresh database per test ([`odbc::TestDb`], dropped afterwards), typed
//! readers and a row-by-row comparison with the SQLite source. [`TcpProxy`] can stand
//! between the receiver and a server to cut the connection (an outage) and restore it.
//!
//! # Rules the helpers follow
//!
//! - Every helper panics on failure with a message that says what was expected; the
//!   `wait_*` helpers add the tail of every `*.log` file of the workspace (the stderr of
//!   the services), so a timeout explains itself.
//! - Services ([`SenderNode::start`], [`ReceiverNode::start`]) are killed with SIGKILL
//!   when their node is dropped, so a failing test leaves no process behind. Stop them
//!   with [`SenderNode::stop`] (SIGTERM, expects exit 0) to test a clean shutdown, or
//!   [`SenderNode::kill`] (SIGKILL) to test a crash.
//! - The workspace directory is deleted on drop, unless the thread is panicking (a
//!   failing test) or `GAPSYNC_KEEP=1` is set: then its path is printed and it is kept.
//! - Databases are opened with rusqlite with a busy timeout, read-only use is the norm:
//!   the services own their databases; tests write only to the SOURCE tables (the plant)
//!   or, deliberately, to gapsync's tables when a test needs an unusual state.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::types::Value;

// Real database servers through ODBC (PostgreSQL, MariaDB): see the module docs.
#[cfg(feature = "odbc")]
pub mod odbc;

// The forward isolation device emulator (`gapsync-gap`).
pub mod gap;

// The reliability suite's rig and end-of-case checks (also used by `gapsync-soak`).
pub mod suite;

// The soak run (`gapsync-soak`, `tests/soak.sh`).
pub mod soak;

// The performance budgets as ratios against peers (`gapsync-bench`).
pub mod bench;

// A hostile client speaking raw frames, for the trust-boundary suite.
pub mod attacker;

/// How often the `wait_*` helpers look.
pub const POLL: Duration = Duration::from_millis(50);

/// Shorthand for `Duration::from_secs`.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Shorthand for `Duration::from_millis`.
pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

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

fn toml_str(s: &str) -> String {
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

fn toml_dur(d: Duration) -> String {
    toml_str(&format!("{}ms", d.as_millis()))
}

fn sqlite_url(p: &Path) -> String {
    toml_str(&format!("sqlite:{}", p.display()))
}

// ------------------------------------------------------------------------ config builders

/// One `[[table]]` entry of the sender config.
#[derive(Debug, Clone)]
pub struct Table {
    pub source: String,
    /// `target = ...` (None: same name as the source).
    pub target: Option<String>,
    /// `key = [...]` (None: the source table's primary key).
    pub key: Option<Vec<String>>,
    /// `rename = { source column = target column, ... }`.
    pub rename: Vec<(String, String)>,
}

impl Table {
    pub fn new(source: &str) -> Table {
        Table {
            source: source.to_owned(),
            target: None,
            key: None,
            rename: Vec::new(),
        }
    }

    /// Map onto a differently named target table.
    pub fn target(mut self, target: &str) -> Table {
        self.target = Some(target.to_owned());
        self
    }

    /// Explicit key columns (source names).
    pub fn key(mut self, cols: &[&str]) -> Table {
        self.key = Some(cols.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// Rename a column on the target.
    pub fn rename(mut self, from: &str, to: &str) -> Table {
        self.rename.push((from.to_owned(), to.to_owned()));
        self
    }

    /// The target table's name.
    pub fn target_name(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.source)
    }

    fn toml(&self) -> String {
        let mut s = format!("[[table]]\nsource = {}\n", toml_str(&self.source));
        if let Some(t) = &self.target {
            let _ = writeln!(s, "target = {}", toml_str(t));
        }
        if let Some(k) = &self.key {
            let cols: Vec<String> = k.iter().map(|c| toml_str(c)).collect();
            let _ = writeln!(s, "key = [{}]", cols.join(", "));
        }
        if !self.rename.is_empty() {
            let pairs: Vec<String> = self
                .rename
                .iter()
                .map(|(a, b)| format!("{} = {}", toml_str(a), toml_str(b)))
                .collect();
            let _ = writeln!(s, "rename = {{ {} }}", pairs.join(", "));
        }
        s
    }
}

/// `[batch] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Immediate,
    Interval(Duration),
    Count(u64),
    Idle(Duration),
}

/// Sender configuration builder; [`SenderConfig::toml`] renders `sender.toml`.
/// Fields are public: set them directly or with the builder methods.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub node: String,
    pub tables: Vec<Table>,
    pub strategy: Strategy,
    pub max_rows: u64,
    pub compress: bool,
    /// `"drop"` or `"halt"`.
    pub on_second_failure: String,
    pub poll: Duration,
    /// `[link] connect`; usually [`ReceiverNode::addr`].
    pub connect: String,
    pub frame_timeout: Duration,
    pub result_timeout: Duration,
    pub connect_timeout: Duration,
    pub heartbeat: Duration,
    pub once_connect_attempts: u32,
    /// `[link] max_frame` (None: the default, 1 MiB).
    pub max_frame: Option<u64>,
    /// `[target] dialect` the statements are rendered in (`sqlite`, `postgres`,
    /// `mysql`, ...).
    pub dialect: String,
    /// `[sign] key` (None: `insecure = true`, the default).
    pub sign_key: Option<PathBuf>,
    /// `[archive] keep_days` (None: not written, the default 90).
    pub archive_keep_days: Option<u32>,
    /// `[link] receiver_id` (None: not written, the default "gapsync-receiver").
    pub receiver_id: Option<String>,
}

impl SenderConfig {
    /// Defaults suited to tests: immediate strategy, poll 100 ms, short timeouts.
    pub fn new(node: &str) -> SenderConfig {
        SenderConfig {
            node: node.to_owned(),
            tables: Vec::new(),
            strategy: Strategy::Immediate,
            max_rows: 10_000,
            compress: false,
            on_second_failure: "drop".to_owned(),
            poll: ms(100),
            connect: "127.0.0.1:9".to_owned(),
            frame_timeout: secs(30),
            result_timeout: secs(60),
            connect_timeout: secs(5),
            heartbeat: secs(10),
            once_connect_attempts: 5,
            max_frame: None,
            dialect: "sqlite".to_owned(),
            sign_key: None,
            archive_keep_days: None,
            receiver_id: None,
        }
    }

    /// Sign batches with this private key file (drops `insecure = true`).
    pub fn sign_key(mut self, key: &Path) -> SenderConfig {
        self.sign_key = Some(key.to_owned());
        self
    }

    pub fn table(mut self, t: Table) -> SenderConfig {
        self.tables.push(t);
        self
    }

    pub fn strategy(mut self, s: Strategy) -> SenderConfig {
        self.strategy = s;
        self
    }

    pub fn max_rows(mut self, n: u64) -> SenderConfig {
        self.max_rows = n;
        self
    }

    pub fn compress(mut self, on: bool) -> SenderConfig {
        self.compress = on;
        self
    }

    pub fn poll(mut self, d: Duration) -> SenderConfig {
        self.poll = d;
        self
    }

    pub fn connect(mut self, addr: &str) -> SenderConfig {
        self.connect = addr.to_owned();
        self
    }

    /// `[link] receiver_id`: the receiver's `[link] id` this sender signs into HELLO.
    pub fn receiver_id(mut self, id: &str) -> SenderConfig {
        self.receiver_id = Some(id.to_owned());
        self
    }

    /// `[target] dialect`: `"sqlite"` (the default), `"postgres"`, `"mysql"`, ...
    pub fn dialect(mut self, dialect: &str) -> SenderConfig {
        self.dialect = dialect.to_owned();
        self
    }

    /// `[batch] on_second_failure`: `"drop"` or `"halt"`.
    pub fn on_second_failure(mut self, what: &str) -> SenderConfig {
        self.on_second_failure = what.to_owned();
        self
    }

    /// Render `sender.toml` for a source database and work directory.
    pub fn toml(&self, source_db: &Path, work_dir: &Path) -> String {
        let mut s = format!(
            "node = {}\n{}\n[source]\nurl = {}\n\n[target]\ndialect = {}\n\n",
            toml_str(&self.node),
            match &self.sign_key {
                Some(k) => format!("\n[sign]\nkey = {}\n", toml_str(&k.display().to_string())),
                None => "insecure = true\n".to_owned(),
            },
            sqlite_url(source_db),
            toml_str(&self.dialect)
        );
        for t in &self.tables {
            s.push_str(&t.toml());
            s.push('\n');
        }
        s.push_str("[batch]\n");
        match self.strategy {
            Strategy::Immediate => s.push_str("strategy = \"immediate\"\n"),
            Strategy::Interval(d) => {
                let _ = writeln!(s, "strategy = \"interval\"\ninterval = {}", toml_dur(d));
            }
            Strategy::Count(n) => {
                let _ = writeln!(s, "strategy = \"count\"\ncount = {n}");
            }
            Strategy::Idle(d) => {
                let _ = writeln!(s, "strategy = \"idle\"\ninterval = {}", toml_dur(d));
            }
        }
        let _ = writeln!(
            s,
            "max_rows = {}\ncompress = {}\non_second_failure = {}\npoll = {}\n",
            self.max_rows,
            self.compress,
            toml_str(&self.on_second_failure),
            toml_dur(self.poll)
        );
        let _ = writeln!(
            s,
            "[link]\nconnect = {}\nframe_timeout = {}\nresult_timeout = {}\nconnect_timeout = {}\nheartbeat = {}\nonce_connect_attempts = {}",
            toml_str(&self.connect),
            toml_dur(self.frame_timeout),
            toml_dur(self.result_timeout),
            toml_dur(self.connect_timeout),
            toml_dur(self.heartbeat),
            self.once_connect_attempts
        );
        if let Some(m) = self.max_frame {
            let _ = writeln!(s, "max_frame = {m}");
        }
        if let Some(id) = &self.receiver_id {
            let _ = writeln!(s, "receiver_id = {}", toml_str(id));
        }
        let _ = writeln!(
            s,
            "\n[work]\ndir = {}",
            toml_str(&work_dir.display().to_string())
        );
        if let Some(d) = self.archive_keep_days {
            let _ = writeln!(s, "\n[archive]\nkeep_days = {d}");
        }
        s
    }
}

/// Receiver configuration builder; [`ReceiverConfig::toml`] renders `receiver.toml`.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// `[link] listen`; `127.0.0.1:0` picks a free port (read back by
    /// [`ReceiverNode::start`] from `state/listen.addr`).
    pub listen: String,
    pub result_wait: Duration,
    pub retry_interval: Duration,
    pub busy_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// `[link] frame_timeout`.
    pub frame_timeout: Option<Duration>,
    pub max_connections: Option<u32>,
    /// `[limits]` entries (`max_batch_bytes`, `max_decompressed`, `max_statement_len`,
    /// `max_statements`).
    pub limits: Vec<(&'static str, u64)>,
    /// `[target] url` when the target is not the workspace's SQLite `replica.db`
    /// (e.g. `odbc:Driver={PostgreSQL Unicode};...`).
    pub target_url: Option<String>,
    /// `[target] dialect` (None: detected from the ODBC driver).
    pub target_dialect: Option<String>,
    /// `[[trust]]` (node, public key line) entries; empty: `insecure = true`.
    pub trust: Vec<(String, String)>,
    /// Write `insecure = true` even with `trust` entries.
    pub insecure: bool,
    /// `[link] id` (None: not written, the default "gapsync-receiver").
    pub id: Option<String>,
    /// `[link] hello_timeout` (None: not written, the default 10 s).
    pub hello_timeout: Option<Duration>,
    /// `[link] hello_max_skew` (None: not written, the default 5 min).
    pub hello_max_skew: Option<Duration>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            listen: "127.0.0.1:0".to_owned(),
            result_wait: secs(20),
            retry_interval: secs(1),
            busy_timeout: secs(5),
            idle_timeout: None,
            frame_timeout: None,
            max_connections: None,
            limits: Vec::new(),
            target_url: None,
            target_dialect: None,
            trust: Vec::new(),
            insecure: false,
            id: None,
            hello_timeout: None,
            hello_max_skew: None,
        }
    }
}

impl ReceiverConfig {
    /// A receiver whose target is reached through ODBC with `conn_str`.
    pub fn odbc(conn_str: &str) -> ReceiverConfig {
        ReceiverConfig {
            target_url: Some(format!("odbc:{conn_str}")),
            ..ReceiverConfig::default()
        }
    }

    /// Trust the public key line `pub_line` (a `.pub` file's text) for `node`.
    pub fn trust(mut self, node: &str, pub_line: &str) -> ReceiverConfig {
        self.trust
            .push((node.to_owned(), pub_line.trim_end().to_owned()));
        self
    }

    pub fn toml(&self, target_db: &Path, work_dir: &Path) -> String {
        let url = match &self.target_url {
            Some(u) => toml_str(u),
            None => sqlite_url(target_db),
        };
        let insecure = if self.trust.is_empty() || self.insecure {
            "insecure = true\n"
        } else {
            ""
        };
        let mut s = format!("{insecure}\n[target]\nurl = {url}\n");
        if let Some(d) = &self.target_dialect {
            let _ = writeln!(s, "dialect = {}", toml_str(d));
        }
        let _ = write!(
            s,
            "\n[link]\nlisten = {}\nresult_wait = {}\n",
            toml_str(&self.listen),
            toml_dur(self.result_wait)
        );
        if let Some(d) = self.idle_timeout {
            let _ = writeln!(s, "idle_timeout = {}", toml_dur(d));
        }
        if let Some(d) = self.frame_timeout {
            let _ = writeln!(s, "frame_timeout = {}", toml_dur(d));
        }
        if let Some(n) = self.max_connections {
            let _ = writeln!(s, "max_connections = {n}");
        }
        if let Some(id) = &self.id {
            let _ = writeln!(s, "id = {}", toml_str(id));
        }
        if let Some(d) = self.hello_timeout {
            let _ = writeln!(s, "hello_timeout = {}", toml_dur(d));
        }
        if let Some(d) = self.hello_max_skew {
            let _ = writeln!(s, "hello_max_skew = {}", toml_dur(d));
        }
        if !self.limits.is_empty() {
            s.push_str("\n[limits]\n");
            for (k, v) in &self.limits {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        let _ = writeln!(
            s,
            "\n[work]\ndir = {}\n\n[apply]\nretry_interval = {}\nbusy_timeout = {}",
            toml_str(&work_dir.display().to_string()),
            toml_dur(self.retry_interval),
            toml_dur(self.busy_timeout)
        );
        for (node, key) in &self.trust {
            let _ = writeln!(
                s,
                "\n[[trust]]\nnode = {}\nkey = {}",
                toml_str(node),
                toml_str(key)
            );
        }
        s
    }
}

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

static CMD_COUNTER: AtomicU64 = AtomicU64::new(0);

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
struct Service {
    child: Child,
    what: String,
}

impl Service {
    fn spawn(program: &Path, args: &[&str], dir: &Path, log: &Path) -> Service {
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

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
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

    fn kill(&mut self) -> ExitStatus {
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

fn open_db(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    c.busy_timeout(secs(20)).expect("busy_timeout");
    c
}

// ------------------------------------------------------------------------ workspace

/// A temporary directory holding one receiver and one or more senders.
#[derive(Debug)]
pub struct Workspace {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Workspace {
    /// A fresh temporary workspace; `name` appears in the directory name.
    pub fn new(name: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix(&format!("gapsync-{name}-"))
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        Workspace {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The receiver in `receiver/` (target database `receiver/replica.db`).
    pub fn receiver(&self, cfg: ReceiverConfig) -> ReceiverNode {
        self.receiver_in("receiver", cfg)
    }

    /// A receiver in `<sub>/` (e.g. a second, fresh target).
    pub fn receiver_in(&self, sub: &str, cfg: ReceiverConfig) -> ReceiverNode {
        let dir = self.path.join(sub);
        fs::create_dir_all(&dir).expect("create receiver dir");
        let node = ReceiverNode {
            config_path: dir.join("receiver.toml"),
            target_db: dir.join("replica.db"),
            work_dir: dir.join("rwork"),
            log: dir.join("receiver.log"),
            dir,
            root: self.path.clone(),
            cfg,
            addr: None,
            addr_text: String::new(),
            service: None,
        };
        node.write_config();
        node
    }

    /// The sender in `sender/` (source database `sender/plant.db`).
    pub fn sender(&self, cfg: SenderConfig) -> SenderNode {
        self.sender_in("sender", cfg)
    }

    /// A sender in `<sub>/`, for tests with several nodes (e.g. `sender-plant2`).
    pub fn sender_in(&self, sub: &str, cfg: SenderConfig) -> SenderNode {
        let dir = self.path.join(sub);
        fs::create_dir_all(&dir).expect("create sender dir");
        let node = SenderNode {
            config_path: dir.join("sender.toml"),
            source_db: dir.join("plant.db"),
            work_dir: dir.join("swork"),
            log: dir.join("sender.log"),
            dir,
            root: self.path.clone(),
            cfg,
            service: None,
        };
        node.write_config();
        node
    }

    /// The last `n` lines of every `*.log` file in the workspace (service logs).
    pub fn logs(&self, n: usize) -> String {
        logs_under(&self.path, n)
    }

    /// Poll until `f` returns `Some`; on timeout panic with `what` and the log tails.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        wait_for_with(what, timeout, || self.logs(30), f)
    }

    /// Poll until `f` returns true; on timeout panic with `what` and the log tails.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        self.wait_for(what, timeout, || f().then_some(()))
    }

    /// Wait until `tx` has nothing pending, no unanswered batch and no queued snapshot,
    /// and `rx`'s target has recorded (applied or quarantined) every seq `tx` cut.
    /// Only meaningful once the writers of the source have stopped.
    pub fn wait_synced(&self, tx: &SenderNode, rx: &ReceiverNode, timeout: Duration) {
        self.wait_until(
            &format!("node {} to be caught up on the target", tx.cfg.node),
            timeout,
            || {
                let p = tx.progress();
                p.pending == 0
                    && p.unanswered == 0
                    && p.queued_snapshots == 0
                    && rx.last_seq(&tx.cfg.node) == p.last_cut
            },
        );
    }
}

fn logs_under(root: &Path, n: usize) -> String {
    let mut out = String::new();
    let mut files = Vec::new();
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(rd2) = fs::read_dir(&p) {
                    files.extend(rd2.flatten().map(|e| e.path()));
                }
            } else {
                files.push(p);
            }
        }
    }
    files.retain(|p| p.extension().is_some_and(|x| x == "log"));
    files.sort();
    for f in files {
        let _ = writeln!(out, "--- last {n} lines of {}", f.display());
        let _ = writeln!(out, "{}", tail(&f, n));
    }
    out
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("GAPSYNC_KEEP").is_some();
        if keep && let Some(d) = self.dir.take() {
            let p = d.keep();
            eprintln!("gapsync test workspace kept at {}", p.display());
        }
    }
}

/// The common single-node set-up: a workspace, a started receiver and a sender whose
/// source database has `schema` and capture installed. Fields drop in order (sender,
/// receiver, workspace), so processes are gone before the directory.
#[derive(Debug)]
pub struct Rig {
    pub tx: SenderNode,
    pub rx: ReceiverNode,
    pub ws: Workspace,
}

impl Rig {
    /// Workspace `name`, receiver started with defaults, sender from `cfg` (its
    /// `connect` is set to the receiver), `schema` run on the source, `install` done.
    /// Nothing is snapshotted and the sender service is not started.
    pub fn new(name: &str, cfg: SenderConfig, schema: &str) -> Rig {
        let ws = Workspace::new(name);
        let mut rx = ws.receiver(ReceiverConfig::default());
        rx.start();
        let tx = ws.sender(cfg.connect(rx.addr()));
        tx.source()
            .execute_batch(schema)
            .unwrap_or_else(|e| panic!("creating the source schema: {e}\n{schema}"));
        tx.install();
        Rig { tx, rx, ws }
    }

    /// [`Workspace::wait_synced`] for this rig's pair.
    pub fn wait_synced(&self, timeout: Duration) {
        self.ws.wait_synced(&self.tx, &self.rx, timeout);
    }

    /// [`assert_synced`] for this rig's pair.
    pub fn assert_synced(&self) -> (usize, usize) {
        assert_synced(&self.tx, &self.rx)
    }
}

// ------------------------------------------------------------------------ sender

/// What the sender's own tables say (read directly from the source database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderProgress {
    /// Tracking rows with `batch IS NULL`.
    pub pending: u64,
    /// Batches in state 'ready' (cut, not answered "applied").
    pub unanswered: u64,
    pub quarantined: u64,
    /// Queued snapshot requests.
    pub queued_snapshots: u64,
    /// Highest seq cut (0: none).
    pub last_cut: u64,
}

/// A row of the source's `_gapsync_batches`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub seq: u64,
    /// `changes` or `snapshot`.
    pub kind: String,
    pub file: String,
    pub statements: u64,
    /// Tracking rows the batch carries (a REPLACE's displaced-row markers make this
    /// differ from `statements`).
    pub changes: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// `ready`, `applied` or `quarantined`.
    pub state: String,
    pub attempts: u32,
    /// UTC time the batch was cut (RFC 3339).
    pub created: String,
}

/// One sender node: its directory, config, source database and (maybe) running service.
#[derive(Debug)]
pub struct SenderNode {
    pub cfg: SenderConfig,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub source_db: PathBuf,
    /// `[work] dir`: outbox/, archive/, quarantine/, audit/, state/.
    pub work_dir: PathBuf,
    /// stderr+stdout of `run`.
    pub log: PathBuf,
    root: PathBuf,
    service: Option<Service>,
}

impl SenderNode {
    /// (Re)write `sender.toml` from `self.cfg`.
    pub fn write_config(&self) {
        fs::write(
            &self.config_path,
            self.cfg.toml(&self.source_db, &self.work_dir),
        )
        .expect("write sender.toml");
    }

    /// Point the sender at a receiver address (rewrites the config).
    pub fn set_connect(&mut self, addr: &str) {
        self.cfg.connect = addr.to_owned();
        self.write_config();
    }

    /// A new connection to the source database (the plant's side).
    pub fn source(&self) -> Connection {
        open_db(&self.source_db)
    }

    /// Run `gapsync-sender -c sender.toml ARGS` to completion (120 s limit).
    pub fn exec(&self, args: &[&str]) -> CmdOutput {
        self.exec_timeout(args, secs(120))
    }

    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let cfg = self.config_path.display().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        run_command(&sender_bin(), &all, &self.dir, timeout)
    }

    /// `install` (must succeed).
    pub fn install(&self) -> CmdOutput {
        self.exec(&["install"]).expect_success()
    }

    /// `snapshot TABLE...` (empty: all tables); only queues (must succeed).
    pub fn snapshot(&self, tables: &[&str]) -> CmdOutput {
        let mut args = vec!["snapshot"];
        args.extend_from_slice(tables);
        self.exec(&args).expect_success()
    }

    /// `once` (must succeed).
    pub fn once(&self) -> CmdOutput {
        self.exec(&["once"]).expect_success()
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.exec(&["status", "--json"]).expect_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// Start `gapsync-sender run` in the background.
    pub fn start(&mut self) {
        assert!(
            self.service.is_none(),
            "sender {} already started",
            self.cfg.node
        );
        let cfg = self.config_path.display().to_string();
        self.service = Some(Service::spawn(
            &sender_bin(),
            &["-c", &cfg, "run"],
            &self.dir,
            &self.log,
        ));
    }

    /// Whether `run` was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        self.service.as_mut().is_some_and(|s| s.exited().is_none())
    }

    /// SIGTERM the service and wait (30 s) for it to exit; panics unless it exits 0.
    pub fn stop(&mut self) -> ExitStatus {
        let st = self.terminate(secs(30));
        assert!(
            st.success(),
            "sender {} exited with {st} after SIGTERM\n{}",
            self.cfg.node,
            tail(&self.log, 40)
        );
        st
    }

    /// SIGTERM the service and return its exit status (SIGKILL after `timeout`, then
    /// panic).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut svc = self.service.take().expect("sender not started");
        terminate(&mut svc, timeout, &self.log)
    }

    /// SIGKILL the service (a crash).
    pub fn kill(&mut self) -> ExitStatus {
        self.service.take().expect("sender not started").kill()
    }

    /// Wait for the service to exit by itself (e.g. a halt); None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = self
            .service
            .as_mut()
            .expect("sender not started")
            .wait_exit(timeout);
        if st.is_some() {
            self.service = None;
        }
        st
    }

    /// Pending / unanswered / queued counts and the last seq cut, read directly from the
    /// source database in one query.
    pub fn progress(&self) -> SenderProgress {
        let c = self.source();
        c.query_row(
            "SELECT (SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state='ready'), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state='quarantined'), \
                    (SELECT count(*) FROM _gapsync_requests), \
                    (SELECT coalesce(max(seq), 0) FROM _gapsync_batches)",
            [],
            |r| {
                Ok(SenderProgress {
                    pending: r.get::<_, i64>(0)? as u64,
                    unanswered: r.get::<_, i64>(1)? as u64,
                    quarantined: r.get::<_, i64>(2)? as u64,
                    queued_snapshots: r.get::<_, i64>(3)? as u64,
                    last_cut: r.get::<_, i64>(4)? as u64,
                })
            },
        )
        .unwrap_or_else(|e| panic!("reading sender progress (is it installed?): {e}"))
    }

    /// Every row of `_gapsync_batches`, by seq.
    pub fn batches(&self) -> Vec<BatchRow> {
        let c = self.source();
        let mut st = c
            .prepare(
                "SELECT seq, kind, file, statements, first_id, last_id, state, attempts, created, \
                 changes FROM _gapsync_batches ORDER BY seq",
            )
            .expect("prepare batches query");
        st.query_map([], |r| {
            Ok(BatchRow {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                file: r.get(2)?,
                statements: r.get::<_, i64>(3)? as u64,
                first_id: r.get(4)?,
                last_id: r.get(5)?,
                state: r.get(6)?,
                attempts: r.get(7)?,
                created: r.get(8)?,
                changes: r.get::<_, i64>(9)? as u64,
            })
        })
        .and_then(Iterator::collect)
        .expect("reading _gapsync_batches")
    }

    /// Batches of kind `changes` only.
    pub fn change_batches(&self) -> Vec<BatchRow> {
        self.batches()
            .into_iter()
            .filter(|b| b.kind == "changes")
            .collect()
    }

    /// Files in a work sub-directory (`outbox`, `archive`, `quarantine`), sorted.
    pub fn work_files(&self, sub: &str) -> Vec<PathBuf> {
        sorted_files(&self.work_dir.join(sub))
    }

    /// Log tail of this node's service.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// The whole log of this service ("" before it was written).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The workspace's log tails (all services), for messages.
    pub fn all_logs(&self) -> String {
        logs_under(&self.root, 30)
    }
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn terminate(svc: &mut Service, timeout: Duration, log: &Path) -> ExitStatus {
    if let Some(st) = svc.exited() {
        return st;
    }
    sigterm(svc.child.id());
    match svc.wait_exit(timeout) {
        Some(st) => st,
        None => {
            svc.kill();
            panic!(
                "`{}` did not exit within {timeout:?} of SIGTERM\n{}",
                svc.what,
                tail(log, 40)
            );
        }
    }
}

// ------------------------------------------------------------------------ receiver

/// A row of the target's `_gapsync_ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub node: String,
    pub seq: u64,
    pub sha256: String,
    pub file: String,
    pub statements: u64,
}

/// The receiver: its directory, config, target database and (maybe) running service.
#[derive(Debug)]
pub struct ReceiverNode {
    pub cfg: ReceiverConfig,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub target_db: PathBuf,
    /// `[work] dir`: spool/, quarantine/, audit/, state/.
    pub work_dir: PathBuf,
    pub log: PathBuf,
    root: PathBuf,
    addr: Option<SocketAddr>,
    addr_text: String,
    service: Option<Service>,
}

impl ReceiverNode {
    /// (Re)write `receiver.toml` from `self.cfg`.
    pub fn write_config(&self) {
        fs::write(
            &self.config_path,
            self.cfg.toml(&self.target_db, &self.work_dir),
        )
        .expect("write receiver.toml");
    }

    /// Start `gapsync-receiver run` and wait (20 s) until it listens; returns the address.
    pub fn start(&mut self) -> SocketAddr {
        assert!(self.service.is_none(), "receiver already started");
        let addr_file = self.work_dir.join("state").join("listen.addr");
        let _ = fs::remove_file(&addr_file);
        let cfg = self.config_path.display().to_string();
        let mut svc = Service::spawn(&receiver_bin(), &["-c", &cfg, "run"], &self.dir, &self.log);
        let log = self.log.clone();
        let addr = wait_for_with(
            "the receiver to write state/listen.addr",
            secs(20),
            || tail(&log, 40),
            || {
                if let Some(st) = svc.exited() {
                    panic!("receiver exited with {st} at start\n{}", tail(&log, 40));
                }
                let text = fs::read_to_string(&addr_file).ok()?;
                if !text.ends_with('\n') {
                    return None;
                }
                text.trim().parse::<SocketAddr>().ok()
            },
        );
        self.service = Some(svc);
        self.addr = Some(addr);
        self.addr_text = addr.to_string();
        addr
    }

    /// The address the running receiver listens on, as `host:port`.
    pub fn addr(&self) -> &str {
        assert!(!self.addr_text.is_empty(), "receiver not started");
        &self.addr_text
    }

    /// Reuse the current port on the next [`start`](Self::start) (for restarts: the
    /// senders' configs keep pointing at it).
    pub fn pin_port(&mut self) {
        let a = self.addr.expect("receiver not started");
        self.cfg.listen = a.to_string();
        self.write_config();
    }

    pub fn is_running(&mut self) -> bool {
        self.service.as_mut().is_some_and(|s| s.exited().is_none())
    }

    /// SIGTERM the service and wait (30 s); panics unless it exits 0.
    pub fn stop(&mut self) -> ExitStatus {
        let mut svc = self.service.take().expect("receiver not started");
        let st = terminate(&mut svc, secs(30), &self.log);
        assert!(
            st.success(),
            "receiver exited with {st} after SIGTERM\n{}",
            tail(&self.log, 40)
        );
        st
    }

    /// SIGKILL the service (a crash).
    pub fn kill(&mut self) -> ExitStatus {
        self.service.take().expect("receiver not started").kill()
    }

    /// A new connection to the target database.
    pub fn target(&self) -> Connection {
        open_db(&self.target_db)
    }

    /// Run `gapsync-receiver -c receiver.toml ARGS` to completion (120 s limit).
    pub fn exec(&self, args: &[&str]) -> CmdOutput {
        let cfg = self.config_path.display().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        run_command(&receiver_bin(), &all, &self.dir, secs(120))
    }

    /// `apply FILE...` (the result is returned, not checked).
    pub fn apply(&self, files: &[&Path]) -> CmdOutput {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut args = vec!["apply"];
        args.extend(names.iter().map(String::as_str));
        self.exec(&args)
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.exec(&["status", "--json"]).expect_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// The ledger rows of `node`, by seq (empty if the target has no ledger yet).
    pub fn ledger(&self, node: &str) -> Vec<LedgerRow> {
        if !self.target_db.exists() {
            return Vec::new();
        }
        let c = self.target();
        let Ok(mut st) = c.prepare(
            "SELECT node, seq, sha256, file, statements FROM _gapsync_ledger \
             WHERE node=?1 ORDER BY seq",
        ) else {
            return Vec::new();
        };
        st.query_map([node], |r| {
            Ok(LedgerRow {
                node: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                sha256: r.get(2)?,
                file: r.get(3)?,
                statements: r.get::<_, i64>(4)? as u64,
            })
        })
        .and_then(Iterator::collect)
        .expect("reading _gapsync_ledger")
    }

    /// The seqs of `node` in the ledger, ascending.
    pub fn ledger_seqs(&self, node: &str) -> Vec<u64> {
        self.ledger(node).into_iter().map(|r| r.seq).collect()
    }

    /// The seqs of `node` in `_gapsync_quarantine`, ascending.
    pub fn quarantined_seqs(&self, node: &str) -> Vec<u64> {
        if !self.target_db.exists() {
            return Vec::new();
        }
        let c = self.target();
        let Ok(mut st) =
            c.prepare("SELECT seq FROM _gapsync_quarantine WHERE node=?1 ORDER BY seq")
        else {
            return Vec::new();
        };
        st.query_map([node], |r| Ok(r.get::<_, i64>(0)? as u64))
            .and_then(Iterator::collect)
            .expect("reading _gapsync_quarantine")
    }

    /// Highest seq of `node` the target recorded, applied or quarantined (0: none).
    pub fn last_seq(&self, node: &str) -> u64 {
        let a = self.ledger_seqs(node).last().copied().unwrap_or(0);
        let q = self.quarantined_seqs(node).last().copied().unwrap_or(0);
        a.max(q)
    }

    /// Files in a work sub-directory (`spool`, `quarantine`), sorted.
    pub fn work_files(&self, sub: &str) -> Vec<PathBuf> {
        sorted_files(&self.work_dir.join(sub))
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// The whole log of this service ("" before it was written).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The workspace's log tails (all services), for messages.
    pub fn all_logs(&self) -> String {
        logs_under(&self.root, 30)
    }
}

/// Panic unless `seqs` is exactly `1..=seqs.len()`.
pub fn assert_contiguous(node: &str, seqs: &[u64]) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "ledger seqs of node {node} are not exactly 1..=N"
    );
}

// ------------------------------------------------------------------------ comparing

/// Exact equality of SQLite values: same storage class and same value; reals compare by
/// bit pattern (so `-0.0 != 0.0`).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

/// A value with its storage class, for messages: `integer 5`, `real 0.1 (0x3fb9...)`,
/// `text "a\nb"`, `blob x'00ff' (2 bytes)`, `NULL`.
pub fn describe(v: &Value) -> String {
    fn cut(s: String, max: usize) -> String {
        match s.char_indices().nth(max) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s,
        }
    }
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) => format!("integer {i}"),
        Value::Real(r) => format!("real {r:?} (bits {:#018x})", r.to_bits()),
        Value::Text(t) => format!("text {}", cut(format!("{t:?}"), 120)),
        Value::Blob(b) => {
            let hex: String = b.iter().take(40).map(|x| format!("{x:02x}")).collect();
            format!(
                "blob x'{hex}{}' ({} bytes)",
                if b.len() > 40 { "..." } else { "" },
                b.len()
            )
        }
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Column names of a table, in order (empty if it does not exist).
pub fn table_columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare pragma_table_info");
    st.query_map([table], |r| r.get(0))
        .and_then(Iterator::collect)
        .expect("pragma_table_info")
}

fn primary_key(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .expect("prepare pragma_table_info");
    st.query_map([table], |r| r.get(0))
        .and_then(Iterator::collect)
        .expect("pragma_table_info")
}

/// Every row of `table` (the given columns, ordered by `order`), as typed values.
pub fn read_rows(
    conn: &Connection,
    table: &str,
    cols: &[String],
    order: &[String],
) -> rusqlite::Result<Vec<Vec<Value>>> {
    let q = |v: &[String]| {
        v.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        q(cols),
        quote_ident(table),
        q(order)
    );
    let mut st = conn.prepare(&sql)?;
    let n = cols.len();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
        .collect()
}

/// Compare a source table with its target table row by row, with typed values.
///
/// `renames` maps source column names to target column names where they differ; every
/// other source column is compared with the target column of the same name. Rows are
/// read ordered by the source table's primary key (mapped), or by every column when it
/// has none (use [`compare_tables_by`] for an explicit key). The target table must have
/// exactly the mapped columns. Returns the number of rows, or the first difference.
pub fn compare_tables(
    source_db: &Path,
    src_table: &str,
    target_db: &Path,
    dst_table: &str,
    renames: &[(&str, &str)],
) -> Result<usize, String> {
    compare_tables_by(source_db, src_table, target_db, dst_table, renames, &[])
}

/// [`compare_tables`] ordered by `key` (source column names; empty: primary key).
pub fn compare_tables_by(
    source_db: &Path,
    src_table: &str,
    target_db: &Path,
    dst_table: &str,
    renames: &[(&str, &str)],
    key: &[&str],
) -> Result<usize, String> {
    let src = open_db(source_db);
    let dst = open_db(target_db);
    let src_cols = table_columns(&src, src_table);
    if src_cols.is_empty() {
        return Err(format!("source table {src_table:?} does not exist"));
    }
    let map = |c: &String| -> String {
        renames
            .iter()
            .find(|(from, _)| from == c)
            .map(|(_, to)| (*to).to_owned())
            .unwrap_or_else(|| c.clone())
    };
    let dst_cols: Vec<String> = src_cols.iter().map(map).collect();
    let mut have = table_columns(&dst, dst_table);
    if have.is_empty() {
        return Err(format!("target table {dst_table:?} does not exist"));
    }
    let mut want = dst_cols.clone();
    have.sort();
    want.sort();
    if have != want {
        return Err(format!(
            "target table {dst_table:?} has columns {have:?}, expected {want:?}"
        ));
    }
    let src_key: Vec<String> = if !key.is_empty() {
        key.iter().map(|k| (*k).to_owned()).collect()
    } else {
        let pk = primary_key(&src, src_table);
        if pk.is_empty() { src_cols.clone() } else { pk }
    };
    let dst_key: Vec<String> = src_key.iter().map(map).collect();
    let a = read_rows(&src, src_table, &src_cols, &src_key)
        .map_err(|e| format!("reading source {src_table}: {e}"))?;
    let b = read_rows(&dst, dst_table, &dst_cols, &dst_key)
        .map_err(|e| format!("reading target {dst_table}: {e}"))?;
    let key_idx: Vec<usize> = src_key
        .iter()
        .filter_map(|k| src_cols.iter().position(|c| c == k))
        .collect();
    let key_of = |row: &[Value]| -> String {
        key_idx
            .iter()
            .map(|&i| format!("{} = {}", src_cols[i], describe(&row[i])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, (ra, rb)) in a.iter().zip(&b).enumerate() {
        for (j, (va, vb)) in ra.iter().zip(rb).enumerate() {
            if !same_value(va, vb) {
                return Err(format!(
                    "{src_table} -> {dst_table}: row #{i} differs in column {} -> {}: source \
                     has {} but target has {}\n  source row key: {}\n  target row key: {}",
                    src_cols[j],
                    dst_cols[j],
                    describe(va),
                    describe(vb),
                    key_of(ra),
                    key_of(rb)
                ));
            }
        }
    }
    if a.len() != b.len() {
        let (longer, side) = if a.len() > b.len() {
            (&a, "source")
        } else {
            (&b, "target")
        };
        let extra = &longer[a.len().min(b.len())];
        return Err(format!(
            "{src_table} -> {dst_table}: source has {} rows, target has {}; first row only in \
             the {side}: {}",
            a.len(),
            b.len(),
            key_of(extra)
        ));
    }
    Ok(a.len())
}

/// Compare every table configured on `tx` with its target on `rx` (renames and keys from
/// the config). Returns (tables, rows) or the first difference.
pub fn compare_all(tx: &SenderNode, rx: &ReceiverNode) -> Result<(usize, usize), String> {
    let mut rows = 0;
    for t in &tx.cfg.tables {
        let renames: Vec<(&str, &str)> = t
            .rename
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let key: Vec<&str> = t
            .key
            .as_ref()
            .map(|k| k.iter().map(String::as_str).collect())
            .unwrap_or_default();
        rows += compare_tables_by(
            &tx.source_db,
            &t.source,
            &rx.target_db,
            t.target_name(),
            &renames,
            &key,
        )?;
    }
    Ok((tx.cfg.tables.len(), rows))
}

/// [`compare_all`], panicking with the difference and the log tails.
pub fn assert_synced(tx: &SenderNode, rx: &ReceiverNode) -> (usize, usize) {
    match compare_all(tx, rx) {
        Ok(v) => v,
        Err(e) => panic!(
            "source and target differ (node {}): {e}\n{}",
            tx.cfg.node,
            tx.all_logs()
        ),
    }
}

// ------------------------------------------------------------------------ workloads

/// A small deterministic PRNG (xorshift64*), so workloads are reproducible by seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A thread writing to a source database until stopped: one call of `op` per step,
/// with `pause` between steps. `op` gets the connection, the thread's RNG and the step
/// number; SQLite "busy" errors are retried, any other error fails the writer.
#[derive(Debug)]
pub struct BackgroundWriter {
    stop: Arc<AtomicBool>,
    steps: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<u64, String>>>,
}

impl BackgroundWriter {
    pub fn start<F>(db: &Path, seed: u64, pause: Duration, mut op: F) -> BackgroundWriter
    where
        F: FnMut(&Connection, &mut Rng, u64) -> rusqlite::Result<()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicU64::new(0));
        let db = db.to_path_buf();
        let handle = {
            let stop = Arc::clone(&stop);
            let steps = Arc::clone(&steps);
            std::thread::spawn(move || {
                let conn = open_db(&db);
                let mut rng = Rng::new(seed);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    match op(&conn, &mut rng, n) {
                        Ok(()) => {
                            n += 1;
                            steps.store(n, Ordering::SeqCst);
                        }
                        Err(rusqlite::Error::SqliteFailure(f, _))
                            if matches!(
                                f.code,
                                rusqlite::ErrorCode::DatabaseBusy
                                    | rusqlite::ErrorCode::DatabaseLocked
                            ) =>
                        {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                        Err(e) => return Err(format!("writer step {n}: {e}")),
                    }
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                Ok(n)
            })
        };
        BackgroundWriter {
            stop,
            steps,
            handle: Some(handle),
        }
    }

    /// [`start`](Self::start) at a steady rate: step n is due at start + n * `period`,
    /// whatever a step costs (a late step is not waited for).
    pub fn paced<F>(db: &Path, seed: u64, period: Duration, mut op: F) -> BackgroundWriter
    where
        F: FnMut(&Connection, &mut Rng, u64) -> rusqlite::Result<()> + Send + 'static,
    {
        let t0 = Instant::now();
        BackgroundWriter::start(db, seed, Duration::ZERO, move |c, rng, n| {
            let due = t0 + period.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            op(c, rng, n)
        })
    }

    /// Steps completed so far.
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    /// Stop, join, and return the number of steps; panics if the writer failed.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().expect("writer handle");
        match h.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("background writer failed: {e}"),
            Err(_) => panic!("background writer panicked"),
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ------------------------------------------------------------------------ audit record

/// Every line of the audit record under a work directory (`<work>/audit/audit-*.jsonl`,
/// files in name order, i.e. by month), parsed. Empty if there is none yet; panics on a
/// line that is not a JSON object.
pub fn read_audit(work_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in sorted_files(&work_dir.join("audit")) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !(name.starts_with("audit-") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{} line {}: not JSON ({e}): {line}", f.display(), i + 1)
            });
            assert!(
                v.is_object(),
                "{} line {}: not an object: {line}",
                f.display(),
                i + 1
            );
            out.push(v);
        }
    }
    out
}

/// The `event` fields of the audit lines about `seq` (any node), in record order.
pub fn audit_events_of(lines: &[serde_json::Value], seq: u64) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["seq"].as_u64() == Some(seq))
        .filter_map(|l| l["event"].as_str().map(str::to_owned))
        .collect()
}

impl SenderNode {
    /// The sender's audit record ([`read_audit`] of its work directory).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_audit(&self.work_dir)
    }

    /// Tracking rows (`_gapsync_changes`) that batch `seq` carries.
    pub fn tracking_rows_of(&self, seq: u64) -> u64 {
        self.source()
            .query_row(
                "SELECT count(*) FROM _gapsync_changes WHERE batch = ?1",
                [seq as i64],
                |r| r.get::<_, i64>(0),
            )
            .expect("counting tracking rows") as u64
    }

    /// Every change captured so far (the AUTOINCREMENT counter of `_gapsync_changes`;
    /// tracking rows of applied batches are deleted, the counter is not).
    pub fn captured_changes(&self) -> u64 {
        self.source()
            .query_row(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence \
                 WHERE name = '_gapsync_changes'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .expect("reading sqlite_sequence") as u64
    }

    /// The batch row of `seq` (panics if there is none).
    pub fn batch(&self, seq: u64) -> BatchRow {
        self.batches()
            .into_iter()
            .find(|b| b.seq == seq)
            .unwrap_or_else(|| panic!("node {} has no batch {seq}", self.cfg.node))
    }
}

impl ReceiverNode {
    /// The receiver's audit record ([`read_audit`] of its work directory).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_audit(&self.work_dir)
    }
}

// ------------------------------------------------------------------------ fake receiver

/// Frame layout facts a fake receiver needs (see `protocol/src/lib.rs`).
pub mod frame {
    /// Length of the fixed frame header.
    pub const HEADER_LEN: usize = 74;
    pub const HELLO: u8 = 1;
    pub const HEARTBEAT: u8 = 2;
    pub const DATA: u8 = 3;
    pub const END: u8 = 4;
    pub const RESULT: u8 = 5;

    /// Upper-case name of a frame type code.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            HELLO => "HELLO",
            HEARTBEAT => "HEARTBEAT",
            DATA => "DATA",
            END => "END",
            RESULT => "RESULT",
            _ => "?",
        }
    }
}

/// A frame as a [`FakeReceiver`] read it (header fields only; the checksums are not
/// checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFrame {
    /// Connection number (0, 1, ... in accept order).
    pub conn: u64,
    /// Frame number within its connection (0 is the HELLO).
    pub index: u64,
    /// Type code (byte 4), see [`frame`].
    pub kind: u8,
    pub seq: u64,
    pub offset: u64,
    pub payload_len: u32,
}

/// The answer function of a [`FakeReceiver`]: gets the frame and, when proxying, the
/// real receiver's answer byte (None: no answer, it closed or timed out); returns the
/// bytes to write back (empty: no answer, the connection stays open) or None to close
/// the connection.
pub type FakeAnswer = dyn Fn(&FakeFrame, Option<u8>) -> Option<Vec<u8>> + Send + Sync;

/// A misbehaving receiver for link tests: a `TcpListener` on `127.0.0.1:0` whose
/// connection threads read whole frames (74-byte header, payload length at bytes
/// 54..58, big-endian) and write whatever the answer function returns for each frame:
/// any bytes (a real answer, garbage, a flood), nothing at all (the connection stays
/// open and reading: the sender sees a timeout), or close the connection. Every frame
/// read is recorded.
///
/// [`FakeReceiver::proxy`] puts it in front of a real receiver (a gap that garbles
/// answers): each frame is forwarded, the real answer byte read, and the answer
/// function decides what the sender gets.
///
/// Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FakeReceiver {
    addr: String,
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<FakeFrame>>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl FakeReceiver {
    /// Listen and serve until dropped; `answer(frame)`: the bytes written after each
    /// frame (empty: no answer), None: close the connection.
    pub fn start<F>(answer: F) -> FakeReceiver
    where
        F: Fn(&FakeFrame) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Self::serve(
            None,
            Arc::new(move |f: &FakeFrame, _: Option<u8>| answer(f)),
        )
    }

    /// Forward every connection to the real receiver at `upstream`; `answer(frame,
    /// real answer)` decides what the sender gets (see [`FakeAnswer`]).
    pub fn proxy<F>(upstream: &str, answer: F) -> FakeReceiver
    where
        F: Fn(&FakeFrame, Option<u8>) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Self::serve(Some(upstream.to_owned()), Arc::new(answer))
    }

    fn serve(upstream: Option<String>, answer: Arc<FakeAnswer>) -> FakeReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake receiver: bind");
        let addr = listener
            .local_addr()
            .expect("fake receiver: local_addr")
            .to_string();
        listener
            .set_nonblocking(true)
            .expect("fake receiver: set_nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, frames, conns) =
                (Arc::clone(&stop), Arc::clone(&frames), Arc::clone(&conns));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(ms(10));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let up = match &upstream {
                        None => None,
                        Some(a) => match TcpStream::connect(a) {
                            Ok(u) => Some(u),
                            Err(_) => continue, // receiver down: the sender sees a close
                        },
                    };
                    if let Ok(mut all) = conns.lock() {
                        all.extend(stream.try_clone().ok());
                        all.extend(up.as_ref().and_then(|u| u.try_clone().ok()));
                    }
                    let (frames, answer) = (Arc::clone(&frames), Arc::clone(&answer));
                    let conn = n;
                    n += 1;
                    std::thread::spawn(move || {
                        fake_serve(stream, up, conn, &frames, answer.as_ref());
                    });
                }
            })
        };
        FakeReceiver {
            addr,
            stop,
            frames,
            conns,
            accept: Some(accept),
        }
    }

    /// `host:port` to put in the sender's `[link] connect`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every frame read so far, in arrival order.
    pub fn frames(&self) -> Vec<FakeFrame> {
        self.frames.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// How many frames of type `kind` were read.
    pub fn count(&self, kind: u8) -> usize {
        self.frames().iter().filter(|f| f.kind == kind).count()
    }

    /// The frames read, as `conn:TYPE(seq)` words, for messages.
    pub fn describe(&self) -> String {
        self.frames()
            .iter()
            .map(|f| format!("{}:{}({})", f.conn, frame::name(f.kind), f.seq))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn fake_serve(
    mut stream: TcpStream,
    mut upstream: Option<TcpStream>,
    conn: u64,
    frames: &Mutex<Vec<FakeFrame>>,
    answer: &FakeAnswer,
) {
    let mut index = 0u64;
    let mut header = [0u8; frame::HEADER_LEN];
    loop {
        if stream.read_exact(&mut header).is_err() {
            break;
        }
        let be = |r: std::ops::Range<usize>| {
            header[r]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        let len = be(54..58);
        if len > 64 << 20 {
            break; // not a gapsync frame
        }
        let mut payload = vec![0u8; len as usize];
        if stream.read_exact(&mut payload).is_err() {
            break;
        }
        let f = FakeFrame {
            conn,
            index,
            kind: header[4],
            seq: be(38..46),
            offset: be(46..54),
            payload_len: len as u32,
        };
        index += 1;
        if let Ok(mut all) = frames.lock() {
            all.push(f.clone());
        }
        let real = upstream.as_mut().and_then(|u| {
            let mut b = [0u8; 1];
            let ok = u.write_all(&header).is_ok()
                && u.write_all(&payload).is_ok()
                && u.set_read_timeout(Some(secs(300))).is_ok()
                && u.read_exact(&mut b).is_ok();
            ok.then_some(b[0])
        });
        match answer(&f, real) {
            None => break,
            Some(reply) => {
                if !reply.is_empty()
                    && stream
                        .write_all(&reply)
                        .and_then(|()| stream.flush())
                        .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    if let Some(u) = upstream {
        let _ = u.shutdown(Shutdown::Both);
    }
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(all) = self.conns.lock() {
            for s in all.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

// ------------------------------------------------------------------------ TCP proxy

/// A plain TCP forwarder on `127.0.0.1:<port>` to an upstream address (e.g. a database
/// server between the receiver and its target), with an outage switch:
/// [`cut`](TcpProxy::cut) closes the listening socket (new connections are refused)
/// and every forwarded connection (both ends see the connection end at once);
/// [`restore`](TcpProxy::restore) listens on the same port again.
///
/// Dropping it cuts everything.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    inner: Arc<ProxyInner>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct ProxyInner {
    upstream: String,
    stop: AtomicBool,
    listener: Mutex<Option<TcpListener>>,
    conns: Mutex<Vec<TcpStream>>,
    accepted: AtomicU64,
}

impl TcpProxy {
    /// Listen on a free port of 127.0.0.1 and forward every connection to `upstream`.
    pub fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let addr = listener.local_addr().expect("proxy: local_addr");
        listener
            .set_nonblocking(true)
            .expect("proxy: set_nonblocking");
        let inner = Arc::new(ProxyInner {
            upstream: upstream.to_owned(),
            stop: AtomicBool::new(false),
            listener: Mutex::new(Some(listener)),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let accept = {
            let inner = Arc::clone(&inner);
            std::thread::spawn(move || proxy_accept_loop(&inner))
        };
        TcpProxy {
            addr,
            inner,
            accept: Some(accept),
        }
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted (and forwarded) so far.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Outage: stop listening (connection attempts are refused) and close every
    /// forwarded connection, both ends.
    pub fn cut(&self) {
        if let Ok(mut l) = self.inner.listener.lock() {
            l.take();
        }
        if let Ok(mut all) = self.inner.conns.lock() {
            for s in all.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// End of the outage: listen on the same port again.
    pub fn restore(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if start.elapsed() < secs(5) => std::thread::sleep(ms(50)),
                Err(e) => panic!("proxy: cannot listen on {} again: {e}", self.addr),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("proxy: set_nonblocking");
        if let Ok(mut l) = self.inner.listener.lock() {
            *l = Some(listener);
        }
    }
}

fn proxy_accept_loop(inner: &ProxyInner) {
    while !inner.stop.load(Ordering::SeqCst) {
        let accepted = match inner.listener.lock() {
            Ok(l) => l.as_ref().map(TcpListener::accept),
            Err(_) => return,
        };
        let Some(Ok((client, _))) = accepted else {
            std::thread::sleep(ms(5));
            continue;
        };
        let _ = client.set_nonblocking(false);
        let Ok(up) = inner
            .upstream
            .parse::<SocketAddr>()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|a| TcpStream::connect_timeout(&a, secs(5)))
        else {
            continue; // upstream down: the client sees its connection closed
        };
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let pairs = (
            client.try_clone(),
            up.try_clone(),
            client.try_clone(),
            up.try_clone(),
        );
        let (Ok(c_read), Ok(u_write), Ok(c_write), Ok(u_read)) = pairs else {
            continue;
        };
        if let Ok(mut all) = inner.conns.lock() {
            all.push(client);
            all.push(up);
        }
        inner.accepted.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || proxy_pump(c_read, u_write));
        std::thread::spawn(move || proxy_pump(u_read, c_write));
    }
}

fn proxy_pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Schema of the plant-like tables used by the demo and several tests.
pub mod plant {
    use super::Rng;
    use rusqlite::{Connection, params};

    /// `meter_reading(id INTEGER PRIMARY KEY, meter TEXT, value REAL, quality INTEGER,
    /// at TEXT)`.
    pub const METER_READING: &str = "CREATE TABLE meter_reading(id INTEGER PRIMARY KEY, \
        meter TEXT NOT NULL, value REAL, quality INTEGER, at TEXT)";
    /// `breaker_state(breaker TEXT PRIMARY KEY, closed INTEGER, changed_at TEXT)`.
    pub const BREAKER_STATE: &str = "CREATE TABLE breaker_state(breaker TEXT PRIMARY KEY, \
        closed INTEGER NOT NULL, changed_at TEXT)";
    /// `alarm(id INTEGER PRIMARY KEY, text TEXT, raw BLOB)`.
    pub const ALARM: &str = "CREATE TABLE alarm(id INTEGER PRIMARY KEY, text TEXT, raw BLOB)";

    /// Meter names (Chinese, as on real plants).
    pub const METERS: &[&str] = &[
        "1号主变 高压侧",
        "1号主变 低压侧",
        "2号主变 高压侧",
        "#3机组 出口",
        "220kV 母线 A相",
        "厂用电 6kV I段",
    ];

    /// Breaker names.
    pub const BREAKERS: &[&str] = &[
        "2201开关",
        "2202开关",
        "2211开关",
        "6kV 1A进线",
        "6kV 1B进线",
        "#1机出口断路器",
        "母联2212",
        "kV'quote\"breaker",
    ];

    /// Alarm texts.
    pub const ALARMS: &[&str] = &[
        "母线电压越限",
        "主变油温高 (85°C)",
        "通信中断: RTU 3",
        "line1\nline2 多行告警",
        "quote ' and backslash \\ 🔥",
    ];

    /// A timestamp-like text for step `n`.
    pub fn at(n: u64) -> String {
        format!(
            "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
            (n / 3600) % 24,
            (n / 60) % 60,
            n % 60,
            n % 1000
        )
    }

    /// Insert `n` meter readings with ids `first..first+n` in one transaction.
    pub fn seed_meter_readings(conn: &Connection, first: i64, n: i64, rng: &mut Rng) {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut st = tx
                .prepare("INSERT INTO meter_reading(id, meter, value, quality, at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .expect("prepare");
            for id in first..first + n {
                st.execute(params![
                    id,
                    *rng.pick(METERS),
                    rng.unit() * 1000.0 - 100.0,
                    rng.range(0, 3),
                    at(id as u64)
                ])
                .expect("insert meter_reading");
            }
        }
        tx.commit().expect("commit");
    }

    /// One random change to `meter_reading`: insert (new id from `next_id`), update of
    /// value/quality, primary-key change, or delete; ids are picked in `lo..=hi` for
    /// updates and deletes (missing ids simply change nothing).
    pub fn meter_step(
        conn: &Connection,
        rng: &mut Rng,
        next_id: &mut i64,
        lo: i64,
        hi: i64,
    ) -> rusqlite::Result<()> {
        let pick = rng.range(lo, hi);
        match rng.below(100) {
            0..=44 => {
                let id = *next_id;
                *next_id += 1;
                conn.execute(
                    "INSERT INTO meter_reading(id, meter, value, quality, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, *rng.pick(METERS), rng.unit() * 500.0, rng.range(0, 3), at(id as u64)],
                )?;
            }
            45..=79 => {
                conn.execute(
                    "UPDATE meter_reading SET value = ?2, quality = ?3 WHERE id = ?1",
                    params![pick, rng.unit() * 500.0, rng.range(0, 3)],
                )?;
            }
            80..=87 => {
                let id = *next_id;
                *next_id += 1;
                conn.execute(
                    "UPDATE meter_reading SET id = ?2 WHERE id = ?1",
                    params![pick, id],
                )?;
            }
            _ => {
                conn.execute("DELETE FROM meter_reading WHERE id = ?1", params![pick])?;
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------ gap emulator

/// A `gapsync-gap` process (see [`gap`]) between a sender and a receiver; killed on drop.
#[derive(Debug)]
pub struct GapNode {
    service: Service,
    addr: String,
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
