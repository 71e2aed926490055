//! End-to-end tests with real database servers as SOURCES (feature `odbc`): PostgreSQL
//! and MariaDB capture changes with gapsync's triggers (`install`), the real
//! `gapsync-sender` reads them through ODBC (`[source] url = "odbc:..."`) and renders
//! them in the target's dialect, the real `gapsync-receiver` applies them to SQLite or to
//! the other server.
//!
//! Data-driven over the pairs PostgreSQL -> SQLite, PostgreSQL -> MariaDB, MariaDB ->
//! PostgreSQL and MariaDB -> SQLite ([`for_each_pair`]): every server database is created
//! fresh for the test and dropped afterwards; a pair whose server is not reachable is
//! skipped with a printed reason, except with `CI=true`, where it fails.
//!
//! Source and target are compared row by row with TYPED values ([`V`]): each side is
//! read with an expression that gives the value's exact form (integers, doubles bit for
//! bit, decimals as digits, dates and times parsed, instants as microseconds since the
//! epoch), and only what the documented type mapping changes is normalised (see
//! [`for_dest`]; every normalisation says why).
//!
//! Build first: `cargo build --workspace --features odbc`, then
//! `cargo test -p gapsync-tests --features odbc odbc_sources::`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use gapsync_tests::odbc::{
    Server, TestDb, assert_receiver_has_odbc, assert_sender_has_odbc, exec_in, sql_ident,
    use_odbc_source,
};
use gapsync_tests::*;
use odbc_api::Connection as OdbcConnection;
use rusqlite::types::Value;

// ------------------------------------------------------------------------ pairs

/// Where the changes of a server source are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Sqlite,
    Server(Server),
}

impl Dest {
    fn title(self) -> &'static str {
        match self {
            Dest::Sqlite => "SQLite",
            Dest::Server(s) => s.title(),
        }
    }

    /// The sender's `[target] dialect`.
    fn dialect(self) -> &'static str {
        match self {
            Dest::Sqlite => "sqlite",
            Dest::Server(s) => s.dialect(),
        }
    }
}

/// A source server and the target its changes go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    src: Server,
    dest: Dest,
}

impl Pair {
    fn name(self) -> String {
        format!("{} -> {}", self.src.title(), self.dest.title())
    }
}

const PG_TO_SQLITE: Pair = Pair {
    src: Server::Postgres,
    dest: Dest::Sqlite,
};
const PG_TO_MARIA: Pair = Pair {
    src: Server::Postgres,
    dest: Dest::Server(Server::MariaDb),
};
const MARIA_TO_PG: Pair = Pair {
    src: Server::MariaDb,
    dest: Dest::Server(Server::Postgres),
};
const MARIA_TO_SQLITE: Pair = Pair {
    src: Server::MariaDb,
    dest: Dest::Sqlite,
};

/// The pairs of the data-driven tests.
const PAIRS: [Pair; 4] = [PG_TO_SQLITE, PG_TO_MARIA, MARIA_TO_PG, MARIA_TO_SQLITE];

/// Run `body` once per pair whose servers are reachable ([`Server::require`] decides:
/// skipped with a message, or a failure with `CI=true`), each in its own unwind
/// boundary so that one pair's failure does not hide another's; panics at the end
/// naming every pair that failed.
fn for_each_pair(test: &str, pairs: &[Pair], body: impl Fn(Pair)) {
    let mut failed = Vec::new();
    for &pair in pairs {
        let mut servers = vec![pair.src];
        if let Dest::Server(s) = pair.dest
            && s != pair.src
        {
            servers.push(s);
        }
        let what = format!("{test} ({})", pair.name());
        if !servers.iter().all(|s| s.require(&what)) {
            continue;
        }
        assert_sender_has_odbc();
        assert_receiver_has_odbc();
        let t0 = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(pair))) {
            Ok(()) => eprintln!("{what}: passed in {:.1}s", t0.elapsed().as_secs_f64()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let first = msg.lines().next().unwrap_or("");
                if first.starts_with(&pair.name()) {
                    failed.push(first.to_owned());
                } else {
                    failed.push(format!("{}: {first}", pair.name()));
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{test} failed on {} pair(s) (full messages above):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

// ------------------------------------------------------------------------ tables

/// How a column's value is read and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    /// Double precision.
    Float,
    /// PostgreSQL `real` / MariaDB `FLOAT` (single precision).
    Float4,
    Dec,
    Text,
    Bytes,
    Date,
    Time,
    /// Date and time without a zone.
    Ts,
    /// An instant: PostgreSQL `timestamptz`, MariaDB `TIMESTAMP`.
    Instant,
    /// PostgreSQL `boolean`.
    Bool,
}

/// A source column: its kind and its type on each server ("" = not on that server).
#[derive(Debug, Clone, Copy)]
struct Col {
    name: &'static str,
    kind: Kind,
    pg: &'static str,
    maria: &'static str,
}

const fn col(name: &'static str, kind: Kind, pg: &'static str, maria: &'static str) -> Col {
    Col {
        name,
        kind,
        pg,
        maria,
    }
}

impl Col {
    fn ty(&self, s: Server) -> &'static str {
        match s {
            Server::Postgres => self.pg,
            Server::MariaDb => self.maria,
        }
    }

    /// `(p,s)` of a decimal type on `s`, if given.
    fn precision(&self, s: Server) -> Option<(u32, u32)> {
        let t = self.ty(s);
        if t == "bigint unsigned" {
            // information_schema: precision 20, scale 0 (a decimal class column).
            return Some((20, 0));
        }
        let inner = t.split_once('(')?.1.split_once(')')?.0;
        let (p, sc) = inner.split_once(',')?;
        Some((p.trim().parse().ok()?, sc.trim().parse().ok()?))
    }
}

/// A source table, its target name, renamed columns and key.
#[derive(Debug, Clone)]
struct Tbl {
    source: &'static str,
    target: Option<&'static str>,
    rename: Vec<(&'static str, &'static str)>,
    cols: Vec<Col>,
    key: Vec<&'static str>,
}

impl Tbl {
    fn new(source: &'static str, cols: &[Col], key: &[&'static str]) -> Tbl {
        Tbl {
            source,
            target: None,
            rename: Vec::new(),
            cols: cols.to_vec(),
            key: key.to_vec(),
        }
    }

    fn target(mut self, t: &'static str) -> Tbl {
        self.target = Some(t);
        self
    }

    fn rename(mut self, from: &'static str, to: &'static str) -> Tbl {
        self.rename.push((from, to));
        self
    }

    fn target_name(&self) -> &'static str {
        self.target.unwrap_or(self.source)
    }

    fn target_col(&self, c: &str) -> String {
        self.rename
            .iter()
            .find(|(a, _)| *a == c)
            .map_or(c, |(_, b)| *b)
            .to_owned()
    }

    /// The columns that exist on server `s`.
    fn cols_on(&self, s: Server) -> Vec<Col> {
        self.cols
            .iter()
            .filter(|c| !c.ty(s).is_empty())
            .copied()
            .collect()
    }

    /// `CREATE TABLE` on `s` (identifiers in ANSI quotes: the harness's MariaDB sessions
    /// run with `ANSI_QUOTES`).
    fn ddl(&self, s: Server) -> String {
        let mut parts: Vec<String> = self
            .cols_on(s)
            .iter()
            .map(|c| format!("{} {}", sql_ident(c.name), c.ty(s)))
            .collect();
        let key: Vec<String> = self.key.iter().map(|k| sql_ident(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        format!(
            "CREATE TABLE {} ({})",
            sql_ident(self.source),
            parts.join(", ")
        )
    }

    /// The sender's `[[table]]` entry.
    fn config(&self) -> Table {
        let mut t = Table::new(self.source);
        if let Some(target) = self.target {
            t = t.target(target);
        }
        for (a, b) in &self.rename {
            t = t.rename(a, b);
        }
        t
    }
}

// ------------------------------------------------------------------------ literals

/// A value the tests write on a source server (rendered by [`lit`]).
#[derive(Debug, Clone)]
enum L {
    Null,
    Int(i64),
    F64(f64),
    F32(f32),
    Dec(&'static str),
    Text(String),
    Bytes(Vec<u8>),
    Date(&'static str),
    Time(&'static str),
    Ts(String),
    /// An instant given in UTC (`YYYY-MM-DD HH:MM:SS[.f]`).
    Utc(String),
    /// A wall-clock time in the WRITER SESSION's time zone (an instant there).
    Local(&'static str, i64),
    Bool(bool),
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn parse_ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("test timestamp {s:?}: {e}"))
}

/// Microseconds since the epoch of a UTC wall-clock time.
fn utc_micros(s: &str) -> i64 {
    parse_ts(s).and_utc().timestamp_micros()
}

/// `v` as an SQL expression on server `s`. Text is written as UTF-8 bytes in hex and
/// converted on the server, so that no client encoding plays a part in what the source
/// holds.
fn lit(s: Server, v: &L) -> String {
    let pg = s == Server::Postgres;
    match v {
        L::Null => "NULL".into(),
        L::Int(i) => i.to_string(),
        L::F64(f) if f.is_infinite() => {
            let t = if *f > 0.0 { "Infinity" } else { "-Infinity" };
            format!("CAST('{t}' AS double precision)")
        }
        L::F64(f) if pg => format!("CAST('{f:e}' AS double precision)"),
        L::F64(f) => format!("{f:e}"),
        L::F32(f) if pg => format!("CAST('{f:e}' AS real)"),
        L::F32(f) => format!("{f:e}"),
        L::Dec(d) => (*d).to_owned(),
        L::Text(t) if pg => format!(
            "convert_from(decode('{}', 'hex'), 'UTF8')",
            hex(t.as_bytes())
        ),
        L::Text(t) => format!("CONVERT(X'{}' USING utf8mb4)", hex(t.as_bytes())),
        L::Bytes(b) if pg => format!("decode('{}', 'hex')", hex(b)),
        L::Bytes(b) => format!("X'{}'", hex(b)),
        L::Date(d) => format!("DATE '{d}'"),
        L::Time(t) => format!("TIME '{t}'"),
        L::Ts(t) => format!("TIMESTAMP '{t}'"),
        L::Utc(t) if pg => format!("TIMESTAMPTZ '{t}+00'"),
        L::Utc(t) => {
            // FROM_UNIXTIME gives the instant in the session's zone, which a TIMESTAMP
            // column reads back in the same zone: the instant is stored.
            let us = utc_micros(t);
            format!(
                "FROM_UNIXTIME({}.{:06})",
                us.div_euclid(1_000_000),
                us.rem_euclid(1_000_000)
            )
        }
        // Both read a literal without a zone in the session's time zone.
        L::Local(t, _) if pg => format!("CAST('{t}' AS timestamptz)"),
        L::Local(t, _) => format!("TIMESTAMP '{t}'"),
        L::Bool(b) if pg => if *b { "TRUE" } else { "FALSE" }.into(),
        L::Bool(b) => if *b { "1" } else { "0" }.into(),
    }
}

fn insert_sql(s: Server, t: &Tbl, row: &[(Col, L)]) -> String {
    let names: Vec<String> = row.iter().map(|(c, _)| sql_ident(c.name)).collect();
    let vals: Vec<String> = row.iter().map(|(_, v)| lit(s, v)).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        sql_ident(t.source),
        names.join(", "),
        vals.join(", ")
    )
}

fn set_list(s: Server, row: &[(Col, L)]) -> String {
    row.iter()
        .map(|(c, v)| format!("{} = {}", sql_ident(c.name), lit(s, v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn where_key(s: Server, key: &[(&str, L)]) -> String {
    key.iter()
        .map(|(c, v)| format!("{} = {}", sql_ident(c), lit(s, v)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

// ------------------------------------------------------------------------ typed values

/// A value in comparable form.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Int(i64),
    /// Bits of a double.
    F64(u64),
    /// Bits of a single-precision float.
    F32(u32),
    /// Decimal digits (see [`for_dest`] for when they are normalised).
    Dec(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    Ts(NaiveDateTime),
    /// An instant: microseconds since the epoch (UTC).
    Micros(i64),
    Bool(bool),
    /// As read, where no typed form applies (a SQLite decimal, or an unexpected value).
    Raw(Value),
}

fn show(v: &V) -> String {
    let cut = |s: String| match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    };
    match v {
        V::F64(b) => format!("double {:?} (bits {b:#018x})", f64::from_bits(*b)),
        V::F32(b) => format!("float4 {:?}", f32::from_bits(*b)),
        V::Micros(us) => format!(
            "instant {} UTC",
            DateTime::from_timestamp_micros(*us).map_or_else(
                || us.to_string(),
                |d| d.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            )
        ),
        V::Text(t) => format!("text {}", cut(format!("{t:?}"))),
        V::Bytes(b) => describe(&Value::Blob(b.clone())),
        V::Raw(x) => describe(x),
        other => cut(format!("{other:?}")),
    }
}

/// The SELECT expression that reads column `name` of kind `kind` on server `s` in an
/// exact, session-independent form. `target`: the column was created by gapsync's
/// snapshot (an instant is a UTC `DATETIME` on MariaDB, documented in
/// common/src/dialect/types.rs), not by the test.
fn read_expr(s: Server, kind: Kind, name: &str, target: bool) -> String {
    let c = sql_ident(name);
    match (s, kind) {
        (_, Kind::Int | Kind::Float | Kind::Text | Kind::Bytes) => c,
        (Server::Postgres, Kind::Float4) => format!("CAST({c} AS double precision)"),
        (Server::Postgres, Kind::Dec) => format!("CAST({c} AS text)"),
        (Server::Postgres, Kind::Date) => format!("to_char({c}, 'YYYY-MM-DD')"),
        (Server::Postgres, Kind::Time) => format!("to_char({c}, 'HH24:MI:SS.US')"),
        (Server::Postgres, Kind::Ts) => format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        (Server::Postgres, Kind::Instant) => {
            format!("CAST(extract(epoch FROM {c}) * 1000000 AS bigint)")
        }
        (Server::Postgres, Kind::Bool) => format!("CAST({c} AS integer)"),
        (Server::MariaDb, Kind::Float4) => format!("CAST({c} AS DOUBLE)"),
        (Server::MariaDb, Kind::Dec) => format!("CAST({c} AS CHAR)"),
        (Server::MariaDb, Kind::Date) => format!("DATE_FORMAT({c}, '%Y-%m-%d')"),
        (Server::MariaDb, Kind::Time) => format!("TIME_FORMAT({c}, '%H:%i:%s.%f')"),
        (Server::MariaDb, Kind::Ts) => format!("DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"),
        (Server::MariaDb, Kind::Instant) if target => {
            format!("TIMESTAMPDIFF(MICROSECOND, TIMESTAMP '1970-01-01 00:00:00', {c})")
        }
        // The TIMESTAMP column and the epoch, both in the session's zone.
        (Server::MariaDb, Kind::Instant) => {
            format!("TIMESTAMPDIFF(MICROSECOND, FROM_UNIXTIME(0), {c})")
        }
        (Server::MariaDb, Kind::Bool) => c,
    }
}

/// A value read from a server with [`read_expr`] (`sqlite`: read from a SQLite target
/// as stored) in comparable form.
fn canon(kind: Kind, raw: &Value, sqlite: bool) -> V {
    let text = |f: &dyn Fn(&str) -> Option<V>| match raw {
        Value::Text(t) => f(t).unwrap_or_else(|| V::Raw(raw.clone())),
        _ => V::Raw(raw.clone()),
    };
    match (kind, raw) {
        (_, Value::Null) => V::Null,
        (Kind::Int, Value::Integer(i)) => V::Int(*i),
        (Kind::Float, Value::Real(f)) => V::F64(f.to_bits()),
        // Single precision, compared as such (see `for_dest`).
        (Kind::Float4, Value::Real(f)) => V::F32((*f as f32).to_bits()),
        (Kind::Dec, _) if sqlite => V::Raw(raw.clone()),
        (Kind::Dec, _) => text(&|t| Some(V::Dec(t.to_owned()))),
        (Kind::Text, Value::Text(t)) => V::Text(t.clone()),
        (Kind::Bytes, Value::Blob(b)) => V::Bytes(b.clone()),
        (Kind::Date, _) => text(&|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().map(V::Date)),
        (Kind::Time, _) => text(&|t| {
            NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
                .ok()
                .map(V::Time)
        }),
        (Kind::Ts, _) => text(&|t| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(V::Ts)
        }),
        (Kind::Instant, Value::Integer(us)) => V::Micros(*us),
        // SQLite target: the text the sqlite dialect writes, `..+00:00`.
        (Kind::Instant, _) => text(&|t| {
            DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|d| V::Micros(d.timestamp_micros()))
        }),
        (Kind::Bool, Value::Integer(0)) => V::Bool(false),
        (Kind::Bool, Value::Integer(1)) => V::Bool(true),
        _ => V::Raw(raw.clone()),
    }
}

/// Decimal digits without the scale: `-0012.3400` -> `-12.34`, `-0.000` -> `0`.
fn norm_dec(s: &str) -> String {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

/// What SQLite keeps of a decimal's text in a `DECIMAL` column (NUMERIC affinity: an
/// integer or a double, rounded).
fn sqlite_numeric(text: &str) -> Value {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    c.execute_batch("CREATE TABLE d(x DECIMAL)").unwrap();
    c.execute("INSERT INTO d VALUES (?1)", [text]).unwrap();
    c.query_row("SELECT x FROM d", [], |r| r.get(0)).unwrap()
}

/// A typed value (from either side) as the target `dest` holds it under the documented
/// mapping. The only normalisations:
///
/// - decimal -> SQLite: a SQLite target keeps `DECIMAL` columns with SQLite's numeric
///   affinity, so the text becomes an integer or a double, rounded beyond double
///   precision (README, "Status and limits"). Expected: what SQLite itself makes of the
///   source's digits.
/// - decimal -> server: compared as numbers, not by scale: a `DECIMAL(p,s)` column pads
///   to its scale, and an unconstrained PostgreSQL `numeric` becomes `DECIMAL(65,30)` on
///   MariaDB (`Dialect::map_type`), which pads to 30 places.
///
/// Everything else is compared as it is: instants as microseconds since the epoch
/// (whatever zone a side displays them in), dates and times parsed (servers print six
/// fractional digits, the sqlite dialect trims trailing zeros), booleans as read back
/// from the 1/0 a SQLite or MariaDB `BOOLEAN` holds, and single-precision floats in
/// single precision: a `real`/`FLOAT` column maps to `DOUBLE` on the target, and the
/// two sources fill it differently (PostgreSQL captures a `real` as its own shortest
/// text, so `1.2345679` arrives as the double nearest to 1.2345679; MariaDB widens a
/// `FLOAT` to DOUBLE first, so the float's exact binary value arrives): either way the
/// float4 must survive, read back in float4 precision.
fn for_dest(dest: Dest, v: V) -> V {
    match (dest, v) {
        (Dest::Sqlite, V::Dec(d)) => V::Raw(sqlite_numeric(&d)),
        (Dest::Server(_), V::Dec(d)) => V::Dec(norm_dec(&d)),
        (_, v) => v,
    }
}

/// The comparable form of a value the test meant to write (`L`), to check that the
/// source holds it (a check of the test's own set-up).
fn intended(v: &L) -> V {
    match v {
        L::Null => V::Null,
        L::Int(i) => V::Int(*i),
        L::F64(f) => V::F64(f.to_bits()),
        L::F32(f) => V::F32(f.to_bits()),
        L::Dec(d) => V::Dec(norm_dec(d)),
        L::Text(t) => V::Text(t.clone()),
        L::Bytes(b) => V::Bytes(b.clone()),
        L::Date(d) => V::Date(NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()),
        L::Time(t) => V::Time(NaiveTime::parse_from_str(t, "%H:%M:%S%.f").unwrap()),
        L::Ts(t) => V::Ts(parse_ts(t)),
        L::Utc(t) => V::Micros(utc_micros(t)),
        L::Local(t, offset_s) => V::Micros(utc_micros(t) - offset_s * 1_000_000),
        L::Bool(b) => V::Bool(*b),
    }
}

// ------------------------------------------------------------------------ sessions

/// A connection to a source database, as a plant application would hold one.
struct Session {
    conn: OdbcConnection<'static>,
    server: Server,
    db: String,
}

impl Session {
    fn open(db: &TestDb) -> Session {
        Session {
            conn: db.connect(),
            server: db.server,
            db: db.name.clone(),
        }
    }

    fn exec(&self, sql: &str) {
        exec_in(&self.conn, sql)
            .unwrap_or_else(|e| panic!("{} {}: {sql}: {e}", self.server.title(), self.db));
    }

    /// Autocommit off: the statements until [`commit`](Self::commit) are one transaction.
    fn begin(&self) {
        self.conn.set_autocommit(false).unwrap();
    }

    fn commit(&self) {
        self.conn.commit().unwrap();
        self.conn.set_autocommit(true).unwrap();
    }

    /// Run `sqls` as one transaction.
    fn txn(&self, sqls: &[String]) {
        self.begin();
        for s in sqls {
            self.exec(s);
        }
        self.commit();
    }

    /// The writer session's time zone set to a fixed +08:00 (PostgreSQL: the named zone
    /// Asia/Shanghai, which has had no daylight saving time since 1991; MariaDB: an
    /// offset, as its zone tables need not be loaded). Returns the offset in seconds.
    fn set_time_zone_plus_8(&self) -> i64 {
        match self.server {
            Server::Postgres => self.exec("SET TIME ZONE 'Asia/Shanghai'"),
            Server::MariaDb => self.exec("SET time_zone = '+08:00'"),
        }
        8 * 3600
    }
}

// ------------------------------------------------------------------------ rig

/// A workspace whose sender captures on a fresh server database and whose receiver
/// applies to SQLite or to a fresh database on the other server. Fields drop in order:
/// processes first, then the workspace, then the databases.
struct SrcRig {
    tx: SenderNode,
    rx: ReceiverNode,
    ws: Workspace,
    dst: Option<TestDb>,
    src: TestDb,
    pair: Pair,
    tables: Vec<Tbl>,
}

impl SrcRig {
    /// Fresh databases, the source tables created, the receiver started, the sender's
    /// config written (`cfg` plus the tables, the target's dialect, the receiver's
    /// address, the source's ODBC URL). Capture is NOT installed yet.
    fn new(pair: Pair, name: &str, cfg: SenderConfig, tables: Vec<Tbl>) -> SrcRig {
        let src = pair.src.fresh_database(&format!("src_{name}"));
        for t in &tables {
            src.exec(&[&t.ddl(pair.src)]);
        }
        let dst = match pair.dest {
            Dest::Sqlite => None,
            Dest::Server(s) => Some(s.fresh_database(&format!("dst_{name}"))),
        };
        let ws = Workspace::new(&format!(
            "odbcsrc-{name}-{}-{}",
            pair.src.dialect(),
            pair.dest.dialect()
        ));
        let rcfg = match &dst {
            Some(db) => ReceiverConfig::odbc(&db.conn_str()),
            None => ReceiverConfig::default(),
        };
        let mut rx = ws.receiver(rcfg);
        rx.start();
        let mut cfg = cfg.dialect(pair.dest.dialect()).connect(rx.addr());
        for t in &tables {
            cfg = cfg.table(t.config());
        }
        let tx = ws.sender(cfg);
        use_odbc_source(&tx, &src.conn_str());
        SrcRig {
            tx,
            rx,
            ws,
            dst,
            src,
            pair,
            tables,
        }
    }

    fn node(&self) -> &str {
        &self.tx.cfg.node
    }

    fn session(&self) -> Session {
        Session::open(&self.src)
    }

    /// `gapsync-sender once`, which must succeed (the receiver's quarantine reasons in
    /// the message otherwise).
    fn once(&self) {
        let out = self.tx.exec(&["once"]);
        if !out.success() {
            let reasons: Vec<String> = self
                .rx
                .work_files("quarantine")
                .iter()
                .filter(|f| f.to_string_lossy().ends_with(".reason"))
                .map(|f| std::fs::read_to_string(f).unwrap().trim().to_owned())
                .collect();
            panic!(
                "`gapsync-sender once` failed ({}) on {}: {} batch(es) quarantined by the \
                 receiver:\n  {}\n--- sender stderr\n{}",
                out.status,
                self.pair.name(),
                reasons.len(),
                reasons.join("\n  "),
                out.stderr
            );
        }
    }

    fn ledger_seqs(&self) -> Vec<u64> {
        match &self.dst {
            Some(db) => db.ledger_seqs(self.node()),
            None => self.rx.ledger_seqs(self.node()),
        }
    }

    fn quarantined_seqs(&self) -> Vec<u64> {
        match &self.dst {
            Some(db) => db.quarantined_seqs(self.node()),
            None => self.rx.quarantined_seqs(self.node()),
        }
    }

    fn target_last_seq(&self) -> u64 {
        let a = self.ledger_seqs().last().copied().unwrap_or(0);
        let q = self.quarantined_seqs().last().copied().unwrap_or(0);
        a.max(q)
    }

    /// Wait until nothing is pending, unanswered or queued on the source and the target
    /// recorded every seq cut. Only meaningful once the source's writers have stopped.
    fn wait_synced(&self, timeout: Duration) {
        self.ws.wait_until(
            &format!("{} to be caught up", self.pair.name()),
            timeout,
            || {
                let p = self.src.sender_progress();
                p.pending == 0
                    && p.unanswered == 0
                    && p.queued_snapshots == 0
                    && self.target_last_seq() == p.last_cut
            },
        );
    }

    /// (column, type) of a target table, in order: PostgreSQL `data_type`, MariaDB
    /// `column_type`, SQLite's declared type.
    fn target_types(&self, table: &str) -> Vec<(String, String)> {
        match &self.dst {
            Some(db) => db.column_types(table),
            None => {
                let c = self.rx.target();
                let mut st = c
                    .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
                    .unwrap();
                st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap()
            }
        }
    }

    /// Every row of source table `t`, raw (read with [`read_expr`]).
    fn source_raw(&self, t: &Tbl) -> Vec<Vec<Value>> {
        let cols = t.cols_on(self.pair.src);
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| read_expr(self.pair.src, c.kind, c.name, false))
            .collect();
        self.src.query(&format!(
            "SELECT {} FROM {}",
            exprs.join(", "),
            sql_ident(t.source)
        ))
    }

    /// Every row of the target of `t`, in comparable form.
    fn target_rows(&self, t: &Tbl) -> Result<Vec<Vec<V>>, String> {
        let cols = t.cols_on(self.pair.src);
        let names: Vec<String> = cols.iter().map(|c| t.target_col(c.name)).collect();
        let have: BTreeSet<String> = self
            .target_types(t.target_name())
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let want: BTreeSet<String> = names.iter().cloned().collect();
        if have != want {
            return Err(format!(
                "target table {:?} has columns {have:?}, expected {want:?}",
                t.target_name()
            ));
        }
        let raw: Vec<Vec<Value>> = match (&self.dst, self.pair.dest) {
            (Some(db), Dest::Server(s)) => {
                let exprs: Vec<String> = cols
                    .iter()
                    .zip(&names)
                    .map(|(c, n)| read_expr(s, c.kind, n, true))
                    .collect();
                db.try_query(&format!(
                    "SELECT {} FROM {}",
                    exprs.join(", "),
                    sql_ident(t.target_name())
                ))?
            }
            _ => read_rows(&self.rx.target(), t.target_name(), &names, &names[..1])
                .map_err(|e| format!("reading SQLite target {}: {e}", t.target_name()))?,
        };
        let sqlite = self.pair.dest == Dest::Sqlite;
        Ok(raw
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&cols)
                    .map(|(v, c)| for_dest(self.pair.dest, canon(c.kind, v, sqlite)))
                    .collect()
            })
            .collect())
    }

    /// Compare source table `t` with its target row by row (matched by key), typed.
    /// Returns the number of rows, or every difference found.
    fn compare(&self, t: &Tbl) -> Result<usize, String> {
        let cols = t.cols_on(self.pair.src);
        let key_idx: Vec<usize> = t
            .key
            .iter()
            .map(|k| cols.iter().position(|c| c.name == *k).unwrap())
            .collect();
        let keyed = |rows: Vec<Vec<V>>, side: &str| -> Result<BTreeMap<String, Vec<V>>, String> {
            let mut m = BTreeMap::new();
            for r in rows {
                let k = key_idx
                    .iter()
                    .map(|&i| format!("{}={}", cols[i].name, show(&r[i])))
                    .collect::<Vec<_>>()
                    .join(", ");
                if m.insert(k.clone(), r).is_some() {
                    return Err(format!("{side}: key {k} twice"));
                }
            }
            Ok(m)
        };
        let src_rows: Vec<Vec<V>> = self
            .source_raw(t)
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&cols)
                    .map(|(v, c)| for_dest(self.pair.dest, canon(c.kind, v, false)))
                    .collect()
            })
            .collect();
        let a = keyed(src_rows, "source")?;
        let b = keyed(self.target_rows(t)?, "target")?;
        let mut diffs = Vec::new();
        for (k, ra) in &a {
            match b.get(k) {
                None => diffs.push(format!("row {k}: missing on the target")),
                Some(rb) => {
                    for ((va, vb), c) in ra.iter().zip(rb).zip(&cols) {
                        if va != vb {
                            diffs.push(format!(
                                "row {k}: column {} -> {}: source has {} but target has {}",
                                c.name,
                                t.target_col(c.name),
                                show(va),
                                show(vb)
                            ));
                        }
                    }
                }
            }
        }
        for k in b.keys().filter(|k| !a.contains_key(*k)) {
            diffs.push(format!("row {k}: on the target only"));
        }
        if diffs.is_empty() {
            Ok(a.len())
        } else {
            let n = diffs.len();
            diffs.truncate(40);
            Err(format!(
                "{}: {} -> {}: {n} difference(s):\n  {}",
                self.pair.name(),
                t.source,
                t.target_name(),
                diffs.join("\n  ")
            ))
        }
    }

    /// [`compare`](Self::compare) every table; panics with every difference and the logs.
    fn assert_synced(&self) -> usize {
        let mut rows = 0;
        let mut errors = Vec::new();
        for t in &self.tables {
            match self.compare(t) {
                Ok(n) => rows += n,
                Err(e) => errors.push(e),
            }
        }
        assert!(
            errors.is_empty(),
            "source and target differ (databases {} / {}):\n{}\n{}",
            self.src.name,
            self.dst.as_ref().map_or("replica.db", |d| d.name.as_str()),
            errors.join("\n"),
            self.ws.logs(20)
        );
        rows
    }

    /// Every batch the sender cut was applied once, in order, never failed: the target's
    /// ledger holds exactly 1..=N, nothing is quarantined on either side.
    fn assert_clean_ledger(&self) -> u64 {
        let batches = self.src.sender_batches();
        let n = batches.len() as u64;
        assert!(n > 0, "no batch was cut");
        let want: Vec<u64> = (1..=n).collect();
        assert_eq!(
            self.ledger_seqs(),
            want,
            "{}: the target's ledger must hold every seq 1..={n} exactly once",
            self.pair.name()
        );
        for b in &batches {
            assert_eq!(
                (b.state.as_str(), b.attempts),
                ("applied", 0),
                "{}: batch {b:?}\n{}",
                self.pair.name(),
                self.ws.logs(30)
            );
        }
        assert!(self.quarantined_seqs().is_empty());
        assert!(self.rx.work_files("quarantine").is_empty());
        assert!(self.tx.work_files("quarantine").is_empty());
        assert_eq!(
            self.tx.status()["rejected"],
            0,
            "{}: changes were rejected",
            self.pair.name()
        );
        n
    }

    /// Text of every archived batch file.
    fn archived_text(&self) -> String {
        self.tx
            .work_files("archive")
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }
}

/// The type gapsync's snapshot gives column `c` (source `src`) on `dest`: the product's
/// declared type per column class (sender/src/capture/odbc.rs) through the dialect's
/// mapping (common/src/dialect/types.rs).
fn expected_type(dest: Dest, src: Server, c: &Col, is_key: bool) -> String {
    let dec = c.precision(src);
    match dest {
        Dest::Sqlite => match c.kind {
            Kind::Int => "BIGINT".into(),
            Kind::Float | Kind::Float4 => "DOUBLE".into(),
            Kind::Dec => dec.map_or("DECIMAL".into(), |(p, s)| format!("DECIMAL({p},{s})")),
            Kind::Text => "TEXT".into(),
            Kind::Bytes => "BLOB".into(),
            Kind::Date => "DATE".into(),
            Kind::Time => "TIME(6)".into(),
            Kind::Ts => "TIMESTAMP(6)".into(),
            Kind::Instant => "TIMESTAMP WITH TIME ZONE".into(),
            Kind::Bool => "BOOLEAN".into(),
        },
        Dest::Server(Server::Postgres) => match c.kind {
            Kind::Int => "bigint",
            Kind::Float | Kind::Float4 => "double precision",
            Kind::Dec => "numeric",
            Kind::Text => "text",
            Kind::Bytes => "bytea",
            Kind::Date => "date",
            Kind::Time => "time without time zone",
            Kind::Ts => "timestamp without time zone",
            Kind::Instant => "timestamp with time zone",
            Kind::Bool => "smallint",
        }
        .into(),
        Dest::Server(Server::MariaDb) => match c.kind {
            Kind::Int => "bigint(20)".into(),
            Kind::Float | Kind::Float4 => "double".into(),
            Kind::Dec => dec.map_or("decimal(65,30)".into(), |(p, s)| {
                format!("decimal({p},{s})")
            }),
            Kind::Text if is_key => "varchar(255)".into(),
            Kind::Text => "longtext".into(),
            Kind::Bytes if is_key => "varbinary(255)".into(),
            Kind::Bytes => "longblob".into(),
            Kind::Date => "date".into(),
            Kind::Time => "time(6)".into(),
            Kind::Ts | Kind::Instant => "datetime(6)".into(),
            Kind::Bool => "tinyint(1)".into(),
        },
    }
}

/// The target table of `t` has the mapped columns with the mapped types.
fn assert_target_types(rig: &SrcRig, t: &Tbl) {
    let want: Vec<(String, String)> = t
        .cols_on(rig.pair.src)
        .iter()
        .map(|c| {
            (
                t.target_col(c.name),
                expected_type(rig.pair.dest, rig.pair.src, c, t.key.contains(&c.name)),
            )
        })
        .collect();
    assert_eq!(
        rig.target_types(t.target_name()),
        want,
        "{}: the snapshot's CREATE TABLE of {}",
        rig.pair.name(),
        t.target_name()
    );
}

// ------------------------------------------------------------------------ 1. matrix

const METER_COLS: &[Col] = &[
    col("id", Kind::Int, "bigint", "bigint"),
    col("meter", Kind::Text, "varchar(64)", "varchar(64)"),
    col("value", Kind::Float, "double precision", "double"),
    col("quality", Kind::Int, "smallint", "tinyint"),
    col("ok", Kind::Bool, "boolean", ""),
    // MariaDB's BOOLEAN is tinyint(1): an integer column (class int), it arrives as a
    // BIGINT holding 0/1 and is compared as an integer.
    col("okm", Kind::Int, "", "tinyint(1)"),
    col("amount", Kind::Dec, "numeric(20,6)", "decimal(20,6)"),
    col("at", Kind::Ts, "timestamp(6)", "datetime(6)"),
    col("seen", Kind::Instant, "timestamptz", "timestamp(6) NULL"),
    col("day", Kind::Date, "date", "date"),
    col("tod", Kind::Time, "time(6)", "time(6)"),
    col("raw", Kind::Bytes, "bytea", "longblob"),
    col("note", Kind::Text, "text", "longtext"),
];

const LINE_COLS: &[Col] = &[
    col("station", Kind::Text, "varchar(64)", "varchar(64)"),
    col("line", Kind::Int, "integer", "int"),
    col("mw", Kind::Float, "double precision", "double"),
    col("mvar", Kind::Float, "double precision", "double"),
];

fn meter_table() -> Tbl {
    Tbl::new("meter", METER_COLS, &["id"])
        .target("计量_读数")
        .rename("value", "值")
        .rename("at", "采集时间")
}

fn line_table() -> Tbl {
    Tbl::new("line_flow", LINE_COLS, &["station", "line"])
}

const METERS: &[&str] = &["1号主变 高压侧", "#3机组 出口", "220kV 母线 A相", "m'q\"\\"];
const STATIONS: &[&str] = &["东郊变", "西山变", "北湖220kV站", "plant'1"];

/// A random value of `kind` for non-key column `c` (NULL now and then).
fn random_value(c: &Col, rng: &mut Rng, n: i64) -> L {
    if rng.chance(8) {
        return L::Null;
    }
    match (c.name, c.kind) {
        ("okm", _) => L::Int(rng.range(0, 1)),
        (_, Kind::Int) => L::Int(rng.range(-100, 100)),
        (_, Kind::Float) => match rng.below(6) {
            0 => L::F64(0.1),
            1 => L::F64(1e-300),
            _ => L::F64(rng.unit() * 1000.0 - 500.0),
        },
        (_, Kind::Float4) => L::F32(rng.unit() as f32),
        (_, Kind::Dec) => random_dec(rng),
        (_, Kind::Text) if c.name == "meter" => L::Text(format!("{} #{n}", rng.pick(METERS))),
        (_, Kind::Text) => L::Text(match rng.below(4) {
            0 => format!("备注 {n}\n第二行"),
            1 => format!("it's \\ {n} 🔥"),
            2 => String::new(),
            _ => format!("note {n}"),
        }),
        (_, Kind::Bytes) => L::Bytes((0..rng.below(24)).map(|_| rng.below(256) as u8).collect()),
        (_, Kind::Date) => {
            L::Date(["2026-01-02", "1999-12-31", "2024-02-29"][rng.below(3) as usize])
        }
        (_, Kind::Time) => {
            L::Time(["00:00:00", "12:34:56.5", "23:59:59.999999"][rng.below(3) as usize])
        }
        (_, Kind::Ts) => L::Ts(format!(
            "2026-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 999_999)
        )),
        (_, Kind::Instant) => L::Utc(format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            rng.range(2001, 2037),
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 999_999)
        )),
        (_, Kind::Bool) => L::Bool(rng.chance(50)),
    }
}

/// A random decimal for numeric(20,6) (static strings: the literal type holds `&str`).
fn random_dec(rng: &mut Rng) -> L {
    const DECS: &[&str] = &[
        "12345678901234.567890",
        "-0.000001",
        "1.500000",
        "0",
        "-99999999999999.999999",
        "42.420000",
        "0.000100",
    ];
    L::Dec(DECS[rng.below(DECS.len() as u64) as usize])
}

/// Non-key columns of `t` on `s` with random values.
fn random_row(t: &Tbl, s: Server, rng: &mut Rng, n: i64) -> Vec<(Col, L)> {
    t.cols_on(s)
        .into_iter()
        .filter(|c| !t.key.contains(&c.name))
        .map(|c| {
            let v = random_value(&c, rng, n);
            (c, v)
        })
        .collect()
}

fn meter_key(id: i64) -> Vec<(Col, L)> {
    vec![(METER_COLS[0], L::Int(id))]
}

fn line_key(station: &str, line: i64) -> Vec<(Col, L)> {
    vec![
        (LINE_COLS[0], L::Text(station.to_owned())),
        (LINE_COLS[1], L::Int(line)),
    ]
}

/// The statements of one random change to `meter` or `line_flow`, keeping the model of
/// existing keys (so that no statement fails on a duplicate key).
struct Model {
    meters: BTreeSet<i64>,
    next: i64,
    lines: BTreeSet<(String, i64)>,
}

impl Model {
    fn step(&mut self, s: Server, rng: &mut Rng, meter: &Tbl, line: &Tbl) -> String {
        let n = self.next;
        if rng.chance(60) {
            let pick = self
                .meters
                .iter()
                .nth(rng.below(self.meters.len().max(1) as u64) as usize)
                .copied();
            match (rng.below(100), pick) {
                (0..=39, _) | (_, None) => {
                    let id = self.next;
                    self.next += 1;
                    self.meters.insert(id);
                    let mut row = meter_key(id);
                    row.extend(random_row(meter, s, rng, n));
                    insert_sql(s, meter, &row)
                }
                (40..=74, Some(id)) => {
                    let row = random_row(meter, s, rng, n);
                    let keep = rng.below(row.len() as u64) as usize;
                    let part: Vec<(Col, L)> = row
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| *i == keep || rng.chance(30))
                        .map(|(_, x)| x)
                        .collect();
                    format!(
                        "UPDATE {} SET {} WHERE {}",
                        sql_ident("meter"),
                        set_list(s, &part),
                        where_key(s, &[("id", L::Int(id))])
                    )
                }
                (75..=84, Some(id)) => {
                    // Primary-key change.
                    let to = self.next;
                    self.next += 1;
                    self.meters.remove(&id);
                    self.meters.insert(to);
                    format!(
                        "UPDATE {} SET {} = {to}, {} WHERE {}",
                        sql_ident("meter"),
                        sql_ident("id"),
                        set_list(s, &random_row(meter, s, rng, n)[..1]),
                        where_key(s, &[("id", L::Int(id))])
                    )
                }
                (_, Some(id)) => {
                    self.meters.remove(&id);
                    format!(
                        "DELETE FROM {} WHERE {}",
                        sql_ident("meter"),
                        where_key(s, &[("id", L::Int(id))])
                    )
                }
            }
        } else {
            let st = (*rng.pick(STATIONS)).to_owned();
            let ln = rng.range(1, 30);
            let exists = self.lines.contains(&(st.clone(), ln));
            let wk = |st: &str, ln: i64| {
                where_key(
                    s,
                    &[("station", L::Text(st.to_owned())), ("line", L::Int(ln))],
                )
            };
            if !exists {
                self.lines.insert((st.clone(), ln));
                let mut row = line_key(&st, ln);
                row.extend(random_row(line, s, rng, n));
                return insert_sql(s, line, &row);
            }
            match rng.below(3) {
                0 => format!(
                    "UPDATE {} SET {} WHERE {}",
                    sql_ident("line_flow"),
                    set_list(s, &random_row(line, s, rng, n)),
                    wk(&st, ln)
                ),
                1 => {
                    // Composite key change, to a free key.
                    let to = ((*rng.pick(STATIONS)).to_owned(), rng.range(31, 99));
                    if self.lines.contains(&to) {
                        return format!(
                            "UPDATE {} SET {} = {} WHERE {}",
                            sql_ident("line_flow"),
                            sql_ident("mvar"),
                            sql_ident("mvar"),
                            wk(&st, ln)
                        );
                    }
                    self.lines.remove(&(st.clone(), ln));
                    self.lines.insert(to.clone());
                    format!(
                        "UPDATE {} SET {} WHERE {}",
                        sql_ident("line_flow"),
                        set_list(s, &line_key(&to.0, to.1)),
                        wk(&st, ln)
                    )
                }
                _ => {
                    self.lines.remove(&(st.clone(), ln));
                    format!(
                        "DELETE FROM {} WHERE {}",
                        sql_ident("line_flow"),
                        wk(&st, ln)
                    )
                }
            }
        }
    }
}

/// Matrix over the four pairs: a table with a primary key (renamed target table and
/// columns, every column class) and one with a composite key. Rows present before
/// `install` arrive through `snapshot`, which creates the target tables with the mapped
/// types; then random inserts, updates (primary-key and composite-key changes
/// included), deletes, hand-written sequences (a key changed back and forth, delete and
/// re-insert of one key, a no-op update, the server's upsert: PostgreSQL `ON CONFLICT`,
/// MariaDB `REPLACE` and `ON DUPLICATE KEY UPDATE`), shipped with `once`. Source and
/// target are compared row by row, typed; the ledger holds seqs 1..=N exactly once.
#[test]
fn odbc_source_matrix_all_operations() {
    for_each_pair("odbc_source_matrix_all_operations", &PAIRS, |pair| {
        let s = pair.src;
        let (meter, line) = (meter_table(), line_table());
        let cfg = SenderConfig::new("matrix").max_rows(50);
        let rig = SrcRig::new(pair, "matrix", cfg, vec![meter.clone(), line.clone()]);
        let w = rig.session();
        let mut rng = Rng::new(11);
        let mut model = Model {
            meters: BTreeSet::new(),
            next: 1,
            lines: BTreeSet::new(),
        };

        // Rows before install: they travel in the snapshot only.
        let mut seed = Vec::new();
        for _ in 0..30 {
            let id = model.next;
            model.next += 1;
            model.meters.insert(id);
            let mut row = meter_key(id);
            row.extend(random_row(&meter, s, &mut rng, id));
            seed.push(insert_sql(s, &meter, &row));
        }
        for (i, st) in STATIONS.iter().enumerate() {
            let ln = i as i64 + 1;
            model.lines.insert(((*st).to_owned(), ln));
            let mut row = line_key(st, ln);
            row.extend(random_row(&line, s, &mut rng, ln));
            seed.push(insert_sql(s, &line, &row));
        }
        w.txn(&seed);
        rig.tx.install();
        rig.tx.snapshot(&[]);
        rig.once();
        rig.wait_synced(secs(20));
        let rows = rig.assert_synced();
        assert_eq!(rows, 30 + STATIONS.len(), "rows moved by the snapshot");
        assert_target_types(&rig, &meter);
        assert_target_types(&rig, &line);

        // Random changes in small transactions.
        for _ in 0..60 {
            let k = rng.range(1, 4);
            let sqls: Vec<String> = (0..k)
                .map(|_| model.step(s, &mut rng, &meter, &line))
                .collect();
            w.txn(&sqls);
        }
        // Hand-written sequences in one transaction.
        let row = |id: i64, note: &str, rng: &mut Rng| {
            let mut r = meter_key(id);
            r.extend(random_row(&meter, s, rng, id));
            for (c, v) in r.iter_mut() {
                if c.name == "note" {
                    *v = L::Text(note.to_owned());
                }
            }
            insert_sql(s, &meter, &r)
        };
        let m = sql_ident("meter");
        let (id, note, val) = (sql_ident("id"), sql_ident("note"), sql_ident("value"));
        let mut seq = vec![
            row(900_001, "tmp", &mut rng),
            format!("UPDATE {m} SET {val} = 2.5 WHERE {id} = 900001"),
            format!("UPDATE {m} SET {id} = 900002 WHERE {id} = 900001"),
            format!("UPDATE {m} SET {id} = 900001 WHERE {id} = 900002"),
            format!("DELETE FROM {m} WHERE {id} = 900001"),
            row(900_001, "re-inserted", &mut rng),
            format!("UPDATE {m} SET {id} = 900003 WHERE {id} = 900001"),
            row(900_001, "same key again", &mut rng),
            format!("UPDATE {m} SET {note} = {note} WHERE {id} = 900001"),
        ];
        match s {
            Server::Postgres => seq.push(format!(
                "{} ON CONFLICT ({id}) DO UPDATE SET {note} = 'upsert: ' || EXCLUDED.{note}",
                row(900_003, "conflict", &mut rng)
            )),
            Server::MariaDb => {
                seq.push(row(900_003, "replaced", &mut rng).replacen("INSERT", "REPLACE", 1));
                seq.push(format!(
                    "{} ON DUPLICATE KEY UPDATE {note} = CONCAT('upsert: ', VALUES({note}))",
                    row(900_001, "duplicate", &mut rng)
                ));
            }
        }
        w.txn(&seq);
        rig.once();
        rig.wait_synced(secs(20));
        let rows = rig.assert_synced();
        assert!(rows > 30, "only {rows} rows at the end");
        let upserted = rig.src.query(&format!(
            "SELECT {note} FROM {m} WHERE {id} IN (900001, 900003) ORDER BY {id}"
        ));
        let want_notes = match s {
            Server::Postgres => ["same key again", "upsert: conflict"],
            Server::MariaDb => ["upsert: duplicate", "replaced"],
        };
        assert_eq!(
            upserted,
            want_notes
                .iter()
                .map(|n| vec![Value::Text((*n).to_owned())])
                .collect::<Vec<_>>(),
            "the hand-written sequence did not run as meant (test set-up)"
        );

        let text = rig.archived_text();
        assert!(
            text.contains("UPDATE \"计量_读数\" SET \"id\" = 900002,"),
            "the primary-key change was not shipped as an UPDATE of the key"
        );
        for kind in ["INSERT INTO", "UPDATE", "DELETE FROM"] {
            for t in ["计量_读数", "line_flow"] {
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(&format!("{kind} \"{t}\""))),
                    "no {kind} statement for {t} in the archived batches"
                );
            }
        }
        let n = rig.assert_clean_ledger();
        assert!(n >= 3, "only {n} batches");
    });
}

// ------------------------------------------------------------------------ 2. values

const VALS_COLS: &[Col] = &[
    col("id", Kind::Int, "bigint", "bigint"),
    col("i16", Kind::Int, "smallint", "smallint"),
    col("i32", Kind::Int, "integer", "int"),
    col("i64", Kind::Int, "bigint", "bigint"),
    col("i8", Kind::Int, "", "tinyint"),
    // MariaDB BOOLEAN (tinyint(1)): an integer, see METER_COLS.
    col("flag", Kind::Int, "", "tinyint(1)"),
    // Beyond BIGINT: carried as an exact decimal (class decimal).
    col("u64", Kind::Dec, "", "bigint unsigned"),
    col("b", Kind::Bool, "boolean", ""),
    col("dec", Kind::Dec, "numeric(30,6)", "decimal(30,6)"),
    col("dec_wide", Kind::Dec, "numeric", "decimal(65,30)"),
    col("f64", Kind::Float, "double precision", "double"),
    col("f32", Kind::Float4, "real", "float"),
    col("txt", Kind::Text, "text", "longtext"),
    col("vc", Kind::Text, "varchar(100)", "varchar(100)"),
    col("d", Kind::Date, "date", "date"),
    col("tm", Kind::Time, "time(6)", "time(6)"),
    col("ts", Kind::Ts, "timestamp(6)", "datetime(6)"),
    col("tz", Kind::Instant, "timestamptz", "timestamp(6) NULL"),
    col("bin", Kind::Bytes, "bytea", "longblob"),
];

fn texts(long: bool) -> Vec<L> {
    let mut v = vec![
        "",
        "it's",
        "say \"hi\"",
        "C:\\temp\\new\\",
        "a\\nb\\'c\\0",
        "line1\nline2",
        "line1\r\nline2\r\n",
        "a\tb",
        "变电站 1号主变压器 高压侧 有功功率",
        "🚀⚡🔌 𝄞 𠜎",
        "中文'引号\"\\\n🚀\r\n",
        "NULL",
    ]
    .into_iter()
    .map(|t| L::Text(t.to_owned()))
    .collect::<Vec<_>>();
    if long {
        v.push(L::Text("电厂 ABC 'q' \\ 🔥\n".repeat(300)));
    }
    v
}

/// The cases of column `c` for `pair` (each row takes the next case of every column).
fn cases(pair: Pair, c: &Col) -> Vec<L> {
    let pg = pair.src == Server::Postgres;
    let ints = |v: &[i64]| v.iter().map(|i| L::Int(*i)).collect::<Vec<_>>();
    match c.name {
        "i16" => ints(&[-32768, 32767, 0, -1]),
        "i32" => ints(&[i64::from(i32::MIN), i64::from(i32::MAX), 0, 1]),
        "i64" => ints(&[i64::MIN, i64::MAX, 0, -1, i64::MIN + 1]),
        "i8" => ints(&[-128, 127, 0]),
        "flag" => ints(&[0, 1]),
        "u64" => ["0", "18446744073709551615", "9223372036854775808"]
            .into_iter()
            .map(L::Dec)
            .collect(),
        "b" => vec![L::Bool(true), L::Bool(false)],
        "dec" => [
            "12345678901234.567890",
            "-0.000001",
            "1.500000",
            "100.000000",
            "0.000000",
            "999999999999999999999999.999999",
            "-999999999999999999999999.999999",
        ]
        .into_iter()
        .map(L::Dec)
        .collect(),
        "dec_wide" => [
            "12345678901234.567890",
            "-0.000001",
            "1.500",
            "0.1000000000000000000001",
            "-123456789012345678901234567890.123456789",
            "0",
            "100",
        ]
        .into_iter()
        .map(L::Dec)
        .collect(),
        "f64" => {
            let mut v = vec![
                0.1,
                0.1 + 0.2,
                1e-300,
                1.7976931348623157e308,
                -1.7976931348623157e308,
                5e-324,
                2.2250738585072014e-308,
                1e16,
                std::f64::consts::PI,
                -1.5,
                0.0,
            ];
            // PostgreSQL's float8 has the infinities; the sqlite dialect writes them as
            // 9e999 / -9e999 (MariaDB's DOUBLE has none: the mysql dialect refuses them).
            if pair == PG_TO_SQLITE {
                v.extend([f64::INFINITY, f64::NEG_INFINITY]);
            }
            v.into_iter().map(L::F64).collect()
        }
        "f32" => [
            1.234_567_9_f32,
            0.1,
            16_777_216.0,
            1e-30,
            3.4028e38,
            -2.5,
            1.175_494_4e-38,
        ]
        .into_iter()
        .map(L::F32)
        .collect(),
        "txt" => texts(true),
        "vc" => texts(false),
        "d" => [
            "2026-01-02",
            "1000-01-01",
            "9999-12-31",
            "2024-02-29",
            "1970-01-01",
        ]
        .into_iter()
        .map(L::Date)
        .collect(),
        "tm" => [
            "00:00:00",
            "23:59:59.999999",
            "12:34:56.5",
            "00:00:00.000001",
            "08:00:00",
        ]
        .into_iter()
        .map(L::Time)
        .collect(),
        "ts" => [
            "2026-01-02 03:04:05.123456",
            "1970-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "2024-02-29 12:00:00.000001",
            "1000-01-01 00:00:00",
        ]
        .into_iter()
        .map(|t| L::Ts(t.to_owned()))
        .collect(),
        "tz" => {
            // Written by a session at +08:00: instants given in UTC, and wall-clock
            // times of that session (offset in seconds).
            let mut v = vec![
                L::Utc("2026-01-02 03:04:05.123456".into()),
                L::Local("2026-07-01 08:00:00.5", 8 * 3600),
                L::Utc("1970-01-01 00:00:01".into()),
                L::Local("2000-01-01 00:00:00", 8 * 3600),
                L::Utc("2038-01-19 03:14:07.999999".into()),
            ];
            // MariaDB's TIMESTAMP holds 1970..2038 only.
            if pg {
                v.push(L::Utc("1900-01-01 00:00:00.000001".into()));
                v.push(L::Utc("2100-06-30 12:00:00.5".into()));
            }
            v
        }
        "bin" => vec![
            L::Bytes((0..=255u8).collect()),
            L::Bytes(Vec::new()),
            L::Bytes(b"'); --\n\0\r\\".to_vec()),
            L::Bytes(vec![0u8; 1000]),
            L::Bytes(vec![0xFF]),
        ],
        other => panic!("no cases for column {other}"),
    }
}

/// Rows of the values table: row i takes case i (cycling) of every column; the last
/// row is NULL in every column but the key.
fn value_rows(pair: Pair, t: &Tbl) -> Vec<Vec<(Col, L)>> {
    let cols: Vec<Col> = t
        .cols_on(pair.src)
        .into_iter()
        .filter(|c| c.name != "id")
        .collect();
    let all: Vec<Vec<L>> = cols.iter().map(|c| cases(pair, c)).collect();
    let n = all.iter().map(Vec::len).max().unwrap_or(0);
    let mut rows: Vec<Vec<(Col, L)>> = (0..n)
        .map(|i| {
            cols.iter()
                .zip(&all)
                .map(|(c, cs)| (*c, cs[i % cs.len()].clone()))
                .collect()
        })
        .collect();
    rows.push(cols.iter().map(|c| (*c, L::Null)).collect());
    rows
}

/// The source holds what the test meant to write (checks the test's set-up, e.g. that
/// the writer session's time zone took effect), read back typed by id.
fn assert_source_holds(rig: &SrcRig, t: &Tbl, rows: &[(i64, Vec<(Col, L)>)]) {
    let cols = t.cols_on(rig.pair.src);
    let raw = rig.source_raw(t);
    let by_id: BTreeMap<i64, &Vec<Value>> = raw
        .iter()
        .map(|r| match r[0] {
            Value::Integer(id) => (id, r),
            ref other => panic!("id {other:?}"),
        })
        .collect();
    let mut bad = Vec::new();
    for (id, row) in rows {
        let got = by_id
            .get(id)
            .unwrap_or_else(|| panic!("source row {id} missing"));
        for (c, v) in row {
            let i = cols.iter().position(|x| x.name == c.name).unwrap();
            let mut have = canon(c.kind, &got[i], false);
            if let V::Dec(d) = &have {
                have = V::Dec(norm_dec(d));
            }
            if have != intended(v) {
                bad.push(format!(
                    "row {id} column {}: wrote {v:?}, source holds {}",
                    c.name,
                    show(&have)
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{}: the source does not hold what the test wrote (test set-up):\n  {}",
        rig.pair.name(),
        bad.join("\n  ")
    );
}

/// Every value kind from the source side, per pair: integers to the 64-bit limits,
/// exact decimals (SQLite targets: the documented numeric affinity), doubles bit-exact
/// (0.1, 1e-300, f64 max, 5e-324), single-precision floats, text with any Unicode,
/// quotes, backslashes and line breaks, varchar, dates, times and timestamps with
/// microseconds, instants (PostgreSQL `timestamptz`, MariaDB `TIMESTAMP`) written by a
/// session whose time zone is +08:00, booleans (PostgreSQL), binary with all 256 byte
/// values, and NULL in every column. Half the rows predate `install` (snapshot path, the
/// sender's own session), half are inserted after it (trigger path, the writer's
/// session); then every row is updated to another row's values (UPDATE path), two keys
/// change and one row is deleted.
#[test]
fn odbc_source_values_round_trip_exactly() {
    for_each_pair("odbc_source_values_round_trip_exactly", &PAIRS, |pair| {
        let t = Tbl::new("vals", VALS_COLS, &["id"]);
        let s = pair.src;
        let cfg = SenderConfig::new("values").max_rows(8);
        let rig = SrcRig::new(pair, "values", cfg, vec![t.clone()]);
        let w = rig.session();
        w.set_time_zone_plus_8();
        let rows = value_rows(pair, &t);
        let id_col = VALS_COLS[0];
        let with_id = |id: i64, row: &[(Col, L)]| {
            let mut r = vec![(id_col, L::Int(id))];
            r.extend(row.iter().cloned());
            r
        };
        let half = rows.len() / 2;
        let inserts: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| insert_sql(s, &t, &with_id(i as i64 + 1, r)))
            .collect();
        w.txn(&inserts[..half]);
        rig.tx.install();
        rig.tx.snapshot(&[]);
        rig.once();
        for sql in &inserts[half..] {
            w.exec(sql);
        }
        let written: Vec<(i64, Vec<(Col, L)>)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64 + 1, r.clone()))
            .collect();
        assert_source_holds(&rig, &t, &written);
        rig.once();
        rig.wait_synced(secs(20));
        let n = rig.assert_synced();
        assert_eq!(n, rows.len());
        assert_target_types(&rig, &t);

        // Every row takes the next row's values (the last, all-NULL row passes its
        // NULLs on and takes the first row's values); then key changes and a delete.
        let k = rows.len();
        let mut updates: Vec<String> = (0..k)
            .map(|i| {
                format!(
                    "UPDATE {} SET {} WHERE {} = {}",
                    sql_ident("vals"),
                    set_list(s, &rows[(i + 1) % k]),
                    sql_ident("id"),
                    i + 1
                )
            })
            .collect();
        updates.push(format!(
            "UPDATE {} SET {} = {} + 1000 WHERE {} IN (1, 2)",
            sql_ident("vals"),
            sql_ident("id"),
            sql_ident("id"),
            sql_ident("id")
        ));
        updates.push(format!(
            "DELETE FROM {} WHERE {} = 3",
            sql_ident("vals"),
            sql_ident("id")
        ));
        w.txn(&updates[..k / 2]);
        w.txn(&updates[k / 2..]);
        let mut written: Vec<(i64, Vec<(Col, L)>)> = (0..k)
            .map(|i| (i as i64 + 1, rows[(i + 1) % k].clone()))
            .filter(|(id, _)| *id != 3)
            .collect();
        for (id, _) in written.iter_mut().filter(|(id, _)| *id <= 2) {
            *id += 1000;
        }
        assert_source_holds(&rig, &t, &written);
        rig.once();
        rig.wait_synced(secs(20));
        assert_eq!(rig.assert_synced(), k - 1);
        rig.assert_clean_ledger();
    });
}

// ------------------------------------------------------------------------ writer sessions

/// Capture must not depend on the writing session. A plant application's session may
/// carry settings of its own: PostgreSQL `extra_float_digits = 0` (float output rounded
/// to 15 digits), another `DateStyle`, `IntervalStyle`, `bytea_output`, a time zone with
/// a half-hour offset, and a `search_path` without gapsync's schema (the application
/// names its tables schema-qualified); MariaDB a time zone of -09:30, other `sql_mode`
/// flags and month names. Every value written in such a session must arrive exactly,
/// and every write must succeed.
#[test]
fn odbc_source_capture_ignores_writer_session_settings() {
    const COLS: &[Col] = &[
        col("id", Kind::Int, "bigint", "bigint"),
        col("f", Kind::Float, "double precision", "double"),
        col("f4", Kind::Float4, "real", "float"),
        col("n", Kind::Dec, "numeric(20,6)", "decimal(20,6)"),
        col("tz", Kind::Instant, "timestamptz", "timestamp(6) NULL"),
        col("ts", Kind::Ts, "timestamp(6)", "datetime(6)"),
        col("d", Kind::Date, "date", "date"),
        col("bin", Kind::Bytes, "bytea", "longblob"),
    ];
    let pairs = [PG_TO_SQLITE, MARIA_TO_SQLITE];
    for_each_pair(
        "odbc_source_capture_ignores_writer_session_settings",
        &pairs,
        |pair| {
            let t = Tbl::new("plant", COLS, &["id"]);
            let s = pair.src;
            let rig = SrcRig::new(
                pair,
                "session",
                SenderConfig::new("session"),
                vec![t.clone()],
            );
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.once();
            let w = rig.session();
            let offset: i64 = match s {
                Server::Postgres => {
                    for set in [
                        "SET extra_float_digits = 0",
                        "SET DateStyle = 'SQL, DMY'",
                        "SET IntervalStyle = 'sql_standard'",
                        "SET bytea_output = 'escape'",
                        "SET TIME ZONE 'America/St_Johns'",
                    ] {
                        w.exec(set);
                    }
                    // Newfoundland, January: UTC-03:30 (no daylight saving then).
                    -(3 * 3600 + 1800)
                }
                Server::MariaDb => {
                    for set in [
                        "SET time_zone = '-09:30'",
                        "SET lc_time_names = 'zh_CN'",
                        "SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT,REAL_AS_FLOAT')",
                    ] {
                        w.exec(set);
                    }
                    -(9 * 3600 + 1800)
                }
            };
            let floats = [
                0.1 + 0.2,
                1.7976931348623157e308,
                5e-324,
                std::f64::consts::PI,
                1.0 / 3.0,
            ];
            let floats4 = [1.234_567_9_f32, 0.1, 16_777_216.0, 3.4028e38, 1e-30];
            let row = |i: usize| -> Vec<(Col, L)> {
                vec![
                    (COLS[0], L::Int(i as i64 + 1)),
                    (COLS[1], L::F64(floats[i % floats.len()])),
                    (COLS[2], L::F32(floats4[i % floats4.len()])),
                    (
                        COLS[3],
                        L::Dec(["-0.000001", "12345678901234.567890"][i % 2]),
                    ),
                    (COLS[4], L::Local("2026-01-15 23:30:00.25", offset)),
                    (COLS[5], L::Ts("2026-01-15 23:30:00.25".into())),
                    (COLS[6], L::Date("2026-01-15")),
                    (COLS[7], L::Bytes(vec![0, 1, b'\\', b'\'', 0xFF])),
                ]
            };
            let mut problems = Vec::new();
            let mut written = Vec::new();
            for i in 0..floats.len() {
                written.push((i as i64 + 1, row(i)));
                w.exec(&insert_sql(s, &t, &row(i)));
            }
            assert_source_holds(&rig, &t, &written);
            if s == Server::Postgres {
                // The application's own schema first, public (where the captured table
                // and gapsync's tables live) not on the path at all.
                w.exec("CREATE SCHEMA app");
                w.exec("SET search_path = app");
                let sql = format!(
                    "INSERT INTO public.{} VALUES (100, 1.5, 1.5, 1.5, now(), TIMESTAMP '2026-01-01 00:00:00', DATE '2026-01-01', NULL)",
                    sql_ident("plant")
                );
                if let Err(e) = exec_in(&w.conn, &sql) {
                    problems.push(format!(
                        "a write to the captured table public.plant from a session with \
                         search_path = app FAILED (the capture trigger broke the plant's \
                         write): {e}"
                    ));
                }
            }
            rig.once();
            rig.wait_synced(secs(20));
            for tb in &rig.tables {
                if let Err(e) = rig.compare(tb) {
                    problems.push(e);
                }
            }
            assert!(
                problems.is_empty(),
                "{}: capture depends on the writer's session:\n{}",
                pair.name(),
                problems.join("\n")
            );
            rig.assert_clean_ledger();
        },
    );
}

// ------------------------------------------------------------------------ 3. snapshot while writing

/// A writer thread on its own ODBC connection, committing small transactions until
/// stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Writer {
    fn start(
        conn: OdbcConnection<'static>,
        pause: Duration,
        mut step: impl FnMut(&OdbcConnection<'static>, u64) -> Result<(), String> + Send + 'static,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let e = |e: odbc_api::Error| e.to_string();
            conn.set_autocommit(false).map_err(e)?;
            let mut n = 0u64;
            while !flag.load(Ordering::SeqCst) {
                step(&conn, n).map_err(|m| format!("writer step {n}: {m}"))?;
                conn.commit().map_err(e)?;
                n += 1;
                std::thread::sleep(pause);
            }
            Ok(n)
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop, join, return the number of transactions committed; panics if it failed.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(n))) => n,
            Some(Ok(Err(e))) => panic!("writer failed: {e}"),
            _ => panic!("writer panicked"),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A source keeps writing (a thread with its own ODBC connection: inserts, updates,
/// key changes, deletes and multi-row updates in small transactions) while `snapshot`
/// is queued and the sender service (`run`) cuts it: once with changes pending from
/// before the snapshot's read, once in full stream. PostgreSQL, and MariaDB too (its
/// REPEATABLE READ snapshot is set up differently). Afterwards the target equals the
/// source and the ledger holds 1..=N: nothing lost, nothing doubled across the snapshot
/// boundaries.
#[test]
fn odbc_source_snapshot_while_writer_runs() {
    const FLOW: &[Col] = &[
        col("id", Kind::Int, "bigint", "bigint"),
        col("grp", Kind::Int, "integer", "int"),
        col("v", Kind::Float, "double precision", "double"),
        col("note", Kind::Text, "text", "longtext"),
        col("at", Kind::Instant, "timestamptz", "timestamp(6) NULL"),
    ];
    for_each_pair(
        "odbc_source_snapshot_while_writer_runs",
        &[PG_TO_SQLITE, MARIA_TO_SQLITE],
        |pair| {
            let pg = pair.src == Server::Postgres;
            let t = Tbl::new("flow", FLOW, &["id"]);
            let cfg = SenderConfig::new("snapw").max_rows(700).poll(ms(50));
            let mut rig = SrcRig::new(pair, "snapw", cfg, vec![t]);
            const SEED: i64 = 3000;
            rig.src.exec(&[if pg {
                format!(
                    "INSERT INTO flow SELECT g, g % 7, g * 0.5, '行 ' || g || ' ''q'' \\', \
                     TIMESTAMPTZ '2026-01-01 00:00:00.5+00' + g * interval '1.000001 second' \
                     FROM generate_series(1, {SEED}) g"
                )
            } else {
                // MariaDB's sequence engine: the table seq_1_to_N.
                format!(
                    "INSERT INTO flow SELECT seq, seq % 7, seq * 0.5, CONCAT('行 ', seq, ' ''q'' \\'), \
                     FROM_UNIXTIME(1767225600.5 + seq * 1.000001) FROM seq_1_to_{SEED}"
                )
            }
            .as_str()]);
            rig.tx.install();
            rig.tx.snapshot(&[]);

            // One writer transaction: 1 to 3 statements.
            let (append, now, plus_1us) = if pg {
                ("note || '+'", "now()", "at + interval '1 microsecond'")
            } else {
                ("CONCAT(note, '+')", "NOW(6)", "at + INTERVAL 1 MICROSECOND")
            };
            let writer = Writer::start(rig.src.connect(), ms(3), {
                let mut rng = Rng::new(5);
                let mut next = SEED + 1;
                move |c, n| {
                    let ops = rng.range(1, 3);
                    for _ in 0..ops {
                        let pick = rng.range(1, next - 1);
                        let sql = match rng.below(100) {
                            0..=39 => {
                                next += 1;
                                format!(
                                    "INSERT INTO flow VALUES ({}, {}, {}, '写入 {n}', {now})",
                                    next - 1,
                                    rng.range(0, 6),
                                    rng.unit() * 100.0
                                )
                            }
                            40..=69 => format!(
                                "UPDATE flow SET v = v + 1.5, note = {append} WHERE id = {pick}"
                            ),
                            70..=79 => {
                                next += 1;
                                format!("UPDATE flow SET id = {} WHERE id = {pick}", next - 1)
                            }
                            80..=94 => format!("DELETE FROM flow WHERE id = {pick}"),
                            _ => format!(
                                "UPDATE flow SET grp = grp + 1, at = {plus_1us} \
                                 WHERE id BETWEEN {pick} AND {}",
                                pick + 20
                            ),
                        };
                        exec_in(c, &sql)?;
                    }
                    Ok(())
                }
            });
            // Changes pile up between install and the snapshot's read.
            std::thread::sleep(ms(300));
            rig.tx.start();
            // (snapshot batches cut, snapshot batches applied, change batches applied)
            let counts = |rig: &SrcRig| {
                let b = rig.src.sender_batches();
                let count = |kind: &str, applied: bool| {
                    b.iter()
                        .filter(|x| x.kind == kind && (!applied || x.state == "applied"))
                        .count()
                };
                (
                    count("snapshot", false),
                    count("snapshot", true),
                    count("changes", true),
                )
            };
            rig.ws.wait_until(
                "the first snapshot (all its batches) and change batches applied",
                secs(30),
                || {
                    let (cut, applied, changes) = counts(&rig);
                    cut > 0 && applied == cut && changes >= 3
                },
            );
            let first: Vec<BatchRow> = rig
                .src
                .sender_batches()
                .into_iter()
                .filter(|b| b.kind == "snapshot")
                .collect();
            rig.tx.snapshot(&[]);
            rig.ws.wait_until(
                "the second snapshot applied while writing",
                secs(30),
                || {
                    let (_, applied, _) = counts(&rig);
                    applied > first.len()
                },
            );
            std::thread::sleep(ms(500));
            let steps = writer.stop();
            rig.wait_synced(secs(30));
            rig.tx.stop();
            let rows = rig.assert_synced();
            let n = rig.assert_clean_ledger();
            let batches = rig.src.sender_batches();
            let snaps: Vec<&BatchRow> = batches.iter().filter(|b| b.kind == "snapshot").collect();
            // The snapshot read came after changes were captured: it absorbed (carried) the
            // pending ones, so the boundary was really crossed.
            assert_eq!(first[0].seq, 1, "the first snapshot comes first: {first:?}");
            assert!(
                first.iter().map(|b| b.changes).sum::<u64>() > 0,
                "the first snapshot absorbed no pending change: the race was not exercised ({first:?})"
            );
            assert!(
                batches.iter().any(|b| b.kind == "changes"
                    && b.seq > first.last().map_or(0, |f| f.seq)
                    && b.seq < snaps.last().map_or(0, |s| s.seq)),
                "no change batch between the two snapshots"
            );
            assert!(
                steps > 100,
                "the writer committed only {steps} transactions"
            );
            eprintln!(
                "snapshot while writing: {rows} rows, {n} batches ({} snapshot), {steps} writer transactions",
                snaps.len()
            );
        },
    );
}

/// A snapshot of a large table on a server source, interrupted by a crash (SIGKILL of
/// the running sender), resumes after the last row cut: the plant's changes made while
/// the sender was down, on both sides of that row, arrive exactly once. PostgreSQL and
/// MariaDB (the changes a resumed read contains are a list of ids there).
#[test]
fn odbc_source_snapshot_resumes_after_a_crash() {
    const BIG: &[Col] = &[
        col("id", Kind::Int, "bigint", "bigint"),
        col("v", Kind::Float, "double precision", "double"),
        col("note", Kind::Text, "text", "longtext"),
    ];
    const SEED: i64 = 60_000;
    for_each_pair(
        "odbc_source_snapshot_resumes_after_a_crash",
        &[PG_TO_SQLITE, MARIA_TO_SQLITE],
        |pair| {
            let pg = pair.src == Server::Postgres;
            let t = Tbl::new("big", BIG, &["id"]);
            let cfg = SenderConfig::new("resume").max_rows(300).poll(ms(50));
            let mut rig = SrcRig::new(pair, "resume", cfg, vec![t]);
            rig.src.exec(&[if pg {
                format!(
                    "INSERT INTO big SELECT g, g * 0.5, 'row ' || g FROM generate_series(1, {SEED}) g"
                )
            } else {
                format!("INSERT INTO big SELECT seq, seq * 0.5, CONCAT('row ', seq) FROM seq_1_to_{SEED}")
            }
            .as_str()]);
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.tx.start();
            let mut done = 0;
            rig.ws
                .wait_until("the snapshot to be partly cut", secs(120), || {
                    done = rig.tx.status()["snapshots"][0]["rows_done"]
                        .as_u64()
                        .unwrap_or(0);
                    done >= 3_000
                });
            rig.tx.kill();
            let st = rig.tx.status();
            let done = st["snapshots"][0]["rows_done"].as_u64().unwrap() as i64;
            assert!(
                done < SEED,
                "the snapshot finished before the kill: make SEED larger\n{st:#}"
            );
            let concat = |a: &str, b: &str| {
                if pg {
                    format!("{a} || {b}")
                } else {
                    format!("CONCAT({a}, {b})")
                }
            };
            rig.src.exec(&[
                format!(
                    "UPDATE big SET v = v + 1000, note = {} WHERE id % 97 = 0",
                    concat("note", "'+'")
                )
                .as_str(),
                "DELETE FROM big WHERE id % 101 = 0",
                format!("DELETE FROM big WHERE id = {done}").as_str(),
                format!("UPDATE big SET v = -1 WHERE id = 1 OR id = {}", done + 1).as_str(),
                format!("INSERT INTO big SELECT id + {SEED}, v, note FROM big WHERE id <= 100")
                    .as_str(),
            ]);
            rig.tx.start();
            rig.wait_synced(secs(120));
            rig.tx.stop();
            let rows = rig.assert_synced();
            rig.assert_clean_ledger();
            let log = rig.tx.log_text();
            assert!(log.contains("snapshot resumes where it stopped"), "{log}");
            let cut: u64 = rig
                .src
                .sender_batches()
                .iter()
                .filter(|b| b.kind == "snapshot")
                .map(|b| b.statements)
                .sum();
            assert!(
                cut <= SEED as u64 + 100 + 2,
                "{cut} snapshot statements for {SEED} rows: the snapshot started over"
            );
            eprintln!("resumed snapshot: killed at {done} rows, {rows} rows synced");
        },
    );
}

// ------------------------------------------------------------------------ 4. concurrent transactions

/// Transaction A writes first (the lower tracking ids) but commits after transaction B;
/// the sender service ships B's batch while A is still open, then A writes more (ids
/// above B's) and commits. Both arrive exactly once, on both source servers: the target
/// equals the source, the ledger holds 1..=N, and A's batch really starts below B's ids.
#[test]
fn odbc_source_late_commit_with_lower_ids_arrives_once() {
    const T_COLS: &[Col] = &[
        col("id", Kind::Int, "bigint", "bigint"),
        col("v", Kind::Text, "varchar(40)", "varchar(40)"),
    ];
    for_each_pair(
        "odbc_source_late_commit_with_lower_ids_arrives_once",
        &[PG_TO_MARIA, MARIA_TO_PG],
        |pair| {
            let t = Tbl::new("t", T_COLS, &["id"]);
            let cfg = SenderConfig::new("late").poll(ms(50));
            let mut rig = SrcRig::new(pair, "late", cfg, vec![t]);
            rig.src
                .exec(&["INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')"]);
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.tx.start();
            rig.wait_synced(secs(20));
            let before = rig.src.sender_progress().last_cut;

            let a = rig.session();
            let b = rig.session();
            a.begin();
            b.begin();
            a.exec("INSERT INTO t VALUES (10, 'A: first')");
            a.exec("UPDATE t SET v = 'A: updated' WHERE id = 1");
            a.exec("DELETE FROM t WHERE id = 2");
            b.exec("INSERT INTO t VALUES (20, 'B')");
            b.exec("UPDATE t SET id = 30, v = 'B: key changed' WHERE id = 3");
            b.commit();
            rig.ws
                .wait_until("B's batch to be applied while A is open", secs(20), || {
                    let p = rig.src.sender_progress();
                    p.last_cut > before && p.unanswered == 0 && rig.target_last_seq() == p.last_cut
                });
            let b_batches: Vec<BatchRow> = rig
                .src
                .sender_batches()
                .into_iter()
                .filter(|x| x.seq > before)
                .collect();
            let after_b = rig.src.sender_progress().last_cut;
            // A is not visible anywhere yet: not on the target, not pending.
            let target_ids = |rig: &SrcRig| -> Vec<i64> {
                let db = rig.dst.as_ref().unwrap();
                db.query("SELECT id FROM t ORDER BY id")
                    .iter()
                    .map(|r| match r[0] {
                        Value::Integer(i) => i,
                        ref o => panic!("{o:?}"),
                    })
                    .collect()
            };
            assert_eq!(target_ids(&rig), vec![1, 2, 4, 20, 30], "target after B");
            assert_eq!(
                rig.src.sender_progress().pending,
                0,
                "A's changes are invisible"
            );

            // A goes on (ids above B's now) and commits last.
            a.exec("INSERT INTO t VALUES (11, 'A: after B')");
            a.exec("UPDATE t SET v = 'A: touched after B' WHERE id = 4");
            a.commit();
            rig.wait_synced(secs(20));
            rig.tx.stop();
            assert_eq!(
                target_ids(&rig),
                vec![1, 4, 10, 11, 20, 30],
                "target after A"
            );
            rig.assert_synced();
            rig.assert_clean_ledger();
            let a_batches: Vec<BatchRow> = rig
                .src
                .sender_batches()
                .into_iter()
                .filter(|x| x.seq > after_b)
                .collect();
            assert!(!b_batches.is_empty() && !a_batches.is_empty());
            let lo = |v: &[BatchRow]| v.iter().filter_map(|b| b.first_id).min().unwrap();
            let hi = |v: &[BatchRow]| v.iter().filter_map(|b| b.last_id).max().unwrap();
            assert!(
                lo(&a_batches) < lo(&b_batches) && hi(&a_batches) > hi(&b_batches),
                "the test must produce A's ids on both sides of B's: A {a_batches:?}, B {b_batches:?}"
            );
        },
    );
}

// ------------------------------------------------------------------------ values without a form

/// Values a server holds that gapsync's value model has no canonical form for
/// (PostgreSQL `infinity` / `-infinity` timestamps and dates, dates before Christ;
/// MariaDB zero dates and times outside 00:00..24:00) must never arrive as something
/// else: a change either arrives with its value, or it is refused loudly (counted in
/// `status`, kept in `_gapsync_rejected` with the reason) and its row stays away from
/// the target. A NULL, or another date, in their place is a silent change (README.md, values and dialects).
#[test]
fn odbc_source_values_without_a_form_are_refused_not_changed() {
    const PG_COLS: &[Col] = &[
        col("id", Kind::Int, "bigint", ""),
        col("ts", Kind::Ts, "timestamp(6)", ""),
        col("tz", Kind::Instant, "timestamptz", ""),
        col("d", Kind::Date, "date", ""),
    ];
    const MARIA_COLS: &[Col] = &[
        col("id", Kind::Int, "", "bigint"),
        col("tm", Kind::Time, "", "time(6)"),
        col("d", Kind::Date, "", "date"),
        col("dt", Kind::Ts, "", "datetime(6)"),
    ];
    for_each_pair(
        "odbc_source_values_without_a_form_are_refused_not_changed",
        &[PG_TO_SQLITE, MARIA_TO_SQLITE],
        |pair| {
            let pg = pair.src == Server::Postgres;
            let t = Tbl::new("odd", if pg { PG_COLS } else { MARIA_COLS }, &["id"]);
            let rig = SrcRig::new(pair, "odd", SenderConfig::new("odd"), vec![t.clone()]);
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.once();
            // (row, its values) and, per odd value, what its text must still show if
            // the row arrives (a NULL or a different value in its place is a silent
            // change).
            let (rows, markers): (Vec<&str>, Vec<(i64, &str, &str)>) = if pg {
                (
                    vec![
                        "(1, 'infinity', 'infinity', 'infinity')",
                        "(2, '-infinity', '-infinity', '-infinity')",
                        "(3, '0001-01-01 00:00:00 BC', '0100-06-01 12:00:00+00 BC', '0057-03-15 BC')",
                        "(4, '2026-01-15 10:00:00.5', '2026-01-15 10:00:00.5+00', '2026-01-15')",
                    ],
                    vec![
                        (1, "ts", "infinity"),
                        (1, "tz", "infinity"),
                        (1, "d", "infinity"),
                        (2, "ts", "-infinity"),
                        (2, "tz", "-infinity"),
                        (2, "d", "-infinity"),
                        (3, "ts", "BC"),
                        (3, "tz", "BC"),
                        (3, "d", "BC"),
                    ],
                )
            } else {
                (
                    vec![
                        "(1, '25:00:00', '0000-00-00', '0000-00-00 00:00:00')",
                        "(2, '-01:30:00', '2026-00-00', '2026-02-00 00:00:00')",
                        "(3, '10:00:00.5', '2026-01-15', '2026-01-15 10:00:00.5')",
                    ],
                    vec![
                        (1, "tm", "25:00:00"),
                        (1, "d", "0000-00-00"),
                        (1, "dt", "0000-00-00"),
                        (2, "tm", "-01:30:00"),
                        (2, "d", "2026-00-00"),
                        (2, "dt", "2026-02-00"),
                    ],
                )
            };
            let w = rig.session();
            for r in &rows {
                w.exec(&format!("INSERT INTO {} VALUES {r}", sql_ident("odd")));
            }
            // `once` may report the refused changes; only the outcome counts.
            let out = rig.tx.exec_timeout(&["once"], secs(60));
            rig.wait_synced(secs(20));
            let control = rows.len() as i64;
            let tgt = rig.rx.target();
            let on_target = |id: i64, c: &str| -> Option<Value> {
                tgt.query_row(
                    &format!("SELECT {} FROM odd WHERE id = ?1", sql_ident(c)),
                    [id],
                    |r| r.get(0),
                )
                .ok()
            };
            let mut problems = Vec::new();
            let mut refused = BTreeSet::new();
            for (id, c, marker) in &markers {
                match on_target(*id, c) {
                    None => {
                        refused.insert(*id);
                    }
                    Some(Value::Text(t)) if t.contains(marker) => {}
                    Some(v) => problems.push(format!(
                        "row {id} column {c}: the source holds a value showing {marker:?}, \
                         the target got {}",
                        describe(&v)
                    )),
                }
            }
            let rejected = rig.tx.status()["rejected"].as_u64().unwrap_or(0);
            if !refused.is_empty() && rejected < refused.len() as u64 {
                problems.push(format!(
                    "rows {refused:?} did not arrive but only {rejected} change(s) are counted \
                     as rejected (`once` said: {})",
                    out.stderr.trim()
                ));
            }
            if on_target(control, "id").is_none() {
                problems.push(format!("the control row {control} did not arrive"));
            }
            assert!(
                problems.is_empty(),
                "{}: values without a canonical form were changed silently:\n  {}",
                pair.name(),
                problems.join("\n  ")
            );
        },
    );
}

// ------------------------------------------------------------------------ the comparison itself

/// The typed comparison of this module sees a one-ulp double, a one-microsecond instant
/// or timestamp, a changed decimal, a changed byte, a missing and an extra row.
#[test]
fn odbc_source_comparison_detects_differences() {
    const COLS: &[Col] = &[
        col("id", Kind::Int, "bigint", ""),
        col("f", Kind::Float, "double precision", ""),
        col("n", Kind::Dec, "numeric(20,6)", ""),
        col("tz", Kind::Instant, "timestamptz", ""),
        col("ts", Kind::Ts, "timestamp(6)", ""),
        col("bin", Kind::Bytes, "bytea", ""),
    ];
    for_each_pair(
        "odbc_source_comparison_detects_differences",
        &[PG_TO_SQLITE],
        |pair| {
            let t = Tbl::new("cmp", COLS, &["id"]);
            let rig = SrcRig::new(pair, "cmp", SenderConfig::new("cmp"), vec![t.clone()]);
            rig.src.exec(&[
                "INSERT INTO cmp SELECT g, 0.1 * g, 1.5 * g, TIMESTAMPTZ '2026-01-01 00:00:00+00' \
                 + g * interval '1 second', TIMESTAMP '2026-01-01 00:00:00', '\\x00ff' \
                 FROM generate_series(1, 6) g",
            ]);
            rig.tx.install();
            rig.tx.snapshot(&[]);
            rig.once();
            rig.wait_synced(secs(20));
            assert_eq!(rig.compare(&t), Ok(6));
            let tgt = rig.rx.target();
            let f: f64 = tgt
                .query_row("SELECT f FROM cmp WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            let next = f64::from_bits(f.to_bits() + 1);
            tgt.execute("UPDATE cmp SET f = ?1 WHERE id = 1", [next])
                .unwrap();
            tgt.execute_batch(
                "UPDATE cmp SET n = 3.0000001 WHERE id = 2;
                 UPDATE cmp SET tz = '2026-01-01 00:00:03.000001+00:00' WHERE id = 3;
                 UPDATE cmp SET ts = '2026-01-01 00:00:00.000001' WHERE id = 4;
                 UPDATE cmp SET bin = X'00FE' WHERE id = 5;
                 DELETE FROM cmp WHERE id = 6;
                 INSERT INTO cmp (id) VALUES (7);",
            )
            .unwrap();
            let e = rig.compare(&t).unwrap_err();
            for want in [
                "row id=Int(1): column f",
                "row id=Int(2): column n",
                "row id=Int(3): column tz",
                "row id=Int(4): column ts",
                "row id=Int(5): column bin",
                "row id=Int(6): missing on the target",
                "row id=Int(7): on the target only",
            ] {
                assert!(e.contains(want), "the comparison missed {want:?}:\n{e}");
            }
            assert!(e.contains("7 difference(s)"), "{e}");
        },
    );
}
