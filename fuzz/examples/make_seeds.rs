//! Writes the seed corpora (`fuzz/seeds/<target>/`) with gapsync's own encoders and
//! renderers: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.

use std::fs;
use std::path::{Path, PathBuf};

use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
use gapsync_common::dialect::Dialect;
use gapsync_common::value::Value;
use gapsync_protocol::Hello;
use gapsync_protocol::auth::LinkSigner;
use gapsync_protocol::wire::{EndInfo, Frame, FrameType};

fn out(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&d).expect("mkdir");
    d
}

fn frames() {
    let d = out("frame_decoder");
    let end = EndInfo::new(1234, [7; 32], "plant1-00000000000000000001.sql")
        .encode()
        .expect("end");
    let all = [
        Frame::new(
            FrameType::Hello,
            "plant1",
            0,
            0,
            Hello::encode("plant1", "gapsync-receiver", 1, [3; 16], "sender 0.1", None)
                .expect("hello"),
        ),
        Frame::new(FrameType::Heartbeat, "plant1", 0, 0, Vec::new()),
        Frame::new(
            FrameType::Data,
            "plant1",
            1,
            0,
            b"-- gapsync batch v1\n".to_vec(),
        ),
        Frame::new(FrameType::End, "plant1", 1, 0, end),
        Frame::new(FrameType::Result, "plant1", 1, 0, Vec::new()),
    ];
    let mut session = vec![1u8];
    for (i, f) in all.iter().enumerate() {
        let mut b = vec![1u8];
        f.encode(&mut b).expect("encode");
        session.extend_from_slice(&b[1..]);
        fs::write(d.join(format!("frame{i}")), b).expect("write");
    }
    fs::write(d.join("session"), session).expect("write");
}

fn batches() {
    let d = out("batch_parser");
    let tmp = std::env::temp_dir().join(format!("gapsync-make-seeds-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("tmp");
    let stmts = [
        r#"INSERT INTO "t" ("id", "v") VALUES (1, 'it''s');"#,
        r#"UPDATE "t" SET "v" = X'00ff' WHERE "id" = 1;"#,
        r#"DELETE FROM "t" WHERE "id" = 1;"#,
    ];
    for (i, (kind, changes, n)) in [
        (BatchKind::Changes, Some((101, 103)), 3),
        (BatchKind::Changes, Some((1, 1)), 0),
    ]
    .into_iter()
    .enumerate()
    {
        let header = BatchHeader {
            node: "plant1".to_owned(),
            seq: i as u64 + 1,
            created: "2026-11-21T10:00:00.123456Z".to_owned(),
            dialect: "sqlite".to_owned(),
            kind,
            changes,
            statements: n,
        };
        let mut w = BatchWriter::create(&tmp, header, false, 3).expect("create");
        for s in &stmts[..n as usize] {
            w.push(s).expect("push");
        }
        let written = w.finish().expect("finish");
        let text = fs::read(&written.path).expect("read");
        // Selector 0: plain file; selector 3: `.zst` name, compressed by the target.
        for sel in [0u8, 3] {
            let mut b = vec![sel];
            b.extend_from_slice(&text);
            fs::write(d.join(format!("batch{i}-{sel}")), b).expect("write");
        }
        // A signed-looking tail.
        let mut b = vec![0u8];
        b.extend_from_slice(&text);
        b.extend_from_slice(b"-- signature: k1 00ff\n");
        fs::write(d.join(format!("batch{i}-sig")), b).expect("write");
    }
    let _ = fs::remove_dir_all(&tmp);
}

fn statements() {
    let d = out("statement_validator");
    let row = [
        Value::Integer(-5),
        Value::Text("it's".to_owned()),
        Value::Blob(vec![0, 255]),
        Value::Real(1.5),
        Value::Null,
    ];
    let cols = ["id", "v", "b", "r", "n"];
    for (di, dialect) in Dialect::ALL.into_iter().enumerate() {
        let mut all = Vec::new();
        let mut s = String::new();
        if dialect.render_insert("t", &cols, &row, &mut s).is_ok() {
            all.push(std::mem::take(&mut s));
        }
        if dialect
            .render_update(
                "t",
                &cols[1..],
                &row[1..],
                &["id"],
                &[Value::Integer(1)],
                &mut s,
            )
            .is_ok()
        {
            all.push(std::mem::take(&mut s));
        }
        if dialect
            .render_delete("t", &["id", "n"], &[Value::Integer(1), Value::Null], &mut s)
            .is_ok()
        {
            all.push(std::mem::take(&mut s));
        }
        if dialect.render_clear("t", &mut s).is_ok() {
            all.push(std::mem::take(&mut s));
        }
        let ty = if dialect == Dialect::Sqlite {
            "INTEGER"
        } else {
            "BIGINT"
        };
        if dialect
            .render_create_table("t", &[("id", ty), ("v", "VARCHAR(10)")], &["id"], &mut s)
            .is_ok()
        {
            all.push(std::mem::take(&mut s));
        }
        // Fits the SQLite property check's table `t(id INTEGER PRIMARY KEY, v)`.
        for v in [
            Value::Text("x'y".to_owned()),
            Value::Blob(vec![1, 2]),
            Value::Real(-0.5),
        ] {
            let row2 = [Value::Integer(7), v];
            if dialect
                .render_insert("t", &cols[..2], &row2, &mut s)
                .is_ok()
            {
                all.push(std::mem::take(&mut s));
            }
            if dialect
                .render_update("t", &cols[1..2], &row2[1..], &["id"], &row2[..1], &mut s)
                .is_ok()
            {
                all.push(std::mem::take(&mut s));
            }
        }
        // Comments, which every dialect refuses (MariaDB and MySQL execute `/*M! .. */`
        // and `/*! .. */`), and comment-like text inside quotes, which is data.
        let t = if dialect == Dialect::SqlServer {
            "[t]"
        } else {
            "\"t\""
        };
        let q = |s: &str| s.replace("\"t\"", t);
        for c in [
            "DELETE FROM \"t\" WHERE \"id\" = 16 /*M! OR 1=1 */;",
            "DELETE FROM \"t\" WHERE \"id\" = 16 /*!50000 OR 1=1 */;",
            "UPDATE \"t\" /*M! , \"secret\" */ SET \"v\" = 'x' WHERE \"id\" = 1;",
            "DELETE /*+ hint */ FROM \"t\" WHERE \"id\" = 1;",
            "DELETE FROM \"t\" WHERE \"id\" = 1 /* /* nested */ OR 1 = 1 */;",
            "DELETE FROM \"t\" WHERE \"id\" = 1 /* unterminated;",
            "DELETE FROM \"t\" WHERE \"id\" = 1; -- x",
            "DELETE FROM \"t\" WHERE \"id\" = 1--x;",
            "DELETE FROM \"t\" WHERE \"id\" = 1 # x;",
            "DELETE FROM \"t\" WHERE \"v\" = 'x\\'' /*M! OR 1=1 */ AND \"id\" = '1';",
            "DELETE FROM \"t\" WHERE \"v\" = E'x\\'' -- ';",
            "DELETE FROM \"t\" WHERE \"v\" = $$ ' $$ -- ';",
            "DELETE FROM \"t\" WHERE \"v\" = [ ' ] -- ';",
            "INSERT INTO \"t\" (\"id\", \"v\") VALUES (7, '-- /*M! x */ # */');",
            "UPDATE \"t\" SET \"v\" = '/*!50000 x */' WHERE \"id\" = 7;",
            "DELETE FROM \"t\" WHERE \"v\" = '--';",
        ] {
            all.push(q(c));
        }
        for (i, stmt) in all.iter().enumerate() {
            let mut b = vec![di as u8];
            b.extend_from_slice(stmt.as_bytes());
            fs::write(d.join(format!("{}-{i}", dialect.name())), b).expect("write");
        }
    }
}

/// A fixed, throw-away signer (the fuzz target checks that nothing it did not sign
/// verifies; these seeds only give it valid layouts to mutate).
#[derive(Debug)]
struct SeedSigner;

impl LinkSigner for SeedSigner {
    fn key_id(&self) -> [u8; 8] {
        [0x5e; 8]
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        for (i, b) in message.iter().enumerate() {
            s[i % 64] ^= b;
        }
        s
    }
}

fn link_auth() {
    let d = out("link_auth");
    let hellos = [
        Hello::encode(
            "plant1",
            "gapsync-receiver",
            1_790_000_000,
            [1; 16],
            "s",
            None,
        ),
        Hello::encode(
            "plant1",
            "mis-1",
            1_790_000_000,
            [2; 16],
            "gapsync-sender 0.1.0",
            Some(&SeedSigner),
        ),
    ];
    for (i, h) in hellos.into_iter().enumerate() {
        fs::write(d.join(format!("hello{i}")), h.expect("hello")).expect("write");
    }
    let mut end = EndInfo::new(99, [9; 32], "plant1-00000000000000000001.sql.zst");
    fs::write(d.join("end0"), end.encode().expect("end")).expect("write");
    end.sign("plant1", 1, &SeedSigner).expect("sign");
    fs::write(d.join("end1"), end.encode().expect("end")).expect("write");
}

fn main() {
    frames();
    link_auth();
    batches();
    statements();
}
