//! `oms backup`: a consistent copy of the database while others write.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::Result;
use crate::output::note;

#[derive(Debug, Args)]
#[command(after_help = "\
The copy is written to a temporary file beside FILE, flushed to disk and only
then renamed to FILE, so FILE is never half-written: a reader sees the old
complete backup or the new one. Nightly, to a fixed path:
  oms --db /var/lib/oms/oms.db backup --force /var/backups/oms/oms.db
or keep one file per day:
  oms --db /var/lib/oms/oms.db backup /var/backups/oms/oms-$(date +%F).db")]
pub struct BackupArgs {
    /// Where to write the copy (refused if it exists, unless --force).
    pub file: PathBuf,
    /// Replace FILE if it exists (atomically: the old backup stays until the
    /// new one is complete).
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result {
    let store = ctx.db()?;
    store.backup(&args.file, args.force)?;
    note(&format!(
        "backed up {} to {}",
        ctx.global.db.display(),
        args.file.display()
    ));
    Ok(())
}
