//! A fake receiver speaking raw frames (`frame`).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::*;

// ------------------------------------------------------------------------ fake receiver

/// Frame layout facts a fake receiver needs (see `protocol/src/lib.rs`).
pub mod frame {
    /// Length of the fixed frame header.
    pub const HEADER_LEN: usize = 74;
    pub const HELLO: u8 = 1;
    pub const HEARTBEAT: u8 = 2;
    pub const DATA: u8 = 3;
    pub const END: u8 = 4;
    pub const RESULT: u8 = 5;

    /// Upper-case name of a frame type code.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            HELLO => "HELLO",
            HEARTBEAT => "HEARTBEAT",
            DATA => "DATA",
            END => "END",
            RESULT => "RESULT",
            _ => "?",
        }
    }
}

/// A frame as a [`FakeReceiver`] read it (header fields only; the checksums are not
/// checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFrame {
    /// Connection number (0, 1, ... in accept order).
    pub conn: u64,
    /// Frame number within its connection (0 is the HELLO).
    pub index: u64,
    /// Type code (byte 4), see [`frame`].
    pub kind: u8,
    pub seq: u64,
    pub offset: u64,
    pub payload_len: u32,
}

/// The answer function of a [`FakeReceiver`]: gets the frame and, when proxying, the
/// real receiver's answer byte (None: no answer, it closed or timed out); returns the
/// bytes to write back (empty: no answer, the connection stays open) or None to close
/// the connection.
pub type FakeAnswer = dyn Fn(&FakeFrame, Option<u8>) -> Option<Vec<u8>> + Send + Sync;

/// A misbehaving receiver for link tests: a `TcpListener` on `127.0.0.1:0` whose
/// connection threads read whole frames (74-byte header, payload length at bytes
/// 54..58, big-endian) and write whatever the answer function returns for each frame:
/// any bytes (a real answer, garbage, a flood), nothing at all (the connection stays
/// open and reading: the sender sees a timeout), or close the connection. Every frame
/// read is recorded.
///
/// [`FakeReceiver::proxy`] puts it in front of a real receiver (a gap that garbles
/// answers): each frame is forwarded, the real answer byte read, and the answer
/// function decides what the sender gets.
///
/// Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FakeReceiver {
    pub(crate) addr: String,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) frames: Arc<Mutex<Vec<FakeFrame>>>,
    pub(crate) conns: Arc<Mutex<Vec<TcpStream>>>,
    pub(crate) accept: Option<JoinHandle<()>>,
}

impl FakeReceiver {
    /// Listen and serve until dropped; `answer(frame)`: the bytes written after each
    /// frame (empty: no answer), None: close the connection.
    pub fn start<F>(answer: F) -> FakeReceiver
    where
        F: Fn(&FakeFrame) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Self::serve(
            None,
            Arc::new(move |f: &FakeFrame, _: Option<u8>| answer(f)),
        )
    }

    /// Forward every connection to the real receiver at `upstream`; `answer(frame,
    /// real answer)` decides what the sender gets (see [`FakeAnswer`]).
    pub fn proxy<F>(upstream: &str, answer: F) -> FakeReceiver
    where
        F: Fn(&FakeFrame, Option<u8>) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Self::serve(Some(upstream.to_owned()), Arc::new(answer))
    }

    pub(crate) fn serve(upstream: Option<String>, answer: Arc<FakeAnswer>) -> FakeReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake receiver: bind");
        let addr = listener
            .local_addr()
            .expect("fake receiver: local_addr")
            .to_string();
        listener
            .set_nonblocking(true)
            .expect("fake receiver: set_nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, frames, conns) =
                (Arc::clone(&stop), Arc::clone(&frames), Arc::clone(&conns));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(ms(10));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let up = match &upstream {
                        None => None,
                        Some(a) => match TcpStream::connect(a) {
                            Ok(u) => Some(u),
                            Err(_) => continue, // receiver down: the sender sees a close
                        },
                    };
                    if let Ok(mut all) = conns.lock() {
                        all.extend(stream.try_clone().ok());
                        all.extend(up.as_ref().and_then(|u| u.try_clone().ok()));
                    }
                    let (frames, answer) = (Arc::clone(&frames), Arc::clone(&answer));
                    let conn = n;
                    n += 1;
                    std::thread::spawn(move || {
                        fake_serve(stream, up, conn, &frames, answer.as_ref());
                    });
                }
            })
        };
        FakeReceiver {
            addr,
            stop,
            frames,
            conns,
            accept: Some(accept),
        }
    }

    /// `host:port` to put in the sender's `[link] connect`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every frame read so far, in arrival order.
    pub fn frames(&self) -> Vec<FakeFrame> {
        self.frames.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// How many frames of type `kind` were read.
    pub fn count(&self, kind: u8) -> usize {
        self.frames().iter().filter(|f| f.kind == kind).count()
    }

    /// The frames read, as `conn:TYPE(seq)` words, for messages.
    pub fn describe(&self) -> String {
        self.frames()
            .iter()
            .map(|f| format!("{}:{}({})", f.conn, frame::name(f.kind), f.seq))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(crate) fn fake_serve(
    mut stream: TcpStream,
    mut upstream: Option<TcpStream>,
    conn: u64,
    frames: &Mutex<Vec<FakeFrame>>,
    answer: &FakeAnswer,
) {
    let mut index = 0u64;
    let mut header = [0u8; frame::HEADER_LEN];
    loop {
        if stream.read_exact(&mut header).is_err() {
            break;
        }
        let be = |r: std::ops::Range<usize>| {
            header[r]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        let len = be(54..58);
        if len > 64 << 20 {
            break; // not a gapsync frame
        }
        let mut payload = vec![0u8; len as usize];
        if stream.read_exact(&mut payload).is_err() {
            break;
        }
        let f = FakeFrame {
            conn,
            index,
            kind: header[4],
            seq: be(38..46),
            offset: be(46..54),
            payload_len: len as u32,
        };
        index += 1;
        if let Ok(mut all) = frames.lock() {
            all.push(f.clone());
        }
        let real = upstream.as_mut().and_then(|u| {
            let mut b = [0u8; 1];
            let ok = u.write_all(&header).is_ok()
                && u.write_all(&payload).is_ok()
                && u.set_read_timeout(Some(secs(300))).is_ok()
                && u.read_exact(&mut b).is_ok();
            ok.then_some(b[0])
        });
        match answer(&f, real) {
            None => break,
            Some(reply) => {
                if !reply.is_empty()
                    && stream
                        .write_all(&reply)
                        .and_then(|()| stream.flush())
                        .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    if let Some(u) = upstream {
        let _ = u.shutdown(Shutdown::Both);
    }
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(all) = self.conns.lock() {
            for s in all.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}
