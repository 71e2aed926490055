//! The files the batch writer creates are private (`0600`) and its temp name is never
//! followed through a symlink (`common::fsx` rules, security review of the work dirs).
//!
//! ```text
//! cargo test -p gapsync-common --test file_modes
//! ```

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};

fn header(seq: u64) -> BatchHeader {
    BatchHeader {
        node: "plant1".to_owned(),
        seq,
        created: "2026-11-21T10:00:00.123456Z".to_owned(),
        dialect: "sqlite".to_owned(),
        kind: BatchKind::Changes,
        changes: Some((1, 1)),
        statements: 1,
    }
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

const STATEMENT: &str = "INSERT INTO \"t\" (\"id\") VALUES (1);";

#[test]
fn batch_temp_and_final_files_are_0600() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = BatchWriter::create(dir.path(), header(1), compress, 3).expect("create");
        let tmp = dir.path().join(format!(".tmp-{}", w.name()));
        assert_eq!(mode_of(&tmp), 0o600, "temp file");
        w.push(STATEMENT).expect("push");
        let done = w.finish().expect("finish");
        assert_eq!(mode_of(&done.path), 0o600, "final file");
        assert!(!tmp.exists());
    }
}

#[test]
fn a_stale_temp_file_is_replaced_with_a_private_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path().join(".tmp-plant1-00000000000000000002.sql");
    fs::write(&tmp, "stale leftover of a crash").expect("write");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut w = BatchWriter::create(dir.path(), header(2), false, 3).expect("create");
    assert_eq!(mode_of(&tmp), 0o600);
    w.push(STATEMENT).expect("push");
    let done = w.finish().expect("finish");
    let text = fs::read_to_string(&done.path).expect("read");
    assert!(!text.contains("stale"), "{text}");
}

#[test]
fn a_symlink_at_the_temp_name_is_removed_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious").expect("write");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");
    let tmp = dir.path().join(".tmp-plant1-00000000000000000003.sql");
    symlink(&victim, &tmp).expect("symlink");
    let mut w = BatchWriter::create(dir.path(), header(3), false, 3).expect("create");
    assert!(
        !fs::symlink_metadata(&tmp)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    w.push(STATEMENT).expect("push");
    w.finish().expect("finish");
    assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
    assert_eq!(mode_of(&victim), 0o644);
    // A dangling link: its target is not created.
    let nowhere = outside.path().join("nowhere");
    let tmp4 = dir.path().join(".tmp-plant1-00000000000000000004.sql");
    symlink(&nowhere, &tmp4).expect("symlink");
    let w = BatchWriter::create(dir.path(), header(4), false, 3).expect("create");
    drop(w);
    assert!(!nowhere.exists());
    assert!(!tmp4.exists(), "the dropped writer removed its temp file");
}
