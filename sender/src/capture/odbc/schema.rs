//! What a server source's schema says (tables, layouts, the triggers present, the
//! tracking table's width), the install plan computed from it, and reading tracking
//! rows back into changes.

use super::*;

impl OdbcSource {
    pub(super) fn has_table(&mut self, name: &str) -> Result<bool> {
        let sql = format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = ?",
            self.schema_fn()
        );
        Ok(self.one_int(&sql, &[Param::Text(name)])? > 0)
    }

    pub(super) fn base_ddl(&self) -> Vec<String> {
        capture_ddl::base_ddl(self.cd())
    }

    pub(super) fn tracking_width(&mut self) -> Result<(usize, usize)> {
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

    pub(super) fn current_layout(&mut self, table: &str) -> Result<Option<RecordedLayout>> {
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

    pub(super) fn trigger_names(&self, table: &str) -> Vec<String> {
        capture_ddl::trigger_names(self.cd(), table)
    }

    pub(super) fn triggers_present(&mut self, table: &str) -> Result<bool> {
        let want = self.trigger_names(table);
        let sql = format!(
            "SELECT count(DISTINCT trigger_name) FROM information_schema.triggers WHERE trigger_schema = {} \
             AND event_object_table = ? AND trigger_name LIKE '\\_gapsync\\_%'",
            self.schema_fn()
        );
        Ok(self.one_int(&sql, &[Param::Text(table)])? as usize == want.len())
    }

    pub(super) fn drop_trigger_ddl(&self, table: &str) -> Vec<String> {
        capture_ddl::drop_trigger_ddl(self.cd(), table)
    }

    pub(super) fn trigger_ddl(
        &self,
        spec: &TableSpec,
        classes: &[Class],
        layout: i64,
    ) -> Vec<String> {
        capture_ddl::trigger_ddl(self.cd(), spec, classes, layout)
    }

    pub(super) fn plan(&mut self, specs: &[TableSpec]) -> Result<InstallPlan> {
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
            notes.push(install_note(
                &spec.source,
                current.is_some(),
                same,
                "columns or key",
            ));
            let cd = self.cd();
            widen(&mut ddl, &mut kw, key.len(), |i| {
                capture_ddl::width_ddl(cd, 'k', i)
            });
            widen(&mut ddl, &mut cw, cols.len(), |i| {
                capture_ddl::width_ddl(cd, 'c', i)
            });
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

    pub(super) fn classes_of(&self, spec: &TableSpec) -> Vec<Class> {
        spec.columns
            .iter()
            .map(|c| Class::of_declared(&c.decl_type))
            .collect()
    }

    pub(super) fn in_txn<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
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

    pub(super) fn select_changes(&self, kw: usize, cw: usize) -> String {
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

    pub(super) fn decode_rows(
        &mut self,
        rows: Vec<Vec<Option<String>>>,
        kw: usize,
    ) -> Result<Vec<(Change, Option<i64>)>> {
        let cd = self.cd();
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
            let bad = |e: DecodeError| SourceError::Corrupt(format!("change {id}: {e}"));
            let old_key = if op == Op::Insert {
                Vec::new()
            } else {
                (0..layout.key.len())
                    .map(|i| key_classes[i].decode(cd, r.get(5 + i).and_then(|v| v.as_deref())))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(bad)?
            };
            let row = if op == Op::Delete {
                Vec::new()
            } else {
                (0..layout.columns.len())
                    .map(|i| classes[i].decode(cd, r.get(5 + kw + i).and_then(|v| v.as_deref())))
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

    pub(super) fn layout_classes(&mut self, id: i64) -> Result<(Layout, Vec<Class>)> {
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

    pub(super) fn limit_clause(n: u64) -> String {
        format!(" LIMIT {}", n.min(i64::MAX as u64))
    }
}
