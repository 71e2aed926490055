//! Repairing one batch (issue "Operations"): `quarantine list | show | retry | ack` on
//! both sides. A batch that failed because the target table was altered applies exactly
//! once in its place after the repair, and the target equals the source; a retry after
//! later batches needs `--force`; an accepted loss is in the audit.

use gapsync_tests::*;

fn rx_cmd(rx: &ReceiverNode, args: &[&str]) -> CmdOutput {
    rx.exec(args)
}

#[test]
fn a_quarantined_batch_is_repaired_retried_once_or_its_loss_accepted() {
    let ws = Workspace::new("quarantine-tools");
    let mut rx = ws.receiver(ReceiverConfig::default());
    rx.start();
    let tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("t"))
            .connect(rx.addr()),
    );
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&["t"]);
    tx.source()
        .execute("INSERT INTO t(id, v) VALUES (1, 'a')", [])
        .unwrap();
    tx.once();
    assert_synced(&tx, &rx);
    let insert = |id: i64| {
        tx.source()
            .execute("INSERT INTO t(id, v) VALUES (?1, 'x')", [id])
            .unwrap();
    };
    let alter = |from: &str, to: &str| {
        rx.target()
            .execute_batch(&format!("ALTER TABLE t RENAME COLUMN {from} TO {to}"))
            .unwrap();
    };

    // The target table altered: the next batch fails twice and is quarantined on both
    // sides.
    alter("v", "w");
    insert(10);
    tx.exec(&["once"]).expect_failure();
    let bad = rx.quarantined_seqs("plant1");
    assert_eq!(bad.len(), 1, "{bad:?}");
    let seq = bad[0];
    let s = seq.to_string();
    let list = rx_cmd(&rx, &["quarantine", "list"]).expect_success();
    assert!(
        list.stdout.contains(&format!("plant1 seq {seq} ")),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("no column named v"), "{}", list.stdout);
    let show = rx_cmd(&rx, &["quarantine", "show", "plant1", &s]).expect_success();
    assert!(
        show.stdout
            .contains("failing statement, line 9: INSERT INTO \"t\""),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("tables: t"), "{}", show.stdout);
    assert!(
        show.stdout.contains("applied after it: none"),
        "{}",
        show.stdout
    );
    let slist = tx.exec(&["quarantine", "list"]).expect_success();
    assert!(
        slist.stdout.contains(&format!("seq {seq} ")),
        "{}",
        slist.stdout
    );

    // Repaired: the retry applies it exactly once, in its place.
    alter("w", "v");
    let out = rx_cmd(&rx, &["quarantine", "retry", "plant1", &s]).expect_success();
    assert!(
        out.stdout.contains("applied (1 statements) in its place"),
        "{}",
        out.stdout
    );
    assert!(rx.quarantined_seqs("plant1").is_empty());
    assert!(rx.ledger_seqs("plant1").contains(&seq));
    assert_synced(&tx, &rx);
    rx_cmd(&rx, &["quarantine", "retry", "plant1", &s]).expect_failure();
    // The sender learns it: sent again, answered from the ledger, tracking rows gone.
    tx.exec(&["quarantine", "retry", &s]).expect_success();
    tx.once();
    assert_eq!(tx.batch(seq).state, "applied");
    assert_eq!(tx.tracking_rows_of(seq), 0);
    assert_eq!(
        rx.ledger_seqs("plant1")
            .iter()
            .filter(|&&x| x == seq)
            .count(),
        1,
        "applied twice"
    );

    // A retry after later batches were applied needs --force.
    alter("v", "w");
    insert(11);
    tx.exec(&["once"]).expect_failure();
    let seq2 = *rx.quarantined_seqs("plant1").last().unwrap();
    alter("w", "v");
    insert(12);
    tx.once();
    let s2 = seq2.to_string();
    let out = rx_cmd(&rx, &["quarantine", "retry", "plant1", &s2]).expect_failure();
    assert!(
        out.stderr
            .contains("later batch(es) of node plant1 were applied after it"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    rx_cmd(&rx, &["quarantine", "retry", "plant1", &s2, "--force"]).expect_success();
    assert_synced(&tx, &rx);

    // An accepted loss: recorded in the audit with who accepted it.
    alter("v", "w");
    insert(13);
    tx.exec(&["once"]).expect_failure();
    let seq3 = *rx.quarantined_seqs("plant1").last().unwrap();
    let s3 = seq3.to_string();
    rx_cmd(
        &rx,
        &["quarantine", "ack", "plant1", &s3, "--by", "operator-7"],
    )
    .expect_success();
    tx.exec(&["quarantine", "ack", &s3, "--by", "operator-7"])
        .expect_success();
    let list = rx_cmd(&rx, &["quarantine", "list"]).expect_success();
    assert!(
        list.stdout.contains("loss accepted by operator-7"),
        "{}",
        list.stdout
    );
    for (side, audit) in [("receiver", rx.audit()), ("sender", tx.audit())] {
        assert!(
            audit.iter().any(|l| l["event"] == "acked"
                && l["seq"] == seq3
                && l["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("by operator-7"))),
            "{side}: no acked record for seq {seq3}"
        );
    }
    rx.stop();
}
