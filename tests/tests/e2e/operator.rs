//! What an operator sees when output or configuration goes wrong, and a batch the
//! target cannot take as it is (issue "Never diverge silently"): no panic on a closed
//! pipe or a full disk, an invalid `GAPSYNC_LOG` is an error, and a batch rendered for
//! another dialect is refused and quarantined with the repair in its reason, never
//! applied with other meanings.

use std::process::{Command, Stdio};

use gapsync_tests::*;

/// A running receiver and a sender of table `t` connected to it.
fn pair(ws: &Workspace, rcfg: ReceiverConfig, scfg: SenderConfig) -> (ReceiverNode, SenderNode) {
    let mut rx = ws.receiver(rcfg);
    rx.start();
    let tx = ws.sender(scfg.table(Table::new("t")).connect(rx.addr()));
    (rx, tx)
}

/// `status > /dev/full`: an error naming standard output, a non-zero exit, no panic.
/// `install --dry-run | (closed pipe)`: a quiet end, exit 0, no panic.
#[test]
fn a_closed_pipe_or_a_full_disk_on_stdout_is_no_panic() {
    let ws = Workspace::new("op-stdout");
    let (rx, tx) = pair(&ws, ReceiverConfig::default(), SenderConfig::new("plant1"));
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(receiver_bin())
        .args(["-c", &rx.config_path.display().to_string(), "status"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "status to a full disk must fail: {err}"
    );
    assert!(err.contains("writing to standard output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A pipe whose reader is gone before the command writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(sender_bin())
        .args([
            "-c",
            &tx.config_path.display().to_string(),
            "install",
            "--dry-run",
        ])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "a closed pipe is a quiet end: {err}");
}

/// `GAPSYNC_LOG` that is not a filter: an error that names it, exit 2, and the service
/// does not start with every log line silenced.
#[test]
fn an_invalid_log_filter_is_an_error() {
    let ws = Workspace::new("op-log");
    let rx = ws.receiver(ReceiverConfig::default());
    let out = Command::new(receiver_bin())
        .args(["-c", &rx.config_path.display().to_string(), "check"])
        .env("GAPSYNC_LOG", "info,[[[")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("GAPSYNC_LOG=") && err.contains("not a valid log filter"),
        "{err}"
    );
}

/// A sender rendering for PostgreSQL into a SQLite target: each batch is refused before
/// any statement runs, quarantined on both sides with a reason that names both
/// dialects and the repair; nothing of it lands with another meaning.
#[test]
fn a_batch_of_another_dialect_is_refused_and_quarantined_with_the_repair() {
    let ws = Workspace::new("op-dialect");
    let (rx, tx) = pair(
        &ws,
        ReceiverConfig::default(),
        SenderConfig::new("plant1").dialect("postgres"),
    );
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
        .unwrap();
    tx.install();
    tx.source()
        .execute("INSERT INTO t VALUES (1, X'00FF')", [])
        .unwrap();
    let out = tx.exec(&["once"]);
    assert!(!out.success(), "a refused batch is not a success: {out:?}");
    let seqs = rx.quarantined_seqs("plant1");
    assert!(!seqs.is_empty(), "quarantined on the receiver");
    let reasons: String = rx
        .work_files("quarantine")
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".reason"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        reasons.contains("rendered for dialect postgres, but this target is sqlite"),
        "{reasons}"
    );
    assert!(
        reasons.contains("[target] dialect = \"sqlite\""),
        "{reasons}"
    );
    for seq in seqs {
        assert_eq!(tx.batch(seq).state, "quarantined");
    }
    let tables: i64 = rx
        .target()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "nothing of the refused batches ran");
}

/// `check` creates nothing: a receiver whose target `run` would create (first install,
/// `[target] create = true`) reports it and leaves it uncreated; a sender whose
/// `sqlite:` source path is mistyped fails naming it, and no empty source appears.
#[test]
fn check_creates_nothing() {
    let ws = Workspace::new("op-check");
    let rx = ws.receiver(ReceiverConfig::default());
    rx.write_config();
    let out = Command::new(receiver_bin())
        .args(["-c", &rx.config_path.display().to_string(), "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(!rx.target_db.exists(), "check created the target");

    let tx = ws.sender(SenderConfig::new("plant1").table(Table::new("t")));
    tx.write_config();
    assert!(!tx.source_db.exists());
    let out = tx.exec(&["check"]);
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains("plant.db"),
        "{}",
        out.stderr
    );
    assert!(!tx.source_db.exists(), "check created the source");
}

/// A batch applied by hand that fails on the target (here: its table is missing) is
/// quarantined at once, with a copy and the reason in the receiver's quarantine, and
/// the node's next file applies after it (it no longer waits "needs seq N first"
/// forever); a `resync` heals the table.
#[test]
fn a_refused_manual_apply_is_quarantined_and_the_node_moves_on() {
    let rig = Rig::new(
        "op-manual",
        SenderConfig::new("media").table(Table::new("t")),
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
    );
    let src = rig.tx.source();
    rig.tx.snapshot(&[]);
    rig.tx.once();
    src.execute("INSERT INTO t VALUES (1, 'a')", []).unwrap();
    rig.tx.once();
    src.execute("INSERT INTO t VALUES (2, 'b')", []).unwrap();
    rig.tx.once();
    let archive = rig.tx.work_files("archive");
    assert_eq!(archive.len(), 3, "{archive:?}");

    // A fresh target, by hand: out of order is refused and counts nothing.
    let fresh = rig.ws.receiver_in("fresh", ReceiverConfig::default());
    let out = fresh.apply(&[&archive[1]]).expect_failure();
    assert!(out.stderr.contains("needs seq 1 first"), "{}", out.stderr);
    // seq 1 is the snapshot: apply it, then drop the table so seq 2 fails.
    fresh.apply(&[&archive[0]]).expect_success();
    fresh.target().execute_batch("DROP TABLE t").unwrap();
    let out = fresh.apply(&[&archive[1]]).expect_failure();
    assert!(out.stderr.contains("quarantined"), "{}", out.stderr);
    assert!(out.stderr.contains("resync"), "{}", out.stderr);
    assert_eq!(fresh.quarantined_seqs("media"), vec![2]);
    let name = archive[1]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let q = fresh.work_files("quarantine");
    assert!(
        q.iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == name),
        "{q:?}"
    );
    assert!(
        archive[1].exists(),
        "the operator's file stays where it was"
    );
    // The node moves on: seq 3 is taken next (it fails too, for the same missing
    // table, and is quarantined the same way: nothing waits forever).
    let out = fresh.apply(&[&archive[2]]).expect_failure();
    assert!(!out.stderr.contains("needs seq"), "{}", out.stderr);
    assert_eq!(fresh.quarantined_seqs("media"), vec![2, 3]);
}

/// A first deployment in the README's order (install, run) needs no separate
/// `snapshot`: `install` queues the initial snapshot of every newly installed table, so
/// the first change batches find their table; a second `install` queues nothing.
#[test]
fn install_queues_the_initial_snapshot() {
    let ws = Workspace::new("op-install");
    let (rx, tx) = pair(&ws, ReceiverConfig::default(), SenderConfig::new("plant1"));
    tx.source()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'before');",
        )
        .unwrap();
    let out = tx.exec(&["install"]).expect_success();
    assert!(
        out.stdout.contains("initial snapshot queued for t"),
        "{}",
        out.stdout
    );
    tx.source()
        .execute("INSERT INTO t VALUES (2, 'after')", [])
        .unwrap();
    tx.exec(&["once"]).expect_success();
    assert_synced(&tx, &rx);
    assert!(rx.quarantined_seqs("plant1").is_empty());
    let again = tx.exec(&["install"]).expect_success();
    assert!(
        !again.stdout.contains("snapshot queued"),
        "{}",
        again.stdout
    );
}

/// `keygen` works before a key exists (a config without `[sign] key` and without
/// `insecure`), creates a missing output directory (0700), and prints the sender's and
/// the receiver's config blocks as TOML that can be pasted as they are: the receiver's
/// `check` accepts the `[[trust]]` block.
#[test]
fn keygen_before_a_key_exists_prints_pasteable_toml() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new("op-keygen");
    let dir = ws.path().join("sender");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sender.toml");
    std::fs::write(
        &cfg,
        "node = \"plant7\"\n[source]\nurl = \"sqlite:plant.db\"\n[[table]]\nsource = \"t\"\n\
         [link]\nconnect = \"127.0.0.1:1\"\n[work]\ndir = \"work\"\n",
    )
    .unwrap();
    let keys = ws.path().join("keys").join("deep");
    let out = Command::new(sender_bin())
        .args([
            "-c",
            &cfg.display().to_string(),
            "keygen",
            "--out",
            &keys.display().to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(keys.join("plant7.key").is_file());
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let trust = &text[text.find("[[trust]]").expect("a [[trust]] block")..];
    assert!(text.contains("[sign]\nkey = "), "{text}");

    let rx = ws.receiver(ReceiverConfig::default());
    let rcfg = std::fs::read_to_string(&rx.config_path)
        .unwrap_or_else(|_| {
            rx.write_config();
            std::fs::read_to_string(&rx.config_path).unwrap()
        })
        .replace("insecure = true", "");
    std::fs::write(&rx.config_path, format!("{rcfg}\n{trust}")).unwrap();
    let out = Command::new(receiver_bin())
        .args(["-c", &rx.config_path.display().to_string(), "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the pasted block must be a valid [[trust]] entry: {}\n{trust}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A target restored from an older backup (its ledger went backwards) is an alarm and
/// a stop for the node: nothing is applied on top of it, `status` says so and exits
/// non-zero; with the up-to-date target back, the node goes on.
#[test]
fn a_ledger_that_went_backwards_stops_the_node() {
    let ws = Workspace::new("op-ledger");
    let rcfg = ReceiverConfig {
        // RESULT of a batch that waits is not answered; the sender's `once` asks again
        // a few times and gives up.
        result_wait: secs(1),
        ..ReceiverConfig::default()
    };
    let (mut rx, tx) = pair(&ws, rcfg, SenderConfig::new("plant1"));
    rx.pin_port();
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&[]);
    tx.exec(&["once"]).expect_success();
    rx.stop();
    let old = ws.path().join("old-backup.db");
    std::fs::copy(&rx.target_db, &old).unwrap();
    rx.start();
    for i in 1..=2 {
        tx.source()
            .execute("INSERT INTO t VALUES (?1, 'x')", [i])
            .unwrap();
        tx.exec(&["once"]).expect_success();
    }
    rx.stop();
    let current = ws.path().join("current.db");
    std::fs::copy(&rx.target_db, &current).unwrap();
    // The old backup is restored under the target's name.
    std::fs::copy(&old, &rx.target_db).unwrap();
    rx.start();
    tx.source()
        .execute("INSERT INTO t VALUES (3, 'x')", [])
        .unwrap();
    let out = tx.exec_timeout(&["once"], secs(60));
    assert!(
        !out.success(),
        "nothing may be applied on the old target: {out:?}"
    );
    assert!(
        rx.log_text().contains("the target's ledger went backwards"),
        "{}",
        rx.log_tail(10)
    );
    let rows: i64 = rx
        .target()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "nothing applied on top of the old backup");
    let st = rx.exec(&["status"]);
    assert!(!st.success(), "{st:?}");
    assert!(st.stdout.contains("LEDGER WENT BACKWARDS"), "{st:?}");

    // The up-to-date target back: the node goes on.
    rx.stop();
    std::fs::copy(&current, &rx.target_db).unwrap();
    rx.start();
    tx.exec(&["once"]).expect_success();
    assert_synced(&tx, &rx);
}

/// `check` refuses what `run` would refuse: a listen address without a port, and a
/// listen address in use; a sender `connect` without a port is a configuration error.
#[test]
fn check_refuses_what_run_would_refuse() {
    let ws = Workspace::new("op-check2");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let rx = ws.receiver(ReceiverConfig {
        listen: format!("127.0.0.1:{port}"),
        ..ReceiverConfig::default()
    });
    rx.write_config();
    let out = rx.exec(&["check"]);
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);
    drop(taken);
    rx.exec(&["check"]).expect_success();
    // The metrics address in use: `run` could not serve it, so `check` says so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut with_metrics = rx.cfg.clone();
    with_metrics.metrics_listen = Some(taken.local_addr().unwrap().to_string());
    std::fs::write(
        &rx.config_path,
        with_metrics.toml(&rx.target_db, &rx.work_dir),
    )
    .unwrap();
    let out = rx.exec(&["check"]);
    assert!(
        !out.success() && out.stderr.contains("[metrics] listen"),
        "{}",
        out.stderr
    );
    drop(taken);
    rx.exec(&["check"]).expect_success();
    rx.write_config();

    let text = std::fs::read_to_string(&rx.config_path).unwrap();
    std::fs::write(
        &rx.config_path,
        text.replace(&format!("127.0.0.1:{port}"), "127.0.0.1"),
    )
    .unwrap();
    let out = rx.exec(&["check"]);
    assert!(
        out.stderr
            .contains("[link] listen = \"127.0.0.1\": no port"),
        "{}",
        out.stderr
    );

    let tx = ws.sender(
        SenderConfig::new("plant1")
            .table(Table::new("t"))
            .connect("10.0.0.1"),
    );
    tx.write_config();
    let out = tx.exec(&["check"]);
    assert!(
        out.stderr
            .contains("[link] connect = \"10.0.0.1\": no port"),
        "{}",
        out.stderr
    );
}

/// SIGHUP is a reload, not a kill: both services stop between batches, read their
/// configuration again and go on in the same process; a configuration that does not
/// load keeps the old one, with an alarm. Nothing is lost across it.
#[test]
fn sighup_reloads_the_configuration_without_losing_anything() {
    let ws = Workspace::new("op-sighup");
    let (mut rx, mut tx) = pair(&ws, ReceiverConfig::default(), SenderConfig::new("plant1"));
    rx.pin_port();
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&["t"]);
    tx.start();
    let insert = |ids: std::ops::Range<i64>| {
        let c = tx.source();
        for id in ids {
            c.execute("INSERT INTO t(id, v) VALUES (?1, 'x')", [id])
                .unwrap();
        }
    };
    insert(0..5);
    ws.wait_synced(&tx, &rx, secs(20));
    assert_synced(&tx, &rx);

    rx.hangup();
    ws.wait_until(
        "the receiver to re-read its configuration",
        secs(20),
        || rx.log_text().contains("SIGHUP: configuration re-read"),
    );
    insert(5..10);
    ws.wait_synced(&tx, &rx, secs(20));

    // A configuration that does not load: the old one stays, with an alarm.
    let good = std::fs::read_to_string(&rx.config_path).unwrap();
    std::fs::write(&rx.config_path, "this is not toml = [").unwrap();
    rx.hangup();
    ws.wait_until(
        "the receiver to refuse the broken configuration",
        secs(20),
        || {
            rx.log_text()
                .contains("SIGHUP: the configuration does not load")
        },
    );
    std::fs::write(&rx.config_path, good).unwrap();
    assert!(rx.is_running());
    insert(10..15);
    ws.wait_synced(&tx, &rx, secs(20));

    tx.hangup();
    ws.wait_until("the sender to re-read its configuration", secs(20), || {
        tx.log_text().contains("SIGHUP: configuration re-read")
    });
    insert(15..20);
    ws.wait_synced(&tx, &rx, secs(20));
    assert_synced(&tx, &rx);
    assert!(rx.quarantined_seqs("plant1").is_empty());
    assert!(tx.stop().success());
    assert!(rx.stop().success());
}

/// `GAPSYNC_LOG_FORMAT=json`: every line on standard error, the final error line
/// included, is one JSON object with a time; the text form's final line has a time too;
/// an unknown format is an error.
#[test]
fn json_logs_and_a_timed_final_error_line() {
    let ws = Workspace::new("op-json");
    let rx = ws.receiver(ReceiverConfig::default());
    // `apply` of a file that does not exist: log lines, then the final error line.
    let missing = ws.path().join("nothing-here.sql");
    let run = |format: Option<&str>| {
        let mut c = Command::new(receiver_bin());
        c.args([
            "-c",
            &rx.config_path.display().to_string(),
            "apply",
            &missing.display().to_string(),
        ]);
        if let Some(f) = format {
            c.env("GAPSYNC_LOG_FORMAT", f);
        }
        c.output().unwrap()
    };
    let out = run(Some("json"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.starts_with("20")),
            "{l}"
        );
        assert!(v["level"].is_string(), "{l}");
    }
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("error: ") && m.contains("nothing-here.sql")),
        "{last}"
    );

    let out = run(None);
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("20") && last.contains(" gapsync-receiver: error: "),
        "{last}"
    );

    let out = run(Some("xml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GAPSYNC_LOG_FORMAT=\"xml\" is not valid")
    );
}

/// `status` exits by the monitoring convention: 0 ok; 1 when the oldest change is older
/// than `[alarm] lag` or the receiver has not answered for `[alarm] silence` while
/// batches wait; 2 for a quarantined batch nobody acknowledged; the reasons are listed.
/// The last link error and the last failed apply are shown with their time.
#[test]
fn status_exit_codes_follow_the_monitoring_convention() {
    let ws = Workspace::new("op-status");
    let (mut rx, mut tx) = pair(&ws, ReceiverConfig::default(), SenderConfig::new("plant1"));
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&["t"]);
    tx.once();
    let code = |tx: &SenderNode| {
        let out = tx.exec(&["status"]);
        (out.status.code(), out.stdout)
    };
    let (c, text) = code(&tx);
    assert_eq!(c, Some(0), "{text}");
    assert!(text.contains("health: Ok"), "{text}");
    // When the last batch was applied, on both sides.
    assert!(text.contains("last seq applied: 1 at 20"), "{text}");
    let rst = rx.status();
    assert!(
        rst["nodes"][0]["last_applied_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{rst:#}"
    );
    let insert = |tx: &SenderNode, id: i64| {
        tx.source()
            .execute("INSERT INTO t(id, v) VALUES (?1, 'x')", [id])
            .unwrap();
    };

    // Lag: a change older than [alarm] lag.
    tx.cfg.alarm = vec![("lag", secs(1)), ("lag_critical", secs(3600))];
    tx.write_config();
    insert(&tx, 1);
    std::thread::sleep(ms(2100));
    let (c, text) = code(&tx);
    assert_eq!(c, Some(1), "{text}");
    assert!(text.contains("behind, over [alarm] lag"), "{text}");
    tx.once();
    assert_eq!(code(&tx).0, Some(0));

    // The receiver silent while a batch waits (lag judged by an hour here).
    tx.cfg.alarm = vec![
        ("lag", secs(3600)),
        ("silence", secs(1)),
        ("silence_critical", secs(3600)),
    ];
    tx.cfg.once_connect_attempts = 1;
    tx.write_config();
    rx.stop();
    insert(&tx, 2);
    tx.exec(&["once"]).expect_failure();
    std::thread::sleep(ms(2100));
    let (c, text) = code(&tx);
    assert_eq!(c, Some(1), "{text}");
    assert!(text.contains("the receiver has not answered for"), "{text}");
    // The link error that `once` met is in status with its time.
    assert!(text.contains("last link error: 20"), "{text}");
    let st = tx.status();
    assert!(
        st["last_link_error"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{st:#}"
    );
    rx.start();
    tx.set_connect(rx.addr());
    tx.once();
    assert_eq!(code(&tx).0, Some(0));

    // A quarantined batch nobody acknowledged: critical, until `quarantine ack`.
    rx.target()
        .execute_batch("ALTER TABLE t RENAME COLUMN v TO w")
        .unwrap();
    insert(&tx, 3);
    tx.exec(&["once"]).expect_failure();
    let (c, text) = code(&tx);
    assert_eq!(c, Some(2), "{text}");
    assert!(text.contains("quarantined batches"), "{text}");
    let seq = tx.status()["quarantined"][0]["seq"].as_u64().unwrap();
    // The failed apply, with its time, on both sides: the sender's from the answers,
    // the receiver's as its service noted it.
    let st = tx.status();
    assert_eq!(st["last_apply_error"]["seq"].as_u64(), Some(seq), "{st:#}");
    assert_eq!(
        st["last_apply_error"]["attempts"].as_u64(),
        Some(2),
        "{st:#}"
    );
    assert!(
        st["last_apply_error"]["at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{st:#}"
    );
    assert!(
        text.contains(&format!("last failed apply: seq {seq} at 20")),
        "{text}"
    );
    let out = rx.exec(&["status", "--json"]);
    let rst: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let noted = rst["last_apply_error"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        noted.contains(&format!("seq {seq}")) && noted.contains("quarantined"),
        "{rst:#}"
    );
    let rtext = rx.exec(&["status"]).stdout;
    assert!(rtext.contains("last apply error: 20"), "{rtext}");
    tx.exec(&["quarantine", "ack", &seq.to_string(), "--by", "ops"])
        .expect_success();
    assert_eq!(code(&tx).0, Some(0));
    rx.stop();
}

/// Metrics: the receiver's endpoint, scraped over HTTP during a stream, shows counters
/// that move; both services' node_exporter textfiles parse with a Prometheus text
/// parser and hold the same story.
#[test]
fn metrics_are_scraped_and_written_as_textfiles() {
    use std::io::{BufRead, Read, Write};
    let ws = Workspace::new("op-metrics");
    let rcfg = ReceiverConfig {
        metrics_listen: Some("127.0.0.1:0".into()),
        metrics_textfile: Some(ws.path().join("receiver.prom")),
        ..ReceiverConfig::default()
    };
    let mut scfg = SenderConfig::new("plant1");
    scfg.metrics_textfile = Some(ws.path().join("sender.prom"));
    let (rx, mut tx) = pair(&ws, rcfg, scfg);
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&["t"]);
    tx.start();
    let addr = ws.wait_for("the metrics address", secs(20), || {
        std::fs::read_to_string(rx.work_dir.join("state").join("metrics.addr"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    // One request, its whole answer ("" when the endpoint closed it unanswered: busy).
    let get = |request: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(addr.trim()).unwrap();
        s.set_read_timeout(Some(secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut text = String::new();
        // A reset (the endpoint was busy) reads as no answer.
        let _ = s.read_to_string(&mut text);
        text
    };
    let scrape = || -> prometheus_parse::Scrape {
        let text = get(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
    };
    let value = |s: &prometheus_parse::Scrape, name: &str| -> f64 {
        s.samples
            .iter()
            .filter(|x| x.metric == name)
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let insert = |ids: std::ops::Range<i64>| {
        let c = tx.source();
        for id in ids {
            c.execute("INSERT INTO t(id, v) VALUES (?1, 'x')", [id])
                .unwrap();
        }
    };
    insert(0..5);
    ws.wait_synced(&tx, &rx, secs(20));
    let first = scrape();
    let applied = value(&first, "gapsync_batches_applied_total");
    assert!(applied >= 1.0, "{:?}", first.samples);
    insert(5..10);
    ws.wait_synced(&tx, &rx, secs(20));
    ws.wait_until("the applied counter to move", secs(10), || {
        value(&scrape(), "gapsync_batches_applied_total") > applied
    });
    let s = scrape();
    assert!(value(&s, "gapsync_received_bytes_total") > 0.0);

    // The endpoint is an input path on the outside network: garbage bytes, an
    // unknown path, a connection left half open and a flood of idle ones cost it
    // nothing lasting; it still answers, and replication goes on.
    // Busy, it closes new connections unanswered; an idle one is dropped after a few
    // seconds, so a scraper that retries is answered within them.
    let hostile: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(addr.trim()).unwrap())
        .collect();
    {
        let garbage = get(&[
            0xff, 0x00, b'\r', b'\n', 0x80, 0x81, b'\r', b'\n', b'\r', b'\n',
        ]);
        assert!(garbage.is_empty() || garbage.contains(" 400 "), "{garbage}");
        let mut half = std::net::TcpStream::connect(addr.trim()).unwrap();
        half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let _keep = half;
        let started = std::time::Instant::now();
        let mut text = String::new();
        ws.wait_until(
            "the endpoint to answer beside idle connections",
            secs(20),
            || {
                text = get(b"GET /../../etc/passwd HTTP/1.0\r\n\r\n");
                !text.is_empty()
            },
        );
        assert!(text.contains(" 404 ") && !text.contains("root:"), "{text}");
        assert!(started.elapsed() < secs(10), "{:?}", started.elapsed());
        ws.wait_until("a scrape beside idle connections", secs(20), || {
            value(&scrape(), "gapsync_batches_applied_total") >= applied
        });
    }
    drop(hostile);
    assert!(value(&s, "gapsync_last_contact_timestamp_seconds") > 1.7e9);
    assert!(value(&s, "gapsync_last_applied_seq") >= 2.0);

    // The textfiles, as node_exporter's collector reads them.
    let parse_file = |p: std::path::PathBuf| {
        let f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        prometheus_parse::Scrape::parse(std::io::BufReader::new(f).lines()).unwrap()
    };
    ws.wait_until("both textfiles to count the batches", secs(10), || {
        let r = parse_file(ws.path().join("receiver.prom"));
        let t = parse_file(ws.path().join("sender.prom"));
        value(&r, "gapsync_batches_applied_total") >= 2.0
            && value(&t, "gapsync_batches_applied_total") >= 2.0
            && value(&t, "gapsync_changes_cut_total") >= 5.0
    });
    tx.stop();
}

/// The shipped units: `systemd-analyze verify` accepts them (with the binaries built
/// here in place of `/usr/bin`), and their exposure stays under 3 ("OK") by
/// `systemd-analyze security --offline=true --threshold=30` (tenths).
#[test]
fn the_units_verify_and_stay_hardened() {
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join("systemd");
    let ws = Workspace::new("op-units");
    let have = Command::new("systemd-analyze").arg("--version").output();
    if have.as_ref().map_or(true, |o| !o.status.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing but CI=true: deploy/ci-deps.sh should have installed systemd"
        );
        eprintln!("skipping: no systemd-analyze");
        return;
    }
    for (unit, bin) in [
        ("gapsync-sender.service", sender_bin()),
        ("gapsync-receiver.service", receiver_bin()),
    ] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let name = unit.trim_end_matches(".service");
        let text = text.replace(&format!("/usr/bin/{name}"), &bin.display().to_string());
        let path = ws.path().join(unit);
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "{unit}: {err}"
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=30"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{unit}: exposure over 3:\n{}",
            text.lines().last().unwrap_or("")
        );
    }
}

/// The receiver's `status`: each node's last contact (the only liveness signal the
/// outside zone has); a node silent past `[alarm] silence` is a warning (exit 1), past
/// `silence_critical` critical (exit 2); heard from again, ok.
#[test]
fn receiver_status_warns_when_a_node_is_silent() {
    let ws = Workspace::new("op-silence");
    let rcfg = ReceiverConfig {
        alarm: vec![("silence", secs(4)), ("silence_critical", secs(3600))],
        ..ReceiverConfig::default()
    };
    let (rx, tx) = pair(&ws, rcfg, SenderConfig::new("plant1"));
    tx.source()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    tx.install();
    tx.snapshot(&["t"]);
    tx.once();
    ws.wait_until("the contact to be noted", secs(20), || {
        rx.work_dir.join("state").join("contact.json").exists()
    });
    let out = rx.exec(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("node plant1: last heard from"),
        "{}",
        out.stdout
    );
    std::thread::sleep(ms(5100));
    let out = rx.exec(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("node plant1 silent for") && out.stderr.contains("[alarm] silence"),
        "{}",
        out.stderr
    );
    tx.source()
        .execute("INSERT INTO t(id, v) VALUES (1, 'x')", [])
        .unwrap();
    tx.once();
    ws.wait_until("the node to be heard from again", secs(20), || {
        rx.exec(&["status"]).status.code() == Some(0)
    });
}
