//! The fast path against the parse: whatever `fast::recognise` accepts, the sqlparser
//! check accepts too, for the same table. Run on the golden files, the renderer's
//! outputs, the hostile corpus and seeded mutations of all of them.

use super::*;
use crate::allow::fast::recognise;

/// The INSERT/UPDATE/DELETE statements of the golden files for `d`
/// (the renderer's `common/tests/golden/<d>.sql` and `d`'s sections of this crate's
/// `tests/golden/ledger.sql`).
fn golden(d: Dialect) -> Vec<String> {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rendered = here.join("../common/tests/golden");
    let mut out = Vec::new();
    let own = std::fs::read_to_string(rendered.join(format!("{}.sql", d.name()))).unwrap();
    out.extend(own.lines().map(str::to_owned));
    let ledger = std::fs::read_to_string(here.join("tests/golden/ledger.sql")).unwrap();
    let mut mine = false;
    for line in ledger.lines() {
        if let Some(h) = line.strip_prefix("-- ") {
            if let Some((name, _)) = h.split_once(':')
                && name.parse::<Dialect>().is_ok()
            {
                mine = name == d.name();
            }
        } else if mine {
            out.push(line.to_owned());
        }
    }
    out.retain(|l| !l.is_empty() && !l.starts_with("--"));
    out
}

fn is_change(s: &str) -> bool {
    s.starts_with("INSERT ") || s.starts_with("UPDATE ") || s.starts_with("DELETE ")
}

/// The one-part table of a single INSERT/UPDATE/DELETE as sqlparser reads it.
fn parsed_table(d: Dialect, sql: &str) -> Option<String> {
    let stmts = Parser::parse_sql(parser_dialect(d), sql).ok()?;
    let [s] = stmts.as_slice() else {
        return None;
    };
    let name = match s {
        Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => n,
            _ => return None,
        },
        Statement::Update(u) => plain_table(&u.table)?,
        Statement::Delete(x) => match &x.from {
            FromTable::WithFromKeyword(f) => plain_table(f.first()?)?,
            FromTable::WithoutKeyword(_) => return None,
        },
        _ => return None,
    };
    one_part(name).map(|i| i.value.clone())
}

/// If the fast path recognises `sql`: the parse must accept it (wherever the table is
/// allowed) and name the same table. Returns whether it was recognised.
fn differ(d: Dialect, sql: &str, lists: &[AllowList], bad: &mut Vec<String>) -> bool {
    let Some(table) = recognise(d, sql) else {
        return false;
    };
    let parsed = parsed_table(d, sql);
    if parsed.as_deref() != Some(&*table) {
        bad.push(format!(
            "{d}: fast table {table:?}, parsed {parsed:?}: {sql:?}"
        ));
    }
    for a in lists {
        if a.allows(&table)
            && let Err(e) = a.validate_parsed(d, sql)
        {
            bad.push(format!("{d}: fast accepts, parse refuses ({e}): {sql:?}"));
        }
    }
    true
}

/// splitmix64: a seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    /// A char boundary of `s` (0..=len).
    fn at(&mut self, s: &str) -> usize {
        let mut i = self.below(s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Text a mutation inserts or substitutes.
const TOKENS: &[&str] = &[
    ";",
    "; ",
    ";;",
    "--",
    "-- ",
    "/*",
    "*/",
    "/*!",
    "/*!50000 ",
    "/*M!",
    "/*+",
    "/**/",
    "*/",
    "--\n",
    "#",
    "'",
    "''",
    "\"",
    "\"\"",
    "\\",
    "\\'",
    "\\\\",
    "\\n",
    ")",
    "(",
    ",",
    ", ",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\0",
    "SELECT ",
    "SELECT 1",
    "load_extension(",
    "load_extension('x')",
    "sleep(1)",
    "pg_sleep(1)",
    "E",
    "E'",
    "N",
    "N'",
    "X",
    "X'",
    "x",
    "0x",
    "0x4",
    "_utf8mb4 ",
    "_latin1 ",
    "e",
    "e-",
    "E5",
    ".",
    "-",
    "+",
    "L",
    "[",
    "]",
    "]]",
    "`",
    "$$",
    "$1",
    "?",
    "@x",
    "::int",
    " OR 1 = 1",
    " AND ",
    " IS NULL",
    " IS NOT NULL",
    "NULL",
    "TRUE",
    "1",
    "0",
    "9",
    "a",
    "Z",
    "中",
    "q'",
    "nq'",
    "U&",
    "CAST(",
    " AS TEXT)",
    " AS BLOB)",
    "AS ",
    "DATE ",
    "TIME ",
    "TIMESTAMP ",
    "INTERVAL ",
    " COLLATE x",
    " RETURNING *",
    " ON CONFLICT DO NOTHING",
    " WHERE ",
    "DELETE FROM \"t\"",
    "DROP TABLE \"t\"",
    "=",
    " = ",
    "<>",
    "||",
    "*",
    "/",
];

/// Identifiers a mutation puts in place of the first (the table) or another.
const NAMES: &[&str] = &[
    "\"_gapsync_ledger\"",
    "\"_GAPSYNC_x\"",
    "\"sqlite_master\"",
    "\"other\"",
    "\"plant2_x\"",
    "\"meterx\"",
    "\"t\"",
    "\"meter\"",
    "\"plant1_\"",
    "\"x\".\"t\"",
    "main.\"t\"",
    "\"t\" AS x",
    "t",
    "`t`",
    "[t]",
    "[_gapsync_ledger]",
    "[t].[x]",
    "\"\"",
    "\"t\"\"\"",
    "\"t\"\"",
    "\"plant1_\"\"x\"",
    "\"plant1_\\\"",
    "v",
    "\"v\" + 1",
    "(SELECT 1)",
];

/// A quoted identifier's span in `s` (the `k`-th one, if there are that many).
fn ident_span(s: &str, k: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let (open, close) = if s.contains(" [") {
        (b'[', b']')
    } else {
        (b'"', b'"')
    };
    let mut i = 0;
    let mut found = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            in_string = !in_string;
        } else if !in_string && c == open {
            let start = i;
            i += 1;
            while i < b.len() {
                if b[i] == close {
                    if b.get(i + 1) == Some(&close) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            if found == k {
                return Some((start, (i + 1).min(b.len())));
            }
            found += 1;
        }
        i += 1;
    }
    None
}

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut s = s.to_owned();
    let ops = [1, 1, 1, 2, 3][rng.below(5)];
    for _ in 0..ops {
        match rng.below(9) {
            0 | 1 => {
                let i = rng.at(&s);
                s.insert_str(i, rng.pick(TOKENS));
            }
            2 => {
                let i = rng.at(&s);
                let j = rng.at(&s);
                let (i, j) = (i.min(j), i.max(j).min(i + 4));
                let j = (j..=s.len()).find(|&j| s.is_char_boundary(j)).unwrap();
                s.replace_range(i..j, "");
            }
            3 => {
                let i = rng.at(&s);
                let j = (i + 1..=s.len())
                    .find(|&j| s.is_char_boundary(j))
                    .unwrap_or(i);
                s.replace_range(i..j, rng.pick(TOKENS));
            }
            4 => {
                let k = if rng.below(2) == 0 { 0 } else { rng.below(4) };
                if let Some((i, j)) = ident_span(&s, k) {
                    s.replace_range(i..j, rng.pick(NAMES));
                }
            }
            5 => {
                let i = rng.at(&s);
                s.truncate(i);
            }
            6 => {
                // Flip the case of one ASCII letter, or bump a digit.
                let i = rng.below(s.len().max(1));
                if let Some(c) = s.as_bytes().get(i).copied() {
                    let n = if c.is_ascii_alphabetic() {
                        c ^ 0x20
                    } else if c.is_ascii_digit() {
                        b'0' + (c - b'0' + 1) % 10
                    } else {
                        continue;
                    };
                    s.replace_range(i..=i, &char::from(n).to_string());
                }
            }
            7 => {
                // Duplicate a short piece.
                let i = rng.at(&s);
                let j = (i + 1 + rng.below(12)..=s.len())
                    .find(|&j| s.is_char_boundary(j))
                    .unwrap_or(s.len());
                let piece = s[i..j].to_owned();
                let at = rng.at(&s);
                s.insert_str(at, &piece);
            }
            _ => {
                // Append something after the statement.
                s.push_str(rng.pick(TOKENS));
            }
        }
    }
    s
}

/// More values than `values()`: reals in every notation, odd text.
fn more_values() -> Vec<Value> {
    let mut v = values();
    v.extend([
        Value::Real(1e16),
        Value::Real(1.5e300),
        Value::Real(-2.5e-7),
        Value::Real(123456.789),
        Value::Real(1.0),
        Value::Text("\"quoted\" [x]]".into()),
        Value::Text("E'\\x41' N'x' X'41' 0x41 $$ -- /* */ # ;".into()),
        Value::Text("tab\there".into()),
        Value::Text("'''".into()),
        Value::Text("\\'".into()),
        Value::Blob(vec![0x5c, 0x27, 0x22]),
        Value::Decimal("0.000".into()),
        Value::Time("00:00:00".into()),
        Value::TimestampTz("1999-12-31 23:59:59+00:00".into()),
    ]);
    v
}

/// The renderer's statements with more values and odd names.
fn rendered_more(d: Dialect) -> Vec<String> {
    let mut out = rendered(d);
    let names = [
        "t",
        "plant1_\"x\"",
        "plant1_[a]]b]",
        "meter",
        "中文表",
        "plant1_'",
    ];
    for (i, v) in more_values().into_iter().enumerate() {
        let table = names[i % names.len()];
        let mut s = String::new();
        if d.render_insert(
            table,
            &["id", "v \"]"],
            &[Value::Integer(7), v.clone()],
            &mut s,
        )
        .is_ok()
        {
            out.push(std::mem::take(&mut s));
        }
        if d.render_update(
            table,
            &["v"],
            std::slice::from_ref(&v),
            &["k", "v"],
            &[v.clone(), Value::Null],
            &mut s,
        )
        .is_ok()
        {
            out.push(std::mem::take(&mut s));
        }
        if d.render_delete(table, &["k"], &[v], &mut s).is_ok() {
            out.push(s);
        }
    }
    out
}

#[test]
fn the_fast_path_accepts_nothing_the_parse_refuses() {
    let lists = [allow(), AllowList::default()];
    let mut bad = Vec::new();
    let mut report = Vec::new();
    for d in Dialect::ALL {
        let rendered = rendered_more(d);
        let golden = golden(d);
        let hostile = hostile(d);
        for s in &hostile {
            if recognise(d, s).is_some() && lists[0].validate(d, s).is_ok() {
                bad.push(format!("{d}: hostile accepted by the fast path: {s}"));
            }
            differ(d, s, &lists, &mut bad);
        }
        // Hit rate on the renderer's changes (the shapes a batch is made of) that the
        // parse accepts: all of them, in every dialect.
        let (mut changes, mut hits) = (0usize, 0usize);
        for s in rendered.iter().chain(&golden) {
            let hit = differ(d, s, &lists, &mut bad);
            if is_change(s) && lists[1].validate_parsed(d, s).is_ok() {
                changes += 1;
                hits += usize::from(hit);
                if !hit {
                    bad.push(format!("{d}: the fast path misses a rendered change: {s}"));
                }
            }
        }
        // Mutations.
        let bases: Vec<&String> = rendered.iter().chain(&golden).chain(&hostile).collect();
        let mut rng = Rng(0x5EED_0000 + d as u64);
        let per_base = 60_000 / bases.len() + 1;
        let (mut cases, mut fast) = (0usize, 0usize);
        for b in &bases {
            for _ in 0..per_base {
                let m = mutate(&mut rng, b);
                cases += 1;
                fast += usize::from(differ(d, &m, &lists, &mut bad));
            }
        }
        // A sample: validate (with its fast path) says exactly what the parse says.
        let mut sample = 0usize;
        for b in bases.iter().step_by(3) {
            let m = mutate(&mut rng, b);
            for s in [b.as_str(), m.as_str()] {
                sample += 1;
                for a in &lists {
                    let (v, p) = (a.validate(d, s), a.validate_parsed(d, s));
                    if v != p {
                        bad.push(format!("{d}: validate {v:?} but the parse {p:?}: {s:?}"));
                    }
                }
            }
        }
        report.push(format!(
            "{d}: rendered changes {hits}/{changes} on the fast path; {cases} mutations, \
             {fast} recognised (each checked against the parse); {} hostile; \
             {sample} verdicts compared",
            hostile.len()
        ));
        // (A rendered change the fast path misses is in `bad` already.)
        assert!(cases >= 60_000, "{d}: {cases}");
    }
    println!("{}", report.join("\n"));
    assert!(
        bad.is_empty(),
        "{} problems:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
