//! The manifest of a folder or medium of batch files (no live link): which files belong
//! to it, with their size and SHA-256, signed by the node key. Written last, after every
//! file it names is in place, so a reader that sees a manifest sees a complete set; a
//! file missing, extra, of another size or content, or a manifest not signed by a
//! trusted key is reported by name.
//!
//! # Name
//!
//! `manifest-<node>-<first seq, 20 digits>-<last seq, 20 digits>.xml`, ASCII, written
//! to a temporary name, fsynced and renamed like a batch file.
//!
//! # Content
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <manifest format="gapsync-manifest/1" node="plant1" first="5" last="6" created="2026-12-04T10:00:00.000000Z">
//!   <file seq="5" name="plant1-00000000000000000005.sql" size="812" sha256="<64 hex>"/>
//!   <file seq="6" name="plant1-00000000000000000006.sql.zst" size="344" sha256="<64 hex>"/>
//!   <signature key="<16 hex>" value="<128 hex>"/>
//! </manifest>
//! ```
//!
//! `size` and `sha256` are of the file's bytes as they lie on the medium (compressed
//! where the name ends in `.zst`), not of the batch's content. Files are listed in seq
//! order, each seq of `first..=last` at most once (a seq may be absent: quarantined at
//! the sender, or cut for another link). No DOCTYPE or entity is read (quick-xml does
//! not expand them), unknown attributes and elements are refused, and a manifest is at
//! most [`MAX_MANIFEST_BYTES`].
//!
//! # Signature
//!
//! Ed25519 by the node key over these bytes (the domain line keeps a manifest signature
//! from standing for a batch, HELLO or END signature, and the reverse):
//!
//! ```text
//! gapsync-manifest-v1\n<node>\n<first>\n<last>\n<created>\n
//! <seq> <size> <sha256> <name>\n      (one line per file, in order)
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch;
use crate::sign::{BatchSigner, SignError, TrustStore};
use crate::signed_xml::{self, XmlSignature, is_hex};

/// The `format` attribute this version writes and reads.
pub const FORMAT: &str = "gapsync-manifest/1";
/// The first line of the signed bytes.
pub const DOMAIN: &str = "gapsync-manifest-v1";
/// A manifest larger than this is refused unread (a million files is about 200 MB of
/// batches' worth of lines; far more than one publish cycle or medium holds).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// One file a manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub seq: u64,
    pub name: String,
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// A manifest (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub node: String,
    pub first: u64,
    pub last: u64,
    pub created: String,
    pub files: Vec<ManifestFile>,
    /// (key id hex, signature hex); `None`: unsigned (a sender with `insecure = true`).
    pub signature: Option<(String, String)>,
}

/// Why a manifest cannot be read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { path: String },
    #[error("not a manifest: {0}")]
    Xml(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("manifest name {0:?} is not manifest-<node>-<first>-<last>.xml")]
    BadName(String),
    #[error("manifest signature: {0}")]
    Signature(#[from] SignError),
    #[error(
        "the manifest of node {0} is unsigned, and the node has [[trust]] keys (or insecure is off)"
    )]
    Unsigned(String),
}

type Result<T> = std::result::Result<T, ManifestError>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "manifest", deny_unknown_fields)]
struct Xml {
    #[serde(rename = "@format")]
    format: String,
    #[serde(rename = "@node")]
    node: String,
    #[serde(rename = "@first")]
    first: u64,
    #[serde(rename = "@last")]
    last: u64,
    #[serde(rename = "@created")]
    created: String,
    #[serde(rename = "file", default)]
    files: Vec<XmlFile>,
    #[serde(rename = "signature", default, skip_serializing_if = "Option::is_none")]
    signature: Option<XmlSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct XmlFile {
    #[serde(rename = "@seq")]
    seq: u64,
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@size")]
    size: u64,
    #[serde(rename = "@sha256")]
    sha256: String,
}

/// `manifest-<node>-<first>-<last>.xml`.
pub fn manifest_name(node: &str, first: u64, last: u64) -> String {
    format!("manifest-{node}-{first:020}-{last:020}.xml")
}

/// (node, first, last) of a manifest's file name.
pub fn parse_manifest_name(name: &str) -> Result<(String, u64, u64)> {
    let bad = || ManifestError::BadName(name.chars().take(120).collect());
    let body = name
        .strip_prefix("manifest-")
        .and_then(|r| r.strip_suffix(".xml"))
        .ok_or_else(bad)?;
    // The node may hold '-': the two seqs are the last two 20-digit fields.
    let (rest, last) = body.rsplit_once('-').ok_or_else(bad)?;
    let (node, first) = rest.rsplit_once('-').ok_or_else(bad)?;
    let seq = |s: &str| -> Result<u64> {
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (first, last) = (seq(first)?, seq(last)?);
    gapsync_protocol::validate_node(node).map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    Ok((node.to_owned(), first, last))
}

impl Manifest {
    /// A manifest of `files` (in seq order) of `node`, created now, unsigned.
    pub fn new(node: &str, files: Vec<ManifestFile>) -> Result<Manifest> {
        let (Some(first), Some(last)) = (files.first(), files.last()) else {
            return Err(ManifestError::Invalid("no file to list".into()));
        };
        let m = Manifest {
            node: node.to_owned(),
            first: first.seq,
            last: last.seq,
            created: batch::format_created(chrono::Utc::now()),
            files,
            signature: None,
        };
        m.check()?;
        Ok(m)
    }

    /// The file name this manifest is written under.
    pub fn file_name(&self) -> String {
        manifest_name(&self.node, self.first, self.last)
    }

    /// The bytes the signature covers (see the module docs).
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = format!(
            "{DOMAIN}\n{}\n{}\n{}\n{}\n",
            self.node, self.first, self.last, self.created
        );
        for f in &self.files {
            m.push_str(&format!("{} {} {} {}\n", f.seq, f.size, f.sha256, f.name));
        }
        m.into_bytes()
    }

    /// Signs it with the node key.
    pub fn sign(&mut self, signer: &BatchSigner) {
        let sig = signer.sign_link(&self.signing_message());
        self.signature = Some((signer.key_id().to_owned(), hex::encode(sig)));
    }

    /// Checks the signature against the keys trusted for its node. Ok(Some(key id)):
    /// signed by a trusted key; Ok(None): unsigned, accepted because `insecure` is on and
    /// the node has no keys. A node with keys must sign, with or without `insecure`.
    pub fn verify(&self, trust: &TrustStore, insecure: bool) -> Result<Option<String>> {
        let Some((key, value)) = &self.signature else {
            if insecure && !trust.has_node(&self.node) {
                return Ok(None);
            }
            return Err(ManifestError::Unsigned(self.node.clone()));
        };
        let (key_id, sig) = signed_xml::signature_bytes(key, value).ok_or_else(|| {
            ManifestError::Invalid("signature is not <16 hex> / <128 hex>".into())
        })?;
        Ok(Some(trust.verify_link(
            &self.node,
            &key_id,
            &self.signing_message(),
            &sig,
        )?))
    }

    /// The rules of the content (see the module docs).
    fn check(&self) -> Result<()> {
        let bad = |s: String| Err(ManifestError::Invalid(s));
        gapsync_protocol::validate_node(&self.node)
            .map_err(|e| ManifestError::Invalid(format!("node: {e}")))?;
        if self.first > self.last {
            return bad(format!("first {} after last {}", self.first, self.last));
        }
        if !batch::valid_created(&self.created) {
            return bad(format!("created {:?} is not a UTC time", self.created));
        }
        let mut prev: Option<u64> = None;
        for f in &self.files {
            if f.seq < self.first || f.seq > self.last {
                return bad(format!(
                    "file {:?}: seq {} outside {}..={}",
                    f.name, f.seq, self.first, self.last
                ));
            }
            if prev.is_some_and(|p| p >= f.seq) {
                return bad(format!("file {:?}: seq {} out of order", f.name, f.seq));
            }
            prev = Some(f.seq);
            match batch::parse_batch_file_name(&f.name) {
                Ok((node, seq, _)) if node == self.node && seq == f.seq => {}
                _ => {
                    return bad(format!(
                        "file {:?} is not the batch file name of node {} seq {}",
                        f.name.chars().take(120).collect::<String>(),
                        self.node,
                        f.seq
                    ));
                }
            }
            if !is_hex(&f.sha256, 64) {
                return bad(format!("file {:?}: sha256 is not 64 lowercase hex", f.name));
            }
        }
        if let Some((key, value)) = &self.signature
            && !signed_xml::signature_form_ok(key, value)
        {
            return bad("signature is not <16 hex> / <128 hex>".into());
        }
        Ok(())
    }

    /// The XML text (see the module docs).
    pub fn to_xml(&self) -> Result<String> {
        let x = Xml {
            format: FORMAT.to_owned(),
            node: self.node.clone(),
            first: self.first,
            last: self.last,
            created: self.created.clone(),
            files: self
                .files
                .iter()
                .map(|f| XmlFile {
                    seq: f.seq,
                    name: f.name.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
                .collect(),
            signature: self.signature.as_ref().map(|(k, v)| XmlSignature {
                key: k.clone(),
                value: v.clone(),
            }),
        };
        signed_xml::to_xml(&x).map_err(|e| ManifestError::Xml(e.to_string()))
    }

    /// Reads a manifest from its XML text and checks its content rules (not its
    /// signature: [`Manifest::verify`]).
    pub fn parse(text: &str) -> Result<Manifest> {
        let x: Xml = signed_xml::from_xml(text, "manifest")
            .map_err(|e| ManifestError::Xml(e.to_string()))?;
        if x.format != FORMAT {
            return Err(ManifestError::Invalid(format!(
                "format {:?}, this version reads {FORMAT:?}",
                x.format.chars().take(60).collect::<String>()
            )));
        }
        let m = Manifest {
            node: x.node,
            first: x.first,
            last: x.last,
            created: x.created,
            files: x
                .files
                .into_iter()
                .map(|f| ManifestFile {
                    seq: f.seq,
                    name: f.name,
                    size: f.size,
                    sha256: f.sha256,
                })
                .collect(),
            signature: x.signature.map(|s| (s.key, s.value)),
        };
        m.check()?;
        Ok(m)
    }

    /// Reads the manifest file at `path` (never through a symlink), checks that its name
    /// matches its content and its content rules.
    pub fn read(path: &Path) -> Result<Manifest> {
        let shown = path.display().to_string();
        let text = signed_xml::read_capped(path, MAX_MANIFEST_BYTES).map_err(|e| match e {
            signed_xml::ReadError::Io(source) => ManifestError::Io {
                path: shown.clone(),
                source,
            },
            signed_xml::ReadError::TooLarge => ManifestError::TooLarge {
                path: shown.clone(),
            },
        })?;
        let m = Manifest::parse(&text)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if parse_manifest_name(&name)? != (m.node.clone(), m.first, m.last) {
            return Err(ManifestError::Invalid(format!(
                "{name}: its name does not match its node {} and seqs {}..={}",
                m.node, m.first, m.last
            )));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests;
