//! `oms backup`: a consistent copy of the database while others write.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::Result;
use crate::output::note;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    pub file: PathBuf,
}

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result {
    let store = ctx.store()?;
    store.backup(&args.file)?;
    note(&format!(
        "backed up {} to {}",
        ctx.global.db.display(),
        args.file.display()
    ));
    Ok(())
}
