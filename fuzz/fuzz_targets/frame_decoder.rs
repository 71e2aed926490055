//! Frame decoder: `read_frame` over arbitrary bytes (several frames in a row), the
//! END payload decoder and the HELLO decoder (see also `link_auth`). Every frame that decodes must re-encode to
//! exactly the bytes it was read from.
//!
//! The header carries SHA-256 based checksums that random mutation cannot forge, so when
//! bit 2 of the first byte is set the target first writes the magic and correct
//! checksums into the first frame of the input: that reaches the code behind the checks
//! (length handling, node validation, payload reading).
#![no_main]

use std::io::Cursor;

use gapsync_protocol::Hello;
use gapsync_protocol::wire::{self, EndInfo, FrameType, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn sum8(data: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&Sha256::digest(data)[..8]);
    out
}

/// Makes the first frame's magic and checksums right (payload clamped to the input).
fn fix_up(buf: &mut [u8]) {
    if buf.len() < HEADER_LEN {
        return;
    }
    buf[0..4].copy_from_slice(&wire::MAGIC);
    let len = u32::from_be_bytes([buf[54], buf[55], buf[56], buf[57]]) as usize;
    let end = HEADER_LEN.saturating_add(len).min(buf.len());
    let psum = sum8(&buf[HEADER_LEN..end]);
    buf[58..66].copy_from_slice(&psum);
    let hsum = sum8(&buf[..66]);
    buf[66..74].copy_from_slice(&hsum);
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the frame size limit: tiny, default or the largest allowed.
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max_frame = match (sel & 3) % 3 {
        0 => wire::MIN_MAX_FRAME,
        1 => wire::DEFAULT_MAX_FRAME,
        _ => wire::MAX_MAX_FRAME,
    };
    let mut owned;
    let rest = if sel & 4 == 4 {
        owned = rest.to_vec();
        fix_up(&mut owned);
        &owned[..]
    } else {
        rest
    };
    let _ = EndInfo::decode(rest);
    let _ = Hello::decode(rest);
    let mut cur = Cursor::new(rest);
    loop {
        let start = cur.position() as usize;
        match wire::read_frame(&mut cur, max_frame) {
            Ok(frame) => {
                let end = cur.position() as usize;
                assert!(end - start >= HEADER_LEN);
                assert!(end - start <= max_frame);
                let mut again = Vec::new();
                frame
                    .encode(&mut again)
                    .expect("a decoded frame re-encodes");
                assert_eq!(&again[..], &rest[start..end], "re-encoding differs");
                if frame.kind == FrameType::End
                    && let Ok(info) = EndInfo::decode(&frame.payload)
                {
                    let enc = info.encode().expect("a decoded END re-encodes");
                    assert_eq!(enc, frame.payload);
                }
                if frame.kind == FrameType::Hello
                    && let Ok(hello) = Hello::decode(&frame.payload)
                {
                    let _ = hello.message(&frame.node, &frame.payload);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                let _ = e.is_header_corruption();
                break;
            }
        }
    }
});
