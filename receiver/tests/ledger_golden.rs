//! The ledger DDL and session set-up each target dialect gets, pinned in
//! `tests/golden/ledger.sql` (SQL Server, Oracle and DM have not run against a live
//! server: this file is what a reviewer checks). `GAPSYNC_BLESS=1` rewrites it.
#![allow(clippy::unwrap_used)]

#[path = "../../common/tests/support/golden.rs"]
mod golden_support;

use gapsync_common::db::session_setup;
use gapsync_common::dialect::Dialect;
use gapsync_receiver::apply::ledger_ddl_for;

#[test]
fn ledger_ddl_and_session_setup_match_golden() {
    let mut out = String::new();
    for d in Dialect::ALL {
        out.push_str(&format!("-- {}: session set-up\n", d.name()));
        for s in session_setup(d) {
            out.push_str(s);
            out.push_str(";\n");
        }
        out.push_str(&format!("-- {}: ledger\n", d.name()));
        for s in ledger_ddl_for(d) {
            out.push_str(&s);
            out.push_str(if s.ends_with(';') { "\n" } else { ";\n" });
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ledger.sql");
    if let Some(f) = golden_support::check(&path, &out) {
        panic!("ledger DDL changed (review, then GAPSYNC_BLESS=1): {f}");
    }
}
