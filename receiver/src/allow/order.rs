//! Where in its batch a statement may stand ([`BatchOrder`]).

use super::*;

/// Where in its batch a statement may stand: fed every statement of ONE batch in order
/// (each after [`AllowList::validate`] accepted it), before the statement runs.
///
/// MySQL, MariaDB, Oracle and DM commit implicitly at DDL: a `CREATE TABLE` after other statements
/// would commit them without the batch's ledger row, so a batch failing later would
/// leave them behind (ARCHITECTURE.md invariant I2). The sender writes `CREATE TABLE` only as
/// the first statement of a snapshot batch (`batch::BatchKind::Snapshot`), where
/// nothing of the batch has run yet. So on a `mysql`, `oracle` or `dm` target every
/// statement other than `INSERT`, `UPDATE` and `DELETE` is accepted only there, and
/// refused anywhere else before it runs. Other targets have transactional DDL: no rule.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    dialect: Dialect,
    kind: BatchKind,
    /// Statements of the batch seen so far.
    seen: u64,
}

impl BatchOrder {
    /// For one batch of `kind` (its header's) on a target of `dialect`.
    pub fn new(dialect: Dialect, kind: BatchKind) -> BatchOrder {
        BatchOrder {
            dialect,
            kind,
            seen: 0,
        }
    }

    /// The next statement of the batch; the error says why it may not stand there.
    pub fn check(&mut self, sql: &str) -> Result<(), Refusal> {
        let first = self.seen == 0;
        self.seen += 1;
        let implicit_commit =
            matches!(self.dialect, Dialect::Mysql | Dialect::Oracle | Dialect::Dm);
        if !implicit_commit || is_change(sql) {
            return Ok(());
        }
        let what = sql.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let what = what.trim_start();
        match self.kind {
            BatchKind::Snapshot if first => Ok(()),
            BatchKind::Snapshot => Err(format!(
                "{what} after the first statement of a snapshot batch: on this target (MySQL, \
                 MariaDB, Oracle, DM) it would commit the statements before it implicitly (gapsync writes CREATE TABLE \
                 only as a snapshot batch's first statement)"
            ).into()),
            BatchKind::Changes => Err(format!(
                "{what} in a changes batch: on this target (MySQL, MariaDB, Oracle, DM) it \
                 would commit the batch's statements implicitly (gapsync writes CREATE TABLE only as a snapshot batch's \
                 first statement)"
            ).into()),
        }
    }
}

/// `INSERT`, `UPDATE` or `DELETE` (in any case, after leading spaces): statements that
/// MySQL runs inside the transaction.
fn is_change(sql: &str) -> bool {
    let s = sql.trim_start().as_bytes();
    ["INSERT ", "UPDATE ", "DELETE "]
        .iter()
        .any(|k| s.len() >= k.len() && s[..k.len()].eq_ignore_ascii_case(k.as_bytes()))
}
