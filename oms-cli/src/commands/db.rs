//! `oms db copy`: the whole shop into an empty database of either kind.

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oms_core::{CopyProgress, Db, Location};

use super::Ctx;
use crate::error::Result;
use crate::output::{Format, data_line, note};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy the whole shop into an empty database (SQLite file or postgres:// URL).
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Copies every table: products, customers, users with their password hashes,
orders and items, the stock ledger, the change log with its seqs, idempotency
keys, payments, the e-mail outbox and the settings (the JWT secret too, so
issued tokens stay valid). The source is read in one snapshot and the target
written in one transaction: the target gets all of the shop or nothing. A
target that already holds shop data is refused (exit 4). The copy is then
checked with `oms verify` on the target.

From SQLite to PostgreSQL (the way out of one machine):
  oms --db /var/lib/oms/oms.db db copy --to postgres://oms:secret@db.internal/oms
and back to a file:
  oms --db postgres://oms:secret@db.internal/oms db copy --to shop.db")]
pub struct CopyArgs {
    /// The database to copy into: a file (created if missing) or a
    /// postgres:// URL of an existing, empty database.
    #[arg(long, value_name = "PATH|URL")]
    pub to: Location,
}

pub fn run(ctx: &Ctx, cmd: DbCommand) -> Result {
    match cmd {
        DbCommand::Copy(args) => copy(ctx, args),
    }
}

fn copy(ctx: &Ctx, args: CopyArgs) -> Result {
    let source = ctx.db()?;
    let bar = progress_bar();
    let summary = source.copy_to(&args.to, &mut |p: CopyProgress| {
        bar.set_length(p.total);
        bar.set_position(p.rows);
    })?;
    bar.finish_and_clear();
    let report = Db::open(&args.to)?.verify()?;
    let out = ctx.out();
    match out.format {
        Format::Json | Format::Jsonl => data_line(
            &serde_json::json!({
                "from": ctx.global.db.display(),
                "to": args.to.display(),
                "rows": summary.rows,
                "tables": summary.tables.iter().map(|(t, n)| (t.clone(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                "verify": report,
            })
            .to_string(),
        )?,
        Format::Table | Format::Csv if !out.quiet => {
            for (table, rows) in &summary.tables {
                data_line(&format!("{table}: {rows}"))?;
            }
        }
        _ => {}
    }
    note(&format!(
        "copied {} rows from {} to {}",
        summary.rows,
        ctx.global.db.display(),
        args.to.display()
    ));
    if report.is_clean() {
        note("verified the copy: no drift");
        Ok(())
    } else {
        for problem in &report.problems {
            note(&format!("DRIFT: {problem}"));
        }
        Err(oms_core::Error::Drift(report.problems.len()).into())
    }
}

/// Rows copied of all, on stderr when it is a terminal.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
