//! What the manifest and the receipt share as signed XML files: reading one (capped,
//! never through a symlink, no markup declarations), writing one (with the XML
//! declaration, indented), and the `<signature key=".." value=".."/>` element.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `<signature key="<16 hex>" value="<128 hex>"/>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct XmlSignature {
    #[serde(rename = "@key")]
    pub key: String,
    #[serde(rename = "@value")]
    pub value: String,
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether (key id, signature) are 16 and 128 lowercase hex digits.
pub(crate) fn signature_form_ok(key: &str, value: &str) -> bool {
    is_hex(key, 16) && is_hex(value, 128)
}

/// The raw key id and signature of a well-formed signature element.
pub(crate) fn signature_bytes(key: &str, value: &str) -> Option<([u8; 8], [u8; 64])> {
    let k: [u8; 8] = hex::decode(key).ok()?.try_into().ok()?;
    let v: [u8; 64] = hex::decode(value).ok()?.try_into().ok()?;
    Some((k, v))
}

/// Why a signed XML file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    TooLarge,
}

/// The text of the file at `path` (a regular file, no symlink followed, no FIFO waited
/// on), at most `max` bytes.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<String, ReadError> {
    let f = match crate::fsx::open_regular_capped(path, max) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => return Err(ReadError::TooLarge),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let mut text = String::new();
    f.take(max + 1)
        .read_to_string(&mut text)
        .map_err(ReadError::Io)?;
    if text.len() as u64 > max {
        return Err(ReadError::TooLarge);
    }
    Ok(text)
}

/// Why signed XML could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("a DOCTYPE, comment or CDATA section is not part of a {0}")]
    Markup(&'static str),
    #[error("{0}")]
    Read(#[from] quick_xml::DeError),
    #[error("{0}")]
    Write(#[from] quick_xml::SeError),
}

/// Parses `text` as `T`; a DOCTYPE, comment or CDATA section (`<!`) is refused before
/// the parser sees it (no entity is ever expanded, nothing is hidden in a comment).
pub(crate) fn from_xml<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T, XmlError> {
    if text.contains("<!") {
        return Err(XmlError::Markup(what));
    }
    Ok(quick_xml::de::from_str(text)?)
}

/// `x` as an XML document: the declaration, then the element, indented.
pub(crate) fn to_xml<T: Serialize>(x: &T) -> Result<String, XmlError> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    x.serialize(ser)?;
    out.push('\n');
    Ok(out)
}
