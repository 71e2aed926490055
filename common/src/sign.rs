//! Ed25519 batch signatures (design §5): key files, the signed message, signing and
//! verification against the receiver's trusted keys.
//!
//! # Key files
//!
//! Both are one line of ASCII text ending in `\n`, written by `gapsync-sender keygen`:
//!
//! ```text
//! <node>.key  gapsync-ed25519-private <node> <64 lowercase hex: the 32-byte secret seed>
//! <node>.pub  gapsync-ed25519 <node> <key id> <64 lowercase hex: the 32-byte public key>
//! ```
//!
//! The key id is the first 8 bytes of SHA-256 of the 32 public key bytes, as 16 lowercase
//! hex digits. The private file is created with mode `0600` and is refused at load time
//! if group or others may read or write it (like ssh does), so a key copied carelessly
//! is noticed before it signs anything. The `.pub` line is what the receiver's
//! `[[trust]] key = "..."` holds; its node must equal the entry's `node`.
//!
//! # Signed message
//!
//! The signature covers the node, the seq, the final file name (as shipped, `.sql` or
//! `.sql.zst`) and the SHA-256 of the content (the `-- sha256:` trailer's value), as the
//! byte string
//!
//! ```text
//! gapsync-batch-v1\n<node>\n<seq in decimal>\n<file name>\n<sha256 as 64 lowercase hex>\n
//! ```
//!
//! (the domain prefix keeps a batch signature from meaning anything else). It is
//! appended to the batch as `-- signature: <key id> <128 lowercase hex: the 64-byte
//! signature>` after the sha256 trailer, and verified with `verify_strict`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// First word of a private key file.
pub const PRIVATE_TAG: &str = "gapsync-ed25519-private";
/// First word of a public key line.
pub const PUBLIC_TAG: &str = "gapsync-ed25519";
/// Domain prefix of the signed message (first line).
pub const DOMAIN: &str = "gapsync-batch-v1";

/// Everything that can go wrong with keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: already exists (refusing to overwrite a key)")]
    Exists { path: PathBuf },
    #[error("{path}: not a gapsync private key file: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error(
        "{path}: private key file is accessible by group or others (mode {mode:o}): chmod 600 it"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("invalid public key line {line:?}: {reason}")]
    BadPublicKey { line: String, reason: String },
    #[error("batch is not signed (no '-- signature:' line) and node {node} requires signatures")]
    Unsigned { node: String },
    #[error("malformed signature line: {0}")]
    MalformedSignature(String),
    #[error("signature key id {key_id} is not a trusted key of node {node}")]
    UnknownKey { node: String, key_id: String },
    #[error(
        "bad signature by key {key_id} of node {node}: forged, or node/seq/file name/content changed after signing"
    )]
    BadSignature { node: String, key_id: String },
}

type Result<T> = std::result::Result<T, SignError>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SignError + '_ {
    move |source| SignError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Key id of a public key: first 8 bytes of its SHA-256, hex.
pub fn key_id(public: &[u8; 32]) -> String {
    let h = Sha256::digest(public);
    hex::encode(&h[..8])
}

/// Key id as raw bytes: the first 8 bytes of SHA-256 of the public key.
pub fn key_id_bytes(public: &[u8; 32]) -> [u8; 8] {
    let h = Sha256::digest(public);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// The exact bytes that are signed for a batch.
pub fn signing_message(node: &str, seq: u64, name: &str, content_sha256: &[u8; 32]) -> Vec<u8> {
    format!(
        "{DOMAIN}\n{node}\n{seq}\n{name}\n{}\n",
        hex::encode(content_sha256)
    )
    .into_bytes()
}

/// A key's 32 bytes were not written as 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("expected 64 lowercase hex digits")]
pub struct NotHex32;

fn parse_hex32(s: &str) -> std::result::Result<[u8; 32], NotHex32> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NotHex32);
    }
    let v = hex::decode(s).map_err(|_| NotHex32)?;
    v.try_into().map_err(|_| NotHex32)
}

/// A sender's private key, loaded from its key file.
#[derive(Clone)]
pub struct BatchSigner {
    node: String,
    key_id: String,
    key: SigningKey,
}

impl fmt::Debug for BatchSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSigner")
            .field("node", &self.node)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl BatchSigner {
    fn from_seed(node: &str, seed: &[u8; 32]) -> BatchSigner {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(key.verifying_key().as_bytes());
        BatchSigner {
            node: node.to_owned(),
            key_id,
            key,
        }
    }

    /// Loads `path` (see the module docs); its node must be `node`.
    pub fn load(path: &Path, node: &str) -> Result<BatchSigner> {
        let bad = |reason: String| SignError::BadKeyFile {
            path: path.to_owned(),
            reason,
        };
        let f = fs::File::open(path).map_err(io_at(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = f.metadata().map_err(io_at(path))?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SignError::Permissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let mut text = String::new();
        f.take(4096)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("not UTF-8 text ({e})")))?;
        let line = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("expected one line ending in a newline".to_owned()))?;
        let parts: Vec<&str> = line.split(' ').collect();
        let [tag, knode, seed] = parts[..] else {
            return Err(bad(format!(
                "expected '{PRIVATE_TAG} <node> <64 hex>', found {} fields",
                parts.len()
            )));
        };
        if tag != PRIVATE_TAG {
            return Err(bad(format!("expected {PRIVATE_TAG:?} first")));
        }
        if knode != node {
            return Err(bad(format!(
                "key is for node {knode:?}, but this sender is node {node:?}"
            )));
        }
        let seed = parse_hex32(seed).map_err(|e| bad(e.to_string()))?;
        Ok(BatchSigner::from_seed(node, &seed))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key line (`.pub` file content without the newline).
    pub fn public_line(&self) -> String {
        format!(
            "{PUBLIC_TAG} {} {} {}",
            self.node,
            self.key_id,
            hex::encode(self.key.verifying_key().as_bytes())
        )
    }

    /// The key id as the 8 raw bytes the link protocol carries.
    pub fn key_id_bytes(&self) -> [u8; 8] {
        key_id_bytes(self.key.verifying_key().as_bytes())
    }

    /// Signs a link-protocol message (HELLO or END, see `gapsync_protocol`'s
    /// authentication docs; those messages carry their own domain prefix, distinct from
    /// [`DOMAIN`], so a link signature never verifies as a batch signature and back).
    pub fn sign_link(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The text of the `-- signature:` line (after the prefix): `<key id> <hex>`.
    pub fn sign(&self, seq: u64, name: &str, content_sha256: &[u8; 32]) -> String {
        let msg = signing_message(&self.node, seq, name, content_sha256);
        let sig = self.key.sign(&msg);
        format!("{} {}", self.key_id, hex::encode(sig.to_bytes()))
    }
}

/// Writes a new key pair for `node` into `dir`: `<node>.key` (mode 0600) and
/// `<node>.pub`. Refuses to overwrite either. The seed comes from `/dev/urandom`.
pub fn generate(node: &str, dir: &Path) -> Result<(PathBuf, PathBuf, BatchSigner)> {
    let key_path = dir.join(format!("{node}.key"));
    let pub_path = dir.join(format!("{node}.pub"));
    for p in [&key_path, &pub_path] {
        if p.try_exists().map_err(io_at(p))? {
            return Err(SignError::Exists { path: p.clone() });
        }
    }
    let rnd = Path::new("/dev/urandom");
    let mut seed = [0u8; 32];
    fs::File::open(rnd)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io_at(rnd))?;
    let signer = BatchSigner::from_seed(node, &seed);
    let private = format!("{PRIVATE_TAG} {node} {}\n", hex::encode(seed));
    write_new(&key_path, private.as_bytes(), 0o600)?;
    write_new(
        &pub_path,
        format!("{}\n", signer.public_line()).as_bytes(),
        0o644,
    )?;
    Ok((key_path, pub_path, signer))
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => SignError::Exists {
            path: path.to_owned(),
        },
        _ => SignError::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io_at(path))
}

/// A trusted public key (one `.pub` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub node: String,
    pub key_id: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses a `.pub` line (surrounding whitespace ignored).
    pub fn parse(line: &str) -> Result<PublicKey> {
        let bad = |reason: &str| SignError::BadPublicKey {
            line: line.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [tag, node, id, hexkey] = parts[..] else {
            return Err(bad("expected 'gapsync-ed25519 <node> <key id> <64 hex>'"));
        };
        if tag != PUBLIC_TAG {
            return Err(bad("expected \"gapsync-ed25519\" first"));
        }
        let bytes = parse_hex32(hexkey).map_err(|e| bad(&e.to_string()))?;
        if key_id(&bytes) != id {
            return Err(bad(
                "key id does not match the key (damaged or edited line)",
            ));
        }
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 key"))?;
        Ok(PublicKey {
            node: node.to_owned(),
            key_id: id.to_owned(),
            key,
        })
    }
}

/// The receiver's trusted keys, by node.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<PublicKey>,
}

impl TrustStore {
    /// From the config's `[[trust]]` (node, public key line) pairs; the line's node must
    /// equal the entry's node.
    pub fn from_config(entries: &[(String, String)]) -> Result<TrustStore> {
        let mut keys = Vec::new();
        for (node, line) in entries {
            let k = PublicKey::parse(line)?;
            if &k.node != node {
                return Err(SignError::BadPublicKey {
                    line: line.clone(),
                    reason: format!(
                        "key is for node {:?}, the [[trust]] entry says {node:?}",
                        k.node
                    ),
                });
            }
            keys.push(k);
        }
        Ok(TrustStore { keys })
    }

    /// Whether any key is trusted for `node`.
    pub fn has_node(&self, node: &str) -> bool {
        self.keys.iter().any(|k| k.node == node)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies a link-protocol signature (HELLO or END) of `node` by the trusted key
    /// whose raw id is `key_id`; returns the key id (hex).
    pub fn verify_link(
        &self,
        node: &str,
        key_id: &[u8; 8],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<String> {
        let id = hex::encode(key_id);
        self.check(node, &id, message, signature)?;
        Ok(id)
    }

    /// `signature` over `message` by the trusted key `id` of `node`.
    fn check(&self, node: &str, id: &str, message: &[u8], signature: &[u8; 64]) -> Result<()> {
        let key = self
            .keys
            .iter()
            .find(|k| k.node == node && k.key_id == id)
            .ok_or_else(|| SignError::UnknownKey {
                node: node.to_owned(),
                key_id: id.chars().take(64).collect(),
            })?;
        key.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| SignError::BadSignature {
                node: node.to_owned(),
                key_id: id.to_owned(),
            })
    }

    /// Verifies `signature` (the text after `-- signature: `) of a batch against the keys
    /// trusted for `node`; returns the key id that signed it.
    pub fn verify(
        &self,
        node: &str,
        seq: u64,
        name: &str,
        content_sha256: &[u8; 32],
        signature: Option<&str>,
    ) -> Result<String> {
        let Some(sig) = signature else {
            return Err(SignError::Unsigned {
                node: node.to_owned(),
            });
        };
        let (id, sig_hex) = sig.split_once(' ').ok_or_else(|| {
            SignError::MalformedSignature("expected '<key id> <128 hex>'".to_owned())
        })?;
        if sig_hex.len() != 128
            || !sig_hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(SignError::MalformedSignature(
                "signature must be 128 lowercase hex digits".to_owned(),
            ));
        }
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(sig_hex, &mut bytes)
            .map_err(|e| SignError::MalformedSignature(e.to_string()))?;
        let msg = signing_message(node, seq, name, content_sha256);
        self.check(node, id, &msg, &bytes)?;
        Ok(id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "plant1-00000000000000000007.sql";

    fn pair(dir: &Path, node: &str) -> (BatchSigner, String) {
        let (k, p, s) = generate(node, dir).expect("generate");
        let loaded = BatchSigner::load(&k, node).expect("load");
        assert_eq!(loaded.public_line(), s.public_line());
        let line = fs::read_to_string(p).expect("read pub");
        (loaded, line.trim_end().to_owned())
    }

    fn store(entries: &[(&str, &str)]) -> TrustStore {
        let v: Vec<(String, String)> = entries
            .iter()
            .map(|(n, l)| ((*n).to_owned(), (*l).to_owned()))
            .collect();
        TrustStore::from_config(&v).expect("trust store")
    }

    #[test]
    fn message_is_fixed() {
        let m = signing_message("plant1", 7, NAME, &[0xab; 32]);
        let want = format!("gapsync-batch-v1\nplant1\n7\n{NAME}\n{}\n", "ab".repeat(32));
        assert_eq!(m, want.into_bytes());
    }

    #[test]
    fn keygen_files_and_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, line) = pair(dir.path(), "plant1");
        let key_text = fs::read_to_string(dir.path().join("plant1.key")).expect("key");
        assert!(key_text.starts_with("gapsync-ed25519-private plant1 "));
        assert_eq!(key_text.len(), "gapsync-ed25519-private plant1 ".len() + 65);
        assert!(line.starts_with(&format!("gapsync-ed25519 plant1 {} ", s.key_id())));
        assert_eq!(s.key_id().len(), 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(dir.path().join("plant1.key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
        }
        // No overwrite.
        assert!(matches!(
            generate("plant1", dir.path()),
            Err(SignError::Exists { .. })
        ));
    }

    #[test]
    fn sign_verify_and_every_forgery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, line) = pair(dir.path(), "plant1");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let (other, other_line) = pair(other_dir.path(), "plant1");
        let t = store(&[("plant1", &line)]);
        let sha = [7u8; 32];
        let sig = s.sign(7, NAME, &sha);
        assert_eq!(
            t.verify("plant1", 7, NAME, &sha, Some(&sig)).expect("ok"),
            s.key_id()
        );
        let err = |r: Result<String>| r.expect_err("must fail").to_string();
        assert!(err(t.verify("plant1", 7, NAME, &sha, None)).contains("not signed"));
        // Changed seq, name, content, node.
        assert!(err(t.verify("plant1", 8, NAME, &sha, Some(&sig))).contains("bad signature"));
        let other_name = "plant1-00000000000000000008.sql";
        assert!(err(t.verify("plant1", 7, other_name, &sha, Some(&sig))).contains("bad signature"));
        assert!(err(t.verify("plant1", 7, NAME, &[8; 32], Some(&sig))).contains("bad signature"));
        assert!(err(t.verify("plant2", 7, NAME, &sha, Some(&sig))).contains("not a trusted key"));
        // Untrusted key.
        let forged = other.sign(7, NAME, &sha);
        assert!(err(t.verify("plant1", 7, NAME, &sha, Some(&forged))).contains("not a trusted"));
        // A flipped signature byte.
        let mut bad = sig.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).expect("utf8");
        assert!(err(t.verify("plant1", 7, NAME, &sha, Some(&bad))).contains("bad signature"));
        assert!(err(t.verify("plant1", 7, NAME, &sha, Some("abc"))).contains("malformed"));
        // Rotation: both keys trusted.
        let both = store(&[("plant1", &line), ("plant1", &other_line)]);
        both.verify("plant1", 7, NAME, &sha, Some(&sig))
            .expect("old key");
        both.verify("plant1", 7, NAME, &sha, Some(&forged))
            .expect("new key");
    }

    #[test]
    fn bad_files_and_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, line) = pair(dir.path(), "plant1");
        let key = dir.path().join("plant1.key");
        assert!(
            BatchSigner::load(&key, "plant2")
                .expect_err("node")
                .to_string()
                .contains("for node")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(matches!(
                BatchSigner::load(&key, "plant1"),
                Err(SignError::Permissions { .. })
            ));
        }
        let junk = dir.path().join("junk.key");
        write_new(&junk, b"hello\n", 0o600).expect("write");
        let e = BatchSigner::load(&junk, "plant1")
            .expect_err("junk")
            .to_string();
        assert!(
            e.contains("junk.key") && e.contains("not a gapsync private key"),
            "{e}"
        );
        let missing = BatchSigner::load(&dir.path().join("nope.key"), "plant1")
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("nope.key"), "{missing}");
        // Public lines.
        let entries = vec![("plant2".to_owned(), line.clone())];
        assert!(TrustStore::from_config(&entries).is_err());
        let mut edited = line.clone().into_bytes();
        let last = edited.len() - 1;
        edited[last] = if edited[last] == b'0' { b'1' } else { b'0' };
        let edited = String::from_utf8(edited).expect("utf8");
        assert!(PublicKey::parse(&edited).is_err());
        assert!(PublicKey::parse("gapsync-ed25519 plant1").is_err());
    }
}
