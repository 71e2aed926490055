//! The receiver side of the link: [`serve_connection`] drives a [`FrameHandler`].

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::auth::Hello;
use crate::wire::{
    self, EndInfo, Frame, FrameError, FrameHeader, FrameType, MAX_MAX_FRAME, MIN_MAX_FRAME,
    read_frame, write_answer,
};

/// What the receiver does with each verified frame. Every `bool` becomes the answer byte
/// (`true` = `0xFF`, `false` = `0x00`).
pub trait FrameHandler {
    /// A well-formed HELLO from `node`; `message` is the exact byte string its
    /// signature covers (see the crate docs, "Authentication"). The handler decides
    /// whether the peer is authenticated and welcome: `true`: alive and willing (the
    /// session belongs to `node` from now on); `false`: refuse (the connection is then
    /// closed). Nothing else of the peer reaches the handler before this returned `true`.
    fn hello(&mut self, node: &str, hello: &Hello, message: &[u8]) -> bool;
    /// A HEARTBEAT. `true`: alive; `false`: refuse (the sender stops and raises an alarm).
    fn heartbeat(&mut self) -> bool;
    /// A DATA chunk of batch `seq` at `offset`. `true`: stored; `false`: resend it.
    /// A chunk at offset 0 may start a batch anew (the sender restarts after faults).
    fn data(&mut self, seq: u64, offset: u64, chunk: &[u8]) -> bool;
    /// END of batch `seq`. `true` only if the file is complete, matches `info.size` and
    /// `info.sha256`, and is durably spooled; `false`: the sender resends the whole batch.
    fn end(&mut self, seq: u64, info: &EndInfo) -> bool;
    /// RESULT for batch `seq`. `Some(true)`: applied (now or before); `Some(false)`: the
    /// apply failed deterministically; `None`: not known yet (e.g. a transient failure is
    /// still being retried and the wait limit passed): the connection is closed without
    /// an answer, and the sender reconnects and asks again.
    fn result(&mut self, seq: u64) -> Option<bool>;
}

/// Largest first frame (HELLO) read before a peer is authenticated: a header plus the
/// largest HELLO payload (9 + 1 + 8 + 16 + 8 + 1 + 64 + 2 + 256 + 64 bytes) with room.
pub const MAX_HELLO_FRAME: usize = crate::wire::HEADER_LEN + 512;

/// Settings of [`serve_connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Largest accepted frame (header + payload). Default 1 MiB.
    pub max_frame: usize,
    /// Close the connection if no frame starts within this. Default 120 s.
    pub idle_timeout: Duration,
    /// A started frame must be complete within this (so a sender dribbling bytes cannot
    /// hold the receiver); also the write timeout of answers. Default 60 s.
    pub frame_timeout: Duration,
    /// The first frame (HELLO) must be complete within this of the start of
    /// [`serve_connection`], so an unauthenticated peer holds its slot only briefly.
    /// Default 10 s.
    pub hello_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_frame: wire::DEFAULT_MAX_FRAME,
            idle_timeout: Duration::from_secs(120),
            frame_timeout: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(10),
        }
    }
}

/// How a connection ended in good order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEnd {
    /// The sender closed the connection between frames.
    PeerClosed,
    /// No frame started within `idle_timeout`.
    IdleTimeout,
    /// HELLO was refused (answered `0x00`: handler said no, a malformed HELLO, or
    /// another protocol version).
    HelloRefused,
    /// The handler returned `None` for RESULT of `seq`; closed without an answer.
    ResultPending {
        /// The batch asked about.
        seq: u64,
    },
}

/// Why [`serve_connection`] closed a connection because of a fault (no answer was sent
/// for the offending frame).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad [`ServerOptions`].
    #[error("invalid server options: {0}")]
    Options(String),
    /// A corrupt header, a truncated frame or a read error: closed without answering.
    #[error("closing link: {0}")]
    Frame(#[source] FrameError),
    /// A started frame did not complete within `frame_timeout`.
    #[error("closing link: frame not complete within {0:?} (stalled or dribbling sender)")]
    FrameTimeout(Duration),
    /// The first frame was not HELLO.
    #[error("closing link: first frame must be HELLO, got {0}")]
    NotHello(FrameType),
    /// No complete HELLO within `hello_timeout`.
    #[error("closing link: no HELLO within {0:?}")]
    HelloTimeout(Duration),
    /// A frame named another node than the HELLO did.
    #[error("closing link: frame from node {got:?} on a connection opened by node {expected:?}")]
    NodeMismatch {
        /// Node of the HELLO.
        expected: String,
        /// Node of the offending frame.
        got: String,
    },
    /// A corrupt payload in a frame whose `0x00` answer would be misread (HELLO and
    /// HEARTBEAT: "refuse"; RESULT: "failed"): closed without answering instead.
    #[error("closing link: payload checksum mismatch in {0}")]
    UnanswerableCorrupt(FrameHeader),
    /// Socket error (setting options, writing an answer).
    #[error("link i/o error: {0}")]
    Io(#[from] io::Error),
}

/// What the next read produced.
enum Incoming {
    Frame(Frame),
    PayloadCorrupt(FrameHeader),
    Closed,
    Idle,
}

/// Reads through a socket, failing with `TimedOut` once `deadline` has passed.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "frame deadline passed",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Reads the next frame. `hello_by`: the deadline of the first frame (HELLO), which
/// bounds both the wait for its first byte and its completion.
fn receive(
    stream: &TcpStream,
    opts: &ServerOptions,
    hello_by: Option<Instant>,
) -> Result<Incoming, ServeError> {
    let idle = match hello_by {
        Some(by) => {
            let left = by.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ServeError::HelloTimeout(opts.hello_timeout));
            }
            left.min(opts.idle_timeout)
        }
        None => opts.idle_timeout,
    };
    stream.set_read_timeout(Some(idle))?;
    let mut first = [0u8; 1];
    loop {
        let mut s = stream;
        match s.read(&mut first) {
            Ok(0) => return Ok(Incoming::Closed),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if wire::is_timeout(&e) && hello_by.is_some() => {
                return Err(ServeError::HelloTimeout(opts.hello_timeout));
            }
            Err(e) if wire::is_timeout(&e) => return Ok(Incoming::Idle),
            Err(e) => return Err(ServeError::Io(e)),
        }
    }
    let frame_by = Instant::now() + opts.frame_timeout;
    // Which deadline ends the frame: the HELLO's when it comes first.
    let hello_bound = hello_by.filter(|by| *by < frame_by);
    let deadline = hello_bound.unwrap_or(frame_by);
    let mut reader = (&first[..]).chain(DeadlineReader { stream, deadline });
    // Before HELLO nothing bigger than a HELLO is read (a stranger's megabyte is
    // refused from its header).
    let limit = if hello_by.is_some() {
        opts.max_frame.min(MAX_HELLO_FRAME)
    } else {
        opts.max_frame
    };
    match read_frame(&mut reader, limit) {
        Ok(frame) => Ok(Incoming::Frame(frame)),
        Err(FrameError::PayloadCorrupt(h)) => Ok(Incoming::PayloadCorrupt(h)),
        Err(FrameError::Timeout) if hello_bound.is_some() => {
            Err(ServeError::HelloTimeout(opts.hello_timeout))
        }
        Err(FrameError::Timeout) => Err(ServeError::FrameTimeout(opts.frame_timeout)),
        Err(e) => Err(ServeError::Frame(e)),
    }
}

/// Serves one sender connection until it ends; every frame gets exactly one answer byte.
///
/// Rules:
/// - the first frame must be HELLO ([`ServeError::NotHello`]); every later frame must
///   carry the HELLO's node ([`ServeError::NodeMismatch`]);
/// - a corrupt header (or truncated frame, or a frame not complete within
///   `frame_timeout`) closes the connection without an answer: a damaged header cannot
///   be trusted (a flipped bit could turn DATA into RESULT);
/// - a payload checksum failure in DATA or END is answered `0x00` (resend) and the
///   connection goes on; in HELLO, HEARTBEAT or RESULT, where `0x00` would mean
///   "refuse" or "failed", it closes the connection without an answer instead;
/// - a malformed END payload (intact checksum) is answered `0x00`;
/// - otherwise the handler's `bool` is the answer; `None` from
///   [`FrameHandler::result`] closes without an answer.
pub fn serve_connection(
    stream: TcpStream,
    handler: &mut impl FrameHandler,
    opts: ServerOptions,
) -> Result<ConnEnd, ServeError> {
    if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&opts.max_frame) {
        return Err(ServeError::Options(format!(
            "max_frame {} outside {MIN_MAX_FRAME}..={MAX_MAX_FRAME}",
            opts.max_frame
        )));
    }
    if opts.idle_timeout.is_zero() || opts.frame_timeout.is_zero() || opts.hello_timeout.is_zero() {
        return Err(ServeError::Options("timeouts must be above zero".into()));
    }
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(opts.frame_timeout))?;
    let mut session: Option<String> = None;
    let hello_by = Instant::now() + opts.hello_timeout;
    let answer = |yes: bool| write_answer(&mut &stream, yes);
    loop {
        let first = session.is_none().then_some(hello_by);
        let (header, frame) = match receive(&stream, &opts, first) {
            Ok(Incoming::Frame(f)) => (f.header(), Some(f)),
            Ok(Incoming::PayloadCorrupt(h)) => (h, None),
            Ok(Incoming::Closed) => return Ok(ConnEnd::PeerClosed),
            Ok(Incoming::Idle) => return Ok(ConnEnd::IdleTimeout),
            Err(e) => {
                if session.is_some() {
                    tracing::warn!(peer = %peer, node = session.as_deref(), error = %e, "link fault");
                } else {
                    // Before HELLO: a stranger's noise (the handler logs refusals, rate
                    // limited); one line each would let a flood drown the alarms.
                    tracing::debug!(peer = %peer, error = %e, "link fault before HELLO");
                }
                return Err(e);
            }
        };
        let (kind, seq) = (header.kind, header.seq);
        let violation = match &session {
            None if kind != FrameType::Hello => Some(ServeError::NotHello(kind)),
            Some(n) if *n != header.node => Some(ServeError::NodeMismatch {
                expected: n.clone(),
                got: header.node.clone(),
            }),
            _ => None,
        };
        if let Some(e) = violation {
            if session.is_some() {
                tracing::warn!(peer = %peer, node = %header.node, seq, kind = %kind, error = %e, "protocol violation");
            } else {
                tracing::debug!(peer = %peer, node = %header.node, seq, kind = %kind, error = %e, "protocol violation before HELLO");
            }
            return Err(e);
        }
        let Some(frame) = frame else {
            if matches!(kind, FrameType::Data | FrameType::End) {
                tracing::warn!(peer = %peer, node = %header.node, seq, kind = %kind, offset = header.offset, "payload checksum mismatch, answering no");
                answer(false)?;
                continue;
            }
            let e = ServeError::UnanswerableCorrupt(header);
            tracing::warn!(peer = %peer, seq, kind = %kind, error = %e, "link fault");
            return Err(e);
        };
        tracing::debug!(peer = %peer, node = %frame.node, seq, kind = %kind, offset = frame.offset, len = frame.payload.len(), "frame");
        let yes = match kind {
            FrameType::Hello if session.is_some() => {
                // A second HELLO on an authenticated connection: nothing may re-open
                // a session under another identity; close.
                let e = ServeError::NotHello(FrameType::Hello);
                tracing::warn!(peer = %peer, node = %frame.node, "second HELLO on one connection: closing");
                return Err(e);
            }
            FrameType::Hello => {
                let yes = match Hello::decode(&frame.payload) {
                    Ok(hello) => {
                        let message = hello.message(&frame.node, &frame.payload);
                        handler.hello(&frame.node, &hello, &message)
                    }
                    Err(e) => {
                        if matches!(e, FrameError::OldPeer(_)) {
                            // An older sender after an upgrade: the operator must know.
                            tracing::warn!(peer = %peer, node = %frame.node, error = %e, "HELLO refused");
                        } else {
                            tracing::debug!(peer = %peer, node = %frame.node, error = %e, "HELLO refused: malformed");
                        }
                        false
                    }
                };
                if !yes {
                    answer(false)?;
                    return Ok(ConnEnd::HelloRefused);
                }
                session = Some(frame.node);
                true
            }
            FrameType::Heartbeat => handler.heartbeat(),
            FrameType::Data => handler.data(seq, frame.offset, &frame.payload),
            FrameType::End => match EndInfo::decode(&frame.payload) {
                Ok(info) => handler.end(seq, &info),
                Err(e) => {
                    tracing::warn!(peer = %peer, node = %frame.node, seq, error = %e, "malformed END, answering no");
                    false
                }
            },
            FrameType::Result => match handler.result(seq) {
                Some(applied) => applied,
                None => {
                    tracing::info!(peer = %peer, node = %frame.node, seq, "result not known yet, closing without answer");
                    return Ok(ConnEnd::ResultPending { seq });
                }
            },
        };
        answer(yes)?;
    }
}
