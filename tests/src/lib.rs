//! Harness for gapsync's end-to-end tests and demo: it runs the REAL binaries
//! (`gapsync-sender`, `gapsync-receiver`) as child processes in a temporary workspace
//! and looks at their databases and work directories from the outside.
//!
//! # Layout of a workspace
//!
//! ```text
//! <tmp>/gapsync-<name>-XXXX/
//!   receiver/receiver.toml  receiver/replica.db  receiver/rwork/  receiver/receiver.log
//!   sender/sender.toml      sender/plant.db      sender/swork/    sender/sender.log
//!   sender-<node>/...       (more sender nodes, see [`Workspace::sender_in`])
//! ```
//!
//! # Typical test
//!
//! ```no_run
//! use gapsync_tests::*;
//! let ws = Workspace::new("example");
//! let mut rx = ws.receiver(ReceiverConfig::default());
//! rx.start();
//! let mut tx = ws.sender(SenderConfig::new("plant1").table(Table::new("t")).connect(rx.addr()));
//! tx.source().execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)").unwrap();
//! tx.install();
//! tx.snapshot(&[]); // creates the target table
//! tx.start(); // `gapsync-sender run`
//! tx.source().execute("INSERT INTO t VALUES (1, 'x')", []).unwrap();
//! ws.wait_synced(&tx, &rx, secs(30));
//! assert_synced(&tx, &rx);
//! tx.stop(); rx.stop();
//! ```
//!
//! # Real database servers (feature `odbc`)
//!
//! [`odbc`] runs the same pipeline into PostgreSQL and MariaDB through ODBC: a
//! [`odbc::Server`] per server (skipped with a message when unreachable, a failure with
//! `CI=true`), a fresh database per test ([`odbc::TestDb`], dropped afterwards), typed
//! readers and a row-by-row comparison with the SQLite source. [`TcpProxy`] can stand
//! between the receiver and a server to cut the connection (an outage) and restore it.
//!
//! # Rules the helpers follow
//!
//! - Every helper panics on failure with a message that says what was expected; the
//!   `wait_*` helpers add the tail of every `*.log` file of the workspace (the stderr of
//!   the services), so a timeout explains itself.
//! - Services ([`SenderNode::start`], [`ReceiverNode::start`]) are killed with SIGKILL
//!   when their node is dropped, so a failing test leaves no process behind. Stop them
//!   with [`SenderNode::stop`] (SIGTERM, expects exit 0) to test a clean shutdown, or
//!   [`SenderNode::kill`] (SIGKILL) to test a crash.
//! - The workspace directory is deleted on drop, unless the thread is panicking (a
//!   failing test) or `GAPSYNC_KEEP=1` is set: then its path is printed and it is kept.
//! - Databases are opened with rusqlite with a busy timeout, read-only use is the norm:
//!   the services own their databases; tests write only to the SOURCE tables (the plant)
//!   or, deliberately, to gapsync's tables when a test needs an unusual state.

use std::time::Duration;

// Real database servers through ODBC (PostgreSQL, MariaDB): see the module docs.
#[cfg(feature = "odbc")]
pub mod odbc;

// The forward isolation device emulator (`gapsync-gap`).
pub mod gap;

// The reliability suite's rig and end-of-case checks (also used by `gapsync-soak`).
pub mod suite;

// The soak run (`gapsync-soak`, `tests/soak.sh`).
pub mod soak;

// The performance budgets as ratios against peers (`gapsync-bench`).
pub mod bench;

// A hostile client speaking raw frames, for the trust-boundary suite.
pub mod attacker;

/// How often the `wait_*` helpers look.
pub const POLL: Duration = Duration::from_millis(50);

/// Shorthand for `Duration::from_secs`.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Shorthand for `Duration::from_millis`.
pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

mod util;
pub use util::*;
mod config;
pub use config::*;
mod cmd;
pub use cmd::*;
mod workspace;
pub use workspace::*;
mod sender_node;
pub use sender_node::*;
mod receiver_node;
pub use receiver_node::*;
mod compare;
pub use compare::*;
mod workload;
pub use workload::*;
mod audit;
pub use audit::*;
mod fake;
pub use fake::*;
mod proxy;
pub use proxy::*;
mod gap_rig;
pub use gap_rig::*;
