//! `gapsync-sender`: thin command-line layer over the `gapsync_sender` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use gapsync_sender::config::SenderConfig;
use gapsync_sender::{Sender, status};
use tracing::{error, info, warn};

/// Inside-zone side of gapsync: captures source-table changes with triggers, turns them
/// into equivalent-SQL batch files and pushes them through the isolation device.
#[derive(Parser, Debug)]
#[command(name = "gapsync-sender", version)]
struct Cli {
    /// Sender configuration file (TOML).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/gapsync/sender.toml"
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
    /// Validate the configuration (and that the configured tables exist) without running.
    Check,
    /// Create the tracking table and the capture triggers of every configured table
    /// (idempotent; re-installs a table whose columns changed), and queue the initial
    /// snapshot of every table installed for the first time.
    Install {
        /// Print the DDL instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// Do not queue the initial snapshot of newly installed tables (then queue it
        /// yourself with `snapshot` before the first `run`, or the first change batches
        /// find no table on the target and are quarantined).
        #[arg(long)]
        no_snapshot: bool,
    },
    /// Remove the capture triggers (tracking data is kept unless --purge).
    Uninstall {
        /// Also drop gapsync's tables: pending changes and the batch sequence are lost.
        #[arg(long)]
        purge: bool,
    },
    /// Queue a snapshot (CREATE TABLE + all rows) of the named tables (default: all).
    /// `resync TABLE` is the same: it heals a target table that lost a quarantined
    /// batch's changes or was changed by hand.
    #[command(visible_alias = "resync")]
    Snapshot { tables: Vec<String> },
    /// Write a new Ed25519 key pair for the configured node (only `node` is read from the
    /// config, so no key is needed yet): DIR/<node>.key (private, mode 0600) and
    /// DIR/<node>.pub, creating DIR (0700); prints the [sign] and [[trust]] blocks to
    /// paste. Refuses to overwrite existing files.
    Keygen {
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the service until SIGTERM / ctrl-c.
    Run,
    /// Ship everything pending now, wait for the answers; exit 0 only if every batch
    /// shipped was applied.
    Once,
    /// Copy archived batches to removable media (or any folder), then their signed
    /// manifest (written last). Adds to a medium that holds earlier exports; refuses,
    /// before writing anything, a file there of the same name and other content, and a
    /// medium without room. On the outside: `gapsync-receiver import DIR`.
    Export {
        /// The medium's folder (it must exist).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// First seq to export (default: the oldest in archive/).
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Last seq to export (default: the newest in archive/).
        #[arg(long, value_name = "SEQ")]
        to_seq: Option<u64>,
        /// Only the seqs the newest receipt says the receiver misses.
        #[arg(long)]
        missing: bool,
    },
    /// Batches the receiver answered "failed" twice: list them, show one, send one
    /// again after the receiver applied it by its own `quarantine retry`, or accept the
    /// loss (recorded in the audit).
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// Record a receipt carried back from the receiver (verified against [receipts]
    /// trust; a forged or altered one is refused): status then shows the confirmed seqs,
    /// the ones the receiver quarantined with the reason, and the ones it misses.
    ImportReceipt {
        /// The receipt file (receipt-<node>-<seq>.xml).
        file: PathBuf,
    },
    /// After a halt (`on_second_failure = "halt"`) and its repair: remove the halt record
    /// so that `run` and `once` ship again. The quarantined batch stays quarantined: its
    /// changes reach the target only through `resync TABLE`.
    Resume,
    /// Show health (lag, the receiver's last answer), pending changes, last seq cut and
    /// applied (with when), unanswered and quarantined batches, each queued snapshot's
    /// progress, the last link error and the last failed apply with their time. Exit
    /// status by the monitoring convention: 0 ok, 1 warning, 2 critical (a halted node,
    /// a quarantined batch not acknowledged, lag or silence past `[alarm]`).
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
    /// One quarantined batch: its reason and the changes it carries.
    Show {
        seq: u64,
        #[arg(long)]
        json: bool,
    },
    /// Make it ready again: it ships at the next pass; the receiver answers "applied"
    /// once it has applied it (its own `quarantine retry`).
    Retry { seq: u64 },
    /// Accept the loss: the audit records who and when.
    Ack {
        seq: u64,
        /// Who accepts it (default: $SUDO_USER or $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

fn main() -> ExitCode {
    if let Err(e) = gapsync_common::logging::init() {
        eprintln!("gapsync-sender: error: {e}");
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
                "gapsync-sender",
                &gapsync_common::logging::error_line(e.as_ref()),
            );
            // A halted node exits with its own status, which the shipped unit does not
            // restart on (RestartPreventExitStatus=3): it waits for the operator.
            let halted = e.chain().any(|c| {
                c.downcast_ref::<gapsync_sender::SenderError>()
                    .is_some_and(gapsync_sender::SenderError::is_halt)
            });
            if halted {
                ExitCode::from(EXIT_HALTED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Exit status of a halted node (`[batch] on_second_failure = "halt"`).
const EXIT_HALTED: u8 = 3;

fn signals() -> Result<gapsync_common::stop::Signals> {
    gapsync_common::stop::Signals::install().context("installing signal handlers")
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    Ok(signals()?.stop)
}

/// `run`: the service until `stop` (SIGTERM, SIGINT, SIGHUP).
fn run_service(cfg: SenderConfig, stop: &Arc<AtomicBool>) -> Result<()> {
    let Some(mut sender) = Sender::open_service(cfg, stop)? else {
        info!("stopped before the source database was available");
        return Ok(());
    };
    match &sender.cfg.link.dir {
        Some(d) => {
            info!(node = %sender.cfg.node, folder = %d.display(), "sender running (folder link: published batches count as delivered)")
        }
        None => {
            info!(node = %sender.cfg.node, receiver = %sender.cfg.link.connect, "sender running")
        }
    }
    sender.run(stop)?;
    Ok(())
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
    if let Cmd::Keygen { out } = &cli.cmd {
        // Before a key exists: only the node id is read from the config.
        let node = SenderConfig::load_node(&cli.config)?;
        gapsync_common::fsx::private_dir(out)
            .map_err(std::io::Error::from)
            .with_context(|| format!("creating the key directory {}", out.display()))?;
        let (key, public, signer) = gapsync_common::sign::generate(&node, out)?;
        gapsync_common::outln!("private key: {} (mode 0600)", key.display())?;
        gapsync_common::outln!("public key:  {}", public.display())?;
        gapsync_common::outln!(
            "\n# sender.toml\n[sign]\nkey = {:?}",
            key.display().to_string()
        )?;
        gapsync_common::outln!(
            "\n# receiver.toml (one entry per trusted key)\n[[trust]]\nnode = {:?}\nkey = {:?}",
            node,
            signer.public_line()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = SenderConfig::load(&cli.config)?;
    if cfg.insecure {
        warn!(
            "insecure = true: batches are not signed; the receiver cannot tell them from forgeries"
        );
    }
    match cli.cmd {
        // Handled above, before the full config is loaded.
        Cmd::Keygen { .. } | Cmd::Docs { .. } => {}
        Cmd::Check => {
            let mut sender = Sender::open(cfg, false)?;
            let specs = sender.checked_specs()?;
            for s in &specs {
                let key: Vec<&str> = s
                    .key
                    .iter()
                    .map(|&i| s.columns[i].source.as_str())
                    .collect();
                gapsync_common::outln!(
                    "table {} -> {}: {} columns, key ({})",
                    s.source,
                    s.target,
                    s.columns.len(),
                    key.join(", ")
                )?;
            }
            if let Some(d) = &sender.cfg.link.dir {
                if !d.is_dir() {
                    bail!(
                        "[link] dir = {}: not a folder (create it, or mount the ferry's folder)",
                        d.display()
                    );
                }
                gapsync_common::fsx::check_writable(d)
                    .with_context(|| format!("[link] dir = {}", d.display()))?;
                gapsync_common::outln!("folder link: {} (writable)", d.display())?;
            }
            gapsync_common::outln!("{}: configuration OK", cli.config.display())?;
        }
        Cmd::Install {
            dry_run,
            no_snapshot,
        } => {
            let mut sender = Sender::open(cfg, false)?;
            let specs = sender.checked_specs()?;
            let plan = if dry_run {
                sender.source().plan_install(&specs)?
            } else {
                sender.source().install(&specs)?
            };
            if dry_run {
                for stmt in &plan.ddl {
                    gapsync_common::outln!("{stmt};")?;
                }
            }
            for n in &plan.notes {
                gapsync_common::outln!("{}{n}", if dry_run { "-- would be: " } else { "" })?;
            }
            // A table installed for the first time gets its initial snapshot queued:
            // the target must have the table and its rows before the first changes.
            let fresh: Vec<String> = plan
                .notes
                .iter()
                .filter_map(|n| n.strip_suffix(": installed").map(str::to_owned))
                .collect();
            if !dry_run && !no_snapshot && !fresh.is_empty() {
                let queued = sender.queue_snapshots(&fresh)?;
                gapsync_common::outln!(
                    "initial snapshot queued for {} (the next `run` or `once` ships it first)",
                    queued.join(", ")
                )?;
            }
        }
        Cmd::Uninstall { purge } => {
            let tables: Vec<String> = cfg.tables.iter().map(|t| t.source.clone()).collect();
            let mut sender = Sender::open(cfg, false)?;
            for stmt in sender.source().uninstall(&tables, purge)? {
                gapsync_common::outln!("{stmt};")?;
            }
        }
        Cmd::Snapshot { tables } => {
            let mut sender = Sender::open(cfg, false)?;
            let queued = sender.queue_snapshots(&tables)?;
            gapsync_common::outln!(
                "queued snapshot of {}; the running service (or the next `once`) builds and ships it",
                queued.join(", ")
            )?;
        }
        Cmd::Run => {
            let sig = signals()?;
            gapsync_common::stop::run_reloading(
                &sig,
                cfg,
                || SenderConfig::load(&cli.config),
                run_service,
            )?;
        }
        Cmd::Once => {
            let stop = stop_flag()?;
            let mut sender = Sender::open(cfg, true)?;
            if gapsync_common::progress::on_terminal() {
                sender.observe_snapshots(Box::new(SnapshotBars::default()));
            }
            let node = sender.cfg.node.clone();
            let media = sender.media_status();
            let alarm = sender.cfg.alarm.clone();
            let earlier: Vec<u64> = status::status(
                &node,
                &sender.cfg.work_dir.clone(),
                sender.source(),
                media,
                &alarm,
            )?
            .quarantined
            .iter()
            .map(|q| q.seq)
            .collect();
            let report = sender.once(&stop).map_err(|e| {
                if e.source_unavailable() {
                    anyhow::Error::new(e).context(
                        "the source database is unavailable (transient): nothing was lost, run `once` again later",
                    )
                } else {
                    e.into()
                }
            })?;
            gapsync_common::outln!(
                "{} {} batch(es){}",
                if sender.cfg.link.dir.is_some() {
                    "published"
                } else {
                    "applied"
                },
                report.applied.len(),
                if earlier.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} batch(es) quarantined earlier: {earlier:?}",
                        earlier.len()
                    )
                }
            )?;
            if !report.dropped.is_empty() {
                error!(dropped = ?report.dropped, "batches dropped to quarantine");
                bail!(
                    "{} batch(es) failed twice on the receiver and were quarantined: seq {:?} (see the receiver's quarantine for the database error)",
                    report.dropped.len(),
                    report.dropped
                );
            }
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                bail!("interrupted before every batch was answered");
            }
        }
        Cmd::Quarantine { cmd } => {
            let mut sender = Sender::open(cfg, true)?;
            match cmd {
                QuarantineCmd::List { json } => {
                    let v = sender.quarantine_list()?;
                    if json {
                        gapsync_common::outln!("{}", serde_json::to_string_pretty(&v)?)?;
                    } else {
                        if v.is_empty() {
                            gapsync_common::outln!("no quarantined batch")?;
                        }
                        for q in &v {
                            gapsync_common::outln!(
                                "seq {} {} ({} changes, cut {}){}: {}",
                                q.seq,
                                q.file,
                                q.changes,
                                q.created,
                                match &q.acked {
                                    Some(a) => format!(", loss accepted by {a}"),
                                    None => String::new(),
                                },
                                q.reason
                            )?;
                        }
                    }
                }
                QuarantineCmd::Show { seq, json } => {
                    let q = sender.quarantine_show(seq)?;
                    if json {
                        gapsync_common::outln!("{}", serde_json::to_string_pretty(&q)?)?;
                    } else {
                        gapsync_common::outln!("seq {} {} (cut {})", q.seq, q.file, q.created)?;
                        gapsync_common::outln!("reason: {}", q.reason)?;
                        gapsync_common::outln!(
                            "changes: {} (tracking ids {}..={}); the database error is in the receiver's `quarantine show`",
                            q.changes,
                            q.first_id.unwrap_or(0),
                            q.last_id.unwrap_or(0)
                        )?;
                        if let Some(a) = &q.acked {
                            gapsync_common::outln!("loss accepted by {a}")?;
                        }
                    }
                }
                QuarantineCmd::Retry { seq } => {
                    gapsync_common::outln!("{}", sender.quarantine_retry(seq)?)?;
                }
                QuarantineCmd::Ack { seq, by } => {
                    let by = by
                        .or_else(|| std::env::var("SUDO_USER").ok())
                        .or_else(|| std::env::var("USER").ok())
                        .unwrap_or_else(|| "unknown".to_owned());
                    gapsync_common::outln!("{}", sender.quarantine_ack(seq, &by)?)?;
                }
            }
        }
        Cmd::ImportReceipt { file } => {
            let mut sender = Sender::open(cfg, true)?;
            let r = sender.import_receipt(&file)?;
            gapsync_common::outln!(
                "receipt from {} ({}): confirmed up to seq {}",
                r.receiver,
                r.created,
                r.confirmed_up_to
            )?;
            for (seq, why) in &r.quarantined {
                gapsync_common::outln!("quarantined at the receiver: seq {seq}: {why}")?;
            }
            if !r.missing.is_empty() {
                gapsync_common::outln!(
                    "missing at the receiver: {:?}: gapsync-sender export --missing --to DIR",
                    r.missing
                )?;
            }
        }
        Cmd::Export {
            to,
            from,
            to_seq,
            missing,
        } => {
            let mut sender = Sender::open(cfg, true)?;
            let only = if missing {
                let m = sender.last_receipt().map(|r| r.missing).unwrap_or_default();
                if m.is_empty() {
                    bail!(
                        "no receipt on record says a seq is missing (import one with `import-receipt FILE`)"
                    );
                }
                Some(m)
            } else {
                None
            };
            let r = sender.export(&to, from, to_seq, only.as_deref())?;
            for f in &r.copied {
                gapsync_common::outln!("{f}: copied")?;
            }
            for f in &r.present {
                gapsync_common::outln!("{f}: on the medium already, same content")?;
            }
            if let Some(m) = &r.manifest {
                gapsync_common::outln!(
                    "{m}: written last ({} copied, {} present); on the outside: gapsync-receiver import {}",
                    r.copied.len(),
                    r.present.len(),
                    to.display()
                )?;
            }
        }
        Cmd::Resume => {
            let mut sender = Sender::open(cfg, true)?;
            match sender.resume()? {
                Some(h) => {
                    gapsync_common::outln!(
                        "resumed: the node was halted since {} at batch {} ({}); that batch stays quarantined, its changes reach the target only through `gapsync-sender resync TABLE`",
                        h.since,
                        h.seq,
                        h.file
                    )?;
                }
                None => gapsync_common::outln!("the node is not halted: nothing to resume")?,
            }
        }
        Cmd::Status { json } => {
            let mut sender = Sender::open(cfg, false)?;
            let node = sender.cfg.node.clone();
            let media = sender.media_status();
            let alarm = sender.cfg.alarm.clone();
            let st = status::status(
                &node,
                &sender.cfg.work_dir.clone(),
                sender.source(),
                media,
                &alarm,
            )?;
            if json {
                gapsync_common::outln!("{}", serde_json::to_string_pretty(&st)?)?;
            } else {
                gapsync_common::logging::write_stdout(format_args!("{}", st.text()))?;
            }
            // The monitoring convention: 0 ok, 1 warning, 2 critical (a halted node, a
            // quarantined batch not acknowledged, lag or silence past [alarm]).
            return Ok(ExitCode::from(st.health.level as u8));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `once` on a terminal: a progress bar per snapshot (rows cut of the table's rows).
#[derive(Debug, Default)]
struct SnapshotBars {
    bar: Option<(String, indicatif::ProgressBar)>,
}

impl gapsync_sender::SnapshotObserver for SnapshotBars {
    fn progress(&mut self, table: &str, done: u64, total: u64, finished: bool) {
        let pb = match &self.bar {
            Some((t, pb)) if t == table => pb.clone(),
            _ => {
                let pb = gapsync_common::progress::bar(table, total, "rows");
                self.bar = Some((table.to_owned(), pb.clone()));
                pb
            }
        };
        pb.set_length(total);
        pb.set_position(done);
        if finished {
            // The log's "snapshot cut" line says the rest.
            pb.finish_and_clear();
            self.bar = None;
        }
    }
}
