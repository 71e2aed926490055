//! The ledger's high-water marks: for every node, the highest seq this receiver has
//! seen recorded in the target's ledger (applied or quarantined), kept in
//! `state/ledger-marks` (`<node> <seq>` per line, written durably on every raise).
//!
//! The ledger lives in the target database, next to the data. If the target is
//! replaced (a fresh server behind the same DSN, an older backup restored), its ledger
//! goes backwards: the receiver would wait for "an earlier seq that has not arrived",
//! or worse start a node again from seq 1 on a target that lost its history. A ledger
//! below its mark is therefore an alarm and a stop for that node (nothing of it is
//! applied) until the target is restored, or the operator accepts the new target with
//! `gapsync-receiver accept-ledger NODE` (then `resync` its tables from the sender).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gapsync_common::fsx;

pub fn marks_path(work_dir: &Path) -> PathBuf {
    work_dir.join("state").join("ledger-marks")
}

/// Reads the marks; a missing file is no mark, an unreadable line is skipped.
pub fn read_marks(work_dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(text) = fsx::open_nofollow(&marks_path(work_dir)).and_then(|mut f| {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).map(|_| s)
    }) else {
        return out;
    };
    for line in text.lines() {
        if let Some((node, seq)) = line.split_once(' ')
            && let Ok(seq) = seq.parse::<u64>()
        {
            out.insert(node.to_owned(), seq);
        }
    }
    out
}

/// Writes the marks durably (the whole small file, replaced atomically).
pub fn write_marks(work_dir: &Path, marks: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let text: String = marks.iter().map(|(n, s)| format!("{n} {s}\n")).collect();
    fsx::write_private_synced(&marks_path(work_dir), text.as_bytes())
}

/// The nodes whose ledger (`next` expected seq per node, from the target) is below
/// their mark: `(node, mark, ledger's highest)`.
pub fn regressed(
    marks: &BTreeMap<String, u64>,
    ledger_next: &BTreeMap<String, u64>,
) -> Vec<(String, u64, u64)> {
    marks
        .iter()
        .filter_map(|(node, &mark)| {
            let have = ledger_next.get(node).map_or(0, |n| n.saturating_sub(1));
            (have < mark).then(|| (node.clone(), mark, have))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn marks_round_trip_and_a_ledger_below_its_mark_is_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("state")).unwrap();
        assert!(read_marks(d.path()).is_empty());
        let mut m = BTreeMap::new();
        m.insert("plant1".to_owned(), 7);
        m.insert("plant2".to_owned(), 3);
        write_marks(d.path(), &m).unwrap();
        assert_eq!(read_marks(d.path()), m);
        let mut ledger = BTreeMap::new();
        ledger.insert("plant1".to_owned(), 8); // highest 7: fine
        assert_eq!(
            regressed(&m, &ledger),
            vec![("plant2".to_owned(), 3, 0)],
            "plant2's ledger is gone"
        );
        ledger.insert("plant2".to_owned(), 2);
        assert_eq!(regressed(&m, &ledger), vec![("plant2".to_owned(), 3, 1)]);
    }
}
