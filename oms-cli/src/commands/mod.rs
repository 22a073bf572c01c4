//! One module per command group; each has a clap `Args`/`Subcommand` whose
//! doc comments are the help text, and a thin `run`.

pub mod backup;
pub mod changes;
pub mod completions;
pub mod customer;
pub mod db;
pub mod init;
pub mod man;
pub mod notify;
pub mod order;
pub mod payment;
pub mod product;
pub mod serve;
pub mod token;
pub mod user;

use oms_core::{Actor, Db};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::Result;
use crate::output::{Format, Output, data_line};

/// What every command gets: the global options, opened lazily.
pub struct Ctx {
    pub global: GlobalArgs,
    pub actor: Actor,
}

impl Ctx {
    /// Opens (creating and migrating if needed) the shop's data.
    pub fn db(&self) -> Result<Db> {
        Ok(Db::open(&self.global.db)?)
    }

    /// The output with the format given, or `default`.
    pub fn output(&self, default: Format) -> Output {
        Output {
            format: self.global.format.unwrap_or(default),
            quiet: self.global.quiet,
        }
    }

    /// The output with the table default.
    pub fn out(&self) -> Output {
        self.output(Format::Table)
    }
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result {
    let ctx = Ctx {
        global: cli.global,
        actor: Actor::cli(),
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::User(cmd) => user::run(&ctx, cmd),
        Command::Customer(cmd) => customer::run(&ctx, cmd),
        Command::Product(cmd) => product::run(&ctx, cmd),
        Command::Order(cmd) => order::run(&ctx, cmd),
        Command::Payment(cmd) => payment::run(&ctx, cmd),
        Command::Changes(args) => changes::run(&ctx, args),
        Command::Verify => verify(&ctx),
        Command::Backup(args) => backup::run(&ctx, args),
        Command::Db(cmd) => db::run(&ctx, cmd),
        Command::Serve(args) => serve::run(&ctx, args),
        Command::Token(cmd) => token::run(&ctx, cmd),
        Command::Notify(cmd) => notify::run(&ctx, cmd),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

fn verify(ctx: &Ctx) -> Result {
    let store = ctx.db()?;
    let report = store.verify()?;
    let out = ctx.out();
    match out.format {
        Format::Json | Format::Jsonl => {
            data_line(&serde_json::to_string(&report).unwrap_or_default())?;
        }
        Format::Table | Format::Csv => {
            data_line(&format!(
                "integrity: {}\nproducts checked: {}\norders checked: {}\nchanges checked: {}",
                report.integrity,
                report.products_checked,
                report.orders_checked,
                report.changes_checked
            ))?;
            for problem in &report.problems {
                data_line(&format!("DRIFT: {problem}"))?;
            }
            if report.is_clean() {
                data_line("ok: no drift")?;
            }
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(oms_core::Error::Drift(report.problems.len()).into())
    }
}

/// The `--limit N` of every list command (`order list`, `order export`,
/// `product list`, `customer list`, `changes`, and any list added later):
/// at most N rows, and `--limit 0` for no limit. One function, so 0 means
/// the same everywhere.
pub fn list_limit(limit: Option<u64>) -> Option<u64> {
    limit.filter(|&n| n > 0)
}

/// `FILE` or `-` and `--dry-run`, shared by every `import` command.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// CSV file, or - for stdin.
    pub file: String,
    /// Check every row and report what would change, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a CSV import in one transaction (rolled back with `--dry-run`) and
/// reports what it did. The first bad row fails the whole file.
pub fn import(
    ctx: &Ctx,
    args: &ImportArgs,
    what: &str,
    apply: impl FnOnce(
        &oms_core::WriteTx<'_>,
        Box<dyn std::io::Read>,
    ) -> oms_core::Result<oms_core::ImportSummary>,
) -> Result {
    let (reader, bar) = crate::input::open(&args.file)?;
    // A bulk import touches most index pages of its tables: a handle that
    // may keep more of them cached.
    let store = Db::open_for_bulk(&ctx.global.db)?;
    let run = |tx: &oms_core::WriteTx<'_>| apply(tx, reader);
    let result = if args.dry_run {
        store.dry_run(&ctx.actor, run)
    } else {
        store.write(&ctx.actor, run)
    };
    bar.finish_and_clear();
    let mut summary = result?;
    summary.dry_run = args.dry_run;
    import_summary(ctx, what, &summary)
}

/// Streams a CSV export to stdout.
pub fn export(
    ctx: &Ctx,
    write: impl FnOnce(&oms_core::Reader, &mut crate::input::CountingStdout) -> oms_core::Result<u64>,
) -> Result {
    let store = ctx.db()?;
    let mut out = crate::input::CountingStdout::new();
    write(&store, &mut out)?;
    Ok(out.finish()?)
}

/// Prints what an import did, or would have done with `--dry-run`.
fn import_summary(ctx: &Ctx, what: &str, summary: &oms_core::ImportSummary) -> Result {
    let verb = if summary.dry_run {
        "would import"
    } else {
        "imported"
    };
    crate::output::note(&format!(
        "{verb} {} {what} row(s): {} created, {} updated, {} unchanged",
        summary.rows, summary.created, summary.updated, summary.unchanged
    ));
    if ctx.global.format.is_some() {
        ctx.out().one(summary)?;
    }
    Ok(())
}
