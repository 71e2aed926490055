//! gapsync link protocol: frames, one-byte answers and the two ends of a link.
//!
//! The sender pushes batch files through a one-way forward isolation device over TCP.
//! The device lets the receiver answer each sender frame with exactly **one byte**:
//! `0xFF` (yes) or `0x00` (no). This crate knows no database.
//!
//! - [`wire`]: frame layout, [`read_frame`], [`Frame::encode`], [`EndInfo`], answers.
//! - [`client`]: the sender side, [`LinkClient`] and [`Backoff`].
//! - [`server`]: the receiver side, [`serve_connection`] driving a [`FrameHandler`].
//!
//! # Frame layout
//!
//! Every sender frame is a fixed 74-byte header followed by the payload. All integers
//! are big-endian. A whole frame (74 + payload length) never exceeds `max_frame`
//! (default [`DEFAULT_MAX_FRAME`] = 1 MiB).
//!
//! ```text
//!  offset  len  field
//!  ------  ---  -----------------------------------------------------------------
//!       0    4  magic  'G' 'S' 'F' '1'
//!       4    1  type   1 HELLO | 2 HEARTBEAT | 3 DATA | 4 END | 5 RESULT
//!       5    1  node length n, 1..=32
//!       6   32  node id: n bytes of [A-Za-z0-9_-], then 32-n zero bytes
//!      38    8  seq     u64: batch sequence number (0 for HELLO / HEARTBEAT)
//!      46    8  offset  u64: byte offset of a DATA chunk in the batch file (else 0)
//!      54    4  length  u32: payload length
//!      58    8  payload checksum: SHA-256(payload)[0..8]
//!      66    8  header checksum:  SHA-256(bytes 0..66)[0..8]
//!      74  len  payload
//!
//!   0       4 5 6                                     38        46        54   58        66        74
//!   +-------+-+-+--------------------------------------+---------+---------+----+---------+---------+---------
//!   | GSF1  |T|n| node id (zero padded)                | seq     | offset  |len | psum    | hsum    | payload
//!   +-------+-+-+--------------------------------------+---------+---------+----+---------+---------+---------
//! ```
//!
//! # Payloads and answers
//!
//! | type | payload | `0xFF` means | `0x00` means |
//! |---|---|---|---|
//! | HELLO | [`Hello`] (below): version, time, nonce, receiver id, signature | authenticated, alive and willing | refuse (stop, alarm) |
//! | HEARTBEAT | empty | alive | refuse |
//! | DATA | chunk of the batch file at `offset` | chunk stored | resend the chunk |
//! | END | [`EndInfo`] (below) | whole file intact, durably spooled | resend the whole batch |
//! | RESULT | empty (batch = `seq`) | applied (now or before) | apply failed deterministically |
//!
//! END payload ([`EndInfo`]); `n` = name length:
//!
//! ```text
//!  offset  len  field
//!       0    8  size u64: bytes of the whole batch file as transmitted
//!       8   32  sha256 of the whole file as transmitted
//!      40    2  n u16: name length, 1..=255
//!      42    n  file name, [A-Za-z0-9._-], not starting with '.'
//!    42+n    1  scheme: 0 unsigned, 1 Ed25519
//!    43+n    8  key id (scheme 1 only): first 8 bytes of SHA-256 of the public key
//!    51+n   64  signature (scheme 1 only) over the END message (below)
//! ```
//!
//! # Authentication (`gapsync/2`)
//!
//! The receiver's port is reachable by anyone on the outside network, and the receiver
//! can answer only one byte, so there is no room for a challenge: the sender signs what
//! it sends with its Ed25519 node key (the key that signs its batch files), bound to
//! the time, a fresh nonce and the receiver's id.
//!
//! HELLO payload ([`Hello`]); `r` = receiver id length, `t` = text length:
//!
//! ```text
//!  offset  len  field
//!       0    9  tag "gapsync/2" (a payload starting "gapsync/1" is an older sender)
//!       9    1  scheme: 0 unsigned, 1 Ed25519
//!      10    8  time u64: seconds since the Unix epoch, sender's clock
//!      18   16  nonce: 16 random bytes, fresh for every connection
//!      34    8  key id: first 8 bytes of SHA-256 of the public key (zero for scheme 0)
//!      42    1  r: receiver id length, 1..=64
//!      43    r  receiver id [A-Za-z0-9._-]: the receiver's `[link] id`
//!    43+r    2  t u16: free text length, 0..=256
//!    45+r    t  free text, UTF-8 (the sender's name and version, for logs)
//!  45+r+t   64  signature (scheme 1 only) over the HELLO message (below)
//!
//!  HELLO message = "gapsync/2 HELLO\n" | node length (1 byte) | node | payload[0 .. 45+r+t]
//!  END message   = "gapsync/2 END\n"   | node length (1 byte) | node | seq u64 BE
//!                  | payload[0 .. 51+n]            (everything but the signature)
//! ```
//!
//! The receiver refuses HELLO (answers `0x00` and closes; its log names the reason)
//! unless all of these hold, checked in this order, before anything else of the peer is
//! looked at: the tag is `gapsync/2`; the layout is exact; the receiver id is its own;
//! the time is within `hello_max_skew` of its clock; the node has a `[[trust]]` key and
//! the key id names one of them and the signature verifies (`verify_strict`), or the
//! node has no key at all, the scheme is 0 and the receiver runs with `insecure = true`;
//! the nonce has not been seen in the last `2 × hello_max_skew`. A first frame must
//! arrive within `hello_timeout` of the connection; until HELLO is accepted the peer
//! holds one of a few pre-authentication slots (per peer address and in total; the
//! oldest is closed when a new peer needs one) and nothing else: no part file, no
//! ledger query, no RESULT.
//!
//! END of a node with keys must carry scheme 1 and a valid signature by one of its
//! keys over (node, seq, size, SHA-256, name): the receiver checks it, then the SHA-256
//! of the bytes it stored, and only then gives the file its (node, seq) name in the
//! spool. A refused END costs the bytes received: nothing of it is decompressed or
//! parsed, nothing counts as a failure of that seq.
//!
//! Why HELLO and END, not every frame: HELLO decides who may spend anything of the
//! receiver (slots, disk, ledger look-ups, answers); END decides which bytes may take a
//! (node, seq) name, and binds them to the node key, so bytes injected into an
//! authenticated TCP stream, or sent after a replayed HELLO, can still never reach the
//! spool. DATA chunks need no signature: a chunk that is not the signed file's fails
//! the SHA-256 at END, at the cost of the bytes received. RESULT needs none: it is
//! answered only on an authenticated connection, and only about its own node.
//! A receiver restart forgets the nonces it has seen: a HELLO captured in the last
//! `hello_max_skew` could open one session after a restart, which can upload only
//! files the node signed and learn only that node's results.
//!
//! Answers are read as [`Answer`]: `Yes` (`0xFF`), `No` (`0x00`), `Garbage(byte)`,
//! `Timeout`, `Closed`. At the frame level everything but `Yes` is "no".
//!
//! # Decoding and the receiver's reactions
//!
//! | [`read_frame`] result | receiver does |
//! |---|---|
//! | `Ok(frame)` | passes it to the handler, answers its verdict |
//! | header corruption: bad magic, header checksum, unknown type, bad node, length over `max_frame` | closes without answering (a damaged header cannot be trusted: one flipped bit could turn DATA into RESULT) |
//! | [`FrameError::PayloadCorrupt`] (header intact) | DATA/END: answers `0x00`; HELLO/HEARTBEAT/RESULT: closes without answering, as `0x00` would read as "refuse"/"failed" |
//! | [`FrameError::Closed`] (clean EOF between frames) | ends the connection |
//! | [`FrameError::Truncated`], timeout | closes |
//!
//! The declared payload length is checked against `max_frame` before any payload buffer
//! is allocated.
//!
//! # The RESULT rule
//!
//! Only a real `0x00` to RESULT means the apply failed. A garbled byte, a timeout or a
//! closed connection means **the result is unknown**: [`LinkClient::ask_result`] returns
//! `Err`, and the sender reconnects and asks again. The receiver answers repeated asks
//! from its ledger, so asking twice is harmless, while a lost answer taken for a failure
//! would quarantine a batch that may have been applied.
//!
//! # Faults and retries (sender)
//!
//! - DATA answered No or garbage: the chunk is resent (up to `chunk_retries` times).
//! - END answered No: [`LinkError::EndRejected`]: send the whole batch again.
//! - Timeout, close, garbage elsewhere, or bytes arriving when no answer is due: a link
//!   fault. The client is then unusable; reconnect with [`Backoff`] and start the batch
//!   again from offset 0.
//!
//! # Example (sender)
//!
//! ```no_run
//! use std::sync::Arc;
//! use gapsync_protocol::{Backoff, Identity, LinkClient, LinkError, LinkOptions, LinkSigner,
//!                        ResultAnswer};
//!
//! # fn demo(mut file: std::fs::File, size: u64, sha256: [u8; 32],
//! #         key: Arc<dyn LinkSigner>) -> Result<(), LinkError> {
//! let me = Identity { node: "plant-1".into(), receiver_id: "mis-1".into(), signer: Some(key) };
//! let mut backoff = Backoff::default();
//! let outcome = loop {
//!     let attempt = LinkClient::connect("receiver:7070", &me, "sender 0.1.0",
//!                                       LinkOptions::default())
//!         .and_then(|mut link| {
//!             link.send_file(42, "plant-1-00000000000000000042.sql", &mut file, size, sha256)?;
//!             link.ask_result(42)
//!         });
//!     match attempt {
//!         Ok(answer) => break answer,
//!         Err(LinkError::Refused) => return Err(LinkError::Refused), // stop, alarm
//!         // EndRejected: resend; Timeout/Closed/Garbage...: result unknown, ask again.
//!         Err(_) => std::thread::sleep(backoff.next_delay()),
//!     }
//! };
//! backoff.reset();
//! assert!(matches!(outcome, ResultAnswer::Applied | ResultAnswer::Failed));
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod client;
pub mod server;
pub mod wire;

pub use auth::{Hello, LinkSignature, LinkSigner};
pub use client::{Backoff, Identity, LinkClient, LinkError, LinkOptions, ResultAnswer};
pub use server::{ConnEnd, FrameHandler, ServeError, ServerOptions, serve_connection};
pub use wire::{
    Answer, DEFAULT_MAX_FRAME, EndInfo, Frame, FrameError, FrameHeader, FrameType, HEADER_LEN,
    MAX_NAME_LEN, MAX_NODE_LEN, MIN_MAX_FRAME, NO, YES, read_answer, read_frame, validate_name,
    validate_node, write_answer,
};
