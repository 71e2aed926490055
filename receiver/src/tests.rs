//! Unit tests across the receiver's stages: a full spool, a target lost between two
//! ledger reads, and the trust boundary.

/// The spool on a full disk: a small tmpfs mounted on `spool/` (needs root; skipped
/// with a note otherwise, and failing when `CI` is set).
#[cfg(test)]
mod spool_full_tests {
    #![allow(clippy::unwrap_used)]
    use crate::*;

    use crate::spool::*;

    use std::fs::{self, File};
    use std::io::Write;

    use std::path::{Path, PathBuf};

    use crate::config::ReceiverConfig;

    use gapsync_protocol::{EndInfo, FrameHandler};

    use sha2::{Digest, Sha256};
    use std::process::Command;

    /// Unmounts (lazily) on drop, so a failed test leaves no mount behind.
    struct Mount(PathBuf);

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Mount(dir.to_owned())),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs on {}: {why}",
            dir.display()
        );
        eprintln!("skipped: cannot mount a tmpfs on {}: {why}", dir.display());
        None
    }

    /// Fill the file system of `dir` with `dir/ballast` until it is full.
    fn fill(dir: &Path) -> PathBuf {
        let p = dir.join("ballast");
        let mut f = File::create(&p).unwrap();
        let block = vec![0x5au8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                return p;
            }
        }
    }

    fn conn(work: &Path) -> Conn {
        let cfg_path = work.join("receiver.toml");
        let toml = format!(
            "insecure = true\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\n[work]\ndir = \"{}\"\n",
            work.join("replica.db").display(),
            work.join("rwork").display()
        );
        fs::write(&cfg_path, toml).unwrap();
        let cfg = ReceiverConfig::load(&cfg_path).unwrap();
        let rx = Receiver::new(cfg).unwrap();
        Conn {
            shared: rx.shared,
            id: 1,
            peer: "test".to_owned(),
            node: "plant1".to_owned(),
            keyed: false,
            part: None,
            target: None,
        }
    }

    /// A chunk cut short by a full disk is answered "no" and leaves the part at its last
    /// good length; the resend at the same offset (not only a restart from offset 0) is
    /// stored once space returns, and END spools a correct file.
    #[test]
    fn a_chunk_cut_short_by_a_full_spool_is_taken_again_when_space_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("rwork").join("spool");
        fs::create_dir_all(&spool).unwrap();
        let Some(_mount) = mount_tmpfs(&spool, "64k") else {
            return;
        };
        let mut c = conn(tmp.path());
        let ballast = fill(&spool);
        // Two pages free: the first chunk fits, the second only in part.
        let len = fs::metadata(&ballast).unwrap().len();
        File::options()
            .write(true)
            .open(&ballast)
            .unwrap()
            .set_len(len - 8192)
            .unwrap();
        let a = vec![b'a'; 4096];
        let b = vec![b'b'; 6000];
        assert!(c.data(1, 0, &a), "the first chunk fits");
        let part = c.part_path(1);
        for _ in 0..3 {
            assert!(!c.data(1, 4096, &b), "no space: answered no");
            assert_eq!(
                fs::metadata(&part).unwrap().len(),
                4096,
                "the partial chunk is cut off again"
            );
        }
        fs::remove_file(&ballast).unwrap();
        assert!(c.data(1, 4096, &b), "space is back: the resend is stored");
        let mut whole = a.clone();
        whole.extend_from_slice(&b);
        assert_eq!(fs::read(&part).unwrap(), whole);
        let name = "plant1-00000000000000000001.sql".to_owned();
        let info = EndInfo {
            size: whole.len() as u64,
            sha256: Sha256::digest(&whole).into(),
            name: name.clone(),
            auth: None,
        };
        assert!(c.end(1, &info), "END spools the file");
        assert_eq!(fs::read(spool.join(&name)).unwrap(), whole);
        assert!(!part.exists());
    }

    /// END that cannot make the file durable answers "no" and frees the part's space;
    /// the resend from offset 0 goes through.
    #[test]
    fn a_full_spool_at_end_answers_no_and_the_resend_goes_through() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("rwork").join("spool");
        fs::create_dir_all(&spool).unwrap();
        let Some(_mount) = mount_tmpfs(&spool, "64k") else {
            return;
        };
        let mut c = conn(tmp.path());
        let body = vec![b'x'; 5000];
        let name = "plant1-00000000000000000002.sql".to_owned();
        let info = EndInfo {
            size: body.len() as u64,
            sha256: Sha256::digest(&body).into(),
            name: name.clone(),
            auth: None,
        };
        assert!(c.data(2, 0, &body));
        // END names another size than was received: refused, the part is gone.
        let short = EndInfo {
            size: 4999,
            ..info.clone()
        };
        assert!(!c.end(2, &short));
        assert!(!c.part_path(2).exists());
        // The whole batch again, while the disk is full: every chunk answered no.
        let ballast = fill(&spool);
        assert!(!c.data(2, 0, &body));
        assert!(!c.end(2, &info), "END without the data: no");
        fs::remove_file(&ballast).unwrap();
        assert!(c.data(2, 0, &body));
        assert!(c.end(2, &info));
        assert_eq!(fs::read(spool.join(&name)).unwrap(), body);
    }
}

/// A target that goes down between two ledger look-ups of the same END (ARCHITECTURE.md
/// invariant I7).
#[cfg(test)]
mod outage_tests {
    #![allow(clippy::unwrap_used)]
    use crate::*;

    use crate::shared::*;
    use crate::spool::*;

    use std::fs::{self};

    use std::sync::Arc;
    use std::time::Duration;

    use crate::config::ReceiverConfig;

    use gapsync_common::batch::{self, ReadLimits};

    use crate::apply::Target;
    use gapsync_protocol::{EndInfo, FrameHandler};

    use crate::allow::AllowList;
    use crate::apply::{ApplyBackend, SqliteBackend};
    use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
    use gapsync_common::db::{Backend, DbError, Param};
    use gapsync_common::dialect::Dialect;
    use sha2::{Digest, Sha256};

    /// A SQLite target whose queries fail like a lost server connection once
    /// `queries_left` is used up.
    #[derive(Debug)]
    struct Dropping {
        inner: SqliteBackend,
        queries_left: u32,
    }

    impl Backend for Dropping {
        fn begin(&mut self) -> std::result::Result<(), DbError> {
            self.inner.begin()
        }
        fn commit(&mut self) -> std::result::Result<(), DbError> {
            self.inner.commit()
        }
        fn rollback(&mut self) {
            self.inner.rollback();
        }
        fn execute(&mut self, sql: &str) -> std::result::Result<u64, DbError> {
            self.inner.execute(sql)
        }
        fn execute_params(
            &mut self,
            sql: &str,
            params: &[Param<'_>],
        ) -> std::result::Result<u64, DbError> {
            self.inner.execute_params(sql, params)
        }
        fn query(
            &mut self,
            sql: &str,
            params: &[Param<'_>],
        ) -> std::result::Result<Vec<Vec<Option<String>>>, DbError> {
            if self.queries_left == 0 {
                return Err(DbError::transient(
                    "State: 08S01: server closed the connection unexpectedly",
                ));
            }
            self.queries_left -= 1;
            self.inner.query(sql, params)
        }
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }
    }

    impl ApplyBackend for Dropping {}

    /// The resend of an applied batch arrives; the ledger read of `recorded` works, the
    /// target goes down before the replay check reads the ledger row again. The END is
    /// answered "no" (the sender sends and asks again): no replay rejection, nothing in
    /// `quarantine/replayed/`, no "rejected" audit, no "failed" outcome; RESULT? answers
    /// "applied" from the ledger once it can be read, and the next resend is a plain one.
    #[test]
    fn a_resend_of_an_applied_batch_is_not_a_replay_when_the_ledger_is_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = tmp.path().join("replica.db");
        let cfg_path = tmp.path().join("receiver.toml");
        fs::write(
            &cfg_path,
            format!(
                "insecure = true\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\nresult_wait = \"1s\"\n[work]\ndir = \"{}\"\n",
                replica.display(),
                tmp.path().join("rwork").display()
            ),
        )
        .unwrap();
        let rx = Receiver::new(ReceiverConfig::load(&cfg_path).unwrap()).unwrap();
        rusqlite::Connection::open(&replica)
            .unwrap()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            .unwrap();

        // Seq 1 of plant1, applied.
        let out = tmp.path().join("outbox");
        fs::create_dir_all(&out).unwrap();
        let header = BatchHeader {
            node: "plant1".into(),
            seq: 1,
            created: batch::format_created(chrono::Utc::now()),
            dialect: "sqlite".into(),
            kind: BatchKind::Changes,
            changes: Some((1, 1)),
            statements: 1,
        };
        let mut w = BatchWriter::create(&out, header, false, 3).unwrap();
        w.push(r#"INSERT INTO "t"("id") VALUES (1);"#).unwrap();
        let written = w.finish().unwrap();
        let mut t = rx.shared.open_target().unwrap();
        t.apply(
            &written.path,
            "plant1",
            1,
            &hex::encode(written.content_sha256),
            &ReadLimits::default(),
        )
        .unwrap();

        let bytes = fs::read(&written.path).unwrap();
        let info = EndInfo {
            size: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).into(),
            name: written.name.clone(),
            auth: None,
        };
        let dropping = Dropping {
            inner: SqliteBackend::open(&replica, Duration::from_secs(1)).unwrap(),
            // `recorded` at END (one query; the seq window reads no ledger for a seq
            // near the start).
            queries_left: 1,
        };
        let mut c = Conn {
            shared: Arc::clone(&rx.shared),
            id: 1,
            peer: "test".to_owned(),
            node: "plant1".into(),
            keyed: false,
            part: None,
            target: Some(
                Target::with_backend_allowing(Box::new(dropping), AllowList::default()).unwrap(),
            ),
        };
        assert!(c.data(1, 0, &bytes));
        assert!(
            !c.end(1, &info),
            "END must be answered no while the ledger row cannot be read"
        );
        let q = rx.shared.quarantine_dir();
        assert!(
            !q.join("replayed").join(&written.name).exists(),
            "an applied batch was taken for a replay"
        );
        assert!(!c.part_path(1).exists());
        let outcome = rx
            .shared
            .outcomes
            .lock()
            .unwrap()
            .get(&("plant1".to_owned(), 1))
            .copied();
        assert!(
            !matches!(outcome, Some(Outcome::Failed | Outcome::Replayed)),
            "{outcome:?}"
        );
        let audit = fs::read_dir(tmp.path().join("rwork").join("audit"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<String>()
            })
            .unwrap_or_default();
        assert!(!audit.contains("\"rejected\""), "{audit}");

        // The target is back: RESULT? answers "applied" from the ledger, and the
        // resend is a plain resend.
        assert_eq!(c.result(1), Some(true));
        assert!(c.data(1, 0, &bytes));
        assert!(c.end(1, &info));
        assert!(!q.join("replayed").exists());
        assert_eq!(c.result(1), Some(true));
    }
}

/// The trust boundary at the unit level (ARCHITECTURE.md invariant I8): HELLO and END
/// authentication, part files, the spool's regular-files-only rule, and the applier's
/// one descriptor (what is verified is what runs). The same attacks through the real
/// binaries and raw frames are in `tests/tests/e2e/trust_boundary.rs`.
#[cfg(test)]
mod trust_tests {
    #![allow(clippy::unwrap_used)]
    use crate::applier::*;
    use crate::*;

    use crate::spool::*;
    use std::collections::HashMap;
    use std::fs::{self};
    use std::io::{Seek, SeekFrom};

    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{SystemTime, UNIX_EPOCH};

    use crate::config::ReceiverConfig;

    use gapsync_common::batch::{self};
    use gapsync_common::fsx;

    use gapsync_protocol::{EndInfo, FrameHandler, Hello};

    use gapsync_common::batch::{BatchHeader, BatchKind, BatchWriter};
    use gapsync_common::sign::BatchSigner;
    use gapsync_protocol::LinkSigner;
    use sha2::{Digest, Sha256};

    #[derive(Debug)]
    struct Key(BatchSigner);
    impl LinkSigner for Key {
        fn key_id(&self) -> [u8; 8] {
            self.0.key_id_bytes()
        }
        fn sign(&self, m: &[u8]) -> [u8; 64] {
            self.0.sign_link(m)
        }
    }

    struct Setup {
        tmp: tempfile::TempDir,
        rx: Receiver,
        key: Key,
        other: Key,
    }

    /// A receiver trusting one key of plant1 (`extra`: more TOML at the top level).
    fn setup(extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let (_, _, signer) = gapsync_common::sign::generate("plant1", tmp.path()).unwrap();
        let odir = tmp.path().join("other");
        fs::create_dir_all(&odir).unwrap();
        let (_, _, other) = gapsync_common::sign::generate("plant1", &odir).unwrap();
        let cfg_path = tmp.path().join("receiver.toml");
        fs::write(
            &cfg_path,
            format!(
                "{extra}\n[target]\nurl = \"sqlite:{}\"\n[link]\nlisten = \"127.0.0.1:0\"\nid = \"mis-1\"\nresult_wait = \"1s\"\n[work]\ndir = \"{}\"\n[[trust]]\nnode = \"plant1\"\nkey = \"{}\"\n",
                tmp.path().join("replica.db").display(),
                tmp.path().join("rwork").display(),
                signer.public_line()
            ),
        )
        .unwrap();
        let rx = Receiver::new(ReceiverConfig::load(&cfg_path).unwrap()).unwrap();
        rusqlite::Connection::open(tmp.path().join("replica.db"))
            .unwrap()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            .unwrap();
        Setup {
            tmp,
            rx,
            key: Key(signer),
            other: Key(other),
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn check(
        s: &Setup,
        node: &str,
        rid: &str,
        time: u64,
        nonce: u8,
        key: Option<&Key>,
    ) -> std::result::Result<String, String> {
        let p = Hello::encode(
            node,
            rid,
            time,
            [nonce; 16],
            "t",
            key.map(|k| k as &dyn LinkSigner),
        )
        .unwrap();
        let h = Hello::decode(&p).unwrap();
        s.rx.shared
            .authenticate_hello(node, &h, &h.message(node, &p))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn hello_is_accepted_only_signed_fresh_for_this_receiver_and_once() {
        let s = setup("");
        let t = now();
        let ok = check(&s, "plant1", "mis-1", t, 1, Some(&s.key));
        assert_eq!(ok, Ok(s.key.0.key_id().to_owned()));
        let refused = |r: std::result::Result<String, String>, why: &str| {
            let e = r.unwrap_err();
            assert!(e.contains(why), "{e:?} lacks {why:?}");
        };
        refused(check(&s, "plant1", "mis-1", t, 1, Some(&s.key)), "replayed");
        refused(
            check(&s, "plant1", "mis-2", t, 2, Some(&s.key)),
            "is for receiver",
        );
        refused(
            check(&s, "plant1", "mis-1", t - 600, 3, Some(&s.key)),
            "hello_max_skew",
        );
        refused(
            check(&s, "plant1", "mis-1", t + 600, 4, Some(&s.key)),
            "hello_max_skew",
        );
        refused(check(&s, "plant1", "mis-1", t, 5, None), "unsigned HELLO");
        refused(
            check(&s, "plant1", "mis-1", t, 6, Some(&s.other)),
            "not a trusted key",
        );
        refused(
            check(&s, "plant9", "mis-1", t, 7, Some(&s.key)),
            "no [[trust]] entry",
        );
        // A signature over another node's message (the node is signed) fails.
        let p = Hello::encode("plant1", "mis-1", t, [8; 16], "t", Some(&s.key)).unwrap();
        let h = Hello::decode(&p).unwrap();
        let e =
            s.rx.shared
                .authenticate_hello("plant1", &h, &h.message("plant2", &p))
                .unwrap_err();
        assert!(
            matches!(e, crate::shared::HelloRefused::Signature(_)),
            "{e}"
        );
        assert!(e.to_string().contains("bad signature"), "{e}");
    }

    #[test]
    fn insecure_opens_only_nodes_without_keys() {
        let s = setup("insecure = true");
        let t = now();
        assert_eq!(
            check(&s, "stranger", "mis-1", t, 1, None),
            Ok(String::new())
        );
        let e = check(&s, "plant1", "mis-1", t, 2, None).unwrap_err();
        assert!(e.contains("unsigned HELLO for node plant1"), "{e}");
        // The file-level check: a batch of a node with keys needs its signature.
        let v = batch::VerifiedBatch {
            header: BatchHeader {
                node: "plant1".into(),
                seq: 1,
                created: batch::format_created(chrono::Utc::now()),
                dialect: "sqlite".into(),
                kind: BatchKind::Changes,
                changes: Some((1, 1)),
                statements: 1,
            },
            content_sha256: [0; 32],
            signature: None,
            name: "plant1-00000000000000000001.sql".into(),
        };
        let sh = &s.rx.shared;
        assert!(authenticate(&sh.cfg, &sh.trust, Some("plant1"), &v).is_err());
        let mut w = v.clone();
        w.header.node = "stranger".into();
        assert!(matches!(
            authenticate(&sh.cfg, &sh.trust, Some("stranger"), &w),
            Ok(None)
        ));
    }

    fn conn(s: &Setup) -> Conn {
        Conn {
            shared: Arc::clone(&s.rx.shared),
            id: 7,
            peer: "test".into(),
            node: "plant1".into(),
            keyed: true,
            part: None,
            target: None,
        }
    }

    fn write_batch(dir: &Path, seq: u64, stmts: &[&str], key: Option<&Key>) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        let header = BatchHeader {
            node: "plant1".into(),
            seq,
            created: batch::format_created(chrono::Utc::now()),
            dialect: "sqlite".into(),
            kind: BatchKind::Changes,
            changes: Some((1, stmts.len() as i64)),
            statements: stmts.len() as u64,
        };
        let mut w = BatchWriter::create(dir, header, false, 3)
            .unwrap()
            .with_signer(key.map(|k| k.0.clone()))
            .unwrap();
        for st in stmts {
            w.push(st).unwrap();
        }
        w.finish().unwrap().path
    }

    fn ids(s: &Setup) -> Vec<i64> {
        let c = rusqlite::Connection::open(s.tmp.path().join("replica.db")).unwrap();
        let mut st = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn an_end_the_node_key_did_not_sign_spools_nothing_and_counts_nothing() {
        let s = setup("");
        let out = s.tmp.path().join("out");
        let path = write_batch(
            &out,
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let bytes = fs::read(&path).unwrap();
        let name = file_name(&path);
        let spooled = s.rx.shared.spool().join(&name);
        let unsigned = EndInfo::new(bytes.len() as u64, Sha256::digest(&bytes).into(), &name);
        let mut by_other = unsigned.clone();
        by_other.sign("plant1", 1, &s.other).unwrap();
        let mut other_seq = unsigned.clone();
        other_seq.sign("plant1", 2, &s.key).unwrap();
        let mut forged_sha = unsigned.clone();
        forged_sha.sha256 = [0; 32];
        forged_sha.sign("plant1", 1, &s.key).unwrap();
        let mut c = conn(&s);
        for bad in [&unsigned, &by_other, &other_seq, &forged_sha] {
            assert!(c.data(1, 0, &bytes));
            let part = c.part.as_ref().unwrap().path.clone();
            assert!(part.exists());
            assert!(!c.end(1, bad), "{bad:?}");
            assert!(!part.exists(), "the refused upload's part is removed");
            assert!(!spooled.exists(), "nothing takes the batch name");
        }
        assert_eq!(s.rx.shared.unverified.load(Ordering::SeqCst), 0);
        assert!(
            !s.rx
                .shared
                .outcomes
                .lock()
                .unwrap()
                .contains_key(&("plant1".to_owned(), 1)),
            "a refused END is no failure of the seq"
        );
        // The signed END goes through; a part left by a closing connection is removed.
        let mut good = unsigned.clone();
        good.sign("plant1", 1, &s.key).unwrap();
        assert!(c.data(1, 0, &bytes));
        assert!(c.end(1, &good));
        assert_eq!(fs::read(&spooled).unwrap(), bytes);
        assert!(c.data(2, 0, b"half a batch"));
        let part = c.part.as_ref().unwrap().path.clone();
        drop(c);
        assert!(!part.exists(), "a connection's part file goes with it");
        assert_eq!(s.rx.shared.unverified.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_seq_far_ahead_of_the_ledger_is_refused() {
        let s = setup("");
        let mut c = conn(&s);
        for seq in [SEQ_WINDOW + 2, 1_000_000_000_000, 1 << 63] {
            assert!(!c.data(seq, 0, b"x"), "seq {seq}");
            assert!(c.part.is_none());
        }
        assert!(c.data(SEQ_WINDOW + 1, 0, b"x"), "the edge of the window");
    }

    #[test]
    fn two_connections_never_share_a_part_file() {
        let s = setup("");
        let mut a = conn(&s);
        let mut b = conn(&s);
        b.id = 8;
        assert!(a.data(1, 0, b"the real upload, first chunk"));
        assert!(b.data(1, 0, b"x"));
        assert_ne!(a.part.as_ref().unwrap().path, b.part.as_ref().unwrap().path);
        assert_eq!(
            fs::read(&a.part.as_ref().unwrap().path).unwrap(),
            b"the real upload, first chunk",
            "another connection's offset 0 does not truncate it"
        );
    }

    /// A signed batch (row 1) spooled, opened and verified through its descriptor, and a
    /// forged one (row 666) of the same name ready elsewhere.
    fn spooled_and_verified() -> (Setup, PathBuf, PathBuf, std::fs::File, batch::VerifiedBatch) {
        let s = setup("");
        let good = write_batch(
            &s.tmp.path().join("good"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let forged = write_batch(
            &s.tmp.path().join("forged"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (666);"#],
            None,
        );
        let spooled = s.rx.shared.spool().join(file_name(&good));
        fs::copy(&good, &spooled).unwrap();
        let input = fsx::open_nofollow(&spooled).unwrap();
        let v = batch::verify_open_batch(input.try_clone().unwrap(), &spooled, &s.rx.shared.limits)
            .unwrap();
        (s, forged, spooled, input, v)
    }

    /// The file under the spooled name is replaced after verification: the applier
    /// runs the verified bytes (its descriptor), never the replacement.
    #[test]
    fn what_is_verified_is_what_runs() {
        let (s, forged, spooled, mut input, v) = spooled_and_verified();
        // The swap, at the worst moment.
        fs::rename(&forged, &spooled).unwrap();
        input.seek(SeekFrom::Start(0)).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let sha = hex::encode(v.content_sha256);
        t.apply_open(input, &spooled, "plant1", 1, &sha, &s.rx.shared.limits)
            .unwrap();
        assert_eq!(ids(&s), vec![1]);
        assert_eq!(t.applied_sha("plant1", 1).unwrap(), Some(sha));
    }

    /// The same inode rewritten after verification: the executed content's hash differs
    /// from the verified one, so nothing is committed.
    #[test]
    fn a_file_rewritten_after_verification_commits_nothing() {
        let (s, forged, spooled, mut input, v) = spooled_and_verified();
        fs::write(&spooled, fs::read(&forged).unwrap()).unwrap();
        input.seek(SeekFrom::Start(0)).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let e = t
            .apply_open(
                input,
                &spooled,
                "plant1",
                1,
                &hex::encode(v.content_sha256),
                &s.rx.shared.limits,
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("changed between verification and apply"),
            "{e}"
        );
        assert!(ids(&s).is_empty());
        assert_eq!(t.applied_sha("plant1", 1).unwrap(), None);
    }

    /// A symlink under a batch name in the spool is never followed: not applied, not
    /// counted as a failure; the file it points to is untouched.
    #[test]
    fn a_symlink_in_the_spool_is_not_followed() {
        let s = setup("");
        let outside = write_batch(
            &s.tmp.path().join("outside"),
            1,
            &[r#"INSERT INTO "t"("id") VALUES (1);"#],
            Some(&s.key),
        );
        let before = fs::read(&outside).unwrap();
        let link = s.rx.shared.spool().join(file_name(&outside));
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let mut t = s.rx.shared.open_target().unwrap();
        let mut logged = HashMap::new();
        assert!(!s.rx.apply_spooled(&mut t, &mut logged).unwrap());
        assert!(ids(&s).is_empty());
        assert_eq!(fs::read(&outside).unwrap(), before);
        assert!(!marker(&link).exists(), "no failure counted");
        // A symlink planted as the quarantine's .reason is replaced, not written
        // through.
        let victim = s.tmp.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let qname = "plant1-00000000000000000005.sql";
        std::os::unix::fs::symlink(
            &victim,
            s.rx.shared.quarantine_dir().join(format!("{qname}.reason")),
        )
        .unwrap();
        fsx::write_private_synced(
            &s.rx.shared.quarantine_dir().join(format!("{qname}.reason")),
            b"why\n",
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn work_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let s = setup("");
        for d in ["spool", "quarantine", "state"] {
            let mode = fs::metadata(s.rx.shared.cfg.work_dir.join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }
        let mut c = conn(&s);
        assert!(c.data(1, 0, b"x"));
        let mode = fs::metadata(&c.part.as_ref().unwrap().path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
