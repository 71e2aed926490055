//! Harness for the end-to-end tests against real database servers through ODBC (feature
//! `odbc`): PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306, through the
//! unixODBC drivers "PostgreSQL Unicode" and "MariaDB Unicode".
//!
//! - [`Server`]: which server, its connection strings, whether it is reachable
//!   ([`Server::require`]: a test on an unreachable server is skipped with a message on
//!   stderr, unless `CI=true`, where it fails loudly), and [`for_each_server`], which runs
//!   a test body once per reachable server and reports every server that failed.
//! - [`TestDb`]: a freshly created database with a unique name (`gs_<name>_<pid>_<n>`),
//!   dropped when the value is dropped (kept, with its name printed, when the test
//!   failed or `GAPSYNC_KEEP=1` is set). Typed readers return rows as
//!   [`rusqlite::types::Value`]s (BIGINT as `Integer`, DOUBLE as `Real` bit for bit,
//!   text as `Text`, binary as `Blob`, NULL as `Null`), so a SQLite source table can be
//!   compared with its target table value by value ([`compare_with_source`]).
//!
//! The harness's own sessions use the same settings the receiver sets up where they
//! matter for reading: on MariaDB `ANSI_QUOTES` (identifiers are written `"x"` on both
//! servers) and `NO_BACKSLASH_ESCAPES`.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use odbc_api::{Connection, ConnectionOptions, Cursor, DataType, Environment, Nullable};
use rusqlite::types::Value;

use crate::{
    SenderNode, Workspace, compare_configured, compare_rows, describe, open_db, primary_key,
    read_rows,
};

static ENV: OnceLock<Environment> = OnceLock::new();

/// The process-wide ODBC environment (one per process).
fn env() -> &'static Environment {
    ENV.get_or_init(|| {
        Environment::new().unwrap_or_else(|e| {
            panic!("cannot set up the ODBC environment (is unixODBC installed?): {e}")
        })
    })
}

fn connect(conn_str: &str) -> Result<Connection<'static>, String> {
    let opts = ConnectionOptions {
        login_timeout_sec: Some(5),
        ..ConnectionOptions::default()
    };
    env()
        .connect_with_connection_string(conn_str, opts)
        .map_err(|e| e.to_string().replace('\n', " "))
}

/// A database server the ODBC tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    Postgres,
    MariaDb,
}

impl Server {
    /// Every server, in the order the data-driven tests visit them.
    pub const ALL: [Server; 2] = [Server::Postgres, Server::MariaDb];

    /// The product name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::MariaDb => "MariaDB",
        }
    }

    /// The sender's `[target] dialect` for this server.
    pub fn dialect(self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::MariaDb => "mysql",
        }
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(self) -> u16 {
        match self {
            Server::Postgres => 5432,
            Server::MariaDb => 3306,
        }
    }

    /// `host:port` of the server.
    pub fn addr(self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The ODBC connection string for database `db` on 127.0.0.1:`port` (the server's
    /// own port, or a proxy's). MariaDB: always 127.0.0.1, never `localhost` (the
    /// connector would take the Unix socket).
    pub fn conn_str_at(self, db: &str, port: u16) -> String {
        match self {
            Server::Postgres => format!(
                "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={port};Database={db};Uid=postgres;"
            ),
            Server::MariaDb => format!(
                "Driver={{MariaDB Unicode}};Server=127.0.0.1;Port={port};Database={db};Uid=root;Pwd=;"
            ),
        }
    }

    /// [`conn_str_at`](Self::conn_str_at) the server's own port.
    pub fn conn_str(self, db: &str) -> String {
        self.conn_str_at(db, self.port())
    }

    /// Whether the `test` database of this server can be reached through ODBC (checked
    /// once per process); the error says why not.
    pub fn reachable(self) -> Result<(), String> {
        static PG: OnceLock<Result<(), String>> = OnceLock::new();
        static MARIA: OnceLock<Result<(), String>> = OnceLock::new();
        let cell = match self {
            Server::Postgres => &PG,
            Server::MariaDb => &MARIA,
        };
        cell.get_or_init(|| {
            let conn = connect(&self.conn_str("test"))?;
            conn.execute("SELECT 1", (), None)
                .map(|_| ())
                .map_err(|e| e.to_string().replace('\n', " "))
        })
        .clone()
    }

    /// True if the server is reachable. If not: with `CI=true` panic (a CI run must
    /// never pass vacuously); otherwise print why `test` is skipped and return false.
    pub fn require(self, test: &str) -> bool {
        match self.reachable() {
            Ok(()) => true,
            Err(e) => {
                let what = format!(
                    "{} is not reachable on {} (database test, driver {})",
                    self.title(),
                    self.addr(),
                    match self {
                        Server::Postgres => "PostgreSQL Unicode",
                        Server::MariaDb => "MariaDB Unicode",
                    }
                );
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("{what} but CI=true: {e}");
                }
                eprintln!("SKIPPED {test} on {}: {what}: {e}", self.title());
                false
            }
        }
    }

    /// Create a database with a unique name for a test (`name` is a hint; see
    /// [`TestDb`]).
    pub fn fresh_database(self, name: &str) -> TestDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let hint: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let db = format!("gs_{hint}_{}_{n}", std::process::id());
        let admin = self.admin();
        let ddl = match self {
            Server::Postgres => {
                format!("CREATE DATABASE \"{db}\" ENCODING 'UTF8' TEMPLATE template0")
            }
            Server::MariaDb => format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"),
        };
        exec_on(&admin, &ddl).unwrap_or_else(|e| panic!("{}: {ddl}: {e}", self.title()));
        TestDb {
            server: self,
            name: db,
        }
    }

    /// A connection to the `test` database.
    fn admin(self) -> Connection<'static> {
        connect(&self.conn_str("test"))
            .unwrap_or_else(|e| panic!("connecting to {} (database test): {e}", self.title()))
    }
}

/// Run `body` once per reachable server ([`Server::require`] decides), each in its own
/// unwind boundary so that a failure on one server does not hide the other; panics at
/// the end naming every server that failed.
pub fn for_each_server(test: &str, body: impl Fn(Server)) {
    let mut failed = Vec::new();
    for server in Server::ALL {
        if !server.require(test) {
            continue;
        }
        assert_receiver_has_odbc();
        let t0 = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(server))) {
            Ok(()) => eprintln!(
                "{test} on {}: passed in {:.1}s",
                server.title(),
                t0.elapsed().as_secs_f64()
            ),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let first = msg.lines().next().unwrap_or("").to_owned();
                failed.push(format!("{}: {first}", server.title()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{test} failed on {} server(s) (full messages above):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

/// Panic with a hint unless the `gapsync-receiver` binary next to the tests was built
/// with the `odbc` feature (checked once per process, without touching a database: a
/// build without it says so for any `odbc:` URL).
pub fn assert_receiver_has_odbc() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("gapsync-odbc-check-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let cfg = crate::ReceiverConfig::odbc("Driver={gapsync-no-such-driver};")
            .toml(&dir.path().join("unused.db"), &dir.path().join("rwork"));
        let path = dir.path().join("receiver.toml");
        std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
        let path = path.display().to_string();
        let out = crate::run_command(
            &crate::receiver_bin(),
            &["-c", &path, "check"],
            dir.path(),
            Duration::from_secs(60),
        );
        if out.stderr.contains("no ODBC support") {
            Err(format!(
                "{} was built without ODBC support: run `cargo build --workspace --features odbc` \
                 before `cargo test -p gapsync-tests --features odbc` ({})",
                crate::receiver_bin().display(),
                out.stderr.trim()
            ))
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn exec_on(conn: &Connection<'_>, sql: &str) -> Result<(), String> {
    conn.execute(sql, (), None)
        .map(|_| ())
        .map_err(|e| e.to_string().replace('\n', " "))
}

/// `'..'` with `'` doubled (the harness's sessions have standard strings on both).
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `".."` with `"` doubled (ANSI quotes on both servers in the harness's sessions).
pub fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// How a result column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadAs {
    Int,
    Real,
    Text,
    Blob,
}

fn read_as(t: DataType) -> ReadAs {
    match t {
        DataType::Integer
        | DataType::SmallInt
        | DataType::BigInt
        | DataType::TinyInt
        | DataType::Bit => ReadAs::Int,
        DataType::Float { .. } | DataType::Real | DataType::Double => ReadAs::Real,
        DataType::Binary { .. } | DataType::Varbinary { .. } | DataType::LongVarbinary { .. } => {
            ReadAs::Blob
        }
        _ => ReadAs::Text,
    }
}

fn fetch_all(cursor: &mut impl Cursor) -> Result<Vec<Vec<Value>>, String> {
    let e = |e: odbc_api::Error| e.to_string().replace('\n', " ");
    let n = cursor.num_result_cols().map_err(e)?.max(0) as u16;
    let mut kinds = Vec::with_capacity(usize::from(n));
    for c in 1..=n {
        kinds.push(read_as(cursor.col_data_type(c).map_err(e)?));
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(mut row) = cursor.next_row().map_err(e)? {
        let mut vals = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            let c = i as u16 + 1;
            let v = match kind {
                ReadAs::Int => {
                    let mut x = Nullable::<i64>::null();
                    row.get_data(c, &mut x).map_err(e)?;
                    x.into_opt().map_or(Value::Null, Value::Integer)
                }
                ReadAs::Real => {
                    let mut x = Nullable::<f64>::null();
                    row.get_data(c, &mut x).map_err(e)?;
                    x.into_opt().map_or(Value::Null, Value::Real)
                }
                ReadAs::Text => {
                    buf.clear();
                    if row.get_text(c, &mut buf).map_err(e)? {
                        Value::Text(String::from_utf8(buf.clone()).map_err(|u| {
                            format!("column {c}: the driver returned text that is not UTF-8: {u}")
                        })?)
                    } else {
                        Value::Null
                    }
                }
                ReadAs::Blob => {
                    buf.clear();
                    if row.get_binary(c, &mut buf).map_err(e)? {
                        Value::Blob(buf.clone())
                    } else {
                        Value::Null
                    }
                }
            };
            vals.push(v);
        }
        out.push(vals);
    }
    Ok(out)
}

/// A database created for one test on a [`Server`]; dropped with the value.
#[derive(Debug)]
pub struct TestDb {
    pub server: Server,
    /// The database's name (`gs_<hint>_<pid>_<n>`).
    pub name: String,
}

impl TestDb {
    /// The ODBC connection string of this database (the server's own port).
    pub fn conn_str(&self) -> String {
        self.server.conn_str(&self.name)
    }

    /// The connection string through a proxy listening on 127.0.0.1:`port`.
    pub fn conn_str_via(&self, port: u16) -> String {
        self.server.conn_str_at(&self.name, port)
    }

    /// A new connection to this database, set up like the receiver's where reading is
    /// concerned (MariaDB: `ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`).
    pub fn connect(&self) -> Connection<'static> {
        let conn = connect(&self.conn_str()).unwrap_or_else(|e| {
            panic!(
                "connecting to {} database {}: {e}",
                self.server.title(),
                self.name
            )
        });
        if self.server == Server::MariaDb {
            exec_on(
                &conn,
                "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES,NO_BACKSLASH_ESCAPES')",
            )
            .unwrap_or_else(|e| panic!("MariaDB session set-up: {e}"));
        }
        conn
    }

    /// Execute statements (each its own call), panicking on the first error.
    pub fn exec(&self, sql: &[&str]) {
        let conn = self.connect();
        for s in sql {
            exec_on(&conn, s)
                .unwrap_or_else(|e| panic!("{} {}: {s}: {e}", self.server.title(), self.name));
        }
    }

    /// Run a query; every row as typed values (see the module docs).
    pub fn try_query(&self, sql: &str) -> Result<Vec<Vec<Value>>, String> {
        let conn = self.connect();
        let cursor = conn
            .execute(sql, (), None)
            .map_err(|e| e.to_string().replace('\n', " "))?;
        match cursor {
            Some(mut c) => fetch_all(&mut c),
            None => Ok(Vec::new()),
        }
    }

    /// [`try_query`](Self::try_query), panicking with the statement on error.
    pub fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("{} {}: {sql}: {e}", self.server.title(), self.name))
    }

    /// The condition naming this database's schema in `information_schema`.
    fn schema_cond(&self) -> &'static str {
        match self.server {
            Server::Postgres => "table_schema = 'public'",
            Server::MariaDb => "table_schema = DATABASE()",
        }
    }

    /// Whether a table exists.
    pub fn table_exists(&self, table: &str) -> bool {
        !self
            .query(&format!(
                "SELECT table_name FROM information_schema.tables WHERE {} AND table_name = {}",
                self.schema_cond(),
                sql_str(table)
            ))
            .is_empty()
    }

    /// Tables of the database (gapsync's own included), sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .query(&format!(
                "SELECT table_name FROM information_schema.tables WHERE {}",
                self.schema_cond()
            ))
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Text(t)) => Some(t),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// (column name, type) of a table in column order; the type is PostgreSQL's
    /// `data_type` (`bigint`, `text`, `double precision`, `bytea`) or MariaDB's
    /// `column_type` (`bigint(20)`, `longtext`, `double`, `longblob`, `varchar(255)`).
    pub fn column_types(&self, table: &str) -> Vec<(String, String)> {
        let ty = match self.server {
            Server::Postgres => "data_type",
            Server::MariaDb => "column_type",
        };
        self.query(&format!(
            "SELECT column_name, {ty} FROM information_schema.columns WHERE {} AND \
             table_name = {} ORDER BY ordinal_position",
            self.schema_cond(),
            sql_str(table)
        ))
        .into_iter()
        .map(|r| {
            let text = |v: &Value| match v {
                Value::Text(t) => t.clone(),
                other => describe(other),
            };
            (text(&r[0]), text(&r[1]).to_ascii_lowercase())
        })
        .collect()
    }

    /// Column names of a table, in order (empty if it does not exist).
    pub fn columns(&self, table: &str) -> Vec<String> {
        self.column_types(table)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    /// Every row of `table` (the given columns, in no particular order), typed.
    pub fn read_table(&self, table: &str, cols: &[String]) -> Result<Vec<Vec<Value>>, String> {
        let list: Vec<String> = cols.iter().map(|c| sql_ident(c)).collect();
        self.try_query(&format!(
            "SELECT {} FROM {}",
            list.join(", "),
            sql_ident(table)
        ))
    }

    /// Lock `table` against every other session (PostgreSQL: `LOCK TABLE .. IN ACCESS
    /// EXCLUSIVE MODE` in an open transaction; MariaDB: `LOCK TABLES .. WRITE`) until
    /// the returned guard is released or dropped.
    pub fn lock_table(&self, table: &str) -> TableLock {
        let conn = self.connect();
        let sql = match self.server {
            Server::Postgres => {
                conn.set_autocommit(false)
                    .unwrap_or_else(|e| panic!("PostgreSQL: autocommit off: {e}"));
                format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", sql_ident(table))
            }
            Server::MariaDb => format!("LOCK TABLES {} WRITE", sql_ident(table)),
        };
        exec_on(&conn, &sql).unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.server.title()));
        TableLock {
            server: self.server,
            conn: Some(conn),
        }
    }

    /// Sessions of this database waiting for a lock (another session's, e.g. a
    /// [`TableLock`]).
    pub fn sessions_waiting_for_a_lock(&self) -> i64 {
        let sql = match self.server {
            Server::Postgres => format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = {} AND wait_event_type = 'Lock'",
                sql_str(&self.name)
            ),
            Server::MariaDb => format!(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = {} AND STATE LIKE '%lock%'",
                sql_str(&self.name)
            ),
        };
        match self.query(&sql).first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            other => panic!("{sql}: unexpected {other:?}"),
        }
    }

    fn seqs_of(&self, table: &str, node: &str) -> Vec<u64> {
        if !self.table_exists(table) {
            return Vec::new();
        }
        self.query(&format!(
            "SELECT seq FROM {table} WHERE node = {} ORDER BY seq",
            sql_str(node)
        ))
        .into_iter()
        .map(|r| match r.first() {
            Some(Value::Integer(i)) => *i as u64,
            other => panic!("{table}.seq is not an integer: {other:?}"),
        })
        .collect()
    }

    /// The seqs of `node` in `_gapsync_ledger`, ascending (empty without a ledger).
    pub fn ledger_seqs(&self, node: &str) -> Vec<u64> {
        self.seqs_of("_gapsync_ledger", node)
    }

    /// The seqs of `node` in `_gapsync_quarantine`, ascending.
    pub fn quarantined_seqs(&self, node: &str) -> Vec<u64> {
        self.seqs_of("_gapsync_quarantine", node)
    }

    /// Highest seq of `node` recorded on the target, applied or quarantined (0: none).
    pub fn last_seq(&self, node: &str) -> u64 {
        let a = self.ledger_seqs(node).last().copied().unwrap_or(0);
        let q = self.quarantined_seqs(node).last().copied().unwrap_or(0);
        a.max(q)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("GAPSYNC_KEEP").is_some() {
            eprintln!(
                "{} test database kept: {} (drop it with DROP DATABASE {})",
                self.server.title(),
                self.name,
                self.name
            );
            return;
        }
        let ddl = match self.server {
            Server::Postgres => format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            Server::MariaDb => format!("DROP DATABASE IF EXISTS `{}`", self.name),
        };
        match connect(&self.server.conn_str("test")) {
            Ok(c) => {
                if let Err(e) = exec_on(&c, &ddl) {
                    eprintln!("{}: {ddl}: {e}", self.server.title());
                }
            }
            Err(e) => eprintln!("{}: cannot drop {}: {e}", self.server.title(), self.name),
        }
    }
}

/// A table lock held by a harness session ([`TestDb::lock_table`]); released by
/// [`release`](TableLock::release) or on drop.
pub struct TableLock {
    server: Server,
    conn: Option<Connection<'static>>,
}

impl std::fmt::Debug for TableLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableLock")
            .field("server", &self.server)
            .field("held", &self.conn.is_some())
            .finish()
    }
}

impl TableLock {
    /// Release the lock and close the session.
    pub fn release(mut self) {
        self.unlock();
    }

    fn unlock(&mut self) {
        if let Some(conn) = self.conn.take() {
            let r = match self.server {
                Server::Postgres => conn.rollback().map_err(|e| e.to_string()),
                Server::MariaDb => exec_on(&conn, "UNLOCK TABLES"),
            };
            if let Err(e) = r {
                eprintln!("{}: releasing a table lock: {e}", self.server.title());
            }
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.unlock();
    }
}

// ------------------------------------------------------------------------ comparing

fn class_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) => 1,
        Value::Text(_) => 2,
        Value::Blob(_) => 3,
    }
}

/// A total order on values as SQLite sorts them with the BINARY collation: NULL,
/// numbers, text (by bytes), blobs.
pub fn cmp_value(a: &Value, b: &Value) -> CmpOrdering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Real(x), Value::Real(y)) => x.total_cmp(y),
        (Value::Integer(x), Value::Real(y)) => (*x as f64).total_cmp(y),
        (Value::Real(x), Value::Integer(y)) => x.total_cmp(&(*y as f64)),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => class_rank(a).cmp(&class_rank(b)),
    }
}

fn sort_by_key(rows: &mut [Vec<Value>], key: &[usize]) {
    rows.sort_by(|a, b| {
        key.iter()
            .map(|&k| cmp_value(&a[k], &b[k]))
            .find(|o| o.is_ne())
            .unwrap_or(CmpOrdering::Equal)
    });
}

/// Compare a SQLite source table with its target table on a server, row by row with
/// typed values (rows matched by key, sorted in SQLite's order on both sides so that
/// the server's collation plays no part). `renames` maps source to target column
/// names where they differ; `key` names the key columns (source names; empty: the
/// source's primary key, or every column). The target must have exactly the mapped
/// columns. Returns the number of rows, or the first difference.
pub fn compare_table(
    source_db: &Path,
    src_table: &str,
    db: &TestDb,
    dst_table: &str,
    renames: &[(&str, &str)],
    key: &[&str],
) -> Result<usize, String> {
    let src = open_db(source_db);
    let src_cols = crate::table_columns(&src, src_table);
    if src_cols.is_empty() {
        return Err(format!("source table {src_table:?} does not exist"));
    }
    let map = |c: &String| -> String {
        renames
            .iter()
            .find(|(from, _)| from == c)
            .map_or_else(|| c.clone(), |(_, to)| (*to).to_owned())
    };
    let dst_cols: Vec<String> = src_cols.iter().map(map).collect();
    let have: BTreeSet<String> = db.columns(dst_table).into_iter().collect();
    if have.is_empty() {
        return Err(format!(
            "target table {dst_table:?} does not exist on {} ({})",
            db.server.title(),
            db.name
        ));
    }
    let want: BTreeSet<String> = dst_cols.iter().cloned().collect();
    if have != want {
        return Err(format!(
            "target table {dst_table:?} has columns {have:?}, expected {want:?}"
        ));
    }
    let src_key: Vec<String> = if key.is_empty() {
        let pk = primary_key(&src, src_table);
        if pk.is_empty() { src_cols.clone() } else { pk }
    } else {
        key.iter().map(|k| (*k).to_owned()).collect()
    };
    let key_idx: Vec<usize> = src_key
        .iter()
        .filter_map(|k| src_cols.iter().position(|c| c == k))
        .collect();
    let mut a = read_rows(&src, src_table, &src_cols, &src_key)
        .map_err(|e| format!("reading source {src_table}: {e}"))?;
    let mut b = db
        .read_table(dst_table, &dst_cols)
        .map_err(|e| format!("reading target {dst_table}: {e}"))?;
    sort_by_key(&mut a, &key_idx);
    sort_by_key(&mut b, &key_idx);
    compare_rows(
        &format!("{src_table} -> {} {dst_table}", db.server.title()),
        &src_cols,
        &dst_cols,
        &key_idx,
        &a,
        &b,
    )
}

/// [`compare_table`] for every table configured on `tx` (renames and keys from its
/// config). Returns (tables, rows) or the first difference.
pub fn compare_with_source(tx: &SenderNode, db: &TestDb) -> Result<(usize, usize), String> {
    compare_configured(tx, |src, dst, renames, key| {
        compare_table(&tx.source_db, src, db, dst, renames, key)
    })
}

/// [`compare_with_source`], panicking with the difference and the log tails.
pub fn assert_synced_with(tx: &SenderNode, db: &TestDb) -> (usize, usize) {
    match compare_with_source(tx, db) {
        Ok(v) => v,
        Err(e) => panic!(
            "source and {} target differ (node {}, database {}): {e}\n{}",
            db.server.title(),
            tx.cfg.node,
            db.name,
            tx.all_logs()
        ),
    }
}

/// Wait until `tx` has nothing pending, no unanswered batch and no queued snapshot, and
/// the server's ledger (or quarantine) holds every seq `tx` cut. Only meaningful once
/// the source's writers have stopped.
pub fn wait_synced(ws: &Workspace, tx: &SenderNode, db: &TestDb, timeout: Duration) {
    ws.wait_until(
        &format!(
            "node {} to be caught up on the {} target",
            tx.cfg.node,
            db.server.title()
        ),
        timeout,
        || {
            let p = tx.progress();
            p.pending == 0
                && p.unanswered == 0
                && p.queued_snapshots == 0
                && db.last_seq(&tx.cfg.node) == p.last_cut
        },
    );
}

// ------------------------------------------------------------------------ server sources

/// Execute one statement on an open connection (e.g. a writer session of a test with
/// its own transaction or session settings); the error as one line.
pub fn exec_in(conn: &Connection<'_>, sql: &str) -> Result<(), String> {
    exec_on(conn, sql)
}

/// Panic with a hint unless the `gapsync-sender` binary next to the tests was built with
/// the `odbc` feature (checked once per process, without touching a database: a build
/// without it says so for an `odbc:` source URL).
pub fn assert_sender_has_odbc() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("gapsync-odbc-check-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let cfg = odbc_source_toml(
            &crate::SenderConfig::new("check").table(crate::Table::new("t")),
            "Driver={gapsync-no-such-driver};",
            &dir.path().join("swork"),
        );
        let path = dir.path().join("sender.toml");
        std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
        let path = path.display().to_string();
        let out = crate::run_command(
            &crate::sender_bin(),
            &["-c", &path, "check"],
            dir.path(),
            Duration::from_secs(60),
        );
        if out.stderr.contains("no ODBC support") {
            Err(format!(
                "{} was built without ODBC support: run `cargo build --workspace --features odbc` \
                 before `cargo test -p gapsync-tests --features odbc` ({})",
                crate::sender_bin().display(),
                out.stderr.trim()
            ))
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// `sender.toml` for `cfg` with a server source: `[source] url = "odbc:<conn_str>"`
/// instead of the SQLite URL [`crate::SenderConfig::toml`] writes.
pub fn odbc_source_toml(cfg: &crate::SenderConfig, conn_str: &str, work_dir: &Path) -> String {
    let placeholder = Path::new("/gapsync-placeholder-source.db");
    let text = cfg.toml(placeholder, work_dir);
    let sqlite_line = format!(
        "url = \"sqlite:{}\"",
        placeholder.display().to_string().replace('\\', "\\\\")
    );
    let odbc_line = format!(
        "url = \"odbc:{}\"",
        conn_str.replace('\\', "\\\\").replace('"', "\\\"")
    );
    assert!(
        text.contains(&sqlite_line),
        "SenderConfig::toml no longer writes {sqlite_line:?}:\n{text}"
    );
    text.replacen(&sqlite_line, &odbc_line, 1)
}

/// Point an existing sender node at a server source: rewrite its `sender.toml` from its
/// `cfg` with `[source] url = "odbc:<conn_str>"`. (Do not call
/// [`SenderNode::write_config`] or [`SenderNode::set_connect`] afterwards: they write
/// the SQLite URL again.) The node's `source_db`, `progress` and `batches` keep naming
/// a SQLite file that is not used: read the server's tables with
/// [`TestDb::sender_progress`] and [`TestDb::sender_batches`].
pub fn use_odbc_source(tx: &SenderNode, conn_str: &str) {
    std::fs::write(
        &tx.config_path,
        odbc_source_toml(&tx.cfg, conn_str, &tx.work_dir),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", tx.config_path.display()));
}

fn int_of(v: &Value, what: &str) -> i64 {
    match v {
        Value::Integer(i) => *i,
        Value::Null => 0,
        Value::Text(t) => t
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{what}: {t:?} is not an integer: {e}")),
        other => panic!("{what}: {} is not an integer", describe(other)),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        Value::Null => String::new(),
        other => describe(other),
    }
}

impl TestDb {
    /// What gapsync's tables in this database (a server SOURCE) say: the same as
    /// [`SenderNode::progress`] reads from a SQLite source, in one query.
    pub fn sender_progress(&self) -> crate::SenderProgress {
        let rows = self.query(
            "SELECT (SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state = 'ready'), \
                    (SELECT count(*) FROM _gapsync_batches WHERE state = 'quarantined'), \
                    (SELECT count(*) FROM _gapsync_requests), \
                    (SELECT coalesce(max(seq), 0) FROM _gapsync_batches)",
        );
        let r = rows
            .first()
            .unwrap_or_else(|| panic!("{}: no progress row", self.name));
        let n = |i: usize| int_of(&r[i], "sender progress").max(0) as u64;
        crate::SenderProgress {
            pending: n(0),
            unanswered: n(1),
            quarantined: n(2),
            queued_snapshots: n(3),
            last_cut: n(4),
        }
    }

    /// Every row of `_gapsync_batches` in this database (a server SOURCE), by seq.
    pub fn sender_batches(&self) -> Vec<crate::BatchRow> {
        self.query(
            "SELECT seq, kind, file, statements, first_id, last_id, state, attempts, created, \
             changes FROM _gapsync_batches ORDER BY seq",
        )
        .into_iter()
        .map(|r| {
            let id = |i: usize| Some(int_of(&r[i], "_gapsync_batches id")).filter(|v| *v != 0);
            crate::BatchRow {
                seq: int_of(&r[0], "_gapsync_batches.seq") as u64,
                kind: text_of(&r[1]),
                file: text_of(&r[2]),
                statements: int_of(&r[3], "_gapsync_batches.statements") as u64,
                first_id: id(4),
                last_id: id(5),
                state: text_of(&r[6]),
                attempts: int_of(&r[7], "_gapsync_batches.attempts") as u32,
                created: text_of(&r[8]),
                changes: int_of(&r[9], "_gapsync_batches.changes") as u64,
            }
        })
        .collect()
    }
}
