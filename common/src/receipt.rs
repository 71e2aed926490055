//! The receipt a receiver writes where site rules allow carrying an answer back by hand
//! (no live link): for one node, which seqs are applied, which were quarantined and
//! why, and which are known to be missing. Signed with the receiver's own key when one
//! is configured; the sender's `import-receipt` refuses a forged or altered one.
//!
//! # Name
//!
//! `receipt-<node>-<last seq, 20 digits>.xml`: `last` is the highest seq applied or
//! quarantined.
//!
//! # Content
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <receipt format="gapsync-receipt/1" node="plant1" receiver="mis-1" last="12" created="2026-12-04T10:00:00.000000Z">
//!   <applied first="1" last="4"/>
//!   <applied first="6" last="12"/>
//!   <quarantined seq="5" reason="line 9: UNIQUE constraint failed: t.id"/>
//!   <missing seq="13"/>
//!   <signature key="<16 hex>" value="<128 hex>"/>
//! </receipt>
//! ```
//!
//! The same reading rules as a manifest: no DOCTYPE or comment, unknown fields refused,
//! at most [`MAX_RECEIPT_BYTES`].
//!
//! # Signature
//!
//! Ed25519 by the receiver's key (its node id is the receiver's `[link] id`) over:
//!
//! ```text
//! gapsync-receipt-v1\n<node>\n<receiver>\n<last>\n<created>\n
//! A <first> <last>\n           (each applied range, in order)
//! Q <seq> <reason as a JSON string>\n
//! M <seq>\n
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch;
use crate::sign::{BatchSigner, SignError, TrustStore};
use crate::signed_xml::{self, XmlSignature};

pub const FORMAT: &str = "gapsync-receipt/1";
pub const DOMAIN: &str = "gapsync-receipt-v1";
/// A receipt larger than this is refused unread.
pub const MAX_RECEIPT_BYTES: u64 = 16 << 20;

/// A receipt (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub node: String,
    pub receiver: String,
    pub last: u64,
    pub created: String,
    /// Applied seqs as inclusive ranges, in order, not overlapping.
    pub applied: Vec<(u64, u64)>,
    /// Quarantined seqs with the reason.
    pub quarantined: Vec<(u64, String)>,
    /// Seqs the receiver knows of (a manifest names them, or later ones arrived) but
    /// does not have.
    pub missing: Vec<u64>,
    /// (key id hex, signature hex); None: unsigned.
    pub signature: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_RECEIPT_BYTES} bytes")]
    TooLarge { path: String },
    #[error("not a receipt: {0}")]
    Xml(String),
    #[error("invalid receipt: {0}")]
    Invalid(String),
    #[error("receipt signature: {0}")]
    Signature(#[from] SignError),
    #[error(
        "the receipt is unsigned: configure the receiver's [receipts] key and trust its .pub line here, or set insecure = true"
    )]
    Unsigned,
}

type Result<T> = std::result::Result<T, ReceiptError>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "receipt", deny_unknown_fields)]
struct Xml {
    #[serde(rename = "@format")]
    format: String,
    #[serde(rename = "@node")]
    node: String,
    #[serde(rename = "@receiver")]
    receiver: String,
    #[serde(rename = "@last")]
    last: u64,
    #[serde(rename = "@created")]
    created: String,
    #[serde(rename = "applied", default)]
    applied: Vec<XmlRange>,
    #[serde(rename = "quarantined", default)]
    quarantined: Vec<XmlQuarantined>,
    #[serde(rename = "missing", default)]
    missing: Vec<XmlSeq>,
    #[serde(rename = "signature", default, skip_serializing_if = "Option::is_none")]
    signature: Option<XmlSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct XmlRange {
    #[serde(rename = "@first")]
    first: u64,
    #[serde(rename = "@last")]
    last: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct XmlQuarantined {
    #[serde(rename = "@seq")]
    seq: u64,
    #[serde(rename = "@reason")]
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct XmlSeq {
    #[serde(rename = "@seq")]
    seq: u64,
}

/// Inclusive ranges of `seqs` (sorted, deduplicated).
pub fn ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut v: Vec<u64> = seqs.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in v {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

impl Receipt {
    /// A receipt of `node` created now, unsigned.
    pub fn new(
        node: &str,
        receiver: &str,
        applied: Vec<(u64, u64)>,
        quarantined: Vec<(u64, String)>,
        missing: Vec<u64>,
    ) -> Result<Receipt> {
        let last = applied
            .iter()
            .map(|r| r.1)
            .chain(quarantined.iter().map(|q| q.0))
            .max()
            .unwrap_or(0);
        let r = Receipt {
            node: node.to_owned(),
            receiver: receiver.to_owned(),
            last,
            created: batch::format_created(chrono::Utc::now()),
            applied,
            quarantined,
            missing,
            signature: None,
        };
        r.check()?;
        Ok(r)
    }

    /// `receipt-<node>-<last>.xml`.
    pub fn file_name(&self) -> String {
        format!("receipt-{}-{:020}.xml", self.node, self.last)
    }

    /// The bytes the signature covers (see the module docs).
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = format!(
            "{DOMAIN}\n{}\n{}\n{}\n{}\n",
            self.node, self.receiver, self.last, self.created
        );
        for (a, b) in &self.applied {
            m.push_str(&format!("A {a} {b}\n"));
        }
        for (s, reason) in &self.quarantined {
            let r = serde_json::to_string(reason).unwrap_or_default();
            m.push_str(&format!("Q {s} {r}\n"));
        }
        for s in &self.missing {
            m.push_str(&format!("M {s}\n"));
        }
        m.into_bytes()
    }

    /// Signs it with the receiver's key.
    pub fn sign(&mut self, signer: &BatchSigner) {
        let sig = signer.sign_link(&self.signing_message());
        self.signature = Some((signer.key_id().to_owned(), hex::encode(sig)));
    }

    /// Checks the signature against the receiver keys in `trust` (their node id is the
    /// receiver's id). Ok(Some(key id)): signed by a trusted key; Ok(None): unsigned and
    /// `insecure` with no key configured for that receiver.
    pub fn verify(&self, trust: &TrustStore, insecure: bool) -> Result<Option<String>> {
        let Some((key, value)) = &self.signature else {
            if insecure && !trust.has_node(&self.receiver) {
                return Ok(None);
            }
            return Err(ReceiptError::Unsigned);
        };
        let (key_id, sig) = signed_xml::signature_bytes(key, value)
            .ok_or_else(|| ReceiptError::Invalid("signature is not <16 hex> / <128 hex>".into()))?;
        Ok(Some(trust.verify_link(
            &self.receiver,
            &key_id,
            &self.signing_message(),
            &sig,
        )?))
    }

    fn check(&self) -> Result<()> {
        let bad = |s: String| Err(ReceiptError::Invalid(s));
        gapsync_protocol::validate_node(&self.node)
            .map_err(|e| ReceiptError::Invalid(format!("node: {e}")))?;
        gapsync_protocol::validate_node(&self.receiver)
            .map_err(|e| ReceiptError::Invalid(format!("receiver: {e}")))?;
        if !batch::valid_created(&self.created) {
            return bad(format!("created {:?} is not a UTC time", self.created));
        }
        let mut prev: Option<u64> = None;
        for &(a, b) in &self.applied {
            if a > b || prev.is_some_and(|p| p >= a) || b > self.last {
                return bad(format!("applied range {a}-{b} out of order or past last"));
            }
            prev = Some(b);
        }
        for (s, reason) in &self.quarantined {
            if *s > self.last || reason.len() > 64 << 10 {
                return bad(format!(
                    "quarantined seq {s} past last, or its reason too long"
                ));
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
            receiver: self.receiver.clone(),
            last: self.last,
            created: self.created.clone(),
            applied: self
                .applied
                .iter()
                .map(|&(first, last)| XmlRange { first, last })
                .collect(),
            quarantined: self
                .quarantined
                .iter()
                .map(|(seq, reason)| XmlQuarantined {
                    seq: *seq,
                    reason: reason.clone(),
                })
                .collect(),
            missing: self.missing.iter().map(|&seq| XmlSeq { seq }).collect(),
            signature: self.signature.as_ref().map(|(k, v)| XmlSignature {
                key: k.clone(),
                value: v.clone(),
            }),
        };
        signed_xml::to_xml(&x).map_err(|e| ReceiptError::Xml(e.to_string()))
    }

    /// Reads a receipt from its XML text and checks its rules (not its signature).
    pub fn parse(text: &str) -> Result<Receipt> {
        let x: Xml =
            signed_xml::from_xml(text, "receipt").map_err(|e| ReceiptError::Xml(e.to_string()))?;
        if x.format != FORMAT {
            return Err(ReceiptError::Invalid(format!(
                "format {:?}, this version reads {FORMAT:?}",
                x.format.chars().take(60).collect::<String>()
            )));
        }
        let r = Receipt {
            node: x.node,
            receiver: x.receiver,
            last: x.last,
            created: x.created,
            applied: x.applied.into_iter().map(|r| (r.first, r.last)).collect(),
            quarantined: x
                .quarantined
                .into_iter()
                .map(|q| (q.seq, q.reason))
                .collect(),
            missing: x.missing.into_iter().map(|m| m.seq).collect(),
            signature: x.signature.map(|s| (s.key, s.value)),
        };
        r.check()?;
        Ok(r)
    }

    /// Reads the receipt file at `path` (never through a symlink).
    pub fn read(path: &Path) -> Result<Receipt> {
        let shown = path.display().to_string();
        let text = signed_xml::read_capped(path, MAX_RECEIPT_BYTES).map_err(|e| match e {
            signed_xml::ReadError::Io(source) => ReceiptError::Io {
                path: shown.clone(),
                source,
            },
            signed_xml::ReadError::TooLarge => ReceiptError::TooLarge {
                path: shown.clone(),
            },
        })?;
        Receipt::parse(&text)
    }

    /// Whether `seq` is applied according to this receipt.
    pub fn is_applied(&self, seq: u64) -> bool {
        self.applied.iter().any(|&(a, b)| a <= seq && seq <= b)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sign::generate;

    #[test]
    fn a_signed_receipt_round_trips_and_an_altered_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (_, p, s) = generate("mis-1", d.path()).unwrap();
        let line = std::fs::read_to_string(p).unwrap().trim_end().to_owned();
        let trust = TrustStore::from_config(&[("mis-1".to_owned(), line)]).unwrap();
        let mut r = Receipt::new(
            "plant1",
            "mis-1",
            ranges([1, 2, 3, 4, 6, 7]),
            vec![(5, "line 9: \"x\" <failed> & more".into())],
            vec![9],
        )
        .unwrap();
        assert_eq!(r.applied, vec![(1, 4), (6, 7)]);
        assert_eq!(r.last, 7);
        r.sign(&s);
        let back = Receipt::parse(&r.to_xml().unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(back.verify(&trust, false).is_ok());
        assert!(back.is_applied(6) && !back.is_applied(5));
        let alter: [fn(&mut Receipt); 4] = [
            |r| r.applied[1].1 = 5,
            |r| r.quarantined.clear(),
            |r| r.missing.push(10),
            |r| r.node = "plant2".into(),
        ];
        for (i, f) in alter.iter().enumerate() {
            let mut x = r.clone();
            f(&mut x);
            let e = x.verify(&trust, true).unwrap_err();
            assert!(matches!(e, ReceiptError::Signature(_)), "case {i}: {e}");
        }
        let mut unsigned = r.clone();
        unsigned.signature = None;
        assert!(unsigned.verify(&trust, true).is_err());
        assert!(unsigned.verify(&TrustStore::default(), false).is_err());
        assert!(
            unsigned
                .verify(&TrustStore::default(), true)
                .unwrap()
                .is_none()
        );
        for hostile in [
            r.to_xml()
                .unwrap()
                .replacen("<receipt", "<!DOCTYPE r [<!ENTITY x \"y\">]><receipt", 1),
            r.to_xml()
                .unwrap()
                .replacen("<applied", "<applied evil=\"1\"", 1),
            r.to_xml()
                .unwrap()
                .replacen("first=\"6\"", "first=\"2\"", 1),
        ] {
            assert!(Receipt::parse(&hostile).is_err(), "{hostile}");
        }
    }
}
