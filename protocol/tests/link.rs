//! Loopback tests of the link: real sockets, `LinkClient` against `serve_connection`,
//! fake receivers that misbehave, and raw senders that misbehave.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gapsync_protocol::*;
use sha2::{Digest, Sha256};

const MAX: usize = 4096;
const CHUNK: usize = MAX - HEADER_LEN;

fn opts() -> LinkOptions {
    LinkOptions {
        max_frame: MAX,
        frame_timeout: Duration::from_secs(5),
        result_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        chunk_retries: 5,
    }
}

fn server_opts() -> ServerOptions {
    ServerOptions {
        max_frame: MAX,
        idle_timeout: Duration::from_secs(5),
        frame_timeout: Duration::from_secs(5),
        hello_timeout: Duration::from_secs(5),
    }
}

fn id(node: &str) -> Identity {
    Identity::unsigned(node, "rx")
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Test handler: assembles the file, records calls, answers as configured.
#[derive(Default)]
struct Assembler {
    refuse_hello: bool,
    reject_first_chunk_attempt: bool,
    reject_end: bool,
    results: HashMap<u64, Option<bool>>,
    hellos: Vec<(String, String)>,
    seen: HashSet<(u64, u64)>,
    data_calls: Vec<(u64, u64, usize)>,
    ends: Vec<(u64, EndInfo)>,
    file: Vec<u8>,
}

impl FrameHandler for Assembler {
    fn hello(&mut self, node: &str, hello: &Hello, _message: &[u8]) -> bool {
        self.hellos.push((node.into(), hello.text.clone()));
        !self.refuse_hello
    }
    fn heartbeat(&mut self) -> bool {
        true
    }
    fn data(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> bool {
        self.data_calls.push((seq, offset, chunk.len()));
        if self.reject_first_chunk_attempt && self.seen.insert((seq, offset)) {
            return false;
        }
        if offset == 0 {
            self.file.clear();
        }
        let off = offset as usize;
        if self.file.len() != off {
            return false;
        }
        self.file.extend_from_slice(chunk);
        true
    }
    fn end(&mut self, seq: u64, info: &EndInfo) -> bool {
        self.ends.push((seq, info.clone()));
        !self.reject_end && self.file.len() as u64 == info.size && sha(&self.file) == info.sha256
    }
    fn result(&mut self, seq: u64) -> Option<bool> {
        self.results.get(&seq).copied().flatten()
    }
}

type Served<H> = JoinHandle<(H, Result<ConnEnd, ServeError>, Duration)>;

fn spawn_server<H: FrameHandler + Send + 'static>(
    mut handler: H,
    so: ServerOptions,
) -> (String, Served<H>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let join = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let start = Instant::now();
        let r = serve_connection(stream, &mut handler, so);
        (handler, r, start.elapsed())
    });
    (addr, join)
}

#[test]
fn multi_chunk_file_arrives_intact_and_results_are_answered() {
    let file = data(CHUNK * 3 + CHUNK / 2);
    let mut h = Assembler::default();
    h.results.insert(7, Some(true));
    h.results.insert(8, Some(false));
    let (addr, join) = spawn_server(h, server_opts());
    let mut c = LinkClient::connect(&addr, &id("node-1"), "sender 0.1.0", opts()).unwrap();
    c.heartbeat().unwrap();
    let name = "node-1-00000000000000000007.sql";
    c.send_file(
        7,
        name,
        &mut Cursor::new(&file),
        file.len() as u64,
        sha(&file),
    )
    .unwrap();
    assert_eq!(c.ask_result(7).unwrap(), ResultAnswer::Applied);
    assert_eq!(c.ask_result(8).unwrap(), ResultAnswer::Failed);
    drop(c);
    let (h, r, _) = join.join().unwrap();
    assert_eq!(r.unwrap(), ConnEnd::PeerClosed);
    assert_eq!(
        h.hellos,
        [("node-1".to_string(), "sender 0.1.0".to_string())]
    );
    let offsets: Vec<u64> = h.data_calls.iter().map(|c| c.1).collect();
    assert_eq!(
        offsets,
        [0, CHUNK as u64, 2 * CHUNK as u64, 3 * CHUNK as u64]
    );
    assert!(h.data_calls.iter().all(|c| c.0 == 7));
    assert_eq!(h.file, file);
    assert_eq!(sha(&h.file), sha(&file));
    assert_eq!(h.ends.len(), 1);
    assert_eq!(h.ends[0].1.name, name);
    assert_eq!(h.ends[0].1.size, file.len() as u64);
}

#[test]
fn chunk_answered_no_is_resent() {
    let file = data(CHUNK * 2 + 10);
    let h = Assembler {
        reject_first_chunk_attempt: true,
        ..Default::default()
    };
    let (addr, join) = spawn_server(h, server_opts());
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    c.send_file(
        1,
        "n-1.sql",
        &mut Cursor::new(&file),
        file.len() as u64,
        sha(&file),
    )
    .unwrap();
    drop(c);
    let (h, r, _) = join.join().unwrap();
    r.unwrap();
    let offsets: Vec<u64> = h.data_calls.iter().map(|c| c.1).collect();
    let (a, b) = (CHUNK as u64, 2 * CHUNK as u64);
    assert_eq!(offsets, [0, 0, a, a, b, b]);
    assert_eq!(h.file, file);
}

#[test]
fn end_rejected_leaves_client_usable_and_resend_works() {
    let file = data(100);
    let h = Assembler {
        reject_end: true,
        ..Default::default()
    };
    let (addr, join) = spawn_server(h, server_opts());
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    let mut f = Cursor::new(&file);
    let e = c
        .send_file(3, "n-3.sql", &mut f, 100, sha(&file))
        .unwrap_err();
    assert!(matches!(e, LinkError::EndRejected), "{e}");
    assert!(!e.is_link_fault() && !c.is_broken());
    c.heartbeat().unwrap();
    // The same handle is rewound and sent again.
    assert!(matches!(
        c.send_file(3, "n-3.sql", &mut f, 100, sha(&file)),
        Err(LinkError::EndRejected)
    ));
    drop(c);
    let (h, _, _) = join.join().unwrap();
    assert_eq!(h.ends.len(), 2);
    assert_eq!(h.data_calls, [(3, 0, 100), (3, 0, 100)]);
}

#[test]
fn empty_file_and_local_file_errors() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    c.send_file(1, "n-1.sql", &mut Cursor::new(Vec::new()), 0, sha(b""))
        .unwrap();
    let file = data(5000);
    let e = c
        .send_file(2, "n-2.sql", &mut Cursor::new(&file), 6000, sha(&file))
        .unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::FileSize {
                problem: "shorter",
                ..
            }
        ),
        "{e}"
    );
    let e = c
        .send_file(2, "n-2.sql", &mut Cursor::new(&file), 4000, sha(&file))
        .unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::FileSize {
                problem: "longer",
                ..
            }
        ),
        "{e}"
    );
    let e = c
        .send_file(2, "n-2.sql", &mut Cursor::new(&file), 5000, [0; 32])
        .unwrap_err();
    assert!(matches!(e, LinkError::FileHash { seq: 2 }), "{e}");
    let e = c
        .send_file(2, "../x", &mut Cursor::new(&file), 5000, sha(&file))
        .unwrap_err();
    assert!(matches!(e, LinkError::Frame(FrameError::BadEnd(_))), "{e}");
    assert!(!c.is_broken());
    c.send_file(2, "n-2.sql", &mut Cursor::new(&file), 5000, sha(&file))
        .unwrap();
    drop(c);
    let (h, _, _) = join.join().unwrap();
    assert_eq!(h.ends.len(), 2, "END is sent only for consistent files");
    assert_eq!(h.ends[0].1.size, 0);
    assert_eq!(h.file, file);
}

#[test]
fn hello_refused() {
    let h = Assembler {
        refuse_hello: true,
        ..Default::default()
    };
    let (addr, join) = spawn_server(h, server_opts());
    let e = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap_err();
    assert!(matches!(e, LinkError::Refused), "{e}");
    assert_eq!(join.join().unwrap().1.unwrap(), ConnEnd::HelloRefused);
}

#[test]
fn result_pending_closes_without_answer_and_is_unknown() {
    let mut h = Assembler::default();
    h.results.insert(9, None);
    let (addr, join) = spawn_server(h, server_opts());
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    let e = c.ask_result(9).unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Closed {
                kind: FrameType::Result,
                seq: 9
            }
        ),
        "{e}"
    );
    assert!(e.is_link_fault() && c.is_broken());
    assert!(matches!(c.heartbeat(), Err(LinkError::Broken)));
    assert_eq!(
        join.join().unwrap().1.unwrap(),
        ConnEnd::ResultPending { seq: 9 }
    );
}

// ---------------------------------------------------------------- fake receivers

/// A fake receiver: answers HELLO with `hello`, then calls `answer` for every frame and
/// writes what it returns (`None`: say nothing and keep reading). Returns the frame count.
fn fake_receiver(
    hello: Vec<u8>,
    mut answer: impl FnMut(&Frame) -> Option<Vec<u8>> + Send + 'static,
) -> (String, JoinHandle<Vec<FrameType>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let join = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut kinds = Vec::new();
        let f = read_frame(&mut s, MAX).unwrap();
        assert_eq!(f.kind, FrameType::Hello);
        let _ = s.write_all(&hello);
        while let Ok(f) = read_frame(&mut s, MAX) {
            kinds.push(f.kind);
            if let Some(bytes) = answer(&f) {
                let _ = s.write_all(&bytes);
            }
        }
        kinds
    });
    (addr, join)
}

#[test]
fn garbage_answer_to_hello_is_a_link_fault() {
    let (addr, join) = fake_receiver(vec![0x41], |_| None);
    let e = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Garbage {
                kind: FrameType::Hello,
                byte: 0x41,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_link_fault());
    join.join().unwrap();
}

#[test]
fn garbage_answers_to_data_exhaust_retries() {
    let (addr, join) = fake_receiver(vec![YES], |_| Some(vec![0x41]));
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    let file = data(10);
    let e = c
        .send_file(1, "n-1.sql", &mut Cursor::new(&file), 10, sha(&file))
        .unwrap_err();
    match e {
        LinkError::ChunkRejected {
            seq: 1,
            offset: 0,
            attempts: 6,
            last: Answer::Garbage(0x41),
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(c.is_broken());
    drop(c);
    assert_eq!(join.join().unwrap(), vec![FrameType::Data; 6]);
}

#[test]
fn garbage_or_missing_result_answer_is_unknown_not_failed() {
    let (addr, join) = fake_receiver(vec![YES], |_| Some(vec![0x41]));
    let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
    let e = c.ask_result(5).unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Garbage {
                kind: FrameType::Result,
                seq: 5,
                byte: 0x41
            }
        ),
        "{e}"
    );
    drop(c);
    join.join().unwrap();

    let (addr, join) = fake_receiver(vec![YES], |_| None);
    let short = LinkOptions {
        result_timeout: Duration::from_millis(300),
        ..opts()
    };
    let mut c = LinkClient::connect(&addr, &id("n"), "", short).unwrap();
    let start = Instant::now();
    let e = c.ask_result(5).unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Timeout {
                kind: FrameType::Result,
                seq: 5,
                ..
            }
        ),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(c);
    join.join().unwrap();
}

#[test]
fn silent_receiver_times_out_data() {
    let (addr, join) = fake_receiver(vec![YES], |_| None);
    let short = LinkOptions {
        frame_timeout: Duration::from_millis(300),
        ..opts()
    };
    let mut c = LinkClient::connect(&addr, &id("n"), "", short).unwrap();
    let file = data(10);
    let e = c
        .send_file(1, "n-1.sql", &mut Cursor::new(&file), 10, sha(&file))
        .unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Timeout {
                kind: FrameType::Data,
                ..
            }
        ),
        "{e}"
    );
    assert!(c.is_broken());
    drop(c);
    join.join().unwrap();
}

#[test]
fn receiver_closing_is_a_link_fault() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let join = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_frame(&mut s, MAX).unwrap();
    });
    let e = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap_err();
    assert!(
        matches!(
            e,
            LinkError::Closed {
                kind: FrameType::Hello,
                ..
            }
        ),
        "{e}"
    );
    join.join().unwrap();
}

#[test]
fn flood_of_bytes_is_never_taken_for_answers() {
    for flood_byte in [YES, NO, 0x41] {
        let mut hello = vec![YES];
        hello.extend(std::iter::repeat_n(flood_byte, 100_000));
        let (addr, join) = fake_receiver(hello, |_| Some(vec![YES]));
        let mut c = LinkClient::connect(&addr, &id("n"), "", opts()).unwrap();
        thread::sleep(Duration::from_millis(200));
        let e = c.ask_result(1).unwrap_err();
        assert!(matches!(e, LinkError::UnexpectedBytes), "{e}");
        assert!(c.is_broken());
        let file = data(10);
        assert!(matches!(
            c.send_file(1, "n-1.sql", &mut Cursor::new(&file), 10, sha(&file)),
            Err(LinkError::Broken)
        ));
        drop(c);
        assert!(
            join.join().unwrap().is_empty(),
            "no frame sent after the flood"
        );
    }
}

#[test]
fn connect_failures() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    assert!(matches!(
        LinkClient::connect(&addr, &id("n"), "", opts()),
        Err(LinkError::Connect { .. })
    ));
    assert!(matches!(
        LinkClient::connect("no-such-host.invalid:1", &id("n"), "", opts()),
        Err(LinkError::Resolve { .. } | LinkError::Connect { .. })
    ));
}

// ---------------------------------------------------------------- raw senders

fn raw(kind: FrameType, node: &str, seq: u64, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::new(kind, node, seq, offset, payload.to_vec())
        .encode(&mut out)
        .unwrap();
    out
}

fn hello(node: &str) -> Vec<u8> {
    let payload = Hello::encode(node, "rx", 1, [1; 16], "raw", None).unwrap();
    raw(FrameType::Hello, node, 0, 0, &payload)
}

fn connect_raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn send_expect(s: &mut TcpStream, frame: &[u8], expected: Answer) {
    s.write_all(frame).unwrap();
    assert_eq!(read_answer(s), expected);
}

/// The server must close without writing an answer byte.
fn expect_closed_without_answer(s: &mut TcpStream) {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected close without answer, got {other:?} {b:?}"),
    }
}

#[test]
fn first_frame_must_be_hello() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    s.write_all(&raw(FrameType::Heartbeat, "n", 0, 0, b""))
        .unwrap();
    expect_closed_without_answer(&mut s);
    let r = join.join().unwrap().1;
    assert!(
        matches!(r, Err(ServeError::NotHello(FrameType::Heartbeat))),
        "{r:?}"
    );
}

#[test]
fn node_must_stay_the_same() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    send_expect(
        &mut s,
        &raw(FrameType::Heartbeat, "a", 0, 0, b""),
        Answer::Yes,
    );
    s.write_all(&raw(FrameType::Data, "b", 1, 0, b"xyz"))
        .unwrap();
    expect_closed_without_answer(&mut s);
    let (h, r, _) = join.join().unwrap();
    assert!(matches!(r, Err(ServeError::NodeMismatch { .. })), "{r:?}");
    assert!(h.data_calls.is_empty());
}

#[test]
fn other_protocol_version_is_refused() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    send_expect(
        &mut s,
        &raw(FrameType::Hello, "a", 0, 0, b"gapsync/2 future"),
        Answer::No,
    );
    expect_closed_without_answer(&mut s);
    let (h, r, _) = join.join().unwrap();
    assert_eq!(r.unwrap(), ConnEnd::HelloRefused);
    assert!(h.hellos.is_empty());
}

#[test]
fn corrupt_data_payload_is_answered_no_and_the_link_goes_on() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    let mut d = raw(FrameType::Data, "a", 1, 0, b"chunk");
    d[HEADER_LEN + 2] ^= 4;
    send_expect(&mut s, &d, Answer::No);
    let mut e = raw(
        FrameType::End,
        "a",
        1,
        0,
        &EndInfo::new(5, [0; 32], "a-1.sql").encode().unwrap(),
    );
    e[HEADER_LEN] ^= 1;
    send_expect(&mut s, &e, Answer::No);
    send_expect(
        &mut s,
        &raw(FrameType::Heartbeat, "a", 0, 0, b""),
        Answer::Yes,
    );
    send_expect(
        &mut s,
        &raw(FrameType::End, "a", 1, 0, b"not an end payload"),
        Answer::No,
    );
    drop(s);
    let (h, r, _) = join.join().unwrap();
    assert_eq!(r.unwrap(), ConnEnd::PeerClosed);
    assert!(h.data_calls.is_empty() && h.ends.is_empty());
}

#[test]
fn corrupt_result_payload_closes_instead_of_answering_failed() {
    let mut h = Assembler::default();
    h.results.insert(1, Some(true));
    let (addr, join) = spawn_server(h, server_opts());
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    let mut r = raw(FrameType::Result, "a", 1, 0, b"x");
    r[HEADER_LEN] ^= 1;
    s.write_all(&r).unwrap();
    expect_closed_without_answer(&mut s);
    let r = join.join().unwrap().1;
    assert!(
        matches!(r, Err(ServeError::UnanswerableCorrupt(_))),
        "{r:?}"
    );
}

#[test]
fn corrupt_or_oversized_header_closes_without_answer() {
    // A DATA frame with one bit flipped in the type byte (3 -> 7) and one made RESULT.
    for (pos, mask) in [(4usize, 4u8), (4, 6), (40, 1), (70, 0x80)] {
        let (addr, join) = spawn_server(Assembler::default(), server_opts());
        let mut s = connect_raw(&addr);
        send_expect(&mut s, &hello("a"), Answer::Yes);
        let mut d = raw(FrameType::Data, "a", 1, 0, b"chunk");
        d[pos] ^= mask;
        s.write_all(&d).unwrap();
        expect_closed_without_answer(&mut s);
        match join.join().unwrap() {
            (h, Err(ServeError::Frame(e)), _) => {
                assert!(e.is_header_corruption(), "{e}");
                assert!(h.data_calls.is_empty() && h.results.is_empty());
            }
            (_, other, _) => panic!("byte {pos}: {other:?}"),
        }
    }
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    s.write_all(&raw(FrameType::Data, "a", 1, 0, &vec![0; MAX]))
        .unwrap_or(());
    expect_closed_without_answer(&mut s);
    let r = join.join().unwrap().1;
    assert!(
        matches!(r, Err(ServeError::Frame(FrameError::TooLarge { .. }))),
        "{r:?}"
    );
}

#[test]
fn dribbling_sender_is_disconnected() {
    let so = ServerOptions {
        frame_timeout: Duration::from_millis(500),
        ..server_opts()
    };
    let (addr, join) = spawn_server(Assembler::default(), so);
    let mut s = connect_raw(&addr);
    let frame = hello("a");
    let writer = thread::spawn(move || {
        for b in frame {
            if s.write_all(&[b]).is_err() {
                return true;
            }
            thread::sleep(Duration::from_millis(200));
        }
        false
    });
    let (h, r, elapsed) = join.join().unwrap();
    assert!(matches!(r, Err(ServeError::FrameTimeout(_))), "{r:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(h.hellos.is_empty());
    assert!(
        writer.join().unwrap(),
        "the server must close the connection"
    );
}

#[test]
fn idle_connection_is_closed() {
    let so = ServerOptions {
        idle_timeout: Duration::from_millis(300),
        ..server_opts()
    };
    let (addr, join) = spawn_server(Assembler::default(), so);
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    let (_, r, elapsed) = join.join().unwrap();
    assert_eq!(r.unwrap(), ConnEnd::IdleTimeout);
    assert!(elapsed < Duration::from_secs(3));
    expect_closed_without_answer(&mut s);
}

/// A peer that connects and sends nothing, or only part of a HELLO, is closed once
/// `hello_timeout` has passed, even though the idle and frame timeouts are longer.
#[test]
fn no_hello_within_hello_timeout_is_closed() {
    for partial in [0usize, 20] {
        let so = ServerOptions {
            hello_timeout: Duration::from_millis(400),
            idle_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(30),
            ..server_opts()
        };
        let (addr, join) = spawn_server(Assembler::default(), so);
        let mut s = connect_raw(&addr);
        s.write_all(&hello("a")[..partial]).unwrap();
        let (h, r, elapsed) = join.join().unwrap();
        assert!(matches!(r, Err(ServeError::HelloTimeout(_))), "{r:?}");
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
        assert!(h.hellos.is_empty());
    }
}

/// HELLO from an older sender (`gapsync/1`), a malformed HELLO and a second HELLO on an
/// open session: refused or closed, and the handler never sees them.
#[test]
fn old_malformed_and_second_hellos_are_refused() {
    for payload in [
        b"gapsync/1 sender 0.1.0".to_vec(),
        b"gapsync/2".to_vec(),
        b"GET / HTTP/1.1".to_vec(),
    ] {
        let (addr, join) = spawn_server(Assembler::default(), server_opts());
        let mut s = connect_raw(&addr);
        send_expect(
            &mut s,
            &raw(FrameType::Hello, "a", 0, 0, &payload),
            Answer::No,
        );
        let (h, r, _) = join.join().unwrap();
        assert!(matches!(r, Ok(ConnEnd::HelloRefused)), "{r:?}");
        assert!(h.hellos.is_empty());
    }
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    send_expect(&mut s, &hello("a"), Answer::Yes);
    s.write_all(&hello("a")).unwrap();
    let (h, r, _) = join.join().unwrap();
    assert!(r.is_err(), "{r:?}");
    assert_eq!(h.hellos.len(), 1);
}

/// Before HELLO nothing bigger than a HELLO is read: a first frame declaring more than
/// `MAX_HELLO_FRAME` is closed from its header, without an answer.
#[test]
fn an_oversized_first_frame_is_closed_from_its_header() {
    let (addr, join) = spawn_server(Assembler::default(), server_opts());
    let mut s = connect_raw(&addr);
    let big = raw(
        FrameType::Hello,
        "a",
        0,
        0,
        &vec![b'x'; gapsync_protocol::server::MAX_HELLO_FRAME],
    );
    s.write_all(&big[..HEADER_LEN]).unwrap();
    let (h, r, _) = join.join().unwrap();
    assert!(matches!(r, Err(ServeError::Frame(_))), "{r:?}");
    assert!(h.hellos.is_empty());
}
