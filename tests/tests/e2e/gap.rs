//! The forward isolation device emulator (`gapsync-gap`) between the real sender and
//! receiver: a clean link with latency, a link with every fault kind at a steady rate,
//! and a receiver answering garbage through the gap.
//!
//! Included from `e2e.rs` (one test binary shares the set-up and its helpers).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use gapsync_tests::plant::{self, METER_READING};
use gapsync_tests::suite::{GapRig, assert_exactly_once};
use gapsync_tests::*;

/// [`GapRig::start`] with `meter_reading` and `gap_args`.
fn gap_rig(name: &str, rx_cfg: ReceiverConfig, cfg: SenderConfig, gap_args: &[&str]) -> GapRig {
    GapRig::start(
        name,
        rx_cfg,
        cfg.table(Table::new("meter_reading")),
        METER_READING,
        gap_args,
    )
}

/// `rounds` rounds of `per_round` random meter changes, `pause` apart.
fn stream(tx: &SenderNode, seed: u64, rounds: usize, per_round: usize, pause: std::time::Duration) {
    let src = tx.source();
    let mut rng = Rng::new(seed);
    let mut next = 1i64;
    for _ in 0..rounds {
        for _ in 0..per_round {
            let hi = next.max(2);
            plant::meter_step(&src, &mut rng, &mut next, 1, hi).unwrap();
        }
        std::thread::sleep(pause);
    }
}

/// No faults, 50 ms one-way latency: a few hundred changes arrive identical.
#[test]
fn gap_latency_no_faults() {
    let GapRig {
        ws,
        mut rx,
        gap,
        mut tx,
    } = gap_rig(
        "gap-clean",
        ReceiverConfig::default(),
        SenderConfig::new("gapclean"),
        &["--latency", "50ms"],
    );
    stream(&tx, 11, 10, 40, ms(100));
    ws.wait_synced(&tx, &rx, secs(40));
    let (tables, rows) = assert_synced(&tx, &rx);
    assert!(tables >= 1 && rows > 0, "{tables} tables, {rows} rows");
    assert_exactly_once(&tx, &rx, &[]);
    assert_eq!(gap.count("fault:"), 0, "no faults configured");
    tx.stop();
    rx.stop();
}

/// Every fault kind at a steady rate: ~1000 changes arrive identical, every seq is in
/// the ledger exactly once and nothing is quarantined.
#[test]
fn gap_all_faults() {
    let mut cfg = SenderConfig::new("gapfaults");
    cfg.frame_timeout = secs(1);
    cfg.result_timeout = secs(2);
    cfg.connect_timeout = secs(2);
    let rx_cfg = ReceiverConfig {
        result_wait: secs(1),
        ..ReceiverConfig::default()
    };
    let GapRig {
        ws,
        mut rx,
        gap,
        mut tx,
    } = gap_rig(
        "gap-faults",
        rx_cfg,
        cfg,
        &[
            "--faults",
            "reset,flip,swallow,stall",
            "--fault-every",
            "5",
            "--stall",
            "500ms",
            "--seed",
            "7",
        ],
    );
    stream(&tx, 12, 25, 40, ms(250));
    ws.wait_synced(&tx, &rx, secs(45));
    assert_synced(&tx, &rx);
    assert_exactly_once(&tx, &rx, &[]);
    let faults = gap.count("fault:");
    let kinds: Vec<(&str, usize)> = ["reset", "flip", "swallow", "stall"]
        .iter()
        .map(|k| (*k, gap.count(&format!("fault: {k}"))))
        .collect();
    eprintln!(
        "gap_all_faults: {faults} faults {kinds:?}, {} connections, {} batches",
        gap.count("connection conn="),
        tx.progress().last_cut
    );
    assert!(
        faults >= 3,
        "expected the gap to inject faults, got {faults}\n{}",
        gap.log_text()
    );
    tx.stop();
    rx.stop();
}

/// A receiver answering a garbage byte: the gap passes nothing back, closes both sides
/// and logs the byte.
#[test]
fn gap_garbage_answer_closes_both() {
    let ws = Workspace::new("gap-garbage");
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap().to_string();
    let gap = GapNode::start(&ws.path().join("gap"), &fake_addr, &[]);
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = fake.accept().unwrap();
        s.set_read_timeout(Some(secs(10))).unwrap();
        let mut header = [0u8; 74];
        s.read_exact(&mut header).unwrap();
        s.write_all(&[0x42]).unwrap();
        // The gap must close its side: EOF (or a reset), no more bytes.
        let mut rest = [0u8; 16];
        matches!(s.read(&mut rest), Ok(0) | Err(_))
    });

    let mut sender = TcpStream::connect(gap.addr()).unwrap();
    sender.set_read_timeout(Some(secs(10))).unwrap();
    let mut frame = [0u8; 74];
    frame[..4].copy_from_slice(b"GSF1");
    frame[4] = 2; // HEARTBEAT, empty payload (length 0 at 54..58)
    sender.write_all(&frame).unwrap();
    let mut answer = [0u8; 4];
    match sender.read(&mut answer) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the sender got {:?} through the gap", &answer[..n]),
    }
    assert!(
        receiver.join().unwrap(),
        "the gap did not close the receiver side"
    );
    ws.wait_until("the gap to log the garbage answer", secs(5), || {
        gap.count("garbage answer") == 1 && gap.count("byte=0x42") == 1
    });
}
