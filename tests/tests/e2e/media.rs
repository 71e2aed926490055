//! No live link (issue "Ferry folders and removable media"): the sender publishes to a
//! folder a ferry moves, or exports to a medium; the receiver watches an inbox, or
//! imports the medium. The same signatures, order and exactly-once apply as the TCP
//! link; a forged, damaged, missing or extra file is reported by name and never runs.

use std::fs;
use std::path::{Path, PathBuf};

use gapsync_tests::suite::Tmpfs;
use gapsync_tests::*;
use rusqlite::params;

/// `keygen --out DIR` for the sender's node; returns (private key path, `.pub` line).
fn keygen(tx: &SenderNode, out: &Path) -> (PathBuf, String) {
    fs::create_dir_all(out).unwrap();
    tx.exec(&["keygen", "--out", &out.display().to_string()])
        .expect_success();
    let node = &tx.cfg.node;
    let line = fs::read_to_string(out.join(format!("{node}.pub"))).unwrap();
    (out.join(format!("{node}.key")), line.trim_end().to_owned())
}

/// A signed sender of table `t` publishing to `folder`, installed (initial snapshot
/// queued), and the `.pub` line of its key.
fn sender(ws: &Workspace, folder: &Path) -> (SenderNode, String) {
    fs::create_dir_all(folder).unwrap();
    let mut tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("t"))
            .folder(folder)
            .max_rows(3),
    );
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let (key, line) = keygen(&tx, &ws.path().join("keys"));
    tx.cfg = tx.cfg.clone().sign_key(&key);
    tx.write_config();
    tx.exec(&["install"]).expect_success();
    (tx, line)
}

fn insert(tx: &SenderNode, ids: std::ops::Range<i64>) {
    let c = tx.source();
    for id in ids {
        c.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            params![id, format!("v{id}")],
        )
        .unwrap();
    }
}

/// Final names in `dir` (batch files and manifests), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// The ferry: moves the named files from `from` to `to` as a vendor's software would
/// (a temp name first, then the final name).
fn ferry(from: &Path, to: &Path, which: &[String]) {
    for n in which {
        let tmp = to.join(format!(".ferry-{n}"));
        fs::copy(from.join(n), &tmp).unwrap();
        fs::rename(&tmp, to.join(n)).unwrap();
        fs::remove_file(from.join(n)).unwrap();
    }
}

/// The whole path through a ferry: `once` publishes signed batches and a manifest and
/// counts them delivered (tracking rows cleared); the receiver's inbox applies them in
/// seq order per node however they arrive, waits for a missing seq (a gap `status`
/// shows and alarms on after `gap_alarm`), refuses a forged file without counting a
/// failure, and moves settled files to `done/`. Source and target end equal.
#[test]
fn a_ferry_folder_carries_batches_in_order_exactly_once() {
    let ws = Workspace::new("media-ferry");
    let inside = ws.path().join("ferry-in");
    let outside = ws.path().join("ferry-out");
    fs::create_dir_all(&outside).unwrap();
    let (tx, line) = sender(&ws, &inside);
    insert(&tx, 1..8);
    let out = tx.once().expect_success();
    assert!(out.stdout.contains("published"), "{}", out.stdout);
    let st = tx.status();
    assert_eq!(st["pending_changes"], 0);
    assert_eq!(st["unanswered"].as_array().unwrap().len(), 0, "{st}");
    let published = names(&inside);
    let manifests: Vec<String> = published
        .iter()
        .filter(|n| n.starts_with("manifest-"))
        .cloned()
        .collect();
    let batches: Vec<String> = published
        .iter()
        .filter(|n| !n.starts_with("manifest-"))
        .cloned()
        .collect();
    // The snapshot (3 rows a batch: 1 batch of CREATE/DELETE) and 7 changes of 3 a batch.
    assert!(batches.len() >= 3, "{published:?}");
    assert_eq!(manifests.len(), 1, "{published:?}");
    assert_eq!(st["media"]["last_seq_manifested"], batches.len() as u64);

    let mut rx = ws.receiver(
        ReceiverConfig::default()
            .trust("plant1", &line)
            .inbox(&outside),
    );
    rx.cfg.rescan = Some(ms(300));
    rx.cfg.gap_alarm = Some(secs(1));
    rx.write_config();
    rx.start_inbox();

    // Everything but the first batch arrives: nothing applies, the gap shows.
    ferry(&inside, &outside, &batches[1..]);
    ws.wait_until("the gap to be an alarm in status", secs(20), || {
        let out = rx.exec(&["status"]);
        !out.success()
            && out
                .stderr
                .contains("inbox gap: node plant1 waits for seq 1")
    });
    assert!(rx.ledger_seqs("plant1").is_empty());

    // A forged first batch: refused, no failure counted, nothing applied.
    let forged = outside.join(&batches[0]);
    fs::write(&forged, "-- gapsync batch v1\nDELETE FROM \"t\";\n").unwrap();
    ws.wait_until("the forged file to be refused", secs(20), || {
        rx.log_text().contains("inbox file refused")
    });
    assert!(rx.ledger_seqs("plant1").is_empty());
    assert!(rx.status()["failed_once"].as_array().unwrap().is_empty());
    fs::remove_file(&forged).unwrap();

    // The genuine one and the manifest: all apply, in order, once.
    ferry(&inside, &outside, &[batches[0].clone()]);
    ferry(&inside, &outside, &manifests);
    let n = batches.len() as u64;
    ws.wait_until("every batch to be applied", secs(30), || {
        rx.ledger_seqs("plant1").len() as u64 == n
    });
    assert_synced(&tx, &rx);
    assert_contiguous("plant1", &rx.ledger_seqs("plant1"));
    ws.wait_until("settled files to move to done/", secs(20), || {
        names(&outside).is_empty()
    });
    let done = names(&outside.join("done"));
    assert_eq!(done.len(), batches.len() + 1, "{done:?}");
    rx.exec(&["status"]).expect_success();

    // More changes later: the same path again.
    insert(&tx, 8..12);
    tx.once().expect_success();
    let more = names(&inside);
    ferry(&inside, &outside, &more);
    ws.wait_until("the later batches to be applied", secs(30), || {
        compare_all(&tx, &rx).is_ok()
    });
    rx.stop();
}

/// `export` copies archived batches and a signed manifest to a medium (adding to one
/// that holds earlier exports; a conflicting file or a medium without room is refused
/// before anything is written); `import` checks the manifest against the files and
/// applies what is new, in order; a second import applies nothing and says so; a
/// damaged, missing, extra or forged file is reported by name, and nothing of it runs.
#[test]
fn a_medium_is_exported_checked_and_imported_once() {
    let ws = Workspace::new("media-usb");
    let inside = ws.path().join("publish");
    let (tx, line) = sender(&ws, &inside);
    insert(&tx, 1..6);
    tx.once().expect_success();
    let usb = ws.path().join("usb");
    fs::create_dir_all(&usb).unwrap();
    let usb_s = usb.display().to_string();
    let out = tx.exec(&["export", "--to", &usb_s]).expect_success();
    assert!(out.stdout.contains("written last"), "{}", out.stdout);
    let on_usb = names(&usb);
    let batches: Vec<&String> = on_usb
        .iter()
        .filter(|n| !n.starts_with("manifest-"))
        .collect();
    assert!(batches.len() >= 2, "{on_usb:?}");
    assert_eq!(
        tx.status()["media"]["last_seq_exported"],
        batches.len() as u64
    );
    // Again onto the same medium: nothing copied, the files are there already.
    let again = tx.exec(&["export", "--to", &usb_s]).expect_success();
    assert!(
        again.stdout.contains("on the medium already"),
        "{}",
        again.stdout
    );

    let rx = ws.receiver(ReceiverConfig::default().trust("plant1", &line));
    let import = rx.exec(&["import", &usb_s]).expect_success();
    assert!(import.stdout.contains("applied ("), "{}", import.stdout);
    assert_synced(&tx, &rx);
    let second = rx.exec(&["import", &usb_s]).expect_success();
    assert!(second.stdout.contains("nothing new"), "{}", second.stdout);

    // A medium altered on the way: one batch damaged, one missing, one planted, and a
    // manifest not signed by the node key. Each is named; nothing of them runs.
    insert(&tx, 6..12);
    tx.once().expect_success();
    let usb2 = ws.path().join("usb2");
    fs::create_dir_all(&usb2).unwrap();
    let usb2_s = usb2.display().to_string();
    let first_new = tx.status()["media"]["last_seq_exported"].as_u64().unwrap() + 1;
    tx.exec(&["export", "--to", &usb2_s, "--from", &first_new.to_string()])
        .expect_success();
    let files: Vec<String> = names(&usb2)
        .into_iter()
        .filter(|n| !n.starts_with("manifest-"))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    let before = rx.ledger_seqs("plant1");
    let damaged = usb2.join(&files[0]);
    let mut bytes = fs::read(&damaged).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    fs::write(&damaged, bytes).unwrap();
    fs::remove_file(usb2.join(&files[1])).unwrap();
    let planted = format!("plant1-{:020}.sql", 999);
    fs::write(usb2.join(&planted), "-- gapsync batch v1\n").unwrap();
    let out = rx.exec(&["import", &usb2_s]).expect_failure();
    for name in [&files[0], &files[1], &planted] {
        assert!(
            out.stdout.contains(name.as_str()),
            "{name} not named:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("size or sha256 differs"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("missing"), "{}", out.stdout);
    assert!(
        out.stdout.contains("not in any valid manifest"),
        "{}",
        out.stdout
    );
    assert_eq!(
        rx.ledger_seqs("plant1"),
        before,
        "a damaged medium applied something"
    );
    // The manifest itself altered: refused, none of its files imported.
    let manifest = names(&usb2)
        .into_iter()
        .find(|n| n.starts_with("manifest-"))
        .unwrap();
    let text = fs::read_to_string(usb2.join(&manifest)).unwrap();
    fs::write(
        usb2.join(&manifest),
        text.replacen("size=\"", "size=\"1", 1),
    )
    .unwrap();
    let out = rx.exec(&["import", &usb2_s]).expect_failure();
    assert!(
        out.stdout
            .contains(&format!("{manifest}: manifest signature")),
        "{}",
        out.stdout
    );
    assert_eq!(rx.ledger_seqs("plant1"), before);

    // A file of the same name with other content on a medium: export refuses before
    // writing anything.
    let usb3 = ws.path().join("usb3");
    fs::create_dir_all(&usb3).unwrap();
    let first = tx.work_files("archive")[0].file_name().unwrap().to_owned();
    fs::write(usb3.join(&first), "other").unwrap();
    let out = tx
        .exec(&["export", "--to", &usb3.display().to_string()])
        .expect_failure();
    assert!(
        out.stderr.contains("refusing to overwrite"),
        "{}",
        out.stderr
    );
    assert_eq!(
        names(&usb3).len(),
        1,
        "export wrote something before refusing"
    );
}

/// A medium without room for the export: refused before anything is written, with the
/// space it has and needs.
#[test]
fn an_export_to_a_full_medium_writes_nothing() {
    let ws = Workspace::new("media-full");
    let (tx, _) = sender(&ws, &ws.path().join("publish"));
    // Rows large enough that the batches outgrow a 64 KiB medium.
    let c = tx.source();
    for id in 0..40 {
        c.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            params![id, "x".repeat(8000)],
        )
        .unwrap();
    }
    tx.once().expect_success();
    let usb = ws.path().join("small");
    fs::create_dir_all(&usb).unwrap();
    let _mount = match Tmpfs::mount(&usb, "64k") {
        Ok(m) => m,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs for the full-medium test but CI=true: {why}"
            );
            eprintln!("skipping: cannot mount a tmpfs (needs root): {why}");
            return;
        }
    };
    let out = tx
        .exec(&["export", "--to", &usb.display().to_string()])
        .expect_failure();
    assert!(
        out.stderr.contains("bytes free, the export needs"),
        "{}",
        out.stderr
    );
    assert!(
        names(&usb).is_empty(),
        "export wrote something before refusing"
    );
}

/// Receipts carried back: the receiver writes a signed receipt (applied, quarantined,
/// missing); `import-receipt` records it, so the sender's status shows what is
/// confirmed and what the receiver misses, and `export --missing` brings exactly that
/// again. A receipt altered on the way, or signed by another key, is refused.
#[test]
fn a_receipt_confirms_batches_and_names_the_missing_ones() {
    let ws = Workspace::new("media-receipt");
    let inside = ws.path().join("ferry-in");
    let outside = ws.path().join("ferry-out");
    let receipts = ws.path().join("receipts");
    fs::create_dir_all(&outside).unwrap();
    let (mut tx, line) = sender(&ws, &inside);
    insert(&tx, 1..8);
    tx.once().expect_success();
    let batches: Vec<String> = names(&inside)
        .into_iter()
        .filter(|n| !n.starts_with("manifest-"))
        .collect();
    assert!(batches.len() >= 3, "{batches:?}");

    let mut rx = ws.receiver(
        ReceiverConfig::default()
            .trust("plant1", &line)
            .inbox(&outside),
    );
    let keys = ws.path().join("rx-keys");
    let out = rx
        .exec(&["keygen", "--out", &keys.display().to_string()])
        .expect_success();
    let rx_line = fs::read_to_string(keys.join("gapsync-receiver.pub"))
        .unwrap()
        .trim_end()
        .to_owned();
    assert!(out.stdout.contains(&rx_line), "{}", out.stdout);
    rx.cfg.rescan = Some(ms(300));
    rx.cfg.receipts_dir = Some(receipts.clone());
    rx.cfg.receipts_key = Some(keys.join("gapsync-receiver.key"));
    rx.write_config();
    rx.start_inbox();
    tx.cfg.receipts_trust = vec![rx_line];
    tx.write_config();

    // Seq 2 is lost on the way.
    let lost = batches[1].clone();
    let mut sent = batches.clone();
    sent.remove(1);
    ferry(&inside, &outside, &sent);
    let receipt = ws.wait_for("a receipt naming seq 2 missing", secs(20), || {
        names(&receipts)
            .into_iter()
            .find(|n| n == "receipt-plant1-00000000000000000001.xml")
            .filter(|n| {
                fs::read_to_string(receipts.join(n))
                    .is_ok_and(|t| t.contains("<missing seq=\"2\"/>"))
            })
    });
    let rpath = receipts.join(&receipt).display().to_string();
    let out = tx.exec(&["import-receipt", &rpath]).expect_success();
    assert!(
        out.stdout.contains("confirmed up to seq 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("missing at the receiver: [2]"),
        "{}",
        out.stdout
    );
    let st = tx.status();
    assert_eq!(st["media"]["receipt"]["confirmed_up_to"], 1, "{st}");
    assert_eq!(st["media"]["receipt"]["missing"], serde_json::json!([2]));

    // Altered on the way, or signed by another receiver key: refused, nothing recorded.
    let text = fs::read_to_string(&rpath).unwrap();
    let altered = ws.path().join("altered.xml");
    fs::write(&altered, text.replace("<missing seq=\"2\"/>", "")).unwrap();
    let out = tx
        .exec(&["import-receipt", &altered.display().to_string()])
        .expect_failure();
    assert!(out.stderr.contains("receipt signature"), "{}", out.stderr);
    let other = ws.receiver_in("other", ReceiverConfig::default());
    let okeys = ws.path().join("other-keys");
    other
        .exec(&["keygen", "--out", &okeys.display().to_string()])
        .expect_success();
    let mallory = gapsync_common::sign::BatchSigner::load(
        &okeys.join("gapsync-receiver.key"),
        "gapsync-receiver",
    )
    .unwrap();
    let mut forged = gapsync_common::receipt::Receipt::parse(&text).unwrap();
    forged.missing.clear();
    forged.sign(&mallory);
    let forged_path = ws.path().join("forged.xml");
    fs::write(&forged_path, forged.to_xml().unwrap()).unwrap();
    let out = tx
        .exec(&["import-receipt", &forged_path.display().to_string()])
        .expect_failure();
    assert!(out.stderr.contains("receipt signature"), "{}", out.stderr);
    assert_eq!(
        tx.status()["media"]["receipt"]["missing"],
        serde_json::json!([2])
    );

    // `export --missing` brings exactly seq 2; carried to the inbox, it applies and the
    // next receipt confirms everything.
    let usb = ws.path().join("usb");
    fs::create_dir_all(&usb).unwrap();
    tx.exec(&["export", "--missing", "--to", &usb.display().to_string()])
        .expect_success();
    let on_usb: Vec<String> = names(&usb)
        .into_iter()
        .filter(|n| !n.starts_with("manifest-"))
        .collect();
    assert_eq!(on_usb, vec![lost.clone()]);
    fs::copy(usb.join(&lost), outside.join(&lost)).unwrap();
    let last = format!("receipt-plant1-{:020}.xml", batches.len());
    ws.wait_for("the receipt of every batch", secs(20), || {
        names(&receipts).into_iter().find(|n| *n == last)
    });
    assert_synced(&tx, &rx);
    let out = tx
        .exec(&[
            "import-receipt",
            &receipts.join(&last).display().to_string(),
        ])
        .expect_success();
    assert!(
        out.stdout
            .contains(&format!("confirmed up to seq {}", batches.len())),
        "{}",
        out.stdout
    );
    rx.stop();
}

/// What an attacker who can write into the inbox tries: a symlink under a batch name
/// (to a genuine batch elsewhere), an oversized file, an old genuine batch replayed, a
/// far-future seq, a forged manifest, a directory under a batch name. Nothing of them
/// runs or counts as a failure; the genuine stream goes on.
#[test]
fn hostile_inbox_files_never_run() {
    let ws = Workspace::new("media-hostile");
    let inside = ws.path().join("ferry-in");
    let outside = ws.path().join("ferry-out");
    fs::create_dir_all(&outside).unwrap();
    let (tx, line) = sender(&ws, &inside);
    insert(&tx, 1..5);
    tx.once().expect_success();
    let first: Vec<String> = names(&inside);
    let mut rx = ws.receiver(
        ReceiverConfig::default()
            .trust("plant1", &line)
            .inbox(&outside),
    );
    rx.cfg.rescan = Some(ms(300));
    rx.cfg.limits = vec![("max_batch_bytes", 64 << 10)];
    rx.write_config();
    rx.start_inbox();
    ferry(&inside, &outside, &first);
    let applied = first.iter().filter(|n| !n.starts_with("manifest-")).count();
    ws.wait_until("the genuine batches to apply", secs(20), || {
        rx.ledger_seqs("plant1").len() == applied
    });
    let before = rx.ledger_seqs("plant1");
    let next = before.len() as u64 + 1;
    ws.wait_until("the applied files to move to done/", secs(20), || {
        names(&outside).is_empty()
    });

    // The genuine next batches exist on the inside (not ferried yet): seq `next` and,
    // with 3 rows a batch, a genuine seq past the copy window (next + AHEAD + 2).
    insert(&tx, 5..(5 + 3 * 67));
    tx.once().expect_success();
    let genuine = names(&inside);
    let name_of = |seq: u64| format!("plant1-{seq:020}.sql");
    let far = next + gapsync_receiver::inbox::AHEAD + 2;
    assert!(
        genuine.contains(&name_of(next)) && genuine.contains(&name_of(far)),
        "{genuine:?}"
    );

    // A replay of an applied batch: settled (moved to done/), not applied again.
    let done = outside.join("done");
    let old = first.iter().find(|n| !n.starts_with("manifest-")).unwrap();
    fs::copy(done.join(old), outside.join(old)).unwrap();
    // A symlink under the next seq's name, to the genuine next batch lying elsewhere:
    // never followed, even though what it points to would verify.
    let link_name = name_of(next);
    std::os::unix::fs::symlink(inside.join(&link_name), outside.join(&link_name)).unwrap();
    // A directory under a batch name, an oversized file, a genuine far-future seq, a
    // forged manifest.
    fs::create_dir(outside.join(name_of(next + 1))).unwrap();
    fs::write(outside.join(name_of(next + 2)), vec![b'x'; 100 << 10]).unwrap();
    fs::copy(inside.join(name_of(far)), outside.join(name_of(far))).unwrap();
    let manifest = format!("manifest-plant1-{next:020}-{:020}.xml", next + 3);
    fs::write(
        outside.join(&manifest),
        format!("<manifest format=\"gapsync-manifest/1\" node=\"plant1\" first=\"{next}\" last=\"{}\" created=\"2026-12-04T10:00:00.000000Z\"/>", next + 3),
    )
    .unwrap();
    ws.wait_until("every hostile entry to be reported", secs(20), || {
        let log = rx.log_text();
        log.contains(&format!("file={link_name}"))
            && log.contains("not a regular file (a symlink planted?)")
            && log.contains("larger than [limits] max_batch_bytes")
            && log.contains("inbox manifest refused")
            && !outside.join(old).exists()
    });
    assert_eq!(
        rx.ledger_seqs("plant1"),
        before,
        "a hostile file was applied"
    );
    let st = rx.status();
    assert!(st["failed_once"].as_array().unwrap().is_empty(), "{st}");
    assert!(st["quarantined"].as_array().unwrap().is_empty(), "{st}");
    let spool = rx.work_dir.join("spool");
    assert!(
        !spool.join(name_of(far)).exists(),
        "a far-future seq was spooled"
    );
    assert!(
        !spool.join(".inbox").join(name_of(far)).exists(),
        "a far-future seq was staged"
    );
    assert!(
        !rx.log_text().contains(&format!("file={}", name_of(far))),
        "a far-future seq was even looked at"
    );
    assert!(
        fs::symlink_metadata(outside.join(&link_name))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // The genuine stream goes on once the planted entries are gone (a stranger who can
    // write into the folder can delay it, as one who holds the port can: never a row).
    fs::remove_file(outside.join(&link_name)).unwrap();
    fs::remove_dir(outside.join(name_of(next + 1))).unwrap();
    fs::remove_file(outside.join(name_of(next + 2))).unwrap();
    fs::remove_file(outside.join(name_of(far))).unwrap();
    let more = names(&inside);
    ferry(&inside, &outside, &more);
    ws.wait_until("the later genuine batches to apply", secs(30), || {
        compare_all(&tx, &rx).is_ok()
    });
    rx.stop();
}

/// `[link] manifest_every`: a manifest covers what was published since the last one and
/// is written once the period has passed, not after every cycle (a party pulling the
/// folder hourly reads one summary an hour).
#[test]
fn manifests_follow_manifest_every() {
    let ws = Workspace::new("media-period");
    let inside = ws.path().join("ferry-in");
    let (mut tx, _) = sender(&ws, &inside);
    tx.cfg.manifest_every = Some(secs(3600));
    tx.write_config();
    insert(&tx, 1..3);
    tx.once().expect_success();
    let manifests = |dir: &Path| {
        names(dir)
            .into_iter()
            .filter(|n| n.starts_with("manifest-"))
            .collect::<Vec<_>>()
    };
    // The first cycle: nothing was ever manifested, so one is due.
    assert_eq!(manifests(&inside).len(), 1, "{:?}", names(&inside));
    let covered = tx.status()["media"]["last_seq_manifested"]
        .as_u64()
        .unwrap();
    insert(&tx, 3..6);
    tx.once().expect_success();
    assert_eq!(
        manifests(&inside).len(),
        1,
        "a manifest before the hour passed"
    );
    assert_eq!(tx.status()["media"]["last_seq_manifested"], covered);
    assert!(tx.status()["last_seq_applied"].as_u64().unwrap() > covered);
}

/// A batch from the inbox that the target refuses is retried once (the inbox copy is
/// taken again) and then quarantined, as on the TCP link; the node goes on, the receipt
/// names the quarantined seq with the database's reason, and the sender's status shows
/// it after `import-receipt`.
#[test]
fn a_failing_inbox_batch_is_retried_once_then_quarantined_and_reported_back() {
    let ws = Workspace::new("media-poison");
    let inside = ws.path().join("ferry-in");
    let outside = ws.path().join("ferry-out");
    let receipts = ws.path().join("receipts");
    fs::create_dir_all(&outside).unwrap();
    let (mut tx, line) = sender(&ws, &inside);
    insert(&tx, 1..3);
    tx.once().expect_success();
    let mut rx = ws.receiver(
        ReceiverConfig::default()
            .trust("plant1", &line)
            .inbox(&outside),
    );
    let keys = ws.path().join("rx-keys");
    rx.exec(&["keygen", "--out", &keys.display().to_string()])
        .expect_success();
    let rx_line = fs::read_to_string(keys.join("gapsync-receiver.pub")).unwrap();
    rx.cfg.rescan = Some(ms(300));
    rx.cfg.receipts_dir = Some(receipts.clone());
    rx.cfg.receipts_key = Some(keys.join("gapsync-receiver.key"));
    rx.write_config();
    rx.start_inbox();
    tx.cfg.receipts_trust = vec![rx_line.trim_end().to_owned()];
    tx.write_config();
    let first = names(&inside);
    ferry(&inside, &outside, &first);
    ws.wait_until("the first batches to apply", secs(20), || {
        compare_all(&tx, &rx).is_ok()
    });
    let good = rx.ledger_seqs("plant1");

    // A row on the target that the next INSERT collides with: the batch fails there.
    rx.target()
        .execute("INSERT INTO t(id, v) VALUES (3, 'by hand')", [])
        .unwrap();
    insert(&tx, 3..4);
    tx.once().expect_success();
    let poison = names(&inside);
    ferry(&inside, &outside, &poison);
    let bad = good.last().unwrap() + 1;
    // The ledger row is written before the log line: wait for both.
    ws.wait_until("the failing batch to be quarantined", secs(20), || {
        rx.quarantined_seqs("plant1") == vec![bad]
            && rx
                .log_text()
                .contains("batch failed twice: dropped to quarantine")
    });
    let log = rx.log_text();
    assert!(
        log.contains("batch failed; waiting for the sender to send it once more"),
        "{log}"
    );
    assert!(
        log.contains("batch failed twice: dropped to quarantine"),
        "{log}"
    );

    // The node goes on with its next batch.
    rx.target()
        .execute("DELETE FROM t WHERE id = 3", [])
        .unwrap();
    insert(&tx, 4..5);
    tx.once().expect_success();
    let next = names(&inside);
    ferry(&inside, &outside, &next);
    ws.wait_until("the next batch to apply", secs(20), || {
        rx.ledger_seqs("plant1").contains(&(bad + 1))
    });

    // The receipt names the quarantined seq and its reason; the sender shows it.
    let name = format!("receipt-plant1-{:020}.xml", bad + 1);
    ws.wait_for("the receipt after the quarantine", secs(20), || {
        names(&receipts).into_iter().find(|n| *n == name)
    });
    let out = tx
        .exec(&[
            "import-receipt",
            &receipts.join(&name).display().to_string(),
        ])
        .expect_success();
    assert!(
        out.stdout
            .contains(&format!("quarantined at the receiver: seq {bad}: "))
            && out.stdout.contains("UNIQUE constraint failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("confirmed up to seq {}", bad + 1)),
        "{}",
        out.stdout
    );
    let st = tx.status();
    assert_eq!(st["media"]["receipt"]["quarantined"][0][0], bad, "{st}");
    rx.stop();
}

/// A read-only medium imports (nothing is ever written to it), and a read-only inbox
/// keeps its processed files instead of failing.
#[test]
fn read_only_media_and_inboxes_work() {
    let ws = Workspace::new("media-ro");
    let inside = ws.path().join("publish");
    let (tx, line) = sender(&ws, &inside);
    insert(&tx, 1..4);
    tx.once().expect_success();
    let usb = ws.path().join("usb");
    fs::create_dir_all(&usb).unwrap();
    let _mount = match Tmpfs::mount(&usb, "8m") {
        Ok(m) => m,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs for the read-only test but CI=true: {why}"
            );
            eprintln!("skipping: cannot mount a tmpfs (needs root): {why}");
            return;
        }
    };
    tx.exec(&["export", "--to", &usb.display().to_string()])
        .expect_success();
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&usb)
        .status()
        .unwrap();
    assert!(remount.success());
    assert!(
        fs::write(usb.join("probe"), "x").is_err(),
        "the medium is writable"
    );

    let rx = ws.receiver(ReceiverConfig::default().trust("plant1", &line));
    let out = rx
        .exec(&["import", &usb.display().to_string()])
        .expect_success();
    assert!(out.stdout.contains("applied ("), "{}", out.stdout);
    assert_synced(&tx, &rx);

    // The same medium as a folder link's inbox: it is read, nothing moves, no failure.
    let mut rx2 = ws.receiver_in(
        "rx2",
        ReceiverConfig::default().trust("plant1", &line).inbox(&usb),
    );
    rx2.cfg.rescan = Some(ms(300));
    rx2.write_config();
    rx2.start_inbox();
    ws.wait_until("the read-only inbox to be applied", secs(20), || {
        compare_all(&tx, &rx2).is_ok()
    });
    ws.wait_until("the read-only folder to be noticed", secs(20), || {
        rx2.log_text().contains("a read-only folder?")
    });
    assert!(rx2.status()["quarantined"].as_array().unwrap().is_empty());
    rx2.stop();
}

/// The ferry's folder vanishes under a running sender (unmounted): `run` does not stop;
/// it raises an alarm, backs off, keeps cutting into `outbox/`, and `status` shows the
/// error with its time. Once the folder is back, everything waiting is published, in
/// order, and nothing is lost.
#[test]
fn a_vanished_ferry_folder_is_waited_for_not_a_stop() {
    let ws = Workspace::new("media-vanished");
    let inside = ws.path().join("ferry-in");
    let (mut tx, _line) = sender(&ws, &inside);
    fs::remove_dir(&inside).unwrap();
    tx.start();
    insert(&tx, 1..7);
    ws.wait_until("the folder error in status", secs(20), || {
        tx.status()["last_link_error"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a folder"))
    });
    assert!(tx.is_running(), "{}", tx.log_tail(20));
    assert!(
        tx.log_text()
            .contains("cannot publish to the folder link; retrying with backoff"),
        "{}",
        tx.log_tail(20)
    );
    let waiting = tx.status()["unanswered"].as_array().map_or(0, Vec::len);
    assert!(waiting > 0, "nothing waits in outbox/");
    fs::create_dir_all(&inside).unwrap();
    ws.wait_until("everything published", secs(60), || {
        let st = tx.status();
        st["pending_changes"] == 0 && st["unanswered"].as_array().is_some_and(Vec::is_empty)
    });
    assert!(tx.is_running());
    tx.stop();
    let published = names(&inside);
    let batches = published
        .iter()
        .filter(|n| !n.starts_with("manifest-"))
        .count();
    assert_eq!(
        batches as u64,
        tx.status()["last_seq_cut"].as_u64().unwrap()
    );
}
