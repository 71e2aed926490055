//! The parsed statement's shapes ([`Check`]): what [`AllowList::validate`] accepts after
//! sqlparser read the statement, and the canonical form it must print as.

use super::*;

pub(super) struct Check {
    pub(super) dialect: Dialect,
    /// The snapshot's CREATE TABLE has no `IF NOT EXISTS`: SQL Server's
    /// `IF OBJECT_ID(..) IS NULL CREATE TABLE`, and Oracle's plain `CREATE TABLE` (before
    /// 23ai Oracle has no `IF NOT EXISTS`; the applier takes ORA-00955 "name is already
    /// used" of that statement as the table being there: `apply::already_there`).
    pub(super) plain_create: bool,
}

impl Check {
    pub(super) fn statement(&self, allow: &AllowList, stmt: &Statement) -> Result<(), Refusal> {
        match stmt {
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return Err("INSERT into a table function".into());
                };
                allow.table(name)?;
                let rows = insert_rows(ins).ok_or("INSERT without a plain VALUES list")?;
                for row in rows {
                    for v in &row.content {
                        self.literal(v)?;
                    }
                }
                Ok(())
            }
            Statement::Update(u) => {
                allow.table(plain_table(&u.table).ok_or("UPDATE of a join or a subquery")?)?;
                for a in &u.assignments {
                    match &a.target {
                        AssignmentTarget::ColumnName(c) if one_part(c).is_some() => {}
                        _ => return Err("UPDATE SET of something other than a column".into()),
                    }
                    self.literal(&a.value)?;
                }
                match &u.selection {
                    Some(w) => self.key_match(w),
                    None => Err("UPDATE without WHERE".into()),
                }
            }
            Statement::Delete(d) => {
                let from = match &d.from {
                    FromTable::WithFromKeyword(f) => f,
                    FromTable::WithoutKeyword(_) => return Err("DELETE without FROM".into()),
                };
                let [t] = from.as_slice() else {
                    return Err("DELETE from several tables".into());
                };
                if !d.tables.is_empty() {
                    return Err("multi-table DELETE".into());
                }
                allow.table(plain_table(t).ok_or("DELETE from a join or a subquery")?)?;
                match &d.selection {
                    Some(w) => self.key_match(w),
                    None => Ok(()),
                }
            }
            Statement::CreateTable(c) => {
                if c.if_not_exists == self.plain_create {
                    return Err(if self.plain_create {
                        format!(
                            "CREATE TABLE IF NOT EXISTS ({} dialect)",
                            self.dialect.name()
                        )
                        .into()
                    } else {
                        "CREATE TABLE without IF NOT EXISTS".into()
                    });
                }
                allow.table(&c.name)?;
                for col in &c.columns {
                    for o in &col.options {
                        match &o.option {
                            ColumnOption::NotNull
                            | ColumnOption::Null
                            | ColumnOption::Collation(_)
                            | ColumnOption::CharacterSet(_) => {}
                            other => {
                                return Err(format!("column option {other} in CREATE TABLE").into());
                            }
                        }
                    }
                }
                for k in &c.constraints {
                    match k {
                        TableConstraint::PrimaryKey(_) => {}
                        other => return Err(format!("constraint {other} in CREATE TABLE").into()),
                    }
                }
                Ok(())
            }
            other => Err(format!("{} is not a statement gapsync writes", kind(other)).into()),
        }
    }

    /// The statement as it prints when it has only the parts [`Check::statement`] checked.
    pub(super) fn canonical(&self, stmt: &Statement) -> Option<String> {
        use std::fmt::Write;
        let mut out = String::new();
        match stmt {
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else {
                    return None;
                };
                let _ = write!(out, "INSERT INTO {name}");
                if !ins.columns.is_empty() {
                    out.push_str(" (");
                    join(&mut out, &ins.columns);
                    out.push(')');
                }
                out.push_str(" VALUES ");
                for (i, row) in insert_rows(ins)?.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('(');
                    join(&mut out, &row.content);
                    out.push(')');
                }
            }
            Statement::Update(u) => {
                let _ = write!(out, "UPDATE {} SET ", plain_table(&u.table)?);
                join(&mut out, &u.assignments);
                let _ = write!(out, " WHERE {}", u.selection.as_ref()?);
            }
            Statement::Delete(d) => {
                let FromTable::WithFromKeyword(f) = &d.from else {
                    return None;
                };
                let _ = write!(out, "DELETE FROM {}", plain_table(f.first()?)?);
                if let Some(w) = &d.selection {
                    let _ = write!(out, " WHERE {w}");
                }
            }
            Statement::CreateTable(c) => {
                let b = sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder::new(
                    c.name.clone(),
                )
                .if_not_exists(!self.plain_create)
                .columns(c.columns.clone())
                .constraints(c.constraints.clone());
                return Some(Statement::CreateTable(b.build()).to_string());
            }
            _ => return None,
        }
        Some(out)
    }

    /// A conjunction of `column = literal` / `column IS NULL`.
    fn key_match(&self, e: &Expr) -> Result<(), Refusal> {
        match e {
            Expr::BinaryOp { left, op, right } => match op {
                sqlparser::ast::BinaryOperator::And => {
                    self.key_match(left)?;
                    self.key_match(right)
                }
                sqlparser::ast::BinaryOperator::Eq => {
                    if !matches!(**left, Expr::Identifier(_)) {
                        return Err(format!("WHERE compares {left}, not a column").into());
                    }
                    self.literal(right)
                }
                other => Err(format!("WHERE uses {other}").into()),
            },
            Expr::IsNull(c) if matches!(**c, Expr::Identifier(_)) => Ok(()),
            other => Err(format!("WHERE holds {other}, not column = literal").into()),
        }
    }

    fn literal(&self, e: &Expr) -> Result<(), Refusal> {
        let d = self.dialect;
        let ok = match e {
            Expr::Value(v) => plain_value(&v.value),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match &**expr {
                Expr::Value(v) => matches!(v.value, SqlValue::Number(..)),
                Expr::Identifier(i) => d == Dialect::Oracle && i.value == "BINARY_DOUBLE_INFINITY",
                _ => false,
            },
            Expr::TypedString(t) => {
                matches!(t.value.value, SqlValue::SingleQuotedString(_))
                    && matches!(
                        t.data_type,
                        DataType::Date
                            | DataType::Time(..)
                            | DataType::Timestamp(..)
                            | DataType::TimestampNtz(..)
                    )
            }
            Expr::Prefixed { prefix, value } => {
                d == Dialect::Mysql
                    && prefix.value.eq_ignore_ascii_case("_utf8mb4")
                    && matches!(&**value, Expr::Value(v) if matches!(v.value, SqlValue::HexStringLiteral(_)))
            }
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type,
                format: None,
                ..
            } => match (d, &**expr, data_type) {
                (Dialect::Sqlite, Expr::Value(v), DataType::Text) => {
                    matches!(v.value, SqlValue::HexStringLiteral(_))
                }
                (Dialect::SqlServer, Expr::Value(v), DataType::Nvarchar(_)) => {
                    matches!(
                        v.value,
                        SqlValue::HexStringLiteral(_) | SqlValue::Number(..)
                    )
                }
                _ => false,
            },
            Expr::Identifier(i) => {
                d == Dialect::Oracle
                    && matches!(
                        i.value.as_str(),
                        "BINARY_DOUBLE_INFINITY" | "BINARY_DOUBLE_NAN"
                    )
            }
            Expr::Function(f) => d == Dialect::Oracle && oracle_fn(f),
            Expr::Interval(i) => {
                d == Dialect::Oracle
                    && matches!(&*i.value, Expr::Value(v) if matches!(v.value, SqlValue::SingleQuotedString(_)))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{e} is not a literal").into())
        }
    }
}

fn plain_value(v: &SqlValue) -> bool {
    matches!(
        v,
        SqlValue::Number(..)
            | SqlValue::SingleQuotedString(_)
            | SqlValue::NationalStringLiteral(_)
            | SqlValue::EscapedStringLiteral(_)
            | SqlValue::UnicodeStringLiteral(_)
            | SqlValue::HexStringLiteral(_)
            | SqlValue::Boolean(_)
            | SqlValue::Null
    )
}

/// Oracle's `UNISTR('..')`, `HEXTORAW('..')`, `EMPTY_BLOB()`.
fn oracle_fn(f: &sqlparser::ast::Function) -> bool {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Some(name) = one_part(&f.name) else {
        return false;
    };
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return false;
    }
    match (name.value.to_ascii_uppercase().as_str(), &f.args) {
        ("EMPTY_BLOB", FunctionArguments::List(l)) => l.args.is_empty() && l.clauses.is_empty(),
        ("UNISTR" | "HEXTORAW", FunctionArguments::List(l)) => {
            l.clauses.is_empty()
                && l.duplicate_treatment.is_none()
                && matches!(l.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))]
                    if matches!(v.value, SqlValue::SingleQuotedString(_)))
        }
        _ => false,
    }
}

fn insert_rows(ins: &sqlparser::ast::Insert) -> Option<&[sqlparser::ast::Parens<Vec<Expr>>]> {
    let q = ins.source.as_ref()?;
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    match &*q.body {
        SetExpr::Values(v) if !v.explicit_row => Some(&v.rows),
        _ => None,
    }
}

pub(super) fn plain_table(t: &TableWithJoins) -> Option<&ObjectName> {
    if !t.joins.is_empty() {
        return None;
    }
    match &t.relation {
        TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } => Some(name),
        _ => None,
    }
}

fn join<T: std::fmt::Display>(out: &mut String, items: &[T]) {
    use std::fmt::Write;
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{it}");
    }
}

/// A short name for a statement's kind, for the refusal message.
fn kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ")
}
