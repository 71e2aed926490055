//! The sender side of the link: [`LinkClient`] and [`Backoff`].

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::auth::{Hello, LinkSigner, validate_receiver_id};
use crate::wire::{
    self, Answer, EndInfo, FrameError, FrameType, HEADER_LEN, MAX_MAX_FRAME, MIN_MAX_FRAME,
    encode_header, read_answer, read_up_to, validate_node,
};

/// Settings of a [`LinkClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// Largest frame (header + payload) to send; DATA chunks are `max_frame - 74` bytes.
    /// Must be at least [`MIN_MAX_FRAME`] and not above the receiver's limit.
    pub max_frame: usize,
    /// How long to wait for the answer to HELLO, HEARTBEAT, DATA and END (and the write
    /// timeout for every frame). Default 30 s.
    pub frame_timeout: Duration,
    /// How long to wait for the answer to RESULT (the receiver answers when the apply
    /// transaction has ended). Default 120 s.
    pub result_timeout: Duration,
    /// TCP connect timeout per resolved address. Default 10 s.
    pub connect_timeout: Duration,
    /// How many times a chunk answered "no" (or garbage) is resent before giving up, so a
    /// chunk is sent at most `1 + chunk_retries` times. Default 5.
    pub chunk_retries: u32,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            max_frame: wire::DEFAULT_MAX_FRAME,
            frame_timeout: Duration::from_secs(30),
            result_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            chunk_retries: 5,
        }
    }
}

impl LinkOptions {
    fn validate(&self) -> Result<(), LinkError> {
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&self.max_frame) {
            return Err(LinkError::Options(format!(
                "max_frame {} outside {MIN_MAX_FRAME}..={MAX_MAX_FRAME}",
                self.max_frame
            )));
        }
        for (name, d) in [
            ("frame_timeout", self.frame_timeout),
            ("result_timeout", self.result_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(LinkError::Options(format!("{name} must be above zero")));
            }
        }
        Ok(())
    }
}

/// Who the sender is and whom it talks to: the node id, the receiver id it signs into
/// its HELLO (the receiver's `[link] id`), and the node key that signs HELLO and END
/// (`None`: unsigned, accepted only by an `insecure` receiver for a node without keys).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The node id (see [`validate_node`]).
    pub node: String,
    /// The receiver id (1..=64 of `[A-Za-z0-9._-]`).
    pub receiver_id: String,
    /// The node key.
    pub signer: Option<Arc<dyn LinkSigner>>,
}

impl Identity {
    /// An identity without a key (for `insecure` receivers and tests).
    pub fn unsigned(node: &str, receiver_id: &str) -> Identity {
        Identity {
            node: node.to_owned(),
            receiver_id: receiver_id.to_owned(),
            signer: None,
        }
    }
}

/// Answer of the receiver to RESULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultAnswer {
    /// `0xFF`: the batch is applied (now or before).
    Applied,
    /// A real `0x00`: the apply failed deterministically.
    Failed,
}

/// Errors of the [`LinkClient`].
///
/// After any error for which [`LinkError::is_link_fault`] is true the client is unusable
/// (further calls return [`LinkError::Broken`]): drop it, reconnect with [`Backoff`] and
/// start the current batch again from offset 0 (or ask for its result again).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Bad [`LinkOptions`].
    #[error("invalid link options: {0}")]
    Options(String),
    /// Invalid input (node id, file name) or a frame that would exceed `max_frame`.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The receiver address does not resolve.
    #[error("cannot resolve receiver address {addr:?}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// No resolved address accepted the connection.
    #[error("cannot connect to receiver {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// Cause (of the last attempt).
        source: io::Error,
    },
    /// HELLO or HEARTBEAT answered `0x00`: the receiver refuses (stop and raise an alarm).
    #[error(
        "receiver refused the session (0x00 to HELLO/HEARTBEAT): check that its [[trust]] has this node's current .pub line, that [link] receiver_id here equals the receiver's [link] id, that both clocks agree within its hello_max_skew, and that both run gapsync/2; the receiver's log names the reason"
    )]
    Refused,
    /// END answered `0x00`: the file did not arrive intact; resend the whole batch.
    /// The client stays usable.
    #[error("receiver rejected the batch at END (0x00): resend the whole batch")]
    EndRejected,
    /// No answer within the timeout.
    #[error("no answer to {kind} frame (seq {seq}) within {timeout:?}")]
    Timeout {
        /// Frame type that was not answered.
        kind: FrameType,
        /// Its sequence number.
        seq: u64,
        /// The timeout in force.
        timeout: Duration,
    },
    /// The connection ended before the answer.
    #[error("connection closed before the answer to {kind} frame (seq {seq})")]
    Closed {
        /// Frame type that was not answered.
        kind: FrameType,
        /// Its sequence number.
        seq: u64,
    },
    /// The answer byte was neither `0xFF` nor `0x00`.
    #[error("garbage answer 0x{byte:02x} to {kind} frame (seq {seq})")]
    Garbage {
        /// Frame type.
        kind: FrameType,
        /// Its sequence number.
        seq: u64,
        /// The byte received.
        byte: u8,
    },
    /// The receiver sent bytes when no answer was due (the link is out of step).
    #[error("receiver sent bytes when no answer was due")]
    UnexpectedBytes,
    /// A DATA chunk was not accepted after all retries.
    #[error(
        "chunk at offset {offset} of batch {seq} not accepted after {attempts} attempts (last answer: {last})"
    )]
    ChunkRejected {
        /// Batch sequence number.
        seq: u64,
        /// Offset of the chunk.
        offset: u64,
        /// How many times it was sent.
        attempts: u32,
        /// The last answer.
        last: Answer,
    },
    /// Reading or seeking the batch file failed. The client stays usable.
    #[error("reading the file of batch {seq}: {source}")]
    File {
        /// Batch sequence number.
        seq: u64,
        /// Cause.
        source: io::Error,
    },
    /// The file is shorter or longer than the declared size. The client stays usable.
    #[error("the file of batch {seq} is {problem} than the declared {size} bytes")]
    FileSize {
        /// Batch sequence number.
        seq: u64,
        /// Declared size.
        size: u64,
        /// `"shorter"` or `"longer"`.
        problem: &'static str,
    },
    /// The bytes read from the file do not hash to the declared SHA-256 (file changed?).
    /// END was not sent. The client stays usable.
    #[error("the file of batch {seq} does not match the declared sha256; END not sent")]
    FileHash {
        /// Batch sequence number.
        seq: u64,
    },
    /// Other socket error.
    #[error("link i/o error: {0}")]
    Io(#[source] io::Error),
    /// The client had a link fault before; reconnect.
    #[error("link client unusable after an earlier link fault; reconnect")]
    Broken,
}

impl LinkError {
    /// True if the link itself failed and the client must be dropped and reconnected:
    /// everything except `Options`, `Frame`, `Refused`, `EndRejected`, `File`,
    /// `FileSize` and `FileHash`.
    pub fn is_link_fault(&self) -> bool {
        !matches!(
            self,
            LinkError::Options(_)
                | LinkError::Frame(_)
                | LinkError::Refused
                | LinkError::EndRejected
                | LinkError::File { .. }
                | LinkError::FileSize { .. }
                | LinkError::FileHash { .. }
        )
    }
}

/// A received answer byte (timeouts and closes are already errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Yes,
    No,
    Garbage(u8),
}

/// Sender side of one link connection.
///
/// Every method sends one frame (or a batch of them) and reads exactly one answer byte
/// per frame. Before each frame the socket is checked for bytes the receiver sent when
/// no answer was due; any such byte is a link fault ([`LinkError::UnexpectedBytes`]),
/// so a flood of bytes can never be taken for answers to later frames.
///
/// **RESULT rule**: only a real `0x00` to RESULT means "the apply failed"
/// ([`ResultAnswer::Failed`]). A garbled byte, a timeout or a closed connection is an
/// `Err` meaning "result unknown": reconnect and ask again. The receiver answers repeated
/// asks from its ledger, so asking again is always safe; counting a lost answer as a
/// failure would quarantine a batch that may well have been applied.
#[derive(Debug)]
pub struct LinkClient {
    stream: TcpStream,
    node: String,
    signer: Option<Arc<dyn LinkSigner>>,
    opts: LinkOptions,
    broken: bool,
}

impl LinkClient {
    /// Connects to `addr` (`host:port`, every resolved address tried in turn with
    /// `connect_timeout`), sets TCP_NODELAY and sends HELLO: the current time, a fresh
    /// nonce from `/dev/urandom`, the receiver id and `hello_text`, signed with the
    /// identity's key (see the crate docs, "Authentication").
    ///
    /// Yes: connected. No: [`LinkError::Refused`]. Garbage, timeout or close: a link
    /// fault error (reconnect later).
    pub fn connect(
        addr: &str,
        id: &Identity,
        hello_text: &str,
        opts: LinkOptions,
    ) -> Result<LinkClient, LinkError> {
        opts.validate()?;
        let node = id.node.as_str();
        validate_node(node)?;
        validate_receiver_id(&id.receiver_id)?;
        let mut nonce = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut nonce))
            .map_err(LinkError::Io)?;
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let payload = Hello::encode(
            node,
            &id.receiver_id,
            time,
            nonce,
            hello_text,
            id.signer.as_deref(),
        )?;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| LinkError::Resolve {
                addr: addr.to_owned(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, opts.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| LinkError::Connect {
            addr: addr.to_owned(),
            source: last,
        })?;
        stream.set_nodelay(true).map_err(LinkError::Io)?;
        stream
            .set_write_timeout(Some(opts.frame_timeout))
            .map_err(LinkError::Io)?;
        let mut client = LinkClient {
            stream,
            node: node.to_owned(),
            signer: id.signer.clone(),
            opts,
            broken: false,
        };
        let frame = client.frame_bytes(FrameType::Hello, 0, 0, &payload)?;
        match client.exchange(&frame, FrameType::Hello, 0, client.opts.frame_timeout)? {
            Reply::Yes => {
                tracing::debug!(node, addr, "link connected");
                Ok(client)
            }
            Reply::No => Err(LinkError::Refused),
            Reply::Garbage(byte) => Err(client.fault(LinkError::Garbage {
                kind: FrameType::Hello,
                seq: 0,
                byte,
            })),
        }
    }

    /// The node id this client speaks for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The options in force.
    pub fn options(&self) -> &LinkOptions {
        &self.opts
    }

    /// True after a link fault: the client must be dropped.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends HEARTBEAT. Yes: `Ok`. No: [`LinkError::Refused`]. Anything else: link fault.
    pub fn heartbeat(&mut self) -> Result<(), LinkError> {
        let frame = self.frame_bytes(FrameType::Heartbeat, 0, 0, &[])?;
        match self.exchange(&frame, FrameType::Heartbeat, 0, self.opts.frame_timeout)? {
            Reply::Yes => Ok(()),
            Reply::No => Err(LinkError::Refused),
            Reply::Garbage(byte) => Err(self.fault(LinkError::Garbage {
                kind: FrameType::Heartbeat,
                seq: 0,
                byte,
            })),
        }
    }

    /// Sends batch `seq`: the file as DATA chunks of `max_frame - 74` bytes, then END with
    /// `size`, `sha256` and `name`.
    ///
    /// The file is read from position 0 (it is seeked there first, so the same handle can
    /// be passed again to resend the batch) and exactly `size` bytes are sent; memory use
    /// is bounded by one frame. A chunk answered No or garbage is resent up to
    /// `chunk_retries` times ([`LinkError::ChunkRejected`] after that). Before END the
    /// client checks that the file had exactly `size` bytes ([`LinkError::FileSize`]) and
    /// that they hash to `sha256` ([`LinkError::FileHash`]); END is then not sent.
    ///
    /// END Yes: `Ok` (the file is durably spooled at the receiver). END No:
    /// [`LinkError::EndRejected`]: resend the whole batch. Timeout, close, garbage to END:
    /// link fault: reconnect and send the batch again from offset 0.
    pub fn send_file<F: Read + Seek + ?Sized>(
        &mut self,
        seq: u64,
        name: &str,
        file: &mut F,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<(), LinkError> {
        if self.broken {
            return Err(LinkError::Broken);
        }
        let mut end = EndInfo::new(size, sha256, name);
        if let Some(signer) = &self.signer {
            end.sign(&self.node, seq, signer.as_ref())?;
        }
        let end = end.encode()?;
        let end_frame = self.frame_bytes(FrameType::End, seq, 0, &end)?;
        let file_err = |source| LinkError::File { seq, source };
        file.seek(SeekFrom::Start(0)).map_err(file_err)?;

        let chunk_max = (self.opts.max_frame - HEADER_LEN) as u64;
        let mut buf = vec![0u8; HEADER_LEN + chunk_max.min(size) as usize];
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        while offset < size {
            let len = chunk_max.min(size - offset) as usize;
            let chunk = &mut buf[HEADER_LEN..HEADER_LEN + len];
            if read_up_to(file, chunk).map_err(file_err)? < len {
                return Err(LinkError::FileSize {
                    seq,
                    size,
                    problem: "shorter",
                });
            }
            hasher.update(&*chunk);
            let header = encode_header(FrameType::Data, &self.node, seq, offset, chunk)?;
            buf[..HEADER_LEN].copy_from_slice(&header);
            self.send_chunk(&buf[..HEADER_LEN + len], seq, offset)?;
            offset += len as u64;
        }
        if read_up_to(file, &mut [0u8; 1]).map_err(file_err)? > 0 {
            return Err(LinkError::FileSize {
                seq,
                size,
                problem: "longer",
            });
        }
        if hasher.finalize()[..] != sha256[..] {
            return Err(LinkError::FileHash { seq });
        }
        match self.exchange(&end_frame, FrameType::End, seq, self.opts.frame_timeout)? {
            Reply::Yes => {
                tracing::debug!(node = %self.node, seq, size, "batch sent and spooled");
                Ok(())
            }
            Reply::No => Err(LinkError::EndRejected),
            Reply::Garbage(byte) => Err(self.fault(LinkError::Garbage {
                kind: FrameType::End,
                seq,
                byte,
            })),
        }
    }

    /// Asks whether batch `seq` was applied (waits up to `result_timeout`).
    ///
    /// Yes: [`ResultAnswer::Applied`]. A real `0x00`: [`ResultAnswer::Failed`]. Garbage,
    /// timeout or close: `Err` = **result unknown**, never a failure: reconnect and ask
    /// again (see the RESULT rule on [`LinkClient`]).
    pub fn ask_result(&mut self, seq: u64) -> Result<ResultAnswer, LinkError> {
        let frame = self.frame_bytes(FrameType::Result, seq, 0, &[])?;
        match self.exchange(&frame, FrameType::Result, seq, self.opts.result_timeout)? {
            Reply::Yes => Ok(ResultAnswer::Applied),
            Reply::No => Ok(ResultAnswer::Failed),
            Reply::Garbage(byte) => Err(self.fault(LinkError::Garbage {
                kind: FrameType::Result,
                seq,
                byte,
            })),
        }
    }

    fn send_chunk(&mut self, frame: &[u8], seq: u64, offset: u64) -> Result<(), LinkError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let last = match self.exchange(frame, FrameType::Data, seq, self.opts.frame_timeout)? {
                Reply::Yes => return Ok(()),
                Reply::No => Answer::No,
                Reply::Garbage(b) => Answer::Garbage(b),
            };
            if attempts > self.opts.chunk_retries {
                return Err(self.fault(LinkError::ChunkRejected {
                    seq,
                    offset,
                    attempts,
                    last,
                }));
            }
            tracing::debug!(node = %self.node, seq, offset, attempts, answer = %last, "resending chunk");
        }
    }

    fn frame_bytes(
        &self,
        kind: FrameType,
        seq: u64,
        offset: u64,
        payload: &[u8],
    ) -> Result<Vec<u8>, LinkError> {
        let size = HEADER_LEN + payload.len();
        if size > self.opts.max_frame {
            return Err(FrameError::TooLarge {
                size: size as u64,
                max: self.opts.max_frame,
            }
            .into());
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&encode_header(kind, &self.node, seq, offset, payload)?);
        out.extend_from_slice(payload);
        Ok(out)
    }

    fn fault(&mut self, e: LinkError) -> LinkError {
        self.broken = true;
        tracing::debug!(node = %self.node, error = %e, "link fault");
        e
    }

    /// Sends one encoded frame and reads its one answer byte. Every error is a link fault.
    fn exchange(
        &mut self,
        frame: &[u8],
        kind: FrameType,
        seq: u64,
        timeout: Duration,
    ) -> Result<Reply, LinkError> {
        if self.broken {
            return Err(LinkError::Broken);
        }
        match self.exchange_inner(frame, kind, seq, timeout) {
            Ok(r) => Ok(r),
            Err(e) => Err(self.fault(e)),
        }
    }

    fn exchange_inner(
        &mut self,
        frame: &[u8],
        kind: FrameType,
        seq: u64,
        timeout: Duration,
    ) -> Result<Reply, LinkError> {
        self.check_quiet(kind, seq)?;
        if let Err(e) = self
            .stream
            .write_all(frame)
            .and_then(|()| self.stream.flush())
        {
            return Err(if wire::is_timeout(&e) {
                LinkError::Timeout {
                    kind,
                    seq,
                    timeout: self.opts.frame_timeout,
                }
            } else if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ) {
                LinkError::Closed { kind, seq }
            } else {
                LinkError::Io(e)
            });
        }
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(LinkError::Io)?;
        match read_answer(&mut self.stream) {
            Answer::Yes => Ok(Reply::Yes),
            Answer::No => Ok(Reply::No),
            Answer::Garbage(b) => Ok(Reply::Garbage(b)),
            Answer::Timeout => Err(LinkError::Timeout { kind, seq, timeout }),
            Answer::Closed => Err(LinkError::Closed { kind, seq }),
        }
    }

    /// Fails if the receiver sent anything (or closed) while no answer was due.
    fn check_quiet(&mut self, kind: FrameType, seq: u64) -> Result<(), LinkError> {
        self.stream.set_nonblocking(true).map_err(LinkError::Io)?;
        let peeked = self.stream.peek(&mut [0u8; 1]);
        self.stream.set_nonblocking(false).map_err(LinkError::Io)?;
        match peeked {
            Ok(0) => Err(LinkError::Closed { kind, seq }),
            Ok(_) => Err(LinkError::UnexpectedBytes),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(_) => Err(LinkError::Closed { kind, seq }),
        }
    }
}

/// Exponential reconnect backoff: `initial`, doubling up to `max`; [`Backoff::reset`]
/// after a success. Default: 200 ms doubling to 30 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` doubling to `max` (`initial` is clamped to `max`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait before the next attempt; doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.checked_mul(2).unwrap_or(self.max).min(self.max);
        d
    }

    /// Back to `initial` (call after a successful connection).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            ms,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
    }

    #[test]
    fn options_validated() {
        assert!(LinkOptions::default().validate().is_ok());
        let small = LinkOptions {
            max_frame: 100,
            ..LinkOptions::default()
        };
        assert!(matches!(small.validate(), Err(LinkError::Options(_))));
        let zero = LinkOptions {
            frame_timeout: Duration::ZERO,
            ..LinkOptions::default()
        };
        assert!(matches!(zero.validate(), Err(LinkError::Options(_))));
        let e = LinkClient::connect(
            "127.0.0.1:1",
            &Identity::unsigned("bad node", "rx"),
            "",
            LinkOptions::default(),
        );
        assert!(matches!(
            e,
            Err(LinkError::Frame(FrameError::BadNode { .. }))
        ));
    }
}
