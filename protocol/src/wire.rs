//! Frames and answers on the wire: encoding, decoding, validation.
//!
//! See the crate documentation for the byte layout.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::auth::{
    KEY_ID_LEN, LinkSignature, LinkSigner, SCHEME_ED25519, SCHEME_NONE, SIGNATURE_LEN, end_message,
};

/// The four magic bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"GSF1";
/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 74;
/// Default upper bound of a whole frame (header + payload): 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
/// Smallest accepted `max_frame`: room for a header plus an END payload with a long name.
pub const MIN_MAX_FRAME: usize = 512;
/// Largest accepted `max_frame` (the payload length is a `u32`).
pub const MAX_MAX_FRAME: usize = HEADER_LEN + u32::MAX as usize;
/// Longest node id in bytes.
pub const MAX_NODE_LEN: usize = 32;
/// Longest batch file name carried in an END payload.
pub const MAX_NAME_LEN: usize = 255;
/// Protocol tag a HELLO payload starts with (see [`crate::auth::Hello`]).
pub const PROTOCOL_TAG: &str = "gapsync/2";
/// Answer byte "yes".
pub const YES: u8 = 0xFF;
/// Answer byte "no".
pub const NO: u8 = 0x00;

/// Fixed part of an END payload: size (8) + sha256 (32) + name length (2).
const END_FIXED_LEN: usize = 8 + 32 + 2;

/// Kind of a sender frame (byte 4 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Opens a session; payload a [`crate::auth::Hello`].
    Hello = 1,
    /// Liveness probe; empty payload.
    Heartbeat = 2,
    /// A chunk of a batch file at `offset`.
    Data = 3,
    /// End of a batch file; payload is an [`EndInfo`].
    End = 4,
    /// "Was batch `seq` applied?"; empty payload.
    Result = 5,
}

impl FrameType {
    /// All frame types, in code order.
    pub const ALL: [FrameType; 5] = [
        FrameType::Hello,
        FrameType::Heartbeat,
        FrameType::Data,
        FrameType::End,
        FrameType::Result,
    ];

    /// The wire code of this type.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type for a wire code, `None` if unknown.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Upper-case name (`"DATA"`), as used in logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Heartbeat => "HEARTBEAT",
            FrameType::Data => "DATA",
            FrameType::End => "END",
            FrameType::Result => "RESULT",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded, checksum-verified frame header (without the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame type.
    pub kind: FrameType,
    /// Sender node id.
    pub node: String,
    /// Batch sequence number (0 for HELLO/HEARTBEAT).
    pub seq: u64,
    /// Byte offset of a DATA chunk (0 otherwise).
    pub offset: u64,
    /// Declared payload length.
    pub payload_len: u32,
}

impl fmt::Display for FrameHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frame (node {}, seq {}, offset {}, {} payload bytes)",
            self.kind, self.node, self.seq, self.offset, self.payload_len
        )
    }
}

/// A whole sender frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame type.
    pub kind: FrameType,
    /// Sender node id (validated by [`validate_node`] when encoding and decoding).
    pub node: String,
    /// Batch sequence number (0 for HELLO/HEARTBEAT).
    pub seq: u64,
    /// Byte offset of a DATA chunk (0 otherwise).
    pub offset: u64,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Builds a frame.
    pub fn new(
        kind: FrameType,
        node: impl Into<String>,
        seq: u64,
        offset: u64,
        payload: Vec<u8>,
    ) -> Self {
        Frame {
            kind,
            node: node.into(),
            seq,
            offset,
            payload,
        }
    }

    /// Size of the encoded frame in bytes (`HEADER_LEN + payload.len()`).
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// The header part of this frame.
    pub fn header(&self) -> FrameHeader {
        FrameHeader {
            kind: self.kind,
            node: self.node.clone(),
            seq: self.seq,
            offset: self.offset,
            payload_len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        }
    }

    /// Appends the encoded frame to `out`. Fails on an invalid node id or a payload
    /// longer than `u32::MAX`; does not check any `max_frame` (see [`Frame::write_to`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let header = encode_header(self.kind, &self.node, self.seq, self.offset, &self.payload)?;
        out.reserve(self.wire_len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    /// Encodes the frame, checks it against `max_frame` and writes it in one `write_all`.
    pub fn write_to<W: Write + ?Sized>(
        &self,
        w: &mut W,
        max_frame: usize,
    ) -> Result<(), FrameError> {
        check_size(self.wire_len(), max_frame)?;
        let mut buf = Vec::new();
        self.encode(&mut buf)?;
        w.write_all(&buf).map_err(FrameError::Io)
    }
}

/// Errors of frame encoding and decoding.
///
/// [`FrameError::is_header_corruption`] tells the errors after which the frame cannot be
/// trusted at all (the server closes the connection without answering) from
/// [`FrameError::PayloadCorrupt`] (header intact: the server answers `0x00`).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The first four bytes are not `GSF1`.
    #[error("bad magic {0:02x?} (expected \"GSF1\")")]
    BadMagic([u8; 4]),
    /// The header checksum (bytes 66..74) does not match bytes 0..66.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// Byte 4 is not a known frame type.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// The node id is empty, too long, has bad characters or bad padding.
    #[error("invalid node id {node:?}: {reason}")]
    BadNode {
        /// The offending id (lossy, as read).
        node: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The frame would exceed `max_frame`.
    #[error("frame of {size} bytes exceeds max_frame {max}")]
    TooLarge {
        /// Total frame size (header + payload).
        size: u64,
        /// The limit in force.
        max: usize,
    },
    /// The header is intact but the payload does not match its checksum.
    #[error("payload checksum mismatch in {0}")]
    PayloadCorrupt(FrameHeader),
    /// The stream ended in the middle of a frame.
    #[error("truncated frame: stream ended after {got} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected (so far known).
        expected: usize,
    },
    /// The stream ended cleanly before the first byte of a frame.
    #[error("connection closed")]
    Closed,
    /// A read timed out in the middle of a frame.
    #[error("timed out reading a frame")]
    Timeout,
    /// An END payload is malformed, or a batch file name is invalid.
    #[error("invalid END payload: {0}")]
    BadEnd(String),
    /// A HELLO payload is malformed.
    #[error("invalid HELLO payload: {0}")]
    BadHello(String),
    /// The peer speaks an older protocol version.
    #[error(
        "the peer speaks {0}; this side needs gapsync/2 (authenticated HELLO and END): upgrade the older side"
    )]
    OldPeer(&'static str),
    /// Any other I/O error.
    #[error("frame i/o error: {0}")]
    Io(#[source] io::Error),
}

impl FrameError {
    /// True for the errors that mean "this header cannot be trusted": bad magic, bad
    /// header checksum, unknown type, bad node, length over `max_frame`.
    pub fn is_header_corruption(&self) -> bool {
        matches!(
            self,
            FrameError::BadMagic(_)
                | FrameError::HeaderChecksum
                | FrameError::UnknownType(_)
                | FrameError::BadNode { .. }
                | FrameError::TooLarge { .. }
        )
    }
}

/// Checks a node id: 1..=32 bytes of ASCII letters, digits, `_` and `-`.
pub fn validate_node(node: &str) -> Result<(), FrameError> {
    let reason = if node.is_empty() {
        "empty"
    } else if node.len() > MAX_NODE_LEN {
        "longer than 32 bytes"
    } else if !node
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "only ASCII letters, digits, '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(FrameError::BadNode {
        node: node.to_owned(),
        reason,
    })
}

/// Checks a batch file name for an END payload: 1..=255 bytes of ASCII letters, digits,
/// `.`, `_` and `-`, not starting with `.` (so it can never name a path or a hidden file).
pub fn validate_name(name: &str) -> Result<(), FrameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadEnd(format!(
            "invalid file name {name:?}: 1..=255 of [A-Za-z0-9._-], not starting with '.'"
        )))
    }
}

fn check_size(size: usize, max_frame: usize) -> Result<(), FrameError> {
    if size > max_frame {
        return Err(FrameError::TooLarge {
            size: size as u64,
            max: max_frame,
        });
    }
    Ok(())
}

/// First 8 bytes of SHA-256 of `data`.
fn sum8(data: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Encodes a header for `payload` (used by [`Frame::encode`] and by the client, which
/// places the header in front of a chunk buffer without copying the chunk).
pub(crate) fn encode_header(
    kind: FrameType,
    node: &str,
    seq: u64,
    offset: u64,
    payload: &[u8],
) -> Result<[u8; HEADER_LEN], FrameError> {
    validate_node(node)?;
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        size: (HEADER_LEN + payload.len()) as u64,
        max: MAX_MAX_FRAME,
    })?;
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = kind.code();
    h[5] = node.len() as u8; // validated: 1..=32
    h[6..6 + node.len()].copy_from_slice(node.as_bytes());
    h[38..46].copy_from_slice(&seq.to_be_bytes());
    h[46..54].copy_from_slice(&offset.to_be_bytes());
    h[54..58].copy_from_slice(&len.to_be_bytes());
    h[58..66].copy_from_slice(&sum8(payload));
    let check = sum8(&h[..66]);
    h[66..74].copy_from_slice(&check);
    Ok(h)
}

/// Decodes and verifies a header. Returns the header and the payload checksum.
/// All errors are header corruption in the sense of [`FrameError::is_header_corruption`].
pub fn decode_header(
    h: &[u8; HEADER_LEN],
    max_frame: usize,
) -> Result<(FrameHeader, [u8; 8]), FrameError> {
    if h[0..4] != MAGIC {
        let mut m = [0u8; 4];
        m.copy_from_slice(&h[0..4]);
        return Err(FrameError::BadMagic(m));
    }
    if sum8(&h[..66])[..] != h[66..74] {
        return Err(FrameError::HeaderChecksum);
    }
    let kind = FrameType::from_code(h[4]).ok_or(FrameError::UnknownType(h[4]))?;
    let n = usize::from(h[5]);
    let raw_node = &h[6..38];
    let node = String::from_utf8_lossy(&raw_node[..n.min(MAX_NODE_LEN)]).into_owned();
    if n > MAX_NODE_LEN {
        return Err(FrameError::BadNode {
            node,
            reason: "length byte over 32",
        });
    }
    validate_node(&node)?;
    if raw_node[n..].iter().any(|&b| b != 0) {
        return Err(FrameError::BadNode {
            node,
            reason: "padding is not zero",
        });
    }
    let payload_len = u32::from_be_bytes([h[54], h[55], h[56], h[57]]);
    let size = HEADER_LEN as u64 + u64::from(payload_len);
    if size > max_frame as u64 {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame,
        });
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&h[58..66]);
    let header = FrameHeader {
        kind,
        node,
        seq: be_u64(&h[38..46]),
        offset: be_u64(&h[46..54]),
        payload_len,
    };
    Ok((header, sum))
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
pub(crate) fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    read_up_to(r, buf).map_err(|e| {
        if is_timeout(&e) {
            FrameError::Timeout
        } else {
            FrameError::Io(e)
        }
    })
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Most payload bytes [`read_frame`] reserves before they arrive.
const PAYLOAD_PREALLOC: usize = 64 * 1024;

/// Appends up to `len` bytes to `buf` (growing it as data arrives); returns how many.
fn read_payload<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> Result<usize, FrameError> {
    let limit = u64::try_from(len).unwrap_or(u64::MAX);
    r.take(limit).read_to_end(buf).map_err(|e| {
        if is_timeout(&e) {
            FrameError::Timeout
        } else {
            FrameError::Io(e)
        }
    })
}

/// Reads one frame.
///
/// - `Ok(frame)`: header and payload verified.
/// - [`FrameError::Closed`]: the stream ended cleanly before the first byte.
/// - header corruption ([`FrameError::is_header_corruption`]): do not answer, close.
/// - [`FrameError::PayloadCorrupt`] (carrying the trusted header): answer `0x00`.
/// - [`FrameError::Truncated`]: the stream ended mid-frame.
/// - [`FrameError::Timeout`] / [`FrameError::Io`]: read errors.
///
/// The payload buffer is allocated only after the declared length has been checked
/// against `max_frame`, never larger than that declared length, and it grows with the
/// bytes received (at most 64 KiB are reserved ahead of them).
pub fn read_frame<R: Read + ?Sized>(r: &mut R, max_frame: usize) -> Result<Frame, FrameError> {
    let mut h = [0u8; HEADER_LEN];
    match read_full(r, &mut h)? {
        0 => return Err(FrameError::Closed),
        got if got < HEADER_LEN => {
            return Err(FrameError::Truncated {
                got,
                expected: HEADER_LEN,
            });
        }
        _ => {}
    }
    let (header, sum) = decode_header(&h, max_frame)?;
    let len = header.payload_len as usize;
    // The buffer grows with the bytes that actually arrive: a header that declares a
    // large payload (up to `max_frame`) and is followed by little or nothing costs no
    // more memory than what was received.
    let mut payload = Vec::with_capacity(len.min(PAYLOAD_PREALLOC));
    let got = read_payload(r, &mut payload, len)?;
    if got < len {
        return Err(FrameError::Truncated {
            got: HEADER_LEN + got,
            expected: HEADER_LEN + len,
        });
    }
    if sum8(&payload) != sum {
        return Err(FrameError::PayloadCorrupt(header));
    }
    let FrameHeader {
        kind,
        node,
        seq,
        offset,
        ..
    } = header;
    Ok(Frame {
        kind,
        node,
        seq,
        offset,
        payload,
    })
}

/// Payload of an END frame (layout in the crate documentation): size, SHA-256 and name
/// of the file as transmitted, and the node key's signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndInfo {
    /// Size of the whole batch file in bytes, as transmitted.
    pub size: u64,
    /// SHA-256 of the whole batch file, as transmitted.
    pub sha256: [u8; 32],
    /// Batch file name (see [`validate_name`]).
    pub name: String,
    /// Key id and signature (scheme 1); `None` for an unsigned END (scheme 0).
    pub auth: Option<LinkSignature>,
}

impl EndInfo {
    /// An unsigned END.
    pub fn new(size: u64, sha256: [u8; 32], name: impl Into<String>) -> EndInfo {
        EndInfo {
            size,
            sha256,
            name: name.into(),
            auth: None,
        }
    }

    /// The signed part of the payload: everything but the signature.
    fn signed_part(&self, key_id: Option<&[u8; KEY_ID_LEN]>) -> Result<Vec<u8>, FrameError> {
        validate_name(&self.name)?;
        let mut out = Vec::with_capacity(END_FIXED_LEN + self.name.len() + 1 + 72);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes()); // validated <= 255
        out.extend_from_slice(self.name.as_bytes());
        match key_id {
            Some(id) => {
                out.push(SCHEME_ED25519);
                out.extend_from_slice(id);
            }
            None => out.push(SCHEME_NONE),
        }
        Ok(out)
    }

    /// Signs this END for `node` and `seq` with `signer` (sets [`EndInfo::auth`]).
    pub fn sign(
        &mut self,
        node: &str,
        seq: u64,
        signer: &dyn LinkSigner,
    ) -> Result<(), FrameError> {
        let key_id = signer.key_id();
        let part = self.signed_part(Some(&key_id))?;
        let signature = signer.sign(&end_message(node, seq, &part));
        self.auth = Some(LinkSignature { key_id, signature });
        Ok(())
    }

    /// The message the signature covers, for `node` and `seq`.
    pub fn message(&self, node: &str, seq: u64) -> Result<Vec<u8>, FrameError> {
        let part = self.signed_part(self.auth.as_ref().map(|a| &a.key_id))?;
        Ok(end_message(node, seq, &part))
    }

    /// Encodes the payload; fails if the name is invalid.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = self.signed_part(self.auth.as_ref().map(|a| &a.key_id))?;
        if let Some(a) = &self.auth {
            out.extend_from_slice(&a.signature);
        }
        Ok(out)
    }

    /// Decodes a payload; the length must match exactly and the name must be valid.
    pub fn decode(payload: &[u8]) -> Result<Self, FrameError> {
        if payload.len() < END_FIXED_LEN {
            return Err(FrameError::BadEnd(format!(
                "{} bytes, shorter than the fixed {END_FIXED_LEN}",
                payload.len()
            )));
        }
        let name_len = usize::from(u16::from_be_bytes([payload[40], payload[41]]));
        let scheme_at = END_FIXED_LEN + name_len;
        let scheme = payload.get(scheme_at).copied();
        let want = match scheme {
            Some(SCHEME_NONE) => scheme_at + 1,
            Some(SCHEME_ED25519) => scheme_at + 1 + KEY_ID_LEN + SIGNATURE_LEN,
            Some(other) => {
                return Err(FrameError::BadEnd(format!("unknown scheme {other}")));
            }
            None => {
                return Err(FrameError::BadEnd(format!(
                    "{} bytes, but name length {name_len} needs at least {}",
                    payload.len(),
                    scheme_at + 1
                )));
            }
        };
        if payload.len() != want {
            return Err(FrameError::BadEnd(format!(
                "{} bytes, but name length {name_len} and scheme {} need {want}",
                payload.len(),
                scheme.unwrap_or_default()
            )));
        }
        let name = String::from_utf8_lossy(&payload[END_FIXED_LEN..scheme_at]).into_owned();
        validate_name(&name)?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&payload[8..40]);
        let auth = (scheme == Some(SCHEME_ED25519)).then(|| {
            let mut key_id = [0u8; KEY_ID_LEN];
            key_id.copy_from_slice(&payload[scheme_at + 1..scheme_at + 1 + KEY_ID_LEN]);
            let mut signature = [0u8; SIGNATURE_LEN];
            signature.copy_from_slice(&payload[scheme_at + 1 + KEY_ID_LEN..]);
            LinkSignature { key_id, signature }
        });
        Ok(EndInfo {
            size: be_u64(&payload[..8]),
            sha256,
            name,
            auth,
        })
    }
}

/// What came back for one frame, as seen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `0xFF`.
    Yes,
    /// `0x00`.
    No,
    /// Any other byte.
    Garbage(u8),
    /// No byte within the read timeout.
    Timeout,
    /// The connection ended (EOF or a read error other than a timeout).
    Closed,
}

impl Answer {
    /// Classifies an answer byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            YES => Answer::Yes,
            NO => Answer::No,
            other => Answer::Garbage(other),
        }
    }

    /// Only [`Answer::Yes`] is "yes"; everything else means "no" at the frame level.
    pub fn is_yes(self) -> bool {
        self == Answer::Yes
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Yes => f.write_str("yes (0xff)"),
            Answer::No => f.write_str("no (0x00)"),
            Answer::Garbage(b) => write!(f, "garbage (0x{b:02x})"),
            Answer::Timeout => f.write_str("timeout"),
            Answer::Closed => f.write_str("connection closed"),
        }
    }
}

/// Reads exactly one answer byte (never more). Timeouts are whatever the reader's read
/// timeout is (for a `TcpStream`, set it with `set_read_timeout` first).
pub fn read_answer<R: Read + ?Sized>(r: &mut R) -> Answer {
    let mut b = [0u8; 1];
    loop {
        return match r.read(&mut b) {
            Ok(0) => Answer::Closed,
            Ok(_) => Answer::from_byte(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => Answer::Timeout,
            Err(e) => {
                tracing::debug!(error = %e, "read error while waiting for answer");
                Answer::Closed
            }
        };
    }
}

/// Writes one answer byte: `0xFF` for yes, `0x00` for no.
pub fn write_answer<W: Write + ?Sized>(w: &mut W, yes: bool) -> io::Result<()> {
    w.write_all(&[if yes { YES } else { NO }])?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample(kind: FrameType) -> Frame {
        let payload = match kind {
            FrameType::Hello => {
                crate::auth::Hello::encode("n1", "rx", 1, [5; 16], "sender 0.1.0", None)
                    .expect("encode hello")
            }
            FrameType::Data => (0..=255u8).cycle().take(1000).collect(),
            FrameType::End => EndInfo::new(1000, [7; 32], "n1-00000000000000000005.sql")
                .encode()
                .expect("encode end"),
            FrameType::Heartbeat | FrameType::Result => Vec::new(),
        };
        Frame::new(
            kind,
            "node_A-1",
            5,
            if kind == FrameType::Data { 4096 } else { 0 },
            payload,
        )
    }

    fn bytes(f: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        f.encode(&mut out).expect("encode");
        out
    }

    #[test]
    fn round_trip_every_type() {
        for kind in FrameType::ALL {
            let f = sample(kind);
            let b = bytes(&f);
            assert_eq!(b.len(), f.wire_len());
            assert_eq!(&b[..4], b"GSF1");
            assert_eq!(b[4], kind.code());
            let back = read_frame(&mut Cursor::new(&b), DEFAULT_MAX_FRAME).expect("decode");
            assert_eq!(back, f);
        }
        // Two frames back to back, then a clean end.
        let mut b = bytes(&sample(FrameType::Hello));
        b.extend(bytes(&sample(FrameType::Data)));
        let mut c = Cursor::new(b);
        assert_eq!(
            read_frame(&mut c, DEFAULT_MAX_FRAME).expect("1").kind,
            FrameType::Hello
        );
        assert_eq!(
            read_frame(&mut c, DEFAULT_MAX_FRAME).expect("2").kind,
            FrameType::Data
        );
        assert!(matches!(
            read_frame(&mut c, DEFAULT_MAX_FRAME),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn exact_layout() {
        let f = Frame::new(FrameType::Data, "ab", 0x0102, 0x0304, vec![9, 9, 9]);
        let b = bytes(&f);
        assert_eq!(b[5], 2);
        assert_eq!(&b[6..8], b"ab");
        assert!(b[8..38].iter().all(|&x| x == 0));
        assert_eq!(&b[38..46], &0x0102u64.to_be_bytes());
        assert_eq!(&b[46..54], &0x0304u64.to_be_bytes());
        assert_eq!(&b[54..58], &3u32.to_be_bytes());
        assert_eq!(&b[58..66], &Sha256::digest([9u8, 9, 9])[..8]);
        assert_eq!(&b[66..74], &Sha256::digest(&b[..66])[..8]);
        assert_eq!(&b[74..], &[9, 9, 9]);
    }

    #[test]
    fn payload_flip_is_payload_corrupt_with_header() {
        let f = sample(FrameType::Data);
        let mut b = bytes(&f);
        b[HEADER_LEN + 17] ^= 0x10;
        match read_frame(&mut Cursor::new(&b), DEFAULT_MAX_FRAME) {
            Err(FrameError::PayloadCorrupt(h)) => assert_eq!(h, f.header()),
            other => panic!("expected PayloadCorrupt, got {other:?}"),
        }
    }

    #[test]
    fn every_header_bit_flip_is_header_corruption() {
        for kind in FrameType::ALL {
            let good = bytes(&sample(kind));
            for bit in 0..HEADER_LEN * 8 {
                let mut b = good.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                match read_frame(&mut Cursor::new(&b), DEFAULT_MAX_FRAME) {
                    Err(e) if e.is_header_corruption() => {}
                    other => panic!("{kind} bit {bit}: expected header corruption, got {other:?}"),
                }
            }
        }
    }

    /// A reader that serves the header and fails the test if anyone reads further.
    struct HeaderOnly(Cursor<Vec<u8>>);
    impl Read for HeaderOnly {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            assert!(
                n > 0,
                "read past the header: payload of an oversized frame was read"
            );
            Ok(n)
        }
    }

    #[test]
    fn oversized_length_refused_before_reading_or_allocating() {
        let mut h = bytes(&Frame::new(FrameType::Data, "n1", 1, 0, Vec::new()));
        h[54..58].copy_from_slice(&(2_000_000u32 - HEADER_LEN as u32).to_be_bytes());
        let check = sum8(&h[..66]);
        h[66..74].copy_from_slice(&check);
        let err = read_frame(&mut HeaderOnly(Cursor::new(h.clone())), DEFAULT_MAX_FRAME)
            .expect_err("must refuse");
        assert!(err.is_header_corruption());
        assert_eq!(
            err.to_string(),
            "frame of 2000000 bytes exceeds max_frame 1048576"
        );
        // u32::MAX payload with a big max_frame: still refused by a smaller limit.
        h[54..58].copy_from_slice(&u32::MAX.to_be_bytes());
        let check = sum8(&h[..66]);
        h[66..74].copy_from_slice(&check);
        let err = read_frame(&mut HeaderOnly(Cursor::new(h)), 1 << 30).expect_err("refuse");
        assert!(matches!(err, FrameError::TooLarge { max, .. } if max == 1 << 30));
        // Encoding side: write_to refuses too.
        let f = Frame::new(FrameType::Data, "n1", 1, 0, vec![0; 4096]);
        let err = f.write_to(&mut Vec::new(), 4096).expect_err("too big");
        assert!(matches!(
            err,
            FrameError::TooLarge {
                size: 4170,
                max: 4096
            }
        ));
    }

    /// Found by the `frame_decoder` fuzz target: a valid header declaring a payload
    /// near 4 GiB (accepted with a big `max_frame`) made `read_frame` allocate all of it
    /// before reading a single payload byte. The buffer now follows the bytes received.
    #[test]
    fn declared_length_is_not_allocated_ahead_of_the_data() {
        struct Watch {
            data: Cursor<Vec<u8>>,
            biggest_read: usize,
        }
        impl Read for Watch {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.biggest_read = self.biggest_read.max(buf.len());
                self.data.read(buf)
            }
        }
        let mut h = bytes(&Frame::new(FrameType::Data, "n1", 1, 0, Vec::new()));
        h[54..58].copy_from_slice(&u32::MAX.to_be_bytes());
        let check = sum8(&h[..66]);
        h[66..74].copy_from_slice(&check);
        h.extend_from_slice(&[7u8; 100]);
        let mut r = Watch {
            data: Cursor::new(h),
            biggest_read: 0,
        };
        let err = read_frame(&mut r, MAX_MAX_FRAME).expect_err("truncated");
        assert!(
            matches!(err, FrameError::Truncated { got, expected }
                if got == HEADER_LEN + 100 && expected == HEADER_LEN + u32::MAX as usize),
            "{err:?}"
        );
        assert!(
            r.biggest_read <= 2 * PAYLOAD_PREALLOC,
            "read into a {} byte buffer",
            r.biggest_read
        );
        // A large payload that does arrive is read whole and verified.
        let f = Frame::new(
            FrameType::Data,
            "n1",
            1,
            0,
            vec![9u8; 3 * PAYLOAD_PREALLOC + 5],
        );
        let b = bytes(&f);
        assert_eq!(
            read_frame(&mut Cursor::new(&b), DEFAULT_MAX_FRAME).expect("frame"),
            f
        );
    }

    #[test]
    fn truncated_frames() {
        let b = bytes(&sample(FrameType::Data));
        assert!(matches!(
            read_frame(&mut Cursor::new(&b[..0]), DEFAULT_MAX_FRAME),
            Err(FrameError::Closed)
        ));
        for cut in [
            1,
            40,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 1,
            b.len() - 1,
        ] {
            match read_frame(&mut Cursor::new(&b[..cut]), DEFAULT_MAX_FRAME) {
                Err(FrameError::Truncated { got, expected }) => {
                    assert_eq!(got, cut);
                    assert!(expected > got);
                }
                other => panic!("cut {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn node_validation() {
        for good in ["a", "node-1", "N_2", &"x".repeat(32)] {
            validate_node(good).expect(good);
        }
        for bad in ["", "a b", "ü", "a/b", "a.b", &"x".repeat(33)] {
            let e = validate_node(bad).expect_err(bad);
            assert!(e.is_header_corruption());
        }
        let f = Frame::new(FrameType::Hello, "bad node", 0, 0, Vec::new());
        assert!(matches!(
            f.encode(&mut Vec::new()),
            Err(FrameError::BadNode { .. })
        ));
    }

    #[test]
    fn nonzero_padding_or_long_node_length_rejected() {
        let good = bytes(&Frame::new(FrameType::Heartbeat, "ab", 0, 0, Vec::new()));
        for (pos, val) in [(10usize, b'x'), (5, 33), (5, 0), (6, b' ')] {
            let mut b = good.clone();
            b[pos] = val;
            let check = sum8(&b[..66]);
            b[66..74].copy_from_slice(&check);
            let e = read_frame(&mut Cursor::new(&b), DEFAULT_MAX_FRAME).expect_err("bad node");
            assert!(matches!(e, FrameError::BadNode { .. }), "{pos}: {e:?}");
        }
    }

    #[test]
    fn end_info_round_trip_and_errors() {
        let mut info = EndInfo::new(u64::MAX - 3, [0xAB; 32], "n-00000000000000000001.sql.zst");
        let p = info.encode().expect("encode");
        assert_eq!(p.len(), 42 + info.name.len() + 1);
        assert_eq!(EndInfo::decode(&p).expect("decode"), info);
        #[derive(Debug)]
        struct Signer;
        impl LinkSigner for Signer {
            fn key_id(&self) -> [u8; KEY_ID_LEN] {
                [4; KEY_ID_LEN]
            }
            fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
                let mut s = [0u8; SIGNATURE_LEN];
                s[..8].copy_from_slice(&sum8(message));
                s
            }
        }
        info.sign("n", 1, &Signer).expect("sign");
        let signed = info.encode().expect("encode");
        assert_eq!(signed.len(), 42 + info.name.len() + 1 + 8 + 64);
        let back = EndInfo::decode(&signed).expect("decode signed");
        assert_eq!(back, info);
        let msg = back.message("n", 1).expect("message");
        assert_eq!(
            back.auth.as_ref().map(|a| a.signature),
            Some(Signer.sign(&msg))
        );
        assert_ne!(back.message("n", 2).expect("m"), msg, "the seq is signed");
        assert_ne!(back.message("m", 1).expect("m"), msg, "the node is signed");
        for cut in 0..signed.len() {
            assert!(EndInfo::decode(&signed[..cut]).is_err(), "cut at {cut}");
        }
        let mut scheme = p.clone();
        *scheme.last_mut().expect("scheme byte") = 7;
        assert!(EndInfo::decode(&scheme).is_err());
        assert!(EndInfo::decode(&p[..p.len() - 1]).is_err());
        assert!(EndInfo::decode(&p[..10]).is_err());
        let mut longer = p.clone();
        longer.push(b'x');
        assert!(EndInfo::decode(&longer).is_err());
        for bad in ["", "../etc/passwd", ".hidden", "a/b", "a b", "ä"] {
            let e = EndInfo {
                name: bad.into(),
                ..info.clone()
            };
            assert!(e.encode().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(read_answer(&mut Cursor::new([0xFFu8])), Answer::Yes);
        assert_eq!(read_answer(&mut Cursor::new([0x00u8])), Answer::No);
        assert_eq!(
            read_answer(&mut Cursor::new([0x41u8])),
            Answer::Garbage(0x41)
        );
        assert_eq!(read_answer(&mut Cursor::new([0u8; 0])), Answer::Closed);
        struct Slow;
        impl Read for Slow {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
        assert_eq!(read_answer(&mut Slow), Answer::Timeout);
        // Exactly one byte is consumed per answer.
        let mut c = Cursor::new([0xFFu8, 0x00, 0x41]);
        assert_eq!(read_answer(&mut c), Answer::Yes);
        assert_eq!(c.position(), 1);
        assert!(!Answer::Garbage(1).is_yes() && !Answer::No.is_yes() && Answer::Yes.is_yes());
        let mut out = Vec::new();
        write_answer(&mut out, true).expect("w");
        write_answer(&mut out, false).expect("w");
        assert_eq!(out, [0xFF, 0x00]);
    }
}
