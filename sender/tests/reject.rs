//! A change the target's dialect cannot express is rejected with its reason, kept in the
//! source, reported by status, and does not stop the changes around it.
#![allow(clippy::unwrap_used)]

use gapsync_sender::config::SenderConfig;
use gapsync_sender::{Sender, status};

#[test]
fn unrenderable_change_is_rejected_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plant.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let cfg_path = dir.path().join("sender.toml");
    std::fs::write(
        &cfg_path,
        "node = \"n1\"\ninsecure = true\n[source]\nurl = \"sqlite:plant.db\"\n\
         [target]\ndialect = \"postgres\"\n[[table]]\nsource = \"t\"\n\
         [link]\nconnect = \"127.0.0.1:9\"\n[work]\ndir = \"work\"\n",
    )
    .unwrap();
    let cfg = SenderConfig::load(&cfg_path).unwrap();
    let mut s = Sender::open(cfg.clone(), false).unwrap();
    let specs = s.specs().unwrap();
    s.source().install(&specs).unwrap();
    drop(s);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO t VALUES (1, 'fine'); \
             INSERT INTO t VALUES (2, 'nul' || char(0) || 'inside'); \
             INSERT INTO t VALUES (3, 'also fine');",
        )
        .unwrap();
    let mut s = Sender::open(cfg, true).unwrap();
    let seqs = s.cut_pending().unwrap();
    assert_eq!(seqs.len(), 1);
    let work = s.cfg.work_dir.clone();
    let alarm = s.cfg.alarm.clone();
    let st = status::status("n1", &work, s.source(), status::Media::default(), &alarm).unwrap();
    assert_eq!(st.rejected, 1);
    assert_eq!(st.pending_changes, 0);
    let batch = std::fs::read_to_string(dir.path().join("work/outbox/n1-00000000000000000001.sql"))
        .unwrap();
    assert!(batch.contains("'fine'") && batch.contains("'also fine'"));
    assert!(!batch.contains("inside"));
    let reason: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT reason FROM _gapsync_rejected", [], |r| r.get(0))
        .unwrap();
    assert!(reason.contains("NUL"), "{reason}");
}

#[test]
fn impossible_type_mapping_is_a_config_error_at_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plant.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, anything)")
        .unwrap();
    let cfg_path = dir.path().join("sender.toml");
    std::fs::write(
        &cfg_path,
        "node = \"n1\"\ninsecure = true\n[source]\nurl = \"sqlite:plant.db\"\n\
         [target]\ndialect = \"postgres\"\n[[table]]\nsource = \"t\"\n\
         [link]\nconnect = \"127.0.0.1:9\"\n[work]\ndir = \"work\"\n",
    )
    .unwrap();
    let cfg = SenderConfig::load(&cfg_path).unwrap();
    let mut s = Sender::open(cfg, false).unwrap();
    let e = s.checked_specs().unwrap_err().to_string();
    assert!(
        e.contains("[[table]] t") && e.contains("anything"),
        "the error must name the table and the column: {e}"
    );
}
