//! Disk full on the receiver spool: a 2 MiB tmpfs mounted on the receiver's `spool/`
//! (needs root; skipped with a note otherwise, failing when `CI` is set) and filled with
//! a ballast file. The receiver answers "no", nothing is applied, failed or quarantined,
//! both services keep running, and everything arrives once the ballast is deleted.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gapsync_protocol::{Identity, LinkClient, LinkOptions, ResultAnswer};
use gapsync_tests::suite::*;
use gapsync_tests::*;
use rusqlite::params;

/// Mount a tmpfs of `size` on `dir`. None (after a note on stderr): not possible here
/// (not root, no mount); with `CI` set that is a failure.
fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    let why = match Tmpfs::mount(dir, size) {
        Ok(t) => return Some(t),
        Err(why) => why,
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "spool_full needs a tmpfs on {} (run as root): {why}",
        dir.display()
    );
    eprintln!(
        "spool_full skipped: cannot mount a tmpfs on {} (needs root): {why}",
        dir.display()
    );
    None
}

/// [`fill_fs`], panicking on an I/O error.
fn fill(dir: &Path, free: u64) -> PathBuf {
    fill_fs(dir, free).unwrap()
}

/// DATA chunks are `max_frame - 74` bytes.
const MAX_FRAME: u64 = 4096;
const CHUNK: u64 = MAX_FRAME - gapsync_protocol::HEADER_LEN as u64;

const SCHEMA: &str =
    "CREATE TABLE doc(id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, body TEXT NOT NULL)";

/// About 3 KB of text for row `id` at revision `rev` (quotes, newlines, CJK).
fn body(id: i64, rev: i64) -> String {
    let line = format!("doc {id} rev {rev}: 1号主变 'quote' \"dq\" \\ back\n");
    line.repeat(3000 / line.len() + 1)
}

/// One source transaction: 8 new rows of ~3 KB (ids from `*next`), an update of an
/// older row and a delete of another: one batch of ~30 KB, several times what the
/// full spool has room for.
fn write_round(tx: &SenderNode, next: &mut i64, rng: &mut Rng) {
    let mut src = tx.source();
    let t = src.transaction().unwrap();
    for _ in 0..8 {
        t.execute(
            "INSERT INTO doc(id, rev, body) VALUES (?1, 0, ?2)",
            params![*next, body(*next, 0)],
        )
        .unwrap();
        *next += 1;
    }
    let id = rng.range(1, *next - 1);
    t.execute(
        "UPDATE doc SET rev = rev + 1, body = ?2 WHERE id = ?1",
        params![id, body(id, 1 + rng.range(0, 100))],
    )
    .unwrap();
    let id = rng.range(1, *next - 1);
    t.execute("DELETE FROM doc WHERE id = ?1 AND id % 5 = 0", params![id])
        .unwrap();
    t.commit().unwrap();
}

/// While the spool is full: `rounds` source transactions, then checks that nothing
/// moved on the target, nothing failed on either side and both services run.
fn while_full(
    ws: &Workspace,
    tx: &mut SenderNode,
    rx: &mut ReceiverNode,
    rounds: usize,
    next: &mut i64,
    rng: &mut Rng,
) {
    let node = tx.cfg.node.clone();
    let recorded = rx.last_seq(&node);
    let refused = |rx: &ReceiverNode| rx.log_text().matches("cannot spool chunk").count();
    let rejected = |tx: &SenderNode| tx.log_text().matches("not accepted after").count();
    let (refused0, rejected0) = (refused(rx), rejected(tx));
    for _ in 0..rounds {
        write_round(tx, next, rng);
        std::thread::sleep(Duration::from_millis(200));
    }
    // The receiver refuses chunks for want of space (more than before this phase), and
    // the sender took the "no" as a link fault, not as a failed batch.
    ws.wait_until(
        "the receiver to refuse chunks: spool full",
        secs(30),
        || refused(rx) > refused0 && rx.log_text().contains("No space left on device"),
    );
    ws.wait_until("the sender to see its chunks refused", secs(30), || {
        rejected(tx) > rejected0
    });
    assert_eq!(rx.last_seq(&node), recorded, "nothing may be applied");
    assert!(
        tx.progress().last_cut > recorded,
        "the sender cut batches while the spool was full"
    );
    let spooled: Vec<PathBuf> = rx
        .work_files("spool")
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n != "ballast" && !n.starts_with(".part-")
        })
        .collect();
    assert!(spooled.is_empty(), "nothing spooled: {spooled:?}");
    let failed: Vec<BatchRow> = tx
        .batches()
        .into_iter()
        .filter(|b| b.seq > recorded && (b.state != "ready" || b.attempts != 0))
        .collect();
    assert!(failed.is_empty(), "no failed attempt counted: {failed:?}");
    assert_nothing_quarantined(tx, rx);
    assert!(rx.is_running(), "receiver died\n{}", rx.log_tail(40));
    assert!(tx.is_running(), "sender died\n{}", tx.log_tail(40));
}

fn assert_nothing_quarantined(tx: &SenderNode, rx: &ReceiverNode) {
    let node = tx.cfg.node.as_str();
    assert!(rx.quarantined_seqs(node).is_empty(), "receiver quarantine");
    assert_eq!(rx.work_files("quarantine"), Vec::<PathBuf>::new());
    assert_eq!(tx.work_files("quarantine"), Vec::<PathBuf>::new());
    let q: Vec<BatchRow> = tx
        .batches()
        .into_iter()
        .filter(|b| b.state == "quarantined")
        .collect();
    assert!(q.is_empty(), "sender quarantine: {q:?}");
}

/// Space returns: everything catches up, row by row, exactly once, no `.part-` left.
fn catch_up(ws: &Workspace, tx: &SenderNode, rx: &ReceiverNode, ballast: &Path) {
    fs::remove_file(ballast).unwrap();
    ws.wait_synced(tx, rx, secs(60));
    assert_synced(tx, rx);
    assert_exactly_once(tx, rx, &[]);
    assert_nothing_quarantined(tx, rx);
    let attempts: Vec<(u64, u32)> = tx
        .batches()
        .iter()
        .filter(|b| b.attempts != 0)
        .map(|b| (b.seq, b.attempts))
        .collect();
    assert!(attempts.is_empty(), "failed attempts counted: {attempts:?}");
    assert_eq!(
        rx.work_files("spool"),
        Vec::<PathBuf>::new(),
        "spool must be empty once synced (no .part- files left)"
    );
}

#[test]
fn spool_full_answers_no_loses_nothing_and_resumes() {
    let started = Instant::now();
    let ws = Workspace::new("spool-full");
    let mut rx = ws.receiver(ReceiverConfig::default());
    let spool = rx.work_dir.join("spool");
    fs::create_dir_all(&spool).unwrap();
    // Declared after `ws`: unmounted before the workspace directory is removed.
    let Some(_tmpfs) = mount_tmpfs(&spool, "2m") else {
        return;
    };
    rx.start();
    let mut cfg = SenderConfig::new("spoolfull").table(Table::new("doc"));
    cfg.max_frame = Some(MAX_FRAME);
    cfg.frame_timeout = secs(10);
    let mut tx = ws.sender(cfg.connect(rx.addr()));
    tx.source().execute_batch(SCHEMA).unwrap();
    let mut next = 1i64;
    let mut rng = Rng::new(61);
    write_round(&tx, &mut next, &mut rng);
    tx.install();
    tx.snapshot(&[]);
    tx.start();
    ws.wait_synced(&tx, &rx, secs(60));

    // 1. Not a byte free: the first chunk of a batch already fails.
    let ballast = fill(&spool, 0);
    while_full(&ws, &mut tx, &mut rx, 5, &mut next, &mut rng);
    catch_up(&ws, &tx, &rx, &ballast);

    // 2. Three pages free: a batch runs out in its fourth chunk, which is written in
    //    part. The receiver cuts the partial chunk off again, so the part file only
    //    ever holds whole chunks while the sender retries.
    let ballast = fill(&spool, 3 * 4096);
    while_full(&ws, &mut tx, &mut rx, 5, &mut next, &mut rng);
    // Part files live only as long as the connection that writes them (the sender
    // reconnects after its chunk retries, and the closed connection's part is
    // removed), so the evidence is the receiver's refusals: chunks refused for want
    // of space at an offset past the first chunks, i.e. in a batch received in part.
    // That the part is cut back to whole chunks meanwhile is checked on the file by
    // the receiver's `spool_full_tests`.
    let refused_at: Vec<u64> = rx
        .log_text()
        .lines()
        .filter(|l| l.contains("cannot spool chunk; answering no"))
        .filter_map(|l| {
            let rest = &l[l.find("offset=")? + "offset=".len()..];
            rest.split(' ').next()?.parse().ok()
        })
        .collect();
    assert!(
        refused_at.iter().any(|&o| o >= 2 * CHUNK),
        "a batch must have been received in part before the spool ran full: refused chunk offsets {refused_at:?}"
    );
    assert!(
        refused_at.iter().all(|o| o % CHUNK == 0),
        "chunks are refused (and resent) at whole-chunk offsets: {refused_at:?}"
    );
    while_full(&ws, &mut tx, &mut rx, 2, &mut next, &mut rng);
    catch_up(&ws, &tx, &rx, &ballast);

    // 3. A resend of an applied batch (as after a lost RESULT answer) with the spool on
    //    its own file system: answered from the ledger, nothing replayed or applied.
    let node = tx.cfg.node.clone();
    let ledger = rx.ledger(&node);
    let archived = tx.work_files("archive");
    let file = archived.last().expect("archived batches");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let (_, seq, _) = gapsync_common::batch::parse_batch_file_name(&name).unwrap();
    let (size, sha) = gapsync_common::batch::sha256_file(file).unwrap();
    let opts = LinkOptions {
        max_frame: MAX_FRAME as usize,
        ..LinkOptions::default()
    };
    let me = Identity::unsigned(&node, gapsync_common::config::DEFAULT_RECEIVER_ID);
    let mut link = LinkClient::connect(rx.addr(), &me, "spool_full resend", opts).unwrap();
    link.send_file(seq, &name, &mut File::open(file).unwrap(), size, sha)
        .unwrap_or_else(|e| panic!("resend of applied {name}: {e}\n{}", rx.log_tail(20)));
    assert_eq!(link.ask_result(seq).unwrap(), ResultAnswer::Applied);
    drop(link);
    assert_eq!(rx.ledger(&node), ledger, "the ledger must not change");
    assert_eq!(rx.work_files("spool"), Vec::<PathBuf>::new());

    assert_synced(&tx, &rx);
    assert_exactly_once(&tx, &rx, &[]);
    assert_nothing_quarantined(&tx, &rx);

    // 4. A poison batch with the spool on its own file system: its `.fail1` marker is
    //    written in the spool and the file moved (copied across) into quarantine/ on
    //    the second failure; both sides quarantine it and the stream goes on.
    rx.target()
        .execute_batch("ALTER TABLE doc RENAME COLUMN body TO body_x")
        .unwrap();
    let poison_id = next;
    next += 1;
    tx.source()
        .execute(
            "INSERT INTO doc(id, rev, body) VALUES (?1, 0, ?2)",
            params![poison_id, body(poison_id, 0)],
        )
        .unwrap();
    let bad = ws.wait_for("the poison batch to be quarantined", secs(40), || {
        tx.batches().into_iter().find(|b| b.state == "quarantined")
    });
    rx.target()
        .execute_batch("ALTER TABLE doc RENAME COLUMN body_x TO body")
        .unwrap();
    // The operator's repair: the row the quarantined batch carried, by hand.
    let row: (i64, String) = tx
        .source()
        .query_row(
            "SELECT rev, body FROM doc WHERE id = ?1",
            [poison_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    rx.target()
        .execute(
            "INSERT INTO doc(id, rev, body) VALUES (?1, ?2, ?3)",
            params![poison_id, row.0, row.1],
        )
        .unwrap();
    write_round(&tx, &mut next, &mut rng);
    ws.wait_synced(&tx, &rx, secs(60));
    assert_synced(&tx, &rx);
    assert_exactly_once(&tx, &rx, &[bad.seq]);
    let q = rx.work_dir.join("quarantine").join(&bad.file);
    assert!(
        q.is_file(),
        "{} kept in the receiver's quarantine",
        bad.file
    );
    let why = fs::read_to_string(
        rx.work_dir
            .join("quarantine")
            .join(format!("{}.reason", bad.file)),
    )
    .unwrap();
    assert!(why.contains("body"), "{why}");
    assert_eq!(rx.work_files("spool"), Vec::<PathBuf>::new());
    assert!(rx.is_running() && tx.is_running());
    eprintln!(
        "spool_full: {} batches, {} refused chunks, refused at offsets {refused_at:?}, {:?}",
        tx.progress().last_cut,
        rx.log_text().matches("cannot spool chunk").count(),
        started.elapsed()
    );
    tx.stop();
    rx.stop();
}
