//! Batch file parser: `verify_batch` and the streaming `open_statements` reader over a
//! file holding the fuzz input (the parser reads files, so the input goes to a temp
//! file). The first byte picks compression and limits. The file is named after the
//! input's own `-- node:` / `-- seq:` lines (when usable) so that inputs get past the
//! name/header cross-check. Both passes must agree.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use gapsync_common::batch::{self, ReadLimits};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("gapsync-fuzz-batch-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

/// The value of header line `-- key: value` if present.
fn header_value<'a>(text: &'a [u8], key: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(text.get(..4096.min(text.len()))?).ok()?;
    let prefix = format!("-- {key}: ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

fn file_name(content: &[u8], compressed: bool) -> String {
    let node = header_value(content, "node")
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && !n.starts_with('.')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or("plant1");
    let seq = header_value(content, "seq")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1);
    batch::batch_file_name(node, seq, compressed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, content)) = data.split_first() else {
        return;
    };
    // bit 0: `.sql.zst` name; bit 1: compress the content here (else raw bytes, which
    // fuzzes the zstd frame reader for a `.zst` name); bits 2-3: limits.
    let compressed = sel & 1 == 1;
    let limits = match (sel >> 2) & 3 {
        0 => ReadLimits::default(),
        1 => ReadLimits {
            max_decompressed: 512,
            ..ReadLimits::default()
        },
        2 => ReadLimits {
            max_statement_len: 16,
            ..ReadLimits::default()
        },
        _ => ReadLimits {
            max_statements: 1,
            ..ReadLimits::default()
        },
    };
    let bytes = if compressed && sel & 2 == 2 {
        zstd::encode_all(content, 1).expect("zstd")
    } else {
        content.to_vec()
    };
    let path = dir().join(file_name(content, compressed));
    std::fs::write(&path, &bytes).expect("write temp file");

    let verified = batch::verify_batch(&path, &limits);
    let streamed = (|| {
        let mut r = batch::open_statements(&path, &limits)?;
        let _ = (r.header(), r.name());
        let mut buf = String::new();
        let mut n = 0u64;
        while r.next_statement(&mut buf)?.is_some() {
            n += 1;
        }
        assert_eq!(n, r.header().statements);
        // After the end the reader keeps answering `None`.
        assert!(r.next_statement(&mut buf)?.is_none());
        Ok::<_, batch::BatchError>((r.content_sha256(), r.signature().map(str::to_owned)))
    })();
    let _ = std::fs::remove_file(&path);
    match (&verified, &streamed) {
        (Ok(v), Ok((sha, sig))) => {
            assert_eq!(Some(v.content_sha256), *sha);
            assert_eq!(&v.signature, sig);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("verify_batch and the streaming reader disagree: {verified:?} / {streamed:?}"),
    }
});
