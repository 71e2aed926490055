//! The capture triggers per dialect: their names, their removal, and their DDL.

use super::tracking::*;
use super::*;

/// The names of the triggers installed on `table`.
pub fn trigger_names(d: CaptureDialect, table: &str) -> Vec<String> {
    if d == CaptureDialect::Mysql {
        ["ins", "upd", "del"]
            .iter()
            .map(|k| format!("_gapsync_{table}_{k}"))
            .collect()
    } else {
        vec![format!("_gapsync_{table}")]
    }
}

/// Drop the triggers (and on PostgreSQL their functions) of `table`, if present.
pub fn drop_trigger_ddl(d: CaptureDialect, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in trigger_names(d, table) {
        let q = quote_ident(d, &name);
        match d {
            CaptureDialect::Mysql | CaptureDialect::SqlServer => {
                out.push(format!("DROP TRIGGER IF EXISTS {q}"));
            }
            CaptureDialect::Postgres => {
                out.push(format!(
                    "DROP TRIGGER IF EXISTS {q} ON {}",
                    quote_ident(d, table)
                ));
                out.push(format!(
                    "DROP FUNCTION IF EXISTS {}()",
                    quote_ident(d, &format!("{name}_fn"))
                ));
            }
            CaptureDialect::Oracle => {
                out.push(oracle_ignoring(&format!("DROP TRIGGER {q}"), -4080))
            }
            CaptureDialect::Dm => out.push(dm_if(
                &format!("USER_TRIGGERS WHERE TRIGGER_NAME = {}", quote_lit(&name)),
                false,
                &format!("DROP TRIGGER {q}"),
            )),
        }
    }
    out
}

/// (Re)create the capture triggers of `spec`, writing layout `layout`; `classes` has one
/// class per column of `spec`.
pub fn trigger_ddl(
    d: CaptureDialect,
    spec: &TableSpec,
    classes: &[Class],
    layout: i64,
) -> Vec<String> {
    let q = |name: &str| quote_ident(d, name);
    let t = q(&spec.source);
    let tl = lit(d, &spec.source);
    let class = |i: usize| classes.get(i).copied().unwrap_or(Class::Text);
    let col =
        |rec: &str, i: usize| class(i).expr(d, &format!("{rec}.{}", q(&spec.columns[i].source)));
    let vals =
        |rec: &str| -> Vec<String> { (0..spec.columns.len()).map(|i| col(rec, i)).collect() };
    let keys = |rec: &str| -> Vec<String> { spec.key.iter().map(|&i| col(rec, i)).collect() };
    let cn: Vec<String> = (0..spec.columns.len())
        .map(|i| own(d, &format!("c{i}")))
        .collect();
    let kn: Vec<String> = (0..spec.key.len())
        .map(|i| own(d, &format!("k{i}")))
        .collect();
    let changes = own(d, "_gapsync_changes");
    let head = ["tbl", "op", "layout"].map(|c| own(d, c)).join(", ");
    match d {
        CaptureDialect::Postgres | CaptureDialect::Mysql => {
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
            let mut out = drop_trigger_ddl(d, &spec.source);
            if d == CaptureDialect::Mysql {
                for (kind, event, body) in [
                    ("ins", "INSERT", ins),
                    ("upd", "UPDATE", upd),
                    ("del", "DELETE", del),
                ] {
                    out.push(format!(
                        "CREATE TRIGGER {} AFTER {event} ON {t} FOR EACH ROW {body}",
                        q(&format!("_gapsync_{}_{kind}", spec.source))
                    ));
                }
            } else {
                let name = format!("_gapsync_{}", spec.source);
                let func = q(&format!("{name}_fn"));
                out.push(format!(
                    // The writing session's settings must not change what is captured:
                    // `search_path` (finding `_gapsync_changes`) and `extra_float_digits`
                    // (floats printed exactly) are pinned on the function.
                    "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql \
                     SET search_path FROM CURRENT SET extra_float_digits = 3 AS $gapsync$ \
                     BEGIN IF TG_OP = 'INSERT' THEN {ins}; ELSIF TG_OP = 'UPDATE' THEN {upd}; \
                     ELSE {del}; END IF; RETURN NULL; END $gapsync$"
                ));
                out.push(format!(
                    "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {func}()",
                    q(&name)
                ));
            }
            out
        }
        CaptureDialect::SqlServer => {
            // Rows of `a` and `b` with equal keys.
            let same_key = |a: &str, b: &str| -> String {
                spec.key
                    .iter()
                    .map(|&i| {
                        let c = q(&spec.columns[i].source);
                        format!("{a}.{c} = {b}.{c}")
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            let del = format!(
                "INSERT INTO {changes}({head}, {}) SELECT {tl}, 'D', {layout}, {} FROM deleted d \
                 WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE {})",
                kn.join(", "),
                keys("d").join(", "),
                same_key("i", "d")
            );
            let upd = format!(
                "INSERT INTO {changes}({head}, {}, {}) SELECT {tl}, 'U', {layout}, {}, {} \
                 FROM deleted d JOIN inserted i ON {}",
                kn.join(", "),
                cn.join(", "),
                keys("d").join(", "),
                vals("i").join(", "),
                same_key("i", "d")
            );
            let ins = format!(
                "INSERT INTO {changes}({head}, {}) SELECT {tl}, 'I', {layout}, {} FROM inserted i \
                 WHERE NOT EXISTS (SELECT 1 FROM deleted d WHERE {})",
                cn.join(", "),
                vals("i").join(", "),
                same_key("d", "i")
            );
            vec![format!(
                "CREATE OR ALTER TRIGGER {} ON {t} AFTER INSERT, UPDATE, DELETE AS BEGIN \
                 SET NOCOUNT ON; {del}; {upd}; {ins}; END",
                q(&format!("_gapsync_{}", spec.source))
            )]
        }
        CaptureDialect::Oracle | CaptureDialect::Dm => {
            let oracle = d == CaptureDialect::Oracle;
            let (head, tx) = if oracle {
                (format!("{head}, {}", own(d, "txid")), ", tx")
            } else {
                (head, "")
            };
            let ins = format!(
                "INSERT INTO {changes}({head}, {}) VALUES ({tl}, 'I', {layout}{tx}, {})",
                cn.join(", "),
                vals(":NEW").join(", ")
            );
            let upd = format!(
                "INSERT INTO {changes}({head}, {}, {}) VALUES ({tl}, 'U', {layout}{tx}, {}, {})",
                kn.join(", "),
                cn.join(", "),
                keys(":OLD").join(", "),
                vals(":NEW").join(", ")
            );
            let del = format!(
                "INSERT INTO {changes}({head}, {}) VALUES ({tl}, 'D', {layout}{tx}, {})",
                kn.join(", "),
                keys(":OLD").join(", ")
            );
            let declare = if oracle {
                "DECLARE tx VARCHAR2(64) := DBMS_TRANSACTION.LOCAL_TRANSACTION_ID(TRUE); "
            } else {
                ""
            };
            vec![format!(
                "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW \
                 {declare}BEGIN IF INSERTING THEN {ins}; ELSIF UPDATING THEN {upd}; ELSE {del}; END IF; END;",
                q(&format!("_gapsync_{}", spec.source))
            )]
        }
    }
}
