//! Hostile and broken senders against a running receiver: an oversized frame, a zstd
//! bomb, an endless statement, a slow-dribbling sender and 100 idle connections of one
//! address (at most four stay open). Each is refused with a clear log line while a good sender
//! keeps getting its batches applied.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gapsync_common::batch::{self, BatchHeader, BatchKind, BatchWriter};
use gapsync_protocol::{Frame, FrameType, Identity, LinkClient, LinkOptions, ResultAnswer};
use gapsync_tests::plant::METER_READING;
use gapsync_tests::*;
use rusqlite::params;

const MAX_DECOMPRESSED: u64 = 256 * 1024;
const MAX_STATEMENT_LEN: u64 = 4096;

/// A well-formed batch of `node`, seq 1, holding `stmts`.
fn crafted_batch(dir: &Path, node: &str, stmts: &[String], compress: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let n = stmts.len() as u64;
    let header = BatchHeader {
        node: node.to_owned(),
        seq: 1,
        created: batch::format_created(chrono::Utc::now()),
        dialect: "sqlite".to_owned(),
        kind: BatchKind::Changes,
        changes: Some((1, i64::try_from(n).unwrap())),
        statements: n,
    };
    let mut w = BatchWriter::create(dir, header, compress, 19).unwrap();
    for s in stmts {
        w.push(s).unwrap();
    }
    w.finish().unwrap().path
}

/// Push a batch file through the real protocol client twice (the sender's "send once
/// more" after a failure); returns the two RESULT answers.
fn push_twice(addr: &str, path: &Path) -> Vec<ResultAnswer> {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let (node, seq, _) = batch::parse_batch_file_name(&name).unwrap();
    let (size, sha) = batch::sha256_file(path).unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut link = LinkClient::connect(
            addr,
            &unsigned(&node),
            "hostile test",
            LinkOptions::default(),
        )
        .unwrap();
        let mut f = File::open(path).unwrap();
        link.send_file(seq, &name, &mut f, size, sha).unwrap();
        answers.push(link.ask_result(seq).unwrap());
    }
    answers
}

/// An identity without a key, for the `insecure` receivers of these tests.
fn unsigned(node: &str) -> Identity {
    Identity::unsigned(node, gapsync_common::config::DEFAULT_RECEIVER_ID)
}

/// The `.reason` text of a quarantined file of the receiver.
fn quarantine_reason(rx: &ReceiverNode, name: &str) -> String {
    let dir = rx.work_files("quarantine");
    assert!(
        dir.iter().any(|p| p.file_name().unwrap() == name),
        "{name} not in quarantine: {dir:?}"
    );
    let p = dir
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{name}.reason"))
        .unwrap_or_else(|| panic!("no .reason for {name}: {dir:?}"));
    std::fs::read_to_string(p).unwrap()
}

/// True when the peer closed `s` (EOF or reset); false while it is open and silent.
fn closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    r
}

/// Lines of `log` that contain every one of `what`.
fn count(log: &str, what: &[&str]) -> usize {
    log.lines()
        .filter(|l| what.iter().all(|w| l.contains(w)))
        .count()
}

#[test]
fn hostile_senders_are_refused_while_a_good_sender_is_served() {
    let ws = Workspace::new("hostile");
    let mut rx = ws.receiver(ReceiverConfig {
        frame_timeout: Some(secs(1)),
        max_connections: Some(150),
        limits: vec![
            ("max_decompressed", MAX_DECOMPRESSED),
            ("max_statement_len", MAX_STATEMENT_LEN),
        ],
        ..ReceiverConfig::default()
    });
    rx.start();
    let addr = rx.addr().to_owned();

    // The good sender, with changes streaming in throughout.
    let mut tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("meter_reading"))
            .connect(&addr),
    );
    tx.source().execute_batch(METER_READING).unwrap();
    tx.install();
    tx.snapshot(&["meter_reading"]);
    tx.start();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let c = tx.source();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut id = 1i64;
            while !stop.load(Ordering::SeqCst) {
                c.execute(
                    "INSERT INTO meter_reading(id, meter, value) VALUES (?1, 'good', 1.5)",
                    params![id],
                )
                .unwrap();
                id += 1;
                std::thread::sleep(ms(20));
            }
            id
        })
    };
    ws.wait_until("the good sender's first batch", secs(20), || {
        rx.last_seq("plant1") >= 1
    });

    // (d) A slow-dribbling client, in the background: one byte of a HELLO every 200 ms.
    let dribbler = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut hello = Vec::new();
            Frame::new(
                FrameType::Hello,
                "dribbler",
                0,
                0,
                b"gapsync/1 dribbling".to_vec(),
            )
            .encode(&mut hello)
            .unwrap();
            let mut s = TcpStream::connect(&addr).unwrap();
            let t0 = Instant::now();
            for (i, b) in hello.iter().enumerate() {
                if s.write_all(&[*b]).is_err() || closed(&mut s) {
                    return (i, t0.elapsed());
                }
                std::thread::sleep(ms(200));
            }
            (hello.len(), t0.elapsed())
        })
    };

    // (a) A frame whose header declares more than max_frame (1 MiB): closed, no answer.
    let mut big = Vec::new();
    Frame::new(FrameType::Hello, "bigframe", 0, 0, vec![b'x'; 2 << 20])
        .encode(&mut big)
        .unwrap();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&big[..frame::HEADER_LEN]).unwrap();
    s.set_read_timeout(Some(secs(10))).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("oversized frame was answered with {:#04x}", b[0]),
    }
    drop(s);

    // (b) A zstd bomb: a small .sql.zst that inflates past max_decompressed.
    let crafted = ws.path().join("crafted");
    let row = format!(
        "INSERT INTO \"meter_reading\" (\"id\", \"meter\", \"value\") VALUES (900001, '{}', 1.5);",
        "b".repeat(100)
    );
    let bomb = crafted_batch(&crafted, "bomber", &vec![row; 20_000], true);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 64 * 1024);
    assert_eq!(
        push_twice(&addr, &bomb),
        [ResultAnswer::Failed, ResultAnswer::Failed]
    );
    let bomb_name = bomb.file_name().unwrap().to_str().unwrap().to_owned();
    let reason = quarantine_reason(&rx, &bomb_name);
    assert!(
        reason.contains(&format!("exceeds the limit of {MAX_DECOMPRESSED} bytes")),
        "bomb reason: {reason}"
    );

    // (c) An endless statement: one line far longer than max_statement_len.
    let endless = format!(
        "INSERT INTO \"meter_reading\" (\"id\", \"meter\", \"value\") VALUES (900002, '{}', 1.5);",
        "e".repeat(100_000)
    );
    let endless = crafted_batch(&crafted, "endless", &[endless], false);
    assert_eq!(
        push_twice(&addr, &endless),
        [ResultAnswer::Failed, ResultAnswer::Failed]
    );
    let endless_name = endless.file_name().unwrap().to_str().unwrap().to_owned();
    let reason = quarantine_reason(&rx, &endless_name);
    assert!(
        reason.contains("verification failed"),
        "endless reason: {reason}"
    );
    assert!(reason.contains("line 9"), "endless reason: {reason}");

    // (d) The dribbler was cut off after about frame_timeout.
    let (sent, took) = dribbler.join().unwrap();
    assert!(
        sent < 40,
        "dribbler sent {sent} bytes in {took:?} before being closed"
    );

    // (e) 100 idle connections from one address while the good sender keeps getting
    // batches applied: an address holds at most MAX_UNAUTHENTICATED_PER_PEER
    // unauthenticated connections, each new one closes its oldest.
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let before = rx.last_seq("plant1");
    ws.wait_until(
        "the good sender to get batches applied past 100 idle connections",
        secs(20),
        || rx.last_seq("plant1") >= before + 3,
    );
    let open = idle.iter_mut().map(|s| !closed(s)).filter(|o| *o).count();
    assert!(
        open <= gapsync_receiver::sessions::MAX_UNAUTHENTICATED_PER_PEER,
        "{open} idle connections of one address still open"
    );

    stop.store(true, Ordering::SeqCst);
    let last_id = writer.join().unwrap();
    ws.wait_synced(&tx, &rx, secs(30));
    let (tables, rows) = assert_synced(&tx, &rx);
    assert!(tables >= 1 && rows >= usize::try_from(last_id - 1).unwrap());
    let hostile_rows: i64 = rx
        .target()
        .query_row(
            "SELECT count(*) FROM meter_reading WHERE id >= 900000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        hostile_rows, 0,
        "nothing of a refused batch may be executed"
    );
    assert!(rx.ledger_seqs("bomber").is_empty());
    assert_eq!(rx.quarantined_seqs("bomber"), [1]);
    assert_eq!(rx.quarantined_seqs("endless"), [1]);
    drop(idle);

    // One clear log line per refusal.
    // The oversized frame and the dribbler were strangers (no HELLO accepted): their
    // faults are logged at debug only (a flood of them must not drown the alarms);
    // that they were closed is checked above.
    let log = rx.log_text();
    assert_eq!(
        count(&log, &["exceeds max_frame"]) + count(&log, &["dribbling"]),
        0,
        "a stranger's faults are not logged one line each\n{log}"
    );
    assert_eq!(
        count(
            &log,
            &[
                "batch failed twice: dropped to quarantine",
                "verification failed"
            ]
        ),
        2,
        "quarantine log lines\n{log}"
    );
    assert_eq!(
        count(&log, &["batch refused: verification failed"]),
        4,
        "refusal log lines (two attempts each)\n{log}"
    );
    tx.stop();
}

#[test]
fn idle_unauthenticated_connections_make_room_for_the_newest() {
    let ws = Workspace::new("hostile-maxconn");
    let mut rx = ws.receiver(ReceiverConfig {
        max_connections: Some(5),
        ..ReceiverConfig::default()
    });
    rx.start();
    let addr = rx.addr().to_owned();
    let per_peer = gapsync_receiver::sessions::MAX_UNAUTHENTICATED_PER_PEER;
    let mut conns: Vec<TcpStream> = Vec::new();
    for _ in 0..100 {
        conns.push(TcpStream::connect(&addr).unwrap());
    }
    let excess = conns.len() - per_peer;
    let mut is_closed = vec![false; conns.len()];
    ws.wait_until("the excess idle connections to be closed", secs(20), || {
        for (i, s) in conns.iter_mut().enumerate() {
            if !is_closed[i] {
                is_closed[i] = closed(s);
            }
        }
        is_closed.iter().filter(|c| **c).count() >= excess
    });
    assert!(
        is_closed[excess..].iter().all(|c| !c),
        "the newest connections of the address stay open (the oldest made room)"
    );
    // One summary line, not one line per closed connection (a flood must not drown
    // the alarms).
    ws.wait_until("the summary line", secs(15), || {
        count(
            &rx.log_text(),
            &["unauthenticated connections closed or refused to make room"],
        ) >= 1
    });

    // While the idle ones are still held, a good sender is served.
    let mut tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("meter_reading"))
            .connect(&addr),
    );
    tx.source().execute_batch(METER_READING).unwrap();
    tx.install();
    tx.snapshot(&["meter_reading"]);
    tx.source()
        .execute(
            "INSERT INTO meter_reading(id, meter, value) VALUES (1, 'm', 2.5)",
            [],
        )
        .unwrap();
    tx.start();
    ws.wait_synced(&tx, &rx, secs(30));
    assert_synced(&tx, &rx);
    tx.stop();
    drop(conns);
}
