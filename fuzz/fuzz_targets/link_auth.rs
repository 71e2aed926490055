//! Link authentication: the HELLO and END payload decoders and the receiver's signature
//! checks over arbitrary bytes. Properties:
//!
//! - decoding never panics; a decoded HELLO or END re-encodes to exactly its bytes
//!   (the layout is exact: no byte more or less is accepted);
//! - nothing random verifies: the trust store holds one fixed key, and no fuzzed HELLO
//!   or END signature may pass `verify_link` (a pass would be a forgery found by a
//!   fuzzer, i.e. a broken check);
//! - the genuine signature, mutated in any byte of the message, fails.
#![no_main]

use gapsync_common::sign::{BatchSigner, TrustStore};
use gapsync_protocol::auth::LinkSigner;
use gapsync_protocol::wire::EndInfo;
use gapsync_protocol::Hello;
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Key(BatchSigner);

impl LinkSigner for Key {
    fn key_id(&self) -> [u8; 8] {
        self.0.key_id_bytes()
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign_link(message)
    }
}

fn key() -> (Key, TrustStore) {
    let dir = std::env::temp_dir().join(format!("gapsync-fuzz-key-{}", std::process::id()));
    let signer = match BatchSigner::load(&dir.join("plant1.key"), "plant1") {
        Ok(s) => s,
        Err(_) => {
            let _ = std::fs::create_dir_all(&dir);
            gapsync_common::sign::generate("plant1", &dir).expect("keygen").2
        }
    };
    let trust =
        TrustStore::from_config(&[("plant1".to_owned(), signer.public_line())]).expect("trust");
    (Key(signer), trust)
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static KEY: (Key, TrustStore) = key();
    }
    KEY.with(|(signer, trust)| {
        if let Ok(h) = Hello::decode(data) {
            let msg = h.message("plant1", data);
            if let Some(auth) = &h.auth {
                assert!(
                    trust
                        .verify_link("plant1", &auth.key_id, &msg, &auth.signature)
                        .is_err(),
                    "a fuzzed HELLO verified"
                );
            }
            let again = Hello::encode(
                "plant1",
                &h.receiver_id,
                h.time,
                h.nonce,
                &h.text,
                None,
            )
            .expect("a decoded HELLO re-encodes");
            if h.auth.is_none() {
                assert_eq!(again, data, "HELLO re-encoding differs");
            }
        }
        if let Ok(info) = EndInfo::decode(data) {
            assert_eq!(info.encode().expect("re-encodes"), data, "END re-encoding differs");
            if let (Some(auth), Ok(msg)) = (&info.auth, info.message("plant1", 1)) {
                assert!(
                    trust
                        .verify_link("plant1", &auth.key_id, &msg, &auth.signature)
                        .is_err(),
                    "a fuzzed END verified"
                );
            }
            // The genuine signature of this END, with one message byte changed, fails.
            let mut signed = info.clone();
            if signed.sign("plant1", 1, signer).is_ok()
                && let (Some(auth), Ok(mut msg)) = (&signed.auth, signed.message("plant1", 1))
            {
                assert!(trust
                    .verify_link("plant1", &auth.key_id, &msg, &auth.signature)
                    .is_ok());
                let i = usize::from(data.first().copied().unwrap_or(0)) % msg.len();
                msg[i] ^= 0x01;
                assert!(trust
                    .verify_link("plant1", &auth.key_id, &msg, &auth.signature)
                    .is_err());
            }
        }
    });
});
