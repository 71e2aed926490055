//! What a SQLite source's schema says: tables, layouts, unique constraints, the
//! triggers present, the tracking table's width; and the install plan and trigger DDL
//! computed from it.

use super::*;

pub(crate) fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(crate) fn current_layout(conn: &Connection, table: &str) -> Result<Option<Layout>> {
    if !has_table(conn, "_gapsync_layouts")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT layout, columns, key, uniques FROM _gapsync_layouts WHERE tbl=?1 \
             ORDER BY layout DESC LIMIT 1",
        [table],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )
    .optional()?
    .map(|(id, c, k, u)| {
        Ok(Layout {
            id,
            table: table.to_owned(),
            columns: from_json(&c)?,
            key: from_json(&k)?,
            unique: serde_json::from_str(&u)
                .map_err(|e| SourceError::Corrupt(format!("layout uniques {u:?}: {e}")))?,
        })
    })
    .transpose()
}

/// Column sets of the table's unique constraints: the primary key, then every unique
/// index that is not partial and has no expression columns.
pub(crate) fn unique_sets(
    conn: &Connection,
    table: &str,
    columns: &[ColumnSpec],
) -> Result<Vec<Vec<usize>>> {
    let pos = |name: &str| columns.iter().position(|c| c.source == name);
    let mut sets: Vec<Vec<usize>> = Vec::new();
    let mut pk: Vec<(i64, usize)> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1)")?;
        let rows = stmt.query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (name, k) = row?;
            if k > 0
                && let Some(i) = pos(&name)
            {
                pk.push((k, i));
            }
        }
    }
    pk.sort();
    if !pk.is_empty() {
        sets.push(pk.into_iter().map(|(_, i)| i).collect());
    }
    let indexes: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0",
        )?;
        let rows = stmt.query_map([table], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for index in indexes {
        let mut stmt = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let names: Vec<Option<String>> = stmt
            .query_map([&index], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let set: Option<Vec<usize>> = names.iter().map(|n| n.as_deref().and_then(pos)).collect();
        if let Some(mut set) = set.filter(|s| !s.is_empty()) {
            let mut sorted = set.clone();
            sorted.sort();
            if !sets.iter().any(|s| {
                let mut t = s.clone();
                t.sort();
                t == sorted
            }) {
                sets.push(std::mem::take(&mut set));
            }
        }
    }
    Ok(sets)
}

/// Whether exactly the triggers `spec` needs are present.
pub(crate) fn triggers_present(conn: &Connection, spec: &TableSpec) -> Result<bool> {
    let present: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?1 \
             AND name LIKE '\\_gapsync\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        let rows = stmt.query_map([&spec.source], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut want: Vec<String> = spec
        .trigger_kinds()
        .iter()
        .map(|k| trigger_name(&spec.source, k))
        .collect();
    want.sort();
    Ok(present == want)
}

pub(crate) fn tracking_width(conn: &Connection) -> Result<(usize, usize)> {
    if !has_table(conn, "_gapsync_changes")? {
        return Ok((0, 0));
    }
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('_gapsync_changes')")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let count = |p: char| {
        names
            .iter()
            .filter(|n| {
                n.starts_with(p) && n[1..].bytes().all(|b| b.is_ascii_digit()) && n.len() > 1
            })
            .count()
    };
    Ok((count('k'), count('c')))
}

/// Compute the DDL that brings capture up to date for `specs`.
pub(crate) fn plan(conn: &Connection, specs: &[TableSpec]) -> Result<InstallPlan> {
    let mut ddl: Vec<String> = BASE_DDL.split(';').map(|s| s.trim().to_owned()).collect();
    let mut notes = Vec::new();
    let (mut kw, mut cw) = tracking_width(conn)?;
    let mut next_layout: i64 = if has_table(conn, "_gapsync_layouts")? {
        conn.query_row(
            "SELECT coalesce(max(layout), 0) + 1 FROM _gapsync_layouts",
            [],
            |r| r.get(0),
        )?
    } else {
        1
    };
    for spec in specs {
        let cols = spec.column_names();
        let key = spec.key_names();
        let unique = spec.unique_names();
        let current = current_layout(conn, &spec.source)?;
        let same = current
            .as_ref()
            .is_some_and(|l| l.columns == cols && l.key == key && l.unique == unique);
        if same && triggers_present(conn, spec)? {
            notes.push(format!("{}: up to date", spec.source));
            continue;
        }
        notes.push(install_note(
            &spec.source,
            current.is_some(),
            same,
            "columns, key or unique constraints",
        ));
        widen(&mut ddl, &mut kw, key.len(), |i| {
            format!("ALTER TABLE _gapsync_changes ADD COLUMN k{i}")
        });
        widen(&mut ddl, &mut cw, cols.len(), |i| {
            format!("ALTER TABLE _gapsync_changes ADD COLUMN c{i}")
        });
        let layout = next_layout;
        next_layout += 1;
        ddl.push(format!(
            "INSERT INTO _gapsync_layouts(layout, tbl, columns, key, uniques, installed_at) \
             VALUES ({layout}, {}, {}, {}, {}, {})",
            quote_lit(&spec.source),
            quote_lit(&to_json(&cols)),
            quote_lit(&to_json(&key)),
            quote_lit(&serde_json::Value::from(unique.clone()).to_string()),
            quote_lit(&now())
        ));
        ddl.extend(trigger_ddl(spec, layout));
    }
    Ok(InstallPlan { ddl, notes })
}

pub(crate) fn trigger_name(table: &str, kind: &str) -> String {
    format!("_gapsync_{table}_{kind}")
}

pub(crate) fn trigger_ddl(spec: &TableSpec, layout: i64) -> Vec<String> {
    let t = quote(&spec.source);
    let tl = quote_lit(&spec.source);
    let ncols = spec.columns.len();
    let nkey = spec.key.len();
    let cnames: Vec<String> = (0..ncols).map(|i| format!("c{i}")).collect();
    let knames: Vec<String> = (0..nkey).map(|i| format!("k{i}")).collect();
    let new_vals: Vec<String> = spec
        .columns
        .iter()
        .map(|c| format!("NEW.{}", quote(&c.source)))
        .collect();
    let old_keys: Vec<String> = spec
        .key
        .iter()
        .map(|&i| format!("OLD.{}", quote(&spec.columns[i].source)))
        .collect();
    let mut out = Vec::new();
    for kind in ["ins", "upd", "del", "rep"] {
        out.push(format!(
            "DROP TRIGGER IF EXISTS {}",
            quote(&trigger_name(&spec.source, kind))
        ));
    }
    out.push(format!(
        "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}) \
         VALUES ({tl}, 'I', {layout}, {}); END",
        quote(&trigger_name(&spec.source, "ins")),
        cnames.join(", "),
        new_vals.join(", ")
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}, {}) \
         VALUES ({tl}, 'U', {layout}, {}, {}); END",
        quote(&trigger_name(&spec.source, "upd")),
        knames.join(", "),
        cnames.join(", "),
        old_keys.join(", "),
        new_vals.join(", ")
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}) \
         VALUES ({tl}, 'D', {layout}, {}); END",
        quote(&trigger_name(&spec.source, "del")),
        knames.join(", "),
        old_keys.join(", ")
    ));
    if !spec.unique.is_empty() {
        // For every existing row the new row conflicts with on a unique constraint:
        // its key, and the new row (see the module docs on REPLACE).
        let cur_keys: Vec<String> = spec
            .key
            .iter()
            .map(|&i| format!("{t}.{}", quote(&spec.columns[i].source)))
            .collect();
        let conflicts: Vec<String> = spec
            .unique
            .iter()
            .map(|set| {
                let terms: Vec<String> = set
                    .iter()
                    .map(|&i| {
                        let c = quote(&spec.columns[i].source);
                        format!("{t}.{c} = NEW.{c}")
                    })
                    .collect();
                format!("({})", terms.join(" AND "))
            })
            .collect();
        out.push(format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {t} BEGIN INSERT INTO _gapsync_changes(tbl, op, layout, {}, {}) \
             SELECT {tl}, 'R', {layout}, {}, {} FROM {t} WHERE {}; END",
            quote(&trigger_name(&spec.source, "rep")),
            knames.join(", "),
            cnames.join(", "),
            cur_keys.join(", "),
            new_vals.join(", "),
            conflicts.join(" OR ")
        ));
    }
    out
}
