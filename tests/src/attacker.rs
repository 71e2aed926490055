//! A hostile client for the trust-boundary suite (`tests/tests/e2e/trust_boundary.rs`).
//!
//! It speaks raw frames over a plain TCP connection: frames are encoded with
//! [`Frame::encode`], and the HELLO and END payloads are built here byte by byte from
//! the layouts in `gapsync_protocol`'s crate documentation ("Authentication",
//! `gapsync/2`), never through `LinkClient` or the protocol's own payload encoders, so a
//! mistake in those cannot hide a hole.
//!
//! What an attacker may hold is up to the test: nothing (an unsigned HELLO), a HELLO
//! signed by a key the receiver does not trust, or a "captured" HELLO (the test signs a
//! fresh, valid HELLO with the node's private key and hands only that to the attacker).
//! END signatures are only ever produced by tests that model a *trusted* sender.
//!
//! [`IdleCrowd`] holds idle connections from other loopback addresses (127.0.0.2, ...):
//! std cannot bind a client socket, so a small `python3` process does that.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gapsync_common::sign::BatchSigner;
use gapsync_protocol::{Frame, FrameType};

/// The protocol tag of a `gapsync/2` HELLO.
pub const TAG: &[u8] = b"gapsync/2";
/// Domain prefix of the signed HELLO message.
pub const HELLO_DOMAIN: &[u8] = b"gapsync/2 HELLO\n";
/// Domain prefix of the signed END message.
pub const END_DOMAIN: &[u8] = b"gapsync/2 END\n";
/// Scheme byte: unsigned.
pub const SCHEME_NONE: u8 = 0;
/// Scheme byte: Ed25519.
pub const SCHEME_ED25519: u8 = 1;

/// What came back for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `0xFF`.
    Yes,
    /// `0x00`.
    No,
    /// Any other byte.
    Garbage(u8),
    /// The receiver closed the connection (EOF or reset) without answering.
    Closed,
    /// Nothing within the attacker's answer wait (the connection is still open; a late
    /// answer may still arrive and would be read as the next frame's).
    Silent,
}

/// Seconds since the Unix epoch, this machine's clock.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 16 bytes never returned before by this process (pid, counter, clock).
pub fn fresh_nonce() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&std::process::id().to_be_bytes());
    out[4..12].copy_from_slice(&n.to_be_bytes());
    out[12..].copy_from_slice(&nanos.to_be_bytes());
    out
}

/// The fields of a HELLO payload (layout in the protocol's crate docs).
#[derive(Debug, Clone)]
pub struct HelloSpec {
    /// Normally `gapsync/2` (9 bytes).
    pub tag: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub nonce: [u8; 16],
    pub receiver_id: String,
    pub text: String,
}

impl HelloSpec {
    /// A HELLO for `receiver_id`, time now, a fresh nonce.
    pub fn new(receiver_id: &str) -> HelloSpec {
        HelloSpec {
            tag: TAG.to_vec(),
            time: now_secs(),
            nonce: fresh_nonce(),
            receiver_id: receiver_id.to_owned(),
            text: "attacker".to_owned(),
        }
    }

    /// The payload up to (not including) the signature.
    pub fn body(&self, scheme: u8, key_id: [u8; 8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.tag);
        p.push(scheme);
        p.extend_from_slice(&self.time.to_be_bytes());
        p.extend_from_slice(&self.nonce);
        p.extend_from_slice(&key_id);
        p.push(u8::try_from(self.receiver_id.len()).unwrap_or(u8::MAX));
        p.extend_from_slice(self.receiver_id.as_bytes());
        p.extend_from_slice(&u16::try_from(self.text.len()).unwrap_or(0).to_be_bytes());
        p.extend_from_slice(self.text.as_bytes());
        p
    }

    /// An unsigned HELLO (scheme 0, key id zero, no signature).
    pub fn unsigned(&self) -> Vec<u8> {
        self.body(SCHEME_NONE, [0; 8])
    }

    /// A HELLO of `node` signed by `key` (scheme 1): with the node's trusted key, the
    /// "captured" HELLO.
    pub fn signed(&self, node: &str, key: &BatchSigner) -> Vec<u8> {
        let mut p = self.body(SCHEME_ED25519, key.key_id_bytes());
        let sig = key.sign_link(&hello_message(node, &p));
        p.extend_from_slice(&sig);
        p
    }

    /// Scheme 1 with whatever key id and signature the attacker chose.
    pub fn with_signature(&self, key_id: [u8; 8], signature: [u8; 64]) -> Vec<u8> {
        let mut p = self.body(SCHEME_ED25519, key_id);
        p.extend_from_slice(&signature);
        p
    }
}

/// The signed HELLO message: domain, node length, node, payload without signature.
pub fn hello_message(node: &str, body: &[u8]) -> Vec<u8> {
    let mut m = HELLO_DOMAIN.to_vec();
    m.push(u8::try_from(node.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(body);
    m
}

/// An END payload up to (not including) the signature.
pub fn end_body(size: u64, sha256: &[u8; 32], name: &str, scheme: u8, key_id: [u8; 8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(sha256);
    p.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_be_bytes());
    p.extend_from_slice(name.as_bytes());
    p.push(scheme);
    if scheme == SCHEME_ED25519 {
        p.extend_from_slice(&key_id);
    }
    p
}

/// The signed END message: domain, node length, node, seq, payload without signature.
pub fn end_message(node: &str, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut m = END_DOMAIN.to_vec();
    m.push(u8::try_from(node.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// An unsigned END (scheme 0).
pub fn end_unsigned(size: u64, sha256: &[u8; 32], name: &str) -> Vec<u8> {
    end_body(size, sha256, name, SCHEME_NONE, [0; 8])
}

/// An END of (`node`, `seq`) signed by `key`: what a sender holding that key sends.
pub fn end_signed(
    node: &str,
    seq: u64,
    size: u64,
    sha256: &[u8; 32],
    name: &str,
    key: &BatchSigner,
) -> Vec<u8> {
    let mut p = end_body(size, sha256, name, SCHEME_ED25519, key.key_id_bytes());
    let sig = key.sign_link(&end_message(node, seq, &p));
    p.extend_from_slice(&sig);
    p
}

/// An END with scheme 1 and an arbitrary key id and signature (e.g. one copied from a
/// captured END of other bytes).
pub fn end_with_signature(
    size: u64,
    sha256: &[u8; 32],
    name: &str,
    key_id: [u8; 8],
    signature: [u8; 64],
) -> Vec<u8> {
    let mut p = end_body(size, sha256, name, SCHEME_ED25519, key_id);
    p.extend_from_slice(&signature);
    p
}

/// Size and SHA-256 of a file.
pub fn file_sha256(path: &Path) -> (u64, [u8; 32]) {
    gapsync_common::batch::sha256_file(path)
        .unwrap_or_else(|e| panic!("sha256 of {}: {e}", path.display()))
}

/// One raw TCP connection to the receiver, framing as node [`Attacker::node`].
#[derive(Debug)]
pub struct Attacker {
    stream: TcpStream,
    /// The node id put into every frame header.
    pub node: String,
    /// How long to wait for an answer byte before [`Reply::Silent`].
    pub answer_wait: Duration,
}

impl Attacker {
    /// Connects to `addr`; frames will carry `node`. Panics if the connect fails.
    pub fn connect(addr: &str, node: &str) -> Attacker {
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("attacker cannot connect to {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        Attacker {
            stream,
            node: node.to_owned(),
            answer_wait: Duration::from_secs(10),
        }
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> String {
        self.stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Writes raw bytes; false if the connection is gone.
    pub fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Reads one answer byte within [`Attacker::answer_wait`].
    pub fn read_reply(&mut self) -> Reply {
        let _ = self.stream.set_read_timeout(Some(self.answer_wait));
        let mut b = [0u8; 1];
        loop {
            return match self.stream.read(&mut b) {
                Ok(0) => Reply::Closed,
                Ok(_) => match b[0] {
                    0xFF => Reply::Yes,
                    0x00 => Reply::No,
                    x => Reply::Garbage(x),
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Reply::Silent
                }
                Err(_) => Reply::Closed,
            };
        }
    }

    /// Sends one frame (header by [`Frame::encode`]) and reads its answer.
    pub fn send(&mut self, kind: FrameType, seq: u64, offset: u64, payload: &[u8]) -> Reply {
        let mut buf = Vec::with_capacity(74 + payload.len());
        Frame::new(kind, self.node.clone(), seq, offset, payload.to_vec())
            .encode(&mut buf)
            .unwrap_or_else(|e| panic!("encoding a {kind} frame: {e}"));
        if !self.send_raw(&buf) {
            return Reply::Closed;
        }
        self.read_reply()
    }

    pub fn hello(&mut self, payload: &[u8]) -> Reply {
        self.send(FrameType::Hello, 0, 0, payload)
    }

    pub fn heartbeat(&mut self) -> Reply {
        self.send(FrameType::Heartbeat, 0, 0, &[])
    }

    pub fn data(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> Reply {
        self.send(FrameType::Data, seq, offset, chunk)
    }

    pub fn end(&mut self, seq: u64, payload: &[u8]) -> Reply {
        self.send(FrameType::End, seq, 0, payload)
    }

    pub fn result(&mut self, seq: u64) -> Reply {
        self.send(FrameType::Result, seq, 0, &[])
    }

    /// DATA frames of `bytes` in chunks of `chunk` from offset 0. `Yes` if every chunk
    /// was answered `Yes`, otherwise the first other reply.
    pub fn upload(&mut self, seq: u64, bytes: &[u8], chunk: usize) -> Reply {
        let mut offset = 0usize;
        for c in bytes.chunks(chunk.max(1)) {
            let r = self.data(seq, offset as u64, c);
            if r != Reply::Yes {
                return r;
            }
            offset += c.len();
        }
        Reply::Yes
    }

    /// True when the receiver closed the connection (EOF or reset); false while it is
    /// open and silent. A byte that arrives is consumed.
    pub fn is_closed(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let r = match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        let _ = self.stream.set_nonblocking(false);
        r
    }

    /// Polls [`Attacker::is_closed`] for up to `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.is_closed() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes both directions.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Idle TCP connections from other source addresses (127.0.0.2, ...), held by a
/// `python3` child process. Dropping it kills the process.
#[derive(Debug)]
pub struct IdleCrowd {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

const CROWD_PY: &str = r#"
import select, socket, sys, time
host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for ip in sys.argv[5:]:
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((ip, 0))
        s.connect((host, port))
        socks.append((ip, s))
print("ready", flush=True)
closed = [False] * len(socks)
end = time.time() + hold
while time.time() < end:
    live = [s for (i, (_, s)) in enumerate(socks) if not closed[i]]
    r, _, _ = select.select([sys.stdin] + live, [], [], 0.05)
    for x in r:
        if x is sys.stdin:
            sys.stdin.readline()
            end = 0
            continue
        i = [s for (_, s) in socks].index(x)
        try:
            if not x.recv(1):
                closed[i] = True
        except OSError:
            closed[i] = True
for ip in sys.argv[5:]:
    c = sum(1 for (i, (a, _)) in enumerate(socks) if a == ip and closed[i])
    o = sum(1 for (i, (a, _)) in enumerate(socks) if a == ip and not closed[i])
    print("addr %s closed %d open %d" % (ip, c, o), flush=True)
"#;

/// Per source address: (address, connections the receiver closed, still open).
pub type CrowdReport = Vec<(String, usize, usize)>;

impl IdleCrowd {
    /// Opens `per_address` idle connections to `addr` from each of `from` and returns
    /// once all are connected. They are held (sending nothing) for at most `hold`.
    pub fn open(addr: &str, from: &[&str], per_address: usize, hold: Duration) -> IdleCrowd {
        let (host, port) = addr
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("address {addr} has no port"));
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(CROWD_PY)
            .arg(host)
            .arg(port)
            .arg(per_address.to_string())
            .arg(format!("{}", hold.as_secs_f64()))
            .args(from)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 for the idle crowd: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        assert_eq!(
            line.trim(),
            "ready",
            "the idle crowd could not connect from {from:?}"
        );
        IdleCrowd {
            child,
            stdin,
            stdout,
        }
    }

    /// Stops holding and reports, per source address, how many connections the
    /// receiver closed and how many were still open.
    pub fn finish(mut self) -> CrowdReport {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"stop\n");
        }
        let mut out = Vec::new();
        let mut line = String::new();
        while {
            line.clear();
            self.stdout.read_line(&mut line).unwrap_or(0) > 0
        } {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["addr", ip, "closed", c, "open", o] = f[..] {
                out.push((
                    ip.to_owned(),
                    c.parse().unwrap_or(usize::MAX),
                    o.parse().unwrap_or(usize::MAX),
                ));
            }
        }
        let _ = self.child.wait();
        out
    }
}

impl Drop for IdleCrowd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
