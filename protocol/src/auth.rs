//! Authentication of a link (`gapsync/2`): the HELLO payload, the signed HELLO and END
//! messages, and the [`LinkSigner`] a sender signs them with.
//!
//! The byte layouts and the reasoning (why HELLO and END, and not every frame) are in
//! the crate documentation, section "Authentication". This module only encodes, decodes
//! and builds the exact messages; the keys and the verification live with the caller
//! (the receiver's trust store), so this crate holds no key material and no crypto.

use std::fmt;

use crate::wire::{FrameError, PROTOCOL_TAG, validate_node};

/// Domain prefix of the signed HELLO message.
pub const HELLO_DOMAIN: &[u8] = b"gapsync/2 HELLO\n";
/// Domain prefix of the signed END message.
pub const END_DOMAIN: &[u8] = b"gapsync/2 END\n";
/// Tag of the previous protocol version; a HELLO starting with it is an older sender.
pub const OLD_TAG: &str = "gapsync/1";
/// Longest receiver id.
pub const MAX_RECEIVER_ID_LEN: usize = 64;
/// Longest HELLO free text.
pub const MAX_HELLO_TEXT_LEN: usize = 256;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a key id on the wire.
pub const KEY_ID_LEN: usize = 8;

/// Scheme byte: unsigned (accepted only by an `insecure` receiver, for a node without
/// keys).
pub const SCHEME_NONE: u8 = 0;
/// Scheme byte: Ed25519.
pub const SCHEME_ED25519: u8 = 1;

/// Fixed part of a HELLO payload before the receiver id: tag (9), scheme (1), time
/// (8), nonce (16), key id (8), receiver id length (1).
const HELLO_FIXED: usize = 9 + 1 + 8 + 16 + KEY_ID_LEN + 1;

/// Signs link messages with the node key. The receiver checks the signature against
/// the `[[trust]]` keys of the node.
pub trait LinkSigner: Send + Sync + fmt::Debug {
    /// The key id: the first 8 bytes of SHA-256 of the public key.
    fn key_id(&self) -> [u8; KEY_ID_LEN];
    /// An Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN];
}

/// A key id and a signature, as carried by HELLO and END with scheme 1.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkSignature {
    /// First 8 bytes of SHA-256 of the signing public key.
    pub key_id: [u8; KEY_ID_LEN],
    /// The Ed25519 signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl fmt::Debug for LinkSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSignature")
            .field("key_id", &hex8(&self.key_id))
            .finish_non_exhaustive()
    }
}

fn hex8(b: &[u8; KEY_ID_LEN]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl LinkSignature {
    /// The key id as 16 lowercase hex digits (as in `.pub` lines and logs).
    pub fn key_id_hex(&self) -> String {
        hex8(&self.key_id)
    }
}

/// Checks a receiver id: 1..=64 bytes of ASCII letters, digits, `.`, `_` and `-`.
pub fn validate_receiver_id(id: &str) -> Result<(), FrameError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_RECEIVER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadHello(format!(
            "invalid receiver id {id:?}: 1..={MAX_RECEIVER_ID_LEN} of [A-Za-z0-9._-]"
        )))
    }
}

/// A decoded HELLO payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Seconds since the Unix epoch on the sender's clock.
    pub time: u64,
    /// Fresh random bytes, one set per connection.
    pub nonce: [u8; 16],
    /// The receiver id the sender means to talk to.
    pub receiver_id: String,
    /// Free text for logs (the sender's name and version).
    pub text: String,
    /// The signature (scheme 1), `None` for scheme 0.
    pub auth: Option<LinkSignature>,
    /// The signed part of the payload (everything before the signature).
    signed_len: usize,
}

impl Hello {
    /// Builds and encodes a HELLO payload for `node`, signed by `signer` if given.
    pub fn encode(
        node: &str,
        receiver_id: &str,
        time: u64,
        nonce: [u8; 16],
        text: &str,
        signer: Option<&dyn LinkSigner>,
    ) -> Result<Vec<u8>, FrameError> {
        validate_node(node)?;
        validate_receiver_id(receiver_id)?;
        // The text is for logs only: cut it (on a char boundary) rather than refuse.
        let mut cut = text.len().min(MAX_HELLO_TEXT_LEN);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = &text[..cut];
        let mut p = Vec::with_capacity(HELLO_FIXED + receiver_id.len() + 2 + text.len() + 64);
        p.extend_from_slice(PROTOCOL_TAG.as_bytes());
        p.push(if signer.is_some() {
            SCHEME_ED25519
        } else {
            SCHEME_NONE
        });
        p.extend_from_slice(&time.to_be_bytes());
        p.extend_from_slice(&nonce);
        p.extend_from_slice(&signer.map(|s| s.key_id()).unwrap_or_default());
        p.push(receiver_id.len() as u8); // validated <= 64
        p.extend_from_slice(receiver_id.as_bytes());
        p.extend_from_slice(&(text.len() as u16).to_be_bytes()); // cut to <= 256
        p.extend_from_slice(text.as_bytes());
        if let Some(s) = signer {
            let sig = s.sign(&hello_message(node, &p));
            p.extend_from_slice(&sig);
        }
        Ok(p)
    }

    /// Decodes a HELLO payload. The layout must be exact (no byte more or less); a
    /// payload starting with `gapsync/1` is [`FrameError::OldPeer`].
    pub fn decode(payload: &[u8]) -> Result<Hello, FrameError> {
        let bad = |why: String| FrameError::BadHello(why);
        if payload.starts_with(OLD_TAG.as_bytes()) {
            return Err(FrameError::OldPeer(OLD_TAG));
        }
        if !payload.starts_with(PROTOCOL_TAG.as_bytes()) {
            return Err(bad(format!(
                "does not start with {PROTOCOL_TAG:?} (another protocol or version)"
            )));
        }
        if payload.len() < HELLO_FIXED {
            return Err(bad(format!(
                "{} bytes, shorter than the fixed part",
                payload.len()
            )));
        }
        let scheme = payload[9];
        if scheme != SCHEME_NONE && scheme != SCHEME_ED25519 {
            return Err(bad(format!("unknown scheme {scheme}")));
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&payload[10..18]);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&payload[18..34]);
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&payload[34..42]);
        let r = usize::from(payload[42]);
        if !(1..=MAX_RECEIVER_ID_LEN).contains(&r) || payload.len() < HELLO_FIXED + r + 2 {
            return Err(bad(format!("receiver id length {r} does not fit")));
        }
        let receiver_id = std::str::from_utf8(&payload[43..43 + r])
            .map_err(|_| bad("receiver id is not ASCII".into()))?
            .to_owned();
        validate_receiver_id(&receiver_id)?;
        let t_at = 43 + r;
        let t = usize::from(u16::from_be_bytes([payload[t_at], payload[t_at + 1]]));
        if t > MAX_HELLO_TEXT_LEN {
            return Err(bad(format!("text of {t} bytes, over {MAX_HELLO_TEXT_LEN}")));
        }
        let signed_len = t_at + 2 + t;
        let want = signed_len
            + if scheme == SCHEME_ED25519 {
                SIGNATURE_LEN
            } else {
                0
            };
        if payload.len() != want {
            return Err(bad(format!(
                "{} bytes, but the layout needs exactly {want}",
                payload.len()
            )));
        }
        let text = std::str::from_utf8(&payload[t_at + 2..signed_len])
            .map_err(|_| bad("text is not UTF-8".into()))?
            .to_owned();
        let auth = (scheme == SCHEME_ED25519).then(|| {
            let mut signature = [0u8; SIGNATURE_LEN];
            signature.copy_from_slice(&payload[signed_len..]);
            LinkSignature { key_id, signature }
        });
        if auth.is_none() && key_id != [0u8; KEY_ID_LEN] {
            return Err(bad("unsigned HELLO with a non-zero key id".into()));
        }
        Ok(Hello {
            time: u64::from_be_bytes(time),
            nonce,
            receiver_id,
            text,
            auth,
            signed_len,
        })
    }

    /// The message the signature covers, for `node` and the payload this was decoded
    /// from.
    pub fn message(&self, node: &str, payload: &[u8]) -> Vec<u8> {
        hello_message(node, &payload[..self.signed_len.min(payload.len())])
    }
}

fn hello_message(node: &str, signed_payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HELLO_DOMAIN.len() + 1 + node.len() + signed_payload.len());
    m.extend_from_slice(HELLO_DOMAIN);
    m.push(node.len() as u8); // node ids are validated to 1..=32 bytes
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(signed_payload);
    m
}

/// The END message: domain, node, seq and the END payload without its signature.
pub fn end_message(node: &str, seq: u64, signed_payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(END_DOMAIN.len() + 1 + node.len() + 8 + signed_payload.len());
    m.extend_from_slice(END_DOMAIN);
    m.push(node.len() as u8);
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(signed_payload);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fake;
    impl LinkSigner for Fake {
        fn key_id(&self) -> [u8; KEY_ID_LEN] {
            [9; KEY_ID_LEN]
        }
        fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
            let mut s = [0u8; SIGNATURE_LEN];
            for (i, b) in message.iter().enumerate() {
                s[i % SIGNATURE_LEN] ^= *b;
            }
            s
        }
    }

    #[test]
    fn hello_round_trip_signed_and_unsigned() {
        let nonce = [3u8; 16];
        let p = Hello::encode(
            "plant-1",
            "mis_1",
            1_700_000_000,
            nonce,
            "sender 1",
            Some(&Fake),
        )
        .expect("encode");
        assert_eq!(&p[..9], b"gapsync/2");
        assert_eq!(p[9], SCHEME_ED25519);
        assert_eq!(p.len(), 43 + 5 + 2 + 8 + 64);
        let h = Hello::decode(&p).expect("decode");
        assert_eq!(h.time, 1_700_000_000);
        assert_eq!(h.nonce, nonce);
        assert_eq!(h.receiver_id, "mis_1");
        assert_eq!(h.text, "sender 1");
        let auth = h.auth.clone().expect("signed");
        assert_eq!(auth.key_id, [9; 8]);
        let msg = h.message("plant-1", &p);
        assert!(msg.starts_with(HELLO_DOMAIN));
        assert_eq!(auth.signature, Fake.sign(&msg));
        // The node is part of the message: another node's message differs.
        assert_ne!(h.message("plant-2", &p), msg);

        let u = Hello::encode("n", "r", 5, nonce, "", None).expect("encode");
        let h = Hello::decode(&u).expect("decode");
        assert!(h.auth.is_none());
        assert_eq!(u.len(), 43 + 1 + 2);
    }

    #[test]
    fn hello_decode_refuses_every_malformed_layout() {
        let p = Hello::encode("n", "r", 5, [1; 16], "t", Some(&Fake)).expect("encode");
        for cut in 0..p.len() {
            assert!(Hello::decode(&p[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert!(Hello::decode(&longer).is_err());
        let mut scheme = p.clone();
        scheme[9] = 2;
        assert!(Hello::decode(&scheme).is_err());
        let mut unsigned_with_id = Hello::encode("n", "r", 5, [1; 16], "t", None).expect("e");
        unsigned_with_id[34] = 1;
        assert!(Hello::decode(&unsigned_with_id).is_err());
        let mut rid = p.clone();
        rid[43] = b'/';
        assert!(Hello::decode(&rid).is_err());
        assert!(matches!(
            Hello::decode(b"gapsync/1 sender 0.1.0"),
            Err(FrameError::OldPeer(_))
        ));
        assert!(Hello::decode(b"HTTP/1.1 GET /").is_err());
        assert!(Hello::encode("n", "", 5, [1; 16], "", None).is_err());
        assert!(Hello::encode("n", &"r".repeat(65), 5, [1; 16], "", None).is_err());
        // A long text is cut for the log, not refused.
        let long = Hello::encode("n", "r", 5, [1; 16], &"é".repeat(300), None).expect("e");
        assert!(Hello::decode(&long).expect("d").text.len() <= MAX_HELLO_TEXT_LEN);
    }

    #[test]
    fn end_message_binds_node_and_seq() {
        let a = end_message("n", 1, b"payload");
        assert!(a.starts_with(END_DOMAIN));
        assert_ne!(a, end_message("n", 2, b"payload"));
        assert_ne!(a, end_message("m", 1, b"payload"));
        assert_ne!(
            hello_message("n", b"x")[..HELLO_DOMAIN.len()],
            a[..HELLO_DOMAIN.len()]
        );
    }
}
