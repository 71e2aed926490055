#![allow(clippy::unwrap_used)]
use super::*;
use crate::sign::{BatchSigner, TrustStore, generate};

fn key(dir: &Path, node: &str) -> (BatchSigner, TrustStore) {
    let (_, p, s) = generate(node, dir).unwrap();
    let line = std::fs::read_to_string(p).unwrap().trim_end().to_owned();
    let trust = TrustStore::from_config(&[(node.to_owned(), line)]).unwrap();
    (s, trust)
}

fn files(node: &str, seqs: &[u64]) -> Vec<ManifestFile> {
    seqs.iter()
        .map(|&seq| ManifestFile {
            seq,
            name: batch::batch_file_name(node, seq, seq % 2 == 0),
            size: 100 + seq,
            sha256: format!("{seq:064x}"),
        })
        .collect()
}

#[test]
fn a_signed_manifest_round_trips_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let (s, trust) = key(d.path(), "plant-1");
    let mut m = Manifest::new("plant-1", files("plant-1", &[5, 6, 9])).unwrap();
    m.sign(&s);
    let xml = m.to_xml().unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<manifest format=\"gapsync-manifest/1\" node=\"plant-1\" first=\"5\" last=\"9\""), "{xml}");
    let back = Manifest::parse(&xml).unwrap();
    assert_eq!(back, m);
    assert_eq!(
        back.verify(&trust, false).unwrap().as_deref(),
        Some(s.key_id())
    );
    assert_eq!(
        m.file_name(),
        "manifest-plant-1-00000000000000000005-00000000000000000009.xml"
    );
    assert_eq!(
        parse_manifest_name(&m.file_name()).unwrap(),
        ("plant-1".to_owned(), 5, 9)
    );
}

/// Every field is covered by the signature: an altered size, hash, name, seq range or
/// created time, a dropped file, a signature by another node's key, or none at all for
/// a node with keys, is refused.
#[test]
fn an_altered_or_foreign_manifest_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (s, trust) = key(d.path(), "n1");
    let other = tempfile::tempdir().unwrap();
    let (mallory, _) = key(other.path(), "n1");
    let mut m = Manifest::new("n1", files("n1", &[1, 2, 3])).unwrap();
    m.sign(&s);
    let alter: [fn(&mut Manifest); 5] = [
        |m| m.files[1].size += 1,
        |m| m.files[1].sha256 = format!("{:064x}", 7),
        |m| {
            m.files.remove(1);
        },
        |m| m.last = 4,
        |m| m.created = "2026-01-01T00:00:00.000000Z".into(),
    ];
    for (i, f) in alter.iter().enumerate() {
        let mut x = m.clone();
        f(&mut x);
        let back = Manifest::parse(&x.to_xml().unwrap()).unwrap();
        let e = back.verify(&trust, false).unwrap_err();
        assert!(matches!(e, ManifestError::Signature(_)), "case {i}: {e}");
    }
    let mut forged = m.clone();
    forged.sign(&mallory);
    assert!(forged.verify(&trust, true).is_err());
    let mut unsigned = m.clone();
    unsigned.signature = None;
    assert!(matches!(
        unsigned.verify(&trust, true),
        Err(ManifestError::Unsigned(_))
    ));
    // Without keys for the node, `insecure` accepts it unsigned.
    assert_eq!(unsigned.verify(&TrustStore::default(), true).unwrap(), None);
    assert!(unsigned.verify(&TrustStore::default(), false).is_err());
}

/// What an attacker would put in a manifest: entities, unknown attributes, file names
/// that climb out of the folder or belong to another node or seq, duplicates, a seq
/// outside the range, a name that does not match the content.
#[test]
fn hostile_manifests_are_refused() {
    let good = Manifest::new("n1", files("n1", &[1, 2]))
        .unwrap()
        .to_xml()
        .unwrap();
    let cases = [
        (
            "doctype",
            good.replacen(
                "<manifest",
                "<!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<manifest",
                1,
            ),
        ),
        ("comment", good.replacen("<file", "<!-- x --><file", 1)),
        (
            "unknown attribute",
            good.replacen("<file seq=", "<file evil=\"1\" seq=", 1),
        ),
        (
            "unknown element",
            good.replacen("</manifest>", "<extra/></manifest>", 1),
        ),
        (
            "other format",
            good.replacen("gapsync-manifest/1", "gapsync-manifest/9", 1),
        ),
        (
            "climbing name",
            good.replacen("n1-00000000000000000001.sql", "../../etc/passwd", 1),
        ),
        (
            "other node's file",
            good.replacen(
                "n1-00000000000000000001.sql",
                "n2-00000000000000000001.sql",
                1,
            ),
        ),
        (
            "other seq's file",
            good.replacen(
                "n1-00000000000000000001.sql",
                "n1-00000000000000000002.sql",
                1,
            ),
        ),
        ("duplicate seq", good.replacen("seq=\"2\"", "seq=\"1\"", 1)),
        ("seq outside", good.replacen("last=\"2\"", "last=\"1\"", 1)),
        ("bad hash", good.replacen(&format!("{:064x}", 1), "XYZ", 1)),
        (
            "negative size",
            good.replacen("size=\"101\"", "size=\"-1\"", 1),
        ),
        ("not xml", "hello".to_owned()),
    ];
    for (what, xml) in cases {
        assert_ne!(xml, good, "{what}: the case changed nothing");
        assert!(Manifest::parse(&xml).is_err(), "{what} accepted:\n{xml}");
    }
    for name in [
        "manifest-n1-1-2.xml",
        "manifest-n1-00000000000000000002-00000000000000000001.xml",
        "manifest-../x-00000000000000000001-00000000000000000002.xml",
        "manifest-n1-00000000000000000001-00000000000000000002.xml.tmp",
        "n1-00000000000000000001.sql",
    ] {
        assert!(parse_manifest_name(name).is_err(), "{name}");
    }
    // A name that does not match the content, and an oversized file, are refused by read.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(manifest_name("n1", 1, 3));
    std::fs::write(&p, &good).unwrap();
    assert!(Manifest::read(&p).is_err());
    let p = d.path().join(manifest_name("n1", 1, 2));
    std::fs::write(&p, &good).unwrap();
    assert_eq!(Manifest::read(&p).unwrap().files.len(), 2);
    let link = d.path().join(manifest_name("n1", 1, 2).replace("n1", "n9"));
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(Manifest::read(&link).is_err(), "a symlink was followed");
}
