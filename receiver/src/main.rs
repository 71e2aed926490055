//! `gapsync-receiver`: thin command-line layer over the `gapsync_receiver` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use gapsync_receiver::apply::Target;
use gapsync_receiver::config::ReceiverConfig;
use gapsync_receiver::{Receiver, apply_files, status};
use tracing::{info, warn};

/// Outside-zone side of gapsync: receives batch files through the isolation device,
/// verifies them and applies each in one transaction on the target database.
#[derive(Parser, Debug)]
#[command(name = "gapsync-receiver", version)]
struct Cli {
    /// Receiver configuration file (TOML).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/gapsync/receiver.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write the man page and the shell completions (bash, zsh, fish) into DIR (for the
    /// packages).
    #[command(hide = true)]
    Docs {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Validate the configuration (trust keys included), that the listen address is free,
    /// the work directory writable and the target opens, without running; creates
    /// nothing (a target `run` would create is only reported).
    Check,
    /// Listen, spool, verify, apply and answer until SIGTERM / ctrl-c.
    Run,
    /// Write this receiver's own Ed25519 key pair (its node id is `[link] id`) for
    /// signing receipts: DIR/<id>.key (0600) and DIR/<id>.pub, creating DIR (0700);
    /// prints the [receipts] block and the line the senders trust. Refuses to overwrite.
    Keygen {
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Quarantined batches: list them, show one (reason, failing statement, tables),
    /// retry one after the target was repaired (exactly once, in its place), or accept
    /// its loss (recorded in the audit).
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// Import a medium written by `gapsync-sender export`: check its manifests against
    /// its files (each problem reported by name), then apply what is new in seq order
    /// through the same checks and ledger as `apply`. Writes nothing to the medium; a
    /// second import of it applies nothing and says so. Exits non-zero on any problem.
    Import {
        /// The medium's folder.
        dir: PathBuf,
    },
    /// Apply batch files by hand (media transfer), exactly once, in seq order; a verified
    /// file that fails on the target is quarantined, so the node's next files can go on.
    Apply {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Accept that NODE's ledger on the target went backwards (the target was replaced
    /// on purpose): forget this receiver's high-water mark for it. Stop the receiver
    /// first; afterwards resync the node's tables from the sender.
    AcceptLedger { node: String },
    /// Show per node progress (last seq applied and when, last contact), spooled and
    /// quarantined batches, the inbox's gaps, the last link and apply errors with their
    /// time. With the target database unavailable it still shows the spool and the
    /// quarantine. Exit status: 0 ok, 1 warning, 2 critical (reasons on standard error).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum QuarantineCmd {
    /// Every quarantined batch with its reason, and whether its loss was accepted.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One quarantined batch: the reason (with the SQL state where the driver gave
    /// one), the failing statement, the tables it writes, the batches applied after it.
    Show {
        node: String,
        seq: u64,
        #[arg(long)]
        json: bool,
    },
    /// After the target was repaired: verify the kept file again and apply it in its
    /// place, exactly once (its quarantine record and its ledger row change in the same
    /// transaction). If later batches of the node were applied since, say so and
    /// require --force.
    Retry {
        node: String,
        seq: u64,
        /// Apply even though later batches of the node were applied after it.
        #[arg(long)]
        force: bool,
    },
    /// Accept the loss of a quarantined batch: the audit records who and when.
    Ack {
        node: String,
        seq: u64,
        /// Who accepts it (default: $SUDO_USER or $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

fn main() -> ExitCode {
    if let Err(e) = gapsync_common::logging::init() {
        eprintln!("gapsync-receiver: error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<gapsync_common::logging::StdoutError>()
                    .is_some_and(gapsync_common::logging::StdoutError::is_broken_pipe)
            }) =>
        {
            // The reader of our output went away (`| head`): a quiet end.
            ExitCode::SUCCESS
        }
        Err(e) => {
            gapsync_common::logging::final_error(
                "gapsync-receiver",
                &gapsync_common::logging::error_line(e.as_ref()),
            );
            ExitCode::FAILURE
        }
    }
}

/// Whether the service user can write in `dir` (see `fsx::check_writable`).
fn writable(dir: &std::path::Path) -> Result<()> {
    Ok(gapsync_common::fsx::check_writable(dir)?)
}

fn open_target(cfg: &ReceiverConfig) -> Result<Target> {
    Ok(Target::open(&cfg.target, &cfg.target_options())?)
}

/// `run`: the applier and the link (TCP listener or inbox) until `stop`.
fn run_service(cfg: ReceiverConfig, stop: &Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
    // A target that cannot work at all (no ODBC support, a malformed URL) stops the
    // service; one that is merely unavailable now is retried by the applier.
    match Target::open(&cfg.target, &cfg.target_options()) {
        Err(e @ gapsync_receiver::apply::ApplyError::Deterministic(_)) => {
            return Err(anyhow::Error::new(e).context("opening the target"));
        }
        Err(e) => warn!(error = %e, "target unavailable at start; the applier retries"),
        Ok(_) => {}
    }
    let inbox = cfg.link.dir.clone();
    let rx = Receiver::new(cfg)?;
    let metrics = rx.serve_metrics(stop)?;
    let applier = {
        let rx = rx.clone();
        let stop = Arc::clone(stop);
        std::thread::spawn(move || rx.apply_loop(&stop))
    };
    let r = match inbox {
        Some(dir) if !dir.is_dir() => Err(anyhow::anyhow!(
            "[link] dir = {}: not a folder (create it, or mount the ferry's folder)",
            dir.display()
        )),
        Some(dir) => {
            info!(dir = %dir.display(), "receiver running (folder link: no answers go back)");
            rx.inbox_loop(&dir, stop);
            Ok(())
        }
        None => rx
            .bind()
            .and_then(|listener| rx.accept_loop(listener, stop))
            .map_err(anyhow::Error::from),
    };
    stop.store(true, Ordering::SeqCst);
    // The applier and the metrics endpoint end at the stop flag; a panic in either was
    // already printed.
    let _ = applier.join();
    if let Some(m) = metrics {
        let _ = m.join();
    }
    r
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    if let Cmd::Docs { out } = &cli.cmd {
        // No configuration needed: the packages are built without one.
        for f in gapsync_common::docs::write_docs(Cli::command(), out)
            .with_context(|| format!("writing into {}", out.display()))?
        {
            gapsync_common::outln!("{}", f.display())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = ReceiverConfig::load(&cli.config)?;
    if cfg.insecure {
        warn!(
            listen = %cfg.link.listen,
            "insecure = true: a sender of any node WITHOUT a [[trust]] key is accepted unauthenticated, under any node name it claims: anyone who can reach the listen address can write to the target through such a node. Nodes with [[trust]] keys still need valid signatures on HELLO, END and every batch"
        );
    }
    if cfg.link.dir.is_none()
        && !cfg.trust.is_empty()
        && cfg.link.id == gapsync_common::config::DEFAULT_RECEIVER_ID
    {
        warn!(
            id = %cfg.link.id,
            "[link] id is the default: give this receiver its own id (and the senders' [link] receiver_id the same), or a HELLO captured at another receiver on the default could be replayed here"
        );
    }
    match cli.cmd {
        // Handled above, before the configuration is loaded.
        Cmd::Docs { .. } => {}
        Cmd::Check => {
            gapsync_common::sign::TrustStore::from_config(&cfg.trust).with_context(|| {
                format!(
                    "{}: [[trust]] key: paste the sender's .pub line",
                    cli.config.display()
                )
            })?;
            // What `run` needs of the host: the listen address free, the work directory
            // writable (checked with a file removed at once).
            match &cfg.link.dir {
                Some(d) => {
                    if !d.is_dir() {
                        anyhow::bail!(
                            "{}: [link] dir = {}: not a folder (create it, or mount the ferry's folder)",
                            cli.config.display(),
                            d.display()
                        );
                    }
                    // Processed files move to done/; a read-only folder keeps them.
                    if let Err(e) = gapsync_common::fsx::check_writable(d) {
                        gapsync_common::outln!(
                            "[link] dir = {}: {e}: processed files will stay in it (the ledger knows them)",
                            d.display()
                        )?;
                    }
                }
                None => {
                    if let Err(e) = std::net::TcpListener::bind(&cfg.link.listen) {
                        anyhow::bail!(
                            "{}: [link] listen = {:?}: cannot listen: {e} (in use, by a running receiver or another service, or not an address of this host)",
                            cli.config.display(),
                            cfg.link.listen
                        );
                    }
                }
            }
            if let Some(m) = &cfg.metrics_listen
                && let Err(e) = std::net::TcpListener::bind(m)
            {
                anyhow::bail!(
                    "{}: [metrics] listen = {m:?}: cannot listen: {e} (in use, or not an address of this host)",
                    cli.config.display()
                );
            }
            writable(&cfg.work_dir)
                .with_context(|| format!("{}: [work] dir", cli.config.display()))?;
            if let Some(k) = &cfg.receipts_key {
                gapsync_common::sign::BatchSigner::load(k, &cfg.link.id).with_context(|| {
                    format!(
                        "{}: [receipts] key (create it with `gapsync-receiver keygen --out DIR`)",
                        cli.config.display()
                    )
                })?;
            }
            // `check` creates nothing: a target file that `run` would create (first
            // install, `[target] create = true`) is only reported.
            let to_create = match &cfg.target {
                gapsync_common::config::DbUrl::Sqlite(p) => {
                    cfg.create_target && std::fs::symlink_metadata(p).is_err()
                }
                gapsync_common::config::DbUrl::Odbc(_) => false,
            };
            if to_create {
                gapsync_common::outln!(
                    "target {} does not exist yet: `run` will create it ([target] create = true; set it back to false once installed)",
                    cfg.target
                )?;
            } else {
                open_target(&cfg).with_context(|| format!("opening the target {}", cfg.target))?;
            }
            gapsync_common::outln!(
                "{}: configuration OK (target {})",
                cli.config.display(),
                cfg.target
            )?;
            gapsync_common::outln!("{}", cfg.target_options().allow.describe())?;
        }
        Cmd::Run => {
            let sig =
                gapsync_common::stop::Signals::install().context("installing signal handlers")?;
            gapsync_common::stop::run_reloading(
                &sig,
                cfg,
                || ReceiverConfig::load(&cli.config),
                run_service,
            )?;
            info!("receiver stopped");
        }
        Cmd::Keygen { out } => {
            gapsync_common::fsx::private_dir(&out)
                .with_context(|| format!("creating the key directory {}", out.display()))?;
            let (key, public, signer) = gapsync_common::sign::generate(&cfg.link.id, &out)?;
            gapsync_common::outln!("private key: {} (mode 0600)", key.display())?;
            gapsync_common::outln!("public key:  {}", public.display())?;
            gapsync_common::outln!(
                "\n# receiver.toml\n[receipts]\ndir = \"/var/lib/gapsync/receipts\"\nkey = {:?}",
                key.display().to_string()
            )?;
            gapsync_common::outln!(
                "\n# sender.toml (every sender whose receipts this receiver signs)\n[receipts]\ntrust = [{:?}]",
                signer.public_line()
            )?;
        }
        Cmd::Quarantine { cmd } => match cmd {
            QuarantineCmd::List { json } => {
                let v = gapsync_receiver::quarantine::list(&cfg)?;
                if json {
                    gapsync_common::outln!("{}", serde_json::to_string_pretty(&v)?)?;
                } else if v.is_empty() {
                    gapsync_common::outln!("no quarantined batch")?;
                }
                if !json {
                    for e in &v {
                        gapsync_common::outln!(
                            "{} seq {} {} ({}){}: {}",
                            e.record.node,
                            e.record.seq,
                            e.record.file,
                            e.record.at,
                            match &e.acked {
                                Some(a) => format!(", loss accepted by {a}"),
                                None => String::new(),
                            },
                            e.record.reason
                        )?;
                    }
                }
            }
            QuarantineCmd::Show { node, seq, json } => {
                let d = gapsync_receiver::quarantine::show(&cfg, &node, seq)?;
                if json {
                    gapsync_common::outln!("{}", serde_json::to_string_pretty(&d)?)?;
                } else {
                    let r = &d.entry.record;
                    gapsync_common::outln!(
                        "{} seq {}: {} (quarantined {})",
                        r.node,
                        r.seq,
                        r.file,
                        r.at
                    )?;
                    gapsync_common::outln!("reason: {}", r.reason)?;
                    if let Some((line, text)) = &d.statement {
                        gapsync_common::outln!("failing statement, line {line}: {text}")?;
                    }
                    if !d.entry.file_kept {
                        gapsync_common::outln!(
                            "its file is not kept in quarantine/: it cannot be retried here"
                        )?;
                    }
                    gapsync_common::outln!("tables: {}", d.tables.join(", "))?;
                    gapsync_common::outln!(
                        "applied after it: {}",
                        if d.applied_after.is_empty() {
                            "none".to_owned()
                        } else {
                            format!("{:?}", d.applied_after)
                        }
                    )?;
                    if let Some(a) = &d.entry.acked {
                        gapsync_common::outln!("loss accepted by {a}")?;
                    }
                }
            }
            QuarantineCmd::Retry { node, seq, force } => {
                let line = gapsync_receiver::quarantine::retry(&cfg, &node, seq, force)?;
                gapsync_common::outln!("{line}")?;
            }
            QuarantineCmd::Ack { node, seq, by } => {
                let by = by
                    .or_else(|| std::env::var("SUDO_USER").ok())
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_else(|| "unknown".to_owned());
                let line = gapsync_receiver::quarantine::ack(&cfg, &node, seq, &by)?;
                gapsync_common::outln!("{line}")?;
            }
        },
        Cmd::Import { dir } => {
            let r = gapsync_receiver::import_dir(&cfg, &dir)?;
            for line in &r.lines {
                gapsync_common::outln!("{line}")?;
            }
            for p in &r.problems {
                gapsync_common::outln!("problem: {p}")?;
            }
            for f in &r.receipts {
                gapsync_common::outln!(
                    "receipt written: {f} (carry it back: gapsync-sender import-receipt FILE)"
                )?;
            }
            if r.applied == 0 && r.problems.is_empty() {
                gapsync_common::outln!(
                    "nothing new: all {} batch(es) on the medium are applied already",
                    r.already
                )?;
            } else {
                gapsync_common::outln!(
                    "{} applied, {} applied before, {} problem(s)",
                    r.applied,
                    r.already,
                    r.problems.len()
                )?;
            }
            if !r.problems.is_empty() {
                anyhow::bail!(
                    "{}: {} problem(s) on the medium (listed above): what could be checked was imported; bring the missing or damaged files again (gapsync-sender export --from SEQ)",
                    dir.display(),
                    r.problems.len()
                );
            }
        }
        Cmd::Apply { files } => {
            for line in apply_files(&cfg, &files)? {
                gapsync_common::outln!("{line}")?;
            }
        }
        Cmd::AcceptLedger { node } => {
            let mut marks = gapsync_receiver::marks::read_marks(&cfg.work_dir);
            match marks.remove(&node) {
                Some(mark) => {
                    gapsync_receiver::marks::write_marks(&cfg.work_dir, &marks)
                        .context("writing the ledger marks")?;
                    gapsync_common::outln!(
                        "node {node}: the mark of seq {mark} is forgotten; the target's ledger is taken as it is (resync the node's tables from the sender)"
                    )?;
                }
                None => gapsync_common::outln!("node {node}: no mark recorded, nothing to accept")?,
            }
        }
        Cmd::Status { json } => {
            let t = Target::open(&cfg.target, &cfg.target_options());
            let trusted: Vec<&str> = cfg.trust.iter().map(|(n, _)| n.as_str()).collect();
            let watched = |node: &str| cfg.insecure || trusted.contains(&node);
            let inbox = cfg.link.dir.as_deref().map(|dir| status::InboxQuery {
                dir,
                gap_alarm: cfg.link.gap_alarm,
                watched: &watched,
            });
            let st = status::status(t, &cfg.work_dir, inbox);
            if json {
                gapsync_common::outln!("{}", serde_json::to_string_pretty(&st)?)?;
            } else {
                gapsync_common::logging::write_stdout(format_args!("{}", st.text()))?;
            }
            // The monitoring convention: 0 ok, 1 warning, 2 critical; the reasons on
            // standard error (the report itself is printed either way).
            let mut critical = Vec::new();
            let mut warning = Vec::new();
            if let Some(e) = &st.target_error {
                critical.push(format!("the target database is unavailable: {e}"));
            }
            if let Some(e) = st.inbox.as_ref().and_then(|i| i.error.as_ref()) {
                critical.push(format!(
                    "the inbox cannot be read: {e} (is the ferry's folder mounted?)"
                ));
            }
            if let Some(g) = st
                .inbox
                .as_ref()
                .and_then(|i| i.gaps.iter().find(|g| g.alarm))
            {
                critical.push(format!(
                    "inbox gap: node {} waits for seq {} for {} s (over [link] gap_alarm): check the ferry, or bring the batch on a medium (gapsync-sender export --from {})",
                    g.node, g.missing, g.age_secs, g.missing
                ));
            }
            if !st.ledger_regressed.is_empty() {
                critical.push(format!(
                    "the target's ledger went backwards for {}: restore the target, or `accept-ledger NODE`",
                    st.ledger_regressed.join(", ")
                ));
            }
            if cfg.link.dir.is_none() {
                let (warn_after, crit_after) = cfg.alarm_silence;
                for c in &st.contacts {
                    let line = format!(
                        "node {} silent for {} s (no HELLO, heartbeat or batch)",
                        c.node, c.silent_secs
                    );
                    if c.silent_secs >= crit_after.as_secs() {
                        critical.push(format!("{line}, over [alarm] silence_critical"));
                    } else if c.silent_secs >= warn_after.as_secs() {
                        warning.push(format!("{line}, over [alarm] silence"));
                    }
                }
            }
            let level: u8 = if !critical.is_empty() {
                2
            } else if !warning.is_empty() {
                1
            } else {
                0
            };
            if level > 0 {
                critical.extend(warning);
                gapsync_common::logging::final_error("gapsync-receiver", &critical.join("; "));
                return Ok(ExitCode::from(level));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
