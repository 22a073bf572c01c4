//! `oms-torture`: the harnesses behind `scripts/torture`.
//!
//! Each subcommand drives the real release `oms` binary (its daemon on
//! `127.0.0.1:0` and separate CLI processes on the same database file),
//! checks a promise of oms while it runs and at the end, prints one summary
//! line of `key=value` figures on stdout and exits non-zero when a check
//! failed (each failure is one `FAIL:` line on stderr). Progress goes to
//! stderr. Every size and duration is a flag, and every wait is bounded.
//!
//! - `oversell`: buyers over HTTP and the CLI race for a little stock while
//!   an admin cancels and fulfils and expiry runs; stock is audited on
//!   snapshots taken with `oms backup` under load, and at the end.
//! - `crash`: the daemon under order load plus a CLI import is killed with
//!   SIGKILL again and again; nothing acknowledged may be lost, nothing
//!   half-written may appear, and unacknowledged placements resolve through
//!   their idempotency keys.
//! - `contention`: the daemon under load while the CLI imports a large file
//!   and places orders in a loop: no "database is busy/locked" on either
//!   side; a CLI write facing a held lock fails cleanly with exit 1.
//! - `shutdown`: SIGTERM during order load with hundreds of long-polls.
//! - `webhook`: payment webhook deliveries replayed and shuffled under
//!   placement load; every order's status agrees with its payments.
//! - `scale-out`: three daemons and ten CLI processes on one PostgreSQL
//!   database buy the last units of a product; exactly that many win.
//! - `feed-pg`: two daemons and the CLI write to one PostgreSQL database
//!   while a client of one daemon reads the change feed from random
//!   cursors: every seq once, in order, no gap.
//! - `pg-restart`: two daemons under load while their PostgreSQL stops and
//!   starts again: 503 problem+json meanwhile, never a hang, recovery on
//!   their own, nothing acknowledged lost.
//! - `copy-roundtrip`: `oms db copy` SQLite -> PostgreSQL -> SQLite keeps
//!   every export and the change log byte for byte.
//! - `hold-lock`: a helper process that holds the write lock.
//!
//! `oversell`, `crash` and `shutdown` also run on PostgreSQL with several
//! daemons (`--db postgres://... --daemons N`).

mod check;
mod client;
mod contention;
mod copy_roundtrip;
mod crash;
mod feed;
mod oms;
mod oversell;
mod pg_restart;
mod scale_out;
mod shutdown;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Parser)]
#[command(
    name = "oms-torture",
    about = "Reliability harnesses for scripts/torture"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bank-style oversell check: HTTP and CLI buyers race for little stock.
    Oversell(oversell::Args),
    /// kill -9 crash loop: acknowledged orders survive, nothing half-written.
    Crash(crash::Args),
    /// Shared-file contention: daemon load plus CLI import and placements.
    Contention(contention::Args),
    /// Graceful shutdown: SIGTERM during order load with many long-polls.
    Shutdown(shutdown::Args),
    /// Payment webhook: replayed, shuffled deliveries under placement load.
    Webhook(webhook::Args),
    /// Scale-out: daemons and CLI processes on PostgreSQL buy the last units.
    ScaleOut(scale_out::Args),
    /// Change feed on PostgreSQL: writers in several processes, a reader
    /// resuming from random cursors sees every seq once, in order.
    FeedPg(feed::Args),
    /// PostgreSQL stopped and started under load on two daemons.
    PgRestart(pg_restart::Args),
    /// `oms db copy` SQLite -> PostgreSQL -> SQLite, compared byte for byte.
    CopyRoundtrip(copy_roundtrip::Args),
    /// Helper: hold the database's write lock for a while.
    HoldLock(contention::HoldArgs),
}

/// What every harness is given: the binary under test, a scratch directory
/// and a seed.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The `oms` binary under test (a release build).
    #[arg(long, default_value = "oms")]
    pub oms: PathBuf,
    /// Scratch directory for databases, logs and CSV files (created; left
    /// in place for inspection).
    #[arg(long)]
    pub work: PathBuf,
    /// Seed of the random carts, actions and kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::HoldLock(args) => contention::hold_lock(&args),
        command => runtime().and_then(|rt| {
            rt.block_on(async move {
                match command {
                    Command::Oversell(args) => oversell::run(args).await,
                    Command::Crash(args) => crash::run(args).await,
                    Command::Contention(args) => contention::run(args).await,
                    Command::Shutdown(args) => shutdown::run(args).await,
                    Command::Webhook(args) => webhook::run(args).await,
                    Command::ScaleOut(args) => scale_out::run(args).await,
                    Command::FeedPg(args) => feed::run(args).await,
                    Command::PgRestart(args) => pg_restart::run(args).await,
                    Command::CopyRoundtrip(args) => copy_roundtrip::run(args).await,
                    Command::HoldLock(_) => Ok(Verdict::default()),
                }
            })
        }),
    };
    match result {
        Ok(verdict) => verdict.report(),
        Err(e) => {
            eprintln!("oms-torture: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A harness's result: its summary line and the checks that failed.
#[derive(Debug, Default)]
pub struct Verdict {
    pub summary: String,
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn new(harness: &str) -> Verdict {
        Verdict {
            summary: format!("harness={harness}"),
            failures: Vec::new(),
        }
    }

    /// Appends ` key=value` to the summary line.
    pub fn figure(&mut self, key: &str, value: impl std::fmt::Display) {
        self.summary.push_str(&format!(" {key}={value}"));
    }

    /// Records a failed check unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    pub fn fail(&mut self, what: String) {
        eprintln!("FAIL: {what}");
        self.failures.push(what);
    }

    /// Prints the summary line; FAILED when any check failed.
    fn report(self) -> ExitCode {
        // Hold-lock prints nothing.
        if self.summary.is_empty() {
            return ExitCode::SUCCESS;
        }
        let verdict = if self.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        println!(
            "{} failures={} verdict={verdict}",
            self.summary,
            self.failures.len()
        );
        if self.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Progress notes on stderr.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("-- {text}");
}
