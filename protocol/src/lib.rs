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
//! | HELLO | UTF-8 `gapsync/1 <free text>` | alive and willing | refuse (stop, alarm) |
//! | HEARTBEAT | empty | alive | refuse |
//! | DATA | chunk of the batch file at `offset` | chunk stored | resend the chunk |
//! | END | [`EndInfo`] (below) | whole file intact, durably spooled | resend the whole batch |
//! | RESULT | empty (batch = `seq`) | applied (now or before) | apply failed deterministically |
//!
//! END payload:
//!
//! ```text
//!  0        8                                 40       42
//!  +--------+---------------------------------+--------+------------------------+
//!  | size   | sha256 of the whole file (32)   | nlen   | file name (nlen ASCII) |
//!  | u64    |                                 | u16    | [A-Za-z0-9._-]         |
//!  +--------+---------------------------------+--------+------------------------+
//! ```
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
//! use gapsync_protocol::{Backoff, LinkClient, LinkError, LinkOptions, ResultAnswer};
//!
//! # fn demo(mut file: std::fs::File, size: u64, sha256: [u8; 32]) -> Result<(), LinkError> {
//! let mut backoff = Backoff::default();
//! let outcome = loop {
//!     let attempt = LinkClient::connect("receiver:7070", "plant-1", "sender 0.1.0",
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

pub mod client;
pub mod server;
pub mod wire;

pub use client::{Backoff, LinkClient, LinkError, LinkOptions, ResultAnswer};
pub use server::{ConnEnd, FrameHandler, ServeError, ServerOptions, serve_connection};
pub use wire::{
    Answer, DEFAULT_MAX_FRAME, EndInfo, Frame, FrameError, FrameHeader, FrameType, HEADER_LEN,
    MAX_NAME_LEN, MAX_NODE_LEN, MIN_MAX_FRAME, NO, YES, read_answer, read_frame, validate_name,
    validate_node, write_answer,
};
