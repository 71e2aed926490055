//! Change capture on PostgreSQL and MySQL/MariaDB sources through ODBC (feature `odbc`).
//!
//! The same design as the SQLite source (`crate::source`), in the server's own SQL:
//!
//! - `_gapsync_changes(id, tbl, op, layout, at, txid, batch, k0.., c0..)`: one row per
//!   change, written by row triggers. Values are stored as TEXT in a canonical form per
//!   column class, so that every type survives exactly (see [`Class`]): floats in their
//!   shortest round-trip text (PostgreSQL 12+ and MariaDB print doubles that way),
//!   decimals as digits, binary as hex, times in ISO form, PostgreSQL `timestamptz` and
//!   MySQL `TIMESTAMP` as UTC instants.
//! - PostgreSQL keeps `txid_current()` with every change: a batch never splits a source
//!   transaction (a read that ends inside one goes on to its last change).
//! - `_gapsync_layouts`, `_gapsync_batches`, `_gapsync_state`, `_gapsync_requests`,
//!   `_gapsync_rejected`: as on SQLite.
//! - Triggers: PostgreSQL one `AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW`
//!   trigger calling a PL/pgSQL function `_gapsync_<table>_fn`; MySQL/MariaDB three
//!   `AFTER` triggers (`_ins`, `_upd`, `_del`). MySQL's `REPLACE` fires delete triggers,
//!   so no REPLACE trigger is needed there.
//!
//! Pending changes are `batch IS NULL` in id order, never a high-water mark: with
//! concurrent writers a transaction may commit after later ids were shipped, and its
//! changes are then simply shipped with the next batch. A snapshot reads its rows and the
//! ids of the table's pending changes in one REPEATABLE READ transaction and marks
//! exactly those ids as contained ([`Absorbed::Ids`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::config::TableConfig;
use crate::odbc::{Dbms, OdbcBackend};
use crate::source::{
    Absorbed, BatchRecord, BatchState, Change, ChangeSource, ColumnSpec, InstallPlan, Layout, Op,
    SinkError, SnapshotEvent, SnapshotSink, SourceError, TableSpec, from_json, now, quote_lit,
    to_json,
};
use crate::target::{Backend, DbError, Param};
use crate::value::Value;

type Result<T> = std::result::Result<T, SourceError>;

fn db(e: DbError) -> SourceError {
    SourceError::Unsupported(format!("source database: {}", e.message))
}

/// How a column's value is carried as text in the tracking table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Int,
    Float,
    Decimal,
    Text,
    Binary,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Bool,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Int => "int",
            Class::Float => "float",
            Class::Decimal => "decimal",
            Class::Text => "text",
            Class::Binary => "binary",
            Class::Date => "date",
            Class::Time => "time",
            Class::Timestamp => "timestamp",
            Class::TimestampTz => "timestamptz",
            Class::Bool => "bool",
        }
    }

    fn from_name(s: &str) -> Class {
        match s {
            "int" => Class::Int,
            "float" => Class::Float,
            "decimal" => Class::Decimal,
            "binary" => Class::Binary,
            "date" => Class::Date,
            "time" => Class::Time,
            "timestamp" => Class::Timestamp,
            "timestamptz" => Class::TimestampTz,
            "bool" => Class::Bool,
            _ => Class::Text,
        }
    }

    /// The class of a column from `information_schema.columns.data_type`.
    fn of(dbms: Dbms, data_type: &str, column_type: &str) -> Class {
        let t = data_type.to_ascii_lowercase();
        match t.as_str() {
            "smallint" | "integer" | "bigint" | "int" | "tinyint" | "mediumint" | "year" => {
                if dbms == Dbms::Mysql && column_type.contains("unsigned") && t == "bigint" {
                    Class::Decimal
                } else {
                    Class::Int
                }
            }
            "real" | "double precision" | "float" | "double" => Class::Float,
            "numeric" | "decimal" => Class::Decimal,
            "bytea" | "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
                Class::Binary
            }
            "date" => Class::Date,
            "time" | "time without time zone" => Class::Time,
            "timestamp without time zone" | "datetime" => Class::Timestamp,
            "timestamp with time zone" => Class::TimestampTz,
            // MySQL TIMESTAMP is an instant (stored in UTC).
            "timestamp" if dbms == Dbms::Mysql => Class::TimestampTz,
            "boolean" => Class::Bool,
            _ => Class::Text,
        }
    }

    /// The declared type handed to the target dialect's type mapping for `CREATE TABLE`.
    fn declared(self, precision: Option<&str>, scale: Option<&str>) -> String {
        match self {
            Class::Int => "BIGINT".into(),
            Class::Float => "DOUBLE".into(),
            Class::Decimal => match (precision, scale) {
                (Some(p), Some(s)) => format!("DECIMAL({p},{s})"),
                _ => "DECIMAL".into(),
            },
            Class::Text => "TEXT".into(),
            Class::Binary => "BLOB".into(),
            Class::Date => "DATE".into(),
            Class::Time => "TIME(6)".into(),
            Class::Timestamp => "TIMESTAMP(6)".into(),
            Class::TimestampTz => "TIMESTAMP(6) WITH TIME ZONE".into(),
            Class::Bool => "BOOLEAN".into(),
        }
    }

    /// The SQL expression that turns `col` (e.g. `NEW."v"`) into the canonical text.
    fn expr(self, dbms: Dbms, col: &str) -> String {
        match (dbms, self) {
            (Dbms::Mysql, Class::Text) => col.to_owned(),
            (Dbms::Mysql, Class::Binary) => format!("HEX({col})"),
            (Dbms::Mysql, Class::Date) => format!("DATE_FORMAT({col}, '%Y-%m-%d')"),
            (Dbms::Mysql, Class::Time) => format!("TIME_FORMAT({col}, '%H:%i:%s.%f')"),
            (Dbms::Mysql, Class::Timestamp) => {
                format!("DATE_FORMAT({col}, '%Y-%m-%d %H:%i:%s.%f')")
            }
            (Dbms::Mysql, Class::TimestampTz) => format!("CAST(UNIX_TIMESTAMP({col}) AS CHAR)"),
            (Dbms::Mysql, _) => format!("CAST({col} AS CHAR)"),
            (_, Class::Binary) => format!("encode({col}, 'hex')"),
            (_, Class::Date) => format!("to_char({col}, 'YYYY-MM-DD')"),
            (_, Class::Time) => format!("to_char({col}, 'HH24:MI:SS.US')"),
            (_, Class::Timestamp) => format!("to_char({col}, 'YYYY-MM-DD HH24:MI:SS.US')"),
            (_, Class::TimestampTz) => {
                format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            (_, Class::Bool) => format!("({col})::int::text"),
            (_, _) => format!("({col})::text"),
        }
    }

    /// Decode the canonical text back into a typed value.
    fn decode(self, text: Option<&str>) -> std::result::Result<Value, String> {
        let Some(t) = text else {
            return Ok(Value::Null);
        };
        Ok(match self {
            Class::Int => match t.parse::<i64>() {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::Decimal(t.to_owned()),
            },
            Class::Float => Value::Real(match t {
                "Infinity" | "inf" => f64::INFINITY,
                "-Infinity" | "-inf" => f64::NEG_INFINITY,
                "NaN" | "nan" => f64::NAN,
                _ => t.parse::<f64>().map_err(|e| format!("float {t:?}: {e}"))?,
            }),
            Class::Decimal => Value::Decimal(t.to_owned()),
            Class::Text => Value::Text(t.to_owned()),
            Class::Binary => Value::Blob(hex::decode(t).map_err(|e| format!("hex {t:?}: {e}"))?),
            Class::Date => Value::Date(t.to_owned()),
            Class::Time => Value::Time(trim_fraction(t)),
            Class::Timestamp => Value::Timestamp(trim_fraction(t)),
            Class::TimestampTz => {
                if t.contains('-') {
                    Value::TimestampTz(format!("{}+00:00", trim_fraction(t)))
                } else {
                    // MySQL: seconds since the epoch, with a fraction.
                    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
                    let secs: i64 = secs.parse().map_err(|e| format!("epoch {t:?}: {e}"))?;
                    let dt = chrono::DateTime::from_timestamp(secs, 0)
                        .ok_or_else(|| format!("epoch {t:?} out of range"))?;
                    let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string();
                    let frac = frac.trim_end_matches('0');
                    if !frac.is_empty() {
                        s.push('.');
                        s.push_str(frac);
                    }
                    s.push_str("+00:00");
                    Value::TimestampTz(s)
                }
            }
            Class::Bool => Value::Bool(matches!(t, "1" | "t" | "true")),
        })
    }
}

/// `.000000` fractions say nothing: drop trailing zeros (and the dot).
fn trim_fraction(t: &str) -> String {
    match t.split_once('.') {
        Some((a, f)) => {
            let f = f.trim_end_matches('0');
            if f.is_empty() {
                a.to_owned()
            } else {
                format!("{a}.{f}")
            }
        }
        None => t.to_owned(),
    }
}

/// The latest layout recorded for a table.
#[derive(Debug)]
struct RecordedLayout {
    columns: Vec<String>,
    key: Vec<String>,
    classes: Vec<String>,
}

/// A PostgreSQL or MySQL/MariaDB source.
#[derive(Debug)]
pub struct OdbcSource {
    db: OdbcBackend,
    dbms: Dbms,
    /// Column classes per layout id.
    classes: HashMap<i64, (Layout, Vec<Class>)>,
    /// Number of `k*` and `c*` columns of the tracking table (read once; install resets).
    width: Option<(usize, usize)>,
}

impl OdbcSource {
    /// Connect; `dialect` (`postgres` or `mysql`) overrides the driver's DBMS name.
    pub fn connect(conn_str: &str, dialect: Option<&str>) -> Result<OdbcSource> {
        let db = OdbcBackend::connect(conn_str, dialect).map_err(db)?;
        let dbms = db.dbms();
        if dbms == Dbms::Other {
            return Err(SourceError::Unsupported(
                "[source] url: ODBC sources must be PostgreSQL or MySQL/MariaDB".into(),
            ));
        }
        Ok(OdbcSource {
            db,
            dbms,
            classes: HashMap::new(),
            width: None,
        })
    }

    fn q(&self, name: &str) -> String {
        if self.dbms == Dbms::Mysql {
            format!("`{}`", name.replace('`', "``"))
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    fn schema_fn(&self) -> &'static str {
        if self.dbms == Dbms::Mysql {
            "database()"
        } else {
            "current_schema()"
        }
    }

    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Option<String>>>> {
        self.db.query(sql, params).map_err(db)
    }

    fn one_int(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        let rows = self.rows(sql, params)?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_deref())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.db.execute_params(sql, params).map_err(db)
    }

    fn has_table(&mut self, name: &str) -> Result<bool> {
        let sql = format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = ?",
            self.schema_fn()
        );
        Ok(self.one_int(&sql, &[Param::Text(name)])? > 0)
    }

    fn text_type(&self) -> &'static str {
        if self.dbms == Dbms::Mysql {
            "LONGTEXT"
        } else {
            "TEXT"
        }
    }

    fn base_ddl(&self) -> Vec<String> {
        let (serial, changes_tail, txid) = if self.dbms == Dbms::Mysql {
            (
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                "txid BIGINT NULL",
            )
        } else {
            (
                "BIGSERIAL PRIMARY KEY",
                "",
                "txid BIGINT NOT NULL DEFAULT txid_current()",
            )
        };
        let at = if self.dbms == Dbms::Mysql {
            "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
        } else {
            "at TIMESTAMPTZ NOT NULL DEFAULT now()"
        };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS _gapsync_changes(id {serial}, tbl VARCHAR(255) NOT NULL, \
                 op CHAR(1) NOT NULL, layout INTEGER NOT NULL, {at}, {txid}, batch BIGINT NULL){changes_tail}"
            ),
            // Clearing an applied batch (`DELETE ... WHERE batch = ?`) must not scan.
            "CREATE INDEX IF NOT EXISTS _gapsync_changes_batch ON _gapsync_changes(batch)".into(),
            "CREATE TABLE IF NOT EXISTS _gapsync_layouts(layout INTEGER PRIMARY KEY, tbl VARCHAR(255) NOT NULL, \
             cols TEXT NOT NULL, keycols TEXT NOT NULL, classes TEXT NOT NULL, installed_at VARCHAR(40) NOT NULL)"
                .into(),
            "CREATE TABLE IF NOT EXISTS _gapsync_batches(seq BIGINT PRIMARY KEY, kind VARCHAR(16) NOT NULL, \
             file VARCHAR(255) NOT NULL, size BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL, \
             statements BIGINT NOT NULL, changes BIGINT NOT NULL, first_id BIGINT NULL, last_id BIGINT NULL, \
             state VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, reason TEXT NULL, \
             created VARCHAR(40) NOT NULL, updated VARCHAR(40) NOT NULL)"
                .into(),
            "CREATE TABLE IF NOT EXISTS _gapsync_state(name VARCHAR(64) PRIMARY KEY, value BIGINT NOT NULL)".into(),
            format!(
                "CREATE TABLE IF NOT EXISTS _gapsync_requests(id {serial}, kind VARCHAR(16) NOT NULL, \
                 tbl VARCHAR(255) NOT NULL, requested VARCHAR(40) NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS _gapsync_rejected(id {serial}, change_id BIGINT NULL, \
                 tbl VARCHAR(255) NOT NULL, what VARCHAR(16) NOT NULL, reason TEXT NOT NULL, \
                 at VARCHAR(40) NOT NULL)"
            ),
        ]
    }

    fn tracking_width(&mut self) -> Result<(usize, usize)> {
        if !self.has_table("_gapsync_changes")? {
            return Ok((0, 0));
        }
        let sql = format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = {} \
             AND table_name = '_gapsync_changes'",
            self.schema_fn()
        );
        let names: Vec<String> = self
            .rows(&sql, &[])?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let count = |p: char| {
            names
                .iter()
                .filter(|n| {
                    n.len() > 1 && n.starts_with(p) && n[1..].bytes().all(|b| b.is_ascii_digit())
                })
                .count()
        };
        Ok((count('k'), count('c')))
    }

    fn current_layout(&mut self, table: &str) -> Result<Option<RecordedLayout>> {
        if !self.has_table("_gapsync_layouts")? {
            return Ok(None);
        }
        let rows = self.rows(
            "SELECT layout, cols, keycols, classes FROM _gapsync_layouts WHERE tbl = ? ORDER BY layout DESC",
            &[Param::Text(table)],
        )?;
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        Ok(Some(RecordedLayout {
            columns: from_json(&get(1))?,
            key: from_json(&get(2))?,
            classes: from_json(&get(3))?,
        }))
    }

    fn trigger_names(&self, table: &str) -> Vec<String> {
        if self.dbms == Dbms::Mysql {
            ["ins", "upd", "del"]
                .iter()
                .map(|k| format!("_gapsync_{table}_{k}"))
                .collect()
        } else {
            vec![format!("_gapsync_{table}")]
        }
    }

    fn triggers_present(&mut self, table: &str) -> Result<bool> {
        let want = self.trigger_names(table);
        let sql = format!(
            "SELECT count(DISTINCT trigger_name) FROM information_schema.triggers WHERE trigger_schema = {} \
             AND event_object_table = ? AND trigger_name LIKE '\\_gapsync\\_%'",
            self.schema_fn()
        );
        Ok(self.one_int(&sql, &[Param::Text(table)])? as usize == want.len())
    }

    fn drop_trigger_ddl(&self, table: &str) -> Vec<String> {
        let mut out = Vec::new();
        for name in self.trigger_names(table) {
            if self.dbms == Dbms::Mysql {
                out.push(format!("DROP TRIGGER IF EXISTS {}", self.q(&name)));
            } else {
                out.push(format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    self.q(&name),
                    self.q(table)
                ));
                out.push(format!(
                    "DROP FUNCTION IF EXISTS {}()",
                    self.q(&format!("{name}_fn"))
                ));
            }
        }
        out
    }

    fn trigger_ddl(&self, spec: &TableSpec, classes: &[Class], layout: i64) -> Vec<String> {
        let t = self.q(&spec.source);
        let tl = quote_lit(&spec.source);
        let cn: Vec<String> = (0..spec.columns.len()).map(|i| format!("c{i}")).collect();
        let kn: Vec<String> = (0..spec.key.len()).map(|i| format!("k{i}")).collect();
        let vals = |rec: &str| -> Vec<String> {
            spec.columns
                .iter()
                .zip(classes)
                .map(|(c, cl)| cl.expr(self.dbms, &format!("{rec}.{}", self.q(&c.source))))
                .collect()
        };
        let keys = |rec: &str| -> Vec<String> {
            spec.key
                .iter()
                .map(|&i| {
                    classes[i].expr(
                        self.dbms,
                        &format!("{rec}.{}", self.q(&spec.columns[i].source)),
                    )
                })
                .collect()
        };
        let ins = format!(
            "INSERT INTO _gapsync_changes(tbl, op, layout, {}) VALUES ({tl}, 'I', {layout}, {})",
            cn.join(", "),
            vals("NEW").join(", ")
        );
        let upd = format!(
            "INSERT INTO _gapsync_changes(tbl, op, layout, {}, {}) VALUES ({tl}, 'U', {layout}, {}, {})",
            kn.join(", "),
            cn.join(", "),
            keys("OLD").join(", "),
            vals("NEW").join(", ")
        );
        let del = format!(
            "INSERT INTO _gapsync_changes(tbl, op, layout, {}) VALUES ({tl}, 'D', {layout}, {})",
            kn.join(", "),
            keys("OLD").join(", ")
        );
        let mut out = self.drop_trigger_ddl(&spec.source);
        if self.dbms == Dbms::Mysql {
            for (kind, event, body) in [
                ("ins", "INSERT", ins),
                ("upd", "UPDATE", upd),
                ("del", "DELETE", del),
            ] {
                out.push(format!(
                    "CREATE TRIGGER {} AFTER {event} ON {t} FOR EACH ROW {body}",
                    self.q(&format!("_gapsync_{}_{kind}", spec.source))
                ));
            }
        } else {
            let name = format!("_gapsync_{}", spec.source);
            let func = self.q(&format!("{name}_fn"));
            out.push(format!(
                "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $gapsync$ \
                 BEGIN IF TG_OP = 'INSERT' THEN {ins}; ELSIF TG_OP = 'UPDATE' THEN {upd}; \
                 ELSE {del}; END IF; RETURN NULL; END $gapsync$"
            ));
            out.push(format!(
                "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {func}()",
                self.q(&name)
            ));
        }
        out
    }

    fn plan(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        let mut ddl = self.base_ddl();
        let mut notes = Vec::new();
        let (mut kw, mut cw) = self.tracking_width()?;
        let mut next_layout = if self.has_table("_gapsync_layouts")? {
            self.one_int("SELECT coalesce(max(layout), 0) FROM _gapsync_layouts", &[])? + 1
        } else {
            1
        };
        for spec in specs {
            let cols: Vec<String> = spec.columns.iter().map(|c| c.source.clone()).collect();
            let key = spec.key_names();
            let classes = self.classes_of(spec);
            let class_names: Vec<String> = classes.iter().map(|c| c.name().to_owned()).collect();
            let current = self.current_layout(&spec.source)?;
            let same = current
                .as_ref()
                .is_some_and(|l| l.columns == cols && l.key == key && l.classes == class_names);
            if same && self.triggers_present(&spec.source)? {
                notes.push(format!("{}: up to date", spec.source));
                continue;
            }
            notes.push(format!(
                "{}: {}",
                spec.source,
                match current {
                    None => "installed",
                    Some(_) if same => "triggers restored",
                    Some(_) => "re-installed (columns or key changed)",
                }
            ));
            let text = self.text_type();
            while kw < key.len() {
                ddl.push(format!(
                    "ALTER TABLE _gapsync_changes ADD COLUMN k{kw} {text} NULL"
                ));
                kw += 1;
            }
            while cw < cols.len() {
                ddl.push(format!(
                    "ALTER TABLE _gapsync_changes ADD COLUMN c{cw} {text} NULL"
                ));
                cw += 1;
            }
            let layout = next_layout;
            next_layout += 1;
            ddl.push(format!(
                "INSERT INTO _gapsync_layouts(layout, tbl, cols, keycols, classes, installed_at) \
                 VALUES ({layout}, {}, {}, {}, {}, {})",
                quote_lit(&spec.source),
                quote_lit(&to_json(&cols)),
                quote_lit(&to_json(&key)),
                quote_lit(&to_json(&class_names)),
                quote_lit(&now())
            ));
            ddl.extend(self.trigger_ddl(spec, &classes, layout));
        }
        Ok(InstallPlan { ddl, notes })
    }

    fn classes_of(&self, spec: &TableSpec) -> Vec<Class> {
        spec.columns
            .iter()
            .map(|c| class_of_declared(&c.decl_type))
            .collect()
    }

    fn in_txn<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.db.begin().map_err(db)?;
        match f(self) {
            Ok(v) => {
                self.db.commit().map_err(db)?;
                Ok(v)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }

    fn select_changes(&self, kw: usize, cw: usize) -> String {
        let mut sql = String::from("SELECT id, tbl, op, layout, txid");
        for i in 0..kw {
            let _ = write!(sql, ", k{i}");
        }
        for i in 0..cw {
            let _ = write!(sql, ", c{i}");
        }
        sql.push_str(" FROM _gapsync_changes WHERE batch IS NULL");
        sql
    }

    fn decode_rows(
        &mut self,
        rows: Vec<Vec<Option<String>>>,
        kw: usize,
    ) -> Result<Vec<(Change, Option<i64>)>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let get = |i: usize| r.get(i).cloned().flatten();
            let id: i64 = get(0).and_then(|v| v.parse().ok()).unwrap_or(0);
            let table = get(1).unwrap_or_default();
            let op = match get(2).as_deref().map(str::trim) {
                Some("I") => Op::Insert,
                Some("U") => Op::Update,
                Some("D") => Op::Delete,
                other => {
                    return Err(SourceError::Corrupt(format!(
                        "change {id} has op {other:?}"
                    )));
                }
            };
            let layout_id: i64 = get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
            let txid: Option<i64> = get(4).and_then(|v| v.parse().ok());
            let (layout, classes) = self.layout_classes(layout_id)?;
            let key_classes: Vec<Class> = layout
                .key
                .iter()
                .map(|k| {
                    layout
                        .columns
                        .iter()
                        .position(|c| c == k)
                        .map_or(Class::Text, |i| classes[i])
                })
                .collect();
            let bad = |e: String| SourceError::Corrupt(format!("change {id}: {e}"));
            let old_key = if op == Op::Insert {
                Vec::new()
            } else {
                (0..layout.key.len())
                    .map(|i| key_classes[i].decode(r.get(5 + i).and_then(|v| v.as_deref())))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(bad)?
            };
            let row = if op == Op::Delete {
                Vec::new()
            } else {
                (0..layout.columns.len())
                    .map(|i| classes[i].decode(r.get(5 + kw + i).and_then(|v| v.as_deref())))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(bad)?
            };
            out.push((
                Change {
                    id,
                    table,
                    op,
                    layout: layout_id,
                    old_key,
                    row,
                },
                txid,
            ));
        }
        Ok(out)
    }

    fn layout_classes(&mut self, id: i64) -> Result<(Layout, Vec<Class>)> {
        if let Some(l) = self.classes.get(&id) {
            return Ok(l.clone());
        }
        let rows = self.rows(
            "SELECT tbl, cols, keycols, classes FROM _gapsync_layouts WHERE layout = ?",
            &[Param::Int(id)],
        )?;
        let r = rows
            .into_iter()
            .next()
            .ok_or_else(|| SourceError::Corrupt(format!("layout {id} is not recorded")))?;
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let layout = Layout {
            id,
            table: get(0),
            columns: from_json(&get(1))?,
            key: from_json(&get(2))?,
            unique: Vec::new(),
        };
        let classes: Vec<Class> = from_json(&get(3))?
            .iter()
            .map(|c| Class::from_name(c))
            .collect();
        self.classes.insert(id, (layout.clone(), classes.clone()));
        Ok((layout, classes))
    }

    fn limit_clause(n: u64) -> String {
        format!(" LIMIT {}", n.min(i64::MAX as u64))
    }
}

/// The class of a canonical declared type written by [`Class::declared`].
fn class_of_declared(decl: &str) -> Class {
    let d = decl.to_ascii_uppercase();
    if d == "BIGINT" {
        Class::Int
    } else if d == "DOUBLE" {
        Class::Float
    } else if d.starts_with("DECIMAL") {
        Class::Decimal
    } else if d == "BLOB" {
        Class::Binary
    } else if d == "DATE" {
        Class::Date
    } else if d.starts_with("TIME(") {
        Class::Time
    } else if d.ends_with("WITH TIME ZONE") {
        Class::TimestampTz
    } else if d.starts_with("TIMESTAMP") {
        Class::Timestamp
    } else if d == "BOOLEAN" {
        Class::Bool
    } else {
        Class::Text
    }
}

impl ChangeSource for OdbcSource {
    fn is_installed(&mut self) -> Result<bool> {
        self.has_table("_gapsync_batches")
    }

    fn describe(&mut self, cfg: &TableConfig) -> Result<TableSpec> {
        let sql = format!(
            "SELECT column_name, data_type, numeric_precision, numeric_scale, {} \
             FROM information_schema.columns WHERE table_schema = {} AND table_name = ? \
             ORDER BY ordinal_position",
            if self.dbms == Dbms::Mysql {
                "column_type"
            } else {
                "data_type"
            },
            self.schema_fn()
        );
        let cols = self.rows(&sql, &[Param::Text(&cfg.source)])?;
        if cols.is_empty() {
            return Err(SourceError::NoTable(cfg.source.clone()));
        }
        let dbms = self.dbms;
        let columns: Vec<ColumnSpec> = cols
            .iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                let name = get(0).unwrap_or_default();
                let class = Class::of(
                    dbms,
                    &get(1).unwrap_or_default(),
                    &get(4).unwrap_or_default(),
                );
                ColumnSpec {
                    target: cfg
                        .rename
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| name.clone()),
                    source: name,
                    decl_type: class.declared(get(2).as_deref(), get(3).as_deref()),
                }
            })
            .collect();
        for from in cfg.rename.keys() {
            if !columns.iter().any(|c| &c.source == from) {
                return Err(SourceError::NoColumn {
                    table: cfg.source.clone(),
                    column: from.clone(),
                    what: "rename",
                });
            }
        }
        let key_names: Vec<String> = match &cfg.key {
            Some(k) => k.clone(),
            None => {
                let sql = format!(
                    "SELECT kcu.column_name FROM information_schema.table_constraints tc \
                     JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name \
                     AND tc.table_schema = kcu.table_schema AND tc.table_name = kcu.table_name \
                     WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = {} AND tc.table_name = ? \
                     ORDER BY kcu.ordinal_position",
                    self.schema_fn()
                );
                let pk: Vec<String> = self
                    .rows(&sql, &[Param::Text(&cfg.source)])?
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().flatten())
                    .collect();
                if pk.is_empty() {
                    return Err(SourceError::NoKey(cfg.source.clone()));
                }
                pk
            }
        };
        let key = key_names
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .position(|c| &c.source == name)
                    .ok_or_else(|| SourceError::NoColumn {
                        table: cfg.source.clone(),
                        column: name.clone(),
                        what: "key",
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TableSpec {
            source: cfg.source.clone(),
            target: cfg.target.clone(),
            columns,
            key,
            unique: Vec::new(),
        })
    }

    fn plan_install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        self.plan(specs)
    }

    fn install(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
        let plan = self.plan(specs)?;
        // DDL commits implicitly on MySQL; each statement is idempotent, so a rerun
        // after an interruption finishes the job.
        for stmt in &plan.ddl {
            self.exec(stmt, &[])?;
        }
        self.classes.clear();
        self.width = None;
        Ok(plan)
    }

    fn uninstall(&mut self, tables: &[String], purge: bool) -> Result<Vec<String>> {
        let mut ddl = Vec::new();
        for t in tables {
            ddl.extend(self.drop_trigger_ddl(t));
        }
        if purge {
            for t in [
                "_gapsync_changes",
                "_gapsync_layouts",
                "_gapsync_batches",
                "_gapsync_state",
                "_gapsync_requests",
                "_gapsync_rejected",
            ] {
                ddl.push(format!("DROP TABLE IF EXISTS {t}"));
            }
        }
        for stmt in &ddl {
            self.exec(stmt, &[])?;
        }
        Ok(ddl)
    }

    fn pending_count(&mut self) -> Result<u64> {
        Ok(self
            .one_int(
                "SELECT count(*) FROM _gapsync_changes WHERE batch IS NULL",
                &[],
            )?
            .max(0) as u64)
    }

    fn pending_at_least(&mut self, n: u64) -> Result<bool> {
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 AS x FROM _gapsync_changes WHERE batch IS NULL{}) p",
            Self::limit_clause(n)
        );
        Ok(self.one_int(&sql, &[])?.max(0) as u64 >= n)
    }

    fn last_change_id(&mut self) -> Result<i64> {
        if self.dbms == Dbms::Postgres {
            self.one_int("SELECT last_value FROM _gapsync_changes_id_seq", &[])
        } else {
            self.max_change_id()
        }
    }

    fn max_change_id(&mut self) -> Result<i64> {
        self.one_int("SELECT coalesce(max(id), 0) FROM _gapsync_changes", &[])
    }

    fn layout(&mut self, id: i64) -> Result<Layout> {
        Ok(self.layout_classes(id)?.0)
    }

    fn read_pending(&mut self, limit: u64, up_to: i64) -> Result<Vec<Change>> {
        let (kw, cw) = match self.width {
            Some(w) => w,
            None => {
                let w = self.tracking_width()?;
                self.width = Some(w);
                w
            }
        };
        let base = self.select_changes(kw, cw);
        let sql = format!(
            "{base} AND id <= ? ORDER BY id{}",
            Self::limit_clause(limit)
        );
        let rows = self.rows(&sql, &[Param::Int(up_to)])?;
        let full = rows.len() as u64 == limit;
        let mut out = self.decode_rows(rows, kw)?;
        // Never split a source transaction: take the rest of the last one.
        if full && let Some((last, Some(txid))) = out.last().map(|(c, t)| (c.id, *t)) {
            let sql = format!("{base} AND txid = ? AND id > ? ORDER BY id");
            let rows = self.rows(&sql, &[Param::Int(txid), Param::Int(last)])?;
            out.extend(self.decode_rows(rows, kw)?);
        }
        Ok(out.into_iter().map(|(c, _)| c).collect())
    }

    fn next_seq(&mut self) -> Result<u64> {
        let v = self.one_int(
            "SELECT value FROM _gapsync_state WHERE name = 'next_seq'",
            &[],
        )?;
        Ok(v.max(1) as u64)
    }

    fn commit_batches(
        &mut self,
        records: &[BatchRecord],
        carried: &[Vec<i64>],
        absorbed: Option<(&str, &Absorbed)>,
    ) -> Result<()> {
        self.in_txn(|s| {
            for (i, r) in records.iter().enumerate() {
                s.exec(
                    "INSERT INTO _gapsync_batches(seq, kind, file, size, sha256, statements, changes, \
                     first_id, last_id, state, attempts, reason, created, updated) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        Param::Int(r.seq as i64),
                        Param::Text(&r.kind),
                        Param::Text(&r.file),
                        Param::Int(r.size as i64),
                        Param::Text(&r.sha256),
                        Param::Int(r.statements as i64),
                        Param::Int(r.changes as i64),
                        Param::Int(r.first_id.unwrap_or(0)),
                        Param::Int(r.last_id.unwrap_or(0)),
                        Param::Text(r.state.as_str()),
                        Param::Int(i64::from(r.attempts)),
                        Param::Text(r.reason.as_deref().unwrap_or("")),
                        Param::Text(&r.created),
                        Param::Text(&r.created),
                    ],
                )?;
                for id in carried.get(i).map(Vec::as_slice).unwrap_or_default() {
                    let n = s.exec(
                        "UPDATE _gapsync_changes SET batch = ? WHERE id = ? AND batch IS NULL",
                        &[Param::Int(r.seq as i64), Param::Int(*id)],
                    )?;
                    if n != 1 {
                        return Err(SourceError::Corrupt(format!(
                            "change {id} vanished or was already in a batch"
                        )));
                    }
                }
            }
            if let (Some((table, absorbed)), Some(last)) = (absorbed, records.last()) {
                let seq = last.seq as i64;
                let n = match absorbed {
                    Absorbed::UpTo(max_id) => s.exec(
                        "UPDATE _gapsync_changes SET batch = ? WHERE tbl = ? AND id <= ? AND batch IS NULL",
                        &[Param::Int(seq), Param::Text(table), Param::Int(*max_id)],
                    )?,
                    Absorbed::Ids(ids) => {
                        let mut n = 0;
                        for id in ids {
                            n += s.exec(
                                "UPDATE _gapsync_changes SET batch = ? WHERE id = ? AND batch IS NULL",
                                &[Param::Int(seq), Param::Int(*id)],
                            )?;
                        }
                        n
                    }
                };
                s.exec(
                    "UPDATE _gapsync_batches SET changes = changes + ? WHERE seq = ?",
                    &[Param::Int(n as i64), Param::Int(seq)],
                )?;
            }
            if let Some(last) = records.last() {
                let next = last.seq as i64 + 1;
                if s.exec(
                    "UPDATE _gapsync_state SET value = ? WHERE name = 'next_seq'",
                    &[Param::Int(next)],
                )? == 0
                {
                    s.exec(
                        "INSERT INTO _gapsync_state(name, value) VALUES ('next_seq', ?)",
                        &[Param::Int(next)],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn reject(&mut self, rejected: &[(Option<i64>, String, String)]) -> Result<()> {
        self.in_txn(|s| {
            for (id, tbl, reason) in rejected {
                let what = if id.is_some() { "change" } else { "snapshot" };
                s.exec(
                    "INSERT INTO _gapsync_rejected(change_id, tbl, what, reason, at) VALUES (?, ?, ?, ?, ?)",
                    &[
                        Param::Int(id.unwrap_or(0)),
                        Param::Text(tbl),
                        Param::Text(what),
                        Param::Text(reason),
                        Param::Text(&now()),
                    ],
                )?;
                if let Some(id) = id {
                    s.exec(
                        "UPDATE _gapsync_changes SET batch = 0 WHERE id = ? AND batch IS NULL",
                        &[Param::Int(*id)],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn rejected_count(&mut self) -> Result<u64> {
        if !self.has_table("_gapsync_rejected")? {
            return Ok(0);
        }
        Ok(self
            .one_int("SELECT count(*) FROM _gapsync_rejected", &[])?
            .max(0) as u64)
    }

    fn batches(&mut self, state: Option<BatchState>) -> Result<Vec<BatchRecord>> {
        let mut sql = String::from(
            "SELECT seq, kind, file, size, sha256, statements, changes, first_id, last_id, state, \
             attempts, reason, created FROM _gapsync_batches",
        );
        let mut params = Vec::new();
        if let Some(st) = state {
            sql.push_str(" WHERE state = ?");
            params.push(Param::Text(st.as_str()));
        }
        sql.push_str(" ORDER BY seq");
        let rows = self.rows(&sql, &params)?;
        rows.into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                let int = |i: usize| get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                let st = get(9).unwrap_or_default();
                Ok(BatchRecord {
                    seq: int(0) as u64,
                    kind: get(1).unwrap_or_default(),
                    file: get(2).unwrap_or_default(),
                    size: int(3) as u64,
                    sha256: get(4).unwrap_or_default(),
                    statements: int(5) as u64,
                    changes: int(6) as u64,
                    first_id: Some(int(7)).filter(|v| *v != 0),
                    last_id: Some(int(8)).filter(|v| *v != 0),
                    state: match st.as_str() {
                        "ready" => BatchState::Ready,
                        "applied" => BatchState::Applied,
                        "quarantined" => BatchState::Quarantined,
                        other => {
                            return Err(SourceError::Corrupt(format!(
                                "unknown batch state {other:?}"
                            )));
                        }
                    },
                    attempts: int(10) as u32,
                    reason: get(11).filter(|r| !r.is_empty()),
                    created: get(12).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn mark_applied(&mut self, seq: u64) -> Result<()> {
        self.in_txn(|s| {
            s.exec(
                "DELETE FROM _gapsync_changes WHERE batch = ?",
                &[Param::Int(seq as i64)],
            )?;
            s.exec(
                "UPDATE _gapsync_batches SET state = 'applied', updated = ? WHERE seq = ?",
                &[Param::Text(&now()), Param::Int(seq as i64)],
            )?;
            Ok(())
        })
    }

    fn record_failure(&mut self, seq: u64, reason: &str) -> Result<u32> {
        self.exec(
            "UPDATE _gapsync_batches SET attempts = attempts + 1, reason = ?, updated = ? WHERE seq = ?",
            &[Param::Text(reason), Param::Text(&now()), Param::Int(seq as i64)],
        )?;
        Ok(self
            .one_int(
                "SELECT attempts FROM _gapsync_batches WHERE seq = ?",
                &[Param::Int(seq as i64)],
            )?
            .max(0) as u32)
    }

    fn mark_quarantined(&mut self, seq: u64, reason: &str) -> Result<()> {
        self.exec(
            "UPDATE _gapsync_batches SET state = 'quarantined', reason = ?, updated = ? WHERE seq = ?",
            &[Param::Text(reason), Param::Text(&now()), Param::Int(seq as i64)],
        )?;
        Ok(())
    }

    fn queue_snapshot(&mut self, table: &str) -> Result<()> {
        self.exec(
            "INSERT INTO _gapsync_requests(kind, tbl, requested) VALUES ('snapshot', ?, ?)",
            &[Param::Text(table), Param::Text(&now())],
        )?;
        Ok(())
    }

    fn snapshot_requests(&mut self) -> Result<Vec<(i64, String)>> {
        Ok(self
            .rows(
                "SELECT id, tbl FROM _gapsync_requests WHERE kind = 'snapshot' ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let id = r
                    .first()
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (id, r.get(1).cloned().flatten().unwrap_or_default())
            })
            .collect())
    }

    fn finish_request(&mut self, id: i64) -> Result<()> {
        self.exec(
            "DELETE FROM _gapsync_requests WHERE id = ?",
            &[Param::Int(id)],
        )?;
        Ok(())
    }

    fn snapshot_each(
        &mut self,
        spec: &TableSpec,
        each: &mut SnapshotSink<'_>,
    ) -> std::result::Result<Absorbed, SinkError> {
        let classes = self.classes_of(spec);
        let t = self.q(&spec.source);
        let exprs: Vec<String> = spec
            .columns
            .iter()
            .zip(&classes)
            .map(|(c, cl)| cl.expr(self.dbms, &format!("{t}.{}", self.q(&c.source))))
            .collect();
        let order: Vec<String> = spec
            .key
            .iter()
            .map(|&i| self.q(&spec.columns[i].source))
            .collect();
        self.db.begin().map_err(db)?;
        let r = (|| -> std::result::Result<Absorbed, SinkError> {
            // One consistent snapshot for the ids and the rows.
            self.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", &[])?;
            let ids: Vec<i64> = self
                .rows(
                    "SELECT id FROM _gapsync_changes WHERE tbl = ? AND batch IS NULL ORDER BY id",
                    &[Param::Text(&spec.source)],
                )?
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten()?.parse().ok())
                .collect();
            let rows = self
                .one_int(&format!("SELECT count(*) FROM {t}"), &[])?
                .max(0) as u64;
            each(SnapshotEvent::Start { rows })?;
            let sql = format!(
                "SELECT {} FROM {t} ORDER BY {}",
                exprs.join(", "),
                order.join(", ")
            );
            let mut vals = Vec::with_capacity(classes.len());
            self.db.query_each(&sql, &[], &mut |r| {
                vals.clear();
                for (v, cl) in r.iter().zip(&classes) {
                    vals.push(
                        cl.decode(v.as_deref())
                            .map_err(|e| -> SinkError { e.into() })?,
                    );
                }
                each(SnapshotEvent::Row(&vals))
            })?;
            Ok(Absorbed::Ids(ids))
        })();
        match r {
            Ok(a) => {
                self.db.commit().map_err(db)?;
                Ok(a)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }
}
