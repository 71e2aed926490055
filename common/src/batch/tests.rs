//! Unit tests of the batch file format: round trips, tampering, renames, bombs.

use super::*;
use std::fs;
use std::io::Write;

fn header(seq: u64, statements: u64) -> BatchHeader {
    BatchHeader {
        node: "plant1".to_owned(),
        seq,
        created: "2026-11-21T10:00:00.123456Z".to_owned(),
        dialect: "sqlite".to_owned(),
        kind: BatchKind::Changes,
        changes: Some((101, 103)),
        statements,
    }
}

fn write(dir: &Path, seq: u64, stmts: &[String], compress: bool) -> WrittenBatch {
    let mut w =
        BatchWriter::create(dir, header(seq, stmts.len() as u64), compress, 3).expect("create");
    for s in stmts {
        w.push(s).expect("push");
    }
    w.finish().expect("finish")
}

fn read_all(path: &Path, limits: &ReadLimits) -> Result<Vec<(u64, String)>> {
    let mut r = open_statements(path, limits)?;
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(line) = r.next_statement(&mut buf)? {
        out.push((line, buf.clone()));
    }
    Ok(out)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    v.sort();
    v
}

/// Writes `text` plus a correct sha256 trailer (and optional extra tail, unhashed).
fn craft(dir: &Path, name: &str, text: &str, tail: &str) -> PathBuf {
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    let path = dir.join(name);
    fs::write(&path, format!("{text}{SHA_PREFIX}{sha}\n{tail}")).expect("write");
    path
}

const HEAD: &str = "-- gapsync batch v1\n-- node: plant1\n-- seq: 1\n-- created: 2026-11-21T10:00:00.123456Z\n\
                    -- dialect: sqlite\n-- kind: changes\n-- changes: 101-103\n-- statements: 2\n";
const NAME1: &str = "plant1-00000000000000000001.sql";

fn sample() -> Vec<String> {
    let mut v = vec![
        r#"INSERT INTO "t" ("id", "s") VALUES (1, 'it''s "quoted" -- not a comment');"#.to_owned(),
        "INSERT INTO \"t\" (\"id\", \"s\") VALUES (2, '中文测试 😀🚀 𝄞');".to_owned(),
        format!("INSERT INTO t VALUES (3, '{}');", "x".repeat(3 << 20)),
        "DELETE FROM \"t\" WHERE \"id\" = 4;".to_owned(),
    ];
    v.extend((0..2000).map(|i| format!("UPDATE t SET v = {i} WHERE id = {i};")));
    v
}

#[test]
fn round_trip_plain_and_zstd() {
    let stmts = sample();
    for compress in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = write(dir.path(), 42, &stmts, compress);
        assert_eq!(w.name, batch_file_name("plant1", 42, compress));
        assert_eq!(listing(dir.path()), vec![w.name.clone()]);
        assert_eq!(sha256_file(&w.path).expect("sha"), (w.size, w.file_sha256));
        assert_eq!(fs::metadata(&w.path).expect("meta").len(), w.size);

        let v = verify_batch(&w.path, &ReadLimits::default()).expect("verify");
        assert_eq!(v.header, header(42, stmts.len() as u64));
        assert_eq!(v.content_sha256, w.content_sha256);
        assert_eq!(v.signature, None);
        assert_eq!(v.name, w.name);

        let got = read_all(&w.path, &ReadLimits::default()).expect("read");
        let want: Vec<(u64, String)> = stmts
            .iter()
            .cloned()
            .zip(9u64..)
            .map(|(s, l)| (l, s))
            .collect();
        assert!(got == want, "statements differ");

        // Independent check of the plain text: header text, trailer = sha of all before it.
        let raw = fs::read(&w.path).expect("read");
        let text = if compress {
            assert_eq!(&raw[..4], &[0x28, 0xB5, 0x2F, 0xFD], "zstd magic");
            zstd::stream::decode_all(&raw[..]).expect("decode")
        } else {
            raw.clone()
        };
        assert_ne!(raw == text, compress);
        let text = String::from_utf8(text).expect("utf8");
        let (body, trailer) = text.rsplit_once(SHA_PREFIX).expect("trailer");
        assert!(
            body.starts_with(
                HEAD.replace("seq: 1\n", "seq: 42\n")
                    .split("-- statements")
                    .next()
                    .expect("x")
            )
        );
        assert_eq!(
            trailer,
            format!("{}\n", hex::encode(Sha256::digest(body.as_bytes())))
        );
        assert_eq!(hex::encode(w.content_sha256), trailer.trim_end());
        assert!(!text.contains('\r'));
    }
}

#[test]
fn empty_batch_and_snapshot_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = header(0, 0);
    h.kind = BatchKind::Snapshot;
    h.changes = None;
    let w = BatchWriter::create(dir.path(), h.clone(), false, 3)
        .expect("create")
        .finish()
        .expect("finish");
    let text = fs::read_to_string(&w.path).expect("read");
    assert!(text.contains("\n-- seq: 0\n-- created"));
    assert!(text.contains("\n-- kind: snapshot\n-- changes: -\n-- statements: 0\n-- sha256: "));
    assert_eq!(
        verify_batch(&w.path, &ReadLimits::default())
            .expect("verify")
            .header,
        h
    );
}

#[test]
fn temp_name_only_until_finish_and_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = BatchWriter::create(dir.path(), header(7, 1), false, 3).expect("create");
    w.push("SELECT 1;").expect("push");
    assert_eq!(listing(dir.path()), vec![format!(".tmp-{}", w.name())]);
    let done = w.finish().expect("finish");
    assert_eq!(listing(dir.path()), vec![done.name.clone()]);
    // Same name again is refused, the existing file untouched.
    let err = BatchWriter::create(dir.path(), header(7, 1), false, 3).expect_err("exists");
    assert!(matches!(err, BatchError::AlreadyExists { .. }), "{err}");

    let w = BatchWriter::create(dir.path(), header(8, 1), true, 3).expect("create");
    assert_eq!(listing(dir.path()).len(), 2);
    drop(w);
    assert_eq!(listing(dir.path()), vec![done.name]);
}

#[test]
fn push_refuses_bad_statements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = BatchWriter::create(dir.path(), header(1, 1), false, 3).expect("create");
    for bad in [
        "SELECT 1;\nSELECT 2;",
        "SELECT 1;\r",
        "",
        "-- x;",
        "SELECT 1",
        "SELECT 1;\n",
    ] {
        let err = w.push(bad).expect_err(bad);
        assert!(
            matches!(err, BatchError::BadStatement { line: 9, .. }),
            "{err}"
        );
    }
    let long = format!("SELECT '{}';", "y".repeat(DEFAULT_MAX_STATEMENT_LEN));
    assert!(w.push(&long).is_err());
    w.push("SELECT 1;").expect("good");
    let err = w.push("SELECT 2;").expect_err("one too many");
    assert!(err.to_string().contains("refusing one more"), "{err}");
}

#[test]
fn bad_headers_refused_by_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cases = Vec::new();
    for node in ["", "a/b", "ü", &"n".repeat(33)] {
        cases.push(BatchHeader {
            node: node.to_owned(),
            ..header(1, 0)
        });
    }
    for created in [
        "2026-11-21T10:00:00Z",
        "2026-11-21 10:00:00.123456Z",
        "2026-11-21T10:00:00.123456+00:00",
    ] {
        cases.push(BatchHeader {
            created: created.to_owned(),
            ..header(1, 0)
        });
    }
    cases.push(BatchHeader {
        dialect: "sql lite".to_owned(),
        ..header(1, 0)
    });
    cases.push(BatchHeader {
        changes: Some((5, 4)),
        ..header(1, 0)
    });
    cases.push(BatchHeader {
        changes: Some((-1, 4)),
        ..header(1, 0)
    });
    for h in cases {
        let err = BatchWriter::create(dir.path(), h.clone(), false, 3).expect_err("bad header");
        assert!(matches!(err, BatchError::BadHeader(_)), "{h:?}: {err}");
    }
    assert!(listing(dir.path()).is_empty());
    let now = format_created(chrono::Utc::now());
    assert!(check_created(&now).is_ok(), "{now}");
}

#[test]
fn tampered_byte_is_checksum_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = write(dir.path(), 3, &sample()[..2], false);
    let mut raw = fs::read(&w.path).expect("read");
    let pos = raw.windows(4).position(|x| x == b"(1, ").expect("find");
    raw[pos + 1] = b'7';
    fs::write(&w.path, &raw).expect("write");
    let err = verify_batch(&w.path, &ReadLimits::default()).expect_err("tampered");
    assert!(
        matches!(err, BatchError::ChecksumMismatch { line: 11, .. }),
        "{err}"
    );
    // The execution pass hands out the statements but fails at the end.
    let err = read_all(&w.path, &ReadLimits::default()).expect_err("tampered");
    assert!(matches!(err, BatchError::ChecksumMismatch { .. }), "{err}");

    // Same inside a zstd stream (tamper the plain text, recompress).
    let w = write(dir.path(), 4, &sample()[..2], true);
    let mut text = zstd::stream::decode_all(&fs::read(&w.path).expect("read")[..]).expect("decode");
    let pos = text.windows(4).position(|x| x == b"(2, ").expect("find");
    text[pos + 1] = b'8';
    fs::write(
        &w.path,
        zstd::stream::encode_all(&text[..], 3).expect("encode"),
    )
    .expect("write");
    let err = verify_batch(&w.path, &ReadLimits::default()).expect_err("tampered");
    assert!(matches!(err, BatchError::ChecksumMismatch { .. }), "{err}");
    // Flipping a compressed byte fails too (decoder or checksum).
    let mut raw = fs::read(&w.path).expect("read");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x55;
    fs::write(&w.path, &raw).expect("write");
    assert!(verify_batch(&w.path, &ReadLimits::default()).is_err());
}

#[test]
fn truncation_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = write(dir.path(), 5, &sample()[..4], false);
    let raw = fs::read(&w.path).expect("read");
    let trailer_at = raw.len() - (SHA_PREFIX.len() + 65);
    for (cut, what) in [
        (raw.len() - 1, "inside a line"),
        (trailer_at, "missing sha256 trailer"),
        (trailer_at - 10, "inside a line"),
        (50, "inside a line"),
        (HEAD.len() - 15, "inside a line"),
        (0, "expected"),
    ] {
        fs::write(&w.path, &raw[..cut]).expect("write");
        let err = verify_batch(&w.path, &ReadLimits::default()).expect_err(what);
        assert!(err.to_string().contains(what), "cut {cut}: {err}");
    }
    let w = write(dir.path(), 6, &sample()[..4], true);
    let raw = fs::read(&w.path).expect("read");
    for cut in [raw.len() - 1, raw.len() / 2, 10] {
        fs::write(&w.path, &raw[..cut]).expect("write");
        assert!(
            verify_batch(&w.path, &ReadLimits::default()).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn wrong_statement_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = BatchWriter::create(dir.path(), header(9, 3), true, 3).expect("create");
    w.push("SELECT 1;").expect("push");
    w.push("SELECT 2;").expect("push");
    let err = w.finish().expect_err("short");
    assert!(
        matches!(
            err,
            BatchError::CountMismatch {
                declared: 3,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(listing(dir.path()).is_empty(), "temp file left behind");

    // A file with a correct checksum but a wrong count (buggy writer).
    let p = craft(dir.path(), NAME1, &format!("{HEAD}SELECT 1;\n"), "");
    let err = verify_batch(&p, &ReadLimits::default()).expect_err("count");
    assert!(
        matches!(
            err,
            BatchError::CountMismatch {
                declared: 2,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    let p = craft(
        dir.path(),
        NAME1,
        &format!("{HEAD}SELECT 1;\nSELECT 2;\nSELECT 3;\n"),
        "",
    );
    let err = verify_batch(&p, &ReadLimits::default()).expect_err("count");
    assert!(
        err.to_string()
            .contains("line 11: more statements than the 2"),
        "{err}"
    );
    // Limit on the declared count.
    let limits = ReadLimits {
        max_statements: 1,
        ..ReadLimits::default()
    };
    let p = craft(
        dir.path(),
        NAME1,
        &format!("{HEAD}SELECT 1;\nSELECT 2;\n"),
        "",
    );
    let err = verify_batch(&p, &limits).expect_err("limit");
    assert!(
        err.to_string()
            .contains("line 8: header 'statements': 2 is over the limit of 1"),
        "{err}"
    );
    assert!(verify_batch(&p, &ReadLimits::default()).is_ok());
}

#[test]
fn renamed_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = write(dir.path(), 5, &sample()[..1], false);
    let renamed = dir.path().join(batch_file_name("plant1", 6, false));
    fs::rename(&w.path, &renamed).expect("rename");
    let err = verify_batch(&renamed, &ReadLimits::default()).expect_err("renamed");
    assert!(
        err.to_string()
            .contains("file name says seq 6 but header says seq 5"),
        "{err}"
    );
    let other = dir.path().join(batch_file_name("plant2", 5, false));
    fs::rename(&renamed, &other).expect("rename");
    let err = verify_batch(&other, &ReadLimits::default()).expect_err("renamed");
    assert!(
        err.to_string()
            .contains("file name says node plant2 but header says node plant1"),
        "{err}"
    );
    // Compressed content under a plain name (and vice versa) fails too.
    let w = write(dir.path(), 7, &sample()[..1], true);
    let plain = dir.path().join(batch_file_name("plant1", 7, false));
    fs::rename(&w.path, &plain).expect("rename");
    assert!(verify_batch(&plain, &ReadLimits::default()).is_err());
    // Temp names are not batch names.
    assert!(
        verify_batch(
            &dir.path().join(format!(".tmp-{NAME1}")),
            &ReadLimits::default()
        )
        .is_err()
    );
}

#[test]
fn file_names() {
    let n = batch_file_name("plant-1", 42, false);
    assert_eq!(n, "plant-1-00000000000000000042.sql");
    assert_eq!(
        parse_batch_file_name(&n).expect("ok"),
        ("plant-1".to_owned(), 42, false)
    );
    let n = batch_file_name("P_2", u64::MAX, true);
    assert_eq!(n, "P_2-18446744073709551615.sql.zst");
    assert_eq!(
        parse_batch_file_name(&n).expect("ok"),
        ("P_2".to_owned(), u64::MAX, true)
    );
    let max_node = "n".repeat(32);
    assert!(parse_batch_file_name(&batch_file_name(&max_node, 0, false)).is_ok());
    for (bad, why) in [
        ("../x-00000000000000000001.sql", "path separator"),
        ("..x-00000000000000000001.sql", "'..'"),
        ("a/b-00000000000000000001.sql", "path separator"),
        ("a\\b-00000000000000000001.sql", "path separator"),
        ("ü-00000000000000000001.sql", "not ASCII"),
        ("x-0000000000000000001.sql", "20 decimal digits"),
        ("x-000000000000000000001.sql", "20 decimal digits"),
        ("x-0000000000000000000a.sql", "20 decimal digits"),
        ("x-99999999999999999999.sql", "64 bits"),
        ("x-00000000000000000001.sql.gz", "must end in"),
        ("x-00000000000000000001.SQL", "must end in"),
        ("x00000000000000000001.sql", "expected <node>"),
        ("-00000000000000000001.sql", "node id"),
        ("a b-00000000000000000001.sql", "node id"),
        (".tmp-x-00000000000000000001.sql", "node id"),
        (
            &format!("{}-00000000000000000001.sql", "n".repeat(33)),
            "node id",
        ),
        ("", "must end in"),
    ] {
        let err = parse_batch_file_name(bad).expect_err(bad);
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
}

#[test]
fn header_errors_name_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "SELECT 1;\nSELECT 2;\n";
    let cases = [
        (
            HEAD.replace("-- created", "-- node: plant1\n-- created"),
            4,
            "duplicate header key 'node'",
        ),
        (
            HEAD.replace("-- dialect: sqlite\n", ""),
            5,
            "missing header key 'dialect' (found 'kind')",
        ),
        (
            HEAD.replace("-- kind", "-- flavour: x\n-- kind"),
            6,
            "unknown header key \"flavour\"",
        ),
        (HEAD.replace("-- seq: 1", "-- seq: 01"), 3, "header 'seq'"),
        (HEAD.replace("-- seq: 1", "-- seq: +1"), 3, "header 'seq'"),
        (
            HEAD.replace("-- kind: changes", "-- kind: delta"),
            6,
            "header 'kind'",
        ),
        (HEAD.replace("101-103", "103-101"), 7, "header 'changes'"),
        (
            HEAD.replace("-- node: plant1", "-- node: plant1\r"),
            2,
            "header 'node'",
        ),
        (
            HEAD.replace("-- node: ", "--node: "),
            2,
            "expected header line",
        ),
        (
            HEAD.replace("v1", "v2"),
            1,
            "expected \"-- gapsync batch v1\"",
        ),
        (HEAD.replace(".123456Z", "Z"), 4, "header 'created'"),
        (
            HEAD.replace("-- statements: 2\n", ""),
            8,
            "expected header line '-- statements",
        ),
    ];
    for (head, line, why) in cases {
        let p = craft(dir.path(), NAME1, &format!("{head}{body}"), "");
        match verify_batch(&p, &ReadLimits::default()) {
            Err(e @ BatchError::Malformed { line: l, .. }) => {
                assert_eq!(l, line, "{e}");
                assert!(e.to_string().contains(why), "{e}");
                assert!(e.to_string().contains(NAME1), "{e}");
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    // Bad statement lines in the body.
    for (stmt, why) in [
        ("SELECT 1", "';'"),
        ("", "empty"),
        ("SELECT 1;\r", "line break"),
        ("-- x;", "trailer"),
    ] {
        let p = craft(dir.path(), NAME1, &format!("{HEAD}SELECT 0;\n{stmt}\n"), "");
        let err = verify_batch(&p, &ReadLimits::default()).expect_err(why);
        assert!(
            err.to_string().contains("line 10") && err.to_string().contains(why),
            "{err}"
        );
    }
    // Invalid UTF-8.
    let p = dir.path().join(NAME1);
    let mut raw = format!("{HEAD}SELECT 'x';\n").into_bytes();
    let n = raw.len();
    raw[n - 4] = 0xFF;
    fs::write(&p, raw).expect("write");
    let err = verify_batch(&p, &ReadLimits::default()).expect_err("utf8");
    assert!(err.to_string().contains("line 9: not valid UTF-8"), "{err}");
}

#[test]
fn signature_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{HEAD}SELECT 1;\nSELECT 2;\n");
    let p = craft(dir.path(), NAME1, &text, "-- signature: k1 abcd\n");
    let v = verify_batch(&p, &ReadLimits::default()).expect("verify");
    assert_eq!(v.signature.as_deref(), Some("k1 abcd"));
    let mut r = open_statements(&p, &ReadLimits::default()).expect("open");
    let mut buf = String::new();
    while r.next_statement(&mut buf).expect("next").is_some() {}
    assert_eq!(r.signature(), Some("k1 abcd"));
    assert_eq!(r.content_sha256(), Some(v.content_sha256));
    assert_eq!(r.next_statement(&mut buf).expect("again"), None);

    for (tail, why) in [
        ("-- signature: k1 abcd\nSELECT 3;\n", "nothing may follow"),
        ("-- signature: k1 abcd\n\n", "nothing may follow"),
        ("-- signature: k1 abcd", "inside a line"),
        ("-- signature: \n", "empty"),
        ("SELECT 3;\n", "only an optional"),
        ("\n", "only an optional"),
    ] {
        let p = craft(dir.path(), NAME1, &text, tail);
        let err = verify_batch(&p, &ReadLimits::default()).expect_err(tail);
        assert!(err.to_string().contains(why), "{tail:?}: {err}");
    }
}

#[test]
fn long_lines_against_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stmt = format!("SELECT '{}';", "z".repeat(10_000));
    let w = write(dir.path(), 2, std::slice::from_ref(&stmt), false);
    let exact = ReadLimits {
        max_statement_len: stmt.len(),
        ..ReadLimits::default()
    };
    assert!(verify_batch(&w.path, &exact).is_ok());
    let small = ReadLimits {
        max_statement_len: stmt.len() - 1,
        ..ReadLimits::default()
    };
    let err = verify_batch(&w.path, &small).expect_err("too long");
    assert!(
        err.to_string().contains("line 9: line longer than"),
        "{err}"
    );
    let tiny = ReadLimits {
        max_statement_len: 20,
        ..ReadLimits::default()
    };
    let p = craft(
        dir.path(),
        NAME1,
        &format!("{HEAD}SELECT 1;\nSELECT '1234567890123';\n"),
        "",
    );
    let err = verify_batch(&p, &tiny).expect_err("too long");
    assert!(
        matches!(err, BatchError::BadStatement { line: 10, .. }),
        "{err}"
    );
    // The content cap also applies to plain files.
    let capped = ReadLimits {
        max_decompressed: 5000,
        ..ReadLimits::default()
    };
    let err = verify_batch(&w.path, &capped).expect_err("cap");
    assert!(
        matches!(err, BatchError::TooLarge { limit: 5000, .. }),
        "{err}"
    );
    let size = fs::metadata(&w.path).expect("meta").len();
    assert!(
        verify_batch(
            &w.path,
            &ReadLimits {
                max_decompressed: size,
                ..ReadLimits::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn zstd_bomb_from_encoder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("plant1-00000000000000000001.sql.zst");
    let mut enc =
        zstd::stream::write::Encoder::new(File::create(&p).expect("create"), 19).expect("enc");
    enc.write_all(HEAD.as_bytes()).expect("write");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..32 {
        enc.write_all(&zeros).expect("write");
    }
    enc.finish().expect("finish");
    assert!(fs::metadata(&p).expect("meta").len() < 64 * 1024);
    let limits = ReadLimits {
        max_decompressed: 1 << 20,
        max_statement_len: 16 << 20,
        ..ReadLimits::default()
    };
    let err = verify_batch(&p, &limits).expect_err("bomb");
    assert!(
        matches!(
            err,
            BatchError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
}

/// A hand-made zstd frame: a raw block with a valid header, then 2^19 RLE blocks of
/// 128 KiB each: a 2 MiB file inflating to 64 GiB. Reading must stop at the cap (an
/// implementation that inflates first would run out of memory or time).
#[test]
fn zstd_bomb_64gib_stops_at_the_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = Vec::with_capacity(3 << 20);
    f.extend_from_slice(&0xFD2F_B528u32.to_le_bytes()); // magic
    f.push(0x00); // frame header descriptor: no content size, no checksum, no dict
    f.push(7 << 3); // window descriptor: 2^(10+7) = 128 KiB
    let block = |f: &mut Vec<u8>, last: bool, kind: u32, size: u32| {
        let v = (size << 3) | (kind << 1) | u32::from(last);
        f.extend_from_slice(&v.to_le_bytes()[..3]);
    };
    block(&mut f, false, 0, HEAD.len() as u32);
    f.extend_from_slice(HEAD.as_bytes());
    let n = 1 << 19;
    for i in 0..n {
        block(&mut f, i == n - 1, 1, 128 * 1024);
        f.push(b'A');
    }
    let p = dir.path().join("plant1-00000000000000000001.sql.zst");
    fs::write(&p, &f).expect("write");
    // Sanity: the frame is valid and the start decodes to our header.
    let mut d = zstd::stream::read::Decoder::new(File::open(&p).expect("open")).expect("dec");
    let mut start = vec![0u8; HEAD.len() + 3];
    d.read_exact(&mut start).expect("read");
    assert_eq!(&start[HEAD.len()..], b"AAA");

    let limits = ReadLimits {
        max_decompressed: 4 << 20,
        max_statement_len: 1 << 30,
        ..ReadLimits::default()
    };
    let t = std::time::Instant::now();
    let err = verify_batch(&p, &limits).expect_err("bomb");
    assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    // With default limits the 16 MiB line limit trips first, also without inflating.
    let err = verify_batch(&p, &ReadLimits::default()).expect_err("bomb");
    assert!(
        err.to_string().contains("line 9: line longer than"),
        "{err}"
    );
}
