//! Config builders: the TOML the services are started with.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::*;

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

    pub(crate) fn toml(&self) -> String {
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
    /// `[link] dir`: publish to this folder instead of `connect` (a folder link).
    pub folder: Option<PathBuf>,
    /// `[link] manifest_every` (with `folder`; None: not written, the default 0).
    pub manifest_every: Option<Duration>,
    /// `[receipts] trust`: receiver public key lines.
    pub receipts_trust: Vec<String>,
    /// `[alarm]` entries (`lag`, `lag_critical`, `silence`, `silence_critical`).
    pub alarm: Vec<(&'static str, Duration)>,
    /// `[metrics] textfile`.
    pub metrics_textfile: Option<PathBuf>,
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
            folder: None,
            manifest_every: None,
            receipts_trust: Vec::new(),
            alarm: Vec::new(),
            metrics_textfile: None,
        }
    }

    /// A folder link: `[link] dir` instead of `connect`.
    pub fn folder(mut self, dir: &Path) -> SenderConfig {
        self.folder = Some(dir.to_owned());
        self
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
        match &self.folder {
            Some(d) => {
                let _ = writeln!(s, "[link]\ndir = {}", toml_str(&d.display().to_string()));
                if let Some(e) = self.manifest_every {
                    let _ = writeln!(s, "manifest_every = {}", toml_dur(e));
                }
            }
            None => {
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
            }
        }
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
        if let Some(t) = &self.metrics_textfile {
            let _ = writeln!(
                s,
                "\n[metrics]\ntextfile = {}",
                toml_str(&t.display().to_string())
            );
        }
        if !self.alarm.is_empty() {
            s.push_str("\n[alarm]\n");
            for (k, d) in &self.alarm {
                let _ = writeln!(s, "{k} = {}", toml_dur(*d));
            }
        }
        if !self.receipts_trust.is_empty() {
            let lines: Vec<String> = self.receipts_trust.iter().map(|l| toml_str(l)).collect();
            let _ = writeln!(s, "\n[receipts]\ntrust = [{}]", lines.join(", "));
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
    /// `[target] create` (true: the receiver may create its SQLite target, as on a
    /// first install; false: a missing target is an error).
    pub create_target: bool,
    /// `[link] id` (None: not written, the default "gapsync-receiver").
    pub id: Option<String>,
    /// `[link] hello_timeout` (None: not written, the default 10 s).
    pub hello_timeout: Option<Duration>,
    /// `[link] hello_max_skew` (None: not written, the default 5 min).
    pub hello_max_skew: Option<Duration>,
    /// `[link] dir`: watch this inbox instead of `listen` (a folder link).
    pub inbox: Option<PathBuf>,
    /// `[link] rescan` and `gap_alarm` (with `inbox`; None: not written).
    pub rescan: Option<Duration>,
    pub gap_alarm: Option<Duration>,
    /// `[receipts] dir` and `key`.
    pub receipts_dir: Option<PathBuf>,
    pub receipts_key: Option<PathBuf>,
    /// `[metrics] listen` and `textfile`.
    pub metrics_listen: Option<String>,
    pub metrics_textfile: Option<PathBuf>,
    /// `[alarm]` entries (`silence`, `silence_critical`).
    pub alarm: Vec<(&'static str, Duration)>,
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
            create_target: true,
            id: None,
            hello_timeout: None,
            hello_max_skew: None,
            inbox: None,
            rescan: None,
            gap_alarm: None,
            receipts_dir: None,
            receipts_key: None,
            metrics_listen: None,
            metrics_textfile: None,
            alarm: Vec::new(),
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

    /// A folder link: `[link] dir` (the inbox) instead of `listen`.
    pub fn inbox(mut self, dir: &Path) -> ReceiverConfig {
        self.inbox = Some(dir.to_owned());
        self
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
        if self.create_target {
            s.push_str("create = true\n");
        }
        if let Some(d) = &self.target_dialect {
            let _ = writeln!(s, "dialect = {}", toml_str(d));
        }
        match &self.inbox {
            Some(d) => {
                let _ = writeln!(s, "\n[link]\ndir = {}", toml_str(&d.display().to_string()));
                if let Some(r) = self.rescan {
                    let _ = writeln!(s, "rescan = {}", toml_dur(r));
                }
                if let Some(g) = self.gap_alarm {
                    let _ = writeln!(s, "gap_alarm = {}", toml_dur(g));
                }
            }
            None => {
                let _ = write!(
                    s,
                    "\n[link]\nlisten = {}\nresult_wait = {}\n",
                    toml_str(&self.listen),
                    toml_dur(self.result_wait)
                );
            }
        }
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
        if !self.alarm.is_empty() {
            s.push_str("\n[alarm]\n");
            for (k, d) in &self.alarm {
                let _ = writeln!(s, "{k} = {}", toml_dur(*d));
            }
        }
        if self.metrics_listen.is_some() || self.metrics_textfile.is_some() {
            s.push_str("\n[metrics]\n");
            if let Some(l) = &self.metrics_listen {
                let _ = writeln!(s, "listen = {}", toml_str(l));
            }
            if let Some(t) = &self.metrics_textfile {
                let _ = writeln!(s, "textfile = {}", toml_str(&t.display().to_string()));
            }
        }
        if let Some(d) = &self.receipts_dir {
            let _ = writeln!(
                s,
                "\n[receipts]\ndir = {}",
                toml_str(&d.display().to_string())
            );
            if let Some(k) = &self.receipts_key {
                let _ = writeln!(s, "key = {}", toml_str(&k.display().to_string()));
            }
        }
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
