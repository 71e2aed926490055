//! Batch signatures end to end: keygen, signed pipeline, key rotation, and every kind of
//! forgery rejected before any statement runs, over the link and by `apply`.

use std::fs;
use std::path::{Path, PathBuf};

use gapsync_tests::plant::METER_READING;
use gapsync_tests::*;
use rusqlite::params;

/// `keygen --out DIR` for the sender's node; returns (private key path, `.pub` line).
fn keygen(tx: &SenderNode, out: &Path) -> (PathBuf, String) {
    fs::create_dir_all(out).unwrap();
    let dir = out.display().to_string();
    tx.exec(&["keygen", "--out", &dir]).expect_success();
    let node = &tx.cfg.node;
    let key = out.join(format!("{node}.key"));
    let line = fs::read_to_string(out.join(format!("{node}.pub"))).unwrap();
    (key, line.trim_end().to_owned())
}

/// A sender of node plant1 in `sub`, with `meter_reading` installed and snapshotted.
fn sender(ws: &Workspace, sub: &str, connect: &str) -> SenderNode {
    let cfg = SenderConfig::new("plant1")
        .table(Table::new("meter_reading"))
        .connect(connect);
    let tx = ws.sender_in(sub, cfg);
    tx.source().execute_batch(METER_READING).unwrap();
    tx.install();
    tx
}

fn insert(tx: &SenderNode, ids: std::ops::Range<i64>, meter: &str) {
    let c = tx.source();
    for id in ids {
        c.execute(
            "INSERT INTO meter_reading(id, meter, value) VALUES (?1, ?2, 1.5)",
            params![id, meter],
        )
        .unwrap();
    }
}

/// Rows of `meter_reading` on the target (0 when the table does not exist).
fn target_rows(rx: &ReceiverNode) -> i64 {
    let c = rx.target();
    let exists: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'meter_reading'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if exists == 0 {
        return 0;
    }
    c.query_row("SELECT count(*) FROM meter_reading", [], |r| r.get(0))
        .unwrap()
}

fn batch_files(tx: &SenderNode) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tx
        .work_files("archive")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    v.sort();
    v
}

/// Copies `src` to `dir/name` with its text changed by `edit`.
fn forge(dir: &Path, src: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let text = fs::read_to_string(src).unwrap();
    let p = dir.join(name);
    fs::write(&p, edit(&text)).unwrap();
    p
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// `apply` of `files` must fail naming `reason`, execute nothing (the target keeps
/// `rows` rows) and leave a "rejected" audit line with the reason.
fn assert_apply_rejected(rx: &ReceiverNode, files: &[&Path], reason: &str, rows: i64) {
    let before = rx
        .audit()
        .iter()
        .filter(|l| l["event"] == "rejected")
        .count();
    let out = rx.apply(files);
    assert!(!out.success(), "{} must be rejected: {out:?}", out.what);
    assert!(
        out.stderr.contains(reason) && out.stderr.contains("rejected"),
        "the error must say {reason:?}: {}",
        out.stderr
    );
    assert_eq!(target_rows(rx), rows, "nothing may execute for {files:?}");
    let audit = rx.audit();
    let rejected: Vec<_> = audit.iter().filter(|l| l["event"] == "rejected").collect();
    assert_eq!(
        rejected.len(),
        before + 1,
        "one 'rejected' audit line: {audit:?}"
    );
    let last = rejected[rejected.len() - 1];
    assert!(
        last["detail"].as_str().is_some_and(|d| d.contains(reason)),
        "audit detail lacks {reason:?}: {last}"
    );
}

#[test]
fn apply_rejects_every_forgery_and_replay() {
    let ws = Workspace::new("trust-apply");
    // Three sources of real files, each shipping to its own insecure receiver.
    let mut gens = Vec::new();
    for sub in ["gen1", "gen2", "gen3"] {
        let mut rx = ws.receiver_in(sub, ReceiverConfig::default());
        rx.start();
        gens.push(rx);
    }
    let tx1 = sender(&ws, "s1", gens[0].addr());
    let (k1, pub1) = keygen(&tx1, &ws.path().join("keys1"));
    let (k3, _) = keygen(&tx1, &ws.path().join("keys3"));
    // keygen refuses to overwrite.
    let again = tx1.exec(&[
        "keygen",
        "--out",
        &ws.path().join("keys1").display().to_string(),
    ]);
    assert!(
        !again.success() && again.stderr.contains("already exists"),
        "{again:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&k1).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode");
    }

    let mut files = Vec::new();
    let txs = vec![
        tx1,
        sender(&ws, "s2", gens[1].addr()),
        sender(&ws, "s3", gens[2].addr()),
    ];
    for (i, (mut tx, key, meter)) in txs
        .into_iter()
        .zip([&k1, &k1, &k3])
        .zip(["a", "b", "c"])
        .map(|((t, k), m)| (t, k, m))
        .enumerate()
    {
        tx.cfg = tx.cfg.clone().sign_key(key);
        tx.write_config();
        tx.snapshot(&["meter_reading"]);
        tx.once();
        insert(&tx, 1..(4 - i as i64), meter);
        tx.once();
        let f = batch_files(&tx);
        assert_eq!(f.len(), 2, "snapshot + changes: {f:?}");
        for p in &f {
            let text = fs::read_to_string(p).unwrap();
            assert!(
                text.lines().last().unwrap().starts_with("-- signature: "),
                "{} is not signed",
                p.display()
            );
        }
        files.push(f);
    }
    let (a, b, c) = (&files[0], &files[1], &files[2]);

    let chk = ws.receiver_in("chk", ReceiverConfig::default().trust("plant1", &pub1));
    let forged = ws.path().join("forged");
    let strip_sig = |t: &str| {
        let body = t.trim_end_matches('\n');
        let cut = body.rfind('\n').unwrap();
        format!("{}\n", &body[..cut])
    };
    // A good file together with an unsigned one: nothing at all runs.
    let unsigned = forge(&forged.join("unsigned"), &a[1], &name_of(&a[1]), strip_sig);
    assert_apply_rejected(&chk, &[&a[0], &unsigned], "not signed", 0);
    // Signed by a key the receiver does not trust.
    assert_apply_rejected(&chk, &[&c[0]], "not a trusted key", 0);
    // A statement changed after signing: the sha256 trailer catches it.
    let body = forge(&forged.join("body"), &a[0], &name_of(&a[0]), |t| {
        t.replacen("meter", "metex", 1)
    });
    assert_apply_rejected(&chk, &[&body], "sha256 mismatch", 0);
    // The signature line itself changed.
    let sig = forge(&forged.join("sig"), &a[0], &name_of(&a[0]), |t| {
        let mut b = t.trim_end_matches('\n').to_owned();
        let last = b.pop().unwrap();
        b.push(if last == '0' { '1' } else { '0' });
        format!("{b}\n")
    });
    assert_apply_rejected(&chk, &[&sig], "bad signature", 0);
    // Renamed: seq 2 presented as seq 3.
    let renamed = forge(
        &forged.join("renamed"),
        &a[1],
        "plant1-00000000000000000003.sql",
        |t| t.to_owned(),
    );
    assert_apply_rejected(&chk, &[&renamed], "file name says seq 3", 0);
    // Wrong node: plant1's batch presented as plant2's.
    let wrong = forge(
        &forged.join("node"),
        &a[0],
        "plant2-00000000000000000001.sql",
        |t| t.to_owned(),
    );
    assert_apply_rejected(&chk, &[&wrong], "file name says node plant2", 0);

    // The genuine files apply; then a validly signed different seq 2 is a replay.
    let out = chk.apply(&[&a[0], &a[1]]);
    assert!(out.success(), "{out:?}");
    assert_eq!(target_rows(&chk), 3);
    assert_apply_rejected(&chk, &[&b[1]], "already applied with different content", 3);
    let meters: Vec<String> = chk
        .target()
        .prepare("SELECT DISTINCT meter FROM meter_reading")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(meters, vec!["a".to_owned()]);
}

/// Batch `seq` of `tx` was rejected by `rx`: quarantined on both sides, the receiver's
/// reason and its "rejected" audit line name `reason`.
fn assert_link_rejected(tx: &SenderNode, rx: &ReceiverNode, seq: u64, reason: &str) {
    let b = tx.batch(seq);
    assert_eq!(b.state, "quarantined", "sender state of seq {seq}: {b:?}");
    assert!(tx.work_dir.join("quarantine").join(&b.file).is_file());
    let rq = rx.work_dir.join("quarantine");
    let why = fs::read_to_string(rq.join(format!("{}.reason", b.file))).unwrap();
    assert!(
        why.contains(reason),
        "receiver reason lacks {reason:?}: {why}"
    );
    assert!(rx.quarantined_seqs("plant1").contains(&seq));
    assert!(!rx.ledger_seqs("plant1").contains(&seq));
    let audit = rx.audit();
    assert!(
        audit.iter().any(|l| l["event"] == "rejected"
            && l["seq"].as_u64() == Some(seq)
            && l["detail"].as_str().is_some_and(|d| d.contains(reason))),
        "no 'rejected' audit line for seq {seq} naming {reason:?}: {audit:?}"
    );
}

#[test]
fn link_signed_pipeline_rotation_and_rejections() {
    let ws = Workspace::new("trust-link");
    let probe = ws.sender_in(
        "probe",
        SenderConfig::new("plant1").table(Table::new("meter_reading")),
    );
    let (k1, pub1) = keygen(&probe, &ws.path().join("keys1"));
    let (k2, pub2) = keygen(&probe, &ws.path().join("keys2"));
    let mut rx = ws.receiver(
        ReceiverConfig::default()
            .trust("plant1", &pub1)
            .trust("plant1", &pub2),
    );
    rx.start();
    rx.pin_port();
    let mut tx = sender(&ws, "sender", rx.addr());
    tx.cfg = tx.cfg.clone().sign_key(&k1);
    tx.write_config();

    // Happy path with the first key.
    tx.snapshot(&["meter_reading"]);
    insert(&tx, 1..4, "m1");
    tx.once();
    assert_eq!(target_rows(&rx), 3);
    // Rotation: the sender switches to the second trusted key.
    tx.cfg.sign_key = Some(k2.clone());
    tx.write_config();
    insert(&tx, 4..6, "m2");
    tx.once();
    assert_eq!(target_rows(&rx), 5);
    let applied = rx.ledger_seqs("plant1").len() as u64;

    // The old key is removed from the receiver: a sender still holding it is refused
    // at HELLO (it is no longer a trusted node); nothing of it is spooled, executed or
    // counted as a failure, its batch waits.
    rx.stop();
    rx.cfg.trust.retain(|(_, k)| k != &pub1);
    rx.write_config();
    rx.start();
    tx.cfg.sign_key = Some(k1.clone());
    tx.write_config();
    insert(&tx, 6..7, "m3");
    let out = tx.exec(&["once"]);
    assert!(!out.success(), "a sender with a removed key: {out:?}");
    assert!(
        out.stderr.contains("receiver refused the session"),
        "{out:?}"
    );
    assert!(
        rx.log_text()
            .contains("is not a trusted key of node plant1"),
        "the receiver names the reason: {}",
        rx.log_tail(10)
    );
    assert_eq!(target_rows(&rx), 5, "nothing of it executed");
    assert_eq!(
        tx.batch(applied + 1).state,
        "ready",
        "not counted as a failure"
    );
    assert!(rx.quarantined_seqs("plant1").is_empty());

    // An unsigned sender (insecure) to a receiver that requires signatures: refused
    // at HELLO the same way.
    tx.cfg.sign_key = None;
    tx.write_config();
    insert(&tx, 7..8, "m4");
    let out = tx.exec(&["once"]);
    assert!(!out.success(), "an unsigned sender: {out:?}");
    assert_eq!(target_rows(&rx), 5);
    assert_eq!(tx.batch(applied + 2).state, "ready");
    assert!(
        rx.log_text().contains("unsigned HELLO for node plant1"),
        "{}",
        rx.log_tail(10)
    );

    // With the current key the session is authenticated again: the two waiting
    // batches arrive, and their files' own signatures decide: the one signed with the
    // removed key and the unsigned one are rejected before any statement runs and
    // quarantined on both sides; the stream goes on.
    tx.cfg.sign_key = Some(k2);
    tx.write_config();
    insert(&tx, 8..9, "m5");
    let _ = tx.exec(&["once"]);
    assert_link_rejected(&tx, &rx, applied + 1, "not a trusted key");
    assert_link_rejected(&tx, &rx, applied + 2, "not signed");
    let _ = tx.exec(&["once"]);
    assert_eq!(target_rows(&rx), 6);
}

#[test]
fn link_rejects_replayed_seq_with_different_content() {
    let ws = Workspace::new("trust-replay");
    let probe = ws.sender_in(
        "probe",
        SenderConfig::new("plant1").table(Table::new("meter_reading")),
    );
    let (k1, pub1) = keygen(&probe, &ws.path().join("keys1"));
    let mut rx = ws.receiver(ReceiverConfig::default().trust("plant1", &pub1));
    rx.start();
    // Two sources with the same node and key: the second one's seq 1 and 2 replay
    // already applied seqs with different content.
    let mut txs = Vec::new();
    for sub in ["s1", "s2"] {
        let mut tx = sender(&ws, sub, rx.addr());
        tx.cfg = tx.cfg.clone().sign_key(&k1);
        tx.write_config();
        txs.push(tx);
    }
    for (tx, meter) in txs.iter().zip(["a", "b"]) {
        // Both cut seq 1 (snapshot) and seq 2 (changes) before shipping.
        tx.snapshot(&["meter_reading"]);
        insert(tx, 1..3, meter);
    }
    txs[0].once();
    assert_eq!(target_rows(&rx), 2);
    let out = txs[1].exec(&["once"]);
    assert!(
        !out.success(),
        "replayed seqs must not be answered applied: {out:?}"
    );
    assert_eq!(target_rows(&rx), 2);
    let seqs: Vec<u64> = txs[1].batches().iter().map(|b| b.seq).collect();
    assert!(!seqs.is_empty());
    for seq in seqs {
        assert_eq!(txs[1].batch(seq).state, "quarantined");
        let name = txs[1].batch(seq).file;
        let why = fs::read_to_string(
            rx.work_dir
                .join("quarantine")
                .join("replayed")
                .join(format!("{name}.reason")),
        )
        .unwrap();
        assert!(
            why.contains("already applied with different content"),
            "{why}"
        );
    }
    let audit = rx.audit();
    assert!(
        audit.iter().any(|l| l["event"] == "rejected"
            && l["detail"].as_str().is_some_and(|d| d.contains("replayed"))),
        "{audit:?}"
    );
    let meters: i64 = rx
        .target()
        .query_row(
            "SELECT count(*) FROM meter_reading WHERE meter = 'b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(meters, 0);
}

/// A batch altered between the sender's cut and the link (a compromised inside host or
/// a device that rewrites bytes): the link delivers it intact as sent, so only the
/// file's own checksum trailer and signature can tell. Body tampered, or signature line
/// tampered: rejected before any statement runs, on the TCP link, sent once more, then
/// quarantined on both sides with the reason.
#[test]
fn link_rejects_batches_tampered_after_signing() {
    for (case, edit) in [
        (
            "body",
            (|t: &str| t.replacen("'m1'", "'XX'", 1)) as fn(&str) -> String,
        ),
        ("signature", |t: &str| {
            let (head, sig) = t.rsplit_once("-- signature: ").unwrap();
            let flipped: String = sig
                .chars()
                .rev()
                .enumerate()
                .map(|(i, c)| {
                    if i == 2 && c != '0' {
                        '0'
                    } else if i == 2 {
                        '1'
                    } else {
                        c
                    }
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("{head}-- signature: {flipped}")
        }),
    ] {
        let ws = Workspace::new(&format!("trust-tamper-{case}"));
        let probe = ws.sender_in(
            "probe",
            SenderConfig::new("plant1").table(Table::new("meter_reading")),
        );
        let (key, line) = keygen(&probe, &ws.path().join("keys"));
        let mut rx = ws.receiver(ReceiverConfig::default().trust("plant1", &line));
        rx.start();
        // Cut without shipping: the link points at a closed port for now.
        let mut tx = sender(&ws, "s", "127.0.0.1:9");
        tx.cfg = tx.cfg.clone().sign_key(&key);
        tx.cfg.once_connect_attempts = 1;
        tx.write_config();
        tx.snapshot(&["meter_reading"]);
        assert!(!tx.exec(&["once"]).success(), "{case}: the link was closed");
        insert(&tx, 1..3, "m1");
        assert!(!tx.exec(&["once"]).success(), "{case}: the link was closed");
        let batches = tx.batches();
        assert_eq!(batches.len(), 2, "{case}: snapshot + changes cut");
        let victim = &batches[1];
        let path = tx.work_dir.join("outbox").join(&victim.file);
        let text = fs::read_to_string(&path).unwrap();
        let forged = edit(&text);
        assert_ne!(forged, text, "{case}: the edit changed nothing");
        fs::write(&path, &forged).unwrap();
        // The record says what the link sends (size and SHA-256 of the file as is).
        let (size, digest) = gapsync_common::batch::sha256_file(&path).unwrap();
        assert_eq!(size, forged.len() as u64);
        let sha: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        tx.source()
            .execute(
                "UPDATE _gapsync_batches SET size = ?1, sha256 = ?2 WHERE seq = ?3",
                params![forged.len() as i64, sha, victim.seq as i64],
            )
            .unwrap();
        tx.set_connect(rx.addr());
        tx.cfg.once_connect_attempts = 5;
        tx.write_config();
        let out = tx.exec(&["once"]);
        assert!(!out.success(), "{case}: a forged batch must not be applied");
        assert_eq!(tx.batch(victim.seq).state, "quarantined", "{case}");
        assert_eq!(tx.batch(victim.seq).attempts, 2, "{case}: sent twice");
        // The snapshot applied; none of the forged batch's rows did.
        assert_eq!(target_rows(&rx), 0, "{case}: the forged rows must not land");
        let why = fs::read_to_string(
            rx.work_dir
                .join("quarantine")
                .join(format!("{}.reason", victim.file)),
        )
        .unwrap();
        let want = if case == "body" {
            "sha256"
        } else {
            "signature"
        };
        assert!(
            why.to_lowercase().contains(want),
            "{case}: the reason must say what was wrong: {why}"
        );
        assert!(
            rx.audit().iter().any(|l| l["event"] == "rejected"),
            "{case}: the audit must record the rejection"
        );
    }
}

/// A connection that says it is node plant2 (no key: admitted by `insecure`) and
/// delivers plant1's batch: refused at END with a log line naming the reason, nothing
/// spooled or run, and nothing of an unauthenticated peer kept under anyone's name
/// (it would let a stranger fill `quarantine/` and plant files under trusted names).
#[test]
fn link_rejects_a_file_of_another_node() {
    let ws = Workspace::new("trust-wrong-node");
    let mut rx = ws.receiver(ReceiverConfig::default());
    rx.start();
    let name = "plant1-00000000000000000001.sql";
    let body = b"-- a file that claims to be plant1's\n".to_vec();
    let path = ws.path().join(name);
    fs::write(&path, &body).unwrap();
    let (size, sha) = gapsync_common::batch::sha256_file(&path).unwrap();
    let mut link = gapsync_protocol::LinkClient::connect(
        rx.addr(),
        &gapsync_protocol::Identity::unsigned("plant2", "gapsync-receiver"),
        "forger",
        gapsync_protocol::LinkOptions::default(),
    )
    .unwrap();
    let mut f = fs::File::open(&path).unwrap();
    let e = link.send_file(1, name, &mut f, size, sha).unwrap_err();
    assert!(
        matches!(e, gapsync_protocol::LinkError::EndRejected),
        "END must be refused: {e}"
    );
    let q = rx.work_dir.join("quarantine").join("rejected");
    assert!(!q.join(name).exists(), "nothing of a stranger is kept");
    assert!(
        rx.log_text().contains("wrong node or seq"),
        "{}",
        rx.log_tail(10)
    );
    assert!(
        !rx.work_dir.join("spool").join(name).exists(),
        "nothing may be spooled"
    );
    assert!(
        rx.work_files("spool").is_empty(),
        "no part file left either"
    );
    assert_eq!(target_rows(&rx), 0);
}
