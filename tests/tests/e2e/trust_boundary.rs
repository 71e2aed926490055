//! The trust boundary (ARCHITECTURE.md invariant I8) attacked from the outside
//! network: the real `gapsync-receiver` and `gapsync-sender` binaries, and an attacker
//! speaking raw frames (`gapsync_tests::attacker`) with at most a TCP connection and,
//! in the strongest cases, a "captured" HELLO (a fresh, valid HELLO the test signs with
//! the node key and hands over: the attacker never holds an END signature).
//!
//! Every test ends with the same checks ([`Boundary::finish`]): the real sender still
//! gets new rows applied, every legitimate row arrived exactly once (row by row and by
//! the ledger), no forged row exists, no part file or batch file is left in the spool,
//! neither side quarantined a batch of the real node, and no failure of the real node
//! was counted. Two tests quarantine on purpose, and only batches of other trusted
//! nodes the test itself signs (an executable comment, a poison batch written through
//! planted quarantine links). Two tests act locally on the receiver's directories,
//! beyond the remote attacker: the symlink test, and the swap of a spooled file under
//! the applier.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter};
use gapsync_common::sign::{self, BatchSigner};
use gapsync_tests::attacker::{
    Attacker, HelloSpec, IdleCrowd, Reply, end_signed, end_unsigned, end_with_signature,
    file_sha256,
};
use gapsync_tests::suite::assert_exactly_once;
use gapsync_tests::*;
use rusqlite::params;

/// The real sender's node.
const NODE: &str = "plant1";
/// The receiver's `[link] id` (not the default, so a default HELLO is for another).
const RID: &str = "mis-boundary";
const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)";
/// Rows the real sender has before the attacks (ids 1..=30, travelling in a snapshot).
const SEED_ROWS: i64 = 30;
/// Every forged row uses an id from here on (the real rows never do).
const FORGED_ID: i64 = 900_000;
const FORGED_INSERT: &str = r#"INSERT INTO "t" ("id", "v") VALUES (900001, 'forged');"#;

/// A receiver trusting the real node's key (and `extra` nodes' keys), the real signed
/// sender running, its snapshot applied.
#[derive(Debug)]
struct Boundary {
    // Drop order: processes before the workspace.
    tx: SenderNode,
    rx: ReceiverNode,
    ws: Workspace,
    /// The real node's private key (the test's, to sign captured HELLOs).
    key: BatchSigner,
    /// Keys of the `extra` trusted nodes, in order.
    others: Vec<BatchSigner>,
    /// A key for the real node that the receiver does NOT trust.
    stranger: BatchSigner,
    next_id: i64,
}

fn rx_cfg() -> ReceiverConfig {
    ReceiverConfig {
        result_wait: secs(5),
        retry_interval: ms(300),
        ..ReceiverConfig::default()
    }
}

fn keypair(ws: &Workspace, dir: &str, node: &str) -> (PathBuf, String, BatchSigner) {
    let d = ws.path().join(dir);
    fs::create_dir_all(&d).unwrap();
    let (key, public, signer) = sign::generate(node, &d).unwrap();
    let line = fs::read_to_string(public).unwrap();
    (key, line.trim_end().to_owned(), signer)
}

fn boundary(
    name: &str,
    rx_cfg: ReceiverConfig,
    extra: &[&str],
    tx_cfg: impl FnOnce(SenderConfig) -> SenderConfig,
) -> Boundary {
    let ws = Workspace::new(name);
    let (key_path, public, key) = keypair(&ws, "keys", NODE);
    let (_, _, stranger) = keypair(&ws, "stranger-keys", NODE);
    let mut rc = rx_cfg.trust(NODE, &public);
    rc.id = Some(RID.to_owned());
    let mut others = Vec::new();
    for node in extra {
        let (_, public, k) = keypair(&ws, &format!("keys-{node}"), node);
        rc = rc.trust(node, &public);
        others.push(k);
    }
    let mut rx = ws.receiver(rc);
    rx.start();
    let cfg = tx_cfg(
        SenderConfig::new(NODE)
            .table(Table::new("t"))
            .sign_key(&key_path)
            .receiver_id(RID)
            .connect(rx.addr()),
    );
    let mut tx = ws.sender(cfg);
    let src = tx.source();
    src.execute_batch(SCHEMA).unwrap();
    insert_rows(&src, 1, SEED_ROWS, 8);
    tx.install();
    tx.snapshot(&[]);
    tx.start();
    ws.wait_synced(&tx, &rx, secs(30));
    Boundary {
        tx,
        rx,
        ws,
        key,
        others,
        stranger,
        next_id: SEED_ROWS + 1,
    }
}

/// Inserts `n` rows from id `from` in one transaction, values of `len` characters.
fn insert_rows(src: &rusqlite::Connection, from: i64, n: i64, len: usize) {
    src.execute_batch("BEGIN").unwrap();
    for id in from..from + n {
        let v = format!("{id:08}-{}", "r".repeat(len));
        src.execute("INSERT INTO t(id, v) VALUES (?1, ?2)", params![id, v])
            .unwrap();
    }
    src.execute_batch("COMMIT").unwrap();
}

/// A batch file of `node` and `seq` holding `stmts`, signed by `key` or unsigned.
fn craft(
    dir: &Path,
    node: &str,
    seq: u64,
    stmts: &[&str],
    key: Option<&BatchSigner>,
    compress: bool,
) -> PathBuf {
    craft_with(dir, node, seq, stmts.len() as u64, key, compress, |i| {
        stmts[i as usize].to_owned()
    })
}

fn craft_with(
    dir: &Path,
    node: &str,
    seq: u64,
    n: u64,
    key: Option<&BatchSigner>,
    compress: bool,
    stmt: impl Fn(u64) -> String,
) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let header = BatchHeader {
        node: node.to_owned(),
        seq,
        created: batch::format_created(chrono::Utc::now()),
        dialect: "sqlite".to_owned(),
        kind: BatchKind::Changes,
        changes: Some((1, i64::try_from(n).unwrap())),
        statements: n,
    };
    let mut w = BatchWriter::create(dir, header, compress, 3)
        .unwrap()
        .with_signer(key.cloned())
        .unwrap();
    for i in 0..n {
        w.push(&stmt(i)).unwrap();
    }
    w.finish().unwrap().path
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every path under `dir` (not following symlinks), sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

impl Boundary {
    fn addr(&self) -> String {
        self.rx.addr().to_owned()
    }

    fn spool(&self) -> PathBuf {
        self.rx.work_dir.join("spool")
    }

    /// The next seq the real node will ship (the sender must be idle).
    fn next_seq(&self) -> u64 {
        self.rx.last_seq(NODE) + 1
    }

    /// `n` more real rows in one transaction.
    fn insert(&mut self, n: i64, len: usize) {
        insert_rows(&self.tx.source(), self.next_id, n, len);
        self.next_id += n;
    }

    /// A raw connection that has not said anything yet.
    fn attacker(&self) -> Attacker {
        Attacker::connect(&self.addr(), NODE)
    }

    /// A connection opened with a captured HELLO of the real node (accepted).
    fn captured(&self) -> Attacker {
        let mut a = self.attacker();
        let r = a.hello(&HelloSpec::new(RID).signed(NODE, &self.key));
        assert_eq!(r, Reply::Yes, "a fresh captured HELLO must be accepted");
        a
    }

    /// Part files in the spool (names).
    fn parts(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rx
            .work_files("spool")
            .iter()
            .map(|p| name_of(p))
            .filter(|n| n.starts_with(".part-"))
            .collect();
        v.sort();
        v
    }

    /// Rows of the target's `t` that no real sender wrote.
    fn forged_rows(&self) -> i64 {
        self.rx
            .target()
            .query_row(
                "SELECT count(*) FROM t WHERE id >= ?1 OR v = 'forged'",
                [FORGED_ID],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Pushes a batch file signed by `key` of trusted `node` through the front door
    /// twice (HELLO and END signed: a trusted sender); returns the two RESULT answers.
    fn push_signed_twice(
        &self,
        node: &str,
        key: &BatchSigner,
        seq: u64,
        file: &Path,
    ) -> [Reply; 2] {
        let bytes = fs::read(file).unwrap();
        let (size, sha) = file_sha256(file);
        let name = name_of(file);
        [0, 1].map(|_| {
            let mut a = Attacker::connect(&self.addr(), node);
            assert_eq!(a.hello(&HelloSpec::new(RID).signed(node, key)), Reply::Yes);
            assert_eq!(a.upload(seq, &bytes, 64 * 1024), Reply::Yes);
            assert_eq!(
                a.end(seq, &end_signed(node, seq, size, &sha, &name, key)),
                Reply::Yes,
                "a batch signed by trusted node {node} is spooled"
            );
            a.answer_wait = secs(20);
            a.result(seq)
        })
    }

    /// The end-of-test checks (see the module docs). `rx_quarantine_ok`: file names the
    /// test itself had quarantined (batches of other, test-driven trusted nodes).
    fn finish(mut self, rx_quarantine_ok: &[&str]) {
        if !self.tx.is_running() {
            self.tx.start();
        }
        // The receiver still serves the real sender.
        self.insert(5, 10);
        self.ws.wait_synced(&self.tx, &self.rx, secs(30));
        assert_synced(&self.tx, &self.rx);
        assert_exactly_once(&self.tx, &self.rx, &[]);
        assert_eq!(self.forged_rows(), 0, "a forged row reached the target");
        let real: i64 = self
            .rx
            .target()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(real, self.next_id - 1, "every real row, once");
        // Part files go with their connections; nothing else waits in the spool.
        self.ws
            .wait_until("part files to be removed", secs(15), || {
                self.parts().is_empty()
            });
        let spool = self.rx.work_files("spool");
        assert!(spool.is_empty(), "left in the spool: {spool:?}");
        // No quarantine of the real node on either side.
        let qdir = self.rx.work_dir.join("quarantine");
        for p in tree(&qdir) {
            let n = name_of(&p);
            assert!(
                rx_quarantine_ok.contains(&n.as_str()),
                "unexpected in the receiver's quarantine: {}",
                p.display()
            );
        }
        let tq = self.tx.work_files("quarantine");
        assert!(tq.is_empty(), "sender quarantine: {tq:?}");
        // No failure of the real node was counted.
        let node_field = format!("node={NODE}");
        let log = self.rx.log_text();
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&node_field))
            .filter(|l| {
                l.contains("batch failed")
                    || l.contains("quarantine")
                    || l.contains("verification failed")
            })
            .collect();
        assert!(failed.is_empty(), "failures of {NODE} counted: {failed:#?}");
        let sender_log = self.tx.log_text();
        assert!(
            !sender_log.contains("quarantine"),
            "the sender saw a failure: {}",
            self.tx.log_tail(30)
        );
        self.tx.stop();
        self.rx.stop();
    }
}

/// Item 1: an attacker with a captured HELLO polls `RESULT <seq>` to find the moment
/// the real (large, slow to verify and apply) batch sits in the spool, then uploads a
/// forged copy of that seq: with an unsigned END, with the signature of the real END
/// (captured) over its own size and hash, and with the real END verbatim after forged
/// bytes of the real size; a stranger without HELLO tries too. Every END is refused,
/// the spooled file stays the real one, and only real rows arrive.
#[test]
fn a_forged_copy_sent_while_the_real_batch_is_spooled_never_runs() {
    let mut b = boundary("tb-swap", rx_cfg(), &[], |c| c.max_rows(100_000));
    let seq = b.next_seq();
    let name = batch::batch_file_name(NODE, seq, false);
    let forged = craft(
        &b.ws.path().join("forged"),
        NODE,
        seq,
        &[FORGED_INSERT],
        None,
        false,
    );
    let forged_bytes = fs::read(&forged).unwrap();
    let (fsize, fsha) = file_sha256(&forged);

    // The real batch: 40 000 rows in one batch.
    b.tx.stop();
    b.insert(40_000, 80);
    b.tx.start();
    let real = b.ws.wait_for("the big batch to be cut", secs(60), || {
        b.tx.batches().into_iter().find(|x| x.seq == seq)
    });
    assert_eq!(real.file, name);
    let real_file = ["outbox", "archive"]
        .iter()
        .map(|d| b.tx.work_dir.join(d).join(&name))
        .find(|p| p.exists())
        .expect("the real batch file");
    let (rsize, rsha) = file_sha256(&real_file);
    // The real END as it crosses the wire (Ed25519 is deterministic), captured.
    let captured_end = end_signed(NODE, seq, rsize, &rsha, &name, &b.key);
    let (kid, sig) = captured_end[captured_end.len() - 72..].split_at(8);
    let stolen = end_with_signature(
        fsize,
        &fsha,
        &name,
        kid.try_into().unwrap(),
        sig.try_into().unwrap(),
    );

    // Forged bytes of exactly the real size, for the real END verbatim: only the
    // SHA-256 can tell them apart.
    let mut same_size = forged_bytes.clone();
    same_size.resize(usize::try_from(rsize).unwrap(), b'\n');
    let spooled_path = b.spool().join(&name);
    let mut armed = b.captured();
    assert_eq!(armed.upload(seq, &forged_bytes, 4096), Reply::Yes);
    let mut fired = Vec::new();
    let mut polls = 0u32;
    let until = Instant::now() + secs(90);
    while Instant::now() < until {
        polls += 1;
        let mut probe = b.captured();
        probe.answer_wait = ms(25);
        match probe.result(seq) {
            // Not spooled yet: the receiver does not know the seq.
            Reply::Closed => {
                std::thread::sleep(ms(3));
                continue;
            }
            // Applied already: too late.
            Reply::Yes => break,
            // Pending: spooled, the applier has it. Fire.
            Reply::Silent => {}
            other => panic!("RESULT {seq} to a captured HELLO answered {other:?}"),
        }
        let spooled = spooled_path.exists();
        let unsigned = armed.end(seq, &end_unsigned(fsize, &fsha, &name));
        let re1 = armed.upload(seq, &forged_bytes, 4096);
        let with_stolen = armed.end(seq, &stolen);
        let re2 = armed.upload(seq, &same_size, 512 * 1024);
        let verbatim = armed.end(seq, &captured_end);
        // And a stranger without any HELLO.
        let mut raw = b.attacker();
        let raw_data = raw.data(seq, 0, &forged_bytes);
        fired.push((spooled, unsigned, re1, with_stolen, re2, verbatim, raw_data));
        if spooled {
            break;
        }
        assert_eq!(armed.upload(seq, &forged_bytes, 4096), Reply::Yes);
    }
    eprintln!("race: {polls} polls, fired {fired:?}");
    assert!(
        fired.iter().any(|f| f.0),
        "the race was not provoked: {polls} polls, fired {fired:?}"
    );
    for f in &fired {
        let (_, unsigned, re1, with_stolen, re2, verbatim, raw_data) = *f;
        assert_eq!(
            unsigned,
            Reply::No,
            "unsigned END of a forged copy: {fired:?}"
        );
        assert_eq!((re1, re2), (Reply::Yes, Reply::Yes), "{fired:?}");
        assert_eq!(
            with_stolen,
            Reply::No,
            "captured END signature over forged bytes"
        );
        assert_eq!(verbatim, Reply::No, "the real END over forged bytes");
        assert_eq!(raw_data, Reply::Closed, "DATA without HELLO");
    }
    drop(armed);
    b.ws.wait_synced(&b.tx, &b.rx, secs(60));
    let ledger = b.rx.ledger(NODE);
    let row = ledger.iter().find(|r| r.seq == seq).unwrap();
    assert_eq!(row.file, name);
    b.finish(&[]);
}

/// Item 1, the local half: even someone who can write the spool (which the remote
/// attacker of the test above cannot reach) gains nothing by renaming a forged file
/// over a spooled batch the moment the applier has opened it (seen in
/// `/proc/<pid>/fd`), while it is still verifying: the applier verifies and executes
/// that one descriptor, so the real batch runs, once, and the forged one never.
#[test]
fn a_batch_renamed_over_while_being_verified_is_not_what_runs() {
    let mut b = boundary("tb-swap-local", rx_cfg(), &[], |c| c.max_rows(100_000));
    let seq = b.next_seq();
    let name = batch::batch_file_name(NODE, seq, false);
    let forged = craft(
        &b.ws.path().join("forged"),
        NODE,
        seq,
        &[FORGED_INSERT],
        None,
        false,
    );
    let pid = receiver_pid(&b.rx);
    let spooled = b.spool().join(&name);
    b.tx.stop();
    b.insert(40_000, 80);
    b.tx.start();
    let until = Instant::now() + secs(60);
    while !holds_open(pid, &spooled) {
        assert!(
            Instant::now() < until,
            "the applier never opened {name}\n{}",
            b.ws.logs(20)
        );
        std::thread::sleep(ms(1));
    }
    fs::rename(&forged, &spooled).unwrap();
    let verified_before =
        b.rx.audit()
            .iter()
            .any(|l| l["event"] == "verified" && l["seq"].as_u64() == Some(seq));
    assert!(
        !verified_before,
        "the swap came after verification: the window was missed"
    );
    b.ws.wait_synced(&b.tx, &b.rx, secs(60));
    let verified =
        b.rx.audit()
            .into_iter()
            .find(|l| l["event"] == "verified" && l["seq"].as_u64() == Some(seq))
            .expect("a verified event");
    let row =
        b.rx.ledger(NODE)
            .into_iter()
            .find(|r| r.seq == seq)
            .unwrap();
    assert_eq!(
        Some(row.sha256.as_str()),
        verified["sha256"].as_str(),
        "the ledger names the verified content"
    );
    assert_eq!(b.forged_rows(), 0, "the swapped-in file ran");
    b.finish(&[]);
}

/// The pid of the running receiver of `rx` (its command line names its config).
fn receiver_pid(rx: &ReceiverNode) -> u32 {
    let cfg = rx.config_path.display().to_string();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.contains(&cfg.as_bytes()) && args.contains(&&b"run"[..]) {
            return pid;
        }
    }
    panic!("no running receiver with config {cfg}");
}

/// Whether process `pid` has `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| fs::read_link(e.path()).is_ok_and(|t| t == path))
    })
}

/// Item 2: forged copies of the next seq (twice unsigned, an END signed by a key the
/// receiver does not trust, the trusted key id with a bogus signature, a file signed
/// by an untrusted key) sent with a captured HELLO before the real batch: every END is
/// refused, nothing takes the seq's name, RESULT never says "failed", and the real
/// batch of that seq is then applied, not quarantined. Without a captured HELLO
/// nothing is even stored.
#[test]
fn forged_copies_of_the_next_seq_are_refused_and_count_as_no_failure() {
    let mut b = boundary("tb-poison", rx_cfg(), &[], |c| c);
    b.tx.stop();
    let seq = b.next_seq();
    let name = batch::batch_file_name(NODE, seq, false);
    let dir = b.ws.path().join("forged");
    let unsigned = craft(&dir.join("u"), NODE, seq, &[FORGED_INSERT], None, false);
    let foreign = craft(
        &dir.join("f"),
        NODE,
        seq,
        &[FORGED_INSERT],
        Some(&b.stranger),
        false,
    );
    let (us, uh) = file_sha256(&unsigned);
    let (fs_, fh) = file_sha256(&foreign);
    let ub = fs::read(&unsigned).unwrap();
    let fb = fs::read(&foreign).unwrap();
    let cases: Vec<(&str, &[u8], Vec<u8>)> = vec![
        ("unsigned END", &ub[..], end_unsigned(us, &uh, &name)),
        (
            "unsigned END, second copy",
            &ub[..],
            end_unsigned(us, &uh, &name),
        ),
        (
            "END signed by an untrusted key",
            &fb[..],
            end_signed(NODE, seq, fs_, &fh, &name, &b.stranger),
        ),
        (
            "trusted key id, bogus signature",
            &ub[..],
            end_with_signature(us, &uh, &name, b.key.key_id_bytes(), [7; 64]),
        ),
        (
            "file signed by an untrusted key, unsigned END",
            &fb[..],
            end_unsigned(fs_, &fh, &name),
        ),
    ];
    let spooled = b.spool().join(&name);
    let marker = b.spool().join(format!("{name}.fail1"));
    for (what, bytes, end) in cases {
        let mut a = b.captured();
        assert_eq!(a.upload(seq, bytes, 4096), Reply::Yes, "{what}: DATA");
        assert_eq!(a.end(seq, &end), Reply::No, "{what}: END");
        a.answer_wait = secs(2);
        assert_eq!(
            a.result(seq),
            Reply::Closed,
            "{what}: RESULT {seq} after a refused END is unknown: closed without answer"
        );
        assert!(!spooled.exists(), "{what}: the forged copy took the name");
        assert!(!marker.exists(), "{what}: a failure was counted");
    }
    // Without a captured HELLO: no frame but HELLO is read, a bad HELLO is refused.
    let mut raw = b.attacker();
    assert_eq!(raw.data(seq, 0, &ub), Reply::Closed, "DATA as first frame");
    for hello in [
        HelloSpec::new(RID).unsigned(),
        HelloSpec::new(RID).signed(NODE, &b.stranger),
    ] {
        let mut a = b.attacker();
        assert_eq!(a.hello(&hello), Reply::No);
        assert_eq!(
            a.data(seq, 0, &ub),
            Reply::Closed,
            "DATA after a refused HELLO"
        );
    }
    assert!(b.rx.quarantined_seqs(NODE).is_empty());
    // The real batch of that seq goes through.
    b.insert(20, 20);
    b.tx.start();
    b.ws.wait_synced(&b.tx, &b.rx, secs(30));
    assert!(b.rx.ledger_seqs(NODE).contains(&seq));
    b.finish(&[]);
}

/// Item 4: `insecure = true` on a receiver with `[[trust]]` keys for the real node:
/// unsigned or foreign-signed HELLOs of that node are refused, forged unsigned
/// uploads behind a captured HELLO are refused at END (twice, no failure counted); a
/// node without keys may come in unsigned (that is what `insecure` opens) but cannot
/// send a frame in the real node's name.
#[test]
fn insecure_does_not_open_a_node_that_has_keys() {
    let rc = ReceiverConfig {
        insecure: true,
        ..rx_cfg()
    };
    let mut b = boundary("tb-insecure", rc, &[], |c| c);
    b.tx.stop();
    let seq = b.next_seq();
    let name = batch::batch_file_name(NODE, seq, false);
    let forged = craft(
        &b.ws.path().join("forged"),
        NODE,
        seq,
        &[FORGED_INSERT],
        None,
        false,
    );
    let fb = fs::read(&forged).unwrap();
    let (fsize, fsha) = file_sha256(&forged);

    let mut a = b.attacker();
    assert_eq!(a.hello(&HelloSpec::new(RID).unsigned()), Reply::No);
    assert!(a.closed_within(secs(5)), "closed after a refused HELLO");
    let mut a = b.attacker();
    assert_eq!(
        a.hello(&HelloSpec::new(RID).signed(NODE, &b.stranger)),
        Reply::No
    );
    // A keyless name is let in unsigned (insecure), but only as itself.
    let mut k = Attacker::connect(&b.addr(), "stranger-9");
    assert_eq!(k.hello(&HelloSpec::new(RID).unsigned()), Reply::Yes);
    k.node = NODE.to_owned();
    assert_eq!(
        k.data(seq, 0, &fb),
        Reply::Closed,
        "a frame in another node's name"
    );
    for copy in 0..2 {
        let mut a = b.captured();
        assert_eq!(a.upload(seq, &fb, 4096), Reply::Yes);
        assert_eq!(
            a.end(seq, &end_unsigned(fsize, &fsha, &name)),
            Reply::No,
            "unsigned END of node {NODE}, copy {copy}"
        );
        a.answer_wait = secs(2);
        assert_eq!(a.result(seq), Reply::Closed, "RESULT after a refused END");
    }
    assert!(!b.spool().join(&name).exists());
    assert!(b.rx.quarantined_seqs(NODE).is_empty());
    b.insert(10, 10);
    b.tx.start();
    b.ws.wait_synced(&b.tx, &b.rx, secs(30));
    b.finish(&[]);
}

/// Item 5, idle connections: 30 idle connections from five other loopback addresses
/// and 8 from 127.0.0.1 itself, with `max_connections = 16` and a HELLO deadline of
/// 30 s (so only eviction, not the deadline, can make room): the restarted real
/// sender connects from 127.0.0.1 and gets its batch applied within 15 s; no address
/// holds more than 4 unauthenticated connections, and at most 16 are held in total.
#[test]
fn idle_connections_from_many_addresses_do_not_keep_the_sender_out() {
    let rc = ReceiverConfig {
        max_connections: Some(16),
        hello_timeout: Some(secs(30)),
        ..rx_cfg()
    };
    let mut b = boundary("tb-idle", rc, &[], |c| c);
    b.tx.stop();
    let addr = b.addr();
    let from = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    let crowd = IdleCrowd::open(&addr, &from, 6, secs(60));
    let mut local: Vec<Attacker> = (0..8).map(|_| b.attacker()).collect();
    // The accept loop polls: let every idle connection be admitted.
    std::thread::sleep(ms(500));
    let seq = b.next_seq();
    b.insert(10, 10);
    let t0 = Instant::now();
    b.tx.start();
    b.ws.wait_until(
        "the real sender's batch past the idle crowd",
        secs(15),
        || b.rx.ledger_seqs(NODE).contains(&seq),
    );
    let took = t0.elapsed();
    let local_open = local
        .iter_mut()
        .map(|a| !a.is_closed())
        .filter(|o| *o)
        .count();
    let report = crowd.finish();
    assert_eq!(report.len(), from.len(), "crowd report: {report:?}");
    for (ip, _, open) in &report {
        assert!(
            *open <= gapsync_receiver::sessions::MAX_UNAUTHENTICATED_PER_PEER,
            "{ip} still holds {open} idle connections: {report:?}"
        );
    }
    assert!(
        local_open <= 4,
        "127.0.0.1 still holds {local_open} idle ones"
    );
    let total: usize = report.iter().map(|r| r.2).sum::<usize>() + local_open;
    assert!(total <= 16, "{total} idle connections held: {report:?}");
    eprintln!("idle: sender through in {took:?}; crowd {report:?}; 127.0.0.1 open {local_open}");
    assert!(took < secs(15), "the sender needed {took:?}");
    drop(local);
    b.finish(&[]);
}

/// Item 5, part files: a peer without HELLO cannot create one; with a captured HELLO
/// every connection gets its own `.part-<node>-<seq>-<conn>` (0600; two connections
/// of one seq never share it, and one's DATA at offset 0 leaves the other's bytes
/// alone), removed when its connection closes, whether the peer hangs up or goes
/// silent until the idle timeout; ten abandoned uploads leave nothing behind.
#[test]
fn part_files_are_per_connection_private_and_go_with_the_connection() {
    let rc = ReceiverConfig {
        idle_timeout: Some(secs(2)),
        ..rx_cfg()
    };
    let b = boundary("tb-parts", rc, &[], |mut c| {
        c.heartbeat = ms(500);
        c
    });
    let seq = b.next_seq();
    let mut a = b.attacker();
    assert_eq!(a.data(seq, 0, b"x"), Reply::Closed);
    let mut a = b.attacker();
    assert_eq!(a.hello(&HelloSpec::new(RID).unsigned()), Reply::No);
    assert_eq!(a.data(seq, 0, b"x"), Reply::Closed);
    assert!(b.parts().is_empty(), "{:?}", b.parts());

    let mut p1 = b.captured();
    let mut p2 = b.captured();
    assert_eq!(p1.data(seq, 0, b"first upload"), Reply::Yes);
    assert_eq!(p2.data(seq, 0, b"second"), Reply::Yes);
    let parts = b.parts();
    assert_eq!(parts.len(), 2, "{parts:?}");
    let prefix = format!(".part-{NODE}-{seq:020}-");
    for p in &parts {
        assert!(p.starts_with(&prefix), "{p}");
        let mode = fs::metadata(b.spool().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "mode of {p}");
    }
    let read = |b: &Boundary| -> Vec<Vec<u8>> {
        b.parts()
            .iter()
            .map(|p| fs::read(b.spool().join(p)).unwrap_or_default())
            .collect()
    };
    let mut got = read(&b);
    got.sort();
    assert_eq!(got, [b"first upload".to_vec(), b"second".to_vec()]);
    // p2 starts "again" at offset 0: p1's part keeps its bytes.
    assert_eq!(p2.data(seq, 0, b"ZZ"), Reply::Yes);
    let mut got = read(&b);
    got.sort();
    assert_eq!(got, [b"ZZ".to_vec(), b"first upload".to_vec()]);
    p1.close();
    b.ws.wait_until("p1's part to go with its connection", secs(5), || {
        b.parts().len() == 1
    });
    // p2 goes silent: the idle timeout closes it and its part goes too.
    assert!(p2.closed_within(secs(8)), "idle connection not closed");
    b.ws.wait_until("p2's part to go", secs(5), || b.parts().is_empty());
    for i in 0..10 {
        let mut a = b.captured();
        assert_eq!(a.data(seq, 0, &vec![b'a'; 1000 + i]), Reply::Yes);
        a.close();
        b.ws.wait_until("an abandoned part to go", secs(5), || b.parts().is_empty());
    }
    b.finish(&[]);
}

/// Item 5, far-future seqs: 10 001 ahead of the ledger, 10^12, 2^63 and u64::MAX are
/// refused at DATA and at END, even with a captured HELLO and an END signed by the
/// node key; nothing waits in the spool. 10 000 ahead is still inside the window.
#[test]
fn seqs_far_ahead_of_the_ledger_are_refused() {
    let b = boundary("tb-window", rx_cfg(), &[], |c| c);
    let next = b.next_seq();
    let dir = b.ws.path().join("future");
    for seq in [next + 10_001, 1_000_000_000_000, 1 << 63, u64::MAX] {
        let f = craft(
            &dir.join(seq.to_string()),
            NODE,
            seq,
            &[FORGED_INSERT],
            Some(&b.key),
            false,
        );
        let bytes = fs::read(&f).unwrap();
        let (size, sha) = file_sha256(&f);
        let name = name_of(&f);
        let mut a = b.captured();
        assert_eq!(a.data(seq, 0, &bytes), Reply::No, "DATA of seq {seq}");
        assert_eq!(
            a.end(seq, &end_signed(NODE, seq, size, &sha, &name, &b.key)),
            Reply::No,
            "signed END of seq {seq}"
        );
        assert!(!b.spool().join(&name).exists(), "seq {seq} spooled");
        assert!(b.parts().is_empty(), "seq {seq}: {:?}", b.parts());
    }
    let mut a = b.captured();
    assert_eq!(
        a.data(next + 10_000, 0, b"x"),
        Reply::Yes,
        "the window's edge"
    );
    a.close();
    b.finish(&[]);
}

/// Item 5, a stranger's DATA at offset 0: while the real sender uploads a large batch
/// in 16 KiB frames, an attacker with a captured HELLO keeps sending DATA at offset 0
/// for the same seq. Its part is its own: the real upload arrives intact and is
/// applied once; the attacker's END is refused.
#[test]
fn a_strangers_data_at_offset_zero_does_not_truncate_the_real_upload() {
    let mut b = boundary("tb-truncate", rx_cfg(), &[], |mut c| {
        c.max_frame = Some(16 * 1024);
        c.max_rows(100_000)
    });
    b.tx.stop();
    let seq = b.next_seq();
    b.insert(20_000, 100);
    let junk_file = b.ws.path().join("junk.sql");
    fs::write(&junk_file, vec![b'J'; 4096]).unwrap();
    let junk = fs::read(&junk_file).unwrap();
    let (jsize, jsha) = file_sha256(&junk_file);
    assert_eq!(b.attacker().data(seq, 0, &junk), Reply::Closed);
    let mut a = b.captured();
    assert_eq!(a.data(seq, 0, &junk), Reply::Yes);
    assert_eq!(b.parts().len(), 1);
    b.tx.start();
    // The attacker sends DATA at offset 0 as fast as it can, on its own thread, and
    // opens a new connection (a fresh captured HELLO) every 25 frames.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        let junk = junk.clone();
        let (addr, key) = (b.addr(), b.key.clone());
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if sent.len() % 25 == 24 {
                    a.close();
                    a = Attacker::connect(&addr, NODE);
                    let r = a.hello(&HelloSpec::new(RID).signed(NODE, &key));
                    if r != Reply::Yes {
                        return (a, sent, Some(r));
                    }
                }
                let r = a.data(seq, 0, &junk);
                if r != Reply::Yes {
                    return (a, sent, Some(r));
                }
                sent.push(Instant::now());
            }
            (a, sent, None)
        })
    };
    // Meanwhile: when was the real batch cut, when applied, and was its part file (the
    // attacker's never exceed its 4096 bytes) seen in the spool?
    let (mut cut, mut beside) = (None, 0u32);
    let until = Instant::now() + secs(60);
    let applied = loop {
        if cut.is_none() && b.tx.progress().last_cut >= seq {
            cut = Some(Instant::now());
        }
        let spool = b.spool();
        if b.parts()
            .iter()
            .any(|p| fs::metadata(spool.join(p)).is_ok_and(|m| m.len() > junk.len() as u64))
        {
            beside += 1;
        }
        if b.rx.last_seq(NODE) >= seq {
            break Some(Instant::now());
        }
        if Instant::now() >= until {
            break None;
        }
        std::thread::sleep(ms(5));
    };
    stop.store(true, Ordering::SeqCst);
    let (mut a, sent, refused) = flood.join().unwrap();
    assert_eq!(refused, None, "the attacker's own DATA was refused");
    let applied = applied.unwrap_or_else(|| {
        panic!(
            "the real batch was not applied while the attacker sent {} frames\n{}",
            sent.len(),
            b.ws.logs(20)
        )
    });
    let cut = cut.expect("the cut was seen");
    let overlap = sent.iter().filter(|t| **t >= cut && **t <= applied).count();
    eprintln!(
        "truncate: {} attacker frames, {overlap} while the real batch was in flight, \
         {beside} samples beside the real part file",
        sent.len()
    );
    assert!(
        overlap >= 10,
        "the attacker's DATA hardly overlapped the real batch ({overlap} of {} frames)",
        sent.len()
    );
    assert!(
        beside >= 1,
        "the real upload's part file was never seen in the spool"
    );
    let name = batch::batch_file_name(NODE, seq, false);
    assert_eq!(a.end(seq, &end_unsigned(jsize, &jsha, &name)), Reply::No);
    a.close();
    b.ws.wait_synced(&b.tx, &b.rx, secs(60));
    b.finish(&[]);
}

/// Item 5, a zstd bomb: a small `.sql.zst` that inflates to ~17 MB. Under twenty
/// fresh node names it is refused at HELLO (unsigned, or signed by a key the receiver
/// does not trust); under the real node's name with a captured HELLO its unsigned END
/// is refused in well under a second, three times: nothing is decompressed, parsed or
/// counted (no verification, no rejection, no failure in log or audit).
#[test]
fn a_zstd_bomb_is_never_decompressed_without_a_signed_end() {
    let b = boundary("tb-bomb", rx_cfg(), &[], |c| c);
    let seq = b.next_seq();
    let row = format!(
        r#"INSERT INTO "t" ("id", "v") VALUES (900002, '{}');"#,
        "b".repeat(100)
    );
    let bomb = craft_with(
        &b.ws.path().join("bomb"),
        NODE,
        seq,
        150_000,
        None,
        true,
        |_| row.clone(),
    );
    let bytes = fs::read(&bomb).unwrap();
    assert!(bytes.len() < 160 * 1024, "bomb of {} bytes", bytes.len());
    let (size, sha) = file_sha256(&bomb);
    let name = name_of(&bomb);
    for i in 0..20 {
        let node = format!("bomber-{i}");
        let hello = if i % 2 == 0 {
            HelloSpec::new(RID).unsigned()
        } else {
            HelloSpec::new(RID).signed(&node, &b.stranger)
        };
        let mut a = Attacker::connect(&b.addr(), &node);
        assert_eq!(a.hello(&hello), Reply::No, "fresh node {node}");
        assert_eq!(a.data(1, 0, &bytes), Reply::Closed, "fresh node {node}");
    }
    for attempt in 0..3 {
        let mut a = b.captured();
        assert_eq!(a.upload(seq, &bytes, 64 * 1024), Reply::Yes);
        let t0 = Instant::now();
        assert_eq!(
            a.end(seq, &end_unsigned(size, &sha, &name)),
            Reply::No,
            "try {attempt}"
        );
        let took = t0.elapsed();
        assert!(took < secs(1), "END of the bomb took {took:?}");
    }
    assert!(!b.spool().join(&name).exists());
    let log = b.rx.log_text();
    for word in ["verification failed", "exceeds the limit", "batch refused"] {
        assert!(
            !log.contains(word),
            "{word:?} in the log: the bomb was opened"
        );
    }
    let audit = b.rx.audit();
    assert!(
        audit
            .iter()
            .all(|l| l["event"] != "rejected" && l["event"] != "failed"),
        "{audit:?}"
    );
    b.finish(&[]);
}

/// Item 6: symlinks planted in `spool/` (under batch names of two trusted nodes,
/// pointing at batch files outside that their node keys signed, so that following
/// them would run a forged row) and in `quarantine/` (under the names a quarantined
/// batch writes, and as its `rejected/` directory) are never followed: nothing of the
/// linked files runs, the victims are untouched, the real sender's batch whose name
/// was taken waits without a failure and goes through once the link is removed; every
/// directory the receiver has is 0700 and every file 0600.
#[test]
fn symlinks_in_spool_and_quarantine_are_not_followed_and_files_are_private() {
    use std::os::unix::fs::symlink;
    let mut b = boundary("tb-symlink", rx_cfg(), &["plant2", "plant3"], |c| c);
    let (p2, p3) = (b.others[0].clone(), b.others[1].clone());
    let outside = b.ws.path().join("outside");
    let spool = b.spool();
    let qdir = b.rx.work_dir.join("quarantine");
    let victim = |n: &str| {
        let p = b.ws.path().join(format!("victim-{n}"));
        fs::write(&p, "keep").unwrap();
        p
    };
    let (va, vb) = (victim("a"), victim("b"));
    let vdir = b.ws.path().join("victim-dir");
    fs::create_dir_all(&vdir).unwrap();

    let e2 = craft(
        &outside.join("2"),
        "plant2",
        1,
        &[r#"INSERT INTO "t" ("id", "v") VALUES (900002, 'forged');"#],
        Some(&p2),
        false,
    );
    symlink(&e2, spool.join(name_of(&e2))).unwrap();
    let next = b.next_seq();
    let e1 = craft(
        &outside.join("1"),
        NODE,
        next,
        &[r#"INSERT INTO "t" ("id", "v") VALUES (900003, 'forged');"#],
        Some(&b.key),
        false,
    );
    let e1_link = spool.join(name_of(&e1));
    symlink(&e1, &e1_link).unwrap();
    let (e1_bytes, e2_bytes) = (fs::read(&e1).unwrap(), fs::read(&e2).unwrap());
    let qname = batch::batch_file_name("plant3", 1, false);
    let qreason = format!("{qname}.reason");
    symlink(&va, qdir.join(&qname)).unwrap();
    symlink(&vb, qdir.join(&qreason)).unwrap();
    symlink(&vdir, qdir.join("rejected")).unwrap();

    b.ws.wait_until(
        "the applier to pass over the planted links",
        secs(10),
        || {
            let log = b.rx.log_text();
            (log.contains("not a regular file") && log.contains(&name_of(&e1)))
                || b.forged_rows() > 0
        },
    );
    assert_eq!(b.forged_rows(), 0, "a planted spool link was followed");
    // The real batch whose name the link holds: refused at END, not failed, with an
    // alarm that names what is wrong.
    b.insert(5, 10);
    b.ws.wait_until("the real END to be refused", secs(20), || {
        b.rx.log_text().contains(
            "the batch name in the spool is taken by something that is not a regular file",
        )
    });
    assert_eq!(b.forged_rows(), 0);
    assert!(!b.rx.ledger_seqs(NODE).contains(&next));
    assert!(!spool.join(format!("{}.fail1", name_of(&e1))).exists());
    // The operator removes the planted link, as the log says: the batch goes through.
    fs::remove_file(&e1_link).unwrap();
    b.ws.wait_synced(&b.tx, &b.rx, secs(30));

    // A trusted node's poison batch, quarantined through the planted names.
    let poison = craft(
        &outside.join("3"),
        "plant3",
        1,
        &[r#"DROP TABLE "t";"#],
        Some(&p3),
        false,
    );
    assert_eq!(
        b.push_signed_twice("plant3", &p3, 1, &poison),
        [Reply::No, Reply::No]
    );
    assert_eq!(b.rx.quarantined_seqs("plant3"), [1]);
    // A signed END whose name does not match its seq goes to quarantine/rejected/,
    // here a link to another directory.
    let (size, sha) = file_sha256(&poison);
    let mut a = Attacker::connect(&b.addr(), "plant3");
    assert_eq!(
        a.hello(&HelloSpec::new(RID).signed("plant3", &p3)),
        Reply::Yes
    );
    assert_eq!(a.upload(2, &fs::read(&poison).unwrap(), 4096), Reply::Yes);
    assert_eq!(
        a.end(2, &end_signed("plant3", 2, size, &sha, &qname, &p3)),
        Reply::No
    );
    a.close();

    assert_eq!(fs::read_to_string(&va).unwrap(), "keep");
    assert_eq!(fs::read_to_string(&vb).unwrap(), "keep");
    let in_vdir: Vec<_> = fs::read_dir(&vdir).unwrap().flatten().collect();
    assert!(
        in_vdir.is_empty(),
        "written through quarantine/rejected: {in_vdir:?}"
    );
    assert_eq!(fs::read(&e1).unwrap(), e1_bytes);
    assert_eq!(fs::read(&e2).unwrap(), e2_bytes);
    assert_eq!(b.forged_rows(), 0);
    assert!(b.rx.ledger_seqs("plant2").is_empty());
    assert!(b.rx.quarantined_seqs("plant2").is_empty());
    let count: i64 =
        b.rx.target()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
    assert_eq!(count, b.next_id - 1, "the poison batch ran");

    // Modes of everything the receiver made.
    fs::remove_file(spool.join(name_of(&e2))).unwrap();
    if qdir.join("rejected").is_symlink() {
        fs::remove_file(qdir.join("rejected")).unwrap();
    }
    for q in [&qname, &qreason] {
        let m = fs::symlink_metadata(qdir.join(q)).unwrap();
        assert!(m.is_file(), "{q} is still the planted link");
    }
    for p in std::iter::once(b.rx.work_dir.clone()).chain(tree(&b.rx.work_dir)) {
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        if m.is_dir() {
            assert_eq!(format!("{mode:o}"), "700", "directory {}", p.display());
        } else if m.is_file() {
            assert_eq!(format!("{mode:o}"), "600", "file {}", p.display());
        } else {
            panic!("{} is neither a file nor a directory", p.display());
        }
    }
    b.finish(&[&qname, &qreason]);
}

/// A batch signed with a trusted node key that hides a condition in an executable
/// comment (`/*M! ... */`, `/*!99999 ... */`, read as code by MariaDB/MySQL) is refused
/// by the allow-list on a SQLite target: quarantined (it is a signed batch), the rows
/// it aimed at untouched, the real node unaffected.
#[test]
fn executable_comments_in_a_signed_batch_are_refused() {
    let b = boundary("tb-comment", rx_cfg(), &["plant2"], |c| c);
    let p2 = b.others[0].clone();
    let dir = b.ws.path().join("comment");
    let stmts = [
        r#"DELETE FROM "t" WHERE "id" = 16 /*M! OR 1=1 */;"#,
        r#"DELETE FROM "t" WHERE "id" = 17 /*!99999 OR 1=1 */;"#,
    ];
    let mut names = Vec::new();
    for (i, stmt) in stmts.iter().enumerate() {
        let seq = i as u64 + 1;
        let f = craft(
            &dir.join(seq.to_string()),
            "plant2",
            seq,
            &[stmt],
            Some(&p2),
            false,
        );
        assert_eq!(
            b.push_signed_twice("plant2", &p2, seq, &f),
            [Reply::No, Reply::No],
            "{stmt}"
        );
        let reason = fs::read_to_string(
            b.rx.work_dir
                .join("quarantine")
                .join(format!("{}.reason", name_of(&f))),
        )
        .unwrap();
        eprintln!("comment: {stmt} -> {reason}");
        assert!(
            reason.to_lowercase().contains("comment") || reason.contains("allow"),
            "{stmt}: {reason}"
        );
        names.push(name_of(&f));
        names.push(format!("{}.reason", name_of(&f)));
    }
    assert_eq!(b.rx.quarantined_seqs("plant2"), [1, 2]);
    assert!(b.rx.ledger_seqs("plant2").is_empty());
    let kept: i64 =
        b.rx.target()
            .query_row("SELECT count(*) FROM t WHERE id IN (16, 17)", [], |r| {
                r.get(0)
            })
            .unwrap();
    assert_eq!(kept, 2, "rows 16 and 17 must be untouched");
    let ok: Vec<&str> = names.iter().map(String::as_str).collect();
    b.finish(&ok);
}

/// HELLO: a captured HELLO opens one session and only one (the same bytes again are
/// refused: nonce seen); with `hello_max_skew = 60s` a HELLO 30 s old is accepted; a
/// HELLO 90 s old or 10 minutes off either way, for another receiver id, unsigned,
/// signed by an untrusted key, with a signature of another node's message, one byte
/// longer, tagged `gapsync/3` or `gapsync/1` (logged by version) is refused. A peer
/// without an accepted HELLO gets no RESULT answer, no DATA stored, no HEARTBEAT, and
/// an idle one is closed after `hello_timeout`.
#[test]
fn hello_is_accepted_only_signed_fresh_for_this_receiver_and_once() {
    let rc = ReceiverConfig {
        hello_timeout: Some(secs(2)),
        hello_max_skew: Some(secs(60)),
        ..rx_cfg()
    };
    let b = boundary("tb-hello", rc, &[], |c| c);
    let captured = HelloSpec::new(RID).signed(NODE, &b.key);
    let mut first = b.attacker();
    assert_eq!(first.hello(&captured), Reply::Yes);
    let mut again = b.attacker();
    assert_eq!(again.hello(&captured), Reply::No, "replayed HELLO");
    assert!(again.closed_within(secs(5)));
    // Within `hello_max_skew` (60 s here) a clock 30 s off is fine.
    let mut skewed = b.attacker();
    let h = HelloSpec {
        time: attacker::now_secs() - 30,
        ..HelloSpec::new(RID)
    };
    assert_eq!(
        skewed.hello(&h.signed(NODE, &b.key)),
        Reply::Yes,
        "30 s off"
    );
    skewed.close();

    let now = attacker::now_secs();
    let other_node = {
        let h = HelloSpec::new(RID);
        let mut p = h.body(attacker::SCHEME_ED25519, b.key.key_id_bytes());
        let sig = b.key.sign_link(&attacker::hello_message("plant9", &p));
        p.extend_from_slice(&sig);
        p
    };
    let longer = {
        let mut p = HelloSpec::new(RID).signed(NODE, &b.key);
        p.push(0);
        p
    };
    let refused: Vec<(&str, Vec<u8>)> = vec![
        (
            "10 minutes old",
            HelloSpec {
                time: now - 600,
                ..HelloSpec::new(RID)
            }
            .signed(NODE, &b.key),
        ),
        (
            "90 s old, over hello_max_skew",
            HelloSpec {
                time: now - 90,
                ..HelloSpec::new(RID)
            }
            .signed(NODE, &b.key),
        ),
        (
            "10 minutes ahead",
            HelloSpec {
                time: now + 600,
                ..HelloSpec::new(RID)
            }
            .signed(NODE, &b.key),
        ),
        (
            "another receiver id",
            HelloSpec::new("gapsync-receiver").signed(NODE, &b.key),
        ),
        ("unsigned", HelloSpec::new(RID).unsigned()),
        (
            "untrusted key",
            HelloSpec::new(RID).signed(NODE, &b.stranger),
        ),
        ("another node's signature", other_node),
        ("one byte longer", longer),
        (
            "gapsync/3",
            HelloSpec {
                tag: b"gapsync/3".to_vec(),
                ..HelloSpec::new(RID)
            }
            .signed(NODE, &b.key),
        ),
        ("gapsync/1", b"gapsync/1 gapsync-sender 0.1.0".to_vec()),
    ];
    for (what, hello) in &refused {
        let mut a = b.attacker();
        assert_eq!(a.hello(hello), Reply::No, "{what}");
        assert!(a.closed_within(secs(5)), "{what}: not closed");
    }
    let log = b.rx.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("HELLO refused") && l.contains("gapsync/1")),
        "no log line names gapsync/1: {}",
        b.rx.log_tail(20)
    );
    // Seq 1 is applied: an answer to an unauthenticated RESULT would leak it.
    for (what, kind) in [
        ("RESULT", gapsync_protocol::FrameType::Result),
        ("HEARTBEAT", gapsync_protocol::FrameType::Heartbeat),
        ("DATA", gapsync_protocol::FrameType::Data),
        ("END", gapsync_protocol::FrameType::End),
    ] {
        let mut a = b.attacker();
        let payload = if kind == gapsync_protocol::FrameType::Data {
            b"x".to_vec()
        } else if kind == gapsync_protocol::FrameType::End {
            end_unsigned(1, &[0; 32], &batch::batch_file_name(NODE, 1, false))
        } else {
            Vec::new()
        };
        assert_eq!(a.send(kind, 1, 0, &payload), Reply::Closed, "{what} first");
    }
    assert!(b.parts().is_empty());
    // The accepted session gets answers.
    assert_eq!(first.result(1), Reply::Yes);
    assert_eq!(first.heartbeat(), Reply::Yes);
    first.close();
    // Idle without HELLO: closed after hello_timeout (2 s).
    let mut idle = b.attacker();
    let t0 = Instant::now();
    assert!(idle.closed_within(secs(8)), "idle peer kept open");
    assert!(t0.elapsed() >= ms(1500), "closed after {:?}", t0.elapsed());
    b.finish(&[]);
}
